//! The responses the gateway writes itself: pages, JSON errors, redirects,
//! each with the headers its kind needs.

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

/// The body of every response the gateway writes itself.
pub(crate) type OwnBody = Full<Bytes>;

/// Headers every page carries: no framing, no inline script, no caching,
/// no referrer.
const PAGE_HEADERS: [(HeaderName, &str); 6] = [
    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; frame-ancestors 'none'; base-uri 'none'",
    ),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::CACHE_CONTROL, "no-store"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
];

/// An HTML page.
pub(crate) fn html(status: StatusCode, body: String) -> Response<OwnBody> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in PAGE_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A JSON body, not to be cached.
pub(crate) fn json(status: StatusCode, body: &impl Serialize) -> Response<OwnBody> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

/// An RFC 6749 §5.2 style JSON error: `{"error", "error_description"}`.
/// An answer with no body (`204`).
pub(crate) fn empty(status: StatusCode) -> Response<OwnBody> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(crate) fn json_error(status: StatusCode, error: &str, description: &str) -> Response<OwnBody> {
    json(
        status,
        &ErrorBody {
            error,
            error_description: description,
        },
    )
}

/// A `401` for an API client: JSON, with `WWW-Authenticate: Bearer`
/// (RFC 6750 §3; `error="invalid_token"` when a token was presented).
pub(crate) fn unauthorized(token_presented: bool) -> Response<OwnBody> {
    let (error, description, challenge) = if token_presented {
        (
            "invalid_token",
            "The access token is unknown, revoked or expired. Sign in again.",
            "Bearer realm=\"authgate\", error=\"invalid_token\"",
        )
    } else {
        (
            "unauthorized",
            "Sign-in required: send Authorization: Bearer <token>.",
            "Bearer realm=\"authgate\"",
        )
    };
    let mut response = json_error(StatusCode::UNAUTHORIZED, error, description);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    response
}

/// A redirect to `location`; `None` if `location` cannot be a header
/// value (it holds CR, LF or other control characters).
pub(crate) fn redirect(status: StatusCode, location: &str) -> Option<Response<OwnBody>> {
    let value = HeaderValue::from_str(location).ok()?;
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::LOCATION, value);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    Some(response)
}

/// A `405` naming the methods `allow`ed.
pub(crate) fn method_not_allowed(method: &http::Method, allow: &'static str) -> Response<OwnBody> {
    let mut response = json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        &format!("{method} is not allowed here; use {allow}."),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}
