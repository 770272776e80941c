//! The change feed: what changed about people, for every gateway sharing
//! the database to act on (the same in SQLite and PostgreSQL: a table
//! read from where the last read ended).

use sqlx::Row;

use super::{now_ms, Database, DbError};

/// Something that changed about a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) id: String,
    pub(crate) at: i64,
    /// `user_disabled`, `user_deleted`, `password_set`, `member_removed`.
    pub(crate) kind: String,
    /// Whose (a username).
    pub(crate) subject: String,
}

/// How long changes are kept.
const KEEP_MS: i64 = 24 * 3600 * 1000;

/// A random id for a row.
pub(crate) fn new_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Database {
    /// Records a change (within `tx`, the change it records).
    pub(crate) async fn record_change<'c, E>(executor: E, kind: &str, subject: &str) -> Result<(), DbError>
    where
        E: sqlx::Executor<'c, Database = sqlx::Any>,
    {
        sqlx::query("INSERT INTO changes (id, at, kind, subject) VALUES ($1, $2, $3, $4)")
            .bind(new_id())
            .bind(now_ms())
            .bind(kind)
            .bind(subject)
            .execute(executor)
            .await?;
        Ok(())
    }

    /// The changes at or after `since` (milliseconds), oldest first.
    pub(crate) async fn changes_since(&self, since: i64) -> Result<Vec<Change>, DbError> {
        let rows = sqlx::query("SELECT id, at, kind, subject FROM changes WHERE at >= $1 ORDER BY at, id")
            .bind(since)
            .fetch_all(self.ready().await?)
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(Change {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    kind: r.try_get("kind")?,
                    subject: r.try_get("subject")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Forgets changes older than a day.
    pub(crate) async fn prune_changes(&self) -> Result<(), DbError> {
        sqlx::query("DELETE FROM changes WHERE at < $1")
            .bind(now_ms() - KEEP_MS)
            .execute(self.ready().await?)
            .await?;
        Ok(())
    }
}
