//! Where sessions live: the [`TokenStore`] trait, its in-memory
//! implementation [`MemoryStore`], the Redis one (`RedisStore`, feature
//! `redis`), and what a store of your own works with.
//!
//! A store never sees a token. It is keyed on the token's SHA-256
//! ([`TokenKey`]), so a dump of the store replays nothing.
//!
//! ```
//! use authgate::store::{MemoryStore, Session, Token, TokenStore};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = MemoryStore::new();
//! let token = Token::generate();
//! let session = Session::new("alice", Some("alice@example.com"), 3600);
//! store.insert(token.key(), session).await.unwrap();
//! let found = store.get(&token.key()).await.unwrap().unwrap();
//! assert_eq!(found.username(), "alice");
//! # }
//! ```

mod identity;
mod memory;
mod methods;
pub(crate) mod persist;
#[cfg(feature = "redis")]
mod redis;
mod token;

#[cfg(feature = "redis")]
pub use self::redis::RedisStore;
pub use memory::MemoryStore;
pub use methods::AuthMethods;
pub use token::{Token, TokenKey};

pub use self::identity::Identity;
pub(crate) use self::identity::{user_uuid, IdentityParts, ProviderTokens};

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch, the clock every expiry is measured on.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What a token stands for: who signed in, for which client, until when.
///
/// Sessions hold no secret: the token that names them is only ever stored
/// as its hash. Besides access tokens, a store keeps refresh tokens and
/// authorization codes as sessions of their own kind; only an access
/// token's session ever authenticates a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Shared by every session of the user: no allocation per session.
    identity: Arc<Identity>,
    /// The OAuth client and scope, for tokens issued through one.
    grant: Option<Arc<ClientGrant>>,
    issued_at: u64,
    expires_at: u64,
    kind: Kind,
    family: Option<Family>,
    /// With an idle timeout, the session ends `idle_secs` after `last_seen`.
    #[serde(default)]
    idle_secs: Option<u32>,
    #[serde(default)]
    last_seen: u64,
    /// Where and with what it was signed in (for the person's and the
    /// admins' lists of sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    origin: Option<Arc<SessionOrigin>>,
}

/// Where a session was signed in from: the client's address and user
/// agent, as the sign-in request gave them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SessionOrigin {
    pub(crate) address: Option<std::net::IpAddr>,
    /// At most [`SessionOrigin::USER_AGENT_MAX`] bytes of it.
    pub(crate) user_agent: Option<Box<str>>,
    /// When the person signed in (seconds since the epoch): OpenID
    /// Connect's `auth_time`, the same for every token of the sign-in.
    #[serde(default)]
    pub(crate) signed_in_at: u64,
    /// How: the factors given, at the sign-in and any step-up since.
    #[serde(default, skip_serializing_if = "AuthMethods::is_empty")]
    pub(crate) methods: AuthMethods,
}

impl SessionOrigin {
    /// How much of a user agent is kept.
    pub(crate) const USER_AGENT_MAX: usize = 256;

    /// Signed in now with `methods`.
    pub(crate) fn new(
        address: Option<std::net::IpAddr>,
        user_agent: Option<&str>,
        methods: AuthMethods,
    ) -> Arc<Self> {
        Self::signed_in(address, user_agent, unix_now(), methods)
    }

    /// Signed in at `signed_in_at` (seconds since the epoch) with
    /// `methods`.
    pub(crate) fn signed_in(
        address: Option<std::net::IpAddr>,
        user_agent: Option<&str>,
        signed_in_at: u64,
        methods: AuthMethods,
    ) -> Arc<Self> {
        let user_agent = user_agent.map(|ua| {
            let mut end = ua.len().min(Self::USER_AGENT_MAX);
            while !ua.is_char_boundary(end) {
                end -= 1;
            }
            ua[..end].into()
        });
        Arc::new(Self {
            address,
            user_agent,
            signed_in_at,
            methods,
        })
    }

    /// The same sign-in with `more` methods given since (a step-up).
    pub(crate) fn stepped_up(&self, more: AuthMethods) -> Arc<Self> {
        Arc::new(Self {
            methods: self.methods.with(more),
            ..self.clone()
        })
    }
}

/// How stale a session's last use may be, without an idle timeout: its
/// use is recorded at most once a minute.
const LAST_SEEN_EVERY_SECS: u64 = 60;

/// The client a token was issued to, and the scope granted; shared by the
/// tokens of the same client and scope.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct ClientGrant {
    client_id: Option<Box<str>>,
    scope: Option<Box<str>>,
}

impl ClientGrant {
    pub(crate) fn new(client_id: &str, scope: Option<&str>) -> Arc<Self> {
        Arc::new(Self {
            client_id: Some(client_id.into()),
            scope: scope.filter(|s| !s.is_empty()).map(Into::into),
        })
    }
}

/// Makes sessions read back from a snapshot share one identity per user and
/// one grant per client and scope, as the sessions sign-ins make do;
/// otherwise each restored session would carry copies of its own.
#[derive(Default)]
pub(crate) struct SharedParts {
    identities: std::collections::HashSet<Arc<Identity>>,
    grants: std::collections::HashSet<Arc<ClientGrant>>,
}

impl SharedParts {
    /// `session`, its identity and grant replaced by equal ones already seen.
    pub(crate) fn share(&mut self, mut session: Session) -> Session {
        session.identity = shared(&mut self.identities, session.identity);
        session.grant = session.grant.map(|grant| shared(&mut self.grants, grant));
        session
    }
}

fn shared<T: std::hash::Hash + Eq>(seen: &mut std::collections::HashSet<Arc<T>>, item: Arc<T>) -> Arc<T> {
    match seen.get(&item) {
        Some(first) => first.clone(),
        None => {
            seen.insert(item.clone());
            item
        }
    }
}

/// What kind of token a session belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Kind {
    /// An access token: authenticates requests.
    Access,
    /// A live refresh token.
    Refresh,
    /// A refresh token already used once; presenting it again revokes its
    /// family.
    RetiredRefresh,
    /// An authorization code not yet redeemed.
    Code(Arc<CodeBinding>),
    /// An authorization code already redeemed; `reused` once presented
    /// again.
    SpentCode { reused: bool },
    /// A sign-in waiting for its second factor: not a session yet.
    Pending(Arc<PendingSignIn>),
    /// A WebAuthn ceremony between its two requests: what it is for, and
    /// its state.
    Ceremony(Arc<Ceremony>),
    /// Not a token: a record that something happened (an outside
    /// provider's `state` already used, whose session a provider's `sid`
    /// is), kept under a key derived from what it records.
    Marker,
}

/// A sign-in whose first factor was given, waiting for the second: the
/// sign-in request it answers once that is given (the sign-in page's
/// parameters, as a query). Who, when and with what are the session's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingSignIn {
    pub(crate) request: String,
    /// The factor was not enrolled yet: the page enrols one.
    #[serde(default)]
    pub(crate) enrol: bool,
    /// Enrolled and confirmed: the sign-in goes on once the person has
    /// seen their recovery codes.
    #[serde(default)]
    pub(crate) verified: bool,
}

/// A WebAuthn ceremony's state, kept for its second request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ceremony {
    /// `register`, `verify` or `passkey`: an answer is taken only by the
    /// step it was begun for.
    pub(crate) purpose: Box<str>,
    /// webauthn-rs's state, as JSON.
    pub(crate) state: Box<str>,
}

/// What an authorization code is bound to (RFC 6749 §4.1.3, RFC 7636).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CodeBinding {
    pub(crate) redirect_uri: String,
    /// Whether the authorization request named the redirect URI (then the
    /// token request must repeat it).
    pub(crate) redirect_uri_given: bool,
    pub(crate) code_challenge: Option<String>,
    pub(crate) code_challenge_method: Option<String>,
    /// OpenID Connect's `nonce`, for the ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) nonce: Option<String>,
}

/// The tokens that descend from one grant: an authorization code, the
/// refresh tokens rotated from it, and the access tokens they issued. A
/// replayed code or refresh token revokes the whole family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Family(pub(crate) std::num::NonZeroU64);

impl Family {
    pub(crate) fn generate() -> Self {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        Self(std::num::NonZeroU64::new(u64::from_le_bytes(bytes)).unwrap_or(std::num::NonZeroU64::MIN))
    }
}

impl Session {
    /// An access-token session for `username` that expires `ttl_secs` from
    /// now.
    pub fn new(username: &str, email: Option<&str>, ttl_secs: u64) -> Self {
        Self::for_identity(Identity::new(username, email), ttl_secs)
    }

    /// Like [`Session::new`], sharing `identity` with the user's other
    /// sessions (no allocation per session).
    pub fn for_identity(identity: Arc<Identity>, ttl_secs: u64) -> Self {
        let now = unix_now();
        Self {
            identity,
            grant: None,
            issued_at: now,
            expires_at: now.saturating_add(ttl_secs),
            kind: Kind::Access,
            family: None,
            idle_secs: None,
            last_seen: now,
            origin: None,
        }
    }

    /// The same session, signed in from `origin`.
    pub(crate) fn with_origin(mut self, origin: Arc<SessionOrigin>) -> Self {
        self.origin = Some(origin);
        self
    }

    /// Where it was signed in from, if known.
    pub(crate) fn origin(&self) -> Option<&SessionOrigin> {
        self.origin.as_deref()
    }

    /// How it was signed in (nothing known for a session kept without).
    pub fn methods(&self) -> AuthMethods {
        self.origin.as_ref().map_or(AuthMethods::NONE, |o| o.methods)
    }

    /// The sign-in it belongs to, as OpenID Connect names it (`sid`): its
    /// grant's family, the same for every token a code or refresh token
    /// issues.
    pub(crate) fn sid(&self) -> Option<String> {
        self.family.map(|family| format!("{:016x}", family.0.get()))
    }

    /// When it was last used (to the second with an idle timeout, else to
    /// the minute).
    pub(crate) fn last_seen(&self) -> u64 {
        self.last_seen
    }

    /// The same session, ending `idle_secs` after its last use (as well as
    /// at its absolute expiry); `now` counts as a use.
    pub(crate) fn with_idle(mut self, idle_secs: Option<u64>, now: u64) -> Self {
        self.idle_secs = idle_secs.map(|s| s.min(u64::from(u32::MAX)) as u32);
        self.last_seen = now;
        self
    }

    /// Whether a use at `now` should be recorded: with an idle timeout,
    /// when last seen in an earlier second; else when last seen a minute
    /// ago or more (for the lists of sessions, at one write a minute).
    pub(crate) fn needs_touch(&self, now: u64) -> bool {
        match self.idle_secs {
            Some(_) => self.last_seen < now,
            None => self.kind == Kind::Access && self.last_seen.saturating_add(LAST_SEEN_EVERY_SECS) <= now,
        }
    }

    /// Records a use at `now`.
    pub(crate) fn touch(&mut self, now: u64) {
        self.last_seen = self.last_seen.max(now);
    }

    /// The same session for another identity (the same person, with
    /// refreshed provider tokens).
    pub(crate) fn with_identity(mut self, identity: Arc<Identity>) -> Self {
        self.identity = identity;
        self
    }

    /// The same session, issued to an OAuth client.
    pub fn for_client(mut self, client_id: &str) -> Self {
        let scope = self.grant.as_ref().and_then(|g| g.scope.clone());
        self.grant = Some(Arc::new(ClientGrant {
            client_id: Some(client_id.into()),
            scope,
        }));
        self
    }

    /// The same session, issued to a client with a scope, sharing `grant`
    /// with the other tokens of that client and scope.
    pub(crate) fn with_grant(mut self, grant: Arc<ClientGrant>) -> Self {
        self.grant = Some(grant);
        self
    }

    fn set_scope(&mut self, scope: Option<Box<str>>) {
        let client_id = self.grant.as_ref().and_then(|g| g.client_id.clone());
        self.grant =
            (client_id.is_some() || scope.is_some()).then(|| Arc::new(ClientGrant { client_id, scope }));
    }

    /// The same session, with a granted scope.
    pub fn with_scope(mut self, scope: Option<&str>) -> Self {
        self.set_scope(scope.filter(|s| !s.is_empty()).map(Into::into));
        self
    }

    /// The same identity, client and scope as another kind of token with
    /// its own lifetime.
    pub(crate) fn derive(&self, kind: Kind, ttl_secs: u64) -> Self {
        let now = unix_now();
        Self {
            issued_at: now,
            expires_at: now.saturating_add(ttl_secs),
            kind,
            idle_secs: None,
            last_seen: now,
            ..self.clone()
        }
    }

    /// A marker for `identity`'s user, kept for `ttl_secs`: ended with
    /// the user's sessions.
    pub(crate) fn marker(identity: Arc<Identity>, ttl_secs: u64) -> Self {
        Self::for_identity(identity, ttl_secs).derive(Kind::Marker, ttl_secs)
    }

    /// A marker that is no one's, kept for `ttl_secs`: its owner's name
    /// starts with a NUL, which no user's can (so revoking a user's
    /// sessions never ends it).
    pub(crate) fn record(ttl_secs: u64) -> Self {
        static NOBODY: std::sync::OnceLock<Arc<Identity>> = std::sync::OnceLock::new();
        Self::marker(
            NOBODY.get_or_init(|| Identity::new("\0authgate", None)).clone(),
            ttl_secs,
        )
    }

    pub(crate) fn in_family(mut self, family: Family) -> Self {
        self.family = Some(family);
        self
    }

    pub(crate) fn with_scope_string(mut self, scope: Option<String>) -> Self {
        self.set_scope(scope.filter(|s| !s.is_empty()).map(Into::into));
        self
    }

    pub(crate) fn kind(&self) -> &Kind {
        &self.kind
    }

    pub(crate) fn family(&self) -> Option<Family> {
        self.family
    }

    /// Whether this is a token's session (not a marker, which records
    /// something under a key anyone can compute).
    pub(crate) fn is_token(&self) -> bool {
        self.kind != Kind::Marker
    }

    /// Whether this is an access token's session, the only kind that
    /// authenticates a request.
    pub fn is_access(&self) -> bool {
        self.kind == Kind::Access
    }

    /// The user the token was issued to (for a client-credentials token,
    /// the client).
    pub fn username(&self) -> &str {
        self.identity.username()
    }

    /// Who the session is for.
    pub fn identity(&self) -> &Arc<Identity> {
        &self.identity
    }

    /// The user's email address, where the directory knows it.
    pub fn email(&self) -> Option<&str> {
        self.identity.email()
    }

    /// The OAuth client the token was issued to; `None` for the gateway's
    /// own sign-in.
    pub fn client_id(&self) -> Option<&str> {
        self.grant.as_ref().and_then(|g| g.client_id.as_deref())
    }

    /// The granted scope, if any.
    pub fn scope(&self) -> Option<&str> {
        self.grant.as_ref().and_then(|g| g.scope.as_deref())
    }

    /// When the token was issued, in seconds since the Unix epoch.
    pub fn issued_at(&self) -> u64 {
        self.issued_at
    }

    /// When the token stops working, in seconds since the Unix epoch.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Whether the session has expired at `now` (seconds since the epoch):
    /// past its absolute expiry, or idle too long.
    pub fn is_expired_at(&self, now: u64) -> bool {
        now >= self.expires_at
            || self
                .idle_secs
                .is_some_and(|idle| now >= self.last_seen.saturating_add(u64::from(idle)))
    }

    /// Seconds left before expiry, counted from now.
    pub fn expires_in(&self) -> u64 {
        self.expires_at.saturating_sub(unix_now())
    }
}

/// A store that could not answer (a network store that is down, say).
///
/// The layer answers `503` for it: never a false "authenticated".
#[derive(Debug, Clone)]
pub struct StoreError {
    message: String,
}

impl StoreError {
    /// A store error that says what failed.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "token store unavailable: {}", self.message)
    }
}

impl std::error::Error for StoreError {}

/// The future a [`TokenStore`] method returns.
///
/// An in-memory store answers at once with [`StoreFuture::ready`] and costs
/// no allocation; a networked store boxes its future with
/// [`StoreFuture::pending`].
#[must_use = "a store operation does nothing until awaited"]
pub struct StoreFuture<T> {
    state: StoreFutureState<T>,
}

enum StoreFutureState<T> {
    Ready(Option<Result<T, StoreError>>),
    Pending(Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send>>),
}

impl<T> StoreFuture<T> {
    /// An answer that is already known.
    pub fn ready(result: Result<T, StoreError>) -> Self {
        Self {
            state: StoreFutureState::Ready(Some(result)),
        }
    }

    /// An answer still to come.
    pub fn pending(fut: impl Future<Output = Result<T, StoreError>> + Send + 'static) -> Self {
        Self {
            state: StoreFutureState::Pending(Box::pin(fut)),
        }
    }

    /// The answer, if it is already known, without polling; otherwise the
    /// future itself back.
    pub(crate) fn into_ready(self) -> Result<Result<T, StoreError>, Self> {
        match self.state {
            StoreFutureState::Ready(Some(result)) => Ok(result),
            state => Err(Self { state }),
        }
    }
}

impl<T> Unpin for StoreFuture<T> {}

impl<T> Future for StoreFuture<T> {
    type Output = Result<T, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            StoreFutureState::Ready(result) => {
                Poll::Ready(result.take().expect("StoreFuture polled after it completed"))
            }
            StoreFutureState::Pending(fut) => fut.as_mut().poll(cx),
        }
    }
}

/// Ends every live access token issued to the OAuth client `client_id`
/// (its own client-credentials tokens and its users'), for a client that
/// is deleted; answers how many. A user named like the client keeps the
/// sessions that are not the client's.
pub(crate) async fn remove_client_sessions(
    store: &dyn TokenStore,
    client_id: &str,
) -> Result<usize, StoreError> {
    let mut ended = 0;
    for (key, session) in store.live_sessions(usize::MAX).await? {
        if session.client_id() == Some(client_id) && store.remove(&key).await? {
            ended += 1;
        }
    }
    Ok(ended)
}

/// Where sessions are kept, keyed on the hash of their token.
///
/// Every method is asynchronous so that a networked store (Redis) fits
/// without changing the layer; [`MemoryStore`] answers at once. A store must
/// enforce expiry on every lookup: `get` never returns an expired session.
pub trait TokenStore: Send + Sync + 'static {
    /// The session for `key`, if it exists and has not expired.
    fn get(&self, key: &TokenKey) -> StoreFuture<Option<Session>>;

    /// Keeps `session` under `key` until it expires.
    fn insert(&self, key: TokenKey, session: Session) -> StoreFuture<()>;

    /// Atomically keeps `session` under `key` and answers what was there
    /// (unexpired) before: the single-use primitive behind authorization
    /// codes and rotating refresh tokens. Of two concurrent calls for the
    /// same key, exactly one sees the earlier session.
    fn replace(&self, key: TokenKey, session: Session) -> StoreFuture<Option<Session>>;

    /// Records that the session under `key` was used at `now` (seconds since
    /// the epoch), for its idle timeout.
    fn touch(&self, key: &TokenKey, now: u64) -> StoreFuture<()>;

    /// Keeps `session` under `key` only if a session is there still (one
    /// revoked meanwhile is never brought back); answers whether it was.
    /// The default writes nothing and answers `false` (a session whose
    /// provider tokens were refreshed keeps its old ones): a store that can
    /// write only where a key exists should.
    fn update(&self, key: TokenKey, session: Session) -> StoreFuture<bool> {
        let _ = (key, session);
        StoreFuture::ready(Ok(false))
    }

    /// Forgets `key`; answers whether it was there.
    fn remove(&self, key: &TokenKey) -> StoreFuture<bool>;

    /// Forgets every session of `username`; answers how many there were.
    fn remove_user(&self, username: &str) -> StoreFuture<usize>;

    /// The live access-token sessions of `username`, with their keys, for
    /// the account page; the default knows none (the page then offers
    /// signing out everywhere only).
    fn sessions_of(&self, username: &str) -> StoreFuture<Vec<(TokenKey, Session)>> {
        let _ = username;
        StoreFuture::ready(Ok(Vec::new()))
    }

    /// Up to `limit` live access-token sessions of anyone, with their
    /// keys, for the admins' list of sessions (in no order). The default
    /// says this store cannot list them.
    fn live_sessions(&self, limit: usize) -> StoreFuture<Vec<(TokenKey, Session)>> {
        let _ = limit;
        StoreFuture::ready(Err(StoreError::new("this token store cannot list its sessions")))
    }

    /// Forgets every session of a token family; answers how many there were.
    fn remove_family(&self, family: Family) -> StoreFuture<usize>;

    /// Whether the store can answer now (`/readyz`); an in-memory store
    /// always can.
    fn ready(&self) -> StoreFuture<()> {
        StoreFuture::ready(Ok(()))
    }

    /// Brute-force failure counters shared by every gateway on this store;
    /// `None` (the default) keeps them in each process.
    fn failure_counters(&self) -> Option<Arc<dyn FailureCounters>> {
        None
    }

    /// How many tokens the store holds, where that is cheap to know (the
    /// in-memory store); for `/metrics`.
    fn live_count(&self) -> Option<usize> {
        None
    }
}

/// Failure counters per subject (a username, a client, an address) and
/// fixed window, shared between gateways.
pub trait FailureCounters: Send + Sync + 'static {
    /// Adds one failure for `subject` in the window starting at
    /// `window_start` (seconds since the epoch), kept for `keep_secs`.
    fn add(&self, subject: &str, window_start: u64, keep_secs: u64) -> StoreFuture<()>;

    /// The failures of `subject` in the windows starting at `window_starts`.
    fn get(&self, subject: &str, window_starts: [u64; 2]) -> StoreFuture<[u32; 2]>;
}

impl<T: TokenStore + ?Sized> TokenStore for Arc<T> {
    fn get(&self, key: &TokenKey) -> StoreFuture<Option<Session>> {
        (**self).get(key)
    }
    fn insert(&self, key: TokenKey, session: Session) -> StoreFuture<()> {
        (**self).insert(key, session)
    }
    fn replace(&self, key: TokenKey, session: Session) -> StoreFuture<Option<Session>> {
        (**self).replace(key, session)
    }
    fn remove_family(&self, family: Family) -> StoreFuture<usize> {
        (**self).remove_family(family)
    }
    fn touch(&self, key: &TokenKey, now: u64) -> StoreFuture<()> {
        (**self).touch(key, now)
    }
    fn update(&self, key: TokenKey, session: Session) -> StoreFuture<bool> {
        (**self).update(key, session)
    }
    fn sessions_of(&self, username: &str) -> StoreFuture<Vec<(TokenKey, Session)>> {
        (**self).sessions_of(username)
    }
    fn live_sessions(&self, limit: usize) -> StoreFuture<Vec<(TokenKey, Session)>> {
        (**self).live_sessions(limit)
    }
    fn ready(&self) -> StoreFuture<()> {
        (**self).ready()
    }
    fn failure_counters(&self) -> Option<Arc<dyn FailureCounters>> {
        (**self).failure_counters()
    }
    fn live_count(&self) -> Option<usize> {
        (**self).live_count()
    }
    fn remove(&self, key: &TokenKey) -> StoreFuture<bool> {
        (**self).remove(key)
    }
    fn remove_user(&self, username: &str) -> StoreFuture<usize> {
        (**self).remove_user(username)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_use_is_recorded_each_second_with_an_idle_timeout_else_each_minute() {
        let now = unix_now();
        let idle = Session::new("ann", None, 3600).with_idle(Some(600), now);
        assert!(!idle.needs_touch(now));
        assert!(idle.needs_touch(now + 1));
        let plain = Session::new("ann", None, 3600);
        assert!(
            !plain.needs_touch(now + LAST_SEEN_EVERY_SECS - 1),
            "not every request writes"
        );
        assert!(plain.needs_touch(now + LAST_SEEN_EVERY_SECS));
        let mut touched = plain.clone();
        touched.touch(now + LAST_SEEN_EVERY_SECS);
        assert!(!touched.needs_touch(now + LAST_SEEN_EVERY_SECS + 1));
        assert_eq!(touched.last_seen(), now + LAST_SEEN_EVERY_SECS);
        // A refresh token or code is never "seen": only access tokens are.
        let refresh = plain.derive(Kind::Refresh, 3600);
        assert!(!refresh.needs_touch(now + 10 * LAST_SEEN_EVERY_SECS));
    }

    #[test]
    fn a_sessions_origin_keeps_at_most_256_bytes_of_user_agent_on_a_char_boundary() {
        let long = "é".repeat(200);
        let origin = SessionOrigin::new(
            Some("192.0.2.1".parse().unwrap()),
            Some(&long),
            AuthMethods::PASSWORD,
        );
        let kept = origin.user_agent.as_deref().unwrap();
        assert!(
            kept.len() <= SessionOrigin::USER_AGENT_MAX && kept.len() >= SessionOrigin::USER_AGENT_MAX - 1
        );
        assert!(long.starts_with(kept));
        // Carried through a round trip of the store's JSON, and absent from
        // an old session's JSON.
        let session = Session::new("ann", None, 60).with_origin(origin.clone());
        let back: Session = serde_json::from_str(&serde_json::to_string(&session).unwrap()).unwrap();
        assert_eq!(back.origin(), Some(&*origin));
        let plain = serde_json::to_string(&Session::new("ann", None, 60)).unwrap();
        assert!(!plain.contains("origin"), "{plain}");
    }
}
