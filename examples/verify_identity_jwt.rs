//! An upstream, in Rust, that trusts nothing but `X-Authgate-Jwt`: the
//! identity the gateway signed for it, verified offline against the
//! gateway's JWKS (fetched at start, and again when a token names a key
//! it has not seen: a rotation). Behind a gateway with
//!
//! ```toml
//! [upstream]
//! url = "http://127.0.0.1:9000"
//! identity_jwt = true
//! send_session_token = false   # this app never holds a credential that works at the gateway
//! ```
//!
//! ```text
//! cargo run --example verify_identity_jwt        # AUTHGATE_URL=http://127.0.0.1:8080 by default
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio::sync::RwLock;

/// Verifies identity JWTs for one audience (this app).
pub struct Verifier {
    jwks_url: String,
    issuer: String,
    audience: String,
    http: reqwest::Client,
    keys: RwLock<(JwkSet, Option<Instant>)>,
}

impl Verifier {
    /// A verifier of the gateway at `gateway` (its issuer URL) for
    /// `audience` (the gateway's `identity_jwt_audience` for this app:
    /// by default the app's origin).
    pub fn new(gateway: &str, audience: &str) -> Self {
        Self {
            jwks_url: format!("{gateway}/.well-known/jwks.json"),
            issuer: gateway.to_owned(),
            audience: audience.to_owned(),
            http: reqwest::Client::new(),
            keys: RwLock::new((JwkSet { keys: Vec::new() }, None)),
        }
    }

    /// Fetches the JWKS again, at most every ten seconds.
    async fn refresh(&self) -> Result<(), String> {
        let mut keys = self.keys.write().await;
        if keys.1.is_some_and(|at| at.elapsed() < Duration::from_secs(10)) {
            return Ok(());
        }
        let set: JwkSet = self
            .http
            .get(&self.jwks_url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("the JWKS cannot be fetched: {e}"))?
            .json()
            .await
            .map_err(|e| format!("the JWKS is not one: {e}"))?;
        *keys = (set, Some(Instant::now()));
        Ok(())
    }

    /// The claims of `token`, if the gateway signed it for this app and
    /// it has not expired.
    pub async fn verify(&self, token: &str) -> Result<serde_json::Value, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        // Asymmetric algorithms only: a token cannot pick HMAC with the
        // public key as its secret.
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA) {
            return Err(format!(
                "{:?} is not an algorithm the gateway signs with",
                header.alg
            ));
        }
        let kid = header.kid.ok_or("the token names no key")?;
        let find = |set: &JwkSet| set.find(&kid).map(DecodingKey::from_jwk);
        let mut key = find(&self.keys.read().await.0);
        if key.is_none() {
            self.refresh().await?;
            key = find(&self.keys.read().await.0);
        }
        let key = key
            .ok_or(format!("no published key {kid}"))?
            .map_err(|e| e.to_string())?;
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "aud", "iss"]);
        validation.leeway = 30;
        jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| e.to_string())
    }
}

/// Who is asking, as the gateway says: the verified claims, or `401`.
async fn whoami(State(verifier): State<Arc<Verifier>>, headers: HeaderMap) -> impl IntoResponse {
    let claims = match headers.get("x-authgate-jwt").map(|v| v.to_str()) {
        Some(Ok(token)) => verifier.verify(token).await,
        _ => Err("no X-Authgate-Jwt".to_owned()),
    };
    let (status, body) = match claims {
        Ok(claims) => (StatusCode::OK, serde_json::json!({ "claims": claims })),
        Err(error) => (StatusCode::UNAUTHORIZED, serde_json::json!({ "error": error })),
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

/// The app: every path answers who is asking.
pub fn app(verifier: Arc<Verifier>) -> Router {
    Router::new().fallback(get(whoami)).with_state(verifier)
}

#[allow(dead_code)] // the tests use `app` and `Verifier` without `main`
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gateway = std::env::var("AUTHGATE_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
    let verifier = Arc::new(Verifier::new(&gateway, "http://127.0.0.1:9000"));
    println!(
        "an upstream that trusts only X-Authgate-Jwt, on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app(verifier)).await?;
    Ok(())
}
