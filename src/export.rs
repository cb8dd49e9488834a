//! `spikerl export`: a trained spiking policy in another format. `--format nir` writes the graph of
//! `spikerl_snn::nir::policy_graph` as the HDF5 file `nir.write` makes and `nir.read` loads (docs/nir.md):
//! a scalar string dataset `version`, and the group `node` holding the graph's `to_dict()` (groups for
//! dicts, datasets for arrays and strings).

use std::collections::BTreeMap;

use anyhow::Context;
use hdf5_pure::{DatasetBuilder, FileBuilder, FinishedGroup, GroupBuilder};
use spikerl_snn::nir::{NIR_VERSION, NirError, NirValue, policy_graph};

use crate::UsageError;
use crate::cli::{ExportArgs, ExportFormat};

/// Runs `spikerl export`. A file that is not a policy, an ANN policy and a neuron NIR cannot express are
/// the user's input (exit 2).
pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let path = &args.policy;
    let bytes =
        std::fs::read(path).map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())))?;
    let (cfg, tensors, version) = spikerl_snn::decode_policy(&bytes)
        .map_err(|e| UsageError(format!("{} is not a policy file: {e}", path.display())))?;
    match args.format {
        ExportFormat::Nir => {
            let graph = policy_graph(&cfg, &tensors).map_err(|e| match e {
                NirError::Invalid(e) => UsageError(format!("{}: {e}", path.display())),
                e => UsageError(format!("cannot export {} to NIR: {e}", path.display())),
            })?;
            let file = nir_file(&graph.to_tree())?;
            std::fs::write(&args.out, file).with_context(|| format!("writing {}", args.out.display()))?;
            println!(
                "wrote {} (NIR {NIR_VERSION} graph, {} nodes; policy version {version})",
                args.out.display(),
                graph.nodes.len()
            );
        }
    }
    Ok(())
}

/// The bytes of a NIR file holding the graph `tree` (`NirGraph::to_tree`).
pub fn nir_file(tree: &BTreeMap<String, NirValue>) -> anyhow::Result<Vec<u8>> {
    let mut file = FileBuilder::new();
    file.create_dataset("version").with_vlen_strings(&[NIR_VERSION]).with_shape(&[]);
    let mut node = file.create_group("node");
    fill(&mut node, tree)?;
    file.add_group(node.finish());
    file.finish().map_err(|e| anyhow::anyhow!("encoding the NIR file: {e}"))
}

/// Writes `tree`'s entries into `group`: subgroups for [`NirValue::Group`], datasets for the rest.
fn fill(group: &mut GroupBuilder, tree: &BTreeMap<String, NirValue>) -> anyhow::Result<()> {
    for (name, value) in tree {
        match value {
            NirValue::Group(children) => {
                let mut g = group.create_group(name);
                fill(&mut g, children)?;
                let finished: FinishedGroup = g.finish();
                group.add_group(finished);
            }
            value => dataset(group.create_dataset(name), value),
        }
    }
    Ok(())
}

fn dataset(d: &mut DatasetBuilder, value: &NirValue) {
    let dims = |shape: &[usize]| shape.iter().map(|&n| n as u64).collect::<Vec<u64>>();
    match value {
        NirValue::Str(s) => {
            d.with_vlen_strings(&[s.as_str()]).with_shape(&[]);
        }
        NirValue::Strs { shape, data } => {
            let strs: Vec<&str> = data.iter().map(String::as_str).collect();
            d.with_vlen_strings(&strs).with_shape(&dims(shape));
        }
        NirValue::F32 { shape, data } => {
            d.with_f32_data(data).with_shape(&dims(shape));
        }
        NirValue::I64 { shape, data } => {
            d.with_i64_data(data).with_shape(&dims(shape));
        }
        NirValue::Group(_) => unreachable!("groups are written by fill"),
    }
}
