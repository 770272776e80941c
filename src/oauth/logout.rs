//! `GET|POST /management/logout`: revokes the session's token and clears
//! the cookie.

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use serde_json::json;

use crate::auth::credential;
use crate::auth::state::AuthState;
use crate::store::TokenKey;
use crate::web::request::wants_html;
use crate::web::response::{self, OwnBody};

use super::AUTHORIZE_PATH;

pub(super) async fn logout(state: &AuthState, req: &Parts) -> Response<OwnBody> {
    let presented = credential::find(&req.headers, &req.uri)
        .ok()
        .flatten()
        .map(|p| TokenKey::of(&p.token));
    if let Some(key) = presented {
        if let Err(err) = state.store.remove(&key).await {
            tracing::error!(error = %err, "logout could not revoke the token");
            return state.error_for(
                &req.headers,
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "The sign-out could not be recorded; try again in a moment.",
            );
        }
    }
    let mut response = if wants_html(&req.headers) {
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
