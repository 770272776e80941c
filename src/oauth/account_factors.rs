//! The account page's second factor: setting up an authenticator app (its
//! QR code, then its first code), new recovery codes, and removing it.
//! Removing one, or replacing the recovery codes, takes a session signed
//! in with that factor, so a password alone cannot undo it.

use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body::Body;

use crate::auth::pages::{AccountFactor, AccountKey};
use crate::auth::state::AuthState;
use crate::db::Database;
use crate::obs::audit::Fields;
use crate::second_factor::{self, webauthn::WEBAUTHN};
use crate::store::{unix_now, Session};
use crate::web::request::Params;
use crate::web::response::{self, OwnBody};

use super::account::{back, form};
use super::second_factor::{page_for, Flow, Mode};
use super::BoxError;

pub(super) const ADD_PATH: &str = "/management/account/authenticator";
pub(super) const CONFIRM_PATH: &str = "/management/account/authenticator/confirm";
pub(super) const REMOVE_PATH: &str = "/management/account/authenticator/remove";
pub(super) const RECOVERY_CODES_PATH: &str = "/management/account/recovery-codes";
pub(super) const REMOVE_KEY_PATH: &str = "/management/account/security-keys/remove";

/// A database time (milliseconds since the epoch) as the page writes it.
fn time(ms: i64) -> String {
    super::account::time(u64::try_from(ms / 1000).unwrap_or(0))
}

/// What the account page says of the person's second factor; `None`
/// where second factors are off.
pub(super) async fn summary(state: &AuthState, session: &Session) -> Option<AccountFactor> {
    let db = state
        .database
        .as_ref()
        .filter(|_| state.config.auth.second_factor.is_on())?;
    let username = session.username();
    let factor = second_factor::authenticator_of(db, username).await.ok()?;
    Some(match factor {
        Some(factor) => AccountFactor {
            enrolled: true,
            added: time(factor.created_at),
            last_used: factor.last_used_at.map_or_else(|| "never".to_owned(), time),
            recovery_codes_left: db.recovery_codes_left(username).await.unwrap_or(0),
        },
        None => AccountFactor::default(),
    })
}

/// The person's security keys and passkeys; `None` where they are not
/// offered (no WebAuthn relying party).
pub(super) async fn keys(state: &AuthState, session: &Session) -> Option<Vec<AccountKey>> {
    state.webauthn.as_ref()?;
    let db = state.database.as_ref()?;
    let factors = db.factors(session.username()).await.ok()?;
    Some(
        factors
            .into_iter()
            .filter(|f| f.kind == WEBAUTHN)
            .map(|f| AccountKey {
                id: f.id,
                name: f.name,
                added: time(f.created_at),
                last_used: f.last_used_at.map_or_else(|| "never".to_owned(), time),
            })
            .collect(),
    )
}

/// `POST /management/account/security-keys/remove`: one of the person's
/// keys, given with a second factor.
pub(super) async fn remove_key<B>(state: &AuthState, req: Request<B>) -> Response<OwnBody>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, params, session, db) = match form_with_factor(state, req).await {
        Ok(read) => read,
        Err(answer) => return answer,
    };
    let id = params.one("factor").ok().flatten().unwrap_or("");
    let theirs = db
        .factors(session.username())
        .await
        .is_ok_and(|factors| factors.iter().any(|f| f.id == id && f.kind == WEBAUTHN));
    match theirs {
        true => removed(state, &parts, &session, id, WEBAUTHN, "key_removed").await,
        false => back("unavailable"),
    }
}

/// A form of the page, from a session signed in with the second factor it
/// would change, and the database; or the answer to send.
async fn form_with_factor<B>(
    state: &AuthState,
    req: Request<B>,
) -> Result<(Parts, Params, Session, &Database), Response<OwnBody>>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, params, _, session) = form(state, req).await?;
    with_factor(&session)?;
    let db = state.database.as_ref().ok_or_else(|| back("unavailable"))?;
    Ok((parts, params, session, db))
}

/// Removes the person's factor `id` (of `kind`), audited, and back to the
/// page saying `done`.
async fn removed(
    state: &AuthState,
    parts: &Parts,
    session: &Session,
    id: &str,
    kind: &str,
    done: &str,
) -> Response<OwnBody> {
    let username = session.username();
    let Some(db) = state.database.as_ref() else {
        return back("unavailable");
    };
    if !matches!(db.remove_factor(username, id).await, Ok(true)) {
        return back("unavailable");
    }
    state.audit.record(
        "second_factor.removed",
        Fields {
            actor: Some(username),
            subject: Some(username),
            address: state.client_ip(&parts.extensions, &parts.headers),
            detail: Some(kind),
            ..Fields::default()
        },
    );
    back(done)
}

/// `POST /management/account/authenticator`: a new authenticator to set
/// up, shown with its QR code.
pub(super) async fn add<B>(state: &AuthState, req: Request<B>) -> Response<OwnBody>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, _, _, session) = match form(state, req).await {
        Ok(read) => read,
        Err(answer) => return answer,
    };
    let Some(db) = state
        .database
        .as_ref()
        .filter(|_| state.config.auth.second_factor.is_on())
    else {
        return back("unavailable");
    };
    match second_factor::begin(&state.config, db, session.username()).await {
        Ok(enrolment) => page_for(
            state,
            &parts.headers,
            StatusCode::OK,
            Mode::Enrol(&enrolment, false),
            session.username(),
            Flow::Account { action: CONFIRM_PATH },
            "",
        ),
        Err(_) => back("unavailable"),
    }
}

/// `POST /management/account/authenticator/confirm`: its first code; the
/// recovery codes are shown once.
pub(super) async fn confirm<B>(state: &AuthState, req: Request<B>) -> Response<OwnBody>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, params, _, session) = match form(state, req).await {
        Ok(read) => read,
        Err(answer) => return answer,
    };
    let Some(db) = state.database.as_ref() else {
        return back("unavailable");
    };
    let field = |name| params.one(name).ok().flatten().unwrap_or("");
    let username = session.username();
    let address = state.client_ip(&parts.extensions, &parts.headers);
    let subjects = super::authorize::throttle_subjects(username, address);
    if state
        .throttle
        .check(&state.config.auth.throttle, &subjects)
        .await
        .is_err()
    {
        return back("throttled");
    }
    let account = Flow::Account { action: CONFIRM_PATH };
    match second_factor::confirm(
        &state.config,
        db,
        username,
        field("factor"),
        field("code"),
        unix_now(),
    )
    .await
    {
        Ok(Some(codes)) => {
            state.audit.record(
                "second_factor.enrolled",
                Fields {
                    subject: Some(username),
                    address,
                    detail: Some("totp"),
                    ..Fields::default()
                },
            );
            page_for(
                state,
                &parts.headers,
                StatusCode::OK,
                Mode::Codes(&codes),
                username,
                account,
                "",
            )
        }
        Ok(None) => {
            state
                .throttle
                .record_failure(&state.config.auth.throttle, &subjects)
                .await;
            match second_factor::resume(&state.config, db, username, field("factor")).await {
                Ok(Some(enrolment)) => page_for(
                    state,
                    &parts.headers,
                    StatusCode::UNAUTHORIZED,
                    Mode::Enrol(&enrolment, false),
                    username,
                    account,
                    "That code is not right: enter the one the app shows now.",
                ),
                _ => back("expired"),
            }
        }
        Err(_) => back("unavailable"),
    }
}

/// The session is signed in with the factor it would change; else the
/// person is sent to give it.
#[allow(clippy::result_large_err)] // the error is the response itself, sent at once
fn with_factor(session: &Session) -> Result<(), Response<OwnBody>> {
    match session.methods().is_multi_factor() {
        true => Ok(()),
        false => Err(response::redirect(
            StatusCode::SEE_OTHER,
            &format!("{}?rd=%2Fmanagement%2Faccount", crate::auth::SECOND_FACTOR_PATH),
        )
        .expect("a static path is a valid Location")),
    }
}

/// `POST /management/account/recovery-codes`: new ones, the old ones gone.
pub(super) async fn new_recovery_codes<B>(state: &AuthState, req: Request<B>) -> Response<OwnBody>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, _, session, db) = match form_with_factor(state, req).await {
        Ok(read) => read,
        Err(answer) => return answer,
    };
    let username = session.username();
    match second_factor::new_recovery_codes(db, username).await {
        Ok(codes) => page_for(
            state,
            &parts.headers,
            StatusCode::OK,
            Mode::Codes(&codes),
            username,
            Flow::Account {
                action: RECOVERY_CODES_PATH,
            },
            "",
        ),
        Err(_) => back("unavailable"),
    }
}

/// `POST /management/account/authenticator/remove`.
pub(super) async fn remove<B>(state: &AuthState, req: Request<B>) -> Response<OwnBody>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, _, session, db) = match form_with_factor(state, req).await {
        Ok(read) => read,
        Err(answer) => return answer,
    };
    match second_factor::authenticator_of(db, session.username()).await {
        Ok(Some(factor)) => {
            removed(
                state,
                &parts,
                &session,
                &factor.id,
                second_factor::TOTP,
                "factor_removed",
            )
            .await
        }
        _ => back("unavailable"),
    }
}
