//! Work that must not take the CPU from requests, on a small pool of
//! threads of its own: password verifications (argon2) and the sweep of
//! expired sessions.
//!
//! The pool's threads run at the lowest priority (`SCHED_IDLE` on Linux):
//! on a busy machine the work takes the CPU the requests leave. They are
//! few (one per core, at most [`MAX_THREADS`]) and live as long as the
//! process, so that what each keeps between jobs (argon2's working memory,
//! 19 MiB at the production parameters) is bounded by their number, not by
//! how many sign-ins arrive at once. tokio's own blocking pool, which
//! other work shares (the shutdown snapshot among it), is never lowered.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::oneshot;

/// The most threads the pool runs, whatever the core count.
const MAX_THREADS: usize = 4;

type Job = Box<dyn FnOnce() + Send>;

/// The pool: a queue its threads take jobs from, in order.
struct Pool {
    queue: Mutex<Sender<Job>>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_THREADS);
        for n in 0..threads {
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("authgate-background-{n}"))
                .spawn(move || work(&jobs))
                .expect("the background pool's threads start");
        }
        Pool {
            queue: Mutex::new(queue),
        }
    })
}

/// A pool thread's life: lowered once, then jobs until the process ends.
fn work(jobs: &Mutex<Receiver<Job>>) {
    if let Err(err) = lowest_priority() {
        tracing::debug!(error = ?err, "could not lower the priority of a background thread");
    }
    loop {
        let job = match jobs.lock() {
            Ok(jobs) => jobs.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        match job {
            // A job that panics takes only itself down, not the thread.
            Ok(job) => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
            Err(_) => return,
        }
    }
}

/// Runs `job` on the pool, and answers what it returns (`None` if it
/// panicked).
pub(crate) async fn run<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (answer, answered) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = answer.send(job());
    });
    let sent = match pool().queue.lock() {
        Ok(queue) => queue.send(job),
        Err(poisoned) => poisoned.into_inner().send(job),
    };
    sent.ok()?;
    answered.await.ok()
}

/// `SCHED_IDLE` where there is one: a request's thread waking up then
/// takes the CPU from it at once, where a thread at nice 19 may still run
/// out its time slice first. Nice 19 elsewhere.
#[cfg(target_os = "linux")]
fn lowest_priority() -> Result<(), thread_priority::Error> {
    use thread_priority::unix::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy, ThreadSchedulePolicy,
    };
    set_thread_priority_and_policy(
        thread_native_id(),
        thread_priority::ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    )
}

#[cfg(not(target_os = "linux"))]
fn lowest_priority() -> Result<(), thread_priority::Error> {
    thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// The scheduling policy of the calling thread (field 41 of its stat).
    fn policy_of_this_thread() -> u32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(41 - 3).unwrap().parse().unwrap()
    }

    const SCHED_OTHER: u32 = 0;
    const SCHED_IDLE: u32 = 5;

    #[tokio::test]
    async fn background_work_runs_at_idle_priority_on_few_threads_and_survives_a_panic() {
        let mut names = std::collections::HashSet::new();
        for _ in 0..32 {
            let (policy, name) = super::run(|| {
                (
                    policy_of_this_thread(),
                    std::thread::current().name().map(str::to_owned),
                )
            })
            .await
            .unwrap();
            assert_eq!(policy, SCHED_IDLE);
            names.insert(name.unwrap());
        }
        assert!(names.len() <= super::MAX_THREADS, "{names:?}");
        assert!(
            names.iter().all(|n| n.starts_with("authgate-background-")),
            "{names:?}"
        );
        assert_eq!(super::run(|| panic!("a job that fails")).await, None::<()>);
        assert_eq!(super::run(|| 7).await, Some(7), "the pool goes on");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tokios_blocking_pool_is_never_lowered() {
        super::run(|| ()).await.unwrap();
        for _ in 0..8 {
            let policy = tokio::task::spawn_blocking(policy_of_this_thread).await.unwrap();
            assert_eq!(policy, SCHED_OTHER);
        }
    }
}
