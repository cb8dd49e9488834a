//! Plain-Rust work on libtorch's own OpenMP threads.
//!
//! libtorch parallelises each op over an OpenMP team whose workers spin for a while after every parallel
//! region before they sleep. Threads the learner starts itself between two libtorch ops (the SNN mirror's
//! row split) therefore compete for the cores with workers that are busy doing nothing. Running the same
//! work as an OpenMP parallel region of the runtime libtorch already loaded (`GOMP_parallel`, which
//! libgomp and LLVM/Intel's libomp both export) puts it on those very workers instead. Where no OpenMP
//! runtime is loaded, scoped threads do the work.

use std::ffi::{c_int, c_uint, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

type Parallel = unsafe extern "C" fn(extern "C" fn(*mut c_void), *mut c_void, c_uint, c_uint);
type TeamQuery = unsafe extern "C" fn() -> c_int;

#[derive(Clone, Copy)]
struct Runtime {
    parallel: Parallel,
    thread_num: TeamQuery,
    num_threads: TeamQuery,
}

fn runtime() -> Option<Runtime> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    *RUNTIME.get_or_init(|| {
        // SAFETY: dlsym with RTLD_DEFAULT only looks symbols up; the three have these C signatures in the
        // GOMP ABI and the OpenMP API.
        unsafe {
            let find = |name: &std::ffi::CStr| libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr());
            let (p, t, n) =
                (find(c"GOMP_parallel"), find(c"omp_get_thread_num"), find(c"omp_get_num_threads"));
            (!p.is_null() && !t.is_null() && !n.is_null()).then(|| Runtime {
                parallel: std::mem::transmute::<*mut c_void, Parallel>(p),
                thread_num: std::mem::transmute::<*mut c_void, TeamQuery>(t),
                num_threads: std::mem::transmute::<*mut c_void, TeamQuery>(n),
            })
        }
    })
}

struct Job<'a> {
    tasks: usize,
    f: &'a (dyn Fn(usize) + Sync),
    runtime: Runtime,
    panicked: AtomicBool,
}

extern "C" fn run_job(data: *mut c_void) {
    // SAFETY: `data` is the `Job` that `parallel` passed, alive until GOMP_parallel returns.
    let job = unsafe { &*(data as *const Job<'_>) };
    // SAFETY: OpenMP API calls, valid inside a parallel region.
    let (me, team) =
        unsafe { ((job.runtime.thread_num)() as usize, ((job.runtime.num_threads)() as usize).max(1)) };
    // The runtime may grant fewer threads than asked (nested regions, limits): each takes every team-th
    // task, so all run whatever the team size. A panic must not unwind into C: it is reported instead.
    for task in (me..job.tasks).step_by(team) {
        if catch_unwind(AssertUnwindSafe(|| (job.f)(task))).is_err() {
            job.panicked.store(true, Ordering::Relaxed);
        }
    }
}

/// Runs `f(0)`, ..., `f(tasks - 1)` in parallel, one per thread of libtorch's OpenMP pool where there is
/// one (the calling thread takes part), else on scoped threads; returns when all are done. `tasks` should
/// not exceed the threads libtorch may use (`tch::get_num_threads`).
///
/// # Panics
/// If a task panicked (after all have finished).
pub fn parallel(tasks: usize, f: &(dyn Fn(usize) + Sync)) {
    if tasks <= 1 {
        if tasks == 1 {
            f(0);
        }
        return;
    }
    match runtime() {
        Some(runtime) => {
            let job = Job { tasks, f, runtime, panicked: AtomicBool::new(false) };
            // SAFETY: `run_job` matches the GOMP outlined-function signature and `job` outlives the call,
            // which returns only after every thread of the team has finished.
            unsafe { (runtime.parallel)(run_job, &job as *const Job<'_> as *mut c_void, tasks as c_uint, 0) };
            assert!(!job.panicked.load(Ordering::Relaxed), "a parallel task panicked");
        }
        None => std::thread::scope(|scope| {
            for task in 1..tasks {
                scope.spawn(move || f(task));
            }
            f(0);
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_task_runs_exactly_once() {
        // Make sure libtorch (and with it the OpenMP runtime) is loaded, as in the learner.
        let _ = tch::Tensor::zeros([1], (tch::Kind::Float, tch::Device::Cpu));
        assert!(runtime().is_some(), "libtorch's OpenMP runtime should be found in this process");
        for tasks in 0..6 {
            let runs: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
            parallel(tasks, &|i| {
                runs[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(runs.iter().all(|r| r.load(Ordering::Relaxed) == 1), "{tasks} tasks");
        }
    }

    #[test]
    fn nested_regions_still_run_every_task() {
        let total = AtomicUsize::new(0);
        parallel(2, &|_| {
            parallel(3, &|_| {
                total.fetch_add(1, Ordering::Relaxed);
            });
        });
        assert_eq!(total.load(Ordering::Relaxed), 6);
    }

    #[test]
    fn a_panicking_task_is_reported_not_lost() {
        // resume_unwind panics without the panic hook, which would print a scary message in test logs.
        let caught = catch_unwind(|| {
            parallel(2, &|i| {
                if i == 1 {
                    std::panic::resume_unwind(Box::new("task 1 fails"));
                }
            })
        });
        assert!(caught.is_err());
    }
}
