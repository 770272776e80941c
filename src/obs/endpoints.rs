//! The operations endpoints: `/healthz` (alive), `/readyz` (the token
//! store answers) and `/metrics` (Prometheus text). The gateway binary
//! serves them; an app that embeds the layer turns them on only if it
//! wants them ([`AuthLayer::with_operations_endpoints`](crate::AuthLayer::with_operations_endpoints)),
//! so that its own paths of those names are never shadowed.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};

use crate::db::Database;
use crate::store::TokenStore;
use crate::web::response::{self, OwnBody};

use super::metrics::Metrics;

const HEALTHZ_PATH: &str = "/healthz";
const READYZ_PATH: &str = "/readyz";
const METRICS_PATH: &str = "/metrics";

/// One of these endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Health,
    Readiness,
    Metrics,
}

impl Endpoint {
    /// The endpoint at `path`, if it is one.
    pub(crate) fn at(path: &str) -> Option<Self> {
        match path {
            HEALTHZ_PATH => Some(Self::Health),
            READYZ_PATH => Some(Self::Readiness),
            METRICS_PATH => Some(Self::Metrics),
            _ => None,
        }
    }

    /// Answers a request for it.
    pub(crate) async fn answer(
        self,
        method: Method,
        metrics: Arc<Metrics>,
        store: Arc<dyn TokenStore>,
        database: Option<Database>,
    ) -> Response<OwnBody> {
        if method != Method::GET && method != Method::HEAD {
            return response::method_not_allowed(&method, "GET, HEAD");
        }
        match self {
            Self::Health => response::json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
            Self::Readiness => readiness(&*store, database.as_ref()).await,
            Self::Metrics => exposition(&metrics, &*store),
        }
    }
}

/// `/metrics`: the Prometheus (OpenMetrics) text exposition.
fn exposition(metrics: &Metrics, store: &dyn TokenStore) -> Response<OwnBody> {
    if let Some(live) = store.live_count() {
        metrics.tokens_live.set(i64::try_from(live).unwrap_or(i64::MAX));
    }
    let mut response = Response::new(http_body_util::Full::new(bytes::Bytes::from(metrics.render())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `/readyz`: ready when the configuration is loaded (it is, or nothing
/// would run) and the token store answers. A `[database]` that cannot be
/// reached is said (`"database"`), but leaves the gateway ready: live
/// sessions and config users do not need it, and a load balancer that
/// took every gateway out for it would stop them too.
async fn readiness(store: &dyn TokenStore, database: Option<&Database>) -> Response<OwnBody> {
    let database = match database {
        None => None,
        Some(db) => Some(match db.ping().await {
            Ok(()) => "ok".to_owned(),
            Err(err) => err.to_string(),
        }),
    };
    let mut body = match store.ready().await {
        Ok(()) => serde_json::json!({"status": "ready"}),
        Err(err) => serde_json::json!({"status": "not ready", "reason": err.to_string()}),
    };
    if let Some(database) = database {
        body["database"] = serde_json::Value::String(database);
    }
    let status = match body["status"] == "ready" {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    response::json(status, &body)
}
