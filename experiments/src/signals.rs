//! Ctrl-C and SIGTERM for a sweep: counted, not fatal, so the scheduler can stop starting runs, forward
//! the signal to the runs it started, wait for them to record their state, and return.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

static RECEIVED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    RECEIVED.fetch_add(1, Ordering::SeqCst);
}

/// Catches SIGINT and SIGTERM while alive; restores the previous handlers when dropped.
pub struct Catcher {
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

impl Catcher {
    pub fn install() -> io::Result<Catcher> {
        RECEIVED.store(0, Ordering::SeqCst);
        let mut previous = Vec::new();
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler only touches
            // an atomic; `old` receives the previous disposition, restored in Drop.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &action, &mut old) != 0 {
                    return Err(io::Error::last_os_error());
                }
                previous.push((sig, old));
            }
        }
        Ok(Catcher { previous })
    }

    /// Signals received since `install`.
    pub fn received(&self) -> usize {
        RECEIVED.load(Ordering::SeqCst)
    }
}

impl Drop for Catcher {
    fn drop(&mut self) {
        for (sig, old) in &self.previous {
            // SAFETY: restoring a disposition sigaction returned earlier.
            unsafe {
                libc::sigaction(*sig, old, std::ptr::null_mut());
            }
        }
    }
}

/// Sends `sig` to process `pid` (errors ignored: the process may have just exited).
pub fn send(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid we started and have not reaped yet.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}
