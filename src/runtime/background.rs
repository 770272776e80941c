//! Background work that must not take the CPU from requests: argon2
//! verifications and the sweep of expired sessions run on blocking-pool
//! threads whose priority is lowered first.

/// Lowers the priority of the current (blocking-pool) thread, once per
/// thread: on a busy machine the work then takes the CPU the requests
/// leave, instead of taking it from them.
pub(crate) fn yield_to_requests() {
    thread_local! {
        static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    LOWERED.with(|lowered| {
        if !lowered.get() {
            if let Err(err) = lowest_priority() {
                tracing::debug!(error = ?err, "could not lower the priority of a background thread");
            }
            lowered.set(true);
        }
    });
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

    #[test]
    fn background_threads_yield_to_any_request_thread() {
        const SCHED_OTHER: u32 = 0;
        const SCHED_IDLE: u32 = 5;
        let (before, after) = std::thread::spawn(|| {
            let before = policy_of_this_thread();
            super::yield_to_requests();
            (before, policy_of_this_thread())
        })
        .join()
        .unwrap();
        assert_eq!((before, after), (SCHED_OTHER, SCHED_IDLE));
    }
}
