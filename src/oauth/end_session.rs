//! `GET|POST /management/end_session`: OpenID Connect RP-Initiated Logout
//! 1.0, for the gateway's own clients. An app sends the browser here with
//! its `id_token_hint`; the sign-in that ID token is of ends (every token
//! of its grant), the browser's own session at the gateway too, and the
//! browser goes back to a `post_logout_redirect_uri` the client
//! registered (exactly), with `state`, or to the signed-out page. Never to
//! an address nobody registered: a hint that is not this gateway's, a
//! client that differs from the hint's, an unregistered address — each is
//! an error page.

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};

use crate::auth::credential::{self, SESSION_COOKIE};
use crate::auth::state::AuthState;
use crate::obs::audit::Fields;
use crate::store::{Family, TokenKey};
use crate::web::request::{cookie, Params};
use crate::web::response::{self, OwnBody};

/// The endpoint.
pub(super) const END_SESSION_PATH: &str = "/management/end_session";

fn refused(state: &AuthState, message: &str) -> Response<OwnBody> {
    state.error_page(
        StatusCode::BAD_REQUEST,
        "This sign-out cannot be done",
        message,
        "invalid_request",
    )
}

/// What the `id_token_hint` says: whose sign-in (`sub`, `sid`), at which
/// client.
struct Hint {
    client_id: String,
    sub: String,
    sid: Option<String>,
}

fn hint_of(state: &AuthState, token: &str) -> Result<Hint, &'static str> {
    let claims = state
        .keys
        .verify_own(token)
        .map_err(|_| "The id_token_hint is not an ID token of this gateway.")?;
    if claims["iss"].as_str() != Some(state.issuer().as_str()) {
        return Err("The id_token_hint was issued by another issuer.");
    }
    let client_id = match &claims["aud"] {
        serde_json::Value::String(aud) => aud.clone(),
        serde_json::Value::Array(auds) if auds.len() == 1 => auds[0].as_str().unwrap_or_default().to_owned(),
        _ => return Err("The id_token_hint has no single audience."),
    };
    Ok(Hint {
        client_id,
        sub: claims["sub"].as_str().unwrap_or_default().to_owned(),
        sid: claims["sid"].as_str().map(str::to_owned),
    })
}

pub(super) async fn end_session(state: &AuthState, parts: &Parts, params: &Params) -> Response<OwnBody> {
    let get = |name| params.one(name).ok().flatten().filter(|v: &&str| !v.is_empty());
    let hint = match get("id_token_hint").map(|token| hint_of(state, token)) {
        Some(Ok(hint)) => Some(hint),
        Some(Err(why)) => return refused(state, why),
        None => None,
    };
    let client_id = match (get("client_id"), &hint) {
        (Some(asked), Some(hint)) if asked != hint.client_id => {
            return refused(state, "client_id differs from the id_token_hint's audience.")
        }
        (Some(asked), _) => Some(asked.to_owned()),
        (None, hint) => hint.as_ref().map(|h| h.client_id.clone()),
    };
    let client = client_id.as_deref().map(|id| state.directory.client(id));
    let back_to = match (get("post_logout_redirect_uri"), &client) {
        (None, _) => None,
        (Some(_), None) => {
            return refused(
                state,
                "A post_logout_redirect_uri needs the id_token_hint (or client_id) of the application that registered it.",
            )
        }
        (Some(_), Some(None)) => return refused(state, "The application is not registered with this gateway."),
        (Some(uri), Some(Some(client))) => match client.entry().post_logout_redirect_uris.iter().any(|r| r == uri) {
            true => Some(uri),
            false => {
                return refused(
                    state,
                    "The address this application asked to return to after signing out is not one it registered.",
                )
            }
        },
    };
    let address = state.client_ip(&parts.extensions, &parts.headers);
    let signed_out = |who: &str| {
        state.audit.record(
            "sign_out.rp_initiated",
            Fields {
                subject: Some(who),
                address,
                client_id: client_id.as_deref(),
                ..Fields::default()
            },
        );
    };
    // The sign-in the hint names: every token of its grant, by the
    // family's index (no scan of the store); the client is told by
    // back-channel logout too (its other servers or tabs may hold it).
    if let Some(hint) = &hint {
        if let Some(family) = hint.sid.as_deref().and_then(family_of) {
            if state.store.remove_family(family).await.is_ok() {
                signed_out(&hint.sub);
                if let Some(Some(client)) = &client {
                    crate::auth::backchannel::sign_in_ended(
                        state,
                        client,
                        hint.sub.clone(),
                        hint.sid.clone(),
                        &hint.sub,
                    );
                }
            }
        }
    }
    // And the browser's own session here.
    if let Some(token) = cookie(&parts.headers, SESSION_COOKIE) {
        let key = TokenKey::of(token);
        if let Ok(Some(session)) = state.store.get(&key).await {
            if state.store.remove(&key).await.is_ok() {
                signed_out(session.username());
                crate::auth::backchannel::sessions_ended(state, std::slice::from_ref(&session));
            }
        }
    }
    let mut answer = match back_to {
        Some(uri) => {
            let mut url = url::Url::parse(uri).expect("registered URIs are checked");
            if let Some(state_param) = get("state") {
                url.query_pairs_mut().append_pair("state", state_param);
            }
            response::redirect(StatusCode::SEE_OTHER, url.as_str())
                .expect("a serialized URL is a valid Location")
        }
        None => super::logout::signed_out(state),
    };
    let clear = credential::clear_session_cookie(credential::CookieScope::of(&state.config));
    if let Ok(value) = HeaderValue::try_from(clear) {
        answer.headers_mut().insert(header::SET_COOKIE, value);
    }
    answer
}

/// The grant family a `sid` names.
fn family_of(sid: &str) -> Option<Family> {
    u64::from_str_radix(sid, 16)
        .ok()
        .and_then(std::num::NonZeroU64::new)
        .map(Family)
}
