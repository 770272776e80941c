//! The decision for one request that is not for an own endpoint: pass it
//! on (on a public path, or with a valid session, its identity set on it),
//! or refuse it: a browser is sent to sign in, an API client gets a `401`,
//! a signed-in person a route is not open to a `403`, and what cannot be
//! read one way only a `400`.

use std::sync::Arc;

use http::header::{self, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, StatusCode};

use crate::config::{Allowed, AuthLevel, UpstreamCredentials};
use crate::store::{unix_now, ProviderTokens, Session, StoreError, StoreFuture, TokenKey};
use crate::web::paths;
use crate::web::request::is_browser_navigation;
use crate::web::response::{self, OwnBody};

use super::credential::{self, Source};
use super::identity_jwt::IdentityJwts;
use super::state::AuthState;

const X_FORWARDED_USER: HeaderName = HeaderName::from_static("x-forwarded-user");
const X_AUTHGATE_JWT: HeaderName = HeaderName::from_static("x-authgate-jwt");
const X_FORWARDED_EMAIL: HeaderName = HeaderName::from_static("x-forwarded-email");
const X_FORWARDED_SCOPE: HeaderName = HeaderName::from_static("x-forwarded-scope");
const X_FORWARDED_ACCESS_TOKEN: HeaderName = HeaderName::from_static("x-forwarded-access-token");
const X_FORWARDED_GROUPS: HeaderName = HeaderName::from_static("x-forwarded-groups");
const X_FORWARDED_PREFERRED_USERNAME: HeaderName = HeaderName::from_static("x-forwarded-preferred-username");
const X_FORWARDED_AUTH_LEVEL: HeaderName = HeaderName::from_static("x-forwarded-auth-level");

/// Who may pass a service of the layer, besides `auth.public_paths`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone, signed in or not (a public route).
    Anyone,
    /// Anyone signed in whom `[auth] allowed_users` and `allowed_groups`
    /// let in (everyone, when neither is set).
    SignedIn,
    /// Only these users and groups; others signed in get `403`.
    Only(Arc<Allowed>),
}

/// A route's rules: who may pass, and what its upstream is sent.
#[derive(Clone, Debug)]
pub(crate) struct RouteRules {
    pub(crate) access: Access,
    pub(crate) credentials: Arc<UpstreamCredentials>,
    /// The identity JWTs made for this route's upstream.
    pub(crate) identity_jwts: Arc<IdentityJwts>,
    /// How a session must have been signed in to pass.
    pub(crate) auth_level: AuthLevel,
}

impl RouteRules {
    pub(crate) fn new(access: Access, credentials: &UpstreamCredentials, auth_level: AuthLevel) -> Self {
        Self {
            access,
            credentials: Arc::new(credentials.clone()),
            identity_jwts: Arc::new(IdentityJwts::default()),
            auth_level,
        }
    }
}

/// What the check decided for one request.
pub(crate) enum Verdict {
    /// On to the inner service, with the session if there is one.
    Forward(Option<Session>),
    /// The store must be asked (a networked store): then [`settle`].
    Lookup(StoreFuture<Option<Session>>, TokenKey, Option<HeaderValue>),
    /// Refused with this answer.
    Answer(Response<OwnBody>),
}

/// Decides what to do with a request that is not for an own endpoint,
/// for a service open to `access`.
pub(crate) fn check<B>(state: &AuthState, rules: &RouteRules, req: &mut Request<B>) -> Verdict {
    let public = matches!(rules.access, Access::Anyone)
        || paths::is_public(req.uri().path(), &state.config.auth.public_paths);
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
    // An upstream not to be sent the session's token is sent no gateway
    // credential at all, on a public route too.
    let found = match rules.credentials.send_session_token {
        true => found,
        false => {
            credential::remove_from(req.headers_mut());
            found.map(|(key, _, well_formed)| (key, None, well_formed))
        }
    };
    if public {
        return Verdict::Forward(None);
    }
    match found {
        Some((key, inject, true)) => match state.store.get(&key).into_ready() {
            Ok(outcome) => match settle(state, rules, req, outcome, key, inject) {
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
pub(crate) fn settle<B>(
    state: &AuthState,
    rules: &RouteRules,
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
    let allowed = match &rules.access {
        Access::Only(allowed) => Some(&**allowed),
        Access::SignedIn => state.config.auth.allowed.as_ref(),
        Access::Anyone => None,
    };
    if let Some(allowed) = allowed {
        let identity = session.identity();
        if !allowed.admits(identity.username(), |group| identity.in_group(group)) {
            return Err(state.error_for(
                req.headers(),
                StatusCode::FORBIDDEN,
                "access_denied",
                "You are signed in, but this part of the site is not open to you.",
            ));
        }
    }
    if session.identity().password_change_required() {
        return Err(password_change_first(state, req));
    }
    let methods = session.methods();
    if rules.auth_level == AuthLevel::Mfa && !methods.is_multi_factor() {
        return Err(step_up(state, req));
    }
    let now = unix_now();
    if session.needs_touch(now) {
        if let Err(pending) = state.store.touch(&key, now).into_ready() {
            tokio::spawn(pending);
        }
    }
    let identity_jwt = rules.credentials.identity_jwt.as_deref().and_then(|audience| {
        rules
            .identity_jwts
            .for_upstream(state, &key, &session, audience, now)
    });
    let headers = req.headers_mut();
    if let Some(value) = inject {
        headers.insert(header::AUTHORIZATION, value);
    }
    if let Some(jwt) = identity_jwt {
        headers.insert(X_AUTHGATE_JWT, jwt);
    }
    let forwarded = session.identity().as_headers();
    for (name, value) in [
        (X_FORWARDED_USER, &forwarded.user),
        (X_FORWARDED_EMAIL, &forwarded.email),
        (X_FORWARDED_GROUPS, &forwarded.groups),
        (X_FORWARDED_PREFERRED_USERNAME, &forwarded.preferred_username),
    ] {
        if let Some(value) = value {
            headers.insert(name, value.clone());
        }
    }
    if let Some(scope) = session.scope().and_then(|s| HeaderValue::from_str(s).ok()) {
        headers.insert(X_FORWARDED_SCOPE, scope);
    }
    headers.insert(X_FORWARDED_AUTH_LEVEL, HeaderValue::from_static(methods.level()));
    if let Some(tokens) = session.identity().provider_tokens() {
        provider_tokens(state, &session, tokens, key, now, headers);
    }
    req.extensions_mut().insert(session.clone());
    Ok(session)
}

/// A session from an outside provider: its access token upstream (with
/// `pass_access_token`), and a refresh when it is due.
fn provider_tokens(
    state: &AuthState,
    session: &Session,
    tokens: &ProviderTokens,
    key: TokenKey,
    now: u64,
    headers: &mut http::HeaderMap,
) {
    let due = tokens.due(now);
    // Most requests need neither: no provider lookup for them.
    if !due && !state.directory.passes_access_tokens() {
        return;
    }
    let Some(provider) = session
        .identity()
        .provider()
        .and_then(|id| state.directory.outside_provider(id))
    else {
        return;
    };
    if provider.passes_access_token() {
        if let Ok(value) = HeaderValue::from_str(&tokens.access_token) {
            headers.insert(X_FORWARDED_ACCESS_TOKEN, value);
        }
    }
    if due {
        provider.refresh_in_background(key, session.clone(), state.store.clone());
    }
}

/// A session of a temporary password: a browser is sent to change it, an
/// API client gets a `403` that says so.
fn password_change_first<B>(state: &AuthState, req: &Request<B>) -> Response<OwnBody> {
    if is_browser_navigation(req.method(), req.headers()) {
        if let Some(redirect) = response::redirect(StatusCode::FOUND, super::CHANGE_PASSWORD_PAGE) {
            return redirect;
        }
    }
    state.error_for(
        req.headers(),
        StatusCode::FORBIDDEN,
        "password_change_required",
        "You signed in with a temporary password: change it at /management/account first.",
    )
}

/// A `400` for a request the gateway cannot read one way only.
pub(crate) fn bad_request<B>(state: &AuthState, req: &Request<B>, description: &str) -> Response<OwnBody> {
    state.error_for(
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
        if let Some(redirect) = to_page(super::SIGN_IN_PATH, req) {
            return redirect;
        }
    }
    response::unauthorized(token_presented)
}

/// A session signed in with one factor on a route that wants two: a
/// browser is sent for the second (and back); an API client gets RFC
/// 9470's challenge.
fn step_up<B>(state: &AuthState, req: &Request<B>) -> Response<OwnBody> {
    if is_browser_navigation(req.method(), req.headers()) {
        if let Some(redirect) = to_page(super::SECOND_FACTOR_PATH, req) {
            return redirect;
        }
    }
    let mut refused = state.error_for(
        req.headers(),
        StatusCode::UNAUTHORIZED,
        "insufficient_user_authentication",
        "This route needs a sign-in with a second factor.",
    );
    refused.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(
            "Bearer error=\"insufficient_user_authentication\", \
             error_description=\"A second factor is required\", acr_values=\"mfa\"",
        ),
    );
    refused
}

/// A `302` to the gateway's page `page`, which comes back to the page the
/// browser asked for (as it asked for it, but for an `access_token`).
fn to_page<B>(page: &str, req: &Request<B>) -> Option<Response<OwnBody>> {
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
        "{page}?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("rd", asked)
            .finish()
    );
    response::redirect(StatusCode::FOUND, &location)
}

fn unavailable<B>(state: &AuthState, req: &Request<B>) -> Response<OwnBody> {
    state.error_for(
        req.headers(),
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "The token store cannot be reached; try again in a moment.",
    )
}

/// The request's target as the client sent it, when the gateway
/// normalized its path: a browser sent to sign in comes back to it.
#[derive(Clone, Debug)]
pub(crate) struct OriginalTarget(PathAndQuery);

/// Rewrites the request's path to its normalized form, the one that is
/// checked and the one the inner service sees; answers the target as sent
/// when it changed it.
pub(crate) fn normalize_uri<B>(req: &mut Request<B>) -> Option<OriginalTarget> {
    let std::borrow::Cow::Owned(normal) = paths::normalized(req.uri().path()) else {
        return None;
    };
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
