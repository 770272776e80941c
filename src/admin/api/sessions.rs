//! The admin API's sessions: who is signed in, from where, with what, and
//! ending one of them. Read from the token store, never the database.

use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::state::AuthState;
use crate::store::{Session, TokenKey};

use super::{json, not_found, record, Admin, Answer, Problem};

/// A live session.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionOut {
    /// The hash of its token (never the token): names it to end it.
    id: String,
    username: String,
    /// The outside provider it was signed in through, if any.
    provider: Option<String>,
    /// The OAuth client it was issued to, if any.
    client_id: Option<String>,
    /// The address it was signed in from.
    address: Option<String>,
    user_agent: Option<String>,
    /// Seconds since the epoch.
    started_at: u64,
    /// To the minute (to the second with an idle timeout).
    last_seen_at: u64,
    expires_at: u64,
    /// How it was signed in: `password` or `mfa`, and the methods (RFC
    /// 8176: `pwd`, `otp`, `mfa`).
    acr: &'static str,
    amr: Vec<&'static str>,
}

impl SessionOut {
    pub(crate) fn of(key: &TokenKey, session: &Session) -> Self {
        let identity = session.identity();
        let origin = session.origin();
        Self {
            id: key.to_hex(),
            username: identity.username().to_owned(),
            provider: identity.provider().map(str::to_owned),
            client_id: session.client_id().map(str::to_owned),
            address: origin.and_then(|o| o.address).map(|a| a.to_string()),
            user_agent: origin.and_then(|o| o.user_agent.as_deref()).map(str::to_owned),
            started_at: session.issued_at(),
            last_seen_at: session.last_seen().max(session.issued_at()),
            expires_at: session.expires_at(),
            acr: session.methods().level(),
            amr: session.methods().names(),
        }
    }
}

/// Live sessions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionList {
    sessions: Vec<SessionOut>,
}

/// `GET /sessions`'s query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionQuery {
    /// Only this person's.
    pub(crate) user: Option<String>,
    #[param(minimum = 1, maximum = 10000)]
    pub(crate) limit: Option<usize>,
}

fn store_down(err: crate::store::StoreError) -> Problem {
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
}

#[utoipa::path(get, path = "/management/admin/api/v1/sessions", params(SessionQuery),
    responses((status = 200, body = SessionList), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list_sessions(state: &AuthState, query: SessionQuery) -> Answer {
    let limit = query.limit.unwrap_or(500);
    if !(1..=10_000).contains(&limit) {
        return Err(Problem::new(StatusCode::BAD_REQUEST, "limit is 1 to 10000"));
    }
    let mut found = match query.user.as_deref().filter(|u| !u.is_empty()) {
        Some(user) => state.store.sessions_of(user).await,
        None => state.store.live_sessions(limit).await,
    }
    .map_err(store_down)?;
    found.sort_by_key(|(_, s)| std::cmp::Reverse(s.issued_at()));
    found.truncate(limit);
    let sessions = found.iter().map(|(key, s)| SessionOut::of(key, s)).collect();
    json(StatusCode::OK, SessionList { sessions })
}

#[utoipa::path(delete, path = "/management/admin/api/v1/sessions/{id}", params(("id" = String, Path, description = "the session's id, as listed")),
    responses((status = 204), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn end_session(state: &AuthState, admin: &Admin, id: &str) -> Answer {
    let key = TokenKey::from_hex(id).ok_or_else(|| not_found("such session"))?;
    if key == admin.session {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "this is the session making the call: sign out (or revoke its token) instead",
        ));
    }
    let session = state
        .store
        .get(&key)
        .await
        .map_err(store_down)?
        .filter(Session::is_access)
        .ok_or_else(|| not_found("such session"))?;
    state.store.remove(&key).await.map_err(store_down)?;
    crate::auth::backchannel::sessions_ended(state, std::slice::from_ref(&session));
    record(state, admin, "admin.session_ended", session.username());
    Ok((StatusCode::NO_CONTENT, None))
}
