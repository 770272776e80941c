//! Revocation: `POST /management/revoke` (RFC 7009), and App Services'
//! `PUT|POST /management/users/{user}/revoketokens` and
//! `…/revoketoken?token=`.

use http::request::Parts;
use http::{Response, StatusCode};
use serde_json::json;

use crate::auth::credential;
use crate::auth::state::AuthState;
use crate::obs::audit::Fields;
use crate::store::{Session, TokenKey};
use crate::web::request::Params;
use crate::web::response::{self, OwnBody};

use super::client_auth::{self, Caller};
use super::error::OAuthError;
use super::{access_session, required_param};

/// RFC 7009: `200` whether or not the token existed. Confidential clients
/// authenticate; a token issued to a client can only be revoked by that
/// client; a token issued to no client (a gateway session) is revoked by
/// whoever holds it.
pub(super) async fn revoke(state: &AuthState, parts: &Parts, params: &Params) -> Response<OwnBody> {
    match try_revoke(state, parts, params).await {
        Ok(()) => response::json(StatusCode::OK, &json!({})),
        Err(err) => err.into_response(),
    }
}

async fn try_revoke(state: &AuthState, parts: &Parts, params: &Params) -> Result<(), OAuthError> {
    let token = required_param(params, "token")?;
    let caller = client_auth::authenticate(state, parts, params).await?;
    // Only a token the gateway issued can be revoked: never a record of
    // the store's own (a provider session's owner, a used state), whose key
    // anyone can compute.
    if !credential::is_well_formed(token) {
        return Ok(());
    }
    let key = TokenKey::of(token);
    let Some(session) = state.store.get(&key).await?.filter(Session::is_token) else {
        return Ok(());
    };
    let caller_id = caller.client().map(|c| c.id());
    match (session.client_id(), &caller) {
        (Some(owner), _) if Some(owner) != caller_id => {
            if matches!(caller, Caller::Anonymous) {
                return Err(OAuthError::invalid_client(
                    "This token was issued to a client: that client must authenticate to revoke it.",
                ));
            }
            return Err(OAuthError::unauthorized_client(
                "This token was issued to another client.",
            ));
        }
        _ => {}
    }
    revoke_session(state, key, &session).await
}

/// Revokes one token and, for OAuth grants, every token of its family.
async fn revoke_session(state: &AuthState, key: TokenKey, session: &Session) -> Result<(), OAuthError> {
    state.store.remove(&key).await?;
    if let Some(family) = session.family() {
        state.store.remove_family(family).await?;
    }
    state.audit.record(
        "token.revoked",
        Fields {
            subject: Some(session.username()),
            client_id: session.client_id(),
            ..Fields::default()
        },
    );
    Ok(())
}

/// `PUT|POST /management/users/{user}/revoketokens` (all of a user's
/// tokens) and `…/revoketoken?token=` (one). Only that user or an
/// administrator may call them.
pub(super) async fn revoke_user_tokens(
    state: &AuthState,
    parts: &Parts,
    username: &str,
    one_token: bool,
) -> Response<OwnBody> {
    let (_, caller) = match access_session(state, parts).await {
        Ok(found) => found,
        Err(err) => return err.into_response(),
    };
    let is_admin = state
        .directory
        .user(caller.username())
        .is_some_and(|u| u.is_admin() && caller.client_id() != Some(caller.username()));
    let is_self = caller.username() == username && caller.client_id() != Some(caller.username());
    if !is_self && !is_admin {
        return OAuthError::forbidden(
            "Only the user themselves or an administrator may revoke these tokens.",
        )
        .into_response();
    }
    let result = if one_token {
        revoke_one_of_user(state, parts, username).await
    } else {
        let revoked = state.store.remove_user(username).await.map_err(OAuthError::from);
        if revoked.is_ok() {
            state.audit.record(
                "tokens.revoked",
                Fields {
                    actor: Some(caller.username()),
                    subject: Some(username),
                    address: state.client_ip(&parts.extensions, &parts.headers),
                    ..Fields::default()
                },
            );
        }
        revoked
    };
    match result {
        Ok(revoked) => response::json(StatusCode::OK, &json!({ "revoked": revoked })),
        Err(err) => err.into_response(),
    }
}

async fn revoke_one_of_user(state: &AuthState, parts: &Parts, username: &str) -> Result<usize, OAuthError> {
    let params = Params::from_query(parts.uri.query());
    let token = required_param(&params, "token")?;
    if !credential::is_well_formed(token) {
        return Ok(0);
    }
    let key = TokenKey::of(token);
    match state.store.get(&key).await? {
        Some(session) if session.username() == username && session.is_token() => {
            revoke_session(state, key, &session).await?;
            Ok(1)
        }
        _ => Ok(0),
    }
}
