//! `/management/account`: the page every signed-in person has: who they
//! are here (name, provider, groups), their sessions (and signing out the
//! others), and, for a user of the database, changing their password.
//! Forms carry the CSRF field; each answers with a redirect back to the
//! page (Post/Redirect/Get), which says what happened by a code in its
//! query, never by text a link could make it show.

use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body::Body;

use crate::auth::csrf::CSRF_COOKIE;
use crate::auth::pages::{AccountPage, AccountSession};
use crate::auth::state::AuthState;
use crate::obs::audit::Fields;
use crate::store::{Session, TokenKey};
use crate::web::request::{self, cookie, wants_html, Params};
use crate::web::response::{self, OwnBody};

use super::{access_session, BoxError, AUTHORIZE_PATH};

pub(super) const ACCOUNT_PATH: &str = "/management/account";
pub(super) const SIGN_OUT_OTHERS_PATH: &str = "/management/account/sign-out-others";
pub(super) const PASSWORD_PATH: &str = "/management/account/password";

/// What a redirect back says, by its code.
fn message(code: &str) -> (&'static str, &'static str) {
    match code {
        "others" => ("Your other sessions are signed out.", ""),
        "must_change" => (
            "You signed in with a temporary password: choose your own to go on.",
            "",
        ),
        "password" => (
            "Your password is changed, and your other sessions are signed out.",
            "",
        ),
        "current" => ("", "The current password is not right."),
        "mismatch" => ("", "The two new passwords differ."),
        "short" => ("", "A password is 8 characters or more."),
        "throttled" => ("", "Too many wrong passwords: try again in a few minutes."),
        "unavailable" => ("", "The database cannot be reached: try again in a moment."),
        "factor_removed" => (
            "Your authenticator app is removed: you sign in with your password alone.",
            "",
        ),
        "factor_first" => (
            "",
            "Give your second factor first: sign in with it, then try again.",
        ),
        "key_added" => ("Your security key is added.", ""),
        "key_removed" => ("Your security key is removed.", ""),
        "expired" => ("", "The form expired: try again."),
        _ => ("", ""),
    }
}

/// The signed-in person's session and its key, or the answer for someone
/// who is not signed in (a browser is sent to sign in, and back).
#[allow(clippy::result_large_err)] // the error is the response itself, sent at once
async fn signed_in(state: &AuthState, parts: &Parts) -> Result<(TokenKey, Session), Response<OwnBody>> {
    match access_session(state, parts).await {
        Ok((token, session)) => Ok((TokenKey::of(&token), session)),
        Err(err) if wants_html(&parts.headers) => {
            let _ = err;
            let location = format!("{AUTHORIZE_PATH}?rd=%2Fmanagement%2Faccount");
            Err(response::redirect(StatusCode::FOUND, &location).expect("a static path is a valid Location"))
        }
        Err(err) => Err(err.into_response()),
    }
}

/// Whether the person's password is the database's to change.
async fn database_user(state: &AuthState, session: &Session) -> bool {
    match &state.database {
        Some(db) if session.identity().provider().is_none() => {
            state.directory.user(session.username()).is_none()
                && matches!(db.user(session.username()).await, Ok(Some(_)))
        }
        _ => false,
    }
}

pub(super) fn time(secs: u64) -> String {
    chrono::DateTime::from_timestamp(i64::try_from(secs).unwrap_or(i64::MAX), 0)
        .map_or_else(|| "-".to_owned(), |t| t.format("%Y-%m-%d %H:%M").to_string())
}

/// `GET /management/account`.
pub(super) async fn show(state: &AuthState, parts: &Parts) -> Response<OwnBody> {
    let (current, session) = match signed_in(state, parts).await {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    let identity = session.identity();
    let mut sessions: Vec<(TokenKey, Session)> = state
        .store
        .sessions_of(identity.username())
        .await
        .unwrap_or_default();
    sessions.sort_by_key(|(_, s)| std::cmp::Reverse(s.issued_at()));
    let listed = sessions
        .iter()
        .map(|(key, s)| AccountSession {
            started: time(s.issued_at()),
            last_seen: time(s.last_seen().max(s.issued_at())),
            ends: time(s.expires_at()),
            address: s.origin().and_then(|o| o.address).map(|a| a.to_string()),
            user_agent: s
                .origin()
                .and_then(|o| o.user_agent.as_deref())
                .map(str::to_owned),
            client: s.client_id().map(str::to_owned),
            current: *key == current,
        })
        .collect();
    let csrf = state
        .csrf
        .for_form(&parts.headers, state.config.server.is_https());
    let params = Params::from_query(parts.uri.query());
    let (notice, error) = message(params.one("done").ok().flatten().unwrap_or(""));
    let branding = &state.config.pages.branding;
    let page = AccountPage {
        title: &branding.title,
        logo_url: branding.logo_url.as_deref(),
        accent_color: &branding.accent_color,
        username: identity.username(),
        name: identity.name(),
        email: identity.email(),
        provider: identity.provider(),
        groups: identity.groups().collect(),
        sessions: listed,
        can_change_password: database_user(state, &session).await,
        second_factor: super::account_factors::summary(state, &session).await,
        keys: super::account_factors::keys(state, &session).await,
        passkeys: state.config.auth.second_factor.passkeys,
        script: super::webauthn::SCRIPT,
        invitation: None,
        csrf: &csrf.field,
        notice,
        error,
    };
    let offers_keys = page.keys.is_some();
    let mut answer = response::html(StatusCode::OK, state.pages.account(&page));
    if offers_keys {
        super::webauthn::allow_script(&mut answer);
    }
    csrf.set_on(&mut answer);
    answer
}

pub(super) fn back(code: &str) -> Response<OwnBody> {
    response::redirect(StatusCode::SEE_OTHER, &format!("{ACCOUNT_PATH}?done={code}"))
        .expect("a static path is a valid Location")
}

/// A form of the page, read and checked (the session, the CSRF field).
pub(super) async fn form<B>(
    state: &AuthState,
    req: Request<B>,
) -> Result<(Parts, Params, TokenKey, Session), Response<OwnBody>>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    let (key, session) = signed_in(state, &parts).await?;
    let body = request::read_body(body, state.config.limits.max_body_bytes)
        .await
        .map_err(|_| back("expired"))?;
    let params = Params::parse(&body);
    if !state.csrf.verify(
        cookie(&parts.headers, CSRF_COOKIE),
        params.one("csrf").ok().flatten(),
    ) {
        return Err(back("expired"));
    }
    Ok((parts, params, key, session))
}

/// Ends every session of `session`'s person but the one under `keep`.
async fn end_others(state: &AuthState, keep: TokenKey, session: &Session) -> usize {
    let mut ended = 0;
    for (key, _) in state
        .store
        .sessions_of(session.username())
        .await
        .unwrap_or_default()
    {
        if key != keep && state.store.remove(&key).await.unwrap_or(false) {
            ended += 1;
        }
    }
    ended
}

/// `POST /management/account/sign-out-others`.
pub(super) async fn sign_out_others<B>(state: &AuthState, req: Request<B>) -> Response<OwnBody>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, _, key, session) = match form(state, req).await {
        Ok(read) => read,
        Err(answer) => return answer,
    };
    let ended = end_others(state, key, &session).await;
    tracing::info!(
        username = session.username(),
        ended,
        "signed out the other sessions"
    );
    state.audit.record(
        "sign_out.others",
        Fields {
            subject: Some(session.username()),
            address: state.client_ip(&parts.extensions, &parts.headers),
            ..Fields::default()
        },
    );
    back("others")
}

/// `POST /management/account/password`: a database user's own password.
pub(super) async fn change_password<B>(state: &AuthState, req: Request<B>) -> Response<OwnBody>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, params, key, session) = match form(state, req).await {
        Ok(read) => read,
        Err(answer) => return answer,
    };
    let get = |name| params.one(name).ok().flatten().unwrap_or("").to_owned();
    let (current, new, again) = (get("current"), get("new"), get("again"));
    let username = session.username().to_owned();
    let (Some(db), true) = (&state.database, database_user(state, &session).await) else {
        return back("unavailable");
    };
    if new != again {
        return back("mismatch");
    }
    if new.chars().count() < 8 || new.len() > 1024 {
        return back("short");
    }
    let address = state.client_ip(&parts.extensions, &parts.headers);
    let subjects = super::authorize::throttle_subjects(&username, address);
    if state
        .throttle
        .check(&state.config.auth.throttle, &subjects)
        .await
        .is_err()
    {
        return back("throttled");
    }
    let hash = match db.user(&username).await {
        Ok(Some(user)) => user.password_hash.unwrap_or_default(),
        _ => return back("unavailable"),
    };
    let checked = crate::runtime::background::run(move || crate::password::verify(&hash, &current)).await;
    if checked != Some(true) {
        state
            .throttle
            .record_failure(&state.config.auth.throttle, &subjects)
            .await;
        return back("current");
    }
    let Some(new_hash) = crate::runtime::background::run(move || crate::password::hash_password(&new)).await
    else {
        return back("unavailable");
    };
    if !matches!(
        db.set_password(&username, &new_hash, false, false).await,
        Ok(true)
    ) {
        return back("unavailable");
    }
    end_others(state, key, &session).await;
    // This session goes on, no longer held back for a temporary password.
    if session.identity().password_change_required() {
        let changed = session.identity().with_password_changed();
        if let Err(err) = state
            .store
            .update(key, session.clone().with_identity(changed))
            .await
        {
            tracing::warn!(error = %err, "could not release the session from its temporary password");
        }
    }
    state.audit.record(
        "account.password_changed",
        Fields {
            subject: Some(&username),
            address,
            ..Fields::default()
        },
    );
    back("password")
}
