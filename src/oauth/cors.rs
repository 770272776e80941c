//! CORS for the token, revocation and introspection endpoints, for the
//! origins configured per client (`cors_origins`), so a single-page app can
//! call them.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::auth::state::AuthState;
use crate::web::response::OwnBody;

/// The request's `Origin`, if some client lists it.
fn allowed_origin<'a>(state: &AuthState, headers: &'a HeaderMap) -> Option<&'a HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    state
        .directory
        .clients()
        .iter()
        .any(|c| c.cors_origins().iter().any(|o| o == text))
        .then_some(origin)
}

/// Answers a preflight `OPTIONS`: `204`, with the CORS headers only for an
/// allowed origin.
pub(super) fn preflight(state: &AuthState, headers: &HeaderMap) -> Response<OwnBody> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    if let Some(origin) = allowed_origin(state, headers) {
        let out = response.headers_mut();
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        out.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Authorization, Content-Type"),
        );
        out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    }
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Origin"));
    response
}

/// Adds the CORS headers to an actual response for an allowed origin.
pub(super) fn decorate(state: &AuthState, request: &HeaderMap, response: &mut Response<OwnBody>) {
    if let Some(origin) = allowed_origin(state, request) {
        response
            .headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    }
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("Origin"));
}
