//! Brute-force throttling: failures counted per key (a username, a client,
//! an address) in a sliding window, bounded in memory whatever the number
//! of keys.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use dashmap::DashMap;

use crate::config::ThrottleConfig;
use crate::store::{unix_now, FailureCounters};

/// What failures are counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Subject {
    /// A username at sign-in or the password grant.
    User(String),
    /// A client id at client authentication.
    Client(String),
    /// The address the attempt came from.
    Address(IpAddr),
}

/// Two fixed windows, weighted into a sliding one (the approach nginx's
/// and Cloudflare's rate limiters use): 16 bytes a key.
#[derive(Clone, Copy, Debug)]
struct Counter {
    window_start: u64,
    previous: u32,
    current: u32,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::User(name) => write!(f, "u:{name}"),
            Subject::Client(id) => write!(f, "c:{id}"),
            Subject::Address(ip) => write!(f, "a:{ip}"),
        }
    }
}

impl Counter {
    /// Rolls the windows forward to `now`.
    fn at(mut self, now: u64, window: u64) -> Self {
        let elapsed_windows = now.saturating_sub(self.window_start) / window;
        if elapsed_windows >= 1 {
            self.previous = if elapsed_windows == 1 { self.current } else { 0 };
            self.current = 0;
            self.window_start += elapsed_windows * window;
        }
        self
    }

    /// The sliding-window estimate of failures in the last `window`.
    fn estimate(&self, now: u64, window: u64) -> f64 {
        let into = now.saturating_sub(self.window_start) as f64 / window as f64;
        f64::from(self.previous) * (1.0 - into).max(0.0) + f64::from(self.current)
    }

    /// Seconds until the estimate drops below `limit`, with no new failures.
    fn retry_after(&self, now: u64, window: u64, limit: u32) -> u64 {
        let w = window as f64;
        let elapsed = now.saturating_sub(self.window_start) as f64;
        let (prev, cur, limit) = (
            f64::from(self.previous),
            f64::from(self.current),
            f64::from(limit),
        );
        let wait = if cur < limit && prev > 0.0 {
            // Before the window rolls: prev * (1 - (elapsed + t) / w) + cur < limit.
            (w * (1.0 - (limit - cur) / prev) - elapsed).max(0.0)
        } else {
            // After it rolls, only `cur` decays: cur * (1 - t / w) < limit.
            (w - elapsed) + (w * (1.0 - limit / cur.max(1.0))).max(0.0)
        };
        wait.ceil() as u64 + 1
    }
}

/// Failure counters for every subject: in this process (at most
/// `max_entries` of them), or shared by every gateway on the same store.
#[derive(Default)]
pub(crate) struct Throttle {
    counters: DashMap<Subject, Counter>,
    shared: Option<Arc<dyn FailureCounters>>,
}

impl fmt::Debug for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

impl Throttle {
    /// Counters shared through `shared` (a networked store), or local ones.
    pub(crate) fn new(shared: Option<Arc<dyn FailureCounters>>) -> Self {
        Self {
            counters: DashMap::new(),
            shared,
        }
    }

    /// `Err(seconds to wait)` if any of `subjects` is over its limit. A
    /// shared store that cannot answer throttles nothing (it cannot keep a
    /// sign-in either).
    pub(crate) async fn check(&self, config: &ThrottleConfig, subjects: &[Subject]) -> Result<(), u64> {
        let now = unix_now();
        let window = config.window_secs;
        let current_start = now - now % window;
        let mut wait = 0;
        for subject in subjects {
            let counter = match &self.shared {
                Some(shared) => match shared
                    .get(&subject.to_string(), [current_start - window, current_start])
                    .await
                {
                    Ok([previous, current]) => Counter {
                        window_start: current_start,
                        previous,
                        current,
                    },
                    Err(err) => {
                        tracing::warn!(error = %err, "throttle counters unavailable");
                        continue;
                    }
                },
                None => match self.counters.get(subject).map(|c| c.at(now, window)) {
                    Some(counter) => counter,
                    None => continue,
                },
            };
            let limit = limit_for(config, subject);
            if counter.estimate(now, config.window_secs) >= f64::from(limit) {
                wait = wait.max(counter.retry_after(now, config.window_secs, limit));
            }
        }
        if wait == 0 {
            Ok(())
        } else {
            Err(wait)
        }
    }

    /// Counts one failure against each of `subjects`.
    pub(crate) async fn record_failure(&self, config: &ThrottleConfig, subjects: &[Subject]) {
        let now = unix_now();
        if let Some(shared) = &self.shared {
            let window_start = now - now % config.window_secs;
            for subject in subjects {
                if let Err(err) = shared
                    .add(&subject.to_string(), window_start, 2 * config.window_secs)
                    .await
                {
                    tracing::warn!(error = %err, "throttle counters unavailable");
                }
            }
            return;
        }
        for subject in subjects {
            if !self.counters.contains_key(subject) && self.counters.len() >= config.max_entries {
                self.make_room(config, now);
            }
            let mut entry = self.counters.entry(subject.clone()).or_insert(Counter {
                window_start: now - now % config.window_secs,
                previous: 0,
                current: 0,
            });
            let rolled = entry.at(now, config.window_secs);
            *entry = Counter {
                current: rolled.current.saturating_add(1),
                ..rolled
            };
        }
    }

    /// Drops counters that no longer count; if that frees nothing, drops
    /// an arbitrary tenth so memory stays bounded (an attacker with more
    /// addresses than `max_entries` can only push out old counters).
    fn make_room(&self, config: &ThrottleConfig, now: u64) {
        let stale_before = now.saturating_sub(2 * config.window_secs);
        self.counters.retain(|_, c| c.window_start >= stale_before);
        if self.counters.len() >= config.max_entries {
            let evict: Vec<Subject> = self
                .counters
                .iter()
                .take(config.max_entries / 10 + 1)
                .map(|e| e.key().clone())
                .collect();
            for subject in evict {
                self.counters.remove(&subject);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.counters.len()
    }
}

fn limit_for(config: &ThrottleConfig, subject: &Subject) -> u32 {
    match subject {
        Subject::Address(_) => config.max_failures_per_address,
        Subject::User(_) | Subject::Client(_) => config.max_failures_per_user,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ThrottleConfig {
        ThrottleConfig {
            max_failures_per_user: 3,
            max_failures_per_address: 5,
            window_secs: 60,
            max_entries: 100,
        }
    }

    #[tokio::test]
    async fn a_subject_is_throttled_at_its_limit_and_others_are_not() {
        let throttle = Throttle::default();
        let alice = [Subject::User("alice".into())];
        for _ in 0..3 {
            assert!(throttle.check(&config(), &alice).await.is_ok());
            throttle.record_failure(&config(), &alice).await;
        }
        let wait = throttle.check(&config(), &alice).await.unwrap_err();
        assert!((1..=121).contains(&wait), "{wait}");
        assert!(throttle
            .check(&config(), &[Subject::User("bob".into())])
            .await
            .is_ok());
    }

    #[test]
    fn the_window_slides() {
        let counter = Counter {
            window_start: 0,
            previous: 10,
            current: 0,
        };
        assert_eq!(counter.estimate(30, 60), 5.0);
        let later = counter.at(125, 60);
        assert_eq!((later.previous, later.current, later.window_start), (0, 0, 120));
        let wait = Counter {
            window_start: 0,
            previous: 0,
            current: 4,
        }
        .retry_after(10, 60, 3);
        assert!(wait > 50 && wait <= 66, "{wait}");
    }

    #[tokio::test]
    async fn memory_stays_bounded_whatever_the_number_of_addresses() {
        let throttle = Throttle::default();
        for i in 0..10_000u32 {
            let addr = IpAddr::from(i.to_be_bytes());
            throttle
                .record_failure(&config(), &[Subject::Address(addr)])
                .await;
        }
        assert!(throttle.len() <= 100, "{}", throttle.len());
    }
}
