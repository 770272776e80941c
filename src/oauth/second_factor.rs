//! `/management/second-factor`: the second step of a sign-in, and the
//! step-up of a session signed in with one factor.
//!
//! A sign-in whose first factor succeeded, for someone who needs a
//! second, is kept in the token store as a pending sign-in (five minutes,
//! its key in the `authgate_pending` cookie, `Path=/management`); the page
//! asks for the code (or enrols an authenticator first, where one is
//! required and the person has none), then the sign-in is answered as it
//! was asked, its methods and time kept. Without a pending sign-in, the
//! page steps up the browser's session: the code given, the same session
//! (the same cookie) is recorded as signed in with two factors, and the
//! browser goes back to `rd`.
//!
//! Codes are throttled with the password's budget (the person and the
//! address), every wrong or replayed code is in the audit log, and no
//! code is accepted twice.

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body::Body;

use crate::auth::csrf::CSRF_COOKIE;
use crate::auth::pages::SecondFactorPage;
use crate::auth::state::AuthState;
use crate::identity::User;
use crate::obs::audit::Fields;
use crate::obs::metrics::SignIn;
use crate::second_factor::{self, Checked, Enrolment, Need};
use crate::store::{unix_now, AuthMethods, Kind, PendingSignIn, Session, SessionOrigin, Token, TokenKey};
use crate::web::paths::return_target;
use crate::web::request::{self, cookie, Params};
use crate::web::response::{self, OwnBody};

use super::authorize::{self, AuthorizeParams, SignedIn};
use super::{access_session, BoxError, AUTHORIZE_PATH};

pub(crate) const SECOND_FACTOR_PATH: &str = crate::auth::SECOND_FACTOR_PATH;
const PENDING_COOKIE: &str = "authgate_pending";
/// How long a sign-in waits for its second factor.
const PENDING_TTL_SECS: u64 = 300;
const WRONG_CODE: &str =
    "That code is not right. Codes change every 30 seconds: enter the one your app shows now.";
const REPLAYED_CODE: &str = "That code was used already. Wait for the next one.";

/// Keeps a sign-in that needs its second factor and sends the browser to
/// this page (called by the sign-in's answer when `need` is not nothing).
pub(in crate::oauth) async fn ask(
    state: &AuthState,
    headers: &HeaderMap,
    address: Option<std::net::IpAddr>,
    asked: &AuthorizeParams<'_>,
    user: &User,
    signed_in: SignedIn,
    need: Need,
) -> Response<OwnBody> {
    let pending = PendingSignIn {
        request: asked.query(None),
        enrol: matches!(need, Need::Enrol),
        verified: false,
    };
    let origin = SessionOrigin::signed_in(
        address,
        headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()),
        signed_in.at.unwrap_or_else(unix_now),
        signed_in.methods,
    );
    let session = Session::for_identity(user.identity.clone(), PENDING_TTL_SECS)
        .derive(Kind::Pending(Arc::new(pending)), PENDING_TTL_SECS)
        .with_origin(origin);
    let token = Token::generate();
    if let Err(err) = state.store.insert(token.key(), session).await {
        tracing::error!(error = %err, "could not keep a sign-in waiting for its second factor");
        return unavailable(state);
    }
    let mut response = response::redirect(StatusCode::SEE_OTHER, SECOND_FACTOR_PATH)
        .expect("a static path is a valid Location");
    set_cookie(
        state,
        &mut response,
        &format!("{PENDING_COOKIE}={}; Max-Age={PENDING_TTL_SECS}", token.as_str()),
    );
    response
}

/// The pending sign-in the browser's cookie names, if it is live.
pub(super) async fn pending(
    state: &AuthState,
    headers: &HeaderMap,
) -> Option<(TokenKey, Session, Arc<PendingSignIn>)> {
    let token = cookie(headers, PENDING_COOKIE).filter(|t| crate::auth::credential::is_well_formed(t))?;
    let key = TokenKey::of(token);
    let session = state.store.get(&key).await.ok().flatten()?;
    match session.kind() {
        Kind::Pending(pending) => {
            let pending = pending.clone();
            Some((key, session, pending))
        }
        _ => None,
    }
}

/// `GET /management/second-factor`.
pub(super) async fn show(state: &AuthState, parts: &Parts) -> Response<OwnBody> {
    let headers = &parts.headers;
    if let Some((_, session, pending)) = pending(state, headers).await {
        let user = session.username().to_owned();
        let Some(db) = state.database.as_ref() else {
            return unavailable(state);
        };
        if pending.verified {
            return page(state, headers, StatusCode::OK, Mode::Codes(&[]), &user, "", "");
        }
        if pending.enrol {
            return match second_factor::begin(&state.config, db, &user).await {
                Ok(enrolment) => page(
                    state,
                    headers,
                    StatusCode::OK,
                    Mode::Enrol(&enrolment, true),
                    &user,
                    "",
                    "",
                ),
                Err(err) => {
                    tracing::error!(error = %err, "could not begin an enrolment");
                    unavailable(state)
                }
            };
        }
        return page(
            state,
            headers,
            StatusCode::OK,
            verify_mode(state, &user).await,
            &user,
            "",
            "",
        );
    }
    // A step-up of the browser's session.
    let rd = Params::from_query(parts.uri.query())
        .one("rd")
        .ok()
        .flatten()
        .unwrap_or("/")
        .to_owned();
    let Ok((_, session)) = access_session(state, parts).await else {
        return to_sign_in(&rd);
    };
    if session.methods().is_multi_factor() {
        return back_to(state, &rd);
    }
    let mode = match state.database.as_ref() {
        Some(db) => match second_factor::need(&state.config, Some(db), session.identity(), true).await {
            Ok(Need::Verify) => verify_mode(state, session.username()).await,
            Ok(_) => Mode::Missing,
            Err(_) => return unavailable(state),
        },
        None => Mode::Missing,
    };
    page(state, headers, StatusCode::OK, mode, session.username(), &rd, "")
}

/// `POST /management/second-factor`: a code, an enrolment's first code,
/// or going on after saving recovery codes.
pub(super) async fn submit<B>(state: &AuthState, req: Request<B>) -> Response<OwnBody>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    let Ok(body) = request::read_body(body, state.config.limits.max_body_bytes).await else {
        return state.error_page(
            StatusCode::BAD_REQUEST,
            "Form not readable",
            "The form did not arrive whole, or was too large; go back and try again.",
            "invalid_request",
        );
    };
    let form = Params::parse(&body);
    let field = |name| form.one(name).ok().flatten().unwrap_or("");
    let headers = &parts.headers;
    let address = state.client_ip(&parts.extensions, headers);
    let pending = pending(state, headers).await;
    let stepping_up = match &pending {
        Some(_) => None,
        None => access_session(state, &parts).await.ok(),
    };
    let Some(username) = pending
        .as_ref()
        .map(|(_, s, _)| s.username().to_owned())
        .or_else(|| stepping_up.as_ref().map(|(_, s)| s.username().to_owned()))
    else {
        return to_sign_in(field("rd"));
    };
    if !state
        .csrf
        .verify(cookie(headers, CSRF_COOKIE), Some(field("csrf")))
    {
        return page(
            state,
            headers,
            StatusCode::FORBIDDEN,
            verify_mode(state, &username).await,
            &username,
            field("rd"),
            "This form expired: enter the code again.",
        );
    }
    let Some(db) = state.database.as_ref() else {
        return unavailable(state);
    };
    let fields = |detail| Fields {
        subject: Some(&username),
        address,
        detail: Some(detail),
        ..Fields::default()
    };
    let subjects = authorize::throttle_subjects(&username, address);
    if let Err(wait) = state.throttle.check(&state.config.auth.throttle, &subjects).await {
        state.sign_in_outcome(SignIn::Throttled, fields("second_factor_throttled"));
        let mut response = page(
            state,
            headers,
            StatusCode::TOO_MANY_REQUESTS,
            verify_mode(state, &username).await,
            &username,
            field("rd"),
            &format!("Too many wrong codes. Try again in {} seconds.", wait),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return response;
    }
    let now = unix_now();
    // Going on after the recovery codes of an enrolment at sign-in.
    if let Some((key, session, pending)) = &pending {
        if pending.verified && field("action") == "continue" {
            return finish(
                state,
                headers,
                address,
                key,
                session,
                pending,
                AuthMethods::ONE_TIME_CODE,
            )
            .await;
        }
        if pending.enrol && !pending.verified {
            return enrol_at_sign_in(
                state,
                headers,
                key,
                session,
                pending,
                field("factor"),
                field("code"),
                now,
            )
            .await;
        }
    }
    let factor = match second_factor::authenticator_of(db, &username).await {
        Ok(Some(factor)) => factor,
        Ok(None) => {
            return page(
                state,
                headers,
                StatusCode::OK,
                Mode::Missing,
                &username,
                field("rd"),
                "",
            )
        }
        Err(_) => return unavailable(state),
    };
    let checked = match second_factor::check(&state.config, db, &factor, field("code"), now).await {
        Ok(checked) => checked,
        Err(_) => return unavailable(state),
    };
    let methods = match checked {
        Checked::Accepted(methods) => methods,
        Checked::Recovered => {
            state
                .audit
                .record("second_factor.recovery_code_used", fields("recovery_code"));
            AuthMethods::ONE_TIME_CODE
        }
        Checked::Wrong | Checked::Replayed => {
            let (detail, message) = match checked {
                Checked::Replayed => ("second_factor_replayed", REPLAYED_CODE),
                _ => ("second_factor_wrong", WRONG_CODE),
            };
            tracing::info!(username, detail, "second factor refused");
            state.sign_in_outcome(SignIn::Failed, fields(detail));
            state
                .throttle
                .record_failure(&state.config.auth.throttle, &subjects)
                .await;
            return page(
                state,
                headers,
                StatusCode::UNAUTHORIZED,
                verify_mode(state, &username).await,
                &username,
                field("rd"),
                message,
            );
        }
    };
    match (&pending, stepping_up) {
        (Some((key, session, pending)), _) => {
            finish(state, headers, address, key, session, pending, methods).await
        }
        (None, Some((token, session))) => {
            step_up(
                state,
                &TokenKey::of(&token),
                session,
                methods,
                address,
                field("rd"),
            )
            .await
        }
        (None, None) => to_sign_in(field("rd")),
    }
}

/// The session under `key` recorded as signed in with `methods` more (the
/// same session, the same cookie), and back to `rd`.
pub(super) async fn step_up(
    state: &AuthState,
    key: &TokenKey,
    session: Session,
    methods: AuthMethods,
    address: Option<std::net::IpAddr>,
    rd: &str,
) -> Response<OwnBody> {
    let origin = session.origin().cloned().unwrap_or_default().stepped_up(methods);
    let username = session.username().to_owned();
    match state.store.update(*key, session.with_origin(origin)).await {
        Ok(true) => {}
        // Signed out meanwhile.
        Ok(false) => return to_sign_in(rd),
        Err(err) => {
            tracing::error!(error = %err, "could not record a step-up");
            return unavailable(state);
        }
    }
    state.audit.record(
        "second_factor.step_up",
        Fields {
            subject: Some(&username),
            address,
            detail: Some(methods.names().first().copied().unwrap_or("")),
            ..Fields::default()
        },
    );
    back_to(state, rd)
}

/// An enrolment at sign-in: the new authenticator's first code confirms
/// it; then its recovery codes are shown, and the sign-in waits for the
/// person to go on.
#[allow(clippy::too_many_arguments)] // the pieces of one step, all needed
async fn enrol_at_sign_in(
    state: &AuthState,
    headers: &HeaderMap,
    key: &TokenKey,
    session: &Session,
    pending: &PendingSignIn,
    factor_id: &str,
    code: &str,
    now: u64,
) -> Response<OwnBody> {
    let Some(db) = state.database.as_ref() else {
        return unavailable(state);
    };
    let username = session.username();
    match second_factor::confirm(&state.config, db, username, factor_id, code, now).await {
        Ok(Some(codes)) => {
            let verified = PendingSignIn {
                verified: true,
                ..pending.clone()
            };
            let kept = session.derive(Kind::Pending(Arc::new(verified)), session.expires_in().max(1));
            if state.store.insert(*key, kept).await.is_err() {
                return unavailable(state);
            }
            state.audit.record(
                "second_factor.enrolled",
                Fields {
                    subject: Some(username),
                    detail: Some("totp"),
                    ..Fields::default()
                },
            );
            page(
                state,
                headers,
                StatusCode::OK,
                Mode::Codes(&codes),
                username,
                "",
                "",
            )
        }
        Ok(None) => match second_factor::resume(&state.config, db, username, factor_id).await {
            Ok(Some(enrolment)) => page(
                state,
                headers,
                StatusCode::UNAUTHORIZED,
                Mode::Enrol(&enrolment, true),
                username,
                "",
                WRONG_CODE,
            ),
            Ok(None) => to_sign_in(""),
            Err(_) => unavailable(state),
        },
        Err(_) => unavailable(state),
    }
}

/// The pending sign-in answered as it was asked, with `more` methods, its
/// cookie gone.
pub(super) async fn finish(
    state: &AuthState,
    headers: &HeaderMap,
    address: Option<std::net::IpAddr>,
    key: &TokenKey,
    session: &Session,
    pending: &PendingSignIn,
    more: AuthMethods,
) -> Response<OwnBody> {
    if let Err(err) = state.store.remove(key).await {
        tracing::warn!(error = %err, "could not remove a pending sign-in");
    }
    let params = Params::from_query(Some(&pending.request));
    let asked = AuthorizeParams::from(&params);
    let target = match authorize::check(state, &params, &asked) {
        Ok(target) => target,
        Err(response) => return response,
    };
    let user = authorize::user_of(state, session.identity().clone());
    let origin = session.origin();
    let signed_in = SignedIn {
        methods: session.methods().with(more),
        at: origin.map(|o| o.signed_in_at),
    };
    let mut response = authorize::complete(state, headers, address, target, &asked, &user, signed_in).await;
    set_cookie(state, &mut response, &format!("{PENDING_COOKIE}=; Max-Age=0"));
    response
}

/// The verify page for `username`: a code field if they have an
/// authenticator app, a button if they have a security key (and keys are
/// offered).
async fn verify_mode(state: &AuthState, username: &str) -> Mode<'static> {
    let factors = match &state.database {
        Some(db) => db.factors(username).await.unwrap_or_default(),
        None => Vec::new(),
    };
    let has = |kind: &str| factors.iter().any(|f| f.confirmed && f.kind == kind);
    Mode::Verify {
        keys: state.webauthn.is_some() && has(crate::second_factor::webauthn::WEBAUTHN),
        codes: has(crate::second_factor::TOTP) || factors.is_empty(),
    }
}

/// What the page shows.
pub(super) enum Mode<'a> {
    /// A code to enter (`codes`), or a security key to use (`keys`).
    Verify {
        keys: bool,
        codes: bool,
    },
    /// An authenticator to set up; `true`: required at sign-in.
    Enrol(&'a Enrolment, bool),
    Codes(&'a [String]),
    Missing,
}

/// The page of a sign-in or a step-up.
fn page(
    state: &AuthState,
    headers: &HeaderMap,
    status: StatusCode,
    mode: Mode<'_>,
    username: &str,
    rd: &str,
    error: &str,
) -> Response<OwnBody> {
    page_for(state, headers, status, mode, username, Flow::SignIn { rd }, error)
}

/// Whose the page is: a sign-in's (or step-up's, back to `rd`), or the
/// account page's (its form posts to `action`, and it goes back there).
pub(super) enum Flow<'a> {
    SignIn { rd: &'a str },
    Account { action: &'a str },
}

pub(super) fn page_for(
    state: &AuthState,
    headers: &HeaderMap,
    status: StatusCode,
    mode: Mode<'_>,
    username: &str,
    flow: Flow<'_>,
    error: &str,
) -> Response<OwnBody> {
    let (action, rd, done_href) = match flow {
        Flow::SignIn { rd } => (SECOND_FACTOR_PATH, rd, ""),
        Flow::Account { action } => (action, "", super::account::ACCOUNT_PATH),
    };
    let csrf = state.csrf.for_form(headers, state.config.server.is_https());
    let branding = &state.config.pages.branding;
    let mut view = SecondFactorPage {
        title: &branding.title,
        logo_url: branding.logo_url.as_deref(),
        accent_color: &branding.accent_color,
        username,
        action,
        csrf: &csrf.field,
        rd,
        done_href,
        error,
        ..SecondFactorPage::default()
    };
    view.mode = match mode {
        Mode::Verify { keys, codes } => {
            view.keys = keys;
            view.code_field = codes;
            view.script = super::webauthn::SCRIPT;
            "verify"
        }
        Mode::Enrol(enrolment, required) => {
            view.required = required;
            view.factor_id = &enrolment.factor_id;
            view.secret_text = &enrolment.secret_text;
            view.uri = &enrolment.uri;
            view.qr_svg = &enrolment.qr_svg;
            "enrol"
        }
        Mode::Codes(codes) => {
            view.codes = codes;
            "codes"
        }
        Mode::Missing => "missing",
    };
    let keys = view.keys;
    let mut response = response::html(status, state.pages.second_factor(&view));
    if keys {
        super::webauthn::allow_script(&mut response);
    }
    csrf.set_on(&mut response);
    response
}

/// Sets `cookie` (name, value and lifetime) for the management paths.
fn set_cookie(state: &AuthState, response: &mut Response<OwnBody>, cookie: &str) {
    let secure = if state.config.server.is_https() {
        "; Secure"
    } else {
        ""
    };
    if let Ok(value) = HeaderValue::try_from(format!(
        "{cookie}; Path=/management; HttpOnly; SameSite=Lax{secure}"
    )) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Back to `rd` on this origin (or a return host), else `/`.
fn back_to(state: &AuthState, rd: &str) -> Response<OwnBody> {
    let target = return_target(rd, &state.config.auth.return_hosts).unwrap_or("/");
    response::redirect(StatusCode::SEE_OTHER, target)
        .unwrap_or_else(|| response::redirect(StatusCode::SEE_OTHER, "/").expect("/ is a valid Location"))
}

/// To the sign-in page, and then back to this page's `rd`.
fn to_sign_in(rd: &str) -> Response<OwnBody> {
    let back = match rd {
        "" => SECOND_FACTOR_PATH.to_owned(),
        rd => format!(
            "{SECOND_FACTOR_PATH}?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("rd", rd)
                .finish()
        ),
    };
    let location = format!(
        "{AUTHORIZE_PATH}?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("rd", &back)
            .finish()
    );
    response::redirect(StatusCode::SEE_OTHER, &location)
        .unwrap_or_else(|| response::redirect(StatusCode::SEE_OTHER, AUTHORIZE_PATH).expect("a static path"))
}

fn unavailable(state: &AuthState) -> Response<OwnBody> {
    state.error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Second factor unavailable",
        "Your second factor cannot be checked right now (the database cannot be reached). Try again in a moment.",
        "temporarily_unavailable",
    )
}
