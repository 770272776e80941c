//! The in-memory store: a `DashMap` from token hash to session.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;

use super::token::DigestHash;
use super::{unix_now, Family, Session, StoreFuture, TokenKey, TokenStore};

/// How often expired sessions are swept out of memory.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Sessions in a concurrent map, keyed on the SHA-256 of their token.
///
/// Expiry is checked on every lookup; a background task sweeps expired
/// entries so memory does not grow with dead tokens. The task starts with
/// the first insert made inside a Tokio runtime and ends when the store is
/// dropped.
#[derive(Clone, Debug)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

/// Many small shards: a shard that grows, or is swept, is locked for
/// microseconds, not the milliseconds a few large ones take at millions of
/// tokens (which shows as tail latency).
const SHARDS: usize = 256;

#[derive(Debug)]
struct Inner {
    sessions: DashMap<TokenKey, Session, DigestHash>,
    sweeper_started: AtomicBool,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        let inner = Inner {
            sessions: DashMap::with_capacity_and_hasher_and_shard_amount(0, DigestHash, SHARDS),
            sweeper_started: AtomicBool::new(false),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// How many sessions are held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.inner.sessions.len()
    }

    /// Whether the store holds no session at all.
    pub fn is_empty(&self) -> bool {
        self.inner.sessions.is_empty()
    }

    /// Drops every expired session now; answers how many went.
    pub fn sweep_expired(&self) -> usize {
        sweep(&self.inner)
    }

    /// Every live session, for a snapshot.
    pub(crate) fn live_entries(&self) -> Vec<(TokenKey, Session)> {
        let now = unix_now();
        self.inner
            .sessions
            .iter()
            .filter(|e| !e.value().is_expired_at(now))
            .map(|e| (*e.key(), e.value().clone()))
            .collect()
    }

    /// Puts back a session from a snapshot, unless it has expired since.
    pub(crate) fn restore(&self, key: TokenKey, session: Session) -> bool {
        if session.is_expired_at(unix_now()) {
            return false;
        }
        self.inner.sessions.insert(key, session);
        true
    }

    fn ensure_sweeper(&self) {
        if self.inner.sweeper_started.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.sweeper_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        runtime.spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                every.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                // Off the async threads, at the lowest priority: a sweep of
                // millions of sessions must not stall the requests served.
                let _ = crate::runtime::background::run(move || sweep(&inner)).await;
            }
        });
    }
}

/// At most this many expired keys are collected before they are removed.
const SWEEP_BATCH: usize = 65_536;

/// Drops the expired sessions. Looking takes only read locks, one shard at
/// a time, so lookups never wait on a sweep; each removal takes its
/// shard's write lock for one entry.
fn sweep(inner: &Inner) -> usize {
    let now = unix_now();
    let mut removed = 0;
    loop {
        let expired: Vec<TokenKey> = inner
            .sessions
            .iter()
            .filter(|entry| entry.value().is_expired_at(now))
            .map(|entry| *entry.key())
            .take(SWEEP_BATCH)
            .collect();
        for key in &expired {
            if inner
                .sessions
                .remove_if(key, |_, session| session.is_expired_at(now))
                .is_some()
            {
                removed += 1;
            }
        }
        if expired.len() < SWEEP_BATCH {
            return removed;
        }
    }
}

impl TokenStore for MemoryStore {
    fn get(&self, key: &TokenKey) -> StoreFuture<Option<Session>> {
        let now = unix_now();
        let found = match self.inner.sessions.get(key) {
            Some(entry) if !entry.is_expired_at(now) => Some(entry.value().clone()),
            Some(entry) => {
                drop(entry);
                self.inner
                    .sessions
                    .remove_if(key, |_, session| session.is_expired_at(now));
                None
            }
            None => None,
        };
        StoreFuture::ready(Ok(found))
    }

    fn insert(&self, key: TokenKey, session: Session) -> StoreFuture<()> {
        self.ensure_sweeper();
        self.inner.sessions.insert(key, session);
        StoreFuture::ready(Ok(()))
    }

    fn replace(&self, key: TokenKey, session: Session) -> StoreFuture<Option<Session>> {
        self.ensure_sweeper();
        let now = unix_now();
        let previous = self.inner.sessions.insert(key, session);
        StoreFuture::ready(Ok(previous.filter(|s| !s.is_expired_at(now))))
    }

    fn remove_family(&self, family: Family) -> StoreFuture<usize> {
        let before = self.inner.sessions.len();
        self.inner
            .sessions
            .retain(|_, session| session.family() != Some(family));
        StoreFuture::ready(Ok(before.saturating_sub(self.inner.sessions.len())))
    }

    fn live_count(&self) -> Option<usize> {
        Some(self.len())
    }

    fn touch(&self, key: &TokenKey, now: u64) -> StoreFuture<()> {
        if let Some(mut session) = self.inner.sessions.get_mut(key) {
            session.touch(now);
        }
        StoreFuture::ready(Ok(()))
    }

    fn sessions_of(&self, username: &str) -> StoreFuture<Vec<(TokenKey, Session)>> {
        let now = unix_now();
        let found = self
            .inner
            .sessions
            .iter()
            .filter(|entry| entry.username() == username && entry.is_access() && !entry.is_expired_at(now))
            .map(|entry| (*entry.key(), entry.value().clone()))
            .collect();
        StoreFuture::ready(Ok(found))
    }

    fn live_sessions(&self, limit: usize) -> StoreFuture<Vec<(TokenKey, Session)>> {
        let now = unix_now();
        let found = self
            .inner
            .sessions
            .iter()
            .filter(|entry| entry.is_access() && !entry.is_expired_at(now))
            .take(limit)
            .map(|entry| (*entry.key(), entry.value().clone()))
            .collect();
        StoreFuture::ready(Ok(found))
    }

    fn update(&self, key: TokenKey, session: Session) -> StoreFuture<bool> {
        let updated = match self.inner.sessions.get_mut(&key) {
            Some(mut found) => {
                *found = session;
                true
            }
            None => false,
        };
        StoreFuture::ready(Ok(updated))
    }

    fn remove(&self, key: &TokenKey) -> StoreFuture<bool> {
        StoreFuture::ready(Ok(self.inner.sessions.remove(key).is_some()))
    }

    fn remove_user(&self, username: &str) -> StoreFuture<usize> {
        let before = self.inner.sessions.len();
        self.inner
            .sessions
            .retain(|_, session| session.username() != username);
        StoreFuture::ready(Ok(before.saturating_sub(self.inner.sessions.len())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Token;

    #[test]
    fn an_update_writes_only_where_a_session_is_still_there() {
        let store = MemoryStore::new();
        let token = Token::generate();
        let session = Session::new("alice", None, 60);
        let updated = store
            .update(token.key(), session.clone())
            .into_ready()
            .ok()
            .unwrap()
            .unwrap();
        assert!(!updated, "nothing to update");
        assert!(
            store
                .get(&token.key())
                .into_ready()
                .ok()
                .unwrap()
                .unwrap()
                .is_none(),
            "and nothing brought back"
        );
        store
            .insert(token.key(), session.clone())
            .into_ready()
            .ok()
            .unwrap()
            .unwrap();
        let renamed = Session::new("alice", Some("a@example.com"), 60);
        assert!(store
            .update(token.key(), renamed)
            .into_ready()
            .ok()
            .unwrap()
            .unwrap());
        let found = store
            .get(&token.key())
            .into_ready()
            .ok()
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(found.email(), Some("a@example.com"));
    }

    impl MemoryStore {
        fn restore_unchecked(&self, key: TokenKey, session: Session) {
            self.inner.sessions.insert(key, session);
        }
    }

    fn expired(username: &str) -> Session {
        let mut session = Session::new(username, None, 0);
        session.expires_at = session.issued_at;
        session
    }

    #[tokio::test]
    async fn expired_sessions_are_never_returned_and_are_swept() {
        let store = MemoryStore::new();
        let live = Token::generate();
        let dead = Token::generate();
        store
            .insert(live.key(), Session::new("a", None, 60))
            .await
            .unwrap();
        store.insert(dead.key(), expired("b")).await.unwrap();
        assert!(store.get(&dead.key()).await.unwrap().is_none());
        store.insert(Token::generate().key(), expired("c")).await.unwrap();
        assert_eq!(store.len(), 2);
        assert_eq!(store.sweep_expired(), 1);
        assert_eq!(store.len(), 1);
        assert_eq!(store.get(&live.key()).await.unwrap().unwrap().username(), "a");
    }

    #[test]
    fn a_sweep_goes_on_past_one_batch_and_keeps_the_live() {
        let store = MemoryStore::new();
        let dead = SWEEP_BATCH + 1000;
        for _ in 0..dead {
            store.restore_unchecked(Token::generate().key(), expired("old"));
        }
        let live: Vec<Token> = (0..100).map(|_| Token::generate()).collect();
        for token in &live {
            store.restore_unchecked(token.key(), Session::new("new", None, 60));
        }
        assert_eq!(store.sweep_expired(), dead);
        assert_eq!(store.len(), live.len());
    }

    #[tokio::test]
    async fn replace_hands_the_previous_session_to_exactly_one_caller() {
        let store = MemoryStore::new();
        let key = Token::generate().key();
        store.insert(key, Session::new("a", None, 60)).await.unwrap();
        let family = Family::generate();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let retired = Session::new("a", None, 60).in_family(family);
                    store.replace(key, retired).await.unwrap()
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            if task.await.unwrap().is_some_and(|s| s.family().is_none()) {
                winners += 1;
            }
        }
        assert_eq!(winners, 1);
        assert_eq!(store.remove_family(family).await.unwrap(), 1);
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn remove_user_drops_only_that_users_sessions() {
        let store = MemoryStore::new();
        for name in ["a", "a", "b"] {
            store
                .insert(Token::generate().key(), Session::new(name, None, 60))
                .await
                .unwrap();
        }
        assert_eq!(store.remove_user("a").await.unwrap(), 2);
        assert_eq!(store.len(), 1);
    }
}
