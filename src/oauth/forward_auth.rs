//! `GET /management/auth`: forward authentication for a proxy that is
//! already there (nginx `auth_request`, Traefik `ForwardAuth`).
//!
//! `202` with `X-Auth-Request-User`, `-Email`, `-Groups`,
//! `-Preferred-Username` and `-Access-Token` for a valid credential (or a
//! public path); `403` for one that `[auth] allowed_users` and
//! `allowed_groups`, or the check's own `?allowed_groups=a,b` and
//! `?allowed_users=…`, do not let in; otherwise `401`, or, for a browser
//! behind Traefik, a redirect to the sign-in page that comes back to the
//! page asked for. The original URI (`X-Forwarded-Uri` from Traefik,
//! `X-Original-URI` from nginx) counts only from a trusted proxy; with
//! `X-Forwarded-Proto` and `X-Forwarded-Host` beside it, a sign-in comes
//! back to the whole URL, on a host `auth.return_hosts` allows. Every
//! `401` names the sign-in page in `X-Auth-Request-Sign-In`, escaped as a
//! URL must be, for nginx to redirect to.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::auth::state::AuthState;
use crate::config::Allowed;
use crate::store::Identity;
use crate::web::paths;
use crate::web::request::{wants_html, Params};
use crate::web::response::{self, OwnBody};

use super::{access_session, AUTHORIZE_PATH};

const X_FORWARDED_URI: &str = "x-forwarded-uri";
const X_ORIGINAL_URI: &str = "x-original-uri";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const X_FORWARDED_HOST: &str = "x-forwarded-host";
/// On a `401`: the sign-in page's address, coming back to the page asked
/// for. nginx reads it with `auth_request_set` and redirects to it.
const X_AUTH_REQUEST_SIGN_IN: HeaderName = HeaderName::from_static("x-auth-request-sign-in");

/// What a trusted proxy says the browser asked for.
struct Original<'a> {
    /// The request's target (path and query).
    target: &'a str,
    /// Its whole URL, when the proxy also says how and on which host.
    url: Option<String>,
}

impl<'a> Original<'a> {
    fn from(headers: &'a HeaderMap) -> Option<Self> {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let target = text(X_FORWARDED_URI).or_else(|| text(X_ORIGINAL_URI))?;
        let url = match (text(X_FORWARDED_PROTO), text(X_FORWARDED_HOST)) {
            (Some(proto @ ("http" | "https")), Some(host)) if target.starts_with('/') => {
                Some(format!("{proto}://{host}{target}"))
            }
            _ => None,
        };
        Some(Self { target, url })
    }

    /// Where a sign-in comes back to: the whole URL, on a host
    /// `auth.return_hosts` allows; else the target, on the gateway's own
    /// origin.
    fn return_to(&self, state: &AuthState) -> Option<String> {
        if let Some(url) = &self.url {
            if let Some(url) = paths::return_target(url, &state.config.auth.return_hosts) {
                return Some(url.to_owned());
            }
        }
        paths::safe_return_path(self.target).map(str::to_owned)
    }
}

pub(super) async fn check(state: &AuthState, parts: &Parts) -> Response<OwnBody> {
    let trusted = state.is_from_trusted_proxy(&parts.extensions);
    let original = trusted.then(|| Original::from(&parts.headers)).flatten();
    let public = original
        .as_ref()
        .and_then(|o| paths::normalize(o.target.split('?').next().unwrap_or(o.target)))
        .is_some_and(|path| paths::is_public(&path, &state.config.auth.public_paths));
    if public {
        return accepted();
    }
    match access_session(state, parts).await {
        Ok((_, session)) if !admitted(state, parts, session.identity()) => state.error_for(
            &parts.headers,
            StatusCode::FORBIDDEN,
            "access_denied",
            "You are signed in, but this part of the site is not open to you.",
        ),
        Ok((token, session)) => {
            let mut response = accepted();
            let headers = response.headers_mut();
            let identity = session.identity();
            let forwarded = identity.as_headers();
            let scope = session.scope().and_then(|s| HeaderValue::from_str(s).ok());
            let token = HeaderValue::from_str(&token).ok();
            for (name, value) in [
                ("x-auth-request-user", &forwarded.user),
                ("x-auth-request-email", &forwarded.email),
                ("x-auth-request-groups", &forwarded.groups),
                ("x-auth-request-preferred-username", &forwarded.preferred_username),
                ("x-auth-request-scope", &scope),
                ("x-auth-request-access-token", &token),
            ] {
                if let Some(value) = value {
                    headers.insert(HeaderName::from_static(name), value.clone());
                }
            }
            response
        }
        Err(refused) => {
            let back_to = original.as_ref().and_then(|o| o.return_to(state));
            let sign_in = back_to.as_deref().map(|rd| {
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair("rd", rd)
                    .finish();
                // An absolute return URL is on another host: the sign-in
                // page is the gateway's, by its own address.
                match rd.starts_with('/') {
                    true => format!("{AUTHORIZE_PATH}?{query}"),
                    false => format!("{}{AUTHORIZE_PATH}?{query}", state.issuer()),
                }
            });
            // Traefik hands this answer to the browser: send it to sign in.
            let browser = parts.headers.contains_key(X_FORWARDED_URI) && wants_html(&parts.headers);
            if let (true, Some(location)) = (browser, &sign_in) {
                if let Some(redirect) = response::redirect(StatusCode::FOUND, location) {
                    return redirect;
                }
            }
            let mut response = refused.into_response();
            if let Some(value) = sign_in.and_then(|url| HeaderValue::try_from(url).ok()) {
                response.headers_mut().insert(X_AUTH_REQUEST_SIGN_IN, value);
            }
            response
        }
    }
}

/// Whether the rules let `identity` in: `[auth] allowed_users` and
/// `allowed_groups`, then the check's own `allowed_users` and
/// `allowed_groups` query parameters (comma-separated, as
/// `auth_request /management/auth?allowed_groups=admins` sends them).
fn admitted(state: &AuthState, parts: &Parts, identity: &Identity) -> bool {
    let in_group = |group: &str| identity.in_group(group);
    if let Some(allowed) = &state.config.auth.allowed {
        if !allowed.admits(identity.username(), in_group) {
            return false;
        }
    }
    let params = Params::from_query(parts.uri.query());
    let list = |name: &str| -> Vec<String> {
        params
            .all(name)
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let asked = Allowed {
        users: list("allowed_users"),
        groups: list("allowed_groups"),
    };
    (asked.users.is_empty() && asked.groups.is_empty()) || asked.admits(identity.username(), in_group)
}

fn accepted() -> Response<OwnBody> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::ACCEPTED;
    response
}
