//! [`AuthLayer`] and [`AuthService`]: the sign-in check in front of any
//! service.
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
//! let config = Config::from_toml_str("[upstream]\nbuiltin = \"whoami\"\n").unwrap();
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
use http::header::{self, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Either;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::auth::client_fields;
use crate::auth::credential::{self, Source};
use crate::auth::state::AuthState;
use crate::config::{Config, Policy};
use crate::error::Error;
use crate::oauth;
use crate::obs::metrics::{Metrics, RouteKind};
use crate::store::{unix_now, MemoryStore, Session, StoreError, TokenKey, TokenStore};
use crate::web::paths;
use crate::web::peer::ClientAddr;
use crate::web::request::is_browser_navigation;
use crate::web::response::{self, OwnBody};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The body of an [`AuthService`] response: the inner service's body, or
/// one the gateway wrote itself (a sign-in page, a 401, a redirect).
pub type AuthBody<B> = Either<B, OwnBody>;

const X_FORWARDED_USER: HeaderName = HeaderName::from_static("x-forwarded-user");
const X_FORWARDED_EMAIL: HeaderName = HeaderName::from_static("x-forwarded-email");
const X_FORWARDED_SCOPE: HeaderName = HeaderName::from_static("x-forwarded-scope");

/// A tower [`Layer`] that puts authgate's sign-in in front of a service.
///
/// It answers its own endpoints (`/management/*`), lets public paths
/// through, and passes on only requests with a valid token, with
/// `Authorization: Bearer <token>` and `X-Forwarded-User` set. The session
/// is also in the request's extensions as a [`Session`].
#[derive(Clone)]
pub struct AuthLayer {
    shared: Shared,
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
        let state = AuthState::new(config, Arc::new(store))?;
        Ok(Self {
            shared: Arc::new(ArcSwap::from_pointee(state)),
        })
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
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            shared: self.shared.clone(),
            client: None,
        }
    }
}

/// The service [`AuthLayer`] builds around an inner service.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    shared: Shared,
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

/// What the check decided for one request.
enum Verdict {
    Forward(Option<Session>),
    Lookup(
        crate::store::StoreFuture<Option<Session>>,
        TokenKey,
        Option<HeaderValue>,
    ),
    Answer(Response<OwnBody>),
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
        let original = normalize_uri(&mut req);
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
            return ResponseFuture::ready(bad_request(
                &state,
                &req,
                "The request carries more than one Authorization field; send one.",
            ));
        }
        if let Some(original) = original {
            req.extensions_mut().insert(original);
        }
        match check(&state, &mut req) {
            Verdict::Forward(session) => ResponseFuture::inner(forward(&mut self.inner, req, session)),
            Verdict::Answer(response) => ResponseFuture::ready(response),
            Verdict::Lookup(pending, key, inject) => {
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let state = self.shared.load_full();
                ResponseFuture::deferred(Box::pin(async move {
                    let outcome = pending.await;
                    match settle(&state, &mut req, outcome, key, inject) {
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

/// The `[[routes]]` entry a request takes (its index), set by the layer
/// for the gateway's upstream service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RouteIndex(pub(crate) usize);

/// Decides what to do with a request that is not for an own endpoint.
fn check<B>(state: &AuthState, req: &mut Request<B>) -> Verdict {
    let mut public = paths::is_public(req.uri().path(), &state.config.auth.public_paths);
    if !state.config.routes.is_empty() {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or(req.uri().host());
        let path = paths::without_params(req.uri().path());
        if let Some((index, route)) = state
            .config
            .routes
            .iter()
            .enumerate()
            .find(|(_, route)| route.matches(host, &path))
        {
            public |= route.policy == Policy::Public;
            req.extensions_mut().insert(RouteIndex(index));
        }
    }
    let Ok(found) = credential::find(req.headers(), req.uri()) else {
        return Verdict::Answer(bad_request(
            state,
            req,
            "The query carries access_token more than once; send it once.",
        ));
    };
    let found = found.map(|presented| {
        let inject = (presented.source != Source::Header)
            .then(|| bearer_value(&presented.token))
            .flatten();
        let well_formed = credential::is_well_formed(&presented.token);
        (TokenKey::of(&presented.token), inject, well_formed)
    });
    if let Some(uri) = credential::without_query_token(req.uri()) {
        *req.uri_mut() = uri;
    }
    if public {
        return Verdict::Forward(None);
    }
    match found {
        Some((key, inject, true)) => match state.store.get(&key).into_ready() {
            Ok(outcome) => match settle(state, req, outcome, key, inject) {
                Ok(session) => Verdict::Forward(Some(session)),
                Err(response) => Verdict::Answer(response),
            },
            Err(pending) => Verdict::Lookup(pending, key, inject),
        },
        Some((_, _, false)) => Verdict::Answer(reject(req, true)),
        None => Verdict::Answer(reject(req, false)),
    }
}

/// `Bearer <token>` as a header value, built without the formatting
/// machinery (a cookie's token is turned into one on every request), or
/// `None` if the token cannot be one.
fn bearer_value(token: &str) -> Option<HeaderValue> {
    let mut value = bytes::BytesMut::with_capacity("Bearer ".len() + token.len());
    value.extend_from_slice(b"Bearer ");
    value.extend_from_slice(token.as_bytes());
    HeaderValue::from_maybe_shared(value.freeze()).ok()
}

/// Turns a store's answer into the session to forward with, setting the
/// headers the inner service sees, or the response to refuse with.
#[allow(clippy::result_large_err)] // the error is the response itself, sent at once
fn settle<B>(
    state: &AuthState,
    req: &mut Request<B>,
    outcome: Result<Option<Session>, StoreError>,
    key: TokenKey,
    inject: Option<HeaderValue>,
) -> Result<Session, Response<OwnBody>> {
    let session = match outcome {
        Ok(Some(session)) if session.is_access() => session,
        Ok(_) => return Err(reject(req, true)),
        Err(err) => {
            tracing::error!(error = %err, "token store lookup failed");
            return Err(unavailable(state, req));
        }
    };
    if let Some(RouteIndex(index)) = req.extensions().get::<RouteIndex>() {
        if let Some(Policy::Users(allowed)) = state.config.routes.get(*index).map(|r| &r.policy) {
            if !allowed.iter().any(|u| u == session.username()) {
                return Err(oauth::error_for(
                    state,
                    req.headers(),
                    StatusCode::FORBIDDEN,
                    "access_denied",
                    "You are signed in, but this part of the site is not open to you.",
                ));
            }
        }
    }
    let now = unix_now();
    if session.needs_touch(now) {
        if let Err(pending) = state.store.touch(&key, now).into_ready() {
            tokio::spawn(pending);
        }
    }
    let headers = req.headers_mut();
    if let Some(value) = inject {
        headers.insert(header::AUTHORIZATION, value);
    }
    let (user, email) = session.identity().as_headers();
    if let Some(user) = user {
        headers.insert(X_FORWARDED_USER, user.clone());
    }
    if let Some(email) = email {
        headers.insert(X_FORWARDED_EMAIL, email.clone());
    }
    if let Some(scope) = session.scope().and_then(|s| HeaderValue::from_str(s).ok()) {
        headers.insert(X_FORWARDED_SCOPE, scope);
    }
    req.extensions_mut().insert(session.clone());
    Ok(session)
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

/// A `400` for a request the gateway cannot read one way only.
fn bad_request<B>(state: &AuthState, req: &Request<B>, description: &str) -> Response<OwnBody> {
    oauth::error_for(
        state,
        req.headers(),
        StatusCode::BAD_REQUEST,
        "invalid_request",
        description,
    )
}

/// No valid credential: a browser is sent to sign in, keeping the page it
/// asked for (as it asked for it, but for an `access_token`); anything
/// else gets a 401.
fn reject<B>(req: &Request<B>, token_presented: bool) -> Response<OwnBody> {
    if is_browser_navigation(req.method(), req.headers()) {
        let original = req
            .extensions()
            .get::<OriginalTarget>()
            .and_then(|OriginalTarget(target)| {
                let uri = Uri::from(target.clone());
                Some(
                    credential::without_query_token(&uri)
                        .unwrap_or(uri)
                        .path_and_query()?
                        .clone(),
                )
            });
        let asked = match &original {
            Some(target) => target.as_str(),
            None => req.uri().path_and_query().map_or("/", PathAndQuery::as_str),
        };
        let location = format!(
            "{}?{}",
            oauth::AUTHORIZE_PATH,
            form_urlencoded::Serializer::new(String::new())
                .append_pair("rd", asked)
                .finish()
        );
        if let Some(redirect) = response::redirect(StatusCode::FOUND, &location) {
            return redirect;
        }
    }
    response::unauthorized(token_presented)
}

fn unavailable<B>(state: &AuthState, req: &Request<B>) -> Response<OwnBody> {
    oauth::error_for(
        state,
        req.headers(),
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "The token store cannot be reached; try again in a moment.",
    )
}

/// The request's target as the client sent it, when the gateway
/// normalized its path: a browser sent to sign in comes back to it.
#[derive(Clone, Debug)]
struct OriginalTarget(PathAndQuery);

/// Rewrites the request's path to its normalized form, the one that is
/// checked and the one the inner service sees; answers the target as sent
/// when it changed it.
fn normalize_uri<B>(req: &mut Request<B>) -> Option<OriginalTarget> {
    let path = req.uri().path();
    if !needs_normalizing(path) {
        return None;
    }
    let normal = paths::normalize(path)?;
    if normal == path {
        return None;
    }
    let original = req.uri().path_and_query().cloned().map(OriginalTarget);
    let path_and_query = match req.uri().query() {
        Some(query) => format!("{normal}?{query}"),
        None => normal,
    };
    let mut parts = req.uri().clone().into_parts();
    let pq = PathAndQuery::try_from(path_and_query).ok()?;
    parts.path_and_query = Some(pq);
    *req.uri_mut() = Uri::from_parts(parts).ok()?;
    original
}

/// A cheap test that lets the common, already-normal path skip the
/// rewrite.
fn needs_normalizing(path: &str) -> bool {
    path.contains("//") || path.contains("/.") || path.contains('%') || path.contains('\\')
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
