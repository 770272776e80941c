//! What a sign-in that succeeded answers, as its target asked: a session
//! cookie for the gateway; a code, a token or an ID token at a client's
//! registered redirect URI (or an error there); `prompt=none`'s silent
//! sign-in from the browser's session here.

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use url::Url;

use crate::auth::credential::{self, SESSION_COOKIE};
use crate::auth::state::AuthState;
use crate::identity::{Client, User};
use crate::obs::audit::Fields;
use crate::obs::metrics::SignIn;
use crate::second_factor::Need;
use crate::store::{
    AuthMethods, CodeBinding, Family, Kind, Session, SessionOrigin, StoreError, Token, TokenKey,
};
use crate::web::paths::return_target;
use crate::web::request::cookie;
use crate::web::response::{self, OwnBody};

use super::{AuthorizeParams, ResponseType, Target, AUTHORIZE_PATH, CODE_TTL_SECS};

/// An error sent back to the client at its registered redirect URI: in the
/// query, or the fragment for the implicit grant (RFC 6749 §4.1.2.1,
/// §4.2.2.1).
pub(super) fn back_to_client(
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
pub(super) fn redirect_with(redirect_uri: &str, fragment: bool, pairs: &[(&str, &str)]) -> Response<OwnBody> {
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

/// Why the browser's session here cannot sign the person in to a client
/// without a page.
pub(super) enum NoSession {
    /// `max_age` is not a number.
    BadMaxAge,
    /// Not signed in, too long ago for `max_age`, or not yet allowed on.
    Required(&'static str),
}

/// The browser's gateway session, if it can sign the person in to a
/// client at once (single sign-on): present, recent enough for `max_age`,
/// and not waiting for a new password.
pub(super) async fn reusable_session(
    state: &AuthState,
    req: &http::request::Parts,
    asked: &AuthorizeParams<'_>,
) -> Result<Session, NoSession> {
    let max_age = match asked.max_age.map(str::parse::<u64>) {
        Some(Ok(max_age)) => Some(max_age),
        Some(Err(_)) => return Err(NoSession::BadMaxAge),
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
        return Err(NoSession::Required("The person is not signed in here."));
    };
    let signed_in_at = session.origin().map_or(session.issued_at(), |o| o.signed_in_at);
    if max_age.is_some_and(|max| crate::store::unix_now().saturating_sub(signed_in_at) > max) {
        return Err(NoSession::Required(
            "The person signed in longer ago than max_age.",
        ));
    }
    if session.identity().password_change_required() {
        return Err(NoSession::Required(
            "The person must choose a new password first.",
        ));
    }
    Ok(session)
}

/// `prompt=none`: no page. The browser's session here signs the person
/// in to the client at once, if it is recent enough for `max_age`; else
/// the client is told `login_required` at its redirect URI.
pub(super) async fn silently(
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
    match reusable_session(state, req, asked).await {
        Ok(session) if !session.methods().is_multi_factor() && needs_more(state, &session, asked).await => {
            back_to_client(
                redirect_uri,
                fragment,
                "interaction_required",
                "The person must give a second factor first.",
                asked.state,
            )
        }
        Ok(session) => from_session(state, req, target, asked, session).await,
        Err(NoSession::BadMaxAge) => back_to_client(
            redirect_uri,
            fragment,
            "invalid_request",
            "max_age is a number of seconds.",
            asked.state,
        ),
        Err(NoSession::Required(why)) => {
            back_to_client(redirect_uri, fragment, "login_required", why, asked.state)
        }
    }
}

/// Whether a session signed in with one factor needs another before it
/// signs in to a client (a database that cannot be asked: yes).
async fn needs_more(state: &AuthState, session: &Session, asked: &AuthorizeParams<'_>) -> bool {
    !matches!(
        crate::second_factor::need(
            &state.config,
            state.database.as_ref(),
            session.identity(),
            asked.wants_mfa()
        )
        .await,
        Ok(Need::Nothing)
    )
}

/// Signs the person of `session` (a gateway session) in to the client of
/// `target` with no page; the new grant keeps when they really signed in.
pub(super) async fn from_session(
    state: &AuthState,
    req: &http::request::Parts,
    target: Target,
    asked: &AuthorizeParams<'_>,
    session: Session,
) -> Response<OwnBody> {
    let signed_in_at = session.origin().map_or(session.issued_at(), |o| o.signed_in_at);
    let user = user_of(state, session.identity().clone());
    let address = state.client_ip(&req.extensions, &req.headers);
    complete(
        state,
        &req.headers,
        address,
        target,
        asked,
        &user,
        SignedIn {
            methods: session.methods(),
            at: Some(signed_in_at),
        },
    )
    .await
}

/// The user a session's `identity` is, with the directory's entry for
/// them (where it has one).
pub(in crate::oauth) fn user_of(state: &AuthState, identity: Arc<crate::store::Identity>) -> User {
    let entry = state
        .directory
        .user(identity.username())
        .and_then(|u| u.entry().cloned());
    User::from_entry_with(entry, identity)
}

/// How the person signed in: the methods given so far, and when (`None`:
/// now; a sign-in made of an earlier one keeps the first one's time).
#[derive(Clone, Copy, Debug)]
pub(in crate::oauth) struct SignedIn {
    pub(in crate::oauth) methods: AuthMethods,
    pub(in crate::oauth) at: Option<u64>,
}

/// Answers a sign-in whose first factor succeeded: on to the second if
/// the person needs one ([`crate::second_factor::need`]); else as its
/// target asked: a session cookie and back to `rd`, or a token or code
/// for the client at its redirect URI.
pub(in crate::oauth) async fn complete(
    state: &AuthState,
    headers: &HeaderMap,
    address: Option<std::net::IpAddr>,
    target: Target,
    asked: &AuthorizeParams<'_>,
    user: &User,
    signed_in: SignedIn,
) -> Response<OwnBody> {
    if !signed_in.methods.is_multi_factor() {
        let need = crate::second_factor::need(
            &state.config,
            state.database.as_ref(),
            &user.identity,
            asked.wants_mfa(),
        )
        .await;
        match need {
            Ok(Need::Nothing) => {}
            Ok(need) => {
                return crate::oauth::second_factor::ask(
                    state, headers, address, asked, user, signed_in, need,
                )
                .await
            }
            Err(err) => {
                tracing::error!(error = %err, "could not read the person's second factors");
                return state.error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Sign-in is unavailable",
                    "Your second factor cannot be checked right now (the database cannot be reached). Try again in a moment.",
                    "temporarily_unavailable",
                );
            }
        }
    }
    let origin = SessionOrigin::signed_in(
        address,
        headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()),
        signed_in.at.unwrap_or_else(crate::store::unix_now),
        signed_in.methods,
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
                _ => match crate::oauth::id_token::for_session(
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
pub(in crate::oauth) async fn signed_in_to_gateway(
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
pub(in crate::oauth) fn to_sign_in() -> Response<OwnBody> {
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
