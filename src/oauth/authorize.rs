//! `GET|POST /management/authorize`: the sign-in page, and signing in.
//!
//! With a `client_id`, this is RFC 6749's authorization endpoint: the
//! client and its `redirect_uri` are checked before anything else, and a
//! bad one gets an error page, never a redirect (§4.1.2.1). Without one,
//! the person signs in to the gateway itself and gets a session cookie.

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::Body;
use url::Url;

use crate::auth::credential::{self, SESSION_COOKIE};
use crate::auth::csrf::CSRF_COOKIE;
use crate::auth::pages::{ProviderButton, SignInPage};
use crate::auth::state::AuthState;
use crate::auth::throttle::Subject;
use crate::config::Grant;
use crate::identity::{Client, Unavailable, User};
use crate::obs::audit::Fields;
use crate::obs::metrics::SignIn;
use crate::store::{CodeBinding, Family, Kind, Session, SessionOrigin, StoreError, Token, TokenKey};
use crate::web::paths::return_target;
use crate::web::request::{self, cookie, is_form_navigation, BodyError, Params};
use crate::web::response::{self, OwnBody};

use super::flash::{self, Failure, Flash};
use super::{grant_scope, pkce, BoxError, AUTHORIZE_PATH};

const WRONG_PASSWORD: &str = "Username or password do not match";
const FORM_EXPIRED: &str =
    "This sign-in form has expired or did not come from this site. Please sign in again.";

/// What a failed sign-in counts against: the username and the address.
/// The name is counted trimmed and in lower case: a directory that
/// matches `Alice`, `ALICE` and `alice ` as one person gives them one
/// budget of guesses, not one each.
pub(super) fn throttle_subjects(username: &str, ip: Option<std::net::IpAddr>) -> Vec<Subject> {
    let mut subjects = vec![Subject::User(username.trim().to_lowercase())];
    subjects.extend(ip.map(Subject::Address));
    subjects
}

/// "3 minutes", "45 seconds".
fn human_wait(secs: u64) -> String {
    match secs {
        0..=90 => format!("{secs} seconds"),
        _ => format!("{} minutes", secs.div_ceil(60)),
    }
}
const FIELDS: [&str; 16] = [
    "csrf",
    "provider",
    "code_challenge",
    "code_challenge_method",
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "rd",
    "username",
    "password",
    "nonce",
    "login_hint",
    "prompt",
    "max_age",
];

/// How long an authorization code lives (RFC 6749 §4.1.2: at most ten
/// minutes; one is plenty).
const CODE_TTL_SECS: u64 = 60;

/// The response types this endpoint issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ResponseType {
    /// The implicit grant: the token in the redirect's fragment.
    Token,
    /// OpenID Connect's implicit flow: the token and an ID token.
    IdTokenToken,
    /// OpenID Connect's implicit flow: an ID token alone.
    IdToken,
    /// The authorization-code grant: a code in the redirect's query.
    Code,
}

/// The parameters of an authorization request, as sent.
#[derive(Debug, Default)]
pub(super) struct AuthorizeParams<'a> {
    response_type: Option<&'a str>,
    client_id: Option<&'a str>,
    redirect_uri: Option<&'a str>,
    scope: Option<&'a str>,
    state: Option<&'a str>,
    rd: Option<&'a str>,
    code_challenge: Option<&'a str>,
    code_challenge_method: Option<&'a str>,
    /// OpenID Connect: echoed in the ID token.
    nonce: Option<&'a str>,
    /// OpenID Connect: a name to fill in the form with.
    login_hint: Option<&'a str>,
    /// OpenID Connect: `none` (no page: the browser's session here, or
    /// `login_required`), `login`, `consent`, `select_account`.
    prompt: Option<&'a str>,
    /// OpenID Connect: the oldest sign-in accepted without a new one.
    max_age: Option<&'a str>,
}

impl<'a> AuthorizeParams<'a> {
    pub(super) fn from(params: &'a Params) -> Self {
        let get = |name| params.one(name).ok().flatten();
        Self {
            response_type: get("response_type"),
            client_id: get("client_id"),
            redirect_uri: get("redirect_uri"),
            scope: get("scope"),
            state: get("state"),
            rd: get("rd"),
            code_challenge: get("code_challenge"),
            code_challenge_method: get("code_challenge_method"),
            nonce: get("nonce"),
            login_hint: get("login_hint"),
            prompt: get("prompt"),
            max_age: get("max_age"),
        }
    }

    /// The sign-in page's own address with these parameters: where a
    /// failed attempt is sent back to.
    fn page_url(&self) -> String {
        match self.query(None) {
            query if query.is_empty() => AUTHORIZE_PATH.to_owned(),
            query => format!("{AUTHORIZE_PATH}?{query}"),
        }
    }

    /// The address that signs in through `provider` with these parameters.
    fn provider_url(&self, provider: &str) -> String {
        format!("{AUTHORIZE_PATH}?{}", self.query(Some(provider)))
    }

    /// These parameters as a query, after `provider=` if given.
    pub(super) fn query(&self, provider: Option<&str>) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(provider) = provider {
            query.append_pair("provider", provider);
        }
        for (name, value) in [
            ("response_type", self.response_type),
            ("client_id", self.client_id),
            ("redirect_uri", self.redirect_uri),
            ("scope", self.scope),
            ("state", self.state),
            ("rd", self.rd),
            ("code_challenge", self.code_challenge),
            ("code_challenge_method", self.code_challenge_method),
            ("nonce", self.nonce),
            ("login_hint", self.login_hint),
            ("max_age", self.max_age),
        ] {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
        query.finish()
    }

    fn page(&self, error: &'a str, username: &'a str) -> SignInPage<'a> {
        SignInPage {
            title: "Sign in",
            logo_url: None,
            accent_color: "#2557d6",
            error,
            response_type: self.response_type.unwrap_or(""),
            client_id: self.client_id.unwrap_or(""),
            redirect_uri: self.redirect_uri.unwrap_or(""),
            scope: self.scope.unwrap_or(""),
            state: self.state.unwrap_or(""),
            rd: self.rd.unwrap_or(""),
            code_challenge: self.code_challenge.unwrap_or(""),
            code_challenge_method: self.code_challenge_method.unwrap_or(""),
            nonce: self.nonce.unwrap_or(""),
            csrf: "",
            username: if username.is_empty() {
                self.login_hint.unwrap_or("")
            } else {
                username
            },
            providers: Vec::new(),
            hide_password_form: false,
        }
    }
}

/// Who the sign-in is for, once the request has been checked.
pub(super) enum Target {
    /// The gateway itself: a cookie, then back to `rd`.
    Gateway,
    /// An OAuth client, answered at its registered redirect URI.
    Client {
        client: Arc<Client>,
        redirect_uri: String,
        response_type: ResponseType,
        scope: Option<String>,
    },
}

/// Checks the request's client, redirect URI and response type; a failure
/// is the response to send.
#[allow(clippy::result_large_err)] // the error is the response itself, sent at once
pub(super) fn check<'a>(
    state: &'a AuthState,
    params: &'a Params,
    asked: &AuthorizeParams<'a>,
) -> Result<Target, Response<OwnBody>> {
    if let Some(repeated) = params.first_repeated(&FIELDS) {
        return Err(state.error_page(
            StatusCode::BAD_REQUEST,
            "Invalid sign-in request",
            &format!("The parameter “{}” was sent more than once.", repeated.0),
            "invalid_request",
        ));
    }
    let Some(client_id) = asked.client_id else {
        return Ok(Target::Gateway);
    };
    let Some(client) = state.directory.client(client_id) else {
        return Err(state.error_page(StatusCode::BAD_REQUEST,
            "Unknown application",
            "The application that sent you here is not registered with this gateway, so you cannot sign in to it. Go back and tell its owner.",
            "invalid_client",
        ));
    };
    let Some(redirect_uri) = client.redirect_uri(asked.redirect_uri).map(str::to_owned) else {
        let message = match asked.redirect_uri {
            Some(_) => "The address this application asked to return to is not one registered for it, so the gateway will not send you there.",
            None => "The application did not say where to return to, and it has more than one registered address.",
        };
        return Err(state.error_page(
            StatusCode::BAD_REQUEST,
            "Invalid return address",
            message,
            "invalid_request",
        ));
    };
    let back = |fragment: bool, error: &str, description: &str| {
        Err(back_to_client(
            &redirect_uri,
            fragment,
            error,
            description,
            asked.state,
        ))
    };
    let mut words: Vec<&str> = asked
        .response_type
        .unwrap_or("")
        .split(' ')
        .filter(|w| !w.is_empty())
        .collect();
    words.sort_unstable();
    let response_type = match words.as_slice() {
        ["token"] => ResponseType::Token,
        ["code"] => ResponseType::Code,
        ["id_token", "token"] => ResponseType::IdTokenToken,
        ["id_token"] => ResponseType::IdToken,
        [] => return back(false, "invalid_request", "response_type is required."),
        _ => return back(
            false,
            "unsupported_response_type",
            "This authorization server supports response_type=code, token, id_token and \"id_token token\".",
        ),
    };
    let fragment = response_type != ResponseType::Code;
    let grant = match response_type {
        ResponseType::Code => Grant::AuthorizationCode,
        _ => Grant::Implicit,
    };
    if matches!(response_type, ResponseType::IdToken | ResponseType::IdTokenToken) {
        let openid = asked.scope.is_some_and(|s| s.split(' ').any(|s| s == "openid"));
        if !openid || asked.nonce.is_none() {
            return back(
                true,
                "invalid_request",
                "An ID token in the fragment needs the openid scope and a nonce (OpenID Connect Core §3.2.2.1).",
            );
        }
    }
    if !client.may_use(grant) {
        return back(
            fragment,
            "unauthorized_client",
            &format!("This client may not use the {} grant.", grant.as_str()),
        );
    }
    if response_type == ResponseType::Code {
        if let Err(description) = check_pkce(&client, asked) {
            return back(false, "invalid_request", description);
        }
    }
    let scope = match grant_scope(Some(&client), asked.scope) {
        Ok(scope) => scope,
        Err(err) => return back(fragment, err.error(), err.description()),
    };
    Ok(Target::Client {
        client,
        redirect_uri,
        response_type,
        scope,
    })
}

/// RFC 7636 at the authorization request: public clients must send a
/// challenge; `plain` only where the client allows it.
fn check_pkce(client: &Client, asked: &AuthorizeParams<'_>) -> Result<(), &'static str> {
    let Some(challenge) = asked.code_challenge else {
        if asked.code_challenge_method.is_some() {
            return Err("code_challenge_method was sent without a code_challenge.");
        }
        return match client.is_confidential() {
            true => Ok(()),
            false => Err("This client must use PKCE: send code_challenge and code_challenge_method=S256."),
        };
    };
    if !pkce::is_well_formed(challenge) {
        return Err("code_challenge must be 43 to 128 characters of [A-Za-z0-9-._~].");
    }
    match asked.code_challenge_method.unwrap_or("plain") {
        "S256" => Ok(()),
        "plain" if client.allows_plain_pkce() => Ok(()),
        "plain" => Err("code_challenge_method=plain is not allowed for this client; use S256."),
        _ => Err("code_challenge_method must be S256."),
    }
}

/// An error sent back to the client at its registered redirect URI: in the
/// query, or the fragment for the implicit grant (RFC 6749 §4.1.2.1,
/// §4.2.2.1).
fn back_to_client(
    redirect_uri: &str,
    fragment: bool,
    error: &str,
    description: &str,
    state: Option<&str>,
) -> Response<OwnBody> {
    let mut pairs = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    redirect_with(redirect_uri, fragment, &pairs)
}

/// A `303` to `redirect_uri` with `pairs` added to its query or set as its
/// fragment.
fn redirect_with(redirect_uri: &str, fragment: bool, pairs: &[(&str, &str)]) -> Response<OwnBody> {
    let mut url = Url::parse(redirect_uri).expect("redirect URIs are checked when the config loads");
    if fragment {
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        url.set_fragment(Some(&encoded));
    } else {
        url.query_pairs_mut().extend_pairs(pairs);
    }
    response::redirect(StatusCode::SEE_OTHER, url.as_str()).expect("a serialized URL is a valid Location")
}

/// `GET /management/authorize`: the sign-in page, with the message of the
/// attempt that failed just before, if the browser comes back from one;
/// with `provider=`, off to that provider to sign in (and straight there,
/// with `[auth] auto_redirect`).
pub(super) async fn show(state: &AuthState, req: &http::request::Parts) -> Response<OwnBody> {
    let params = Params::from_query(req.uri.query());
    let asked = AuthorizeParams::from(&params);
    let target = match check(state, &params, &asked) {
        Ok(target) => target,
        Err(response) => return response,
    };
    if asked.prompt.is_some_and(|p| p.split(' ').any(|p| p == "none")) {
        return silently(state, req, target, &asked).await;
    }
    let headers = &req.headers;
    let chosen = params.one("provider").ok().flatten();
    let only = state
        .config
        .auth
        .auto_redirect
        .then(|| state.directory.outside().first())
        .flatten();
    if let Some(id) = chosen.or(only.map(|p| p.id())) {
        return super::provider_sign_in::start(state, headers, &asked, id).await;
    }
    let flash = Flash::read(&state.csrf, headers);
    let (message, username) = match &flash {
        Some(flash) => (failure_message(flash.failure), flash.username.as_str()),
        None => (String::new(), ""),
    };
    let mut response = sign_in_page(state, headers, StatusCode::OK, &asked, &message, username);
    if Flash::is_present(headers) {
        let clear = flash::clear_cookie(state.config.server.is_https());
        if let Ok(value) = HeaderValue::try_from(clear) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// `prompt=none`: no page. The browser's session here signs the person
/// in to the client at once, if it is recent enough for `max_age`; else
/// the client is told `login_required` at its redirect URI.
async fn silently(
    state: &AuthState,
    req: &http::request::Parts,
    target: Target,
    asked: &AuthorizeParams<'_>,
) -> Response<OwnBody> {
    let Target::Client {
        redirect_uri,
        response_type,
        ..
    } = &target
    else {
        return state.error_page(
            StatusCode::BAD_REQUEST,
            "Invalid sign-in request",
            "prompt=none is for an application's sign-in.",
            "invalid_request",
        );
    };
    let fragment = *response_type != ResponseType::Code;
    let required = |why: &str| back_to_client(redirect_uri, fragment, "login_required", why, asked.state);
    let max_age = match asked.max_age.map(str::parse::<u64>) {
        Some(Ok(max_age)) => Some(max_age),
        Some(Err(_)) => {
            return back_to_client(
                redirect_uri,
                fragment,
                "invalid_request",
                "max_age is a number of seconds.",
                asked.state,
            )
        }
        None => None,
    };
    let session = match cookie(&req.headers, SESSION_COOKIE) {
        Some(token) if credential::is_well_formed(token) => state
            .store
            .get(&TokenKey::of(token))
            .await
            .ok()
            .flatten()
            .filter(Session::is_access),
        _ => None,
    };
    let Some(session) = session.filter(|s| s.client_id().is_none()) else {
        return required("The person is not signed in here.");
    };
    let signed_in_at = session.origin().map_or(session.issued_at(), |o| o.signed_in_at);
    if max_age.is_some_and(|max| crate::store::unix_now().saturating_sub(signed_in_at) > max) {
        return required("The person signed in longer ago than max_age.");
    }
    if session.identity().password_change_required() {
        return required("The person must choose a new password first.");
    }
    let identity = session.identity().clone();
    let entry = state
        .directory
        .user(identity.username())
        .and_then(|u| u.entry().cloned());
    let user = User::from_entry_with(entry, identity);
    let address = state.client_ip(&req.extensions, &req.headers);
    complete(
        state,
        &req.headers,
        address,
        target,
        asked,
        &user,
        Some(signed_in_at),
    )
    .await
}

/// What the page says about a failed attempt.
fn failure_message(failure: Failure) -> String {
    match failure {
        Failure::WrongPassword => WRONG_PASSWORD.to_owned(),
        Failure::Throttled(wait) => format!("Too many failed sign-ins. Try again in {}.", human_wait(wait)),
    }
}

/// A failed attempt: a browser is sent back to the page, which says why
/// (Post/Redirect/Get); any other client of the form gets the page itself
/// with the failure's status (`401`, `429`).
fn failed(
    state: &AuthState,
    headers: &HeaderMap,
    status: StatusCode,
    asked: &AuthorizeParams<'_>,
    failure: Failure,
    username: &str,
) -> Response<OwnBody> {
    let mut response = match is_form_navigation(headers) {
        true => {
            let flash = Flash {
                failure,
                username: username.to_owned(),
            };
            let mut back =
                response::redirect(StatusCode::SEE_OTHER, &asked.page_url()).unwrap_or_else(|| {
                    response::redirect(StatusCode::SEE_OTHER, AUTHORIZE_PATH).expect("a static path")
                });
            if let Ok(value) =
                HeaderValue::try_from(flash.set_cookie(&state.csrf, state.config.server.is_https()))
            {
                back.headers_mut().append(header::SET_COOKIE, value);
            }
            back
        }
        false => sign_in_page(state, headers, status, asked, &failure_message(failure), username),
    };
    if let Failure::Throttled(wait) = failure {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
    }
    response
}

/// The sign-in page with `error` and the `username` kept, carrying a CSRF
/// field for the browser's CSRF cookie (set now if it has none).
fn sign_in_page(
    state: &AuthState,
    headers: &HeaderMap,
    status: StatusCode,
    asked: &AuthorizeParams<'_>,
    error: &str,
    username: &str,
) -> Response<OwnBody> {
    let csrf = state.csrf.for_form(headers, state.config.server.is_https());
    let branding = &state.config.pages.branding;
    let mut page = asked.page(error, username);
    page.providers = state
        .directory
        .outside()
        .iter()
        .map(|provider| ProviderButton {
            href: asked.provider_url(provider.id()),
            label: provider.display_name().to_owned(),
        })
        .collect();
    page.hide_password_form = !state.directory.has_passwords(&state.config);
    page.csrf = &csrf.field;
    page.title = &branding.title;
    page.logo_url = branding.logo_url.as_deref();
    page.accent_color = &branding.accent_color;
    let mut response = response::html(status, state.pages.sign_in(&page));
    csrf.set_on(&mut response);
    response
}

/// `POST /management/authorize`: checks the password and answers as the
/// request asked.
pub(super) async fn submit<B>(state: &AuthState, req: Request<B>) -> Response<OwnBody>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    let body = match request::read_body(body, state.config.limits.max_body_bytes).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            return state.error_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Sign-in form too large",
                "The form sent was larger than any sign-in form; go back and try again.",
                "invalid_request",
            )
        }
        Err(BodyError::Broken) => {
            return state.error_page(
                StatusCode::BAD_REQUEST,
                "Sign-in form incomplete",
                "The form did not arrive whole; go back and try again.",
                "invalid_request",
            )
        }
    };
    let params = Params::parse(&body);
    let asked = AuthorizeParams::from(&params);
    let target = match check(state, &params, &asked) {
        Ok(target) => target,
        Err(response) => return response,
    };
    let username = params.one("username").ok().flatten().unwrap_or("");
    let password = params.one("password").ok().flatten().unwrap_or("");
    let headers = &parts.headers;
    if !state
        .csrf
        .verify(cookie(headers, CSRF_COOKIE), params.one("csrf").ok().flatten())
    {
        tracing::info!(username, "sign-in form without a valid CSRF token");
        return sign_in_page(
            state,
            headers,
            StatusCode::FORBIDDEN,
            &asked,
            FORM_EXPIRED,
            username,
        );
    }
    let address = state.client_ip(&parts.extensions, headers);
    let subjects = throttle_subjects(username, address);
    let attempt = |detail| Fields {
        subject: Some(username),
        address,
        client_id: asked.client_id,
        detail: Some(detail),
        ..Fields::default()
    };
    if let Err(wait) = state.throttle.check(&state.config.auth.throttle, &subjects).await {
        tracing::warn!(username, retry_after = wait, "sign-in throttled");
        state.sign_in_outcome(SignIn::Throttled, attempt("throttled"));
        return failed(
            state,
            headers,
            StatusCode::TOO_MANY_REQUESTS,
            &asked,
            Failure::Throttled(wait),
            username,
        );
    }
    let user = match username.is_empty() || password.is_empty() {
        true => None,
        false => match state.directory.verify_password(username, password).await {
            Ok(user) => user,
            Err(Unavailable) => {
                state.sign_in_outcome(SignIn::Failed, attempt("directory_unavailable"));
                return state.error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Directory unavailable",
                    "The directory that checks your password cannot be reached right now, so the gateway cannot tell whether it is right. Try again in a moment.",
                    "temporarily_unavailable",
                );
            }
        },
    };
    let Some(user) = user else {
        tracing::info!(username, "sign-in failed");
        state.sign_in_outcome(SignIn::Failed, attempt("wrong_password"));
        state
            .throttle
            .record_failure(&state.config.auth.throttle, &subjects)
            .await;
        return failed(
            state,
            headers,
            StatusCode::UNAUTHORIZED,
            &asked,
            Failure::WrongPassword,
            username,
        );
    };
    complete(state, headers, address, target, &asked, &user, None).await
}

/// Answers a sign-in that succeeded, as its target asked: a session
/// cookie and back to `rd`, or a token or code for the client at its
/// redirect URI.
/// `signed_in_at`: when the person really signed in, for a sign-in made
/// of an earlier one (`prompt=none`); `None`: now.
pub(super) async fn complete(
    state: &AuthState,
    headers: &HeaderMap,
    address: Option<std::net::IpAddr>,
    target: Target,
    asked: &AuthorizeParams<'_>,
    user: &User,
    signed_in_at: Option<u64>,
) -> Response<OwnBody> {
    let origin = SessionOrigin::signed_in(
        address,
        headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()),
        signed_in_at.unwrap_or_else(crate::store::unix_now),
    );
    let issued = match &target {
        Target::Gateway => state.issue(user, None, None, origin).await,
        Target::Client {
            client,
            redirect_uri,
            response_type: ResponseType::Code,
            scope,
        } => issue_code(state, user, client, redirect_uri, scope.clone(), asked, origin).await,
        Target::Client { client, scope, .. } => {
            state.issue(user, Some(client), scope.as_deref(), origin).await
        }
    };
    let (token, session) = match issued {
        Ok(issued) => issued,
        Err(err) => {
            tracing::error!(error = %err, "could not keep a new session");
            return state.error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable",
                "You signed in, but the session could not be saved. Try again in a moment.",
                "temporarily_unavailable",
            );
        }
    };
    tracing::info!(username = %user.username(), provider = user.identity.provider(), client_id = session.client_id(), "signed in");
    state.sign_in_outcome(
        SignIn::Succeeded,
        Fields {
            subject: Some(user.username()),
            address,
            provider: user.identity.provider(),
            client_id: session.client_id(),
            ..Fields::default()
        },
    );
    match target {
        Target::Gateway => {
            let previous = cookie(headers, SESSION_COOKIE).map(TokenKey::of);
            // A temporary password is changed before anything else.
            let rd = match user.identity.password_change_required() {
                true => Some(crate::auth::CHANGE_PASSWORD_PAGE),
                false => asked.rd,
            };
            signed_in_to_gateway(state, previous, &token, rd).await
        }
        Target::Client {
            redirect_uri,
            response_type: ResponseType::Code,
            ..
        } => {
            let mut pairs = vec![("code", token.as_str())];
            if let Some(state) = asked.state {
                pairs.push(("state", state));
            }
            redirect_with(&redirect_uri, false, &pairs)
        }
        Target::Client {
            redirect_uri,
            response_type,
            ..
        } => {
            let with_token = response_type != ResponseType::IdToken;
            let id_token = match response_type {
                ResponseType::Token => None,
                _ => match super::id_token::for_session(
                    state,
                    &session,
                    with_token.then_some(&token),
                    asked.nonce,
                ) {
                    Ok(id_token) => id_token,
                    Err(err) => {
                        return back_to_client(
                            &redirect_uri,
                            true,
                            err.error(),
                            err.description(),
                            asked.state,
                        )
                    }
                },
            };
            if !with_token {
                // An ID token alone: the access session it was made of goes.
                let _ = state.store.remove(&token.key()).await;
            }
            implicit_grant(
                &redirect_uri,
                with_token.then_some(&token),
                id_token.as_deref(),
                &session,
                asked.state,
            )
        }
    }
}

/// Keeps a fresh authorization code, bound to its client, redirect URI and
/// PKCE challenge, single use, for [`CODE_TTL_SECS`].
async fn issue_code(
    state: &AuthState,
    user: &User,
    client: &Client,
    redirect_uri: &str,
    scope: Option<String>,
    asked: &AuthorizeParams<'_>,
    origin: Arc<SessionOrigin>,
) -> Result<(Token, Session), StoreError> {
    let binding = CodeBinding {
        redirect_uri: redirect_uri.to_owned(),
        redirect_uri_given: asked.redirect_uri.is_some(),
        code_challenge: asked.code_challenge.map(str::to_owned),
        code_challenge_method: asked
            .code_challenge
            .map(|_| asked.code_challenge_method.unwrap_or("plain").to_owned()),
        nonce: asked.nonce.map(str::to_owned),
    };
    let session = Session::for_identity(user.identity.clone(), CODE_TTL_SECS)
        .with_grant(client.grant(scope.as_deref()))
        .derive(Kind::Code(Arc::new(binding)), CODE_TTL_SECS)
        .in_family(Family::generate())
        .with_origin(origin);
    let code = Token::generate();
    state.store.insert(code.key(), session.clone()).await?;
    Ok((code, session))
}

/// A new session cookie (replacing, and revoking, any the browser had) and
/// a redirect to the page first asked for, on this origin only.
pub(super) async fn signed_in_to_gateway(
    state: &AuthState,
    previous: Option<TokenKey>,
    token: &Token,
    rd: Option<&str>,
) -> Response<OwnBody> {
    if let Some(previous) = previous {
        if let Err(err) = state.store.remove(&previous).await {
            tracing::warn!(error = %err, "could not revoke the session this sign-in replaces");
        }
    }
    let back_to = rd
        .and_then(|rd| return_target(rd, &state.config.auth.return_hosts))
        .unwrap_or("/");
    let mut response = response::redirect(StatusCode::SEE_OTHER, back_to)
        .unwrap_or_else(|| response::redirect(StatusCode::SEE_OTHER, "/").expect("/ is a valid Location"));
    let cookie = credential::session_cookie(
        token.as_str(),
        state.config.tokens.ttl_secs,
        credential::CookieScope::of(&state.config),
    );
    if let Ok(value) = HeaderValue::try_from(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// A `303` to the sign-in page.
pub(super) fn to_sign_in() -> Response<OwnBody> {
    response::redirect(StatusCode::SEE_OTHER, AUTHORIZE_PATH).expect("a static path is a valid Location")
}

/// RFC 6749 §4.2.2: the token in the redirect URI's fragment.
fn implicit_grant(
    redirect_uri: &str,
    token: Option<&Token>,
    id_token: Option<&str>,
    session: &Session,
    state: Option<&str>,
) -> Response<OwnBody> {
    let mut fragment = form_urlencoded::Serializer::new(String::new());
    if let Some(token) = token {
        fragment.append_pair("access_token", token.as_str());
        fragment.append_pair("token_type", "Bearer");
        fragment.append_pair("expires_in", &session.expires_in().to_string());
        if let Some(scope) = session.scope() {
            fragment.append_pair("scope", scope);
        }
    }
    if let Some(id_token) = id_token {
        fragment.append_pair("id_token", id_token);
    }
    if let Some(state) = state {
        fragment.append_pair("state", state);
    }
    let location = format!("{redirect_uri}#{}", fragment.finish());
    response::redirect(StatusCode::SEE_OTHER, &location).expect("an encoded fragment is a valid Location")
}
