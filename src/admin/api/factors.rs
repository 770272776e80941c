//! The admin API's second factors: a person's authenticators and recovery
//! codes (never their secrets), removing a lost one, and requiring a
//! database user to enrol at their next sign-in. Every change is in the
//! audit log.

use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::state::AuthState;

use super::{json, no_database, not_found, record, Admin, Answer, Problem};

/// One of a person's second factors.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FactorOut {
    id: String,
    /// `totp`: an authenticator app; `webauthn`: a security key or passkey.
    kind: String,
    name: String,
    /// Its first code was given (an unconfirmed one is an enrolment under
    /// way, never asked for).
    confirmed: bool,
    /// Milliseconds since the epoch.
    created_at: i64,
    last_used_at: Option<i64>,
}

/// A person's second factors.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FactorList {
    factors: Vec<FactorOut>,
    /// Recovery codes not used yet.
    recovery_codes_left: i64,
    /// An admin requires this database user to enrol at the next sign-in.
    required: bool,
}

/// `PUT …/second-factor-required`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Required {
    pub(crate) required: bool,
}

#[utoipa::path(get, path = "/management/admin/api/v1/users/{username}/factors", params(("username" = String, Path)),
    responses((status = 200, body = FactorList), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list_factors(state: &AuthState, username: &str) -> Answer {
    let db = state.database.as_ref().ok_or_else(no_database)?;
    let factors = db
        .factors(username)
        .await?
        .into_iter()
        .map(|f| FactorOut {
            id: f.id,
            kind: f.kind,
            name: f.name,
            confirmed: f.confirmed,
            created_at: f.created_at,
            last_used_at: f.last_used_at,
        })
        .collect();
    json(
        StatusCode::OK,
        FactorList {
            factors,
            recovery_codes_left: db.recovery_codes_left(username).await?,
            required: db.second_factor_required(username).await?,
        },
    )
}

#[utoipa::path(delete, path = "/management/admin/api/v1/users/{username}/factors/{id}", params(("username" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn remove_factor(state: &AuthState, admin: &Admin, username: &str, id: &str) -> Answer {
    let db = state.database.as_ref().ok_or_else(no_database)?;
    if !db.remove_factor(username, id).await? {
        return Err(not_found("such factor"));
    }
    record(state, admin, "admin.second_factor_removed", username);
    Ok((StatusCode::NO_CONTENT, None))
}

#[utoipa::path(put, path = "/management/admin/api/v1/users/{username}/second-factor-required", params(("username" = String, Path)), request_body = Required,
    responses((status = 204), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn require_factor(
    state: &AuthState,
    admin: &Admin,
    username: &str,
    body: Required,
) -> Answer {
    let db = state.database.as_ref().ok_or_else(no_database)?;
    if !db.require_second_factor(username, body.required).await? {
        return Err(not_found(
            "such user in the database (require it of config users with second_factor_groups)",
        ));
    }
    let event = match body.required {
        true => "admin.second_factor_required",
        false => "admin.second_factor_not_required",
    };
    record(state, admin, event, username);
    Ok((StatusCode::NO_CONTENT, None))
}
