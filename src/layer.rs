//! [`AuthLayer`] and [`AuthService`]: the sign-in check in front of any
//! service. The layer answers the gateway's own endpoints (`/management/*`,
//! by [`crate::oauth`]), decides for everything else
//! ([`crate::auth::decision`]), and passes on what may pass.
//!
//! Every response carries its [`RouteKind`] in its extensions (what the
//! layer did with the request), and an authenticated one its [`Session`].
//!
//! ```
//! use authgate::{AuthLayer, Config};
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let config = Config::builder().user("alice", &authgate::hash_password("pw")).build().unwrap();
//! let app = service_fn(|_req: Request<Full<Bytes>>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("secret"))))
//! });
//! let service = ServiceBuilder::new()
//!     .layer(AuthLayer::new(config).unwrap())
//!     .service(app);
//!
//! // No credential: an API client gets a 401, and the app never runs.
//! let response = service
//!     .oneshot(Request::get("/data").body(Full::new(Bytes::new())).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response};
use http_body::Body;
use http_body_util::Either;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::auth::client_fields;
use crate::auth::decision::{self, Access, RouteRules, Verdict};
use crate::auth::state::AuthState;
use crate::config::Config;
use crate::config::{AuthLevel, UpstreamCredentials};
use crate::error::Error;
use crate::oauth;
use crate::obs::endpoints::Endpoint;
use crate::obs::metrics::{Metrics, RouteKind};
use crate::store::{MemoryStore, Session, TokenStore};
use crate::web::peer::ClientAddr;
use crate::web::response::OwnBody;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// `[database]` and the OAuth clients loaded from it.
pub(crate) type DatabaseAndClients = (crate::db::Database, Arc<crate::identity::DatabaseClients>);

/// The body of an [`AuthService`] response: the inner service's body, or
/// one the gateway wrote itself (a sign-in page, a 401, a redirect).
pub type AuthBody<B> = Either<B, OwnBody>;

/// A tower [`Layer`] that puts authgate's sign-in in front of a service.
///
/// It answers its own endpoints (`/management/*`), lets public paths
/// through, and passes on only requests with a valid token, with
/// `Authorization: Bearer <token>` and `X-Forwarded-User` set. The session
/// is also in the request's extensions as a [`Session`].
#[derive(Clone)]
pub struct AuthLayer {
    shared: Shared,
    /// Who may pass, besides the public paths, and what is sent on.
    rules: RouteRules,
    /// Whether `/healthz`, `/readyz` and `/metrics` are answered here.
    operations: bool,
}

/// The state every service of one layer shares; replaced whole on reload.
type Shared = Arc<ArcSwap<AuthState>>;

impl AuthLayer {
    /// A layer for `config`, keeping tokens in memory.
    pub fn new(config: Config) -> Result<Self, Error> {
        Self::with_store(config, MemoryStore::new())
    }

    /// A layer for `config`, keeping tokens in `store`.
    pub fn with_store(config: Config, store: impl TokenStore) -> Result<Self, Error> {
        let rules = RouteRules::new(
            Access::SignedIn,
            &config.upstream.credentials,
            AuthLevel::Password,
        );
        let state = AuthState::new(config, Arc::new(store))?;
        Ok(Self {
            shared: Arc::new(ArcSwap::from_pointee(state)),
            rules,
            operations: false,
        })
    }

    /// The same layer, also answering `/healthz`, `/readyz` (whether the
    /// token store answers) and `/metrics` (Prometheus text) itself,
    /// without sign-in, as the gateway binary does. Off by default, so
    /// that an app's own endpoints of those names are never shadowed.
    pub fn with_operations_endpoints(mut self) -> Self {
        self.operations = true;
        self
    }

    /// The same layer, letting through only sessions signed in with two
    /// factors (as a route with `auth_level = "mfa"`): a browser with one is
    /// sent for its second and back, an API client gets RFC 9470's `401
    /// insufficient_user_authentication`. Wrap the part of an app that
    /// needs it with this one, and the rest with the plain layer.
    ///
    /// Refused (an [`Error`] that says so) where the config has no second
    /// factors (`[auth] second_factor`): no one could pass.
    pub fn requiring_second_factor(mut self) -> Result<Self, Error> {
        if !self.shared.load().config.auth.second_factor.is_on() {
            return Err(Error::new(
                crate::error::ErrorKind::Config,
                "requiring_second_factor needs [auth] second_factor = \"optional\" or \"required\"",
            ));
        }
        self.rules.auth_level = AuthLevel::Mfa;
        Ok(self)
    }

    /// The same layer (sessions, configuration), open to `access` besides
    /// the public paths, sending its upstream `credentials`: a route of
    /// the gateway's.
    pub(crate) fn for_route(
        &self,
        access: Access,
        credentials: &UpstreamCredentials,
        auth_level: AuthLevel,
    ) -> Self {
        Self {
            rules: RouteRules::new(access, credentials, auth_level),
            ..self.clone()
        }
    }

    /// The database, its clients and the token store (the same across
    /// reloads).
    pub(crate) fn database_and_store(&self) -> (Option<DatabaseAndClients>, Arc<dyn TokenStore>) {
        let state = self.shared.load();
        let database = state.database.clone().zip(state.database_clients.clone());
        (database, state.store.clone())
    }

    /// The state in force now.
    pub(crate) fn state(&self) -> Arc<AuthState> {
        self.shared.load_full()
    }

    /// The signing keys (the same across reloads).
    pub(crate) fn keys(&self) -> Arc<crate::signing::KeyRing> {
        self.shared.load().keys.clone()
    }

    /// The layer's metrics (the same registry across reloads).
    pub(crate) fn metrics(&self) -> Arc<Metrics> {
        self.shared.load().metrics.clone()
    }

    /// The configuration the layer runs on now.
    pub fn config(&self) -> Config {
        self.shared.load().config.clone()
    }

    /// Puts a new configuration in force for every service of this layer:
    /// users, clients, public paths, pages and limits change at once, and
    /// sessions and connections stay. On error the old configuration stays.
    pub fn reload(&self, config: Config) -> Result<(), Error> {
        let next = self.shared.load().reloaded(config)?;
        self.shared.store(Arc::new(next));
        Ok(())
    }
}

impl fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("config", &self.shared.load().config.source())
            .field("operations_endpoints", &self.operations)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            shared: self.shared.clone(),
            rules: self.rules.clone(),
            operations: self.operations,
            client: None,
        }
    }
}

/// The service [`AuthLayer`] builds around an inner service.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    shared: Shared,
    rules: RouteRules,
    operations: bool,
    /// The peer of the connection this service serves, when the gateway
    /// made it for one: put on requests to the gateway's own endpoints
    /// (their throttles count per address), not on every request.
    client: Option<ClientAddr>,
}

impl<S> AuthService<S> {
    /// This service for the connection with `peer`.
    pub(crate) fn for_client(self, peer: std::net::SocketAddr) -> Self {
        Self {
            client: Some(ClientAddr(peer)),
            ..self
        }
    }
}

impl<S> fmt::Debug for AuthService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService").finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let original = decision::normalize_uri(&mut req);
        if let Some(endpoint) = self.operations.then(|| Endpoint::at(req.uri().path())).flatten() {
            let state = self.shared.load();
            let answer = endpoint.answer(
                req.method().clone(),
                state.metrics.clone(),
                state.store.clone(),
                state.database.clone(),
            );
            return ResponseFuture::own(Box::pin(answer));
        }
        if oauth::is_own_endpoint(req.uri().path()) {
            if let Some(client) = self.client {
                req.extensions_mut().insert(client);
            }
            let state = self.shared.load_full();
            return ResponseFuture::own(Box::pin(oauth::handle(state, req)));
        }
        let state = self.shared.load();
        let found = client_fields::sanitize(req.headers_mut(), state.config.upstream.underscores_in_headers);
        if found.repeated_authorization {
            return ResponseFuture::ready(decision::bad_request(
                &state,
                &req,
                "The request carries more than one Authorization field; send one.",
            ));
        }
        if let Some(original) = original {
            req.extensions_mut().insert(original);
        }
        match decision::check(&state, &self.rules, &mut req) {
            Verdict::Forward(session) => ResponseFuture::inner(forward(&mut self.inner, req, session)),
            Verdict::Answer(response) => ResponseFuture::ready(response),
            Verdict::Lookup(pending, key, inject) => {
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let state = self.shared.load_full();
                let rules = self.rules.clone();
                ResponseFuture::deferred(Box::pin(async move {
                    let outcome = pending.await;
                    match decision::settle(&state, &rules, &mut req, outcome, key, inject) {
                        Ok(session) => {
                            let response = forward(&mut inner, req, Some(session)).await?;
                            Ok(response.map(Either::Left))
                        }
                        Err(mut response) => {
                            response.extensions_mut().insert(RouteKind::Refused);
                            Ok(response.map(Either::Right))
                        }
                    }
                }))
            }
        }
    }
}

fn forward<S, B>(inner: &mut S, req: Request<B>, session: Option<Session>) -> Inner<S::Future>
where
    S: Service<Request<B>>,
{
    Inner {
        future: inner.call(req),
        session,
    }
}

pin_project! {
    /// The inner service's future, with the session to record on its
    /// response.
    struct Inner<F> {
        #[pin]
        future: F,
        session: Option<Session>,
    }
}

pin_project! {
    /// The response future of [`AuthService`].
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Inner { #[pin] inner: Inner<F> },
        Ready { response: Option<Response<OwnBody>> },
        Own { future: BoxFuture<Response<OwnBody>> },
        Deferred { future: BoxFuture<Result<Response<AuthBody<B>>, E>> },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    fn inner(inner: Inner<F>) -> Self {
        Self {
            kind: Kind::Inner { inner },
        }
    }
    fn ready(response: Response<OwnBody>) -> Self {
        Self {
            kind: Kind::Ready {
                response: Some(response),
            },
        }
    }
    fn own(future: BoxFuture<Response<OwnBody>>) -> Self {
        Self {
            kind: Kind::Own { future },
        }
    }
    fn deferred(future: BoxFuture<Result<Response<AuthBody<B>>, E>>) -> Self {
        Self {
            kind: Kind::Deferred { future },
        }
    }
}

impl<F, B, E> Future for Inner<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.future.poll(cx))?;
        let route = match this.session.take() {
            Some(session) => {
                // The gateway's proxy hands the request's extensions, with
                // this session, to the response: no second copy.
                if response.extensions().get::<Session>().is_none() {
                    response.extensions_mut().insert(session);
                }
                // One person's page: no shared cache may keep it for
                // another, unless the service said how to cache it.
                let headers = response.headers_mut();
                if !headers.contains_key(header::CACHE_CONTROL) {
                    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
                }
                RouteKind::Authenticated
            }
            None => RouteKind::Public,
        };
        response.extensions_mut().insert(route);
        Poll::Ready(Ok(response))
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<AuthBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { inner } => inner.poll(cx).map_ok(|r| r.map(Either::Left)),
            KindProj::Ready { response } => {
                let mut response = response.take().expect("ResponseFuture polled after completion");
                response.extensions_mut().insert(RouteKind::Refused);
                Poll::Ready(Ok(response.map(Either::Right)))
            }
            KindProj::Own { future } => future.as_mut().poll(cx).map(|mut r| {
                r.extensions_mut().insert(RouteKind::Own);
                Ok(r.map(Either::Right))
            }),
            KindProj::Deferred { future } => future.as_mut().poll(cx),
        }
    }
}
