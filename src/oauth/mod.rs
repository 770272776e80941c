//! The gateway's own endpoints under `/management/`: routing, and the
//! pieces every endpoint shares.

mod authorize;
mod logout;

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;

use crate::pages::ErrorPage;
use crate::request::wants_html;
use crate::response::{self, OwnBody};
use crate::state::AuthState;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The sign-in page.
pub(crate) const AUTHORIZE_PATH: &str = "/management/authorize";
const LOGOUT_PATH: &str = "/management/logout";

/// Whether the gateway answers `path` itself.
pub(crate) fn is_own_endpoint(path: &str) -> bool {
    path.strip_prefix("/management")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        || path == "/.well-known/oauth-authorization-server"
}

/// Answers a request for one of the gateway's own endpoints.
pub(crate) async fn handle<B>(state: Arc<AuthState>, req: Request<B>) -> Response<OwnBody>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let method = req.method().clone();
    match (req.uri().path(), &method) {
        (AUTHORIZE_PATH, &Method::GET | &Method::HEAD) => authorize::show(&state, &req),
        (AUTHORIZE_PATH, &Method::POST) => authorize::submit(&state, req).await,
        (LOGOUT_PATH, &Method::GET | &Method::POST) => {
            let (parts, _) = req.into_parts();
            logout::logout(&state, &parts).await
        }
        (AUTHORIZE_PATH, _) => method_not_allowed(&req, "GET, HEAD, POST"),
        (LOGOUT_PATH, _) => method_not_allowed(&req, "GET, POST"),
        _ => not_found(&state, &req),
    }
}

/// An error page for a browser.
pub(crate) fn error_page(
    state: &AuthState,
    status: StatusCode,
    title: &str,
    message: &str,
    error: &str,
) -> Response<OwnBody> {
    response::html(
        status,
        state.pages.error(&ErrorPage {
            title,
            message,
            error,
        }),
    )
}

/// An error for whoever asked: a page for a browser, JSON otherwise.
pub(crate) fn error_for(
    state: &AuthState,
    headers: &HeaderMap,
    status: StatusCode,
    error: &str,
    description: &str,
) -> Response<OwnBody> {
    if wants_html(headers) {
        let title = status.canonical_reason().unwrap_or("Error");
        error_page(state, status, title, description, error)
    } else {
        response::json_error(status, error, description)
    }
}

fn not_found<B>(state: &AuthState, req: &Request<B>) -> Response<OwnBody> {
    error_for(
        state,
        req.headers(),
        StatusCode::NOT_FOUND,
        "not_found",
        "The gateway has no endpoint at this path.",
    )
}

fn method_not_allowed<B>(req: &Request<B>, allow: &'static str) -> Response<OwnBody> {
    let mut response = response::json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        &format!("{} is not allowed here; use {allow}.", req.method()),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}
