//! `POST /management/backchannel-logout/{id}`: OpenID Connect
//! Back-Channel Logout 1.0, from an outside provider. A valid logout token
//! (its `jti` never accepted twice) ends every session here of the person
//! it names by `sid` or `sub`, at once, on every gateway sharing the token
//! store. The answer is `200`, or `400` with a JSON error (§2.8).

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::auth::state::AuthState;
use crate::identity::LogoutClaims;
use crate::obs::audit::Fields;
use crate::store::{Session, StoreError, TokenKey};
use crate::web::request::Params;
use crate::web::response::{self, OwnBody};

use super::provider_sign_in::owner_key;

/// Where providers post logout tokens: `BACKCHANNEL_PREFIX` + id.
pub(crate) const BACKCHANNEL_PREFIX: &str = "/management/backchannel-logout/";
/// How long a logout token's `jti` is remembered (longer than a token is
/// accepted for).
const JTI_SECS: u64 = 3600;

pub(super) async fn logout(state: &AuthState, path: &str, params: &Params) -> Response<OwnBody> {
    let id = path.strip_prefix(BACKCHANNEL_PREFIX).unwrap_or_default();
    let Some(provider) = state.directory.outside().iter().find(|p| p.id() == id) else {
        return refused(
            StatusCode::NOT_FOUND,
            "This gateway has no provider of that name.",
        );
    };
    let Some(token) = params.one("logout_token").ok().flatten() else {
        return refused(StatusCode::BAD_REQUEST, "Send the logout_token parameter, once.");
    };
    let claims = match provider.logout_claims(token).await {
        Ok(claims) => claims,
        Err(err) => {
            tracing::warn!(provider = id, error = %err, "back-channel logout refused");
            return refused(StatusCode::BAD_REQUEST, &err.to_string());
        }
    };
    let jti = TokenKey::of(&owner_key(id, "logout token", &claims.jti));
    let seen = Session::record(JTI_SECS);
    match state.store.replace(jti, seen).await {
        Ok(None) => {}
        Ok(Some(_)) => {
            return refused(
                StatusCode::BAD_REQUEST,
                "This logout token was already used (its jti).",
            )
        }
        Err(err) => {
            tracing::error!(error = %err, "token store unavailable at a back-channel logout");
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "The token store cannot be reached.",
            );
        }
    }
    let ended = match end_sessions(state, id, &claims).await {
        Ok(ended) => ended,
        Err(err) => {
            tracing::error!(error = %err, "could not end sessions at a back-channel logout");
            // The provider sends it again: let that one through.
            let _ = state.store.remove(&jti).await;
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "The token store cannot be reached.",
            );
        }
    };
    tracing::info!(
        provider = id,
        sub = claims.sub,
        sid = claims.sid,
        ended,
        "back-channel logout"
    );
    let mut answer = response::json(StatusCode::OK, &serde_json::json!({}));
    answer
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    answer
}

/// Ends every session of the people the logout token names by `sid` or
/// `sub`; answers how many.
async fn end_sessions(state: &AuthState, provider: &str, claims: &LogoutClaims) -> Result<usize, StoreError> {
    let mut ended = 0;
    for (what, value) in [("session", &claims.sid), ("subject", &claims.sub)] {
        let Some(value) = value else { continue };
        if let Some(owner) = state
            .store
            .get(&TokenKey::of(&owner_key(provider, what, value)))
            .await?
        {
            ended += crate::auth::backchannel::end_sessions_of(state, owner.username()).await?;
            state.audit.record(
                "sign_out.backchannel",
                Fields {
                    subject: Some(owner.username()),
                    provider: Some(provider),
                    detail: Some(what),
                    ..Fields::default()
                },
            );
        }
    }
    Ok(ended)
}

fn refused(status: StatusCode, description: &str) -> Response<OwnBody> {
    let mut answer = response::json_error(status, "invalid_request", description);
    answer
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    answer
}
