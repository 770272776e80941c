//! What the gateway counts, in Prometheus text format at `/metrics`:
//! requests by route kind and status, latency, sign-ins, tokens, upstream
//! and store errors. One registry per layer, so several gateways in one
//! process (or an app embedding the layer) never mix their figures.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::proxy::error::ErrorKind as UpstreamErrorKind;
use crate::store::{FailureCounters, Family as TokenFamily, Session, StoreFuture, TokenKey, TokenStore};

/// Which way a request went through the gateway.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum RouteKind {
    /// Authenticated and passed on.
    Authenticated,
    /// A public path, passed on without sign-in.
    Public,
    /// Refused for want of a valid credential (401, or a redirect to sign in).
    Refused,
    /// One of the gateway's own endpoints.
    Own,
}

impl RouteKind {
    /// Its place in [`Metrics`]' per-route handles (the order of `new`).
    fn index(self) -> usize {
        match self {
            Self::Authenticated => 0,
            Self::Public => 1,
            Self::Refused => 2,
            Self::Own => 3,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: RouteKind,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: RouteKind,
}

/// How a sign-in ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) enum SignIn {
    Succeeded,
    Failed,
    Throttled,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignInLabels {
    outcome: SignIn,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    kind: UpstreamErrorKind,
}

/// Label values in lower case, as Prometheus users expect.
macro_rules! lower_case_label {
    ($type:ty { $($variant:ident => $text:literal),* $(,)? }) => {
        impl EncodeLabelValue for $type {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                use std::fmt::Write;
                encoder.write_str(match self { $(Self::$variant => $text),* })
            }
        }
    };
}

lower_case_label!(RouteKind { Authenticated => "authenticated", Public => "public", Refused => "refused", Own => "own" });
lower_case_label!(SignIn { Succeeded => "succeeded", Failed => "failed", Throttled => "throttled" });
impl EncodeLabelValue for UpstreamErrorKind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// Statuses whose request counters are kept at hand per route kind, so
/// that counting the usual request takes no lookup in the family's map.
const COMMON_STATUSES: [u16; 8] = [200, 201, 204, 302, 304, 400, 401, 404];

/// A route kind's latency histogram and its common statuses' counters
/// (each created on first use, so /metrics shows only what happened).
struct RouteHandles {
    latency: Histogram,
    statuses: [std::sync::OnceLock<Counter>; COMMON_STATUSES.len()],
}

/// The gateway's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    /// Indexed by [`RouteKind::index`].
    by_route: [RouteHandles; 4],
    sign_ins: Family<SignInLabels, Counter>,
    pub(crate) tokens_issued: Counter,
    pub(crate) tokens_revoked: Counter,
    pub(crate) tokens_live: Gauge<i64, std::sync::atomic::AtomicI64>,
    upstream_errors: Family<UpstreamLabels, Counter>,
    pub(crate) store_errors: Counter<u64, AtomicU64>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("authgate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "Requests by route kind and status", requests.clone());
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 16))
        });
        registry.register(
            "request_duration_seconds",
            "Time to the response head, by route kind",
            latency.clone(),
        );
        let sign_ins = Family::<SignInLabels, Counter>::default();
        registry.register(
            "sign_ins",
            "Sign-ins (page and password grant) by outcome",
            sign_ins.clone(),
        );
        let tokens_issued = Counter::default();
        registry.register("tokens_issued", "Access tokens issued", tokens_issued.clone());
        let tokens_revoked = Counter::default();
        registry.register(
            "tokens_revoked",
            "Tokens revoked (logout, revocation, replay)",
            tokens_revoked.clone(),
        );
        let tokens_live = Gauge::default();
        registry.register(
            "tokens_live",
            "Tokens held by this gateway's store (in-memory store only)",
            tokens_live.clone(),
        );
        let upstream_errors = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Upstream failures by kind",
            upstream_errors.clone(),
        );
        let store_errors = Counter::default();
        registry.register(
            "store_errors",
            "Token store operations that failed",
            store_errors.clone(),
        );
        let by_route = [
            RouteKind::Authenticated,
            RouteKind::Public,
            RouteKind::Refused,
            RouteKind::Own,
        ]
        .map(|route| RouteHandles {
            latency: latency.get_or_create(&RouteLabels { route }).clone(),
            statuses: Default::default(),
        });
        Self {
            registry,
            requests,
            by_route,
            sign_ins,
            tokens_issued,
            tokens_revoked,
            tokens_live,
            upstream_errors,
            store_errors,
        }
    }

    pub(crate) fn request(&self, route: RouteKind, status: u16, took: Duration) {
        let handles = &self.by_route[route.index()];
        let labels = || RequestLabels { route, status };
        match COMMON_STATUSES.iter().position(|&common| common == status) {
            Some(at) => handles.statuses[at]
                .get_or_init(|| self.requests.get_or_create(&labels()).clone())
                .inc(),
            None => self.requests.get_or_create(&labels()).inc(),
        };
        handles.latency.observe(took.as_secs_f64());
    }

    pub(crate) fn sign_in(&self, outcome: SignIn) {
        self.sign_ins.get_or_create(&SignInLabels { outcome }).inc();
    }

    pub(crate) fn upstream_error(&self, kind: UpstreamErrorKind) {
        self.upstream_errors.get_or_create(&UpstreamLabels { kind }).inc();
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// A token store that counts its failures and the tokens it revokes.
pub(crate) struct MeteredStore {
    inner: std::sync::Arc<dyn TokenStore>,
    metrics: std::sync::Arc<Metrics>,
}

impl MeteredStore {
    pub(crate) fn new(inner: std::sync::Arc<dyn TokenStore>, metrics: std::sync::Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    fn counted<T: Send + 'static>(&self, future: StoreFuture<T>) -> StoreFuture<T> {
        match future.into_ready() {
            Ok(result) => {
                if result.is_err() {
                    self.metrics.store_errors.inc();
                }
                StoreFuture::ready(result)
            }
            Err(pending) => {
                let metrics = self.metrics.clone();
                StoreFuture::pending(async move {
                    let result = pending.await;
                    if result.is_err() {
                        metrics.store_errors.inc();
                    }
                    result
                })
            }
        }
    }
}

impl MeteredStore {
    /// Counts what a removal took away.
    fn revoked<T: Copy + Send + 'static>(
        &self,
        future: StoreFuture<T>,
        count: fn(T) -> usize,
    ) -> StoreFuture<T> {
        let metrics = self.metrics.clone();
        let note = move |result: &Result<T, crate::store::StoreError>| match result {
            Ok(removed) => metrics.tokens_revoked.inc_by(count(*removed) as u64),
            Err(_) => metrics.store_errors.inc(),
        };
        match future.into_ready() {
            Ok(result) => {
                note(&result);
                StoreFuture::ready(result)
            }
            Err(pending) => StoreFuture::pending(async move {
                let result = pending.await;
                note(&result);
                result
            }),
        }
    }
}

impl TokenStore for MeteredStore {
    fn get(&self, key: &TokenKey) -> StoreFuture<Option<Session>> {
        self.counted(self.inner.get(key))
    }
    fn insert(&self, key: TokenKey, session: Session) -> StoreFuture<()> {
        self.counted(self.inner.insert(key, session))
    }
    fn replace(&self, key: TokenKey, session: Session) -> StoreFuture<Option<Session>> {
        self.counted(self.inner.replace(key, session))
    }
    fn touch(&self, key: &TokenKey, now: u64) -> StoreFuture<()> {
        self.counted(self.inner.touch(key, now))
    }
    fn update(&self, key: TokenKey, session: Session) -> StoreFuture<bool> {
        self.counted(self.inner.update(key, session))
    }
    fn sessions_of(&self, username: &str) -> StoreFuture<Vec<(TokenKey, Session)>> {
        self.counted(self.inner.sessions_of(username))
    }
    fn live_sessions(&self, limit: usize) -> StoreFuture<Vec<(TokenKey, Session)>> {
        self.counted(self.inner.live_sessions(limit))
    }
    fn remove(&self, key: &TokenKey) -> StoreFuture<bool> {
        self.revoked(self.inner.remove(key), usize::from)
    }
    fn remove_user(&self, username: &str) -> StoreFuture<usize> {
        self.revoked(self.inner.remove_user(username), |n| n)
    }
    fn remove_family(&self, family: TokenFamily) -> StoreFuture<usize> {
        self.revoked(self.inner.remove_family(family), |n| n)
    }
    fn ready(&self) -> StoreFuture<()> {
        self.inner.ready()
    }
    fn failure_counters(&self) -> Option<std::sync::Arc<dyn FailureCounters>> {
        self.inner.failure_counters()
    }
    fn live_count(&self) -> Option<usize> {
        self.inner.live_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_and_status_whether_common_or_not() {
        let metrics = Metrics::new();
        for _ in 0..3 {
            metrics.request(RouteKind::Authenticated, 200, Duration::from_micros(300));
        }
        metrics.request(RouteKind::Own, 418, Duration::from_millis(2));
        metrics.request(RouteKind::Refused, 401, Duration::from_micros(50));
        let text = metrics.render();
        let value = |series: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
                .to_owned()
        };
        assert_eq!(
            value(r#"authgate_requests_total{route="authenticated",status="200"}"#),
            "3"
        );
        assert_eq!(value(r#"authgate_requests_total{route="own",status="418"}"#), "1");
        assert_eq!(
            value(r#"authgate_requests_total{route="refused",status="401"}"#),
            "1"
        );
        assert_eq!(
            value(r#"authgate_request_duration_seconds_count{route="authenticated"}"#),
            "3"
        );
        assert_eq!(
            value(r#"authgate_request_duration_seconds_count{route="own"}"#),
            "1"
        );
        assert!(
            !text.contains(r#"route="public",status"#),
            "no series for what never happened"
        );
    }
}
