//! The gateway's own endpoints under `/management/`: routing, and the
//! pieces every endpoint shares.

mod access_jwt;
mod account;
mod account_factors;
mod authorize;
mod backchannel_logout;
mod client_auth;
mod cors;
mod discovery;
mod end_session;
mod error;
mod flash;
mod forward_auth;
mod id_token;
mod introspect;
mod invitation;
mod logout;
mod me;
mod pkce;
mod provider_sign_in;
mod revoke;
mod scope;
mod second_factor;
mod token;
mod userinfo;
mod webauthn;

use std::sync::Arc;

use http::header::{self};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use percent_encoding::percent_decode_str;
use serde::Serialize;

use crate::auth::credential;
use crate::auth::state::AuthState;
use crate::identity::User;
use crate::store::{Identity, Session, TokenKey};
use crate::web::request::{self, BodyError, Params};
use crate::web::response::{self, OwnBody};

use self::error::OAuthError;
use self::scope::{grant_scope, narrow_scope};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The sign-in page.
pub(crate) const AUTHORIZE_PATH: &str = crate::auth::SIGN_IN_PATH;
const LOGOUT_PATH: &str = "/management/logout";
const TOKEN_PATH: &str = "/management/token";
const REVOKE_PATH: &str = "/management/revoke";
const INTROSPECT_PATH: &str = "/management/introspect";
const ME_PATH: &str = "/management/me";
const FORWARD_AUTH_PATH: &str = "/management/auth";
const USERS_PREFIX: &str = "/management/users/";
const DISCOVERY_PATH: &str = "/.well-known/oauth-authorization-server";
/// OpenID Connect's discovery document: the same as RFC 8414's.
const OPENID_DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
const JWKS_PATH: &str = "/.well-known/jwks.json";
const USERINFO_PATH: &str = "/management/userinfo";

/// Whether the gateway answers `path` itself.
pub(crate) fn is_own_endpoint(path: &str) -> bool {
    path.strip_prefix("/management")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        || matches!(path, DISCOVERY_PATH | OPENID_DISCOVERY_PATH | JWKS_PATH)
}

/// Answers a request for one of the gateway's own endpoints.
pub(crate) async fn handle<B>(state: Arc<AuthState>, req: Request<B>) -> Response<OwnBody>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    match (path.as_str(), &method) {
        (AUTHORIZE_PATH, &Method::GET | &Method::HEAD) => authorize::show(&state, &req.into_parts().0).await,
        (AUTHORIZE_PATH, &Method::POST) => authorize::submit(&state, req).await,
        (AUTHORIZE_PATH, _) => method_not_allowed(&req, "GET, HEAD, POST"),
        (LOGOUT_PATH, &Method::GET | &Method::POST) => logout::logout(&state, &req.into_parts().0).await,
        (LOGOUT_PATH, _) => method_not_allowed(&req, "GET, POST"),
        (account::ACCOUNT_PATH, &Method::GET | &Method::HEAD) => {
            account::show(&state, &req.into_parts().0).await
        }
        (account::ACCOUNT_PATH, _) => method_not_allowed(&req, "GET, HEAD"),
        (account::SIGN_OUT_OTHERS_PATH, &Method::POST) => account::sign_out_others(&state, req).await,
        (account::PASSWORD_PATH, &Method::POST) => account::change_password(&state, req).await,
        (account_factors::ADD_PATH, &Method::POST) => account_factors::add(&state, req).await,
        (account_factors::CONFIRM_PATH, &Method::POST) => account_factors::confirm(&state, req).await,
        (account_factors::REMOVE_PATH, &Method::POST) => account_factors::remove(&state, req).await,
        (account_factors::RECOVERY_CODES_PATH, &Method::POST) => {
            account_factors::new_recovery_codes(&state, req).await
        }
        (account_factors::REMOVE_KEY_PATH, &Method::POST) => account_factors::remove_key(&state, req).await,
        (
            account::SIGN_OUT_OTHERS_PATH
            | account::PASSWORD_PATH
            | account_factors::ADD_PATH
            | account_factors::CONFIRM_PATH
            | account_factors::REMOVE_PATH
            | account_factors::RECOVERY_CODES_PATH
            | account_factors::REMOVE_KEY_PATH,
            _,
        ) => method_not_allowed(&req, "POST"),
        (crate::auth::INVITATION_PATH, &Method::GET | &Method::HEAD) => {
            invitation::show(&state, &req.into_parts().0).await
        }
        (crate::auth::INVITATION_PATH, &Method::POST) => invitation::accept(&state, req).await,
        (crate::auth::INVITATION_PATH, _) => method_not_allowed(&req, "GET, HEAD, POST"),
        (second_factor::SECOND_FACTOR_PATH, &Method::GET | &Method::HEAD) => {
            second_factor::show(&state, &req.into_parts().0).await
        }
        (second_factor::SECOND_FACTOR_PATH, &Method::POST) => second_factor::submit(&state, req).await,
        (second_factor::SECOND_FACTOR_PATH, _) => method_not_allowed(&req, "GET, HEAD, POST"),
        (logout::SIGNED_OUT_PATH, &Method::GET | &Method::HEAD) => logout::signed_out(&state),
        (TOKEN_PATH | REVOKE_PATH | INTROSPECT_PATH, &Method::OPTIONS) => {
            cors::preflight(&state, req.headers())
        }
        (TOKEN_PATH, &Method::GET | &Method::POST) | (REVOKE_PATH | INTROSPECT_PATH, &Method::POST) => {
            let (parts, params) = match read_params(req, state.config.limits.max_body_bytes).await {
                Ok(read) => read,
                Err(err) => return err.into_response(),
            };
            let mut response = match parts.uri.path() {
                TOKEN_PATH => token::token(&state, &parts, &params).await,
                REVOKE_PATH => revoke::revoke(&state, &parts, &params).await,
                _ => introspect::introspect(&state, &parts, &params).await,
            };
            cors::decorate(&state, &parts.headers, &mut response);
            response
        }
        (TOKEN_PATH, _) => method_not_allowed(&req, "GET, POST, OPTIONS"),
        (REVOKE_PATH | INTROSPECT_PATH, _) => method_not_allowed(&req, "POST, OPTIONS"),
        (ME_PATH, &Method::GET | &Method::HEAD) => me::me(&state, &req.into_parts().0).await,
        (ME_PATH, _) => method_not_allowed(&req, "GET, HEAD"),
        (FORWARD_AUTH_PATH, &Method::GET | &Method::HEAD) => {
            forward_auth::check(&state, &req.into_parts().0).await
        }
        (FORWARD_AUTH_PATH, _) => method_not_allowed(&req, "GET, HEAD"),
        (DISCOVERY_PATH | OPENID_DISCOVERY_PATH, &Method::GET | &Method::HEAD) => discovery::metadata(&state),
        (JWKS_PATH, &Method::GET | &Method::HEAD) => discovery::jwks(&state),
        (DISCOVERY_PATH | OPENID_DISCOVERY_PATH | JWKS_PATH, _) => method_not_allowed(&req, "GET, HEAD"),
        (end_session::END_SESSION_PATH, &Method::GET | &Method::POST) => {
            let (parts, params) = match read_params(req, state.config.limits.max_body_bytes).await {
                Ok(read) => read,
                Err(err) => return err.into_response(),
            };
            end_session::end_session(&state, &parts, &params).await
        }
        (end_session::END_SESSION_PATH, _) => method_not_allowed(&req, "GET, POST"),
        (USERINFO_PATH, &Method::GET | &Method::POST) => {
            userinfo::userinfo(&state, &req.into_parts().0).await
        }
        (USERINFO_PATH, _) => method_not_allowed(&req, "GET, POST"),
        _ if path.starts_with(webauthn::WEBAUTHN_PREFIX) => webauthn::handle(&state, req).await,
        _ if path.starts_with(crate::admin::PREFIX) => crate::admin::handle(&state, req).await,
        _ if path.starts_with(crate::admin::CONSOLE_PREFIX) => crate::admin::console(&state, req).await,
        ("/management/admin", _) => {
            response::redirect(StatusCode::MOVED_PERMANENTLY, crate::admin::CONSOLE_PREFIX)
                .expect("a static path is a valid Location")
        }
        _ if path.starts_with(backchannel_logout::BACKCHANNEL_PREFIX) => match method {
            Method::POST => {
                let (parts, params) = match read_params(req, state.config.limits.max_body_bytes).await {
                    Ok(read) => read,
                    Err(err) => return err.into_response(),
                };
                backchannel_logout::logout(&state, parts.uri.path(), &params).await
            }
            _ => method_not_allowed(&req, "POST"),
        },
        _ if path.starts_with(provider_sign_in::CALLBACK_PREFIX) => match method {
            Method::GET => provider_sign_in::callback(&state, &req.into_parts().0).await,
            _ => method_not_allowed(&req, "GET"),
        },
        _ => match user_revocation(&path) {
            Some((username, one)) if method == Method::PUT || method == Method::POST => {
                revoke::revoke_user_tokens(&state, &req.into_parts().0, &username, one).await
            }
            Some(_) => method_not_allowed(&req, "PUT, POST"),
            None => not_found(&state, &req),
        },
    }
}

/// `/management/users/{user}/revoketokens` or `…/revoketoken`: the user,
/// and whether one token is meant.
fn user_revocation(path: &str) -> Option<(String, bool)> {
    let rest = path.strip_prefix(USERS_PREFIX)?;
    let (user, action) = rest.split_once('/')?;
    let one = match action {
        "revoketokens" => false,
        "revoketoken" => true,
        _ => return None,
    };
    let user = percent_decode_str(user).decode_utf8().ok()?.into_owned();
    (!user.is_empty()).then_some((user, one))
}

/// The parameters of a token-style request: the query of a `GET`; for a
/// `POST`, a form body or a JSON object (also JSON sent with no or another
/// Content-Type, as App Services clients do), or the query if the body is
/// empty.
async fn read_params<B>(req: Request<B>, limit: usize) -> Result<(Parts, Params), OAuthError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    if parts.method == Method::GET {
        let params = Params::from_query(parts.uri.query());
        return Ok((parts, params));
    }
    let body = match request::read_body(body, limit).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return Err(OAuthError::payload_too_large()),
        Err(BodyError::Broken) => {
            return Err(OAuthError::invalid_request(
                "The request body did not arrive whole.",
            ))
        }
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let trimmed = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&body[..0], |at| &body[at..]);
    // A body that is a JSON object is read as one whatever its
    // Content-Type says: App Services clients sent JSON with none, and
    // `curl -d '{…}'` labels it a form.
    let json_object = trimmed.first() == Some(&b'{');
    let form = content_type.starts_with("application/x-www-form-urlencoded");
    let params = if content_type.contains("json") || (json_object && !form) {
        json_params(trimmed)?
    } else if let Some(params) = json_object.then(|| json_params(trimmed).ok()).flatten() {
        params
    } else if trimmed.is_empty() {
        Params::from_query(parts.uri.query())
    } else {
        Params::parse(&body)
    };
    Ok((parts, params))
}

fn json_params(body: &[u8]) -> Result<Params, OAuthError> {
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| OAuthError::invalid_request(format!("The JSON body is not an object: {e}.")))?;
    let mut pairs = Vec::with_capacity(object.len());
    for (name, value) in object {
        let text = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Null => continue,
            _ => {
                return Err(OAuthError::invalid_request(format!(
                    "The JSON field {name:?} must be a string."
                )))
            }
        };
        pairs.push((name, text));
    }
    Ok(Params::from_pairs(pairs))
}

/// The value of `name`, if sent (once).
fn param<'a>(params: &'a Params, name: &str) -> Result<Option<&'a str>, OAuthError> {
    Ok(params.one(name)?)
}

/// The value of `name`, which must be sent (once).
fn required_param<'a>(params: &'a Params, name: &str) -> Result<&'a str, OAuthError> {
    param(params, name)?.ok_or_else(|| OAuthError::invalid_request(format!("{name} is required.")))
}

/// The access token a request carries and its session; `401
/// invalid_token` if there is none or it is not valid.
async fn access_session(state: &AuthState, parts: &Parts) -> Result<(String, Session), OAuthError> {
    let Ok(presented) = credential::find(&parts.headers, &parts.uri) else {
        return Err(OAuthError::invalid_request(
            "access_token was sent more than once.",
        ));
    };
    let Some(presented) = presented else {
        return Err(OAuthError::invalid_token("Send Authorization: Bearer <token>."));
    };
    let token = presented.token.into_owned();
    if !credential::is_well_formed(&token) {
        return Err(OAuthError::invalid_token("The access token is malformed."));
    }
    match state.store.get(&TokenKey::of(&token)).await? {
        Some(session) if session.is_access() => Ok((token, session)),
        _ => Err(OAuthError::invalid_token(
            "The access token is unknown, revoked or expired.",
        )),
    }
}

/// App Services' `user` object.
#[derive(Serialize)]
struct UserObject<'a> {
    uuid: String,
    #[serde(rename = "type")]
    kind: &'static str,
    username: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    name: &'a str,
    activated: bool,
    disabled: bool,
    /// authgate's own: the groups of the sign-in, and the outside provider
    /// that vouched for it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    groups: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<&'a str>,
}

impl<'a> UserObject<'a> {
    /// The person a session is for, if it is for one: a user of the
    /// directory (`entry`), or someone an outside provider vouched for;
    /// with the groups and provider of the session's sign-in. A
    /// client-credentials token names a client, not a person.
    /// The user a session is for, if it is a person known to be there:
    /// the config has them, or they came from a provider or from a source
    /// asked over the network (`elsewhere`: the database, LDAP), whose
    /// sessions end when the person is deleted there.
    fn of_session(entry: Option<&'a User>, session: &'a Session, elsewhere: bool) -> Option<Self> {
        let identity = session.identity();
        let person = session.client_id() != Some(identity.username());
        let known = entry.is_some() || identity.provider().is_some() || elsewhere;
        (person && known).then(|| Self::of(entry, identity))
    }

    fn of(user: Option<&'a User>, identity: &'a Identity) -> Self {
        Self {
            uuid: user.map_or_else(
                || crate::identity::user_uuid(identity.username()),
                |u| u.uuid.clone(),
            ),
            kind: "user",
            username: identity.username(),
            email: identity.email(),
            name: user.map_or_else(|| identity.name().unwrap_or(identity.username()), User::name),
            activated: true,
            disabled: false,
            groups: identity.groups().collect(),
            provider: identity.provider(),
        }
    }
}

fn not_found<B>(state: &AuthState, req: &Request<B>) -> Response<OwnBody> {
    state.error_for(
        req.headers(),
        StatusCode::NOT_FOUND,
        "not_found",
        "The gateway has no endpoint at this path.",
    )
}

fn method_not_allowed<B>(req: &Request<B>, allow: &'static str) -> Response<OwnBody> {
    response::method_not_allowed(req.method(), allow)
}
