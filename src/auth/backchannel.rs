//! OpenID Connect Back-Channel Logout 1.0, to the gateway's own clients:
//! when sessions end here (an admin ends them, the person is disabled or
//! deleted, a provider logs them out, they sign out at a client), every
//! client with a `backchannel_logout_uri` that held one of them is sent a
//! signed logout token naming the person (`sub`) and the sign-in (`sid`),
//! retried with backoff, and the outcome is in the audit log.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Serialize;

use crate::identity::{Client, ProviderHttp};
use crate::obs::audit::{Audit, Fields};
use crate::store::{unix_now, Session, StoreError};

use super::state::AuthState;

/// How long a logout token is accepted for.
const TOKEN_SECS: u64 = 120;
/// The waits before the second, third and fourth tries.
const RETRIES: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(4),
    Duration::from_secs(16),
];
/// Each try's time limit.
const TIMEOUT: Duration = Duration::from_secs(5);

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

#[derive(Serialize)]
struct LogoutToken<'a> {
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
    sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    events: serde_json::Value,
}

/// The client HTTP of every notice (made at first use).
fn http() -> Option<&'static ProviderHttp> {
    static HTTP: OnceLock<Option<ProviderHttp>> = OnceLock::new();
    HTTP.get_or_init(|| match ProviderHttp::new(TIMEOUT, None) {
        Ok(http) => Some(http),
        Err(err) => {
            tracing::error!(error = %err, "no HTTP client for back-channel logout");
            None
        }
    })
    .as_ref()
}

/// Ends every session of `username` (as the store's `remove_user`) and
/// tells the clients that held one; answers how many ended.
pub(crate) async fn end_sessions_of(state: &AuthState, username: &str) -> Result<usize, StoreError> {
    let held = state.store.sessions_of(username).await.unwrap_or_default();
    let ended = state.store.remove_user(username).await?;
    let sessions: Vec<Session> = held.into_iter().map(|(_, s)| s).collect();
    sessions_ended(state, &sessions);
    Ok(ended)
}

/// Tells every client with a back-channel logout URI that held one of
/// `ended` that its session ended (each sign-in once), in the background.
pub(crate) fn sessions_ended(state: &AuthState, ended: &[Session]) {
    let mut told = HashSet::new();
    for session in ended {
        let Some(client_id) = session.client_id() else {
            continue;
        };
        if client_id == session.username() {
            continue; // a client's own token: no person signed out
        }
        let Some(client) = state.directory.client(client_id) else {
            continue;
        };
        let sid = session.sid();
        if !told.insert((client_id.to_owned(), sid.clone(), session.username().to_owned())) {
            continue;
        }
        let sub = state.subject_for(Some(&client), session.username());
        sign_in_ended(state, &client, sub, sid, session.username());
    }
}

/// Tells `client` (if it has a back-channel logout URI) that the sign-in
/// `sid` of the person it knows as `sub` (`who`, for the audit log)
/// ended, in the background.
pub(crate) fn sign_in_ended(state: &AuthState, client: &Client, sub: String, sid: Option<String>, who: &str) {
    let Some(uri) = client.entry().backchannel_logout_uri.clone() else {
        return;
    };
    let now = unix_now();
    let issuer = state.issuer();
    let claims = LogoutToken {
        iss: &issuer,
        aud: client.id(),
        iat: now,
        exp: now + TOKEN_SECS,
        jti: crate::db::new_id(),
        sub,
        sid,
        events: serde_json::json!({ EVENT: {} }),
    };
    let token = match state
        .keys
        .sign(client.entry().id_token_alg, "logout+jwt", &claims)
    {
        Ok(token) => token,
        Err(err) => {
            tracing::error!(error = %err, client_id = client.id(), "could not sign a logout token");
            return;
        }
    };
    let audit = state.audit.clone();
    let (client_id, who) = (client.id().to_owned(), who.to_owned());
    tokio::spawn(async move { deliver(audit, uri, token, client_id, who).await });
}

/// Posts `token` to `uri` until the client answers 2xx, or the tries run
/// out; records which in the audit log.
async fn deliver(audit: Arc<Audit>, uri: String, token: String, client_id: String, username: String) {
    let Some(http) = http() else {
        return;
    };
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("logout_token", &token)
        .finish();
    let mut outcome = String::new();
    for wait in std::iter::once(Duration::ZERO).chain(RETRIES) {
        tokio::time::sleep(wait).await;
        let request = http::Request::post(&uri)
            .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(http::header::CACHE_CONTROL, "no-store")
            .body(body.clone().into_bytes());
        let Ok(request) = request else {
            outcome = "the URI is not one a request can be made to".into();
            break;
        };
        match http.send(request).await {
            Ok(answer) if answer.status().is_success() => {
                audit.record(
                    "logout.backchannel_sent",
                    Fields {
                        subject: Some(&username),
                        client_id: Some(&client_id),
                        ..Fields::default()
                    },
                );
                return;
            }
            Ok(answer) => outcome = format!("answered {}", answer.status()),
            Err(err) => outcome = err.to_string(),
        }
        tracing::info!(client_id, outcome, "back-channel logout not delivered yet");
    }
    tracing::warn!(client_id, outcome, "back-channel logout not delivered");
    audit.record(
        "logout.backchannel_failed",
        Fields {
            subject: Some(&username),
            client_id: Some(&client_id),
            detail: Some(&outcome),
            ..Fields::default()
        },
    );
}
