//! `GET /management/me`: the caller's token and user, as App Services
//! returned them.

use http::request::Parts;
use http::{Response, StatusCode};
use serde::Serialize;

use crate::auth::state::AuthState;
use crate::web::response::{self, OwnBody};

use super::error::OAuthError;
use super::{access_session, UserObject};

#[derive(Serialize)]
struct Me<'a> {
    access_token: &'a str,
    expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<UserObject<'a>>,
    /// How the session was signed in (RFC 8176 names), and its level.
    acr: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    amr: Vec<&'static str>,
}

pub(super) async fn me(state: &AuthState, parts: &Parts) -> Response<OwnBody> {
    let (token, session) = match access_session(state, parts).await {
        Ok(found) => found,
        Err(err) => return err.into_response(),
    };
    let entry = state.directory.user(session.username());
    let user = UserObject::of_session(entry.as_deref(), &session, state.directory.has_remote_sources());
    if user.is_none() && session.client_id().is_none() {
        return OAuthError::invalid_token("The user of this token no longer exists.").into_response();
    }
    let body = Me {
        access_token: &token,
        expires_in: session.expires_in(),
        scope: session.scope(),
        client_id: session.client_id(),
        user,
        acr: session.methods().level(),
        amr: session.methods().names(),
    };
    response::json(StatusCode::OK, &body)
}
