//! People's second factors and recovery codes in the database. Every
//! statement that uses a code up is one conditional `UPDATE`, so of two
//! gateways given the same code at once exactly one accepts it.

use sqlx::Row;

use super::{now_ms, Database, DbError};

/// A second factor as kept: its secret still sealed (also as `authgate
/// export` writes it: it opens only with the same `auth.secret_file`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DbFactor {
    pub(crate) id: String,
    pub(crate) username: String,
    /// `"totp"`.
    pub(crate) kind: String,
    pub(crate) name: String,
    #[serde(rename = "secret")]
    pub(crate) sealed_secret: String,
    pub(crate) confirmed: bool,
    /// The last TOTP step accepted.
    pub(crate) last_step: i64,
    pub(crate) created_at: i64,
    pub(crate) last_used_at: Option<i64>,
    /// A security key's credential id (base64url).
    pub(crate) credential_id: Option<String>,
}

const FACTOR_COLUMNS: &str =
    "id, username, kind, name, secret, confirmed, last_step, created_at, last_used_at, credential_id";

fn factor_of(row: &sqlx::any::AnyRow) -> Result<DbFactor, sqlx::Error> {
    Ok(DbFactor {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        kind: row.try_get("kind")?,
        name: row.try_get("name")?,
        sealed_secret: row.try_get("secret")?,
        confirmed: row.try_get::<i64, _>("confirmed")? != 0,
        last_step: row.try_get("last_step")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        credential_id: row.try_get("credential_id")?,
    })
}

/// A recovery code as kept: its hash (as `authgate export` writes it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DbRecoveryCode {
    pub(crate) code_hash: String,
    pub(crate) username: String,
    pub(crate) created_at: i64,
    pub(crate) used_at: Option<i64>,
}

/// Every factor and recovery code, for an export (within `tx`).
pub(super) async fn all(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
) -> Result<(Vec<DbFactor>, Vec<DbRecoveryCode>), DbError> {
    let factors = sqlx::query(&format!(
        "SELECT {FACTOR_COLUMNS} FROM second_factors ORDER BY username, id"
    ))
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(factor_of)
    .collect::<Result<_, _>>()?;
    let codes = sqlx::query(
        "SELECT code_hash, username, created_at, used_at FROM recovery_codes ORDER BY username, code_hash",
    )
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| {
        Ok(DbRecoveryCode {
            code_hash: r.try_get("code_hash")?,
            username: r.try_get("username")?,
            created_at: r.try_get("created_at")?,
            used_at: r.try_get("used_at")?,
        })
    })
    .collect::<Result<_, sqlx::Error>>()?;
    Ok((factors, codes))
}

/// Writes an export's factors and codes as they were (within `tx`).
pub(super) async fn restore(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    factors: &[DbFactor],
    codes: &[DbRecoveryCode],
) -> Result<(), DbError> {
    for f in factors {
        sqlx::query(&format!(
            "INSERT INTO second_factors ({FACTOR_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&f.id)
        .bind(&f.username)
        .bind(&f.kind)
        .bind(&f.name)
        .bind(&f.sealed_secret)
        .bind(i64::from(f.confirmed))
        .bind(f.last_step)
        .bind(f.created_at)
        .bind(f.last_used_at)
        .bind(&f.credential_id)
        .execute(&mut **tx)
        .await?;
    }
    for c in codes {
        sqlx::query(
            "INSERT INTO recovery_codes (code_hash, username, created_at, used_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&c.code_hash)
        .bind(&c.username)
        .bind(c.created_at)
        .bind(c.used_at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Writes `factor` (confirmed or not, as it says), made now.
async fn insert<'c, E>(executor: E, factor: &DbFactor) -> Result<(), DbError>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    sqlx::query(&format!(
        "INSERT INTO second_factors ({FACTOR_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, NULL, $8)"
    ))
    .bind(&factor.id)
    .bind(&factor.username)
    .bind(&factor.kind)
    .bind(&factor.name)
    .bind(&factor.sealed_secret)
    .bind(i64::from(factor.confirmed))
    .bind(now_ms())
    .bind(&factor.credential_id)
    .execute(executor)
    .await?;
    Ok(())
}

impl Database {
    /// A person's factors, confirmed or not, oldest first.
    pub(crate) async fn factors(&self, username: &str) -> Result<Vec<DbFactor>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {FACTOR_COLUMNS} FROM second_factors WHERE username = $1 ORDER BY created_at, id"
        ))
        .bind(username)
        .fetch_all(self.ready().await?)
        .await?;
        Ok(rows.iter().map(factor_of).collect::<Result<_, _>>()?)
    }

    /// Keeps a new authenticator, not yet confirmed, in place of any other
    /// unconfirmed one of the person's.
    pub(crate) async fn begin_factor(&self, factor: &DbFactor) -> Result<(), DbError> {
        let mut tx = self.ready().await?.begin().await?;
        sqlx::query("DELETE FROM second_factors WHERE username = $1 AND kind = $2 AND confirmed = 0")
            .bind(&factor.username)
            .bind(&factor.kind)
            .execute(&mut *tx)
            .await?;
        insert(&mut *tx, factor).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Confirms the unconfirmed factor `id` of `username` with its first
    /// code's `step`, replacing the person's confirmed factor of the same
    /// kind; answers whether there was such a factor to confirm.
    pub(crate) async fn confirm_factor(&self, username: &str, id: &str, step: i64) -> Result<bool, DbError> {
        let mut tx = self.ready().await?.begin().await?;
        let done = sqlx::query(
            "UPDATE second_factors SET confirmed = 1, last_step = $1, last_used_at = $2 \
             WHERE id = $3 AND username = $4 AND confirmed = 0",
        )
        .bind(step)
        .bind(now_ms())
        .bind(id)
        .bind(username)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "DELETE FROM second_factors WHERE username = $1 AND confirmed = 1 AND id <> $2 \
             AND kind = (SELECT kind FROM second_factors WHERE id = $3)",
        )
        .bind(username)
        .bind(id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Keeps a security key, confirmed (its registration proved it).
    pub(crate) async fn add_key(&self, factor: &DbFactor) -> Result<(), DbError> {
        insert(self.ready().await?, factor).await
    }

    /// The security key of that credential id, whoever's it is.
    pub(crate) async fn factor_by_credential(
        &self,
        credential_id: &str,
    ) -> Result<Option<DbFactor>, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {FACTOR_COLUMNS} FROM second_factors WHERE credential_id = $1"
        ))
        .bind(credential_id)
        .fetch_optional(self.ready().await?)
        .await?;
        Ok(row.as_ref().map(factor_of).transpose()?)
    }

    /// Keeps a security key's new state (its counter) after a use.
    pub(crate) async fn key_used(&self, id: &str, state: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE second_factors SET secret = $1, last_used_at = $2 WHERE id = $3")
            .bind(state)
            .bind(now_ms())
            .bind(id)
            .execute(self.ready().await?)
            .await?;
        Ok(())
    }

    /// Uses TOTP step `step` of factor `id`: answers `false` if that step,
    /// or a later one, was accepted already (a replay).
    pub(crate) async fn use_step(&self, id: &str, step: i64) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE second_factors SET last_step = $1, last_used_at = $2 WHERE id = $3 AND confirmed = 1 AND last_step < $4",
        )
        .bind(step)
        .bind(now_ms())
        .bind(id)
        .bind(step)
        .execute(self.ready().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes factor `id` of `username`; with no confirmed factor left,
    /// their recovery codes go too. Answers whether there was one.
    pub(crate) async fn remove_factor(&self, username: &str, id: &str) -> Result<bool, DbError> {
        let mut tx = self.ready().await?.begin().await?;
        let done = sqlx::query("DELETE FROM second_factors WHERE id = $1 AND username = $2")
            .bind(id)
            .bind(username)
            .execute(&mut *tx)
            .await?;
        let left =
            sqlx::query("SELECT COUNT(*) AS n FROM second_factors WHERE username = $1 AND confirmed = 1")
                .bind(username)
                .fetch_one(&mut *tx)
                .await?
                .try_get::<i64, _>("n")?;
        if left == 0 {
            sqlx::query("DELETE FROM recovery_codes WHERE username = $1")
                .bind(username)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Makes `hashes` the person's recovery codes, the earlier ones gone.
    pub(crate) async fn replace_recovery_codes(
        &self,
        username: &str,
        hashes: &[String],
    ) -> Result<(), DbError> {
        let mut tx = self.ready().await?.begin().await?;
        sqlx::query("DELETE FROM recovery_codes WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await?;
        for hash in hashes {
            sqlx::query("INSERT INTO recovery_codes (code_hash, username, created_at, used_at) VALUES ($1, $2, $3, NULL)")
                .bind(hash)
                .bind(username)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Uses up the recovery code of that hash; answers whether it was one
    /// of the person's, not used before.
    pub(crate) async fn use_recovery_code(&self, username: &str, hash: &str) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 WHERE code_hash = $2 AND username = $3 AND used_at IS NULL",
        )
        .bind(now_ms())
        .bind(hash)
        .bind(username)
        .execute(self.ready().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// How many of the person's recovery codes are unused.
    pub(crate) async fn recovery_codes_left(&self, username: &str) -> Result<i64, DbError> {
        Ok(
            sqlx::query("SELECT COUNT(*) AS n FROM recovery_codes WHERE username = $1 AND used_at IS NULL")
                .bind(username)
                .fetch_one(self.ready().await?)
                .await?
                .try_get::<i64, _>("n")?,
        )
    }

    /// Whether an admin asked this database user to enrol a second factor.
    pub(crate) async fn second_factor_required(&self, username: &str) -> Result<bool, DbError> {
        let row = sqlx::query("SELECT second_factor_required AS r FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(self.ready().await?)
            .await?;
        Ok(match row {
            Some(row) => row.try_get::<i64, _>("r")? != 0,
            None => false,
        })
    }

    /// Asks a database user to enrol at their next sign-in, or not;
    /// answers whether there is such a user.
    pub(crate) async fn require_second_factor(
        &self,
        username: &str,
        required: bool,
    ) -> Result<bool, DbError> {
        let done = sqlx::query("UPDATE users SET second_factor_required = $1 WHERE username = $2")
            .bind(i64::from(required))
            .bind(username)
            .execute(self.ready().await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
