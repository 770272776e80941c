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

use crate::auth::csrf::CSRF_COOKIE;
use crate::auth::pages::{ProviderButton, SignInPage};
use crate::auth::state::AuthState;
use crate::auth::throttle::Subject;
use crate::config::Grant;
use crate::identity::{Client, Unavailable};
use crate::obs::audit::Fields;
use crate::obs::metrics::SignIn;
use crate::store::AuthMethods;
use crate::web::request::{self, cookie, is_form_navigation, BodyError, Params};
use crate::web::response::{self, OwnBody};

mod answer;

use self::answer::{back_to_client, from_session, reusable_session, silently};
pub(super) use self::answer::{complete, signed_in_to_gateway, to_sign_in, user_of, SignedIn};

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
const FIELDS: [&str; 17] = [
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
    "acr_values",
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
    /// OpenID Connect: the levels asked for, best first (`mfa`).
    acr_values: Option<&'a str>,
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
            acr_values: get("acr_values"),
        }
    }

    /// Whether the client asked for a sign-in with two factors
    /// (`acr_values` naming `mfa`).
    pub(super) fn wants_mfa(&self) -> bool {
        self.acr_values
            .is_some_and(|values| values.split(' ').any(|v| v == "mfa"))
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
            ("acr_values", self.acr_values),
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
            acr_values: self.acr_values.unwrap_or(""),
            csrf: "",
            username: if username.is_empty() {
                self.login_hint.unwrap_or("")
            } else {
                username
            },
            providers: Vec::new(),
            hide_password_form: false,
            passkey: false,
            request: String::new(),
            script: "",
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
    let prompts = || asked.prompt.into_iter().flat_map(|p| p.split(' '));
    if prompts().any(|p| p == "none") {
        return silently(state, req, target, &asked).await;
    }
    // Single sign-on: a person signed in here goes back to the client at
    // once, unless the client asks for a fresh sign-in.
    let fresh = prompts().any(|p| matches!(p, "login" | "select_account"));
    if matches!(target, Target::Client { .. }) && !fresh {
        if let Ok(session) = reusable_session(state, req, &asked).await {
            return from_session(state, req, target, &asked, session).await;
        }
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
    page.passkey = state.config.auth.second_factor.passkeys && state.webauthn.is_some();
    if page.passkey {
        page.request = asked.query(None);
        page.script = super::webauthn::SCRIPT;
    }
    page.csrf = &csrf.field;
    page.title = &branding.title;
    page.logo_url = branding.logo_url.as_deref();
    page.accent_color = &branding.accent_color;
    let mut response = response::html(status, state.pages.sign_in(&page));
    if page.passkey {
        super::webauthn::allow_script(&mut response);
    }
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
    complete(
        state,
        headers,
        address,
        target,
        &asked,
        &user,
        SignedIn {
            methods: AuthMethods::PASSWORD,
            at: None,
        },
    )
    .await
}
