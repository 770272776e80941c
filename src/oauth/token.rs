//! `GET|POST /management/token` (RFC 6749 §3.2): the `authorization_code`,
//! `password`, `client_credentials` and `refresh_token` grants, with the
//! App Services extras (`ttl`, the `user` object, JSON bodies).

use std::sync::Arc;

use http::request::Parts;
use http::{Response, StatusCode};
use serde::Serialize;

use crate::auth::state::AuthState;
use crate::config::Grant;
use crate::identity::{Client, Unavailable, User};
use crate::obs::audit::Fields;
use crate::obs::metrics::SignIn;
use crate::second_factor::{self, Checked, Need};
use crate::store::{unix_now, AuthMethods, CodeBinding, Family, Kind, Session, Token, TokenKey};
use crate::web::request::Params;
use crate::web::response::{self, OwnBody};

use super::authorize::throttle_subjects;
use super::client_auth::{self, Caller};
use super::error::OAuthError;
use super::{grant_scope, narrow_scope, param, pkce, required_param, UserObject};

/// A successful token response.
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    /// OpenID Connect, for a grant whose scope has `openid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<UserObject<'a>>,
}

/// What a grant issued.
struct Issued {
    access: Token,
    session: Session,
    refresh: Option<Token>,
    id_token: Option<String>,
}

pub(super) async fn token(state: &AuthState, parts: &Parts, params: &Params) -> Response<OwnBody> {
    match grant(state, parts, params).await {
        Ok((issued, user)) => {
            let grant_type = params.one("grant_type").ok().flatten().unwrap_or("");
            state.audit.record(
                if grant_type == "refresh_token" {
                    "token.refreshed"
                } else {
                    "token.issued"
                },
                Fields {
                    subject: Some(issued.session.username()),
                    address: state.client_ip(&parts.extensions, &parts.headers),
                    client_id: issued.session.client_id(),
                    detail: Some(grant_type),
                    ..Fields::default()
                },
            );
            let body = TokenResponse {
                access_token: issued.access.as_str(),
                token_type: "Bearer",
                expires_in: issued.session.expires_in(),
                scope: issued.session.scope(),
                refresh_token: issued.refresh.as_ref().map(Token::as_str),
                id_token: issued.id_token.as_deref(),
                user: UserObject::of_session(user.as_deref(), &issued.session, user.is_some()),
            };
            let mut response = response::json(StatusCode::OK, &body);
            response
                .headers_mut()
                .insert(http::header::PRAGMA, http::HeaderValue::from_static("no-cache"));
            response
        }
        Err(err) => {
            tracing::info!(
                error = err.error(),
                description = err.description(),
                "token request refused"
            );
            err.into_response()
        }
    }
}

async fn grant(
    state: &AuthState,
    parts: &Parts,
    params: &Params,
) -> Result<(Issued, Option<Arc<User>>), OAuthError> {
    if let Some(repeated) = params.first_repeated(&[
        "grant_type",
        "code",
        "redirect_uri",
        "code_verifier",
        "username",
        "password",
        "refresh_token",
        "scope",
        "ttl",
    ]) {
        return Err(repeated.into());
    }
    let grant_type =
        param(params, "grant_type")?.ok_or_else(|| OAuthError::invalid_request("grant_type is required."))?;
    let grant = match grant_type {
        "authorization_code" => Grant::AuthorizationCode,
        "password" => Grant::Password,
        "client_credentials" => Grant::ClientCredentials,
        "refresh_token" => Grant::RefreshToken,
        other => {
            return Err(OAuthError::unsupported_grant_type(format!(
                "grant_type {other:?} is not supported; use authorization_code, password, client_credentials or refresh_token."
            )))
        }
    };
    let ttl = access_ttl(state, params)?;
    let caller = client_auth::authenticate(state, parts, params).await?;
    if grant == Grant::ClientCredentials {
        confidential(&caller)?;
    }
    if let Some(client) = caller.client() {
        if !client.may_use(grant) {
            return Err(OAuthError::unauthorized_client(format!(
                "This client may not use the {} grant.",
                grant.as_str()
            )));
        }
    }
    match grant {
        Grant::AuthorizationCode => authorization_code(state, &caller, params, ttl)
            .await
            .map(|i| (i, None)),
        Grant::Password => password(state, parts, &caller, params, ttl)
            .await
            .map(|(i, u)| (i, Some(u))),
        Grant::ClientCredentials => client_credentials(state, &caller, params, ttl)
            .await
            .map(|i| (i, None)),
        Grant::RefreshToken | Grant::Implicit => {
            refresh(state, &caller, params, ttl).await.map(|i| (i, None))
        }
    }
}

/// The access token lifetime: App Services' `ttl` (milliseconds; `0` means
/// the maximum), or `tokens.ttl_secs`.
fn access_ttl(state: &AuthState, params: &Params) -> Result<u64, OAuthError> {
    let max = state.config.tokens.max_ttl_secs;
    let Some(ttl) = param(params, "ttl")? else {
        return Ok(state.config.tokens.ttl_secs);
    };
    let millis: u64 = ttl
        .parse()
        .map_err(|_| OAuthError::invalid_request("ttl must be a whole number of milliseconds."))?;
    match millis {
        0 => Ok(max),
        ms if ms > max.saturating_mul(1000) => Err(OAuthError::invalid_request(format!(
            "ttl {ms} is above the maximum of {} ms ({} seconds).",
            max * 1000,
            max
        ))),
        ms => Ok(ms.div_ceil(1000).max(1)),
    }
}

/// Issues an access token (and a refresh token, and an ID token for a
/// scope with `openid`, echoing `nonce`) from `base`; a JWT for a client
/// that asks for them, for the `resource`s of `params`.
async fn issue(
    state: &AuthState,
    base: &Session,
    ttl: u64,
    with_refresh: bool,
    family: Option<Family>,
    nonce: Option<&str>,
    params: &Params,
) -> Result<Issued, OAuthError> {
    let family = family.or_else(|| with_refresh.then(Family::generate));
    let mut session = base
        .derive(Kind::Access, ttl)
        .with_idle(state.config.tokens.idle_secs, unix_now());
    if let Some(family) = family {
        session = session.in_family(family);
    }
    let client = session.client_id().and_then(|id| state.directory.client(id));
    let resources = super::access_jwt::resources(params, client.as_deref())?;
    let access = match client.as_deref().filter(|c| c.entry().jwt_access_tokens) {
        Some(client) => super::access_jwt::sign(state, &session, client, &resources)?,
        None => Token::generate(),
    };
    state.store.insert(access.key(), session.clone()).await?;
    state.metrics.tokens_issued.inc();
    let refresh = match (with_refresh, family) {
        (true, Some(family)) => {
            let refresh = Token::generate();
            let refresh_session = base
                .derive(Kind::Refresh, state.config.tokens.refresh_ttl_secs)
                .in_family(family);
            state.store.insert(refresh.key(), refresh_session).await?;
            Some(refresh)
        }
        _ => None,
    };
    let id_token = super::id_token::for_session(state, &session, Some(&access), nonce)?;
    Ok(Issued {
        access,
        session,
        refresh,
        id_token,
    })
}

/// The client, if it proved itself with its secret.
fn confidential(caller: &Caller) -> Result<&Arc<Client>, OAuthError> {
    match caller {
        Caller::Confidential(client) => Ok(client),
        _ => Err(OAuthError::invalid_client(
            "The client_credentials grant needs a confidential client's id and secret.",
        )),
    }
}

fn offers_refresh(caller: &Caller) -> bool {
    caller.client().is_some_and(|c| c.may_use(Grant::RefreshToken))
}

/// The client a grant is for: it must have identified itself.
fn identified<'a>(caller: &'a Caller, grant: &str) -> Result<&'a Arc<Client>, OAuthError> {
    caller.client().ok_or_else(|| {
        OAuthError::invalid_client(format!(
            "The {grant} grant needs client_id (and the secret of a confidential client)."
        ))
    })
}

async fn authorization_code(
    state: &AuthState,
    caller: &Caller,
    params: &Params,
    ttl: u64,
) -> Result<Issued, OAuthError> {
    let client = identified(caller, "authorization_code")?;
    let code = required_param(params, "code")?;
    let key = TokenKey::of(code);
    let invalid = || OAuthError::invalid_grant("The authorization code is invalid, expired or already used.");
    let Some(found) = state.store.get(&key).await? else {
        return Err(invalid());
    };
    if !matches!(found.kind(), Kind::Code(_) | Kind::SpentCode { .. }) {
        return Err(invalid());
    }
    if found.client_id() != Some(client.id()) {
        return Err(OAuthError::invalid_grant(
            "The authorization code was issued to another client.",
        ));
    }
    let family = found.family().unwrap_or_else(Family::generate);
    // Spend the code: of two concurrent redemptions, one sees it unspent.
    let spent = found.derive(Kind::SpentCode { reused: false }, found.expires_in().max(1));
    let previous = state.store.replace(key, spent.clone()).await?;
    let binding: Arc<CodeBinding> = match previous.as_ref().map(Session::kind) {
        Some(Kind::Code(binding)) => binding.clone(),
        Some(Kind::SpentCode { .. }) => {
            // RFC 6749 §4.1.2: a code used twice revokes what it issued.
            let reused = found.derive(Kind::SpentCode { reused: true }, found.expires_in().max(1));
            state.store.insert(key, reused).await?;
            let revoked = state.store.remove_family(family).await?;
            tracing::warn!(client_id = %client.id(), revoked, "authorization code replayed; its tokens are revoked");
            return Err(invalid());
        }
        _ => return Err(invalid()),
    };
    let redirect_uri = param(params, "redirect_uri")?;
    match redirect_uri {
        Some(uri) if uri != binding.redirect_uri => {
            return Err(OAuthError::invalid_grant(
                "redirect_uri differs from the authorization request's.",
            ))
        }
        None if binding.redirect_uri_given => {
            return Err(OAuthError::invalid_request(
                "redirect_uri is required: the authorization request named one.",
            ))
        }
        _ => {}
    }
    let verifier = param(params, "code_verifier")?;
    match (&binding.code_challenge, verifier) {
        (Some(challenge), Some(verifier)) => {
            let method = binding.code_challenge_method.as_deref().unwrap_or("plain");
            if !pkce::verify(challenge, method, verifier) {
                return Err(OAuthError::invalid_grant(
                    "The code_verifier does not match the code_challenge.",
                ));
            }
        }
        (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is required (PKCE).")),
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "A code_verifier was sent but the authorization request had no code_challenge.",
            ))
        }
        (None, None) => {}
    }
    let issued = issue(
        state,
        &found,
        ttl,
        offers_refresh(caller),
        Some(family),
        binding.nonce.as_deref(),
        params,
    )
    .await?;
    // A replay that raced this redemption marked the code; then nothing
    // issued from it may stand.
    if let Some(now) = state.store.get(&key).await? {
        if matches!(now.kind(), Kind::SpentCode { reused: true }) {
            state.store.remove_family(family).await?;
            return Err(invalid());
        }
    }
    Ok(issued)
}

/// The password grant of someone with a second factor: its code comes as
/// `otp` (a client of the old API, whose people have none, sends nothing
/// new). The methods of the grant, or what went wrong and its error.
async fn second_factor_of_grant(
    state: &AuthState,
    user: &User,
    otp: Option<&str>,
) -> Result<AuthMethods, (&'static str, OAuthError)> {
    let unavailable = || {
        (
            "second_factor_unavailable",
            OAuthError::temporarily_unavailable(
                "Second factors cannot be checked right now; try again in a moment.",
            ),
        )
    };
    let db = state.database.as_ref();
    match second_factor::need(&state.config, db, &user.identity, false).await {
        Ok(Need::Nothing) => return Ok(AuthMethods::PASSWORD),
        Ok(Need::Enrol) => {
            return Err((
                "second_factor_missing",
                OAuthError::invalid_grant(
                    "This person must set up a second factor first: sign in once in a browser.",
                ),
            ))
        }
        Ok(Need::Verify) => {}
        Err(_) => return Err(unavailable()),
    }
    let db = db.ok_or_else(unavailable)?;
    let has_app = matches!(
        second_factor::authenticator_of(db, user.username()).await,
        Ok(Some(_))
    );
    let Some(code) = otp.filter(|_| has_app) else {
        let why = match has_app {
            true => "This person signs in with a second factor: send its code as otp.",
            false => {
                "This person's second factor is a security key, which only a browser can use: sign in there."
            }
        };
        return Err(("second_factor_missing", OAuthError::invalid_grant(why)));
    };
    match second_factor::verify_code(&state.config, db, user.username(), code, unix_now()).await {
        Ok(Checked::Accepted(more)) => Ok(AuthMethods::PASSWORD.with(more)),
        Ok(Checked::Recovered) => Ok(AuthMethods::PASSWORD.with(AuthMethods::ONE_TIME_CODE)),
        Ok(Checked::Replayed) => Err((
            "second_factor_replayed",
            OAuthError::invalid_grant("That code was used already: send the next one."),
        )),
        Ok(Checked::Wrong) => Err((
            "second_factor_wrong",
            OAuthError::invalid_grant("The second factor's code is not right."),
        )),
        Err(_) => Err(unavailable()),
    }
}

async fn password(
    state: &AuthState,
    parts: &Parts,
    caller: &Caller,
    params: &Params,
    ttl: u64,
) -> Result<(Issued, Arc<User>), OAuthError> {
    let username = required_param(params, "username")?;
    let password = required_param(params, "password")?;
    let scope = grant_scope(caller.client().map(Arc::as_ref), param(params, "scope")?)?;
    let address = state.client_ip(&parts.extensions, &parts.headers);
    let subjects = throttle_subjects(username, address);
    let client_id = caller.client().map(|c| c.id());
    let attempt = |detail| Fields {
        subject: Some(username),
        address,
        client_id,
        detail,
        ..Fields::default()
    };
    if let Err(wait) = state.throttle.check(&state.config.auth.throttle, &subjects).await {
        state.sign_in_outcome(SignIn::Throttled, attempt(Some("throttled")));
        return Err(OAuthError::throttled(wait));
    }
    let verified = state
        .directory
        .verify_password(username, password)
        .await
        .map_err(|Unavailable| {
            state.sign_in_outcome(SignIn::Failed, attempt(Some("directory_unavailable")));
            OAuthError::temporarily_unavailable(
                "The directory that checks passwords cannot be reached; try again in a moment.",
            )
        })?;
    let Some(user) = verified else {
        tracing::info!(username, "password grant: wrong username or password");
        state.sign_in_outcome(SignIn::Failed, attempt(Some("wrong_password")));
        state
            .throttle
            .record_failure(&state.config.auth.throttle, &subjects)
            .await;
        return Err(OAuthError::invalid_grant("Username or password do not match."));
    };
    let methods = match second_factor_of_grant(state, &user, param(params, "otp")?).await {
        Ok(methods) => methods,
        Err((detail, err)) => {
            state.sign_in_outcome(SignIn::Failed, attempt(Some(detail)));
            if detail != "second_factor_unavailable" {
                state
                    .throttle
                    .record_failure(&state.config.auth.throttle, &subjects)
                    .await;
            }
            return Err(err);
        }
    };
    state.sign_in_outcome(
        SignIn::Succeeded,
        Fields {
            subject: Some(user.username()),
            provider: user.identity.provider(),
            ..attempt(None)
        },
    );
    let signed_in = state.access_session(&user, ttl).with_origin(state.origin_of(
        &parts.extensions,
        &parts.headers,
        methods,
    ));
    let base = match caller.client() {
        Some(client) => signed_in.with_grant(client.grant(scope.as_deref())),
        None => signed_in.with_scope_string(scope),
    };
    let issued = issue(state, &base, ttl, offers_refresh(caller), None, None, params).await?;
    Ok((issued, user))
}

async fn client_credentials(
    state: &AuthState,
    caller: &Caller,
    params: &Params,
    ttl: u64,
) -> Result<Issued, OAuthError> {
    let client = confidential(caller)?;
    let scope = grant_scope(Some(client), param(params, "scope")?)?;
    let base = Session::for_identity(client.identity.clone(), ttl).with_grant(client.grant(scope.as_deref()));
    issue(state, &base, ttl, false, None, None, params).await
}

async fn refresh(
    state: &AuthState,
    caller: &Caller,
    params: &Params,
    ttl: u64,
) -> Result<Issued, OAuthError> {
    let presented = required_param(params, "refresh_token")?;
    let key = TokenKey::of(presented);
    let invalid = || OAuthError::invalid_grant("The refresh token is invalid, expired or revoked.");
    let Some(found) = state.store.get(&key).await? else {
        return Err(invalid());
    };
    if !matches!(found.kind(), Kind::Refresh | Kind::RetiredRefresh) {
        return Err(invalid());
    }
    if found.client_id() != caller.client().map(|c| c.id()) {
        return Err(OAuthError::invalid_grant(
            "The refresh token was issued to another client.",
        ));
    }
    let family = found.family().ok_or_else(invalid)?;
    let retired = found.derive(Kind::RetiredRefresh, found.expires_in().max(1));
    match state
        .store
        .replace(key, retired)
        .await?
        .as_ref()
        .map(Session::kind)
    {
        Some(Kind::Refresh) => {}
        Some(Kind::RetiredRefresh) => {
            let revoked = state.store.remove_family(family).await?;
            tracing::warn!(client_id = ?found.client_id(), revoked, "retired refresh token replayed; its family is revoked");
            return Err(invalid());
        }
        _ => return Err(invalid()),
    }
    let scope = narrow_scope(found.scope(), param(params, "scope")?)?;
    let base = found.clone().with_scope_string(scope);
    issue(state, &base, ttl, true, Some(family), None, params).await
}
