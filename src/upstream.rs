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
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::client::conn::TrySendError;
use hyper_util::client::legacy::connect::HttpConnector;
use tower::ServiceExt;

use crate::config::Config;
use crate::error::{Error, ErrorKind};

/// How long an idle upstream connection is kept for reuse.
const IDLE_FOR: Duration = Duration::from_secs(90);

/// At most this many idle connections are kept per origin.
const MAX_IDLE: usize = 1024;

#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "tls"))]
type Connector = HttpConnector;

/// Why a request could not be sent upstream.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be opened.
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// The connection failed before the response head arrived.
    Broken(hyper::Error),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(err) => write!(f, "cannot connect: {err}"),
            Self::Broken(err) => write!(f, "{err}"),
        }
    }
}

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

/// An upstream connection: where requests are sent, and the thread whose
/// runtime drives it (with the gateway's worker threads, each thread has
/// a runtime of its own).
#[derive(Debug)]
struct Connection {
    sender: SendRequest<Incoming>,
    home: ThreadId,
}

impl std::ops::Deref for Connection {
    type Target = SendRequest<Incoming>;

    fn deref(&self) -> &Self::Target {
        &self.sender
    }
}

impl std::ops::DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.sender
    }
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
    pub(crate) fn new(scheme: Scheme, authority: Authority, config: &Config) -> Result<Arc<Self>, Error> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.upstream_connect_timeout));
        http.enforce_http(false);
        let uri = Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query("/")
            .build()
            .map_err(|e| Error::new(ErrorKind::Config, e.to_string()))?;
        Ok(Arc::new(Self {
            connector: connector(http, config)?,
            uri,
            idle: Mutex::new(Vec::new()),
            reaper_started: AtomicBool::new(false),
        }))
    }

    /// Sends `req` (origin-form target, `Host` set) on the connection the
    /// client connection `link` holds for this origin, else on an idle
    /// one, else on a new one. A request the connection closed under
    /// before sending it is sent once more on a new connection.
    ///
    /// An `async` block, not an `async fn`: an `async fn` would keep its
    /// request argument twice in its state.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn send(
        self: Arc<Self>,
        req: Request<Incoming>,
        link: Option<ConnectionLink>,
    ) -> impl Future<Output = Result<Response<UpstreamBody>, SendError>> + Send {
        async move {
            let mut connection = match self.reuse(link.as_ref()).await {
                Some(connection) => connection,
                None => {
                    self.ensure_reaper();
                    self.connect().await?
                }
            };
            let mut exchange = Exchange {
                response: Some(Box::pin(connection.try_send_request(req))),
                give_back: Some(GiveBack {
                    connection,
                    origin: self.clone(),
                    link,
                }),
            };
            // A failure is rare and large: boxed, it keeps this state small.
            let outcome = exchange
                .response
                .as_mut()
                .expect("just set")
                .await
                .map_err(Box::new);
            exchange.response = None;
            let mut give_back = exchange.give_back.take().expect("just set");
            let response = match outcome {
                Ok(response) => response,
                Err(failed) => {
                    // Rare, and boxed: unboxed, this path's state would make
                    // every request's future larger.
                    let (resent, connection) = Box::pin(self.resend(failed)).await?;
                    give_back.connection = connection;
                    resent
                }
            };
            Ok(UpstreamBody::wrap(response, give_back))
        }
    }

    /// Sends once more, on a new connection, a request the connection
    /// closed under before sending it.
    async fn resend(
        &self,
        mut failed: Box<TrySendError<Request<Incoming>>>,
    ) -> Result<(Response<Incoming>, Connection), SendError> {
        let Some(req) = failed.take_message() else {
            return Err(SendError::Broken(failed.into_error()));
        };
        tracing::debug!(error = %failed.error(), "upstream connection closed; sending on a new one");
        drop(failed);
        let mut connection = self.connect().await?;
        let response = connection.send_request(req).await.map_err(SendError::Broken)?;
        Ok((response, connection))
    }

    /// A connection ready for a request: the link's, or an idle one.
    async fn reuse(&self, link: Option<&ConnectionLink>) -> Option<Connection> {
        let mut held = link.and_then(|link| link.take(self));
        loop {
            let mut connection = match held.take() {
                Some(connection) => connection,
                None => self.take_idle()?,
            };
            // The previous response was read to its end; its connection
            // is ready at once, or closed.
            if connection.ready().await.is_ok() {
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
    /// other one: a connection driven by another thread's runtime would
    /// wake that thread for each of its requests.
    fn take_idle(&self) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        retain_fresh(&mut idle);
        let at = newest_from(
            idle.iter().map(|i| i.connection.home),
            std::thread::current().id(),
        )?;
        Some(idle.remove(at).connection)
    }

    fn put_idle(&self, connection: Connection) {
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

    /// Opens a connection, driven by a task of its own (which also carries
    /// a protocol upgrade, such as WebSocket, once the upstream agrees).
    ///
    /// Boxed: the connector's future is kilobytes, and unboxed it would
    /// make every request's future as large, though few requests connect.
    fn connect(&self) -> Pin<Box<dyn Future<Output = Result<Connection, SendError>> + Send + '_>> {
        Box::pin(async move {
            let io = self
                .connector
                .clone()
                .oneshot(self.uri.clone())
                .await
                .map_err(connect_error)?;
            let (sender, driver) = http1::handshake(io).await.map_err(SendError::Broken)?;
            tokio::spawn(async move {
                if let Err(err) = driver.with_upgrades().await {
                    tracing::debug!(error = %err, "upstream connection ended");
                }
            });
            Ok(Connection {
                sender,
                home: std::thread::current().id(),
            })
        })
    }
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
    idle.retain(|i| !i.connection.is_closed() && now.duration_since(i.since) < IDLE_FOR);
}

/// The connector's error (already boxed with `tls`, not without).
#[allow(clippy::useless_conversion)]
fn connect_error(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> SendError {
    SendError::Connect(err.into())
}

#[cfg(feature = "tls")]
fn connector(http: HttpConnector, config: &Config) -> Result<Connector, Error> {
    crate::tls::connector(http, config.upstream_ca_file.as_deref())
        .map_err(|r| Error::new(ErrorKind::Config, r))
}

#[cfg(not(feature = "tls"))]
fn connector(http: HttpConnector, _config: &Config) -> Result<Connector, Error> {
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

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<Incoming>, TrySendError<Request<Incoming>>>> + Send>>;

/// A request sent upstream, its response not yet come. If the client goes
/// away meanwhile (dropping this), the exchange is finished in the
/// background and the connection kept, rather than closed mid-request:
/// a load balancer's or a benchmark's disconnects do not turn into
/// upstream connection churn.
struct Exchange {
    response: Option<ResponseFuture>,
    give_back: Option<GiveBack>,
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let (Some(response), Some(give_back)) = (self.response.take(), self.give_back.take()) else {
            return;
        };
        finish_in_background(give_back, async move {
            let response = response.await.ok()?;
            (response.status() != http::StatusCode::SWITCHING_PROTOCOLS).then(|| response.into_body())
        });
    }
}

/// Reads what is left of an exchange nobody waits for any more (the
/// response `rest` resolves to, to its end, within a time and size bound),
/// then hands the connection back; past the bounds it is closed instead.
fn finish_in_background(
    mut give_back: GiveBack,
    rest: impl Future<Output = Option<Incoming>> + Send + 'static,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    // The client connection is gone: the connection goes to the idle list.
    give_back.link = None;
    runtime.spawn(async move {
        let finished = tokio::time::timeout(ABANDONED_WAIT, async {
            let mut body = rest.await?;
            let mut read = 0;
            while let Some(frame) = body.frame().await {
                read += frame.ok()?.data_ref().map_or(0, Bytes::len);
                if read > ABANDONED_MAX_BYTES {
                    return None;
                }
            }
            Some(())
        });
        if let Ok(Some(())) = finished.await {
            give_back.give_back();
        }
    });
}

/// How long an abandoned exchange may take to finish before its
/// connection is closed instead.
const ABANDONED_WAIT: Duration = Duration::from_secs(10);

/// An abandoned response longer than this is not read to its end: its
/// connection is closed instead.
const ABANDONED_MAX_BYTES: usize = 64 * 1024;

/// Hands an upstream connection back once its response has been read.
struct GiveBack {
    connection: Connection,
    origin: Arc<Origin>,
    link: Option<ConnectionLink>,
}

impl GiveBack {
    fn give_back(self) {
        match self.link {
            Some(link) => link.keep(self.origin, self.connection),
            None => self.origin.put_idle(self.connection),
        }
    }
}

/// A response body streamed from the upstream. When it has been read to
/// its end, its connection is handed back for the next request; dropped
/// before its end (the client went away), the rest is read in the
/// background, within bounds, so that the connection can still be reused.
pub struct UpstreamBody {
    /// `None` only once handed to the background on drop.
    inner: Option<Incoming>,
    give_back: Option<GiveBack>,
}

impl fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl UpstreamBody {
    fn wrap(response: Response<Incoming>, give_back: GiveBack) -> Response<Self> {
        let upgrading = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
        let done = response.body().is_end_stream();
        let mut give_back = (!upgrading).then_some(give_back);
        if done {
            // No body to wait for (204, 304, HEAD, Content-Length: 0): the
            // server may never poll it.
            if let Some(give_back) = give_back.take() {
                give_back.give_back();
            }
        }
        response.map(|inner| Self {
            inner: Some(inner),
            give_back,
        })
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if let (Some(give_back), Some(rest)) = (self.give_back.take(), self.inner.take()) {
            finish_in_background(give_back, async move { Some(rest) });
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = Pin::new(&mut *inner).poll_frame(cx);
        let finished = match &frame {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => inner.is_end_stream(),
            Poll::Ready(Some(Err(_))) => {
                this.give_back.take();
                false
            }
            Poll::Pending => false,
        };
        if finished {
            if let Some(give_back) = this.give_back.take() {
                give_back.give_back();
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let response = origin.clone().send(req, None).await.unwrap();
        response.into_body().collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn idle_connections_are_reused_then_closed_when_stale() {
        let (addr, mut ends) = upstream().await;
        let config = Config::from_toml_str(&format!(
            "[upstream]\nurl = \"http://{addr}\"\n[[users]]\nusername = \"a\"\npassword_hash = \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXowMTIzNDU\"\n"
        ))
        .unwrap();
        let origin = Origin::new(Scheme::HTTP, addr.to_string().parse().unwrap(), &config).unwrap();
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
