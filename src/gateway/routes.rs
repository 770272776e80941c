//! `[[routes]]`: which route a request takes (by host, then by path
//! prefix; the first that matches, and `[upstream]` takes the rest), each
//! route with its own upstream and its own rule of who may pass, behind
//! its own service of the layer.
//!
//! A route is chosen on the path as the layer will check it: normalized,
//! and with each segment's `;` parameters set aside, as Tomcat and Jetty
//! read it (`/admin;x/secret` is under `/admin`).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header;
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;
use tower::{Layer, Service};

use crate::auth::decision::Access;
use crate::config::{Config, Policy, Route, Upstream};
use crate::error::Error;
use crate::layer::{AuthLayer, AuthService};
use crate::proxy::pool::ConnectionLink;
use crate::proxy::{Client, Proxy, ProxyBody};
use crate::web::paths;

use super::whoami::Whoami;

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
            Upstream::Url(url) => Target::Proxy(Proxy::to_origin(
                url,
                &config.upstream,
                &config.server,
                upgrades.to_vec(),
            )?),
            Upstream::Whoami => Target::Whoami(Whoami),
        })
    }
}

/// One route's upstream, for one client connection: the upstream
/// connections that client connection keeps between its requests, its
/// peer, and the route's prefix to take off first, where it says so.
#[derive(Clone, Debug)]
pub(crate) struct RouteUpstream {
    target: Target,
    strip: Option<Arc<Route>>,
    link: ConnectionLink,
    client: Client,
}

impl Service<Request<Incoming>> for RouteUpstream {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<ProxyBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Incoming>) -> Self::Future {
        if let Some(route) = &self.strip {
            let path = route.upstream_path(req.uri().path()).into_owned();
            let target = match req.uri().query() {
                Some(query) => format!("{path}?{query}"),
                None => path,
            };
            if let Ok(uri) = target.parse() {
                *req.uri_mut() = uri;
            }
        }
        match &mut self.target {
            Target::Proxy(proxy) => proxy.forward(req, Some(self.link.clone()), Some(&self.client)),
            Target::Whoami(whoami) => Box::pin(whoami.call(req)),
        }
    }
}

/// The gateway's routes, made once: each route's matcher, its service of
/// the layer (with its rule of who may pass) and its upstream; the default
/// route (`[upstream]`) last.
#[derive(Debug)]
pub(crate) struct RouteTable {
    routes: Vec<Route>,
    /// One per route, then the default's.
    entries: Vec<(AuthLayer, Target, Option<Arc<Route>>)>,
}

impl RouteTable {
    /// The routes of `config`, behind services of `layer`.
    pub(crate) fn new(config: &Config, layer: &AuthLayer) -> Result<Self, Error> {
        let mut entries = Vec::with_capacity(config.routes.len() + 1);
        for route in &config.routes {
            let access = match &route.policy {
                Policy::Public => Access::Anyone,
                Policy::Authenticated => Access::SignedIn,
                Policy::Only(allowed) => Access::Only(Arc::new(allowed.clone())),
            };
            let strip = route.strip_prefix.then(|| Arc::new(route.clone()));
            entries.push((
                layer.for_route(access, &route.credentials, route.auth_level),
                Target::new(&route.upstream, config, &route.upgrades)?,
                strip,
            ));
        }
        entries.push((
            layer.clone(),
            Target::new(config.upstream(), config, &config.upstream.upgrades)?,
            None,
        ));
        Ok(Self {
            routes: config.routes.clone(),
            entries,
        })
    }

    /// The routes for the client connection with `peer`, which keeps the
    /// upstream connection its last request used for its next one; `slot`
    /// is its connection slot, kept as long as any tunnel it upgrades to
    /// (a WebSocket) is open too.
    pub(crate) fn for_connection(
        self: &Arc<Self>,
        peer: SocketAddr,
        slot: Arc<OwnedSemaphorePermit>,
    ) -> Routes {
        let link = ConnectionLink::default();
        let client = Client::new(peer, Some(slot));
        let services = self
            .entries
            .iter()
            .map(|(layer, target, strip)| {
                let upstream = RouteUpstream {
                    target: target.clone(),
                    strip: strip.clone(),
                    link: link.clone(),
                    client: client.clone(),
                };
                layer.layer(upstream).for_client(peer)
            })
            .collect();
        Routes {
            table: self.clone(),
            services,
        }
    }

    /// Which entry a request takes: the first route that matches its host
    /// and path, else the default.
    fn select<B>(&self, req: &Request<B>) -> usize {
        if self.routes.is_empty() {
            return 0;
        }
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or(req.uri().host());
        let normalized = paths::normalized(req.uri().path());
        let path = paths::without_params(&normalized);
        self.routes
            .iter()
            .position(|route| route.matches(host, &path))
            .unwrap_or(self.routes.len())
    }
}

/// The routes of one client connection, each behind its own service of
/// the layer.
pub(crate) struct Routes {
    table: Arc<RouteTable>,
    services: Vec<AuthService<RouteUpstream>>,
}

impl Service<Request<Incoming>> for Routes {
    type Response = <AuthService<RouteUpstream> as Service<Request<Incoming>>>::Response;
    type Error = Infallible;
    type Future = <AuthService<RouteUpstream> as Service<Request<Incoming>>>::Future;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let entry = self.table.select(&req);
        self.services[entry].call(req)
    }
}
