//! `GET|POST /management/userinfo` (OpenID Connect Core §5.3): the claims
//! about the person an access token is for, as its scope releases them
//! (the same as the ID token's), to a bearer token only.

use http::request::Parts;
use http::{Response, StatusCode};

use crate::auth::credential::{self, Source};
use crate::auth::state::AuthState;
use crate::web::response::{self, OwnBody};

use super::error::OAuthError;

pub(super) async fn userinfo(state: &AuthState, parts: &Parts) -> Response<OwnBody> {
    // Only the Authorization field: a cookie would let any page that can
    // make the browser send one read who is signed in.
    let bearer = matches!(
        credential::find(&parts.headers, &parts.uri),
        Ok(Some(presented)) if presented.source == Source::Header
    );
    if !bearer {
        return OAuthError::invalid_token("Send the access token as Authorization: Bearer <token>.")
            .into_response();
    }
    let (_, session) = match super::access_session(state, parts).await {
        Ok(found) => found,
        Err(err) => return err.into_response(),
    };
    if !super::id_token::asks_openid(&session) || session.client_id() == Some(session.username()) {
        let mut answer =
            OAuthError::forbidden("This access token was not issued with the openid scope for a person.")
                .into_response();
        answer.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static(
                "Bearer realm=\"authgate\", error=\"insufficient_scope\", scope=\"openid\"",
            ),
        );
        return answer;
    }
    let mut claims = session
        .identity()
        .openid_claims(session.scope().unwrap_or("").split(' '));
    let client = session.client_id().and_then(|id| state.directory.client(id));
    claims.insert(
        "sub".into(),
        state.subject_for(client.as_deref(), session.username()).into(),
    );
    let mut answer = response::json(StatusCode::OK, &claims);
    answer.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    answer
}
