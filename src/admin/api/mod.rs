//! The admin API's operations, each described for the OpenAPI document
//! (`/management/admin/api/openapi.json`, generated from these
//! annotations with utoipa, so it says what the code does).

use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::auth::state::AuthState;
use crate::db::{AuditEvent, AuditFilter, DbUser, NewUser};
use crate::obs::audit::Fields;

pub(super) use super::problem::Problem;
pub(super) use super::Admin;

mod clients;
mod factors;
mod sessions;

pub(crate) use self::factors::Required;
pub(super) use self::factors::{list_factors, remove_factor, require_factor};

pub(crate) use self::sessions::SessionQuery;
pub(super) use self::sessions::{end_session, list_sessions};

use self::clients::ClientRules;
pub(super) use self::clients::{
    add_client, change_client, delete_client, get_client, list_clients, rotate_secret,
};
pub(crate) use self::clients::{ClientChange, NewClientBody};

/// What an operation answers: a status and a JSON body (none for `204`).
pub(super) type Answer = Result<(StatusCode, Option<serde_json::Value>), Problem>;

/// A user of the database.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct User {
    username: String,
    /// `database` (changed here) or `config` (config.toml's, read-only:
    /// only its authgate groups may be changed here).
    source: &'static str,
    email: Option<String>,
    name: Option<String>,
    disabled: bool,
    /// The password must be changed at the next sign-in.
    must_change_password: bool,
    /// Milliseconds since the epoch.
    created_at: i64,
    last_sign_in_at: Option<i64>,
    groups: Vec<String>,
}

impl User {
    fn of(user: DbUser, groups: Vec<String>) -> Self {
        Self {
            source: "database",
            username: user.username,
            email: user.email,
            name: user.name,
            disabled: user.disabled,
            must_change_password: user.must_change_password,
            created_at: user.created_at,
            last_sign_in_at: user.last_sign_in_at,
            groups,
        }
    }
}

/// A user of config.toml: listed, changed only there.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConfigUser {
    username: String,
    email: Option<String>,
    /// `config`.
    source: &'static str,
    admin: bool,
    /// Its groups of config.toml and of the database.
    groups: Vec<String>,
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserPage {
    users: Vec<User>,
    /// The users of config.toml whose name or email starts with the search
    /// (on the first page only: the pages are the database's).
    config_users: Vec<ConfigUser>,
    offset: i64,
    limit: i64,
}

/// `GET /users`'s query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserQuery {
    /// The start of a name or an email address.
    pub(super) search: Option<String>,
    #[param(minimum = 0)]
    pub(super) offset: Option<i64>,
    #[param(minimum = 1, maximum = 1000)]
    pub(super) limit: Option<i64>,
}

/// A new user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUserBody {
    /// No `:` (which names someone of a provider), comma, `/` or control
    /// character.
    #[schema(min_length = 1, max_length = 256, pattern = r"^[^:,/\x00-\x1f\x7f-\x9f]+$")]
    pub(super) username: String,
    #[schema(
        max_length = 320,
        pattern = r"^[^\s@\x00-\x1f\x7f-\x9f]+@[^\s@\x00-\x1f\x7f-\x9f]+$"
    )]
    pub(super) email: Option<String>,
    pub(super) name: Option<String>,
    /// Without one, the user cannot sign in until a password is set (by
    /// an admin, or by the user through an invitation link).
    #[schema(min_length = 8, max_length = 1024)]
    pub(super) password: Option<String>,
    /// The password must be changed at the next sign-in.
    #[serde(default)]
    pub(super) temporary: bool,
}

/// What changes about a user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserChange {
    pub(super) disabled: Option<bool>,
    #[schema(min_length = 8, max_length = 1024)]
    pub(super) password: Option<String>,
    #[serde(default)]
    pub(super) temporary: bool,
}

/// A group and how many members it has.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Group {
    name: String,
    members: i64,
}

/// A new group.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewGroupBody {
    #[schema(min_length = 1, max_length = 256, pattern = r"^[^:,/\x00-\x1f\x7f-\x9f]+$")]
    pub(super) name: String,
    pub(super) description: Option<String>,
}

/// How many sessions ended.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Revoked {
    revoked: usize,
}

/// `GET /audit`'s query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// Whom the events are about.
    pub(super) user: Option<String>,
    /// A prefix of the event's kind (`sign_in`, `admin.`).
    pub(super) event: Option<String>,
    /// At or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub(super) after: Option<String>,
    /// Before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub(super) before: Option<String>,
    #[param(minimum = 1, maximum = 10000)]
    pub(super) limit: Option<i64>,
}

/// Audit events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditPage {
    events: Vec<AuditEventOut>,
}

/// One audit event.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditEventOut {
    id: String,
    at: i64,
    event: String,
    actor: Option<String>,
    subject: Option<String>,
    address: Option<String>,
    provider: Option<String>,
    client_id: Option<String>,
    detail: Option<String>,
}

impl From<AuditEvent> for AuditEventOut {
    fn from(e: AuditEvent) -> Self {
        Self {
            id: e.id,
            at: e.at,
            event: e.event,
            actor: e.actor,
            subject: e.subject,
            address: e.address,
            provider: e.provider,
            client_id: e.client_id,
            detail: e.detail,
        }
    }
}

fn json(status: StatusCode, body: impl Serialize) -> Answer {
    Ok((status, Some(serde_json::to_value(body).unwrap_or_default())))
}

fn not_found(what: &str) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, format!("there is no {what}"))
}

fn bad(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
}

/// A name a user or group may have.
fn check_name(name: &str) -> Result<(), Problem> {
    if name.is_empty()
        || name.chars().count() > 256
        || name.chars().any(char::is_control)
        || name.contains([':', ',', '/'])
    {
        return Err(bad(format!(
            "{name:?}: a name is 1 to 256 characters, with no control characters and no :, comma or /"
        )));
    }
    Ok(())
}

fn check_email(email: Option<&str>) -> Result<(), Problem> {
    match email {
        Some(e)
            if !e.contains('@')
                || e.chars().count() > 320
                || e.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Err(bad(format!("{e:?} is not an email address")))
        }
        _ => Ok(()),
    }
}

fn check_password(password: &str) -> Result<(), Problem> {
    if password.chars().count() < 8 || password.len() > 1024 {
        return Err(bad("a password is 8 characters or more (and at most 1024 bytes)"));
    }
    Ok(())
}

fn record(state: &AuthState, admin: &Admin, event: &str, subject: &str) {
    state.audit.record(
        event,
        Fields {
            actor: Some(&admin.name),
            subject: Some(subject),
            address: admin.address,
            ..Fields::default()
        },
    );
}

#[utoipa::path(get, path = "/management/admin/api/v1/users", params(UserQuery),
    responses((status = 200, body = UserPage), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn list_users(state: &AuthState, query: UserQuery) -> Answer {
    let db = state.database.as_ref().ok_or_else(no_database)?;
    let offset = query.offset.unwrap_or(0);
    let limit = query.limit.unwrap_or(50);
    if offset < 0 || !(1..=1000).contains(&limit) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "offset is 0 or more, limit 1 to 1000",
        ));
    }
    let found = db.users(query.search.as_deref(), offset, limit).await?;
    let names: Vec<&str> = found.iter().map(|u| u.username.as_str()).collect();
    let mut groups = db.groups_of_each(&names).await?;
    let users = found
        .into_iter()
        .map(|user| {
            let of = groups.remove(&user.username).unwrap_or_default();
            User::of(user, of)
        })
        .collect();
    let prefix = query.search.as_deref().unwrap_or("");
    let mut config_users = Vec::new();
    if offset == 0 {
        let listed: Vec<&crate::config::UserConfig> = state
            .config
            .users
            .iter()
            .filter(|u| {
                u.username.starts_with(prefix) || u.email.as_deref().is_some_and(|e| e.starts_with(prefix))
            })
            .collect();
        let names: Vec<&str> = listed.iter().map(|u| u.username.as_str()).collect();
        let mut in_database = db.groups_of_each(&names).await?;
        for user in listed {
            let mut groups = user.groups.clone();
            groups.extend(in_database.remove(&user.username).unwrap_or_default());
            groups.sort();
            groups.dedup();
            config_users.push(ConfigUser {
                username: user.username.clone(),
                email: user.email.clone(),
                source: "config",
                admin: user.admin,
                groups,
            });
        }
    }
    json(
        StatusCode::OK,
        UserPage {
            users,
            config_users,
            offset,
            limit,
        },
    )
}

#[utoipa::path(post, path = "/management/admin/api/v1/users", request_body = NewUserBody,
    responses((status = 201, body = User), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn add_user(state: &AuthState, admin: &Admin, body: NewUserBody) -> Answer {
    let db = state.database.as_ref().ok_or_else(no_database)?;
    check_name(&body.username)?;
    check_email(body.email.as_deref())?;
    if let Some(password) = &body.password {
        check_password(password)?;
    }
    // A name config.toml has signs in as that entry: a database user of
    // the same name could never sign in, and changing it would end the
    // config user's sessions.
    if state.config.users.iter().any(|u| u.username == body.username) {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            format!("a user named {:?} is in config.toml", body.username),
        ));
    }
    let hash = body.password.as_deref().map(crate::password::hash_password);
    db.add_user(&NewUser {
        username: &body.username,
        email: body.email.as_deref(),
        name: body.name.as_deref(),
        password_hash: hash.as_deref(),
        must_change_password: body.temporary,
    })
    .await?;
    record(state, admin, "admin.user_added", &body.username);
    let user = db
        .user(&body.username)
        .await?
        .ok_or_else(|| not_found("such user"))?;
    json(StatusCode::CREATED, User::of(user, Vec::new()))
}

#[utoipa::path(get, path = "/management/admin/api/v1/users/{username}", params(("username" = String, Path)),
    responses((status = 200, body = User), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn get_user(state: &AuthState, username: &str) -> Answer {
    let db = state.database.as_ref().ok_or_else(no_database)?;
    let user = db.user(username).await?.ok_or_else(|| not_found("such user"))?;
    let groups = db.groups_of(username).await?;
    json(StatusCode::OK, User::of(user, groups))
}

#[utoipa::path(patch, path = "/management/admin/api/v1/users/{username}", params(("username" = String, Path)), request_body = UserChange,
    responses((status = 200, body = User), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn change_user(
    state: &AuthState,
    admin: &Admin,
    username: &str,
    change: UserChange,
) -> Answer {
    let db = state.database.as_ref().ok_or_else(no_database)?;
    if let Some(password) = &change.password {
        check_password(password)?;
    }
    if db.user(username).await?.is_none() {
        return Err(not_found("such user"));
    }
    if let Some(disabled) = change.disabled {
        db.set_disabled(username, disabled).await?;
        record(
            state,
            admin,
            if disabled {
                "admin.user_disabled"
            } else {
                "admin.user_enabled"
            },
            username,
        );
    }
    if let Some(password) = &change.password {
        db.set_password(
            username,
            &crate::password::hash_password(password),
            change.temporary,
            true,
        )
        .await?;
        record(state, admin, "admin.password_set", username);
    }
    get_user(state, username).await
}

#[utoipa::path(delete, path = "/management/admin/api/v1/users/{username}", params(("username" = String, Path)),
    responses((status = 204), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn delete_user(state: &AuthState, admin: &Admin, username: &str) -> Answer {
    let db = state.database.as_ref().ok_or_else(no_database)?;
    if !db.delete_user(username).await? {
        return Err(not_found("such user"));
    }
    record(state, admin, "admin.user_deleted", username);
    Ok((StatusCode::NO_CONTENT, None))
}

#[utoipa::path(post, path = "/management/admin/api/v1/users/{username}/revoke-sessions", params(("username" = String, Path)),
    responses((status = 200, body = Revoked), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn revoke_sessions(state: &AuthState, admin: &Admin, username: &str) -> Answer {
    let unavailable =
        |e: crate::store::StoreError| Problem::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    let revoked = if username == admin.name {
        // The caller's own: all but the session making the call.
        let mut ended = Vec::new();
        for (key, session) in state.store.sessions_of(username).await.map_err(unavailable)? {
            if key != admin.session && state.store.remove(&key).await.map_err(unavailable)? {
                ended.push(session);
            }
        }
        crate::auth::backchannel::sessions_ended(state, &ended);
        ended.len()
    } else {
        crate::auth::backchannel::end_sessions_of(state, username)
            .await
            .map_err(unavailable)?
    };
    record(state, admin, "admin.sessions_revoked", username);
    json(StatusCode::OK, Revoked { revoked })
}

/// How long an invitation link works.
const INVITATION_HOURS: i64 = 72;

/// An invitation link, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Invitation {
    username: String,
    /// Opens a page where the user chooses their password; works once.
    url: String,
    /// Milliseconds since the epoch.
    expires_at: i64,
}

#[utoipa::path(post, path = "/management/admin/api/v1/users/{username}/invitation", params(("username" = String, Path)),
    responses((status = 201, body = Invitation), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn invite_user(state: &AuthState, admin: &Admin, username: &str) -> Answer {
    let db = state.database.as_ref().ok_or_else(no_database)?;
    let token = crate::identity::new_client_secret();
    let expires_at = crate::db::now_ms() + INVITATION_HOURS * 3600 * 1000;
    if !db
        .invite(
            username,
            &crate::db::invitation_hash(&token),
            &admin.name,
            expires_at,
        )
        .await?
    {
        return Err(not_found("such user"));
    }
    record(state, admin, "admin.invitation_created", username);
    json(
        StatusCode::CREATED,
        Invitation {
            username: username.to_owned(),
            url: format!("{}{}?token={token}", state.issuer(), crate::auth::INVITATION_PATH),
            expires_at,
        },
    )
}

#[utoipa::path(get, path = "/management/admin/api/v1/groups",
    responses((status = 200, body = Vec<Group>), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn list_groups(state: &AuthState) -> Answer {
    let db = state.database.as_ref().ok_or_else(no_database)?;
    let groups: Vec<Group> = db
        .groups()
        .await?
        .into_iter()
        .map(|(name, members)| Group { name, members })
        .collect();
    json(StatusCode::OK, groups)
}

#[utoipa::path(post, path = "/management/admin/api/v1/groups", request_body = NewGroupBody,
    responses((status = 201, body = Group), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn add_group(state: &AuthState, admin: &Admin, body: NewGroupBody) -> Answer {
    let db = state.database.as_ref().ok_or_else(no_database)?;
    check_name(&body.name)?;
    db.add_group(&body.name, body.description.as_deref()).await?;
    record(state, admin, "admin.group_added", &body.name);
    json(
        StatusCode::CREATED,
        Group {
            name: body.name,
            members: 0,
        },
    )
}

/// A member of a group, and where they come from.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Member {
    username: String,
    /// `database`, `config`, `provider` (`id:name`), or `directory` (a
    /// name neither has: an LDAP user, or one not yet seen).
    source: &'static str,
}

#[utoipa::path(get, path = "/management/admin/api/v1/groups/{group}/members", params(("group" = String, Path)),
    responses((status = 200, body = Vec<Member>), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn list_members(state: &AuthState, group: &str) -> Answer {
    let db = state.database.as_ref().ok_or_else(no_database)?;
    let members = db
        .members_of(group)
        .await?
        .ok_or_else(|| not_found("such group"))?;
    let listed: Vec<Member> = members
        .into_iter()
        .map(|(username, in_database)| {
            let source = if in_database {
                "database"
            } else if state.config.users.iter().any(|u| u.username == username) {
                "config"
            } else if username.contains(':') {
                "provider"
            } else {
                "directory"
            };
            Member { username, source }
        })
        .collect();
    json(StatusCode::OK, listed)
}

#[utoipa::path(put, path = "/management/admin/api/v1/groups/{group}/members/{username}",
    params(("group" = String, Path), ("username" = String, Path)),
    responses((status = 204), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn add_member(state: &AuthState, admin: &Admin, group: &str, username: &str) -> Answer {
    let db = state.database.as_ref().ok_or_else(no_database)?;
    if !db.groups().await?.iter().any(|(name, _)| name == group) {
        return Err(not_found("such group"));
    }
    db.add_member(group, username).await?;
    record(state, admin, &format!("admin.member_added:{group}"), username);
    Ok((StatusCode::NO_CONTENT, None))
}

#[utoipa::path(delete, path = "/management/admin/api/v1/groups/{group}/members/{username}",
    params(("group" = String, Path), ("username" = String, Path)),
    responses((status = 204), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn remove_member(state: &AuthState, admin: &Admin, group: &str, username: &str) -> Answer {
    let db = state.database.as_ref().ok_or_else(no_database)?;
    if !db.remove_member(group, username).await? {
        return Err(not_found("such member of that group"));
    }
    record(state, admin, &format!("admin.member_removed:{group}"), username);
    Ok((StatusCode::NO_CONTENT, None))
}

#[utoipa::path(get, path = "/management/admin/api/v1/audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(super) async fn audit(state: &AuthState, query: AuditQuery) -> Answer {
    let db = state.database.as_ref().ok_or_else(no_database)?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(Problem::new(StatusCode::BAD_REQUEST, "limit is 1 to 10000"));
    }
    let time = |text: &Option<String>, name: &str| match text.as_deref() {
        None => Ok(None),
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .map(|at| Some(at.timestamp_millis()))
            .map_err(|_| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    format!("{name} is an RFC 3339 time (2026-12-01T09:00:00Z)"),
                )
            }),
    };
    let filter = AuditFilter {
        subject: query.user.as_deref(),
        event: query.event.as_deref(),
        after: time(&query.after, "after")?,
        before: time(&query.before, "before")?,
        limit,
    };
    let events = db.audit(&filter).await?;
    json(
        StatusCode::OK,
        AuditPage {
            events: events.into_iter().map(Into::into).collect(),
        },
    )
}

fn no_database() -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "this gateway has no [database]: people and groups of the config are changed in config.toml",
    )
}

/// The OpenAPI 3.1 document of the API.
#[derive(OpenApi)]
#[openapi(
    info(title = "authgate admin API", version = "1", description = "People, groups, OAuth clients, sessions and the audit log. Authenticate with an admin's session cookie (and X-Authgate-Csrf on changes) or a bearer token with the scope authgate:admin. Errors are RFC 9457 problem JSON."),
    paths(list_users, add_user, get_user, change_user, delete_user, revoke_sessions, invite_user, list_groups, list_members, add_group, add_member, remove_member, audit,
        sessions::list_sessions, sessions::end_session,
        factors::list_factors, factors::remove_factor, factors::require_factor,
        clients::list_clients, clients::add_client, clients::get_client, clients::change_client, clients::rotate_secret, clients::delete_client),
    components(schemas(User, ConfigUser, Member, UserPage, NewUserBody, UserChange, Invitation, Group, NewGroupBody, Revoked, AuditPage, AuditEventOut, Problem,
        clients::ClientOut, clients::ClientList, clients::ClientWithSecret, clients::NewClientBody, clients::ClientChange,
        sessions::SessionOut, sessions::SessionList,
        factors::FactorOut, factors::FactorList, factors::Required,
        clients::RedirectUri, clients::Origin, clients::Scope, clients::GrantName, clients::IdTokenAlg, clients::TokenFormat, clients::SubjectType)),
    modifiers(&Security, &ClientRules),
    security(("bearer" = []), ("session" = []))
)]
pub(super) struct ApiDoc;

/// The two ways in.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::auth::credential::SESSION_COOKIE,
            ))),
        );
    }
}
