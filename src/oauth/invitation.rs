//! `/management/invitation?token=…`: where an invitation link leads. The
//! new user chooses a password, the link is used up, and they are signed
//! in. The link's secret travels in the query (which the access log never
//! writes) and in the form, never in a cookie; only its hash is stored.

use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Body;

use crate::auth::credential::SESSION_COOKIE;
use crate::auth::csrf::CSRF_COOKIE;
use crate::auth::pages::AccountPage;
use crate::auth::state::AuthState;
use crate::db::invitation_hash;
use crate::obs::audit::Fields;
use crate::store::{AuthMethods, TokenKey};
use crate::web::request::{self, cookie, Params};
use crate::web::response::{self, OwnBody};

use super::BoxError;

/// The answer for a link that no longer works.
fn dead_link(state: &AuthState) -> Response<OwnBody> {
    state.error_page(
        StatusCode::BAD_REQUEST,
        "This invitation no longer works",
        "The link was used already or has expired. Ask whoever invited you for a new one.",
        "invalid_invitation",
    )
}

fn unavailable(state: &AuthState) -> Response<OwnBody> {
    state.error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Invitations are unavailable",
        "The database cannot be reached: try the link again in a moment.",
        "temporarily_unavailable",
    )
}

/// The page where `username` chooses a password, saying `error`.
fn choose_password(
    state: &AuthState,
    headers: &HeaderMap,
    username: &str,
    token: &str,
    error: &str,
) -> Response<OwnBody> {
    let csrf = state.csrf.for_form(headers, state.config.server.is_https());
    let branding = &state.config.pages.branding;
    let page = AccountPage {
        title: &branding.title,
        logo_url: branding.logo_url.as_deref(),
        accent_color: &branding.accent_color,
        username,
        invitation: Some(token),
        csrf: &csrf.field,
        error,
        ..AccountPage::default()
    };
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let mut answer = response::html(status, state.pages.account(&page));
    csrf.set_on(&mut answer);
    answer
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    answer
}

/// `GET`: the page, if the link is live.
pub(super) async fn show(state: &AuthState, parts: &http::request::Parts) -> Response<OwnBody> {
    let params = Params::from_query(parts.uri.query());
    let token = params.one("token").ok().flatten().unwrap_or("");
    let Some(db) = &state.database else {
        return dead_link(state);
    };
    match db.invited(&invitation_hash(token)).await {
        Ok(Some(username)) => choose_password(state, &parts.headers, &username, token, ""),
        Ok(None) => dead_link(state),
        Err(_) => unavailable(state),
    }
}

/// `POST`: the password chosen; the link used up; signed in.
pub(super) async fn accept<B>(state: &AuthState, req: Request<B>) -> Response<OwnBody>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    let Some(db) = &state.database else {
        return dead_link(state);
    };
    let Ok(body) = request::read_body(body, state.config.limits.max_body_bytes).await else {
        return dead_link(state);
    };
    let form = Params::parse(&body);
    let get = |name| form.one(name).ok().flatten().unwrap_or("").to_owned();
    let (token, new, again) = (get("token"), get("new"), get("again"));
    let hash = invitation_hash(&token);
    let username = match db.invited(&hash).await {
        Ok(Some(username)) => username,
        Ok(None) => return dead_link(state),
        Err(_) => return unavailable(state),
    };
    let retry = |error| choose_password(state, &parts.headers, &username, &token, error);
    if !state.csrf.verify(
        cookie(&parts.headers, CSRF_COOKIE),
        form.one("csrf").ok().flatten(),
    ) {
        return retry("The form expired: try again.");
    }
    if new != again {
        return retry("The two passwords differ.");
    }
    if new.chars().count() < 8 || new.len() > 1024 {
        return retry("A password is 8 characters or more (and at most 1024 bytes).");
    }
    let chosen = new.clone();
    let Some(password_hash) =
        crate::runtime::background::run(move || crate::password::hash_password(&chosen)).await
    else {
        return unavailable(state);
    };
    match db.accept_invitation(&hash, &password_hash).await {
        Ok(Some(_)) => {}
        Ok(None) => return dead_link(state),
        Err(_) => return unavailable(state),
    }
    let address = state.client_ip(&parts.extensions, &parts.headers);
    state.audit.record(
        "invitation.accepted",
        Fields {
            subject: Some(&username),
            address,
            ..Fields::default()
        },
    );
    // Signed in as by the form, so the session is what a sign-in makes.
    let user = match state.directory.verify_password(&username, &new).await {
        Ok(Some(user)) => user,
        _ => return super::authorize::to_sign_in(),
    };
    let origin = state.origin_of(&parts.extensions, &parts.headers, AuthMethods::PASSWORD);
    let (token, _) = match state.issue(&user, None, None, origin).await {
        Ok(issued) => issued,
        Err(_) => return super::authorize::to_sign_in(),
    };
    state.sign_in_outcome(
        crate::obs::metrics::SignIn::Succeeded,
        Fields {
            subject: Some(&username),
            address,
            ..Fields::default()
        },
    );
    let previous = cookie(&parts.headers, SESSION_COOKIE).map(TokenKey::of);
    super::authorize::signed_in_to_gateway(state, previous, &token, Some("/")).await
}
