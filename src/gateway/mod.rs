//! The `authgate` binary's server, for a program that runs one as the
//! binary does: [`Gateway`] binds its address, builds the stack (the
//! routes, each behind its service of the layer, in front of the
//! [`Proxy`]), and serves: connections accepted within the limits, spread
//! over worker threads, each request logged and counted, sessions kept
//! across restarts, the config reloaded on `SIGHUP`, and a graceful
//! shutdown ([`shutdown_signal`]). [`init_logging`] installs its log.
//!
//! ```no_run
//! # async fn run() -> Result<(), authgate::Error> {
//! authgate::gateway::init_logging(authgate::gateway::LogFormat::Text);
//! let config = authgate::Config::load("config.toml")?;
//! let gateway = authgate::gateway::Gateway::bind(config).await?;
//! gateway.serve(authgate::gateway::shutdown_signal()).await
//! # }
//! ```

mod accept;
mod changes;
mod connection;
mod handling;
mod manage;
mod reload;
mod routes;
mod sessions;
mod whoami;
mod workers;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::{Config, StoreConfig};
use crate::error::Error;
use crate::layer::AuthLayer;
use crate::store::MemoryStore;

pub use self::manage::{manage, MANAGE_USAGE};
pub use self::whoami::Whoami;
pub use crate::config::{LogFormat, Upstream};
pub use crate::obs::logging::init_logging;
pub use crate::proxy::error::{ErrorKind as UpstreamErrorKind, ProtocolError, Retry, UpstreamError};
pub use crate::proxy::pool::UpstreamBody;
pub use crate::proxy::{Proxy, ProxyBody};

use self::accept::Acceptor;
use self::routes::RouteTable;
use self::workers::Workers;

/// The gateway: a listening socket and the service stack behind it.
///
/// ```no_run
/// # async fn run() -> Result<(), authgate::Error> {
/// let config = authgate::Config::load("config.toml")?;
/// let gateway = authgate::gateway::Gateway::bind(config).await?;
/// println!("listening on http://{}", gateway.local_addr());
/// gateway.serve(authgate::gateway::shutdown_signal()).await
/// # }
/// ```
pub struct Gateway {
    listener: TcpListener,
    layer: AuthLayer,
    routes: Arc<RouteTable>,
    /// The in-memory store, when that is the store (for snapshots).
    memory: Option<MemoryStore>,
    config: Config,
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
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
        let listen = config.listen();
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| Error::io(format_args!("cannot listen on {listen}"), e))?;
        // With port 0, the issuer and the logs name the port really bound.
        let bound = listener
            .local_addr()
            .map_err(|e| Error::io("cannot read the bound address", e))?;
        let config = config.with_listen(bound);
        if let Some(url) = &config.database {
            prepare_database(url).await?;
        }
        let (layer, memory) = match &config.tokens.store {
            StoreConfig::Memory => {
                let store = MemoryStore::new();
                if let Some(path) = &config.tokens.persist_path {
                    sessions::restore_sessions(&store, path).await;
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
                if config.auth.secret.is_none() {
                    tracing::warn!(
                        "tokens.store = \"redis\" without auth.secret_file: this gateway signs its forms and sign-in cookies with a key of its own, so a sign-in started at one gateway fails at another; give every gateway the same auth.secret_file"
                    );
                }
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
        if let (Some((_, clients)), _) = layer.database_and_store() {
            // Its OAuth clients are known before the first request (the
            // change feed keeps trying if the database is down now).
            if let Ok(Ok(count)) =
                tokio::time::timeout(std::time::Duration::from_secs(5), clients.reload()).await
            {
                tracing::debug!(count, "OAuth clients loaded from the database");
            }
        }
        // The gateway's own endpoints: the layer answers them, unlike an
        // app's embedded layer, whose paths they would shadow.
        let layer = layer.with_operations_endpoints();
        let routes = Arc::new(RouteTable::new(&config, &layer)?);
        Ok(Self {
            listener,
            routes,
            layer,
            memory,
            config,
            #[cfg(feature = "tls")]
            tls,
        })
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
            routes: self.routes.clone(),
            config: self.config.clone(),
            #[cfg(feature = "tls")]
            tls: self.tls.clone(),
            access_log: self.config.log_format(),
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
            sessions::save_sessions(store, path.clone()).await;
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
        tasks.push(tokio::spawn(sessions::save_every(
            store,
            path,
            config.tokens.persist_interval,
        )));
    }
    if let (Some((db, clients)), _) = layer.database_and_store() {
        tasks.push(tokio::spawn(changes::watch(db, layer.clone(), clients)));
    }
    tasks.push(tokio::spawn(refresh_keys(layer.keys())));
    #[cfg(unix)]
    tasks.push(tokio::spawn(reload::reload_on_sighup(
        layer.clone(),
        config.clone(),
    )));
    tasks
}

/// Makes keys kept in memory; reads `[signing] keys_dir` again every
/// minute: keys another gateway made, and a rotation that is due.
async fn refresh_keys(keys: std::sync::Arc<crate::signing::KeyRing>) {
    // Keys kept in memory are made now, off the async threads, rather
    // than by the first token request that needs one.
    let warm = keys.clone();
    let _ = tokio::task::spawn_blocking(move || warm.jwks()).await;
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        let keys = keys.clone();
        match tokio::task::spawn_blocking(move || keys.refresh()).await {
            Ok(Ok(true)) => tracing::info!("a new signing key signs from now on"),
            Ok(Ok(false)) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "could not read the signing keys again"),
            Err(err) => tracing::warn!(error = %err, "reading the signing keys failed"),
        }
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

/// Brings `[database]`'s schema up to date before the gateway serves: a
/// database newer than this binary is refused; one that cannot be reached
/// now is only warned about (its people get a clear error until it is back,
/// and the schema is brought up to date then).
async fn prepare_database(url: &str) -> Result<(), Error> {
    let db = crate::db::Database::open(url)
        .map_err(|e| Error::new(crate::error::ErrorKind::Config, e.to_string()))?;
    match tokio::time::timeout(std::time::Duration::from_secs(10), db.ready()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err @ crate::db::DbError::Newer { .. })) => {
            Err(Error::new(crate::error::ErrorKind::Config, err.to_string()))
        }
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "the database cannot be reached at start; its people cannot sign in until it is back");
            Ok(())
        }
        Err(_) => {
            tracing::warn!(
                "the database did not answer within 10 s at start; its people cannot sign in until it does"
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::handling::Handling;
    use super::routes::Routes;
    use http::Request;
    use hyper::body::Incoming;
    use tower::Service;

    /// hyper keeps each request's future in its connection's state and
    /// writes it for every request: with hundreds of connections those
    /// are cold cache lines. 1,056 bytes before it was written by hand.
    #[test]
    fn a_requests_future_stays_small() {
        type Called = <Routes as Service<Request<Incoming>>>::Future;
        let size = std::mem::size_of::<Handling<Called>>();
        assert!(size <= 512, "a request's future is {size} bytes");
        println!("a request's future: {size} bytes");
    }
}
