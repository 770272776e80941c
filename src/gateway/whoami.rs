//! The built-in upstream (`[upstream] builtin = "whoami"`): it answers with
//! the request it received, like traefik's whoami, so the gateway can be
//! tried with nothing else running.

use std::convert::Infallible;
use std::fmt::Write;
use std::future::{ready, Ready};
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use tower::Service;

use crate::proxy::{text_response, ProxyBody};

/// Answers every request with its method, path and headers, as text.
#[derive(Clone, Copy, Debug, Default)]
pub struct Whoami;

impl<B> Service<Request<B>> for Whoami {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let mut text = String::from("authgate whoami: this is what the upstream received.\n\n");
        let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let _ = writeln!(text, "{} {} {:?}", req.method(), target, req.version());
        for (name, value) in req.headers() {
            let _ = writeln!(text, "{}: {}", name, String::from_utf8_lossy(value.as_bytes()));
        }
        let mut response = text_response(StatusCode::OK, text);
        // It shows the session's token: the browser must not keep it, or
        // Back after signing out would show it again.
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        ready(Ok(response))
    }
}
