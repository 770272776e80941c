//! `X-Authgate-Jwt`: who a request is for, signed for one upstream (its
//! audience), short-lived, so an upstream can verify it offline against
//! the JWKS and never holds a credential that works anywhere else.
//!
//! One is made per session and route (each route has one audience) and
//! reused until a minute before it expires: a request pays a map lookup by
//! the session's key, not a signature nor an allocation.

use dashmap::DashMap;
use http::HeaderValue;
use serde::Serialize;

use crate::signing::SigningAlg;
use crate::store::{AuthMethods, Session, TokenKey};

use super::state::AuthState;

/// How long an identity JWT lives at most.
pub(crate) const LIFETIME_SECS: u64 = 300;
/// How close to its expiry a JWT is made again.
const RENEW_BEFORE_SECS: u64 = 60;
/// Past this many, the cache is emptied (the JWTs are made again).
const MAX_CACHED: usize = 100_000;

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    #[serde(flatten)]
    person: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idp: Option<&'a str>,
    acr: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    amr: Vec<&'static str>,
}

/// One JWT made: its header value, expiry, and the methods it states (a
/// step-up makes it again).
#[derive(Debug)]
struct Made {
    value: HeaderValue,
    exp: u64,
    methods: AuthMethods,
}

/// The identity JWTs made for one route's upstream, by session.
#[derive(Debug, Default)]
pub(crate) struct IdentityJwts {
    made: DashMap<TokenKey, Made>,
}

impl IdentityJwts {
    /// The JWT for the session under `key` and the upstream `audience`:
    /// the one made before while it has more than a minute left, else a
    /// new one (expiring in five minutes, never past the session). `None`
    /// if it cannot be signed (the upstream then gets none, and the
    /// failure is logged).
    pub(crate) fn for_upstream(
        &self,
        state: &AuthState,
        key: &TokenKey,
        session: &Session,
        audience: &str,
        now: u64,
    ) -> Option<HeaderValue> {
        let methods = session.methods();
        if let Some(found) = self.made.get(key) {
            let fresh =
                found.exp.saturating_sub(now) > RENEW_BEFORE_SECS || found.exp == session.expires_at();
            if fresh && found.methods == methods {
                return Some(found.value.clone());
            }
        }
        let exp = now.saturating_add(LIFETIME_SECS).min(session.expires_at());
        let identity = session.identity();
        let issuer = state.issuer();
        let claims = Claims {
            iss: &issuer,
            aud: audience,
            iat: now,
            exp,
            person: identity.openid_claims(["profile", "email", "groups"].into_iter()),
            sid: session.sid(),
            idp: identity.provider(),
            acr: methods.level(),
            amr: methods.names(),
        };
        let jwt = match state.keys.sign(SigningAlg::RS256, "JWT", &claims) {
            Ok(jwt) => jwt,
            Err(err) => {
                tracing::error!(error = %err, "could not sign an identity JWT");
                return None;
            }
        };
        let value = HeaderValue::try_from(jwt).ok()?;
        if self.made.len() >= MAX_CACHED {
            self.made.retain(|_, made| made.exp > now);
            if self.made.len() >= MAX_CACHED {
                self.made.clear();
            }
        }
        self.made.insert(
            *key,
            Made {
                value: value.clone(),
                exp,
                methods,
            },
        );
        Some(value)
    }
}
