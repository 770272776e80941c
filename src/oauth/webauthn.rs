//! `/management/webauthn/…`: the JSON endpoints the pages' small script
//! calls for security keys and passkeys, each ceremony in two steps
//! (`begin`, then `finish` with the browser's answer):
//!
//! - `register`: a signed-in person adds a key (named) on the account page;
//! - `verify`: a key as the second factor of a pending sign-in, or to step
//!   up the browser's session;
//! - `passkey`: a passkey alone signs in from the sign-in page
//!   (`passkeys = true`); the authenticator says whose it is.
//!
//! A ceremony's state waits in the token store (five minutes, used once,
//! for its purpose and, but for `passkey`, its person only). Every form
//! carries the CSRF field. A refused answer is in the audit log and counts
//! against the person's and the address's throttle; a key whose counter
//! went backwards is refused as possibly cloned. The script is served
//! inline and allowed by its hash in the page's CSP (no `unsafe-inline`).

use std::sync::{Arc, LazyLock};

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body::Body;
use serde::Deserialize;
use webauthn_rs::prelude::Passkey;

use crate::auth::csrf::CSRF_COOKIE;
use crate::auth::state::AuthState;
use crate::auth::throttle::Subject;
use crate::db::{DbError, DbFactor};
use crate::obs::audit::Fields;
use crate::obs::metrics::SignIn;
use crate::second_factor::webauthn::{self as keys, Refused, WEBAUTHN};
use crate::store::{unix_now, Ceremony, Identity, Kind, Session, Token, TokenKey};
use crate::web::request::{self, cookie, BodyError, Params};
use crate::web::response::{self, OwnBody};

use super::authorize::{self, AuthorizeParams, SignedIn};
use super::{access_session, second_factor, BoxError};

pub(crate) const WEBAUTHN_PREFIX: &str = "/management/webauthn/";
const CEREMONY_TTL_SECS: u64 = 300;
/// The most keys a person may have.
const MAX_KEYS: usize = 20;

/// The pages' script: binds the buttons `add-key`, `use-key` and
/// `passkey` to the ceremonies.
pub(crate) const SCRIPT: &str = include_str!("webauthn.js");

/// `'sha256-…'` of [`SCRIPT`], for the CSP of the pages that carry it.
static SCRIPT_HASH: LazyLock<String> = LazyLock::new(|| {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(SCRIPT.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
});

/// Lets a page run [`SCRIPT`] (and call these endpoints): its CSP with the
/// script's hash and `connect-src 'self'`.
pub(crate) fn allow_script(response: &mut Response<OwnBody>) {
    let policy = format!(
        "default-src 'none'; script-src {}; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self' https: data:; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        &*SCRIPT_HASH
    );
    if let Ok(value) = HeaderValue::try_from(policy) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// What the script posts.
#[derive(Deserialize)]
struct Asked {
    csrf: String,
    #[serde(default)]
    ceremony: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    rd: String,
    /// The sign-in request a passkey answers (the sign-in page's query).
    #[serde(default)]
    request: String,
    credential: Option<serde_json::Value>,
}

/// A JSON refusal, as OAuth errors are written.
fn refused(status: StatusCode, error: &str, description: &str) -> Response<OwnBody> {
    response::json(
        status,
        &serde_json::json!({ "error": error, "error_description": description }),
    )
}

fn unavailable() -> Response<OwnBody> {
    refused(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "Security keys cannot be checked right now: try again in a moment.",
    )
}

/// `POST /management/webauthn/{register|verify|passkey}/{begin|finish}`.
pub(crate) async fn handle<B>(state: &AuthState, req: Request<B>) -> Response<OwnBody>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    let step = parts.uri.path()[WEBAUTHN_PREFIX.len()..].to_owned();
    if parts.method != http::Method::POST {
        let mut answer = refused(StatusCode::METHOD_NOT_ALLOWED, "invalid_request", "POST only.");
        answer
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return answer;
    }
    let (Some(webauthn), Some(db)) = (state.webauthn.clone(), state.database.as_ref()) else {
        return refused(
            StatusCode::NOT_FOUND,
            "invalid_request",
            "Security keys are not offered here (auth.second_factor and server.public_url with a host name).",
        );
    };
    let body = match request::read_body(body, state.config.limits.max_body_bytes).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            return refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "The request was too large.",
            )
        }
        Err(BodyError::Broken) => {
            return refused(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The request did not arrive whole.",
            )
        }
    };
    let asked: Asked = match serde_json::from_slice(&body) {
        Ok(asked) => asked,
        Err(e) => {
            return refused(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("The JSON body: {e}."),
            )
        }
    };
    if !state
        .csrf
        .verify(cookie(&parts.headers, CSRF_COOKIE), Some(&asked.csrf))
    {
        return refused(
            StatusCode::FORBIDDEN,
            "invalid_request",
            "This page has expired: reload it and try again.",
        );
    }
    let ctx = Ctx {
        state,
        parts: &parts,
        webauthn: &webauthn,
        db,
        asked: &asked,
    };
    match step.as_str() {
        "register/begin" => ctx.register_begin().await,
        "register/finish" => ctx.register_finish().await,
        "verify/begin" => ctx.verify_begin().await,
        "verify/finish" => ctx.verify_finish().await,
        "passkey/begin" if state.config.auth.second_factor.passkeys => ctx.passkey_begin().await,
        "passkey/finish" if state.config.auth.second_factor.passkeys => ctx.passkey_finish().await,
        _ => refused(StatusCode::NOT_FOUND, "invalid_request", "No such step."),
    }
}

/// One request's pieces.
struct Ctx<'a> {
    state: &'a AuthState,
    parts: &'a Parts,
    webauthn: &'a webauthn_rs::prelude::Webauthn,
    db: &'a crate::db::Database,
    asked: &'a Asked,
}

/// Whose a verification is: a pending sign-in's person, or the browser's
/// session (a step-up).
enum Whose {
    Pending(TokenKey, Session, Arc<crate::store::PendingSignIn>),
    Session(String, Session),
}

impl Whose {
    fn identity(&self) -> &Arc<Identity> {
        match self {
            Whose::Pending(_, session, _) | Whose::Session(_, session) => session.identity(),
        }
    }
}

impl Ctx<'_> {
    fn address(&self) -> Option<std::net::IpAddr> {
        self.state.client_ip(&self.parts.extensions, &self.parts.headers)
    }

    /// What a failure counts against: the person and the address; for a
    /// passkey's answer, which names no one until it checks out, the
    /// address alone.
    fn subjects(&self, username: Option<&str>) -> Vec<Subject> {
        match username {
            Some(username) => authorize::throttle_subjects(username, self.address()),
            None => self.address().map(Subject::Address).into_iter().collect(),
        }
    }

    /// The person's keys, with their rows.
    async fn keys_of(&self, username: &str) -> Result<Vec<(DbFactor, Passkey)>, DbError> {
        Ok(self
            .db
            .factors(username)
            .await?
            .into_iter()
            .filter(|f| f.kind == WEBAUTHN)
            .filter_map(|f| keys::key_of(&f.sealed_secret).map(|key| (f, key)))
            .collect())
    }

    /// Keeps `state` for the answer to come, for `purpose` and `identity`:
    /// the answer to send the browser (`ceremony` and `publicKey`).
    async fn begun(&self, purpose: &str, identity: Arc<Identity>, begun: keys::Begun) -> Response<OwnBody> {
        let ceremony = Ceremony {
            purpose: purpose.into(),
            state: begun.state.into(),
        };
        let session = Session::for_identity(identity, CEREMONY_TTL_SECS)
            .derive(Kind::Ceremony(Arc::new(ceremony)), CEREMONY_TTL_SECS);
        let token = Token::generate();
        if self.state.store.insert(token.key(), session).await.is_err() {
            return unavailable();
        }
        let mut options = begun.options;
        options["ceremony"] = token.as_str().into();
        response::json(StatusCode::OK, &options)
    }

    /// The ceremony the answer names, used up: its state, if it was begun
    /// for `purpose` (and, given `username`, for that person).
    async fn ceremony(&self, purpose: &str, username: Option<&str>) -> Option<String> {
        let key = TokenKey::of(&self.asked.ceremony);
        let session = self.state.store.get(&key).await.ok().flatten()?;
        let Kind::Ceremony(ceremony) = session.kind() else {
            return None;
        };
        let ours = &*ceremony.purpose == purpose && username.is_none_or(|u| session.username() == u);
        // Used once: of two answers at once, one finds it.
        (ours && self.state.store.remove(&key).await.unwrap_or(false)).then(|| ceremony.state.to_string())
    }

    /// A refused answer: logged, audited, counted against the throttle.
    async fn refusal(&self, username: Option<&str>, err: &Refused) -> Response<OwnBody> {
        let detail = match err {
            Refused::Cloned => "security_key_cloned",
            Refused::Invalid(_) => "security_key_refused",
        };
        tracing::warn!(username, error = %err, "a security key's answer was refused");
        self.state.sign_in_outcome(
            SignIn::Failed,
            Fields {
                subject: username,
                address: self.address(),
                detail: Some(detail),
                ..Fields::default()
            },
        );
        let subjects = self.subjects(username);
        self.state
            .throttle
            .record_failure(&self.state.config.auth.throttle, &subjects)
            .await;
        let status = match err {
            Refused::Cloned => StatusCode::FORBIDDEN,
            Refused::Invalid(_) => StatusCode::BAD_REQUEST,
        };
        refused(status, "access_denied", &format!("The key was refused: {err}."))
    }

    /// Whether `username` (or, for a passkey's answer that names no one
    /// yet, the address) may try again now.
    async fn throttled(&self, username: Option<&str>) -> Option<Response<OwnBody>> {
        let subjects = self.subjects(username);
        let wait = self
            .state
            .throttle
            .check(&self.state.config.auth.throttle, &subjects)
            .await
            .err()?;
        let mut answer = refused(
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            &format!("Too many failed tries: wait {wait} seconds."),
        );
        answer
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        Some(answer)
    }

    async fn register_begin(&self) -> Response<OwnBody> {
        let Ok((_, session)) = access_session(self.state, self.parts).await else {
            return refused(StatusCode::UNAUTHORIZED, "invalid_token", "Sign in first.");
        };
        let Ok(existing) = self.keys_of(session.username()).await else {
            return unavailable();
        };
        if existing.len() >= MAX_KEYS {
            return refused(
                StatusCode::CONFLICT,
                "invalid_request",
                "You have as many keys as one may have: remove one first.",
            );
        }
        // A person with a second factor adds another only with it.
        let has_factor = !existing.is_empty()
            || matches!(
                crate::second_factor::authenticator_of(self.db, session.username()).await,
                Ok(Some(_))
            );
        if has_factor && !session.methods().is_multi_factor() {
            return refused(
                StatusCode::FORBIDDEN,
                "insufficient_user_authentication",
                "Give your second factor first: sign in with it, then add the key.",
            );
        }
        let passkeys: Vec<Passkey> = existing.into_iter().map(|(_, key)| key).collect();
        match keys::begin_registration(self.webauthn, session.username(), &passkeys) {
            Ok(begun) => self.begun("register", session.identity().clone(), begun).await,
            Err(err) => self.refusal(Some(session.username()), &err).await,
        }
    }

    async fn register_finish(&self) -> Response<OwnBody> {
        let Ok((_, session)) = access_session(self.state, self.parts).await else {
            return refused(StatusCode::UNAUTHORIZED, "invalid_token", "Sign in first.");
        };
        let username = session.username();
        let Some(state) = self.ceremony("register", Some(username)).await else {
            return refused(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "This registration expired: try again.",
            );
        };
        let answer = self.asked.credential.clone().unwrap_or_default();
        let key = match keys::finish_registration(self.webauthn, &state, &answer) {
            Ok(key) => key,
            Err(err) => return self.refusal(Some(username), &err).await,
        };
        let name = match self.asked.name.trim() {
            "" => "Security key".to_owned(),
            name => name.chars().filter(|c| !c.is_control()).take(64).collect(),
        };
        let factor = DbFactor {
            id: crate::db::new_id(),
            username: username.to_owned(),
            kind: WEBAUTHN.to_owned(),
            name,
            sealed_secret: keys::stored(&key),
            confirmed: true,
            last_step: 0,
            created_at: 0,
            last_used_at: None,
            credential_id: Some(keys::credential_key(key.cred_id().as_ref())),
        };
        if let Err(err) = self.db.add_key(&factor).await {
            tracing::error!(error = %err, "could not keep a new security key");
            return match err {
                DbError::Conflict(_) => refused(
                    StatusCode::CONFLICT,
                    "invalid_request",
                    "This key is registered already.",
                ),
                _ => unavailable(),
            };
        }
        self.state.audit.record(
            "second_factor.enrolled",
            Fields {
                subject: Some(username),
                address: self.address(),
                detail: Some("webauthn"),
                ..Fields::default()
            },
        );
        response::json(
            StatusCode::OK,
            &serde_json::json!({ "location": "/management/account?done=key_added" }),
        )
    }

    /// Whose key is asked for: a pending sign-in's, else the session's.
    async fn whose(&self) -> Option<Whose> {
        if let Some((key, session, pending)) = second_factor::pending(self.state, &self.parts.headers).await {
            return Some(Whose::Pending(key, session, pending));
        }
        let (token, session) = access_session(self.state, self.parts).await.ok()?;
        Some(Whose::Session(token, session))
    }

    async fn verify_begin(&self) -> Response<OwnBody> {
        let Some(whose) = self.whose().await else {
            return refused(StatusCode::UNAUTHORIZED, "invalid_token", "Sign in first.");
        };
        let identity = whose.identity().clone();
        let Ok(found) = self.keys_of(identity.username()).await else {
            return unavailable();
        };
        if found.is_empty() {
            return refused(
                StatusCode::NOT_FOUND,
                "invalid_request",
                "You have no security key here.",
            );
        }
        let passkeys: Vec<Passkey> = found.into_iter().map(|(_, key)| key).collect();
        match keys::begin_authentication(self.webauthn, &passkeys) {
            Ok(begun) => self.begun("verify", identity, begun).await,
            Err(err) => self.refusal(Some(identity.username()), &err).await,
        }
    }

    async fn verify_finish(&self) -> Response<OwnBody> {
        let Some(whose) = self.whose().await else {
            return refused(StatusCode::UNAUTHORIZED, "invalid_token", "Sign in first.");
        };
        let username = whose.identity().username().to_owned();
        if let Some(answer) = self.throttled(Some(&username)).await {
            return answer;
        }
        let Some(state) = self.ceremony("verify", Some(&username)).await else {
            return refused(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "This sign-in expired: try again.",
            );
        };
        let Ok(found) = self.keys_of(&username).await else {
            return unavailable();
        };
        let passkeys: Vec<Passkey> = found.iter().map(|(_, key)| key.clone()).collect();
        let proven = keys::answer_of(&self.asked.credential.clone().unwrap_or_default())
            .and_then(|answer| keys::finish_authentication(self.webauthn, &state, &answer, &passkeys));
        let proven = match proven {
            Ok(proven) => proven,
            Err(err) => return self.refusal(Some(&username), &err).await,
        };
        let used = keys::credential_key(proven.key.cred_id().as_ref());
        if let Some((factor, _)) = found
            .iter()
            .find(|(f, _)| f.credential_id.as_deref() == Some(used.as_str()))
        {
            if self
                .db
                .key_used(&factor.id, &keys::stored(&proven.key))
                .await
                .is_err()
            {
                return unavailable();
            }
        }
        let address = self.address();
        let answer = match whose {
            Whose::Pending(key, session, pending) => {
                second_factor::finish(
                    self.state,
                    &self.parts.headers,
                    address,
                    &key,
                    &session,
                    &pending,
                    proven.methods,
                )
                .await
            }
            Whose::Session(token, session) => {
                second_factor::step_up(
                    self.state,
                    &TokenKey::of(&token),
                    session,
                    proven.methods,
                    address,
                    &self.asked.rd,
                )
                .await
            }
        };
        as_json(answer)
    }

    async fn passkey_begin(&self) -> Response<OwnBody> {
        static NOBODY: LazyLock<Arc<Identity>> = LazyLock::new(|| Identity::new("\0passkey", None));
        match keys::begin_discoverable(self.webauthn) {
            Ok(begun) => self.begun("passkey", NOBODY.clone(), begun).await,
            Err(err) => self.refusal(None, &err).await,
        }
    }

    async fn passkey_finish(&self) -> Response<OwnBody> {
        if let Some(answer) = self.throttled(None).await {
            return answer;
        }
        let Some(state) = self.ceremony("passkey", None).await else {
            return refused(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "This sign-in expired: try again.",
            );
        };
        let answer = match keys::answer_of(&self.asked.credential.clone().unwrap_or_default()) {
            Ok(answer) => answer,
            Err(err) => return self.refusal(None, &err).await,
        };
        let credential = match keys::named_credential(self.webauthn, &answer) {
            Ok(credential) => credential,
            Err(err) => return self.refusal(None, &err).await,
        };
        let factor = match self.db.factor_by_credential(&credential).await {
            Ok(Some(factor)) if factor.kind == WEBAUTHN => factor,
            Ok(_) => {
                return self
                    .refusal(
                        None,
                        &Refused::Invalid("no key of this gateway (removed, or never registered)".into()),
                    )
                    .await
            }
            Err(_) => return unavailable(),
        };
        if let Some(answer) = self.throttled(Some(&factor.username)).await {
            return answer;
        }
        let Some(key) = keys::key_of(&factor.sealed_secret) else {
            return unavailable();
        };
        let proven = match keys::finish_discoverable(self.webauthn, &state, &answer, key) {
            Ok(proven) => proven,
            Err(err) => return self.refusal(Some(&factor.username), &err).await,
        };
        if self
            .db
            .key_used(&factor.id, &keys::stored(&proven.key))
            .await
            .is_err()
        {
            return unavailable();
        }
        let user = match self
            .state
            .directory
            .without_password(Some(self.db), &factor.username)
            .await
        {
            Ok(Some(user)) => user,
            Ok(None) => {
                return self
                    .refusal(
                        Some(&factor.username),
                        &Refused::Invalid("its person cannot sign in here (disabled or gone)".into()),
                    )
                    .await
            }
            Err(_) => return unavailable(),
        };
        let params = Params::from_query(Some(&self.asked.request));
        let asked = AuthorizeParams::from(&params);
        let target = match authorize::check(self.state, &params, &asked) {
            Ok(target) => target,
            Err(answer) => return as_json(answer),
        };
        let signed_in = SignedIn {
            methods: proven.methods,
            at: Some(unix_now()),
        };
        as_json(
            authorize::complete(
                self.state,
                &self.parts.headers,
                self.address(),
                target,
                &asked,
                &user,
                signed_in,
            )
            .await,
        )
    }
}

/// A page's answer (a redirect, with its cookies) as the script takes it:
/// `{"location": …}` with the same `Set-Cookie`s; anything else, a refusal
/// with the page's status.
fn as_json(page: Response<OwnBody>) -> Response<OwnBody> {
    let location = page
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(location) = location.filter(|_| page.status().is_redirection()) else {
        let status = match page.status() {
            status if status.is_success() => StatusCode::BAD_REQUEST,
            status => status,
        };
        return refused(
            status,
            "invalid_request",
            "The sign-in could not be completed: reload the page and try again.",
        );
    };
    let mut answer = response::json(StatusCode::OK, &serde_json::json!({ "location": location }));
    for cookie in page.headers().get_all(header::SET_COOKIE) {
        answer.headers_mut().append(header::SET_COOKIE, cookie.clone());
    }
    answer
}
