//! `spikerl env info` and `spikerl env replay`.

use crate::UsageError;
use crate::cli::EnvCommand;
use std::io::{Read, Write};

pub fn run(cmd: EnvCommand) -> anyhow::Result<()> {
    match cmd {
        EnvCommand::Info { env } => {
            println!("{}", spikerl_envs::trajectory::info_json(&env)?);
            Ok(())
        }
        EnvCommand::Replay { env, input } => {
            let mut text = String::new();
            let read = if input.as_os_str() == "-" {
                std::io::stdin().read_to_string(&mut text).map(|_| ())
            } else {
                std::fs::read_to_string(&input).map(|t| text = t)
            };
            read.map_err(|e| UsageError(format!("cannot read {}: {e}", input.display())))?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            spikerl_envs::trajectory::run(&env, &text, &mut out)?;
            out.flush()?;
            Ok(())
        }
    }
}
