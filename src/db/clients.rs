//! OAuth clients kept in the database, beside `[[clients]]`: what the
//! admin API, the console and `authgate client` change, and every gateway
//! sharing the database loads (the change feed says when).

use sqlx::Row;

use super::{now_ms, Database, DbError};

/// A client as the database keeps it (and as `authgate export` writes
/// it): the secret only as its argon2id hash; the lists as JSON arrays.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DbClient {
    pub(crate) client_id: String,
    pub(crate) secret_hash: Option<String>,
    pub(crate) redirect_uris: Vec<String>,
    /// Grant names (`authorization_code`, …).
    pub(crate) grants: Vec<String>,
    /// `None`: any scope.
    pub(crate) scopes: Option<Vec<String>>,
    pub(crate) cors_origins: Vec<String>,
    #[serde(default)]
    pub(crate) post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub(crate) backchannel_logout_uri: Option<String>,
    /// `RS256` (none), `ES256` or `EdDSA`.
    #[serde(default)]
    pub(crate) id_token_alg: Option<String>,
    /// `opaque` (none) or `jwt`.
    #[serde(default)]
    pub(crate) access_token_format: Option<String>,
    #[serde(default)]
    pub(crate) resources: Vec<String>,
    /// `public` (none) or `pairwise`.
    #[serde(default)]
    pub(crate) subject_type: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

/// The change-feed kinds of clients.
pub(crate) const CLIENT_CHANGED: &str = "client_changed";
pub(crate) const CLIENT_DELETED: &str = "client_deleted";

pub(super) const CLIENT_COLUMNS: &str =
    "client_id, secret_hash, redirect_uris, grants, scopes, cors_origins, \
     post_logout_redirect_uris, backchannel_logout_uri, id_token_alg, access_token_format, resources, subject_type, \
     created_at, updated_at";

fn list_of(row: &sqlx::any::AnyRow, column: &str) -> Result<Vec<String>, sqlx::Error> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

pub(super) fn client_of(row: &sqlx::any::AnyRow) -> Result<DbClient, sqlx::Error> {
    let scopes: Option<String> = row.try_get("scopes")?;
    Ok(DbClient {
        client_id: row.try_get("client_id")?,
        secret_hash: row.try_get("secret_hash")?,
        redirect_uris: list_of(row, "redirect_uris")?,
        grants: list_of(row, "grants")?,
        scopes: scopes
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        cors_origins: list_of(row, "cors_origins")?,
        post_logout_redirect_uris: list_of(row, "post_logout_redirect_uris")?,
        backchannel_logout_uri: row.try_get("backchannel_logout_uri")?,
        id_token_alg: row.try_get("id_token_alg")?,
        access_token_format: row.try_get("access_token_format")?,
        resources: list_of(row, "resources")?,
        subject_type: row.try_get("subject_type")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A query of the `Any` driver.
type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Binds what a client may do, in its columns' order (`redirect_uris`
/// to `subject_type`): the same for a new client and a changed one.
fn bind_settings<'q>(query: AnyQuery<'q>, client: &'q DbClient) -> AnyQuery<'q> {
    query
        .bind(json(&client.redirect_uris))
        .bind(json(&client.grants))
        .bind(client.scopes.as_deref().map(json))
        .bind(json(&client.cors_origins))
        .bind(json(&client.post_logout_redirect_uris))
        .bind(client.backchannel_logout_uri.as_deref())
        .bind(client.id_token_alg.as_deref())
        .bind(client.access_token_format.as_deref())
        .bind(json(&client.resources))
        .bind(client.subject_type.as_deref())
}

fn json(list: &[String]) -> String {
    serde_json::to_string(list).expect("a list of strings is JSON")
}

impl Database {
    /// Every client, by id.
    pub(crate) async fn clients(&self) -> Result<Vec<DbClient>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients ORDER BY client_id"
        ))
        .fetch_all(self.ready().await?)
        .await?;
        Ok(rows.iter().map(client_of).collect::<Result<_, _>>()?)
    }

    /// The client of that id.
    pub(crate) async fn client(&self, client_id: &str) -> Result<Option<DbClient>, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = $1"
        ))
        .bind(client_id)
        .fetch_optional(self.ready().await?)
        .await?;
        Ok(row.as_ref().map(client_of).transpose()?)
    }

    /// Adds a client (an id taken is a conflict), and tells every gateway.
    pub(crate) async fn add_client(&self, client: &DbClient) -> Result<(), DbError> {
        let mut tx = self.ready().await?.begin().await?;
        Database::insert_client(&mut tx, client).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes a new client within `tx` (keeping its times if it has
    /// some), and the change that tells every gateway.
    pub(crate) async fn insert_client(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        client: &DbClient,
    ) -> Result<(), DbError> {
        let now = now_ms();
        let created = if client.created_at > 0 {
            client.created_at
        } else {
            now
        };
        let insert = sqlx::query(
            "INSERT INTO clients (client_id, secret_hash, redirect_uris, grants, scopes, cors_origins, \
             post_logout_redirect_uris, backchannel_logout_uri, id_token_alg, access_token_format, resources, subject_type, \
             created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&client.client_id)
        .bind(client.secret_hash.as_deref());
        bind_settings(insert, client)
            .bind(created)
            .bind(client.updated_at.max(created))
            .execute(&mut **tx)
            .await
            .map_err(|e| match DbError::from(e) {
                DbError::Conflict(_) => {
                    DbError::Conflict(format!("a client {:?} exists already", client.client_id))
                }
                other => other,
            })?;
        Database::record_change(&mut **tx, CLIENT_CHANGED, &client.client_id).await?;
        Ok(())
    }

    /// Replaces what a client may do (all but its id, secret and
    /// creation); answers whether there was such a client.
    pub(crate) async fn update_client(&self, client: &DbClient) -> Result<bool, DbError> {
        let mut tx = self.ready().await?.begin().await?;
        let update = sqlx::query(
            "UPDATE clients SET redirect_uris = $2, grants = $3, scopes = $4, cors_origins = $5, \
             post_logout_redirect_uris = $6, backchannel_logout_uri = $7, id_token_alg = $8, \
             access_token_format = $9, resources = $10, subject_type = $11, updated_at = $12 WHERE client_id = $1",
        )
        .bind(&client.client_id);
        let done = bind_settings(update, client)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        Database::record_change(&mut *tx, CLIENT_CHANGED, &client.client_id).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Sets a client's secret hash; answers whether there was such a
    /// client.
    pub(crate) async fn set_client_secret(
        &self,
        client_id: &str,
        secret_hash: &str,
    ) -> Result<bool, DbError> {
        let mut tx = self.ready().await?.begin().await?;
        let done = sqlx::query("UPDATE clients SET secret_hash = $2, updated_at = $3 WHERE client_id = $1")
            .bind(client_id)
            .bind(secret_hash)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        Database::record_change(&mut *tx, CLIENT_CHANGED, client_id).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes a client; answers whether there was one.
    pub(crate) async fn delete_client(&self, client_id: &str) -> Result<bool, DbError> {
        let mut tx = self.ready().await?.begin().await?;
        let done = sqlx::query("DELETE FROM clients WHERE client_id = $1")
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        Database::record_change(&mut *tx, CLIENT_DELETED, client_id).await?;
        tx.commit().await?;
        Ok(true)
    }
}
