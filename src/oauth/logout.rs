//! `GET|POST /management/logout`: revokes the session's token and clears
//! the cookie; a browser signed in through a provider with
//! `logout = "provider"` is sent on to sign out there too (RP-Initiated
//! Logout 1.0), and comes back to `/management/signed-out`.

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use serde_json::json;

use crate::auth::credential;
use crate::auth::state::AuthState;
use crate::obs::audit::Fields;
use crate::store::{Session, TokenKey};
use crate::web::request::wants_html;
use crate::web::response::{self, OwnBody};

use super::AUTHORIZE_PATH;

pub(super) async fn logout(state: &AuthState, req: &Parts) -> Response<OwnBody> {
    let presented = credential::find(&req.headers, &req.uri)
        .ok()
        .flatten()
        .map(|p| TokenKey::of(&p.token));
    let mut at_provider = None;
    if let Some(key) = presented {
        let session = state
            .store
            .get(&key)
            .await
            .ok()
            .flatten()
            .filter(Session::is_access);
        if let (Some(session), true) = (&session, wants_html(&req.headers)) {
            at_provider = provider_logout(state, session).await;
        }
        if let Err(err) = state.store.remove(&key).await {
            tracing::error!(error = %err, "logout could not revoke the token");
            return state.error_for(
                &req.headers,
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "The sign-out could not be recorded; try again in a moment.",
            );
        }
        if let Some(session) = &session {
            state.audit.record(
                "sign_out",
                Fields {
                    subject: Some(session.username()),
                    address: state.client_ip(&req.extensions, &req.headers),
                    provider: session.identity().provider(),
                    client_id: session.client_id(),
                    ..Fields::default()
                },
            );
        }
    }
    let mut response = if let Some(url) =
        at_provider.and_then(|url| response::redirect(StatusCode::SEE_OTHER, url.as_str()))
    {
        url
    } else if wants_html(&req.headers) {
        response::redirect(StatusCode::SEE_OTHER, AUTHORIZE_PATH).expect("a static path is a valid Location")
    } else {
        response::json(StatusCode::OK, &json!({ "signed_out": true }))
    };
    let clear = credential::clear_session_cookie(credential::CookieScope::of(&state.config));
    if let Ok(value) = HeaderValue::try_from(clear) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Where a signed-out browser lands after signing out at a provider too.
pub(super) const SIGNED_OUT_PATH: &str = "/management/signed-out";

/// The provider's end-session address for the session under `key`, if it
/// came from a provider with `logout = "provider"`.
async fn provider_logout(state: &AuthState, session: &Session) -> Option<url::Url> {
    let identity = session.identity();
    let provider = state.directory.outside_provider(identity.provider()?)?;
    provider
        .end_session_url(identity, &format!("{}{SIGNED_OUT_PATH}", state.issuer()))
        .await
}

/// `GET /management/signed-out`: where a provider sends the browser back.
pub(super) fn signed_out(state: &AuthState) -> Response<OwnBody> {
    state.error_page(
        StatusCode::OK,
        "Signed out",
        "You are signed out, here and at your sign-in provider. Sign in again at /management/authorize.",
        "",
    )
}
