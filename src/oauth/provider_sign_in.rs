//! Signing in through an outside provider: `GET /management/authorize?
//! provider=ID` sends the browser there, and `GET /management/callback/ID`
//! takes it back and finishes the sign-in the authorize request asked for
//! (the gateway's cookie, or a client's code or token).
//!
//! What the callback must match travels in a short-lived cookie signed
//! with the gateway's key: the provider, `state`, `nonce`, the PKCE
//! verifier and the authorize request's parameters. It is bound to the
//! browser that started (a callback in another browser has no cookie),
//! named after its `state` (several tabs may sign in at once), cleared by
//! the callback, and its `state` is recorded as used in the token store, so
//! a replayed callback is refused on every gateway sharing the store.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::auth::state::AuthState;
use crate::identity::{Outside, OutsideError};
use crate::obs::audit::Fields;
use crate::obs::metrics::SignIn;
use crate::store::{unix_now, Session, TokenKey};
use crate::web::request::{cookie, Params};
use crate::web::response::{self, OwnBody};

use super::authorize::{self, AuthorizeParams};

/// Where providers send the browser back to: `CALLBACK_PREFIX` + id.
pub(crate) const CALLBACK_PREFIX: &str = "/management/callback/";
/// The flow cookie's name, before the first characters of its `state`.
const FLOW_COOKIE: &str = "authgate_rp_";
/// What the cookie's signature is for.
const PURPOSE: &str = "outside sign-in";
/// How long a person may take at the provider.
const FLOW_SECS: u64 = 600;

/// What the callback must match, as the cookie carries it.
#[derive(Serialize, Deserialize)]
struct Flow {
    /// The provider.
    p: String,
    /// `state`.
    s: String,
    /// `nonce`.
    n: Option<String>,
    /// PKCE's verifier.
    v: String,
    /// The authorize request's parameters, as a query.
    q: String,
    /// Until when (seconds since the epoch).
    e: u64,
}

impl Flow {
    fn cookie_name(state: &str) -> String {
        let tag: String = state
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect();
        format!("{FLOW_COOKIE}{tag}")
    }

    fn path(provider: &str) -> String {
        format!("{CALLBACK_PREFIX}{provider}")
    }

    fn set_cookie(&self, state: &AuthState) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default());
        let signature = state.csrf.sign(PURPOSE, payload.as_bytes());
        format!(
            "{}={payload}.{signature}; Path={}; Max-Age={FLOW_SECS}; HttpOnly; SameSite=Lax{}",
            Self::cookie_name(&self.s),
            Self::path(&self.p),
            secure(state)
        )
    }

    /// The flow of `state` the browser carries, if the gateway signed it
    /// and it has not expired.
    fn read(state: &AuthState, headers: &HeaderMap, provider: &str, expected_state: &str) -> Option<Self> {
        let value = cookie(headers, &Self::cookie_name(expected_state))?;
        let (payload, signature) = value.rsplit_once('.')?;
        if !state.csrf.verify_signed(PURPOSE, payload.as_bytes(), signature) {
            return None;
        }
        let flow: Flow = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let same_state = bool::from(subtle::ConstantTimeEq::ct_eq(
            flow.s.as_bytes(),
            expected_state.as_bytes(),
        ));
        (flow.p == provider && same_state && unix_now() < flow.e).then_some(flow)
    }

    fn clear_cookie(state: &AuthState, provider: &str, flow_state: &str) -> String {
        format!(
            "{}=; Path={}; Max-Age=0; HttpOnly; SameSite=Lax{}",
            Self::cookie_name(flow_state),
            Self::path(provider),
            secure(state)
        )
    }
}

fn secure(state: &AuthState) -> &'static str {
    if state.config.server.is_https() {
        "; Secure"
    } else {
        ""
    }
}

/// The callback address registered with a provider.
fn redirect_uri(state: &AuthState, provider: &str) -> String {
    format!("{}{CALLBACK_PREFIX}{provider}", state.issuer())
}

/// Sends the browser to `provider_id` to sign in, for the (already
/// checked) authorize request `asked`.
pub(super) async fn start(
    state: &AuthState,
    headers: &HeaderMap,
    asked: &AuthorizeParams<'_>,
    provider_id: &str,
) -> Response<OwnBody> {
    let Some(provider) = find(state, provider_id) else {
        return state.error_titled(
            headers,
            StatusCode::NOT_FOUND,
            "Unknown sign-in provider",
            "This gateway has no sign-in provider of that name. Go back and choose one on the sign-in page.",
            "invalid_request",
        );
    };
    let started = match provider.start(&redirect_uri(state, provider.id())).await {
        Ok(started) => started,
        Err(err) => return failure(state, headers, provider, &err),
    };
    let flow = Flow {
        p: provider.id().to_owned(),
        s: started.state,
        n: started.nonce,
        v: started.verifier,
        q: asked.query(None),
        e: unix_now() + FLOW_SECS,
    };
    let mut answer = response::redirect(StatusCode::FOUND, started.url.as_str())
        .unwrap_or_else(|| response::redirect(StatusCode::FOUND, "/").expect("/ is a valid Location"));
    if let Ok(value) = HeaderValue::try_from(flow.set_cookie(state)) {
        answer.headers_mut().append(header::SET_COOKIE, value);
    }
    answer
}

fn find<'a>(state: &'a AuthState, id: &str) -> Option<&'a Outside> {
    state
        .directory
        .outside()
        .iter()
        .find(|p| p.id() == id)
        .map(|p| &**p)
}

/// `GET /management/callback/ID`: the provider's answer.
pub(super) async fn callback(state: &AuthState, parts: &Parts) -> Response<OwnBody> {
    let headers = &parts.headers;
    let id = parts.uri.path().strip_prefix(CALLBACK_PREFIX).unwrap_or_default();
    let Some(provider) = find(state, id) else {
        return state.error_titled(
            headers,
            StatusCode::NOT_FOUND,
            "Unknown sign-in provider",
            "This gateway has no sign-in provider of that name.",
            "invalid_request",
        );
    };
    let params = Params::from_query(parts.uri.query());
    // One reading only: a parameter sent twice (`iss=a&iss=b`) is refused.
    if let Some(repeated) = params.first_repeated(&["state", "code", "iss", "error", "error_description"]) {
        return expired(
            state,
            headers,
            &format!(
                "The answer from the sign-in provider carried “{}” more than once.",
                repeated.0
            ),
        );
    }
    let get = |name| params.one(name).ok().flatten();
    let Some(flow_state) = get("state") else {
        return expired(
            state,
            headers,
            "The answer from the sign-in provider did not say which sign-in it belongs to.",
        );
    };
    let Some(flow) = Flow::read(state, &parts.headers, provider.id(), flow_state) else {
        tracing::info!(
            provider = provider.id(),
            "outside sign-in callback without its flow cookie"
        );
        return expired(
            state,
            headers,
            "This sign-in has expired, or was started in another browser.",
        );
    };
    let address = state.client_ip(&parts.extensions, &parts.headers);
    let mut answer = finish(state, &parts.headers, address, provider, &flow, &params).await;
    if let Ok(value) = HeaderValue::try_from(Flow::clear_cookie(state, provider.id(), &flow.s)) {
        answer.headers_mut().append(header::SET_COOKIE, value);
    }
    answer
}

async fn finish(
    state: &AuthState,
    headers: &HeaderMap,
    address: Option<std::net::IpAddr>,
    provider: &Outside,
    flow: &Flow,
    params: &Params,
) -> Response<OwnBody> {
    let get = |name| params.one(name).ok().flatten();
    // Single use, on every gateway sharing the store.
    let marker_key = TokenKey::of(&format!("authgate outside state\0{}\0{}", provider.id(), flow.s));
    let marker = Session::record(FLOW_SECS);
    match state.store.replace(marker_key, marker).await {
        Ok(None) => {}
        Ok(Some(_)) => {
            tracing::warn!(provider = provider.id(), "outside sign-in callback replayed");
            return expired(state, headers, "This sign-in was already used.");
        }
        Err(err) => {
            tracing::error!(error = %err, "token store unavailable at an outside sign-in");
            return state.error_titled(
                headers,
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable",
                "The gateway cannot keep sessions right now. Try again in a moment.",
                "temporarily_unavailable",
            );
        }
    }
    if let Some(error) = get("error") {
        // Shown on this site's page: kept short (the provider's own words,
        // escaped by the template).
        let description: String = get("error_description").unwrap_or("").chars().take(200).collect();
        let error: String = error.chars().take(64).collect();
        tracing::info!(
            provider = provider.id(),
            error,
            description,
            "the provider refused the sign-in"
        );
        state.sign_in_outcome(SignIn::Failed, attempt(provider, address, "provider_refused"));
        return failure(
            state,
            headers,
            provider,
            &OutsideError::Refused(format!("{error} {description}").trim().to_owned()),
        );
    }
    let Some(code) = get("code") else {
        return expired(
            state,
            headers,
            "The answer from the sign-in provider carried no code.",
        );
    };
    let person = match provider
        .finish(
            &redirect_uri(state, provider.id()),
            code,
            get("iss"),
            &flow.v,
            flow.n.as_deref(),
        )
        .await
    {
        Ok(person) => person,
        Err(err) => {
            tracing::warn!(provider = provider.id(), error = %err, "outside sign-in failed");
            let detail = match &err {
                OutsideError::Unreachable(_) => "provider_unreachable",
                OutsideError::Refused(_) => "provider_refused",
                OutsideError::Invalid(_) => "untrustworthy_answer",
                OutsideError::NotAllowed(_) => "not_allowed",
            };
            state.sign_in_outcome(SignIn::Failed, attempt(provider, address, detail));
            return failure(state, headers, provider, &err);
        }
    };
    let user = state
        .directory
        .with_database_groups(state.directory.outside_user(provider, &person))
        .await;
    // Whose the provider's session (`sid`) and subject are: for its
    // back-channel logout, which names one or the other.
    let keep = state
        .config
        .tokens
        .refresh_ttl_secs
        .max(state.config.tokens.ttl_secs);
    let owners = person
        .sid
        .iter()
        .map(|sid| owner_key(provider.id(), "session", sid))
        .chain([owner_key(provider.id(), "subject", &person.subject)]);
    for key in owners {
        let owner = Session::marker(user.identity.clone(), keep);
        if let Err(err) = state.store.insert(TokenKey::of(&key), owner).await {
            tracing::warn!(error = %err, "could not record whose provider session this is, for back-channel logout");
        }
    }
    let asked_params = Params::parse(flow.q.as_bytes());
    let asked = AuthorizeParams::from(&asked_params);
    let target = match authorize::check(state, &asked_params, &asked) {
        Ok(target) => target,
        Err(response) => return response,
    };
    // The provider's own methods where its config trusts it to say them;
    // a second factor this gateway requires is asked for after it if
    // they are one factor.
    let signed_in = authorize::SignedIn {
        methods: provider.methods_of(&person),
        at: None,
    };
    authorize::complete(state, headers, address, target, &asked, &user, signed_in).await
}

/// What a failed sign-in through `provider` records.
fn attempt<'a>(provider: &'a Outside, address: Option<std::net::IpAddr>, detail: &'a str) -> Fields<'a> {
    Fields {
        address,
        provider: Some(provider.id()),
        detail: Some(detail),
        ..Fields::default()
    }
}

/// The store key under which a provider's `session` (its `sid`) or
/// `subject` (its `sub`) names the user it signed in here.
pub(super) fn owner_key(provider: &str, what: &str, value: &str) -> String {
    format!("authgate outside {what}\0{provider}\0{value}")
}

/// A callback that belongs to no sign-in this browser started.
fn expired(state: &AuthState, headers: &HeaderMap, why: &str) -> Response<OwnBody> {
    state.error_titled(
        headers,
        StatusCode::BAD_REQUEST,
        "Sign-in expired",
        &format!("{why} Go back to the sign-in page and start again."),
        "invalid_request",
    )
}

/// The page for a sign-in the provider, or what it sent, let down.
fn failure(
    state: &AuthState,
    headers: &HeaderMap,
    provider: &Outside,
    err: &OutsideError,
) -> Response<OwnBody> {
    let name = provider.display_name();
    let (status, title, message) = match err {
        OutsideError::Unreachable(_) => (
            StatusCode::BAD_GATEWAY,
            format!("{name} cannot be reached"),
            format!("The gateway cannot reach {name} to sign you in. Try again in a moment, or sign in another way."),
        ),
        OutsideError::Refused(reason) => (
            StatusCode::UNAUTHORIZED,
            format!("{name} did not sign you in"),
            format!("{name} answered: {reason}"),
        ),
        OutsideError::Invalid(reason) => (
            StatusCode::UNAUTHORIZED,
            "Sign-in refused".to_owned(),
            format!("What came back from {name} cannot be trusted, so you are not signed in ({reason})."),
        ),
        OutsideError::NotAllowed(reason) => (StatusCode::FORBIDDEN, "Not allowed here".to_owned(), reason.clone()),
    };
    state.error_titled(headers, status, &title, &message, "access_denied")
}
