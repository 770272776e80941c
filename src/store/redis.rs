//! The Redis token store (cargo feature `redis`): every gateway pointed at
//! the same Redis shares sign-ins, revocations, codes and refresh-token
//! families.
//!
//! Keys are `{prefix}t:{sha256 of the token}`, holding the session as JSON
//! with the session's expiry as the key's Redis expiry; per-user and
//! per-family sets index them for revocation. The single-use rules of codes
//! and refresh tokens rest on `SET … GET`, atomic across replicas.
//!
//! Each replica keeps a local cache in front of Redis so the hot path stays
//! in memory. A revocation or logout anywhere is published on
//! `{prefix}invalidate` and drops the entry from every replica's cache at
//! once; a replica whose subscription is down clears its cache when it
//! comes back. While Redis is unreachable, a cached session keeps working
//! for at most `cache_secs` after it was fetched; anything else is a store
//! error (the gateway answers `503`), never a false "authenticated".

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;

use super::token::DigestHash;
use super::{unix_now, FailureCounters, Family, Session, StoreError, StoreFuture, TokenKey, TokenStore};

/// Sessions in Redis, with a local cache.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    manager: ConnectionManager,
    prefix: String,
    cache: DashMap<TokenKey, Cached, DigestHash>,
    cache_for: Duration,
    subscribed: AtomicBool,
    last_error: Mutex<Option<String>>,
}

struct Cached {
    session: Session,
    fetched: Instant,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

fn store_error(err: redis::RedisError) -> StoreError {
    StoreError::new(format!("redis: {err}"))
}

impl RedisStore {
    /// A store on the Redis at `url` (`redis://host:port/db`), with keys
    /// under `prefix`, trusting a cached session for at most `cache_for`.
    /// Connects lazily and reconnects by itself: a Redis that is down at
    /// start makes the store unready, not the gateway fail. Call inside a
    /// Tokio runtime.
    pub fn new(url: &str, prefix: &str, cache_for: Duration) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(store_error)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(store_error)?;
        let inner = Arc::new(Inner {
            manager,
            prefix: prefix.to_owned(),
            cache: DashMap::with_hasher(DigestHash),
            cache_for,
            subscribed: AtomicBool::new(false),
            last_error: Mutex::new(None),
        });
        tokio::spawn(listen_for_invalidations(client, Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    /// Whether this replica hears other replicas' revocations right now.
    pub fn is_subscribed(&self) -> bool {
        self.inner.subscribed.load(Ordering::Acquire)
    }
}

impl Inner {
    fn token_key(&self, key: &TokenKey) -> String {
        format!("{}t:{}", self.prefix, key.to_hex())
    }

    fn user_key(&self, username: &str) -> String {
        format!("{}u:{username}", self.prefix)
    }

    fn family_key(&self, family: Family) -> String {
        format!("{}f:{}", self.prefix, family.0)
    }

    fn channel(&self) -> String {
        format!("{}invalidate", self.prefix)
    }

    fn noted<T>(&self, result: redis::RedisResult<T>) -> Result<T, StoreError> {
        result.map_err(|err| {
            *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(err.to_string());
            store_error(err)
        })
    }

    fn cached(&self, key: &TokenKey, now: u64) -> Option<Session> {
        let entry = self.cache.get(key)?;
        let fresh = entry.fetched.elapsed() < self.cache_for && !entry.session.is_expired_at(now);
        fresh.then(|| entry.session.clone())
    }

    fn remember(&self, key: TokenKey, session: &Session) {
        if self.subscribed.load(Ordering::Acquire) {
            self.cache.insert(
                key,
                Cached {
                    session: session.clone(),
                    fetched: Instant::now(),
                },
            );
        }
    }

    async fn fetch(&self, key: &TokenKey) -> Result<Option<Session>, StoreError> {
        let mut redis = self.manager.clone();
        let name = self.token_key(key);
        let value: Option<String> = match redis.get(&name).await {
            // The first command after Redis comes back finds the old
            // connection dead and makes the manager reconnect: try once more.
            Err(err) if err.is_io_error() || err.is_connection_dropped() || err.is_connection_refusal() => {
                self.noted(redis.get(&name).await)?
            }
            other => self.noted(other)?,
        };
        let session = value.and_then(|json| serde_json::from_str::<Session>(&json).ok());
        let now = unix_now();
        Ok(session.filter(|s| !s.is_expired_at(now)))
    }

    /// Stores `session` under `key`, indexed by its user and family.
    /// Writes `session` under `key` only if the key is still there (XX: a
    /// session revoked meanwhile is not brought back), keeping its expiry;
    /// answers whether it was.
    async fn rewrite(&self, key: TokenKey, session: &Session) -> Result<bool, StoreError> {
        let json = serde_json::to_string(session).map_err(|e| StoreError::new(e.to_string()))?;
        let mut redis = self.manager.clone();
        let written: Option<String> = self.noted(
            redis::cmd("SET")
                .arg(self.token_key(&key))
                .arg(json)
                .arg("KEEPTTL")
                .arg("XX")
                .query_async(&mut redis)
                .await,
        )?;
        if written.is_some() {
            self.remember(key, session);
            // Other replicas drop their copy (a step-up must count there
            // at once, not after their cache time).
            let _: Option<i64> = self.noted(
                redis::cmd("PUBLISH")
                    .arg(self.channel())
                    .arg(key.to_hex())
                    .query_async(&mut redis)
                    .await,
            )?;
        }
        Ok(written.is_some())
    }

    async fn write(&self, key: &TokenKey, session: &Session) -> Result<(), StoreError> {
        let json = serde_json::to_string(session).map_err(|e| StoreError::new(e.to_string()))?;
        let expires_ms = session.expires_at().saturating_mul(1000);
        let hex = key.to_hex();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(self.token_key(key))
            .arg(json)
            .arg("PXAT")
            .arg(expires_ms)
            .ignore();
        let user = self.user_key(session.username());
        pipe.sadd(&user, &hex)
            .ignore()
            .cmd("PEXPIREAT")
            .arg(&user)
            .arg(expires_ms)
            .arg("GT")
            .ignore();
        pipe.cmd("PEXPIREAT")
            .arg(&user)
            .arg(expires_ms)
            .arg("NX")
            .ignore();
        if let Some(family) = session.family() {
            let family = self.family_key(family);
            pipe.sadd(&family, &hex)
                .ignore()
                .cmd("PEXPIREAT")
                .arg(&family)
                .arg(expires_ms)
                .arg("GT")
                .ignore();
            pipe.cmd("PEXPIREAT")
                .arg(&family)
                .arg(expires_ms)
                .arg("NX")
                .ignore();
        }
        let mut redis = self.manager.clone();
        self.noted(pipe.query_async::<()>(&mut redis).await)
    }

    /// Deletes the tokens with these hex keys and tells every replica.
    async fn delete(&self, hexes: &[String]) -> Result<usize, StoreError> {
        if hexes.is_empty() {
            return Ok(0);
        }
        let mut redis = self.manager.clone();
        let keys: Vec<String> = hexes.iter().map(|h| format!("{}t:{h}", self.prefix)).collect();
        let deleted: usize = self.noted(redis.del(&keys).await)?;
        let mut pipe = redis::pipe();
        for hex in hexes {
            pipe.publish(self.channel(), hex).ignore();
            if let Some(key) = TokenKey::from_hex(hex) {
                self.cache.remove(&key);
            }
        }
        self.noted(pipe.query_async::<()>(&mut redis).await)?;
        Ok(deleted)
    }

    async fn delete_indexed(&self, index: String) -> Result<usize, StoreError> {
        let mut redis = self.manager.clone();
        let hexes: Vec<String> = self.noted(redis.smembers(&index).await)?;
        let deleted = self.delete(&hexes).await?;
        let _: () = self.noted(redis.del(&index).await)?;
        Ok(deleted)
    }
}

/// Keeps a subscription to the invalidation channel, reconnecting as
/// needed; the cache is cleared whenever it might have missed a message.
async fn listen_for_invalidations(client: redis::Client, store: Weak<Inner>) {
    loop {
        let Some(channel) = store.upgrade().map(|s| s.channel()) else {
            return;
        };
        if let Ok(mut pubsub) = client.get_async_pubsub().await {
            if pubsub.subscribe(&channel).await.is_ok() {
                if let Some(inner) = store.upgrade() {
                    inner.cache.clear();
                    inner.subscribed.store(true, Ordering::Release);
                    tracing::info!("redis store: listening for revocations");
                }
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    let Some(inner) = store.upgrade() else { return };
                    if let Some(key) = message
                        .get_payload::<String>()
                        .ok()
                        .and_then(|h| TokenKey::from_hex(&h))
                    {
                        inner.cache.remove(&key);
                    }
                }
            }
        }
        let Some(inner) = store.upgrade() else { return };
        if inner.subscribed.swap(false, Ordering::AcqRel) {
            tracing::warn!(
                "redis store: lost the revocation channel; cached sessions last at most their bound"
            );
        }
        drop(inner);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

impl TokenStore for RedisStore {
    fn get(&self, key: &TokenKey) -> StoreFuture<Option<Session>> {
        if let Some(session) = self.inner.cached(key, unix_now()) {
            return StoreFuture::ready(Ok(Some(session)));
        }
        let (inner, key) = (self.inner.clone(), *key);
        StoreFuture::pending(async move {
            let found = inner.fetch(&key).await?;
            if let Some(session) = &found {
                inner.remember(key, session);
            }
            Ok(found)
        })
    }

    fn insert(&self, key: TokenKey, session: Session) -> StoreFuture<()> {
        let inner = self.inner.clone();
        StoreFuture::pending(async move {
            inner.write(&key, &session).await?;
            inner.remember(key, &session);
            Ok(())
        })
    }

    fn replace(&self, key: TokenKey, session: Session) -> StoreFuture<Option<Session>> {
        let inner = self.inner.clone();
        StoreFuture::pending(async move {
            let json = serde_json::to_string(&session).map_err(|e| StoreError::new(e.to_string()))?;
            let mut redis = inner.manager.clone();
            let previous: Option<String> = inner.noted(
                redis::cmd("SET")
                    .arg(inner.token_key(&key))
                    .arg(json)
                    .arg("PXAT")
                    .arg(session.expires_at().saturating_mul(1000))
                    .arg("GET")
                    .query_async(&mut redis)
                    .await,
            )?;
            if let Some(family) = session.family() {
                let family = inner.family_key(family);
                let _: () = inner.noted(redis.sadd(&family, key.to_hex()).await)?;
            }
            let _: () = inner.noted(redis.publish(inner.channel(), key.to_hex()).await)?;
            inner.cache.remove(&key);
            let now = unix_now();
            Ok(previous
                .and_then(|json| serde_json::from_str::<Session>(&json).ok())
                .filter(|s| !s.is_expired_at(now)))
        })
    }

    fn touch(&self, key: &TokenKey, now: u64) -> StoreFuture<()> {
        let (inner, key) = (self.inner.clone(), *key);
        StoreFuture::pending(async move {
            let Some(mut session) = inner.fetch(&key).await? else {
                return Ok(());
            };
            session.touch(now);
            inner.rewrite(key, &session).await.map(|_| ())
        })
    }

    fn sessions_of(&self, username: &str) -> StoreFuture<Vec<(TokenKey, Session)>> {
        let inner = self.inner.clone();
        let index = inner.user_key(username);
        StoreFuture::pending(async move {
            let mut redis = inner.manager.clone();
            let members: Vec<String> =
                inner.noted(redis::cmd("SMEMBERS").arg(&index).query_async(&mut redis).await)?;
            let mut found = Vec::new();
            for hex in members {
                let Some(key) = TokenKey::from_hex(&hex) else {
                    continue;
                };
                if let Some(session) = inner.fetch(&key).await?.filter(Session::is_access) {
                    found.push((key, session));
                }
            }
            Ok(found)
        })
    }

    fn live_sessions(&self, limit: usize) -> StoreFuture<Vec<(TokenKey, Session)>> {
        let inner = self.inner.clone();
        StoreFuture::pending(async move {
            let mut redis = inner.manager.clone();
            let pattern = format!("{}t:*", glob_escaped(&inner.prefix));
            let mut cursor = 0u64;
            let mut found = Vec::new();
            let now = unix_now();
            // SCAN walks the keyspace a batch at a time, never blocking
            // Redis as KEYS would; each batch is read with one MGET.
            loop {
                let (next, names): (u64, Vec<String>) = inner.noted(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut redis)
                        .await,
                )?;
                if !names.is_empty() {
                    let values: Vec<Option<String>> =
                        inner.noted(redis::cmd("MGET").arg(&names).query_async(&mut redis).await)?;
                    let prefix_len = inner.prefix.len() + 2;
                    for (name, value) in names.iter().zip(values) {
                        let key = name.get(prefix_len..).and_then(TokenKey::from_hex);
                        let session = value.and_then(|json| serde_json::from_str::<Session>(&json).ok());
                        if let (Some(key), Some(session)) = (key, session) {
                            if session.is_access() && !session.is_expired_at(now) && found.len() < limit {
                                found.push((key, session));
                            }
                        }
                    }
                }
                cursor = next;
                if cursor == 0 || found.len() >= limit {
                    return Ok(found);
                }
            }
        })
    }

    fn update(&self, key: TokenKey, session: Session) -> StoreFuture<bool> {
        let inner = self.inner.clone();
        StoreFuture::pending(async move { inner.rewrite(key, &session).await })
    }

    fn remove(&self, key: &TokenKey) -> StoreFuture<bool> {
        let (inner, key) = (self.inner.clone(), *key);
        StoreFuture::pending(async move { Ok(inner.delete(&[key.to_hex()]).await? > 0) })
    }

    fn remove_user(&self, username: &str) -> StoreFuture<usize> {
        let inner = self.inner.clone();
        let index = inner.user_key(username);
        StoreFuture::pending(async move { inner.delete_indexed(index).await })
    }

    fn remove_family(&self, family: Family) -> StoreFuture<usize> {
        let inner = self.inner.clone();
        let index = inner.family_key(family);
        StoreFuture::pending(async move { inner.delete_indexed(index).await })
    }

    fn failure_counters(&self) -> Option<Arc<dyn FailureCounters>> {
        Some(Arc::new(self.clone()))
    }

    fn ready(&self) -> StoreFuture<()> {
        let inner = self.inner.clone();
        StoreFuture::pending(async move {
            let mut redis = inner.manager.clone();
            let _: String = inner.noted(redis::cmd("PING").query_async(&mut redis).await)?;
            if !inner.subscribed.load(Ordering::Acquire) {
                return Err(StoreError::new(
                    "redis: not yet subscribed to the revocation channel",
                ));
            }
            Ok(())
        })
    }
}

/// `text` matched literally by a Redis glob pattern.
fn glob_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl FailureCounters for RedisStore {
    fn add(&self, subject: &str, window_start: u64, keep_secs: u64) -> StoreFuture<()> {
        let inner = self.inner.clone();
        let key = format!("{}th:{subject}:{window_start}", inner.prefix);
        StoreFuture::pending(async move {
            let mut redis = inner.manager.clone();
            let mut pipe = redis::pipe();
            pipe.atomic()
                .incr(&key, 1)
                .ignore()
                .expire(&key, keep_secs as i64)
                .ignore();
            inner.noted(pipe.query_async::<()>(&mut redis).await)
        })
    }

    fn get(&self, subject: &str, window_starts: [u64; 2]) -> StoreFuture<[u32; 2]> {
        let inner = self.inner.clone();
        let keys: Vec<String> = window_starts
            .iter()
            .map(|w| format!("{}th:{subject}:{w}", inner.prefix))
            .collect();
        StoreFuture::pending(async move {
            let mut redis = inner.manager.clone();
            let counts: Vec<Option<u32>> = inner.noted(redis.mget(&keys).await)?;
            Ok([
                counts.first().copied().flatten().unwrap_or(0),
                counts.get(1).copied().flatten().unwrap_or(0),
            ])
        })
    }
}
