//! Second factors: who must give one at a sign-in, authenticator apps
//! (TOTP) and their recovery codes, checked against what the database
//! keeps. The pages that ask for them are the sign-in's
//! (`oauth::second_factor`) and the account page's.

mod qr;
mod recovery;
mod sealed;
mod totp;
pub(crate) mod webauthn;

use crate::config::Config;
use crate::db::{Database, DbError, DbFactor};
use crate::store::{AuthMethods, Identity};

pub(crate) use self::totp::Authenticator;

/// The kind of an authenticator app's factor in the database.
pub(crate) const TOTP: &str = "totp";

/// What a sign-in with one factor still needs.
#[derive(Debug)]
pub(crate) enum Need {
    /// Nothing: it is done.
    Nothing,
    /// The second factor the person has.
    Verify,
    /// One must be enrolled first (required, and the person has none).
    Enrol,
}

/// What a sign-in of `identity` with one factor still needs: the
/// person's authenticator if they have one; enrolment if one is required
/// (by `second_factor`, a group of `second_factor_groups`, an admin, or
/// the client's `acr_values`: `asked`); else nothing.
pub(crate) async fn need(
    config: &Config,
    db: Option<&Database>,
    identity: &Identity,
    asked: bool,
) -> Result<Need, DbError> {
    let policy = &config.auth.second_factor;
    let Some(db) = db.filter(|_| policy.is_on()) else {
        return Ok(Need::Nothing);
    };
    let username = identity.username();
    if db.factors(username).await?.iter().any(|f| f.confirmed) {
        return Ok(Need::Verify);
    }
    let required = asked
        || policy.required_for(|group| identity.in_group(group))
        || db.second_factor_required(username).await?;
    Ok(match required {
        true => Need::Enrol,
        false => Need::Nothing,
    })
}

/// The person's confirmed authenticator, if they have one.
pub(crate) async fn authenticator_of(db: &Database, username: &str) -> Result<Option<DbFactor>, DbError> {
    Ok(db
        .factors(username)
        .await?
        .into_iter()
        .find(|f| f.confirmed && f.kind == TOTP))
}

/// The outcome of a code given for a factor.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Checked {
    /// Right: these methods are added to the sign-in.
    Accepted(AuthMethods),
    /// A recovery code, right and now used up.
    Recovered,
    /// Not the factor's code now, nor an unused recovery code.
    Wrong,
    /// The factor's code of a step already accepted: a replay.
    Replayed,
}

/// The name authenticator apps show the gateway by: the host of
/// `server.public_url`, else the page title if one was chosen, else
/// "authgate".
fn issuer(config: &Config) -> &str {
    let title = config.pages.branding.title.as_str();
    config
        .server
        .public_url
        .as_ref()
        .and_then(|url| url.host_str())
        .unwrap_or(if title == crate::config::defaults::TITLE {
            "authgate"
        } else {
            title
        })
}

/// The authenticator of `factor`, its secret opened with `secret` (the
/// contents of `auth.secret_file`); `None` if it does not open.
pub(crate) fn authenticator(config: &Config, secret: &str, factor: &DbFactor) -> Option<Authenticator> {
    let plain = sealed::open(secret, &factor.username, &factor.sealed_secret)?;
    Some(Authenticator::new(plain, issuer(config), &factor.username))
}

/// Checks `code` for `username`'s authenticator at `now` (none: wrong).
pub(crate) async fn verify_code(
    config: &Config,
    db: &Database,
    username: &str,
    code: &str,
    now: u64,
) -> Result<Checked, DbError> {
    match authenticator_of(db, username).await? {
        Some(factor) => check(config, db, &factor, code, now).await,
        None => Ok(Checked::Wrong),
    }
}

/// Checks `code` (an authenticator's, or a recovery code) for the person
/// of `factor` at `now` (seconds since the epoch). A code's step is used up
/// in the same statement that checks it was not used before.
pub(crate) async fn check(
    config: &Config,
    db: &Database,
    factor: &DbFactor,
    code: &str,
    now: u64,
) -> Result<Checked, DbError> {
    let Some(secret) = config.auth.secret.as_ref() else {
        return Ok(Checked::Wrong);
    };
    if let Some(hash) = recovery::hash(code) {
        return Ok(match db.use_recovery_code(&factor.username, &hash).await? {
            true => Checked::Recovered,
            false => Checked::Wrong,
        });
    }
    let Some(app) = authenticator(config, secret.expose(), factor) else {
        tracing::error!(username = %factor.username, "an authenticator's secret does not open: was auth.secret_file changed?");
        return Ok(Checked::Wrong);
    };
    let Some(step) = app.matching_step(code, now) else {
        return Ok(Checked::Wrong);
    };
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    Ok(match db.use_step(&factor.id, step).await? {
        true => Checked::Accepted(AuthMethods::ONE_TIME_CODE),
        false => Checked::Replayed,
    })
}

/// An authenticator being enrolled: kept unconfirmed, shown to the person
/// as a QR code and as text.
pub(crate) struct Enrolment {
    pub(crate) factor_id: String,
    pub(crate) secret_text: String,
    pub(crate) uri: String,
    /// The QR code of `uri`, as SVG.
    pub(crate) qr_svg: String,
}

/// Begins enrolling a new authenticator for `username` (in place of one
/// begun before and not confirmed).
pub(crate) async fn begin(config: &Config, db: &Database, username: &str) -> Result<Enrolment, DbError> {
    let secret = config
        .auth
        .secret
        .as_ref()
        .ok_or_else(|| DbError::Conflict("second factors need auth.secret_file".into()))?;
    let plain = Authenticator::new_secret();
    let factor = DbFactor {
        id: crate::db::new_id(),
        username: username.to_owned(),
        kind: TOTP.to_owned(),
        name: "Authenticator app".to_owned(),
        sealed_secret: sealed::seal(secret.expose(), username, &plain),
        confirmed: false,
        last_step: 0,
        created_at: 0,
        last_used_at: None,
        credential_id: None,
    };
    db.begin_factor(&factor).await?;
    let app = Authenticator::new(plain, issuer(config), username);
    Ok(enrolment(factor.id, &app))
}

/// The enrolment of unconfirmed factor `factor_id` of `username` shown
/// again (its first code was wrong); `None` if there is no such one.
pub(crate) async fn resume(
    config: &Config,
    db: &Database,
    username: &str,
    factor_id: &str,
) -> Result<Option<Enrolment>, DbError> {
    let Some(secret) = config.auth.secret.as_ref() else {
        return Ok(None);
    };
    let factor = db
        .factors(username)
        .await?
        .into_iter()
        .find(|f| f.id == factor_id && !f.confirmed);
    Ok(factor
        .and_then(|f| authenticator(config, secret.expose(), &f).map(|app| (f, app)))
        .map(|(factor, app)| enrolment(factor.id, &app)))
}

/// What the page shows of `app`, being enrolled as factor `factor_id`.
fn enrolment(factor_id: String, app: &Authenticator) -> Enrolment {
    let uri = app.uri();
    Enrolment {
        factor_id,
        secret_text: app.secret_text(),
        qr_svg: qr::svg(&uri).unwrap_or_default(),
        uri,
    }
}

/// Confirms the enrolment of factor `factor_id` of `username` with its
/// first `code`, and gives the person new recovery codes; `None` if the
/// code is not the new authenticator's (or there is no such enrolment).
pub(crate) async fn confirm(
    config: &Config,
    db: &Database,
    username: &str,
    factor_id: &str,
    code: &str,
    now: u64,
) -> Result<Option<Vec<String>>, DbError> {
    let Some(secret) = config.auth.secret.as_ref() else {
        return Ok(None);
    };
    let Some(factor) = db
        .factors(username)
        .await?
        .into_iter()
        .find(|f| f.id == factor_id && !f.confirmed)
    else {
        return Ok(None);
    };
    let Some(step) =
        authenticator(config, secret.expose(), &factor).and_then(|app| app.matching_step(code, now))
    else {
        return Ok(None);
    };
    if !db
        .confirm_factor(username, factor_id, i64::try_from(step).unwrap_or(i64::MAX))
        .await?
    {
        return Ok(None);
    }
    Ok(Some(new_recovery_codes(db, username).await?))
}

/// New recovery codes for `username`, the old ones gone: the codes, to
/// show once.
pub(crate) async fn new_recovery_codes(db: &Database, username: &str) -> Result<Vec<String>, DbError> {
    let codes = recovery::generate();
    let hashes: Vec<String> = codes.iter().filter_map(|c| recovery::hash(c)).collect();
    db.replace_recovery_codes(username, &hashes).await?;
    Ok(codes)
}
