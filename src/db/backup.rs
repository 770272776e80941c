//! `authgate export` and `authgate import`: the database's people,
//! groups, memberships and clients as one JSON document (hashes, never a
//! secret in clear), for backups and for moving between SQLite and
//! PostgreSQL. An import writes everything or nothing.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{now_ms, Database, DbClient, DbError, DbUser};

/// What the document says it is, so an import refuses anything else.
pub(crate) const FORMAT: &str = "authgate-export";
/// The version of the document's shape.
pub(crate) const VERSION: u32 = 1;

/// Everything the database holds but the audit log and the change feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Backup {
    pub(crate) format: String,
    pub(crate) version: u32,
    /// Milliseconds since the epoch.
    pub(crate) exported_at: i64,
    pub(crate) users: Vec<BackupUser>,
    pub(crate) groups: Vec<BackupGroup>,
    pub(crate) members: Vec<BackupMember>,
    pub(crate) clients: Vec<BackupClient>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackupUser {
    pub(crate) username: String,
    pub(crate) email: Option<String>,
    pub(crate) name: Option<String>,
    /// argon2id; absent for a user who has not chosen one yet.
    pub(crate) password_hash: Option<String>,
    pub(crate) disabled: bool,
    pub(crate) must_change_password: bool,
    pub(crate) created_at: i64,
    pub(crate) last_sign_in_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackupGroup {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackupMember {
    pub(crate) group: String,
    pub(crate) username: String,
    pub(crate) added_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackupClient {
    pub(crate) client_id: String,
    /// argon2id; absent for a public client.
    pub(crate) secret_hash: Option<String>,
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) grants: Vec<String>,
    pub(crate) scopes: Option<Vec<String>>,
    pub(crate) cors_origins: Vec<String>,
    #[serde(default)]
    pub(crate) post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub(crate) backchannel_logout_uri: Option<String>,
    #[serde(default)]
    pub(crate) id_token_alg: Option<String>,
    #[serde(default)]
    pub(crate) access_token_format: Option<String>,
    #[serde(default)]
    pub(crate) resources: Vec<String>,
    #[serde(default)]
    pub(crate) subject_type: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

impl From<DbUser> for BackupUser {
    fn from(u: DbUser) -> Self {
        Self {
            username: u.username,
            email: u.email,
            name: u.name,
            password_hash: u.password_hash,
            disabled: u.disabled,
            must_change_password: u.must_change_password,
            created_at: u.created_at,
            last_sign_in_at: u.last_sign_in_at,
        }
    }
}

impl From<DbClient> for BackupClient {
    fn from(c: DbClient) -> Self {
        Self {
            client_id: c.client_id,
            secret_hash: c.secret_hash,
            redirect_uris: c.redirect_uris,
            grants: c.grants,
            scopes: c.scopes,
            cors_origins: c.cors_origins,
            post_logout_redirect_uris: c.post_logout_redirect_uris,
            backchannel_logout_uri: c.backchannel_logout_uri,
            id_token_alg: c.id_token_alg,
            access_token_format: c.access_token_format,
            resources: c.resources,
            subject_type: c.subject_type,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

impl From<&BackupClient> for DbClient {
    fn from(c: &BackupClient) -> Self {
        Self {
            client_id: c.client_id.clone(),
            secret_hash: c.secret_hash.clone(),
            redirect_uris: c.redirect_uris.clone(),
            grants: c.grants.clone(),
            scopes: c.scopes.clone(),
            cors_origins: c.cors_origins.clone(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            backchannel_logout_uri: c.backchannel_logout_uri.clone(),
            id_token_alg: c.id_token_alg.clone(),
            access_token_format: c.access_token_format.clone(),
            resources: c.resources.clone(),
            subject_type: c.subject_type.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// How much an import wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Imported {
    pub(crate) users: usize,
    pub(crate) groups: usize,
    pub(crate) members: usize,
    pub(crate) clients: usize,
}

/// A name already taken, said as an import's reason to write nothing.
fn taken(what: &str, name: &str) -> impl FnOnce(sqlx::Error) -> DbError {
    let (what, name) = (what.to_owned(), name.to_owned());
    move |err| match DbError::from(err) {
        DbError::Conflict(_) => DbError::Conflict(format!(
            "{what} {name:?} exists in this database already: nothing was imported"
        )),
        other => other,
    }
}

impl Database {
    /// Everything but the audit log, as of one moment (one transaction).
    pub(crate) async fn export(&self) -> Result<Backup, DbError> {
        let mut tx = self.ready().await?.begin().await?;
        let users = sqlx::query(&format!(
            "SELECT {} FROM users ORDER BY username",
            super::people::USER_COLUMNS
        ))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| super::people::user_of(r).map(BackupUser::from))
        .collect::<Result<_, _>>()?;
        let groups = sqlx::query("SELECT name, description, created_at FROM user_groups ORDER BY name")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| {
                Ok(BackupGroup {
                    name: r.try_get("name")?,
                    description: r.try_get("description")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        let members = sqlx::query(
            "SELECT group_name, username, added_at FROM group_members ORDER BY group_name, username",
        )
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| {
            Ok(BackupMember {
                group: r.try_get("group_name")?,
                username: r.try_get("username")?,
                added_at: r.try_get("added_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
        let clients = sqlx::query(&format!(
            "SELECT {} FROM clients ORDER BY client_id",
            super::clients::CLIENT_COLUMNS
        ))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| super::clients::client_of(r).map(BackupClient::from))
        .collect::<Result<_, _>>()?;
        tx.commit().await?;
        Ok(Backup {
            format: FORMAT.to_owned(),
            version: VERSION,
            exported_at: now_ms(),
            users,
            groups,
            members,
            clients,
        })
    }

    /// Writes everything of `backup`, in one transaction: a name this
    /// database has already (or a member of a group the document lacks)
    /// writes nothing. Every gateway is told about the clients.
    pub(crate) async fn import(&self, backup: &Backup) -> Result<Imported, DbError> {
        if backup.format != FORMAT || backup.version != VERSION {
            return Err(DbError::Conflict(format!(
                "this is not an authgate export of version {VERSION} (format {:?}, version {})",
                backup.format, backup.version
            )));
        }
        let mut tx = self.ready().await?.begin().await?;
        for u in &backup.users {
            sqlx::query(
                "INSERT INTO users (username, email, name, password_hash, disabled, must_change_password, created_at, last_sign_in_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&u.username)
            .bind(&u.email)
            .bind(&u.name)
            .bind(&u.password_hash)
            .bind(i64::from(u.disabled))
            .bind(i64::from(u.must_change_password))
            .bind(u.created_at)
            .bind(u.last_sign_in_at)
            .execute(&mut *tx)
            .await
            .map_err(taken("a user (or an email) of", &u.username))?;
        }
        for g in &backup.groups {
            sqlx::query("INSERT INTO user_groups (name, description, created_at) VALUES ($1, $2, $3)")
                .bind(&g.name)
                .bind(&g.description)
                .bind(g.created_at)
                .execute(&mut *tx)
                .await
                .map_err(taken("a group", &g.name))?;
        }
        for m in &backup.members {
            if !backup.groups.iter().any(|g| g.name == m.group) {
                let exists = sqlx::query("SELECT name FROM user_groups WHERE name = $1")
                    .bind(&m.group)
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_none() {
                    return Err(DbError::Conflict(format!(
                        "{:?} is a member of {:?}, a group neither the document nor this database has: nothing was imported",
                        m.username, m.group
                    )));
                }
            }
            sqlx::query("INSERT INTO group_members (group_name, username, added_at) VALUES ($1, $2, $3)")
                .bind(&m.group)
                .bind(&m.username)
                .bind(m.added_at)
                .execute(&mut *tx)
                .await
                .map_err(taken(&format!("a member of {:?},", m.group), &m.username))?;
        }
        for c in &backup.clients {
            Database::insert_client(&mut tx, &DbClient::from(c))
                .await
                .map_err(|e| match e {
                    DbError::Conflict(_) => DbError::Conflict(format!(
                        "a client {:?} exists in this database already: nothing was imported",
                        c.client_id
                    )),
                    other => other,
                })?;
        }
        tx.commit().await?;
        Ok(Imported {
            users: backup.users.len(),
            groups: backup.groups.len(),
            members: backup.members.len(),
            clients: backup.clients.len(),
        })
    }
}
