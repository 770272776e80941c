//! One request through the gateway's service stack: its id, its line in
//! the access log, its count in the metrics, and a panic while handling it
//! turned into that request's `500` (the connection and the server go on).
//!
//! [`Handling`] is written out by hand, not as `async` blocks: hyper keeps
//! it in the connection's state until the answer's head is written, for
//! every request. Nested `async` blocks held the service's future twice
//! (once as captured, once as awaited): 1,056 bytes copied and written per
//! request, cold lines with hundreds of connections.

use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Method, Request, Response, StatusCode};
use http_body_util::Either;
use pin_project_lite::pin_project;
use tower::Service;

use crate::config::LogFormat;
use crate::layer::AuthBody;
use crate::obs::access_log::AccessLine;
use crate::obs::logging::in_request;
use crate::obs::metrics::{Metrics, RouteKind};
use crate::proxy::error::ErrorKind as UpstreamErrorKind;
use crate::store::Session;
use crate::web::response;

/// Starts one request through `service`: gives it an id (the one a trusted
/// proxy set, or a new one), calls the service with that id on what the
/// request logs, and answers the future that finishes it.
///
/// The connection's own service is called, rather than a clone of it moved
/// into the future (a dozen reference counts a request); the gateway's
/// services are always ready, as they queue nothing.
pub(crate) fn handle<S, ReqBody, B>(
    service: &mut S,
    peer: SocketAddr,
    peer_trusted: bool,
    record: Record,
    mut req: Request<ReqBody>,
) -> Handling<S::Future>
where
    S: Service<Request<ReqBody>, Response = Response<AuthBody<B>>, Error = Infallible>,
{
    let started = Instant::now();
    let request_id = request_id(req.headers(), peer_trusted);
    req.headers_mut().insert(X_REQUEST_ID, request_id.clone());
    let logged = (record.access_log.is_some() && AccessLine::enabled())
        .then(|| (req.method().clone(), req.uri().path().to_owned()));
    let called = {
        let _in_request = in_request(&request_id);
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            match service.poll_ready(&mut cx) {
                Poll::Ready(Ok(())) => Some(service.call(req)),
                Poll::Ready(Err(never)) => match never {},
                Poll::Pending => None,
            }
        }))
    };
    let stage = match called {
        Ok(Some(future)) => Stage::Called { future },
        Ok(None) => Stage::Busy,
        Err(panic) => Stage::Panicked { panic: Some(panic) },
    };
    Handling {
        stage,
        finish: Finish {
            request_id,
            logged,
            record,
            started,
            client: peer.ip(),
        },
    }
}

pin_project! {
    /// The future of one request: the service's, then the request's id on
    /// the answer, its log line and its metrics.
    pub(crate) struct Handling<F> {
        #[pin]
        stage: Stage<F>,
        finish: Finish,
    }
}

pin_project! {
    #[project = StageProj]
    enum Stage<F> {
        Called { #[pin] future: F },
        /// The service was not ready (the gateway's always are).
        Busy,
        Panicked { panic: Option<Box<dyn Any + Send>> },
        Done,
    }
}

/// Where a finished request is recorded, besides its answer.
#[derive(Clone, Default)]
pub(crate) struct Record {
    /// The metrics it counts in.
    pub(crate) metrics: Option<Arc<Metrics>>,
    /// Its access-log line, on standard error in this format (see
    /// [`crate::obs::access_log`]); `None`: none.
    pub(crate) access_log: Option<LogFormat>,
}

/// What is done with the answer once there is one.
struct Finish {
    request_id: http::HeaderValue,
    /// Method and path (never the query, which may hold a token), when
    /// the access log is on.
    logged: Option<(Method, String)>,
    record: Record,
    started: Instant,
    client: IpAddr,
}

impl<F, B> Future for Handling<F>
where
    F: Future<Output = Result<Response<AuthBody<B>>, Infallible>>,
{
    type Output = Result<Response<AuthBody<B>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let response = match this.stage.as_mut().project() {
            StageProj::Called { future } => {
                let polled = {
                    let _in_request = in_request(&this.finish.request_id);
                    std::panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx)))
                };
                match polled {
                    Ok(Poll::Pending) => return Poll::Pending,
                    Ok(Poll::Ready(Ok(response))) => response,
                    Ok(Poll::Ready(Err(never))) => match never {},
                    Err(panic) => this.finish.panicked(panic),
                }
            }
            StageProj::Busy => response::json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "The gateway is busy; try again in a moment.",
            )
            .map(Either::Right),
            StageProj::Panicked { panic } => {
                let panic = panic.take().unwrap_or_else(|| Box::new(()));
                this.finish.panicked(panic)
            }
            StageProj::Done => panic!("a request's future polled after it finished"),
        };
        this.stage.set(Stage::Done);
        Poll::Ready(Ok(this.finish.answer(response)))
    }
}

impl Finish {
    /// The `500` for a panic while handling the request, logged.
    fn panicked<B>(&self, panic: Box<dyn Any + Send>) -> Response<AuthBody<B>> {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let _in_request = in_request(&self.request_id);
        tracing::error!(panic = what, "request handling panicked");
        response::json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The gateway failed while handling this request; it has been logged.",
        )
        .map(Either::Right)
    }

    /// The answer with the request's id, once logged and counted.
    fn answer<B>(&mut self, mut response: Response<AuthBody<B>>) -> Response<AuthBody<B>> {
        let took = self.started.elapsed();
        if let Some((method, path)) = self.logged.take() {
            let line = AccessLine {
                request_id: self.request_id.as_bytes(),
                method: &method,
                path: &path,
                status: response.status().as_u16(),
                latency_us: took.as_micros() as u64,
                user: response.extensions().get::<Session>().map(Session::username),
                client: self.client,
            };
            if let Some(format) = self.record.access_log {
                line.to_stderr(format);
            }
        }
        response
            .headers_mut()
            .insert(X_REQUEST_ID, self.request_id.clone());
        if let Some(metrics) = &self.record.metrics {
            count(metrics, &response, took);
        }
        response
    }
}

const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The request's id: the one a trusted proxy already set, or a new one
/// (a per-process random prefix and a counter: unique, and cheap).
fn request_id(headers: &http::HeaderMap, peer_trusted: bool) -> http::HeaderValue {
    use std::sync::atomic::AtomicU64;
    use std::sync::OnceLock;
    if peer_trusted {
        if let Some(id) = headers
            .get(X_REQUEST_ID)
            .filter(|v| !v.is_empty() && v.len() <= 128)
        {
            return id.clone();
        }
    }
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 4];
        let _ = getrandom::fill(&mut bytes);
        u32::from_le_bytes(bytes)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // `{prefix:08x}-{n:012x}`, written without the formatting machinery:
    // this runs for every request.
    let mut id = [b'-'; REQUEST_ID_LEN];
    write_hex(&mut id[..8], u64::from(*prefix));
    write_hex(&mut id[9..], n);
    // Cut from a block shared by this thread's ids, a few hundred to an
    // allocation; the copies for the request and the response share it.
    let id = ID_BLOCK.with_borrow_mut(|block| {
        if block.capacity() - block.len() < REQUEST_ID_LEN {
            *block = bytes::BytesMut::with_capacity(REQUEST_ID_LEN * 192);
        }
        block.extend_from_slice(&id);
        block.split_to(REQUEST_ID_LEN).freeze()
    });
    http::HeaderValue::from_maybe_shared(id).expect("hex is a valid header value")
}

const REQUEST_ID_LEN: usize = 21;

thread_local! {
    static ID_BLOCK: std::cell::RefCell<bytes::BytesMut> = std::cell::RefCell::new(bytes::BytesMut::new());
}

/// Writes the low `out.len()` hex digits of `n` into `out`.
fn write_hex(out: &mut [u8], mut n: u64) {
    for digit in out.iter_mut().rev() {
        *digit = b"0123456789abcdef"[(n & 0xf) as usize];
        n >>= 4;
    }
}

/// Counts a finished request in the metrics.
fn count<B>(metrics: &Metrics, response: &Response<B>, took: std::time::Duration) {
    let route = response
        .extensions()
        .get::<RouteKind>()
        .copied()
        .unwrap_or(RouteKind::Own);
    metrics.request(route, response.status().as_u16(), took);
    if let Some(kind) = response.extensions().get::<UpstreamErrorKind>() {
        metrics.upstream_error(*kind);
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::{Either, Full};
    use hyper::body::Incoming;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn request_ids_are_a_process_prefix_and_a_counter_in_hex() {
        let mut digits = [0u8; 12];
        write_hex(&mut digits, 0xfe35a);
        assert_eq!(&digits, b"0000000fe35a");
        let first = request_id(&http::HeaderMap::new(), false);
        let second = request_id(&http::HeaderMap::new(), false);
        let (first, second) = (first.to_str().unwrap(), second.to_str().unwrap());
        assert_eq!(first.len(), 21);
        assert_eq!(first[..9], second[..9], "one prefix per process");
        assert_eq!(&first[8..9], "-");
        let count = |id: &str| u64::from_str_radix(&id[9..], 16).unwrap();
        assert!(count(second) > count(first));
        // Across the blocks ids are cut from, each stays whole and apart.
        let ids: Vec<http::HeaderValue> = (0..1000)
            .map(|_| request_id(&http::HeaderMap::new(), false))
            .collect();
        let mut seen = std::collections::HashSet::new();
        for id in &ids {
            let id = id.to_str().unwrap();
            assert_eq!((id.len(), &id[..9]), (21, &first[..9]), "{id}");
            assert!(seen.insert(count(id)), "{id} given twice");
        }
    }

    /// A panic while handling one request is that request's `500`; the
    /// connection and the server go on.
    #[tokio::test]
    async fn a_panic_becomes_a_500_and_the_next_request_is_served() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, peer) = listener.accept().await.unwrap();
                let panicky = tower::service_fn(|req: Request<Incoming>| {
                    assert_ne!(req.uri().path(), "/boom-at-once", "a bug in some check");
                    async move {
                        assert_ne!(req.uri().path(), "/boom", "a bug in some handler");
                        Ok::<_, Infallible>(Response::new(Either::<Full<Bytes>, _>::Left(Full::new(
                            Bytes::from("fine"),
                        ))))
                    }
                });
                let panicky = std::sync::Mutex::new(panicky);
                let handler = hyper::service::service_fn(move |req| {
                    handle(&mut *panicky.lock().unwrap(), peer, false, Record::default(), req)
                });
                let connection = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), handler)
                    .into_owned();
                tokio::spawn(connection);
            }
        });
        let client = reqwest::Client::new();
        for path in ["/boom", "/boom-at-once"] {
            let boom = client.get(format!("http://{addr}{path}")).send().await.unwrap();
            assert_eq!(boom.status(), 500, "{path}");
            assert_eq!(
                boom.json::<serde_json::Value>().await.unwrap()["error"],
                "server_error"
            );
        }
        let fine = client.get(format!("http://{addr}/ok")).send().await.unwrap();
        assert_eq!(fine.text().await.unwrap(), "fine");
    }
}
