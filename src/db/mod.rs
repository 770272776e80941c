//! The database (`[database] url`): people, groups, clients and the audit
//! log, in SQLite or PostgreSQL through one code path (sqlx's `Any`
//! driver, every statement written for both, `$1` placeholders), with the
//! migrations of `migrations/` embedded in the binary and run at start.
//!
//! The database is never on a proxied request's path: sessions stay in the
//! token store. It is asked at sign-in, by the console and the command
//! line. The pool connects lazily, so a gateway starts (and its config
//! users sign in) while the database is down; its people get a clear
//! error until it is back.

mod audit;
mod backup;
mod changes;
mod clients;
mod factors;
mod invitations;
mod people;

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::AnyPool;

pub(crate) use self::audit::{time_of, AuditEvent, AuditFilter};
pub(crate) use self::backup::Backup;
pub(crate) use self::changes::{new_id, Change};
pub(crate) use self::clients::{DbClient, CLIENT_CHANGED, CLIENT_DELETED};
pub(crate) use self::factors::DbFactor;
pub(crate) use self::invitations::invitation_hash;
pub(crate) use self::people::{DbUser, NewUser};

/// The migrations, embedded in the binary.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// How long a statement may wait for a connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the database could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    /// It cannot be reached (or answered nonsense): try again later.
    #[error("the database cannot be reached: {0}")]
    Unavailable(String),
    /// Its schema is newer than this binary knows.
    #[error("the database's schema is at version {found}, newer than this authgate knows ({known}): run the authgate that upgraded it, or a newer one")]
    Newer { found: i64, known: i64 },
    /// What was asked contradicts what is there (a duplicate, a missing
    /// group).
    #[error("{0}")]
    Conflict(String),
}

impl From<sqlx::Error> for DbError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                DbError::Conflict("it exists already".into())
            }
            _ => DbError::Unavailable(err.to_string()),
        }
    }
}

/// The database, by a pool of connections made when first needed; the
/// schema is brought up to date before the first statement.
#[derive(Debug, Clone)]
pub(crate) struct Database {
    pool: AnyPool,
    sqlite: bool,
    migrated: std::sync::Arc<tokio::sync::OnceCell<()>>,
}

impl Database {
    /// A pool for `url` (`sqlite://PATH` or `postgres://…`); nothing is
    /// connected yet.
    pub(crate) fn open(url: &str) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        // SQLite takes one writer at a time, and a transaction that read
        // first cannot wait for another's write (SQLITE_BUSY at once): one
        // connection serializes this process's statements instead.
        let sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 1 } else { 8 })
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy(url)
            .map_err(|e| DbError::Unavailable(e.to_string()))?;
        Ok(Self {
            pool,
            sqlite,
            migrated: std::sync::Arc::new(tokio::sync::OnceCell::new()),
        })
    }

    /// The pool, once the schema is up to date (tried again at the next
    /// call while the database cannot be reached).
    pub(crate) async fn ready(&self) -> Result<&AnyPool, DbError> {
        self.migrated.get_or_try_init(|| self.migrate()).await?;
        Ok(&self.pool)
    }

    /// Brings the schema up to date; refuses a database newer than this
    /// binary.
    async fn migrate(&self) -> Result<(), DbError> {
        let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Option<(Option<i64>,)> =
            match sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations")
                .fetch_optional(&self.pool)
                .await
            {
                Ok(found) => found,
                // No table yet: a new database.
                Err(sqlx::Error::Database(_)) => None,
                Err(err) => return Err(err.into()),
            };
        if let Some(found) = applied.and_then(|(v,)| v) {
            if found > known {
                return Err(DbError::Newer { found, known });
            }
        }
        if self.sqlite {
            // Readers do not wait for a writer (the command line's, say).
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&self.pool)
                .await?;
        }
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| DbError::Unavailable(format!("migrations: {e}")))
    }

    /// Whether the database answers now (`/readyz`).
    pub(crate) async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(self.ready().await?).await?;
        Ok(())
    }
}

/// `text` for a `LIKE … ESCAPE '\'` pattern: its `\`, `%` and `_` mean
/// themselves.
pub(crate) fn like_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Milliseconds since the epoch, as the tables keep time.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
