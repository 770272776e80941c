//! The admin API's OAuth clients: those of the database, which it may
//! change, beside those of `[[clients]]`, which it shows read-only.

use http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::auth::state::AuthState;
use crate::config::client_rules::id_token_alg;
use crate::config::SigningAlg;
use crate::db::DbClient;
use crate::identity::{client_config, new_client_secret, Client, ClientRequest};

use super::{bad, json, no_database, not_found, record, Admin, Answer, Problem};

/// An OAuth client.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ClientOut {
    client_id: String,
    /// `database` (changed here) or `config` (changed in config.toml).
    source: &'static str,
    /// Whether it has a secret.
    confidential: bool,
    redirect_uris: Vec<String>,
    grants: Vec<String>,
    /// The scopes it may ask for; absent: any.
    scopes: Option<Vec<String>>,
    cors_origins: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    backchannel_logout_uri: Option<String>,
    /// What its ID tokens are signed with.
    id_token_signed_response_alg: &'static str,
    /// `opaque` or `jwt` (RFC 9068).
    access_token_format: &'static str,
    /// The resource indicators it may ask for (RFC 8707).
    resources: Vec<String>,
    /// `public` or `pairwise`.
    subject_type: &'static str,
    /// Milliseconds since the epoch (database clients).
    created_at: Option<i64>,
    updated_at: Option<i64>,
}

impl ClientOut {
    fn of_database(row: DbClient) -> Self {
        let alg = row
            .id_token_alg
            .as_deref()
            .and_then(|a| id_token_alg(a).ok())
            .unwrap_or(SigningAlg::RS256);
        Self {
            access_token_format: if row.access_token_format.as_deref() == Some("jwt") {
                "jwt"
            } else {
                "opaque"
            },
            resources: row.resources,
            subject_type: if row.subject_type.as_deref() == Some("pairwise") {
                "pairwise"
            } else {
                "public"
            },
            post_logout_redirect_uris: row.post_logout_redirect_uris,
            backchannel_logout_uri: row.backchannel_logout_uri,
            id_token_signed_response_alg: alg.as_str(),
            confidential: row.secret_hash.is_some(),
            client_id: row.client_id,
            source: "database",
            redirect_uris: row.redirect_uris,
            grants: row.grants,
            scopes: row.scopes,
            cors_origins: row.cors_origins,
            created_at: Some(row.created_at),
            updated_at: Some(row.updated_at),
        }
    }

    fn of_config(client: &Client) -> Self {
        let entry = client.entry();
        Self {
            client_id: entry.client_id.clone(),
            source: "config",
            confidential: client.is_confidential(),
            redirect_uris: entry.redirect_uris.clone(),
            grants: entry.grants.iter().map(|g| g.as_str().to_owned()).collect(),
            scopes: entry.scopes.clone(),
            cors_origins: entry.cors_origins.clone(),
            post_logout_redirect_uris: entry.post_logout_redirect_uris.clone(),
            backchannel_logout_uri: entry.backchannel_logout_uri.clone(),
            id_token_signed_response_alg: entry.id_token_alg.as_str(),
            access_token_format: if entry.jwt_access_tokens { "jwt" } else { "opaque" },
            resources: entry.resources.clone(),
            subject_type: if entry.pairwise_sector.is_some() {
                "pairwise"
            } else {
                "public"
            },
            created_at: None,
            updated_at: None,
        }
    }
}

/// The clients, of the config and of the database, by id.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ClientList {
    clients: Vec<ClientOut>,
}

/// A client and its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ClientWithSecret {
    client: ClientOut,
    /// Absent for a public client.
    client_secret: Option<String>,
}

/// An absolute URL without a fragment (the schema says a common form;
/// any absolute URL is taken, a `urn:` too).
#[derive(ToSchema)]
#[schema(pattern = r"^https?://[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*(:[1-9][0-9]{0,3})?(/[!-\x22$-~]*)?$")]
#[allow(dead_code, reason = "only the OpenAPI document is made of it")]
pub(crate) struct RedirectUri(String);

/// An origin: scheme, host and port, no path.
#[derive(ToSchema)]
#[schema(pattern = r"^https?://[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*(:[1-9][0-9]{0,3})?$")]
#[allow(dead_code, reason = "only the OpenAPI document is made of it")]
pub(crate) struct Origin(String);

/// A scope token (RFC 6749 §3.3).
#[derive(ToSchema)]
#[schema(pattern = r"^[!#-\[\]-~]+$")]
#[allow(dead_code, reason = "only the OpenAPI document is made of it")]
pub(crate) struct Scope(String);

/// An OAuth grant.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code, reason = "only the OpenAPI document is made of it")]
pub(crate) enum GrantName {
    AuthorizationCode,
    Implicit,
    Password,
    ClientCredentials,
    RefreshToken,
}

/// An algorithm ID tokens may be signed with.
#[derive(ToSchema)]
#[allow(dead_code, reason = "only the OpenAPI document is made of it")]
pub(crate) enum IdTokenAlg {
    RS256,
    ES256,
    EdDSA,
}

/// An access token format.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code, reason = "only the OpenAPI document is made of it")]
pub(crate) enum TokenFormat {
    Opaque,
    Jwt,
}

/// How a client knows people: by the gateway's `sub`, or its own.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code, reason = "only the OpenAPI document is made of it")]
pub(crate) enum SubjectType {
    Public,
    Pairwise,
}

/// A new client.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewClientBody {
    /// Visible ASCII; absent: a random one.
    #[schema(min_length = 1, max_length = 256, pattern = r"^[!-~]+$")]
    pub(crate) client_id: Option<String>,
    /// With a secret (the default), or public (a browser or native app,
    /// which must use PKCE).
    #[serde(default = "yes")]
    pub(crate) confidential: bool,
    #[serde(default)]
    #[schema(value_type = Vec<RedirectUri>)]
    pub(crate) redirect_uris: Vec<String>,
    /// Absent: every grant it can use without a redirect URI, or with one
    /// if it has some.
    #[schema(value_type = Option<Vec<GrantName>>)]
    pub(crate) grants: Option<Vec<String>>,
    /// Absent: any scope.
    #[schema(value_type = Option<Vec<Scope>>)]
    pub(crate) scopes: Option<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Vec<Origin>)]
    pub(crate) cors_origins: Vec<String>,
    /// Where RP-initiated logout may return to.
    #[serde(default)]
    #[schema(value_type = Vec<RedirectUri>)]
    pub(crate) post_logout_redirect_uris: Vec<String>,
    /// Where back-channel logout tokens are sent (https; http on loopback).
    #[schema(value_type = Option<RedirectUri>)]
    pub(crate) backchannel_logout_uri: Option<String>,
    /// RS256 (the default), ES256 or EdDSA.
    #[schema(value_type = Option<IdTokenAlg>)]
    pub(crate) id_token_signed_response_alg: Option<String>,
    /// `opaque` (the default) or `jwt` (RFC 9068).
    #[schema(value_type = Option<TokenFormat>)]
    pub(crate) access_token_format: Option<String>,
    /// The resource indicators it may ask tokens for (RFC 8707).
    #[serde(default)]
    #[schema(value_type = Vec<RedirectUri>)]
    pub(crate) resources: Vec<String>,
    /// `public` (the default) or `pairwise` (needs auth.secret_file).
    #[schema(value_type = Option<SubjectType>)]
    pub(crate) subject_type: Option<String>,
}

fn yes() -> bool {
    true
}

/// What changes about a client: each field present replaces the old.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientChange {
    #[schema(value_type = Option<Vec<RedirectUri>>)]
    pub(crate) redirect_uris: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<GrantName>>)]
    pub(crate) grants: Option<Vec<String>>,
    /// `null`: any scope.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<Scope>>)]
    pub(crate) scopes: Option<Option<Vec<String>>>,
    #[schema(value_type = Option<Vec<Origin>>)]
    pub(crate) cors_origins: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<RedirectUri>>)]
    pub(crate) post_logout_redirect_uris: Option<Vec<String>>,
    /// `null`: none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RedirectUri>)]
    pub(crate) backchannel_logout_uri: Option<Option<String>>,
    #[schema(value_type = Option<IdTokenAlg>)]
    pub(crate) id_token_signed_response_alg: Option<String>,
    #[schema(value_type = Option<TokenFormat>)]
    pub(crate) access_token_format: Option<String>,
    #[schema(value_type = Option<Vec<RedirectUri>>)]
    pub(crate) resources: Option<Vec<String>>,
    #[schema(value_type = Option<SubjectType>)]
    pub(crate) subject_type: Option<String>,
}

/// A field that is there, even as `null` (which a plain `Option` cannot
/// tell from a missing one).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Refuses a row the rules of `[[clients]]` refuse, or whose ID tokens
/// would be signed with an algorithm `[signing]` does not offer.
fn checked(state: &AuthState, row: &DbClient) -> Result<(), Problem> {
    let entry = client_config(row).map_err(bad)?;
    if entry.pairwise_sector.is_some() && state.config.auth.secret.is_none() {
        return Err(bad(
            "subject_type pairwise needs auth.secret_file, or the subjects would change at every start",
        ));
    }
    if !state.keys.algorithms().contains(&entry.id_token_alg) {
        return Err(bad(format!(
            "id_token_signed_response_alg {}: [signing] algorithms does not list it",
            entry.id_token_alg.as_str()
        )));
    }
    Ok(())
}

/// A `409` for a client of the config.
fn of_config(client_id: &str) -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        format!("client {client_id:?} is in config.toml: change it there"),
    )
}

/// The gateway's copy of the database's clients, read again after a
/// change here (the others read it from the change feed).
async fn reload(state: &AuthState) {
    if let Some(clients) = &state.database_clients {
        if let Err(err) = clients.reload().await {
            tracing::warn!(error = %err, "could not read the database's clients again");
        }
    }
}

#[utoipa::path(get, path = "/management/admin/api/v1/clients",
    responses((status = 200, body = ClientList), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn list_clients(state: &AuthState) -> Answer {
    let mut clients: Vec<ClientOut> = state
        .directory
        .config_clients()
        .map(|c| ClientOut::of_config(c))
        .collect();
    if let Some(db) = &state.database {
        let rows = db.clients().await?;
        clients.extend(
            rows.into_iter()
                .filter(|row| !state.directory.is_config_client(&row.client_id))
                .map(ClientOut::of_database),
        );
    }
    clients.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    json(StatusCode::OK, ClientList { clients })
}

#[utoipa::path(post, path = "/management/admin/api/v1/clients", request_body = NewClientBody,
    responses((status = 201, body = ClientWithSecret), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn add_client(state: &AuthState, admin: &Admin, body: NewClientBody) -> Answer {
    let db = state.database.as_ref().ok_or_else(no_database)?;
    if let Some(id) = body
        .client_id
        .as_deref()
        .filter(|id| state.directory.is_config_client(id))
    {
        return Err(of_config(id));
    }
    let (row, secret) = ClientRequest {
        client_id: body.client_id,
        confidential: body.confidential,
        redirect_uris: body.redirect_uris,
        grants: body.grants,
        scopes: body.scopes,
        cors_origins: body.cors_origins,
        post_logout_redirect_uris: body.post_logout_redirect_uris,
        backchannel_logout_uri: body.backchannel_logout_uri,
        id_token_alg: body.id_token_signed_response_alg,
        access_token_format: body.access_token_format,
        resources: body.resources,
        subject_type: body.subject_type,
    }
    .into_row()
    .map_err(bad)?;
    checked(state, &row)?;
    db.add_client(&row).await?;
    reload(state).await;
    record(state, admin, "admin.client_added", &row.client_id);
    let stored = db
        .client(&row.client_id)
        .await?
        .ok_or_else(|| not_found("such client"))?;
    json(
        StatusCode::CREATED,
        ClientWithSecret {
            client: ClientOut::of_database(stored),
            client_secret: secret,
        },
    )
}

/// The database's client of that id, or why there is none to change.
async fn database_client(state: &AuthState, client_id: &str) -> Result<DbClient, Problem> {
    let db = state.database.as_ref().ok_or_else(no_database)?;
    if state.directory.is_config_client(client_id) {
        return Err(of_config(client_id));
    }
    db.client(client_id)
        .await?
        .ok_or_else(|| not_found("such client"))
}

#[utoipa::path(get, path = "/management/admin/api/v1/clients/{client_id}", params(("client_id" = String, Path)),
    responses((status = 200, body = ClientOut), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn get_client(state: &AuthState, client_id: &str) -> Answer {
    if let Some(client) = state.directory.config_clients().find(|c| c.id() == client_id) {
        return json(StatusCode::OK, ClientOut::of_config(client));
    }
    json(
        StatusCode::OK,
        ClientOut::of_database(database_client(state, client_id).await?),
    )
}

#[utoipa::path(patch, path = "/management/admin/api/v1/clients/{client_id}", params(("client_id" = String, Path)), request_body = ClientChange,
    responses((status = 200, body = ClientOut), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn change_client(
    state: &AuthState,
    admin: &Admin,
    client_id: &str,
    change: ClientChange,
) -> Answer {
    let mut row = database_client(state, client_id).await?;
    if let Some(uris) = change.redirect_uris {
        row.redirect_uris = uris;
    }
    if let Some(grants) = change.grants {
        row.grants = grants;
    }
    if let Some(scopes) = change.scopes {
        row.scopes = scopes;
    }
    if let Some(origins) = change.cors_origins {
        row.cors_origins = origins;
    }
    if let Some(uris) = change.post_logout_redirect_uris {
        row.post_logout_redirect_uris = uris;
    }
    if let Some(uri) = change.backchannel_logout_uri {
        row.backchannel_logout_uri = uri;
    }
    if let Some(alg) = change.id_token_signed_response_alg {
        row.id_token_alg = Some(alg);
    }
    if let Some(format) = change.access_token_format {
        row.access_token_format = Some(format);
    }
    if let Some(resources) = change.resources {
        row.resources = resources;
    }
    if let Some(kind) = change.subject_type {
        row.subject_type = Some(kind);
    }
    checked(state, &row)?;
    let db = state.database.as_ref().ok_or_else(no_database)?;
    if !db.update_client(&row).await? {
        return Err(not_found("such client"));
    }
    reload(state).await;
    record(state, admin, "admin.client_changed", client_id);
    get_client(state, client_id).await
}

#[utoipa::path(post, path = "/management/admin/api/v1/clients/{client_id}/rotate-secret", params(("client_id" = String, Path)),
    responses((status = 200, body = ClientWithSecret), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn rotate_secret(state: &AuthState, admin: &Admin, client_id: &str) -> Answer {
    let row = database_client(state, client_id).await?;
    if row.secret_hash.is_none() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            format!("client {client_id:?} is public: it has no secret to rotate"),
        ));
    }
    let secret = new_client_secret();
    let db = state.database.as_ref().ok_or_else(no_database)?;
    if !db
        .set_client_secret(client_id, &crate::password::hash_password(&secret))
        .await?
    {
        return Err(not_found("such client"));
    }
    reload(state).await;
    record(state, admin, "admin.client_secret_rotated", client_id);
    let stored = database_client(state, client_id).await?;
    json(
        StatusCode::OK,
        ClientWithSecret {
            client: ClientOut::of_database(stored),
            client_secret: Some(secret),
        },
    )
}

#[utoipa::path(delete, path = "/management/admin/api/v1/clients/{client_id}", params(("client_id" = String, Path)),
    responses((status = 204), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn delete_client(state: &AuthState, admin: &Admin, client_id: &str) -> Answer {
    database_client(state, client_id).await?;
    let db = state.database.as_ref().ok_or_else(no_database)?;
    if !db.delete_client(client_id).await? {
        return Err(not_found("such client"));
    }
    reload(state).await;
    // Its tokens end now here; the change feed ends them elsewhere.
    if let Err(err) = crate::store::remove_client_sessions(&*state.store, client_id).await {
        tracing::warn!(error = %err, "could not end a deleted client's tokens now; the change feed will");
    }
    record(state, admin, "admin.client_deleted", client_id);
    Ok((StatusCode::NO_CONTENT, None))
}

/// Writes into the OpenAPI document the rules of `[[clients]]` that tie
/// one field of a new client to another (JSON Schema `if`/`then`, which
/// utoipa's attributes cannot say), so the document refuses what the API
/// refuses.
pub(super) struct ClientRules;

impl utoipa::Modify for ClientRules {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, Schema};
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let Some(RefOr::T(Schema::Object(body))) = components.schemas.get_mut("NewClientBody") else {
            return;
        };
        let rules = serde_json::json!([
            {
                "if": {"required": ["grants"], "properties": {"grants": {"type": "array", "contains": {"enum": ["authorization_code", "implicit"]}}}},
                "then": {"required": ["redirect_uris"], "properties": {"redirect_uris": {"minItems": 1}}}
            },
            {
                "if": {"required": ["confidential"], "properties": {"confidential": {"const": false}}},
                "then": {"properties": {"grants": {"not": {"type": "array", "contains": {"const": "client_credentials"}}}}}
            }
        ]);
        body.extensions
            .get_or_insert_with(Default::default)
            .insert("allOf".to_owned(), rules);
    }
}
