//! Accepting connections within the limits: a slot each
//! (`max_connections`, a tunnel counting as its connection), HTTP/1.1 and
//! h2c (or TLS), hyper's limits on a request head, the deadlines of
//! [`super::connection`], a `408` for a head not received in time, a `503`
//! over the limit, and a graceful finish.

use std::future::Future;
use std::io::Write as _;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::config::{Config, LogFormat};
use crate::layer::AuthLayer;
use crate::runtime::timer::CoarseTimer;
use crate::web::peer::is_trusted;

use super::connection::{self, Activity, Deadlines, Drain, TrackedBody};
use super::handling::{handle, Record};
use super::routes::RouteTable;
use super::workers::Connections;

/// How long a graceful shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Sent to a client that started a request and did not finish its header
/// in time.
const REQUEST_TIMEOUT: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

/// Sent when every connection slot is taken.
const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Type: application/json\r\nContent-Length: 91\r\n\r\n{\"error\":\"temporarily_unavailable\",\"error_description\":\"The gateway is at its connections.\"}";

/// A second handle on the connection's socket, to answer `408` after hyper
/// has given the connection up.
fn split_off_spare(stream: TcpStream) -> std::io::Result<(TcpStream, std::net::TcpStream)> {
    let std = stream.into_std()?;
    let spare = std.try_clone()?;
    Ok((TcpStream::from_std(std)?, spare))
}

/// Answers `503` to a connection over the limit, then closes it after
/// reading what the client sent (so the answer is not lost to a reset).
async fn refuse_connection(mut stream: TcpStream) {
    let _ = stream.write_all(TOO_MANY_CONNECTIONS).await;
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// What every thread that accepts connections shares: the service stack,
/// the limits, and the connection slots (`max_connections` counts them
/// all).
pub(super) struct Acceptor {
    pub(super) slots: Arc<Semaphore>,
    pub(super) layer: AuthLayer,
    pub(super) routes: Arc<RouteTable>,
    pub(super) config: Config,
    #[cfg(feature = "tls")]
    pub(super) tls: Option<tokio_rustls::TlsAcceptor>,
    pub(super) access_log: LogFormat,
}

impl Acceptor {
    /// Serves `connections` until they end or `shutdown` completes, then
    /// waits (up to 30 seconds) for the requests in flight.
    pub(super) async fn serve_until(
        self: Arc<Self>,
        mut connections: Connections,
        shutdown: impl Future<Output = ()>,
    ) {
        let drain = Drain::new();
        let limits = self.config.limits.clone();
        let deadlines = Deadlines {
            idle_for: limits.header_read_timeout,
        };
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            // One buffer, one plain write per response: 2-4% more small
            // answers a second (token endpoint, introspection) than
            // vectored writes, and no slower for large streamed bodies
            // (measured, see the README).
            .writev(false)
            // A client may shut its side down once its request is sent and
            // still get the answer (RFC 9112 §9.6). It also keeps hyper
            // from reading ahead while a request is in flight, which cost a
            // fresh 8 KiB read buffer per request (the request's fields
            // still pointed into the old one).
            .half_close(true)
            .timer(CoarseTimer)
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes)
            .max_headers(limits.max_headers);
        builder
            .http2()
            .max_header_list_size(limits.max_header_bytes as u32);
        let mut shutdown = pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                next = connections.next() => match next {
                    Some(Ok(accepted)) => accepted,
                    None => break,
                    Some(Err(err)) => {
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, max_connections = limits.max_connections, "connection refused: at the limit");
                tokio::spawn(refuse_connection(stream));
                continue;
            };
            // Held by the connection's service, and by any tunnel (a
            // WebSocket) it upgrades to: a tunnel counts as a connection.
            let slot = Arc::new(slot);
            let service = self.routes.for_connection(peer, slot);
            let metrics = self.layer.metrics();
            let peer_trusted = is_trusted(peer.ip(), &self.config.server.trusted_proxies);
            let activity = Activity::new();
            // One request at a time borrows it, for the moment of its call.
            let service = std::cell::RefCell::new(service);
            let access_log = self.access_log;
            let seen = activity.clone();
            let handler = hyper::service::service_fn(move |req: Request<Incoming>| {
                let stream = seen.request(req.version());
                let record = Record {
                    metrics: Some(metrics.clone()),
                    access_log: Some(access_log),
                };
                let handling = handle(&mut *service.borrow_mut(), peer, peer_trusted, record, req);
                futures_util::FutureExt::map(handling, move |answer| {
                    answer.map(|response| response.map(|body| TrackedBody::new(body, stream)))
                })
            });
            let (builder, stopping) = (builder.clone(), drain.watcher());
            // Serves the connection on `io` (TLS or plain), held to its
            // deadlines and drained with the others.
            macro_rules! serve {
                ($io:expr) => {
                    connection::drive(
                        builder
                            .serve_connection_with_upgrades($io, handler)
                            .into_owned(),
                        auto::UpgradeableConnection::graceful_shutdown,
                        &activity,
                        deadlines,
                        stopping,
                    )
                    .await
                };
            }
            #[cfg(feature = "tls")]
            if let Some(acceptor) = self.tls.clone() {
                let handshake_within = limits.header_read_timeout;
                tokio::spawn(async move {
                    match tokio::time::timeout(handshake_within, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            if let Some(Err(err)) = serve!(TokioIo::new(stream)) {
                                tracing::debug!(error = %err, %peer, "connection ended with an error");
                            }
                        }
                        Ok(Err(err)) => tracing::debug!(error = %err, %peer, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake not finished in time"),
                    }
                });
                continue;
            }
            let Ok((stream, spare)) = split_off_spare(stream) else {
                continue;
            };
            let started_request = Arc::new(AtomicBool::new(false));
            let io = TokioIo::new(Watched {
                io: stream,
                started_request: started_request.clone(),
            });
            tokio::spawn(async move {
                if let Some(Err(err)) = serve!(io) {
                    let timed_out = err
                        .downcast_ref::<hyper::Error>()
                        .is_some_and(hyper::Error::is_timeout);
                    if timed_out && started_request.load(Ordering::Acquire) {
                        tracing::info!(%peer, "request header not received in time: 408");
                        let _ = (&spare).write(REQUEST_TIMEOUT);
                        let _ = spare.shutdown(std::net::Shutdown::Both);
                    } else {
                        tracing::debug!(error = %err, %peer, "connection ended with an error");
                    }
                }
                // Dropping the spare handle closes only it: an upgraded
                // connection (WebSocket) lives on in its splice.
                drop(spare);
            });
        }
        drop(connections);
        tracing::info!("shutting down: finishing the requests in flight");
        tokio::select! {
            () = drain.finish() => tracing::info!("all connections closed"),
            () = tokio::time::sleep(SHUTDOWN_GRACE) => {
                tracing::warn!("gave up waiting for connections after {}s", SHUTDOWN_GRACE.as_secs());
            }
        }
    }
}

/// The connection's socket, noting whether a request has started arriving
/// since the last response was written.
struct Watched {
    io: TcpStream,
    started_request: Arc<AtomicBool>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.started_request.store(true, Ordering::Release);
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.started_request.store(false, Ordering::Release);
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.started_request.store(false, Ordering::Release);
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
