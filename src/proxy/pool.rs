//! Connections to one upstream origin, with client-connection affinity.
//!
//! A client connection keeps the upstream connection it last used (its
//! [`ConnectionLink`]) and sends its next request on it again, so a
//! keep-alive client costs no pool lookup per request. When the client
//! connection ends, what it held goes back to the origin's idle list for
//! the next client connection; only when neither has one is a connection
//! opened. An upstream connection is handed back only once the response
//! it carried has been read to its end, so it is never shared by two
//! requests at a time (HTTP/1.1 has no multiplexing). A client that goes
//! away while its request is upstream does not close that connection: the
//! exchange (or the rest of its response) is finished in the background,
//! within bounds, and the connection kept.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, Scheme, Uri};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use tower::ServiceExt;

use super::error::{Retry, UpstreamError};
use super::http1::{BodyReader, Connection, FieldPolicy, Head, Stage, Stream, Upgraded};
use crate::config::UpstreamConfig;
use crate::error::{Error, ErrorKind};

/// How long an idle upstream connection is kept for reuse.
const IDLE_FOR: Duration = Duration::from_secs(90);

/// At most this many idle connections are kept per origin.
const MAX_IDLE: usize = 1024;

#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "tls"))]
type Connector = HttpConnector;

/// The upstream connections of one origin: its connector and its idle
/// connections. Shared by every request to that origin.
pub(crate) struct Origin {
    connector: Connector,
    uri: Uri,
    /// Oldest first: connections are taken from and put back at the end.
    idle: Mutex<Vec<Idle>>,
    reaper_started: AtomicBool,
}

struct Idle {
    connection: Connection,
    since: Instant,
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Origin")
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

impl Origin {
    /// The origin `scheme://authority`, reached with the connect timeout
    /// and (for `https`) the CA of `config`.
    pub(crate) fn new(
        scheme: Scheme,
        authority: Authority,
        section: &UpstreamConfig,
    ) -> Result<Arc<Self>, Error> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(section.connect_timeout));
        http.enforce_http(false);
        let uri = Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query("/")
            .build()
            .map_err(|e| Error::new(ErrorKind::Config, e.to_string()))?;
        Ok(Arc::new(Self {
            connector: connector(http, section)?,
            uri,
            idle: Mutex::new(Vec::new()),
            reaper_started: AtomicBool::new(false),
        }))
    }

    /// Sends `req` (origin-form target, `Host` set) on the connection the
    /// client connection `link` holds for this origin, else on an idle
    /// one, else on a new one. A body-less request that finds a reused
    /// connection closed under it is sent once more, the same head, on a
    /// new connection, if it is idempotent or was not written. A request
    /// with a body is never sent again: its failure is the answer, at once.
    ///
    /// An `async` block, not an `async fn`: an `async fn` would keep its
    /// request argument twice in its state.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn send(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        policy: Option<Box<dyn FieldPolicy>>,
        link: Option<ConnectionLink>,
    ) -> impl Future<Output = Result<Response<UpstreamBody>, UpstreamError>> + Send {
        async move {
            let mut exchange = Exchange {
                connection: self.reuse(link.as_ref()),
                give_back: None,
            };
            let reused = exchange.connection.is_some();
            if !reused {
                self.ensure_reaper();
                exchange.connection = Some(self.connect().await?);
            }
            exchange.give_back = Some(GiveBack {
                origin: self.clone(),
                link,
            });
            // Whether it could be sent again whole: only with no body (the
            // gateway holds none of a body once it is sent, and a body
            // read to its end reads as empty).
            let body_less = req.body().is_end_stream();
            // Holds the request's fields once written, then the answer's.
            let mut fields = http::HeaderMap::new();
            let failure = match exchange
                .connection()
                .exchange(&mut req, policy.as_deref(), &mut fields)
                .await
            {
                Ok(head) => return Ok(exchange.answer(head)),
                Err(failure) => failure,
            };
            // Rare, and boxed; what decides it is scoped to this block, so
            // that none of it is kept across the wait (unboxed, or with the
            // failed connection kept here, every request's future would be
            // larger).
            let resending = {
                let failed = exchange
                    .connection
                    .take()
                    .expect("an exchange has its connection");
                let resend = reused
                    && failure.retry() == Retry::IfNothingAnswered
                    && body_less
                    && (failed.stage() == Stage::Sending || is_idempotent(req.method()));
                if !resend {
                    return Err(failure);
                }
                tracing::debug!(error = %failure, "upstream connection closed; sending on a new one");
                Box::pin(self.resend(&mut exchange, failed, &mut fields))
            };
            let head = resending.await?;
            Ok(exchange.answer(head))
        }
    }

    /// Sends once more, on a new connection, a body-less request whose
    /// reused connection `failed` was found closed.
    async fn resend(
        &self,
        exchange: &mut Exchange,
        mut failed: Connection,
        fields: &mut http::HeaderMap,
    ) -> Result<Head, UpstreamError> {
        exchange.connection = Some(self.connect().await?);
        match exchange.connection().exchange_again(&mut failed, fields).await {
            Ok(head) => Ok(head),
            Err(failure) => {
                exchange.connection = None;
                Err(failure)
            }
        }
    }

    /// A connection ready for a request: the link's, or an idle one.
    fn reuse(&self, link: Option<&ConnectionLink>) -> Option<Connection> {
        let mut held = link.and_then(|link| link.take(self));
        loop {
            let mut connection = match held.take() {
                Some(connection) => connection,
                None => self.take_idle()?,
            };
            if !connection.is_closed() {
                return Some(connection);
            }
        }
    }

    /// Starts the task that closes connections idle for longer than
    /// `IDLE_FOR` (an upstream may never close them itself), once, when
    /// the first connection is opened; it ends with the origin.
    fn ensure_reaper(self: &Arc<Self>) {
        if self.reaper_started.load(Ordering::Relaxed) || self.reaper_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let origin = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(IDLE_FOR / 3);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(origin) = origin.upgrade() else { return };
                origin.close_stale();
            }
        });
    }

    /// Drops the idle connections that are closed or idle for too long.
    fn close_stale(&self) {
        retain_fresh(&mut self.idle.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// The newest idle connection this thread drives, else the newest
    /// other one: a connection registered with another thread's runtime
    /// has its I/O events delivered there, which then wakes this one.
    fn take_idle(&self) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        retain_fresh(&mut idle);
        let at = newest_from(
            idle.iter().map(|i| i.connection.home()),
            std::thread::current().id(),
        )?;
        Some(idle.remove(at).connection)
    }

    fn put_idle(&self, mut connection: Connection) {
        if connection.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= MAX_IDLE {
            retain_fresh(&mut idle);
        }
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                connection,
                since: Instant::now(),
            });
        }
    }

    /// Opens a connection.
    ///
    /// Boxed: the connector's future is kilobytes, and unboxed it would
    /// make every request's future as large, though few requests connect.
    fn connect(&self) -> Pin<Box<dyn Future<Output = Result<Connection, UpstreamError>> + Send + '_>> {
        Box::pin(async move {
            let io = self
                .connector
                .clone()
                .oneshot(self.uri.clone())
                .await
                .map_err(connect_error)?;
            Ok(Connection::new(stream_of(io)))
        })
    }
}

#[cfg(feature = "tls")]
fn stream_of(io: hyper_rustls::MaybeHttpsStream<hyper_util::rt::TokioIo<tokio::net::TcpStream>>) -> Stream {
    match io {
        hyper_rustls::MaybeHttpsStream::Http(tcp) => Stream::Plain(tcp.into_inner()),
        hyper_rustls::MaybeHttpsStream::Https(tls) => Stream::Tls(Box::new(tls.into_inner())),
    }
}

#[cfg(not(feature = "tls"))]
fn stream_of(io: hyper_util::rt::TokioIo<tokio::net::TcpStream>) -> Stream {
    Stream::Plain(io.into_inner())
}

/// Methods whose request may be sent twice (RFC 9110 §9.2.2).
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Where in an idle list (oldest first) of connections driven by
/// `threads` the one to take is: the newest `here` drives, else the
/// newest.
fn newest_from(
    threads: impl DoubleEndedIterator<Item = ThreadId> + ExactSizeIterator,
    here: ThreadId,
) -> Option<usize> {
    let count = threads.len();
    let from_the_end = threads.rev().position(|thread| thread == here).unwrap_or(0);
    count.checked_sub(from_the_end + 1)
}

fn retain_fresh(idle: &mut Vec<Idle>) {
    let now = Instant::now();
    idle.retain_mut(|i| !i.connection.is_closed() && now.duration_since(i.since) < IDLE_FOR);
}

/// The connector's error (already boxed with `tls`, not without).
fn connect_error(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> UpstreamError {
    UpstreamError::connect(err)
}

#[cfg(feature = "tls")]
fn connector(http: HttpConnector, section: &UpstreamConfig) -> Result<Connector, Error> {
    crate::tls::connector(http, section.ca_file.as_deref()).map_err(|r| Error::new(ErrorKind::Config, r))
}

#[cfg(not(feature = "tls"))]
fn connector(http: HttpConnector, _section: &UpstreamConfig) -> Result<Connector, Error> {
    Ok(http)
}

/// The upstream connections one client connection holds between its
/// requests, kept in the gateway's service for that connection. When the
/// client connection ends, they go back to their origins' idle lists.
#[derive(Clone, Debug, Default)]
pub(crate) struct ConnectionLink(Arc<Held>);

#[derive(Debug, Default)]
struct Held(Mutex<Vec<(Arc<Origin>, Connection)>>);

impl ConnectionLink {
    fn take(&self, origin: &Origin) -> Option<Connection> {
        let mut held = self.0 .0.lock().unwrap_or_else(|p| p.into_inner());
        let at = held
            .iter()
            .position(|(o, _)| std::ptr::eq(Arc::as_ptr(o), origin))?;
        Some(held.swap_remove(at).1)
    }

    /// Keeps `connection` for this client connection's next request,
    /// unless it already keeps one for `origin` (HTTP/2 clients send
    /// requests side by side): then it goes to the idle list.
    fn keep(&self, origin: Arc<Origin>, connection: Connection) {
        let mut held = self.0 .0.lock().unwrap_or_else(|p| p.into_inner());
        if held.iter().any(|(o, _)| Arc::ptr_eq(o, &origin)) {
            drop(held);
            origin.put_idle(connection);
        } else {
            held.push((origin, connection));
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let held = self.0.get_mut().unwrap_or_else(|p| p.into_inner());
        for (origin, connection) in held.drain(..) {
            origin.put_idle(connection);
        }
    }
}

/// A request on its way upstream, its answer's head not yet read. If the
/// client goes away meanwhile (dropping this), a request written whole
/// has its exchange finished in the background and its connection kept,
/// rather than closed mid-exchange: a load balancer's or a benchmark's
/// disconnects do not turn into upstream connection churn.
struct Exchange {
    connection: Option<Connection>,
    give_back: Option<GiveBack>,
}

impl Exchange {
    fn connection(&mut self) -> &mut Connection {
        self.connection
            .as_mut()
            .expect("an exchange has its connection until it ends")
    }

    /// The response to forward: its body read already (a short answer
    /// comes with its head, and the connection is handed back at once),
    /// or read from the connection as the client takes it.
    fn answer(mut self, head: Head) -> Response<UpstreamBody> {
        let mut connection = self.connection.take().expect("an exchange has its connection");
        let give_back = self.give_back.take().expect("an exchange has its give-back");
        let Head {
            parts,
            body: mut reader,
        } = head;
        if parts.status == StatusCode::SWITCHING_PROTOCOLS {
            return Response::from_parts(parts, UpstreamBody::upgraded(connection));
        }
        let whole = reader.take_whole(&mut connection);
        let body = if reader.is_done() {
            give_back.once_read(&reader, connection);
            UpstreamBody::whole(whole)
        } else {
            UpstreamBody {
                state: BodyState::Streaming {
                    reader,
                    connection,
                    give_back,
                },
            }
        };
        Response::from_parts(parts, body)
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let (Some(mut connection), Some(give_back)) = (self.connection.take(), self.give_back.take()) else {
            return;
        };
        // Written only in part, the request cannot be finished: closed.
        if connection.stage() != Stage::Awaiting {
            return;
        }
        finish_in_background(give_back, async move {
            let Head { parts, mut body } = connection.read_head(&mut http::HeaderMap::new()).await.ok()?;
            if parts.status == StatusCode::SWITCHING_PROTOCOLS {
                return None;
            }
            let finished = body.skip(&mut connection, ABANDONED_MAX_BYTES).await;
            (finished && body.keeps_alive()).then_some(connection)
        });
    }
}

/// Finishes in the background an exchange nobody waits for any more
/// (`rest` reads it to its end, and answers the connection if it can
/// carry another), within a time bound; then hands the connection back
/// to the idle list. Past the bound it is closed instead.
fn finish_in_background(
    mut give_back: GiveBack,
    rest: impl Future<Output = Option<Connection>> + Send + 'static,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    // The client connection is gone: the connection goes to the idle list.
    give_back.link = None;
    runtime.spawn(async move {
        if let Ok(Some(connection)) = tokio::time::timeout(ABANDONED_WAIT, rest).await {
            give_back.give_back(connection);
        }
    });
}

/// How long an abandoned exchange may take to finish before its
/// connection is closed instead.
const ABANDONED_WAIT: Duration = Duration::from_secs(10);

/// An abandoned response longer than this is not read to its end: its
/// connection is closed instead.
const ABANDONED_MAX_BYTES: usize = 64 * 1024;

/// Hands an upstream connection back once its response has been read:
/// to the client connection for its next request, else to the idle list.
struct GiveBack {
    origin: Arc<Origin>,
    link: Option<ConnectionLink>,
}

impl GiveBack {
    /// Hands `connection` back once `reader` read its answer's body to the
    /// end, if the connection can carry another exchange; else closes it.
    fn once_read(self, reader: &BodyReader, connection: Connection) {
        if reader.is_done() && reader.keeps_alive() {
            self.give_back(connection);
        }
    }

    fn give_back(self, connection: Connection) {
        match self.link {
            Some(link) => link.keep(self.origin, connection),
            None => self.origin.put_idle(connection),
        }
    }
}

/// A response body from the upstream. A short one was read with the
/// response head and its connection is already handed back; a longer one
/// is read from the connection as it is polled, and once read to its end
/// the connection is handed back for the next request. Dropped before its
/// end (the client went away), the rest is read in the background, within
/// bounds, so that the connection can still be reused.
pub struct UpstreamBody {
    state: BodyState,
}

enum BodyState {
    /// Read whole (`None`: nothing left to give).
    Whole(Option<Bytes>),
    Streaming {
        reader: BodyReader,
        connection: Connection,
        give_back: GiveBack,
    },
    /// The exchange switched protocols: the connection is the new
    /// protocol's, until taken to be spliced to the client.
    Upgraded(Option<Connection>),
}

impl fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            BodyState::Whole(_) => "whole",
            BodyState::Streaming { .. } => "streaming",
            BodyState::Upgraded(_) => "upgraded",
        };
        f.debug_struct("UpstreamBody").field("state", &state).finish()
    }
}

impl UpstreamBody {
    fn whole(data: Option<Bytes>) -> Self {
        Self {
            state: BodyState::Whole(data.filter(|d| !d.is_empty())),
        }
    }

    fn upgraded(connection: Connection) -> Self {
        Self {
            state: BodyState::Upgraded(Some(connection)),
        }
    }

    /// The upstream connection of an exchange that switched protocols.
    pub(crate) fn take_upgraded(&mut self) -> Option<Upgraded> {
        match &mut self.state {
            BodyState::Upgraded(connection) => connection.take().map(Upgraded),
            _ => None,
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        let state = std::mem::replace(&mut self.state, BodyState::Whole(None));
        if let BodyState::Streaming {
            mut reader,
            mut connection,
            give_back,
        } = state
        {
            if reader.keeps_alive() {
                finish_in_background(give_back, async move {
                    reader
                        .skip(&mut connection, ABANDONED_MAX_BYTES)
                        .await
                        .then_some(connection)
                });
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = UpstreamError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        let (reader, connection) = match &mut self.state {
            BodyState::Whole(data) => return Poll::Ready(data.take().map(|data| Ok(Frame::data(data)))),
            BodyState::Upgraded(_) => return Poll::Ready(None),
            BodyState::Streaming {
                reader, connection, ..
            } => (reader, connection),
        };
        let polled = std::task::ready!(reader.poll_data(connection, cx));
        if reader.is_done() || matches!(polled, Some(Err(_))) {
            // Read to its end, the connection goes back; broken mid-body
            // (never done), it is closed.
            if let BodyState::Streaming {
                reader,
                connection,
                give_back,
            } = std::mem::replace(&mut self.state, BodyState::Whole(None))
            {
                give_back.once_read(&reader, connection);
            }
        }
        Poll::Ready(polled.map(|data| data.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            BodyState::Whole(data) => data.is_none(),
            BodyState::Streaming { reader, .. } => reader.is_done(),
            BodyState::Upgraded(_) => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            BodyState::Whole(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            BodyState::Streaming { reader, .. } => reader.size_hint(),
            BodyState::Upgraded(_) => SizeHint::with_exact(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn a_thread_takes_the_newest_connection_it_drives_else_the_newest() {
        let here = std::thread::current().id();
        let there = std::thread::spawn(|| std::thread::current().id()).join().unwrap();
        let pick = |threads: &[ThreadId]| newest_from(threads.iter().copied(), here);
        assert_eq!(pick(&[]), None);
        assert_eq!(pick(&[here, there, here, there]), Some(2));
        assert_eq!(pick(&[here, there]), Some(0));
        assert_eq!(
            pick(&[there, there]),
            Some(1),
            "none of its own: the newest other"
        );
        assert_eq!(pick(&[there, here]), Some(1));
    }

    /// An upstream that answers each request on a connection with `ok`
    /// and reports when a connection ends.
    async fn upstream() -> (std::net::SocketAddr, tokio::sync::mpsc::UnboundedReceiver<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ended, ends) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let ended = ended.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            break;
                        }
                    }
                    let _ = ended.send(());
                });
            }
        });
        (addr, ends)
    }

    async fn get(origin: &Arc<Origin>, addr: std::net::SocketAddr) -> Vec<u8> {
        // An `Incoming` to send: the body of a request served here.
        let (server, client) = tokio::io::duplex(4096);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        tokio::spawn(
            hyper::server::conn::http1::Builder::new().serve_connection(
                hyper_util::rt::TokioIo::new(server),
                hyper::service::service_fn(move |req: Request<Incoming>| {
                    if let Some(tx) = tx.lock().unwrap().take() {
                        let _ = tx.send(req);
                    }
                    std::future::pending::<
                        Result<Response<http_body_util::Empty<Bytes>>, std::convert::Infallible>,
                    >()
                }),
            ),
        );
        let mut client = client;
        client
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut req = rx.await.unwrap();
        req.headers_mut()
            .insert(http::header::HOST, addr.to_string().parse().unwrap());
        let response = origin.clone().send(req, None, None).await.unwrap();
        response.into_body().collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn idle_connections_are_reused_then_closed_when_stale() {
        let (addr, mut ends) = upstream().await;
        let config = crate::Config::builder()
            .upstream_url(&format!("http://{addr}"))
            .build()
            .unwrap();
        let origin = Origin::new(Scheme::HTTP, addr.to_string().parse().unwrap(), &config.upstream).unwrap();
        assert_eq!(get(&origin, addr).await, b"ok");
        assert_eq!(get(&origin, addr).await, b"ok");
        assert_eq!(origin.idle.lock().unwrap().len(), 1, "one connection, reused");

        origin.close_stale();
        assert_eq!(origin.idle.lock().unwrap().len(), 1, "a fresh connection stays");
        origin.idle.lock().unwrap()[0].since -= IDLE_FOR;
        origin.close_stale();
        assert!(origin.idle.lock().unwrap().is_empty());
        tokio::time::timeout(Duration::from_secs(5), ends.recv())
            .await
            .expect("the stale connection is closed")
            .unwrap();
    }
}
