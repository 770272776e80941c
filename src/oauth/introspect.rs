//! `POST /management/introspect` (RFC 7662), for upstreams and resource
//! servers, which authenticate as confidential clients.

use http::request::Parts;
use http::{Response, StatusCode};
use serde::Serialize;

use crate::auth::state::AuthState;
use crate::store::{Kind, TokenKey};
use crate::web::request::Params;
use crate::web::response::{self, OwnBody};

use super::client_auth::{self, Caller};
use super::error::OAuthError;
use super::required_param;

#[derive(Serialize, Default)]
struct Introspection<'a> {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    groups: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<&'a str>,
    /// How the person signed in (RFC 8176 names), and its level.
    #[serde(skip_serializing_if = "Option::is_none")]
    acr: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    amr: Vec<&'static str>,
}

pub(super) async fn introspect(state: &AuthState, parts: &Parts, params: &Params) -> Response<OwnBody> {
    let caller = match client_auth::authenticate(state, parts, params).await {
        Ok(Caller::Confidential(client)) => client,
        Ok(_) => {
            return OAuthError::invalid_client("Introspection needs a confidential client's id and secret.")
                .into_response()
        }
        Err(err) => return err.into_response(),
    };
    let token = match required_param(params, "token") {
        Ok(token) => token,
        Err(err) => return err.into_response(),
    };
    let session = match state.store.get(&TokenKey::of(token)).await {
        Ok(session) => session,
        Err(err) => return OAuthError::from(err).into_response(),
    };
    tracing::debug!(introspecting_client = %caller.id(), "introspection");
    let body = match &session {
        Some(session) if matches!(session.kind(), Kind::Access | Kind::Refresh) => Introspection {
            active: true,
            scope: session.scope(),
            client_id: session.client_id(),
            username: Some(session.username()),
            token_type: Some(if session.is_access() {
                "Bearer"
            } else {
                "refresh_token"
            }),
            exp: Some(session.expires_at()),
            iat: Some(session.issued_at()),
            sub: Some(session.username()),
            email: session.email(),
            groups: session.identity().groups().collect(),
            provider: session.identity().provider(),
            acr: Some(session.methods().level()),
            amr: session.methods().names(),
        },
        _ => Introspection::default(),
    };
    response::json(StatusCode::OK, &body)
}
