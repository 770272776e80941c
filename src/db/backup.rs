//! `authgate export` and `authgate import`: the database's people,
//! groups, memberships and clients as one JSON document (hashes, never a
//! secret in clear), for backups and for moving between SQLite and
//! PostgreSQL. An import writes everything or nothing.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::factors::{DbFactor, DbRecoveryCode};
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
    pub(crate) users: Vec<DbUser>,
    pub(crate) groups: Vec<BackupGroup>,
    pub(crate) members: Vec<BackupMember>,
    pub(crate) clients: Vec<DbClient>,
    /// Second factors (secrets sealed with `auth.secret_file`: the
    /// importing gateways need the same file) and recovery codes (hashes).
    #[serde(default)]
    pub(crate) second_factors: Vec<DbFactor>,
    #[serde(default)]
    pub(crate) recovery_codes: Vec<DbRecoveryCode>,
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

/// How much an import wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Imported {
    pub(crate) users: usize,
    pub(crate) groups: usize,
    pub(crate) members: usize,
    pub(crate) clients: usize,
    pub(crate) second_factors: usize,
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
        .map(super::people::user_of)
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
        .map(super::clients::client_of)
        .collect::<Result<_, _>>()?;
        let (second_factors, recovery_codes) = super::factors::all(&mut tx).await?;
        tx.commit().await?;
        Ok(Backup {
            format: FORMAT.to_owned(),
            version: VERSION,
            exported_at: now_ms(),
            users,
            groups,
            members,
            clients,
            second_factors,
            recovery_codes,
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
            Database::insert_client(&mut tx, c).await.map_err(|e| match e {
                DbError::Conflict(_) => DbError::Conflict(format!(
                    "a client {:?} exists in this database already: nothing was imported",
                    c.client_id
                )),
                other => other,
            })?;
        }
        super::factors::restore(&mut tx, &backup.second_factors, &backup.recovery_codes)
            .await
            .map_err(|e| match e {
                DbError::Conflict(_) => DbError::Conflict(
                    "a second factor (or recovery code) exists in this database already: nothing was imported".into(),
                ),
                other => other,
            })?;
        tx.commit().await?;
        Ok(Imported {
            users: backup.users.len(),
            groups: backup.groups.len(),
            members: backup.members.len(),
            clients: backup.clients.len(),
            second_factors: backup.second_factors.len(),
        })
    }
}
