//! The gateway binary's server: accepts connections (HTTP/1.1 and h2c),
//! runs [`AuthLayer`] in front of the upstream, logs one line per request,
//! and shuts down gracefully.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceExt};

use crate::config::{Config, Upstream};
use crate::error::Error;
use crate::forwarding::ClientAddr;
use crate::layer::{AuthBody, AuthLayer, AuthService};
use crate::proxy::{Proxy, ProxyBody};
use crate::store::Session;
use crate::whoami::Whoami;

/// How long a graceful shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The service behind the layer: the reverse proxy, or the built-in
/// upstream.
#[derive(Clone, Debug)]
enum UpstreamService {
    Proxy(Proxy),
    Whoami(Whoami),
}

impl Service<Request<Incoming>> for UpstreamService {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<ProxyBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        match self {
            Self::Proxy(proxy) => proxy.call(req),
            Self::Whoami(whoami) => Box::pin(whoami.call(req)),
        }
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
    service: AuthService<UpstreamService>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Builds the service stack for `config` and binds its listen address.
    pub async fn bind(config: Config) -> Result<Self, Error> {
        let upstream = match config.upstream() {
            Upstream::Url(url) => {
                let proto = config.public_url().map_or("http", |u| u.scheme());
                UpstreamService::Proxy(Proxy::new(
                    url,
                    config.upstream_connect_timeout,
                    config.upstream_timeout,
                    proto,
                ))
            }
            Upstream::Whoami => UpstreamService::Whoami(Whoami),
        };
        let listen = config.listen();
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| Error::io(format_args!("cannot listen on {listen}"), e))?;
        // With port 0, the issuer and the logs name the port really bound.
        let bound = listener
            .local_addr()
            .map_err(|e| Error::io("cannot read the bound address", e))?;
        let layer = AuthLayer::new(config.with_listen(bound))?;
        Ok(Self {
            listener,
            service: layer.layer(upstream),
        })
    }

    /// The address the gateway listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then stops accepting and waits
    /// (up to 30 seconds) for the requests in flight to finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let graceful = GracefulShutdown::new();
        let builder = auto::Builder::new(TokioExecutor::new());
        let mut shutdown = pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let service = self.service.clone();
            let handler = hyper::service::service_fn(move |req| handle(service.clone(), peer, req));
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), handler)
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(err) = connection.await {
                    tracing::debug!(error = %err, %peer, "connection ended with an error");
                }
            });
        }
        drop(self.listener);
        tracing::info!("shutting down: finishing the requests in flight");
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections closed"),
            () = tokio::time::sleep(SHUTDOWN_GRACE) => {
                tracing::warn!("gave up waiting for connections after {}s", SHUTDOWN_GRACE.as_secs());
            }
        }
        Ok(())
    }
}

/// One request through the stack, and its line in the log: method, path
/// (never the query, which may hold a token), status, latency, user.
async fn handle(
    service: AuthService<UpstreamService>,
    peer: SocketAddr,
    mut req: Request<Incoming>,
) -> Result<Response<AuthBody<ProxyBody>>, Infallible> {
    let started = Instant::now();
    req.extensions_mut().insert(ClientAddr(peer));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = service.oneshot(req).await?;
    let user = response.extensions().get::<Session>().map(Session::username);
    tracing::info!(
        target: "authgate::access",
        %method,
        path,
        status = response.status().as_u16(),
        latency_us = started.elapsed().as_micros() as u64,
        user,
        client = %peer.ip(),
    );
    Ok(response)
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
