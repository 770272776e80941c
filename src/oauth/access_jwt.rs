//! JWT access tokens (RFC 9068) for clients with `access_token_format =
//! "jwt"`, for resource servers that verify offline, with `aud` from the
//! RFC 8707 `resource` parameters the client may send. The JWT is also the
//! token the store keeps (by its hash), so introspection, revocation and
//! the gateway's own check treat it as any token: a revoked one is refused
//! here at once, and elsewhere once it expires (as short-lived as
//! `tokens.ttl_secs`).

use serde::Serialize;

use crate::auth::state::AuthState;
use crate::identity::Client;
use crate::store::{user_uuid, Session, Token};
use crate::web::request::Params;

use super::error::OAuthError;

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: String,
    aud: serde_json::Value,
    client_id: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_time: Option<u64>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    groups: Vec<&'a str>,
}

/// The `resource` parameters of a token request, each one the client may
/// ask for (RFC 8707 §2), else `invalid_target`.
pub(super) fn resources<'p>(params: &'p Params, client: Option<&Client>) -> Result<Vec<&'p str>, OAuthError> {
    let asked: Vec<&str> = params.all("resource").collect();
    for resource in &asked {
        let allowed = client.is_some_and(|c| c.entry().resources.iter().any(|r| r == resource));
        if !allowed {
            return Err(OAuthError::invalid_target(format!(
                "This client may not ask for a token for the resource {resource:?}."
            )));
        }
    }
    Ok(asked)
}

/// The access token for `session`, issued to `client`, for `resources`
/// (the issuer when none): a JWT signed with the client's algorithm.
pub(super) fn sign(
    state: &AuthState,
    session: &Session,
    client: &Client,
    resources: &[&str],
) -> Result<Token, OAuthError> {
    let issuer = state.issuer();
    let person = session.client_id() != Some(session.username());
    let aud = match resources {
        [] => serde_json::Value::String(issuer.clone()),
        [one] => serde_json::Value::String((*one).to_owned()),
        many => many
            .iter()
            .map(|r| serde_json::Value::String((*r).to_owned()))
            .collect(),
    };
    let claims = Claims {
        iss: &issuer,
        sub: if person {
            user_uuid(session.username())
        } else {
            session.username().to_owned()
        },
        aud,
        client_id: client.id(),
        iat: session.issued_at(),
        exp: session.expires_at(),
        jti: crate::db::new_id(),
        scope: session.scope(),
        auth_time: person.then(|| session.origin().map_or(session.issued_at(), |o| o.signed_in_at)),
        groups: if person {
            session.identity().groups().collect()
        } else {
            Vec::new()
        },
    };
    state
        .keys
        .sign(client.entry().id_token_alg, "at+jwt", &claims)
        .map(Token::signed)
        .map_err(|err| {
            tracing::error!(error = %err, "could not sign a JWT access token");
            OAuthError::temporarily_unavailable(
                "The access token could not be signed; try again in a moment.",
            )
        })
}
