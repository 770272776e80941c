//! `GET /management/auth`: forward authentication for a proxy that is
//! already there (nginx `auth_request`, Traefik `ForwardAuth`).
//!
//! `202` with `X-Auth-Request-User`, `-Email` and `-Access-Token` for a
//! valid credential (or a public path); otherwise `401`, or, for a browser
//! behind Traefik, a redirect to the sign-in page that comes back to the
//! page asked for. The original URI (`X-Forwarded-Uri` from Traefik,
//! `X-Original-URI` from nginx) counts only from a trusted proxy.

use http::header::{HeaderName, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::paths;
use crate::request::wants_html;
use crate::response::{self, OwnBody};
use crate::state::AuthState;

use super::{access_session, AUTHORIZE_PATH};

const X_FORWARDED_URI: &str = "x-forwarded-uri";
const X_ORIGINAL_URI: &str = "x-original-uri";

pub(super) async fn check(state: &AuthState, parts: &Parts) -> Response<OwnBody> {
    let trusted = state.is_from_trusted_proxy(&parts.extensions);
    let original = trusted
        .then(|| {
            [X_FORWARDED_URI, X_ORIGINAL_URI]
                .iter()
                .find_map(|name| parts.headers.get(*name).and_then(|v| v.to_str().ok()))
        })
        .flatten();
    let public = original
        .and_then(|uri| paths::normalize(uri.split('?').next().unwrap_or(uri)))
        .is_some_and(|path| paths::is_public(&path, &state.config.public_paths));
    if public {
        return accepted();
    }
    match access_session(state, parts).await {
        Ok((token, session)) => {
            let mut response = accepted();
            let headers = response.headers_mut();
            let mut set = |name: &'static str, value: &str| {
                if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
                    headers.insert(HeaderName::from_static(name), value);
                }
            };
            set("x-auth-request-user", session.username());
            if let Some(email) = session.email() {
                set("x-auth-request-email", email);
            }
            if let Some(scope) = session.scope() {
                set("x-auth-request-scope", scope);
            }
            set("x-auth-request-access-token", &token);
            response
        }
        Err(refused) => {
            // Traefik hands this answer to the browser: send it to sign in.
            let browser = parts.headers.contains_key(X_FORWARDED_URI) && wants_html(&parts.headers);
            let back_to = original.and_then(paths::safe_return_path);
            match (browser, back_to) {
                (true, Some(rd)) => {
                    let query = form_urlencoded::Serializer::new(String::new())
                        .append_pair("rd", rd)
                        .finish();
                    response::redirect(StatusCode::FOUND, &format!("{AUTHORIZE_PATH}?{query}"))
                        .unwrap_or_else(|| refused.into_response())
                }
                _ => refused.into_response(),
            }
        }
    }
}

fn accepted() -> Response<OwnBody> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::ACCEPTED;
    response
}
