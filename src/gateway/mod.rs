//! The gateway binary's server: accepts connections (HTTP/1.1 and h2c)
//! within the configured limits, runs [`AuthLayer`] in front of the
//! upstream, logs one line per request, turns a panic into a `500`, keeps
//! sessions across restarts, reloads on `SIGHUP`, and shuts down
//! gracefully.

pub(crate) mod connection;
pub(crate) mod handling;
pub(crate) mod whoami;
pub(crate) mod workers;

use std::convert::Infallible;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use self::connection::{Activity, Deadlines, Drain, TrackedBody};
use crate::config::{Config, LogFormat, Route, StoreConfig, Upstream};
use crate::error::Error;
use crate::gateway::handling::{handle, Record};
use crate::gateway::whoami::Whoami;
use crate::gateway::workers::{Connections, Workers};
use crate::layer::{AuthLayer, RouteIndex};
use crate::proxy::pool::ConnectionLink;
use crate::proxy::{Client, Proxy, ProxyBody};
use crate::runtime::timer::CoarseTimer;
use crate::store::persist::{self, Loaded};
use crate::store::MemoryStore;
use crate::web::peer::is_trusted;

/// How long a graceful shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Sent to a client that started a request and did not finish its header
/// in time.
const REQUEST_TIMEOUT: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

/// Sent when every connection slot is taken.
const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Type: application/json\r\nContent-Length: 91\r\n\r\n{\"error\":\"temporarily_unavailable\",\"error_description\":\"The gateway is at its connections.\"}";

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Where a route's traffic goes: the reverse proxy, or the built-in
/// upstream.
#[derive(Clone, Debug)]
enum Target {
    Proxy(Proxy),
    Whoami(Whoami),
}

impl Target {
    fn new(upstream: &Upstream, config: &Config, upgrades: &[String]) -> Result<Self, Error> {
        Ok(match upstream {
            Upstream::Url(url) => Target::Proxy(Proxy::with_upgrades(url, config, upgrades.to_vec())?),
            Upstream::Whoami => Target::Whoami(Whoami),
        })
    }

    fn call(
        &mut self,
        req: Request<Incoming>,
        link: Option<&ConnectionLink>,
        client: Option<&Client>,
    ) -> BoxFuture<Result<Response<ProxyBody>, Infallible>> {
        match self {
            Self::Proxy(proxy) => proxy.forward(req, link.cloned(), client),
            Self::Whoami(whoami) => Box::pin(whoami.call(req)),
        }
    }
}

/// The service behind the layer: the route the layer chose
/// (`[[routes]]`), or the default upstream.
#[derive(Clone, Debug)]
struct UpstreamService {
    default: Target,
    routes: Arc<[(Route, Target)]>,
    /// The upstream connections one client connection keeps between its
    /// requests, and its peer (set in each connection's copy of the
    /// service).
    link: Option<ConnectionLink>,
    client: Option<Client>,
}

impl UpstreamService {
    fn new(config: &Config) -> Result<Self, Error> {
        let routes = config
            .routes
            .iter()
            .map(|r| Ok((r.clone(), Target::new(&r.upstream, config, &r.upgrades)?)))
            .collect::<Result<_, Error>>()?;
        Ok(Self {
            default: Target::new(config.upstream(), config, &config.upstream.upgrades)?,
            routes,
            link: None,
            client: None,
        })
    }

    /// This service for the client connection with `peer`, which keeps
    /// the upstream connection its last request used for its next one;
    /// `slot` is its connection slot, kept as long as any tunnel it
    /// upgrades to (a WebSocket) is open too.
    fn for_connection(&self, peer: SocketAddr, slot: Arc<OwnedSemaphorePermit>) -> Self {
        Self {
            link: Some(ConnectionLink::default()),
            client: Some(Client::new(peer, Some(slot))),
            ..self.clone()
        }
    }
}

impl Service<Request<Incoming>> for UpstreamService {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<ProxyBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Incoming>) -> Self::Future {
        let (link, client) = (self.link.as_ref(), self.client.as_ref());
        let Some(RouteIndex(index)) = req.extensions().get::<RouteIndex>().copied() else {
            return self.default.call(req, link, client);
        };
        let Some((route, target)) = self.routes.get(index) else {
            return self.default.call(req, link, client);
        };
        if route.strip_prefix {
            let path = route.upstream_path(req.uri().path()).into_owned();
            let target_uri = match req.uri().query() {
                Some(query) => format!("{path}?{query}"),
                None => path,
            };
            if let Ok(uri) = target_uri.parse() {
                *req.uri_mut() = uri;
            }
        }
        target.clone().call(req, link, client)
    }
}

/// The gateway: a listening socket and the service stack behind it.
///
/// ```no_run
/// # async fn run() -> Result<(), authgate::Error> {
/// let config = authgate::Config::load("config.toml")?;
/// let gateway = authgate::Gateway::bind(config).await?;
/// println!("listening on http://{}", gateway.local_addr());
/// gateway.serve(authgate::shutdown_signal()).await
/// # }
/// ```
pub struct Gateway {
    listener: TcpListener,
    layer: AuthLayer,
    upstream: UpstreamService,
    /// The in-memory store, when that is the store (for snapshots).
    memory: Option<MemoryStore>,
    config: Config,
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
    access_log_to_stderr: Option<LogFormat>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Builds the service stack for `config`, restores the sessions of its
    /// `persist_path`, and binds its listen address.
    pub async fn bind(config: Config) -> Result<Self, Error> {
        let upstream = UpstreamService::new(&config)?;
        let listen = config.listen();
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| Error::io(format_args!("cannot listen on {listen}"), e))?;
        // With port 0, the issuer and the logs name the port really bound.
        let bound = listener
            .local_addr()
            .map_err(|e| Error::io("cannot read the bound address", e))?;
        let config = config.with_listen(bound);
        let (layer, memory) = match &config.tokens.store {
            StoreConfig::Memory => {
                let store = MemoryStore::new();
                if let Some(path) = &config.tokens.persist_path {
                    restore_sessions(&store, path).await;
                }
                (AuthLayer::with_store(config.clone(), store.clone())?, Some(store))
            }
            #[cfg(feature = "redis")]
            StoreConfig::Redis {
                url,
                prefix,
                cache_for,
            } => {
                let store = crate::store::RedisStore::new(url, prefix, *cache_for)
                    .map_err(|e| Error::new(crate::error::ErrorKind::Config, e.to_string()))?;
                (AuthLayer::with_store(config.clone(), store)?, None)
            }
            #[cfg(not(feature = "redis"))]
            StoreConfig::Redis { .. } => unreachable!("the config refuses redis without the feature"),
        };
        #[cfg(feature = "tls")]
        let tls = match &config.server.tls {
            Some(files) => Some(tokio_rustls::TlsAcceptor::from(
                crate::tls::server_config(&files.cert, &files.key)
                    .map_err(|reason| Error::new(crate::error::ErrorKind::Config, reason))?,
            )),
            None => None,
        };
        Ok(Self {
            listener,
            upstream,
            layer,
            memory,
            config,
            #[cfg(feature = "tls")]
            tls,
            access_log_to_stderr: None,
        })
    }

    /// Writes the access log's lines (target `authgate::access`) straight
    /// to standard error, in the format of `tracing-subscriber`'s `fmt`
    /// layer that `[log] format` names (text without colours, or JSON with
    /// the event flattened and the current span), instead of as `tracing`
    /// events: the same bytes at a small part of the cost. Only for a
    /// process whose `tracing` subscriber writes that format to standard
    /// error, such as the one [`init_logging`](crate::init_logging)
    /// installs when it answers `true` (the `authgate` binary's, unless its
    /// log is a terminal); the subscriber's filter still decides whether
    /// the lines are written.
    pub fn with_access_log_to_stderr(mut self) -> Self {
        self.access_log_to_stderr = Some(self.config.log_format());
        self
    }

    /// The address the gateway listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then stops accepting, waits (up
    /// to 30 seconds) for the requests in flight, and saves the sessions.
    ///
    /// With `server.workers` above one, it also starts that many threads
    /// less one, each with a single-threaded runtime, and hands accepted
    /// connections to each thread in turn, as nginx spreads them over its
    /// worker processes. A connection is served start to end by one
    /// thread, with no wake-ups across threads; the sessions, limits and
    /// metrics are shared.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let acceptor = Arc::new(Acceptor {
            slots: Arc::new(Semaphore::new(self.config.limits.max_connections)),
            layer: self.layer.clone(),
            upstream: self.upstream.clone(),
            config: self.config.clone(),
            #[cfg(feature = "tls")]
            tls: self.tls.clone(),
            access_log_to_stderr: self.access_log_to_stderr,
        });
        let serve_on_worker = {
            let acceptor = acceptor.clone();
            move |connections| acceptor.clone().serve_until(connections, std::future::pending())
        };
        let (connections, workers) =
            Workers::spread(self.listener, self.config.workers() - 1, serve_on_worker)?;
        let background = start_background_tasks(&self.layer, self.memory.as_ref(), &self.config);
        // When this thread stops accepting, the others stop being handed
        // connections; each then finishes its requests in flight.
        acceptor.serve_until(connections, shutdown).await;
        workers.finish().await;
        for task in background {
            task.abort();
        }
        if let (Some(store), Some(path)) = (&self.memory, &self.config.tokens.persist_path) {
            save_sessions(store, path.clone()).await;
        }
        Ok(())
    }
}

/// The periodic snapshot and the `SIGHUP` reload.
fn start_background_tasks(
    layer: &AuthLayer,
    memory: Option<&MemoryStore>,
    config: &Config,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    if let (Some(store), Some(path)) = (memory.cloned(), config.tokens.persist_path.clone()) {
        let every = config.tokens.persist_interval;
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                save_sessions(&store, path.clone()).await;
            }
        }));
    }
    #[cfg(unix)]
    tasks.push(tokio::spawn(reload_on_sighup(layer.clone(), config.clone())));
    tasks
}

async fn restore_sessions(store: &MemoryStore, path: &std::path::Path) {
    let (store, path) = (store.clone(), path.to_path_buf());
    let shown = path.display().to_string();
    match tokio::task::spawn_blocking(move || persist::load(&store, &path)).await {
        Ok(Loaded::Nothing) => tracing::info!(path = shown, "no session snapshot yet"),
        Ok(Loaded::Restored(n)) => tracing::info!(path = shown, sessions = n, "sessions restored"),
        Ok(Loaded::Corrupt { reason, set_aside }) => tracing::error!(
            path = shown,
            %reason,
            set_aside = %set_aside.display(),
            "the session snapshot is unreadable: set aside, starting with no sessions"
        ),
        Err(err) => tracing::error!(error = %err, "restoring sessions failed"),
    }
}

async fn save_sessions(store: &MemoryStore, path: PathBuf) {
    let store = store.clone();
    let shown = path.display().to_string();
    match tokio::task::spawn_blocking(move || persist::save(&store, &path)).await {
        Ok(Ok(n)) => tracing::debug!(path = shown, sessions = n, "sessions saved"),
        Ok(Err(err)) => tracing::error!(path = shown, error = %err, "cannot save the sessions"),
        Err(err) => tracing::error!(error = %err, "saving sessions failed"),
    }
}

/// Reloads the config file on each `SIGHUP`; a config that fails its check
/// is refused with its reason and the one in force stays.
#[cfg(unix)]
async fn reload_on_sighup(layer: AuthLayer, current: Config) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        return;
    };
    while hangups.recv().await.is_some() {
        let path = current.source().to_path_buf();
        match Config::load(&path) {
            Ok(next) => {
                for (what, changed) in [
                    (
                        "server.listen",
                        next.listen() != current.listen() && next.listen().port() != 0,
                    ),
                    ("upstream", next.upstream() != current.upstream()),
                    (
                        "server.trusted_proxies",
                        next.server.trusted_proxies != current.server.trusted_proxies,
                    ),
                    (
                        "tokens.persist_path",
                        next.tokens.persist_path != current.tokens.persist_path,
                    ),
                    ("limits", next.limits != current.limits),
                    ("routes", next.routes != current.routes),
                ] {
                    if changed {
                        tracing::warn!("{what} changed in {}: that takes a restart", path.display());
                    }
                }
                let mut next = next.with_listen(current.listen());
                next.routes = current.routes.clone();
                match layer.reload(next) {
                    Ok(()) => tracing::info!(config = %path.display(), "configuration reloaded"),
                    Err(err) => tracing::error!("reload refused, the old configuration stays: {err}"),
                }
            }
            Err(err) => tracing::error!("reload refused, the old configuration stays: {err}"),
        }
    }
}

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
struct Acceptor {
    slots: Arc<Semaphore>,
    layer: AuthLayer,
    upstream: UpstreamService,
    config: Config,
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
    access_log_to_stderr: Option<LogFormat>,
}

impl Acceptor {
    /// Serves `connections` until they end or `shutdown` completes, then
    /// waits (up to 30 seconds) for the requests in flight.
    async fn serve_until(self: Arc<Self>, mut connections: Connections, shutdown: impl Future<Output = ()>) {
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
            let service = self
                .layer
                .layer(self.upstream.for_connection(peer, slot))
                .for_client(peer);
            let metrics = self.layer.metrics();
            let peer_trusted = is_trusted(peer.ip(), &self.config.server.trusted_proxies);
            let activity = Activity::new();
            // One request at a time borrows it, for the moment of its call.
            let service = std::cell::RefCell::new(service);
            let access_log_to_stderr = self.access_log_to_stderr;
            let seen = activity.clone();
            let handler = hyper::service::service_fn(move |req: Request<Incoming>| {
                let stream = seen.request(req.version());
                let record = Record {
                    metrics: Some(metrics.clone()),
                    access_log_to_stderr,
                };
                let handling = handle(&mut *service.borrow_mut(), peer, peer_trusted, record, req);
                futures_util::FutureExt::map(handling, move |answer| {
                    answer.map(|response| response.map(|body| TrackedBody::new(body, stream)))
                })
            });
            let (builder, stopping) = (builder.clone(), drain.watcher());
            #[cfg(feature = "tls")]
            if let Some(acceptor) = self.tls.clone() {
                let handshake_within = limits.header_read_timeout;
                tokio::spawn(async move {
                    match tokio::time::timeout(handshake_within, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let io = TokioIo::new(stream);
                            let connection = builder.serve_connection_with_upgrades(io, handler).into_owned();
                            let ended = connection::drive(
                                connection,
                                auto::UpgradeableConnection::graceful_shutdown,
                                &activity,
                                deadlines,
                                stopping,
                            )
                            .await;
                            if let Some(Err(err)) = ended {
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
                let connection = builder.serve_connection_with_upgrades(io, handler).into_owned();
                let ended = connection::drive(
                    connection,
                    auto::UpgradeableConnection::graceful_shutdown,
                    &activity,
                    deadlines,
                    stopping,
                )
                .await;
                if let Some(Err(err)) = ended {
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

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::handling::Handling;
    use crate::layer::AuthService;

    /// hyper keeps each request's future in its connection's state and
    /// writes it for every request: with hundreds of connections those
    /// are cold cache lines. 1,056 bytes before it was written by hand.
    #[test]
    fn a_requests_future_stays_small() {
        type Called = <AuthService<UpstreamService> as Service<Request<Incoming>>>::Future;
        let size = std::mem::size_of::<Handling<Called>>();
        assert!(size <= 512, "a request's future is {size} bytes");
        println!("a request's future: {size} bytes");
    }
}
