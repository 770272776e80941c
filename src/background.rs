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
            if let Err(err) =
                thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min)
            {
                tracing::debug!(error = ?err, "could not lower the priority of a background thread");
            }
            lowered.set(true);
        }
    });
}
