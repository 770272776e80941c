//! The admin API (`/management/admin/api/v1/`): people, groups, sessions
//! and the audit log in JSON, for scripts and infrastructure tools,
//! described by the OpenAPI 3.1 document at
//! `/management/admin/api/openapi.json`.
//!
//! Who may call it: an admin (a `[[users]]` entry with `admin = true`, or
//! a member of an `[admin] groups` group) by their session cookie, with
//! `X-Authgate-Csrf` (the sign-in form's CSRF field for their CSRF
//! cookie) on every change; or a bearer token with the scope
//! `authgate:admin`, of an admin or of a client (client credentials)
//! whose scopes allow it. Every error is RFC 9457 problem JSON.

mod api;
mod console;
mod problem;

pub(crate) use self::console::{handle as console, PREFIX as CONSOLE_PREFIX};

use std::net::IpAddr;

use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use percent_encoding::percent_decode_str;
use utoipa::OpenApi;

use crate::auth::credential::{self, Source};
use crate::auth::csrf::CSRF_COOKIE;
use crate::auth::state::AuthState;
use crate::store::{Session, TokenKey};
use crate::web::request::{self, cookie, BodyError, Params};
use crate::web::response::{self, OwnBody};

use self::problem::Problem;

/// Where the API is.
pub(crate) const PREFIX: &str = "/management/admin/api/";
const V1: &str = "/management/admin/api/v1/";
const OPENAPI: &str = "/management/admin/api/openapi.json";
/// The scope a bearer token needs.
pub(crate) const ADMIN_SCOPE: &str = "authgate:admin";
/// The header that carries the CSRF field on a change made with a cookie.
const CSRF_HEADER: &str = "x-authgate-csrf";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The admin making a call.
#[derive(Debug)]
pub(crate) struct Admin {
    pub(crate) name: String,
    pub(crate) address: Option<IpAddr>,
    /// The session making the call (which it may not end by the API: it
    /// signs out instead).
    pub(crate) session: TokenKey,
}

/// Answers a request under [`PREFIX`].
pub(crate) async fn handle<B>(state: &AuthState, req: Request<B>) -> Response<OwnBody>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    if parts.uri.path() == OPENAPI {
        return match parts.method {
            Method::GET | Method::HEAD => response::json(StatusCode::OK, &api::ApiDoc::openapi()),
            _ => response::method_not_allowed(&parts.method, "GET, HEAD"),
        };
    }
    let admin = match authenticate(state, &parts).await {
        Ok(admin) => admin,
        Err(problem) => return problem.into_response(),
    };
    let body = match request::read_body(body, state.config.limits.max_body_bytes).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            return Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large").into_response()
        }
        Err(BodyError::Broken) => {
            return Problem::new(StatusCode::BAD_REQUEST, "the body did not arrive whole").into_response()
        }
    };
    match route(state, &admin, &parts, &body).await {
        Ok((status, Some(json))) => response::json(status, &json),
        Ok((status, None)) => response::empty(status),
        Err(problem) => problem.into_response(),
    }
}

/// The operation a method and path name.
async fn route(state: &AuthState, admin: &Admin, parts: &Parts, body: &[u8]) -> api::Answer {
    let Some(rest) = parts.uri.path().strip_prefix(V1) else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "the admin API is under /management/admin/api/v1/",
        ));
    };
    let segments: Vec<String> = rest
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8().map(|c| c.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|_| Problem::new(StatusCode::BAD_REQUEST, "a path segment is not UTF-8"))?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = &parts.method;
    let query = parts.uri.query();
    match (method, segments.as_slice()) {
        (&Method::GET, ["users"]) => api::list_users(state, query_of(query)?).await,
        (&Method::POST, ["users"]) => api::add_user(state, admin, body_of(body)?).await,
        (&Method::GET, ["users", name]) => api::get_user(state, name).await,
        (&Method::PATCH, ["users", name]) => api::change_user(state, admin, name, body_of(body)?).await,
        (&Method::DELETE, ["users", name]) => api::delete_user(state, admin, name).await,
        (&Method::POST, ["users", name, "revoke-sessions"]) => api::revoke_sessions(state, admin, name).await,
        (&Method::POST, ["users", name, "invitation"]) => api::invite_user(state, admin, name).await,
        (&Method::GET, ["users", name, "factors"]) => api::list_factors(state, name).await,
        (&Method::DELETE, ["users", name, "factors", id]) => api::remove_factor(state, admin, name, id).await,
        (&Method::PUT, ["users", name, "second-factor-required"]) => {
            api::require_factor(state, admin, name, body_of(body)?).await
        }
        (&Method::GET, ["groups"]) => api::list_groups(state).await,
        (&Method::POST, ["groups"]) => api::add_group(state, admin, body_of(body)?).await,
        (&Method::GET, ["groups", group, "members"]) => api::list_members(state, group).await,
        (&Method::PUT, ["groups", group, "members", name]) => {
            api::add_member(state, admin, group, name).await
        }
        (&Method::DELETE, ["groups", group, "members", name]) => {
            api::remove_member(state, admin, group, name).await
        }
        (&Method::GET, ["audit"]) => api::audit(state, query_of(query)?).await,
        (&Method::GET, ["sessions"]) => api::list_sessions(state, query_of(query)?).await,
        (&Method::DELETE, ["sessions", id]) => api::end_session(state, admin, id).await,
        (&Method::GET, ["clients"]) => api::list_clients(state).await,
        (&Method::POST, ["clients"]) => api::add_client(state, admin, body_of(body)?).await,
        (&Method::GET, ["clients", id]) => api::get_client(state, id).await,
        (&Method::PATCH, ["clients", id]) => api::change_client(state, admin, id, body_of(body)?).await,
        (&Method::DELETE, ["clients", id]) => api::delete_client(state, admin, id).await,
        (&Method::POST, ["clients", id, "rotate-secret"]) => api::rotate_secret(state, admin, id).await,
        (_, ["users"] | ["groups"] | ["clients"]) => Err(not_allowed("GET, POST")),
        (_, ["users", _] | ["clients", _]) => Err(not_allowed("GET, PATCH, DELETE")),
        (_, ["users", _, "factors"]) => Err(not_allowed("GET")),
        (_, ["users", _, "factors", _]) => Err(not_allowed("DELETE")),
        (_, ["users", _, "second-factor-required"]) => Err(not_allowed("PUT")),
        (_, ["users", _, "revoke-sessions" | "invitation"] | ["clients", _, "rotate-secret"]) => {
            Err(not_allowed("POST"))
        }
        (_, ["groups", _, "members", _]) => Err(not_allowed("PUT, DELETE")),
        (_, ["groups", _, "members"]) => Err(not_allowed("GET")),
        (_, ["audit"] | ["sessions"]) => Err(not_allowed("GET")),
        (_, ["sessions", _]) => Err(not_allowed("DELETE")),
        _ => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "the admin API has no such resource",
        )),
    }
}

fn not_allowed(allow: &'static str) -> Problem {
    Problem::new(StatusCode::METHOD_NOT_ALLOWED, format!("use {allow}")).allowing(allow)
}

/// A JSON body, read strictly (unknown fields refused).
fn body_of<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    let invalid = |e: serde_json::Error| Problem::new(StatusCode::BAD_REQUEST, format!("the JSON body: {e}"));
    // An object, and nothing else (serde would read an array as a struct).
    let value: serde_json::Value = serde_json::from_slice(body).map_err(invalid)?;
    if !value.is_object() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "the JSON body must be an object",
        ));
    }
    serde_json::from_value(value).map_err(invalid)
}

/// A query, read strictly.
fn query_of<T: serde::de::DeserializeOwned>(query: Option<&str>) -> Result<T, Problem> {
    let query = query.unwrap_or("");
    let params = Params::from_query(Some(query));
    let mut seen = std::collections::HashSet::new();
    if let Some((name, _)) = params.pairs().find(|(name, _)| !seen.insert(*name)) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            format!("{name} was sent more than once"),
        ));
    }
    // Each value as the field's type asks (a number where one is wanted,
    // else the text as sent: `?search=45` is a search for "45").
    serde_urlencoded::from_str(query)
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, format!("the query: {e}")))
}

/// Who is calling, if an admin may.
async fn authenticate(state: &AuthState, parts: &Parts) -> Result<Admin, Problem> {
    let unauthorized = |detail: &str| Problem::new(StatusCode::UNAUTHORIZED, detail);
    let presented = credential::find(&parts.headers, &parts.uri)
        .map_err(|_| Problem::new(StatusCode::BAD_REQUEST, "access_token was sent more than once"))?
        .ok_or_else(|| {
            unauthorized(
                "send Authorization: Bearer <a token with the scope authgate:admin>, or sign in as an admin",
            )
        })?;
    if !credential::is_well_formed(&presented.token) {
        return Err(unauthorized("the token is malformed"));
    }
    let session = state
        .store
        .get(&TokenKey::of(&presented.token))
        .await
        .map_err(|e| Problem::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?
        .filter(Session::is_access)
        .ok_or_else(|| unauthorized("the token is unknown, revoked or expired"))?;
    let scoped = session
        .scope()
        .is_some_and(|s| s.split(' ').any(|s| s == ADMIN_SCOPE));
    let client_credentials = session.client_id() == Some(session.username());
    let allowed = match presented.source {
        Source::Cookie => {
            let safe = matches!(parts.method, Method::GET | Method::HEAD);
            let field = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if !safe && !state.csrf.verify(cookie(&parts.headers, CSRF_COOKIE), field) {
                return Err(Problem::new(
                    StatusCode::FORBIDDEN,
                    "a change made with the session cookie needs X-Authgate-Csrf (the CSRF field for the authgate_csrf cookie)",
                ));
            }
            !client_credentials && is_admin(state, &session)
        }
        _ if client_credentials => scoped && lists_admin_scope(state, session.username()),
        _ => scoped && is_admin(state, &session),
    };
    if !allowed {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "only an admin may use the admin API (and a bearer token needs the scope authgate:admin)",
        ));
    }
    Ok(Admin {
        name: session.username().to_owned(),
        address: state.client_ip(&parts.extensions, &parts.headers),
        session: TokenKey::of(&presented.token),
    })
}

/// Whether the client of that id still exists and names the admin scope
/// among its scopes: a client that may ask for any scope is no admin.
fn lists_admin_scope(state: &AuthState, client_id: &str) -> bool {
    state
        .directory
        .client(client_id)
        .is_some_and(|c| c.scopes().is_some_and(|s| s.iter().any(|s| s == ADMIN_SCOPE)))
}

/// The access-token session a request presents (cookie or bearer), if
/// valid.
async fn session_of(state: &AuthState, parts: &Parts) -> Option<(TokenKey, Session)> {
    let presented = credential::find(&parts.headers, &parts.uri).ok().flatten()?;
    if !credential::is_well_formed(&presented.token) {
        return None;
    }
    let key = TokenKey::of(&presented.token);
    let session = state
        .store
        .get(&key)
        .await
        .ok()
        .flatten()
        .filter(Session::is_access)?;
    Some((key, session))
}

/// Whether the session's user is an admin: `admin = true` in `[[users]]`,
/// or a member of an `[admin] groups` group.
fn is_admin(state: &AuthState, session: &Session) -> bool {
    let identity = session.identity();
    let configured = identity.provider().is_none()
        && state
            .directory
            .user(identity.username())
            .is_some_and(|u| u.is_admin());
    configured || state.config.admin.groups.iter().any(|g| identity.in_group(g))
}
