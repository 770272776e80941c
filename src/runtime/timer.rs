//! Deadlines kept to a tick (a quarter of a second) rather than to the
//! millisecond: hyper's header-read timeout and the upstream timeout.
//!
//! Both are set for every request and are seconds away; almost none is
//! ever reached. Through tokio's timer wheel each cost 400 to 600
//! instructions a request (an entry made, registered, and taken out
//! again). Here a sleep is an entry in its thread's slab, under a lock
//! that only that thread takes but for one scan a tick, and a thread of
//! its own (`authgate-timer`) wakes the entries whose deadline has passed.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

/// How late a sleep may wake: the timer thread's period.
const TICK: Duration = Duration::from_millis(250);

/// The `hyper::rt::Timer` of the gateway's connections: its sleeps are
/// [`CoarseSleep`]s.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CoarseTimer;

impl hyper::rt::Timer for CoarseTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(CoarseSleep::until(Instant::now() + duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(CoarseSleep::until(deadline))
    }
}

/// A sleep until a deadline, woken at most [`TICK`] after it: in its
/// thread's slab from its first poll until it is dropped.
#[derive(Debug)]
pub(crate) struct CoarseSleep {
    shard: Arc<Shard>,
    deadline: Instant,
    slot: Option<usize>,
}

/// One thread's sleepers.
#[derive(Debug, Default)]
struct Shard {
    sleepers: Mutex<Slab<Sleeper>>,
}

#[derive(Debug)]
struct Sleeper {
    deadline: Instant,
    waker: Waker,
    woken: bool,
}

thread_local! {
    static SHARD: Arc<Shard> = Shard::new_for_this_thread();
}

/// Every thread's shard, for the timer thread to scan.
static SHARDS: Mutex<Vec<Weak<Shard>>> = Mutex::new(Vec::new());

impl Shard {
    fn new_for_this_thread() -> Arc<Self> {
        static TIMER_THREAD: Once = Once::new();
        let shard = Arc::new(Shard::default());
        lock(&SHARDS).push(Arc::downgrade(&shard));
        TIMER_THREAD.call_once(|| {
            std::thread::Builder::new()
                .name("authgate-timer".into())
                .spawn(tick_forever)
                .expect("the timer thread starts");
        });
        shard
    }

    fn sleepers(&self) -> MutexGuard<'_, Slab<Sleeper>> {
        lock(&self.sleepers)
    }

    /// Wakes every sleeper whose deadline is at or before `now`.
    fn wake_due(&self, now: Instant) {
        let due: Vec<Waker> = self
            .sleepers()
            .iter_mut()
            .filter(|(_, sleeper)| !sleeper.woken && sleeper.deadline <= now)
            .map(|(_, sleeper)| {
                sleeper.woken = true;
                sleeper.waker.clone()
            })
            .collect();
        due.into_iter().for_each(Waker::wake);
    }
}

/// A lock whose holder never leaves its data half changed, so a panic
/// elsewhere while it was held does not matter.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The timer thread: every tick, wakes what is due in every live shard
/// and forgets the shards of threads that have ended.
fn tick_forever() {
    loop {
        std::thread::sleep(TICK);
        let shards: Vec<Arc<Shard>> = {
            let mut all = lock(&SHARDS);
            all.retain(|shard| shard.strong_count() > 0);
            all.iter().filter_map(Weak::upgrade).collect()
        };
        let now = Instant::now();
        for shard in shards {
            shard.wake_due(now);
        }
    }
}

impl CoarseSleep {
    pub(crate) fn until(deadline: Instant) -> Self {
        Self {
            shard: SHARD.with(Arc::clone),
            deadline,
            slot: None,
        }
    }
}

impl Future for CoarseSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut sleepers = this.shard.sleepers();
        match this.slot {
            Some(slot) => {
                let sleeper = &mut sleepers[slot];
                if sleeper.woken {
                    return Poll::Ready(());
                }
                if !sleeper.waker.will_wake(cx.waker()) {
                    sleeper.waker = cx.waker().clone();
                }
            }
            None => {
                this.slot = Some(sleepers.insert(Sleeper {
                    deadline: this.deadline,
                    waker: cx.waker().clone(),
                    woken: false,
                }));
            }
        }
        Poll::Pending
    }
}

impl hyper::rt::Sleep for CoarseSleep {}

impl Drop for CoarseSleep {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            self.shard.sleepers().remove(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live_sleepers() -> usize {
        SHARD.with(|shard| shard.sleepers().len())
    }

    #[tokio::test]
    async fn a_sleep_wakes_after_its_deadline_within_about_a_tick() {
        let deadline = Instant::now() + Duration::from_millis(300);
        // Bounded by tokio's own timer: a sleep never woken fails the
        // test instead of hanging it.
        tokio::time::timeout(Duration::from_secs(5), CoarseSleep::until(deadline))
            .await
            .expect("the sleep is woken");
        let woke = Instant::now();
        assert!(woke >= deadline);
        // A tick late at most, with room for a loaded machine.
        assert!(woke - deadline < TICK * 4, "{:?} late", woke - deadline);
        assert_eq!(live_sleepers(), 0, "its entry went with it");
    }

    #[tokio::test]
    async fn a_sleep_dropped_early_leaves_no_entry_and_wakes_no_other() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut early = Box::pin(CoarseSleep::until(Instant::now() + Duration::from_secs(60)));
        let mut soon = Box::pin(CoarseSleep::until(Instant::now() + Duration::from_millis(100)));
        assert!(early.as_mut().poll(&mut cx).is_pending());
        assert!(soon.as_mut().poll(&mut cx).is_pending());
        assert_eq!(live_sleepers(), 2);
        drop(early);
        assert_eq!(live_sleepers(), 1);
        tokio::time::sleep(TICK * 3).await;
        assert!(soon.as_mut().poll(&mut cx).is_ready());
        drop(soon);
        assert_eq!(live_sleepers(), 0);
    }

    #[test]
    fn a_sleep_made_on_one_thread_is_woken_and_dropped_on_another() {
        /// A waker that says it was woken.
        struct Told(std::sync::mpsc::SyncSender<()>);
        impl std::task::Wake for Told {
            fn wake(self: Arc<Self>) {
                let _ = self.0.try_send(());
            }
        }
        let mut sleep = std::thread::spawn(|| CoarseSleep::until(Instant::now() + Duration::from_millis(50)))
            .join()
            .unwrap();
        let (told, woken) = std::sync::mpsc::sync_channel(1);
        let waker = Waker::from(Arc::new(Told(told)));
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut sleep).poll(&mut cx).is_pending());
        woken
            .recv_timeout(Duration::from_secs(5))
            .expect("the timer thread wakes the sleep's waker");
        assert!(Pin::new(&mut sleep).poll(&mut cx).is_ready());
        // Dropped here, out of the ended thread's shard.
        drop(sleep);
    }
}
