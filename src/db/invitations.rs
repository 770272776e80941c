//! One-time invitations: a link that lets a new user of the database
//! choose their own password. Only the SHA-256 of the link's secret is
//! kept; a user has one live invitation at most; accepting it is a single
//! statement that only one request can win.

use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{now_ms, Database, DbError};

/// What is kept of an invitation link's secret: its SHA-256, in hex (the
/// secret is 256 random bits, so no salt or slow hash is needed).
pub(crate) fn invitation_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Database {
    /// Makes `token_hash` the user's invitation until `expires_at`
    /// (milliseconds), replacing any earlier one; answers whether there
    /// is such a user.
    pub(crate) async fn invite(
        &self,
        username: &str,
        token_hash: &str,
        created_by: &str,
        expires_at: i64,
    ) -> Result<bool, DbError> {
        let mut tx = self.ready().await?.begin().await?;
        let exists = sqlx::query("SELECT 1 AS one FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            return Ok(false);
        }
        sqlx::query("DELETE FROM invitations WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO invitations (token_hash, username, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(username)
        .bind(created_by)
        .bind(now_ms())
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The user a live invitation is for (not expired, the user enabled).
    pub(crate) async fn invited(&self, token_hash: &str) -> Result<Option<String>, DbError> {
        let row = sqlx::query(
            "SELECT i.username AS username FROM invitations i JOIN users u ON u.username = i.username \
             WHERE i.token_hash = $1 AND i.expires_at > $2 AND u.disabled = 0",
        )
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(self.ready().await?)
        .await?;
        Ok(row.map(|r| r.try_get("username")).transpose()?)
    }

    /// Uses the invitation up and sets its user's password, both or
    /// neither; answers whose it was, or `None` if it was not live (used
    /// already, by another request too, or expired).
    pub(crate) async fn accept_invitation(
        &self,
        token_hash: &str,
        password_hash: &str,
    ) -> Result<Option<String>, DbError> {
        let Some(username) = self.invited(token_hash).await? else {
            return Ok(None);
        };
        let mut tx = self.ready().await?.begin().await?;
        let used = sqlx::query("DELETE FROM invitations WHERE token_hash = $1 AND expires_at > $2")
            .bind(token_hash)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        if used.rows_affected() != 1 {
            return Ok(None);
        }
        let set = sqlx::query(
            "UPDATE users SET password_hash = $1, must_change_password = 0 WHERE username = $2 AND disabled = 0",
        )
        .bind(password_hash)
        .bind(&username)
        .execute(&mut *tx)
        .await?;
        if set.rows_affected() != 1 {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(username))
    }
}
