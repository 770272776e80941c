//! Users and groups in the database.

use sqlx::Row;

use super::{now_ms, Database, DbError};

/// A user of the database (also as `authgate export` writes it: the
/// password only as its hash).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DbUser {
    pub(crate) username: String,
    pub(crate) email: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) password_hash: Option<String>,
    pub(crate) disabled: bool,
    pub(crate) must_change_password: bool,
    pub(crate) created_at: i64,
    pub(crate) last_sign_in_at: Option<i64>,
}

/// What a new user is made of.
#[derive(Debug, Clone, Default)]
pub(crate) struct NewUser<'a> {
    pub(crate) username: &'a str,
    pub(crate) email: Option<&'a str>,
    pub(crate) name: Option<&'a str>,
    pub(crate) password_hash: Option<&'a str>,
    pub(crate) must_change_password: bool,
}

pub(super) const USER_COLUMNS: &str =
    "username, email, name, password_hash, disabled, must_change_password, created_at, last_sign_in_at";

pub(super) fn user_of(row: &sqlx::any::AnyRow) -> Result<DbUser, sqlx::Error> {
    Ok(DbUser {
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        password_hash: row.try_get("password_hash")?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        must_change_password: row.try_get::<i64, _>("must_change_password")? != 0,
        created_at: row.try_get("created_at")?,
        last_sign_in_at: row.try_get("last_sign_in_at")?,
    })
}

impl Database {
    /// The user of that name.
    pub(crate) async fn user(&self, username: &str) -> Result<Option<DbUser>, DbError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1"))
            .bind(username)
            .fetch_optional(self.ready().await?)
            .await?;
        Ok(row.as_ref().map(user_of).transpose()?)
    }

    /// Users whose name or email starts with `search` (all, with none), by
    /// name, `limit` from `offset`.
    pub(crate) async fn users(
        &self,
        search: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<DbUser>, DbError> {
        // A prefix of the name or the email, as a range each index serves
        // (a `LIKE '%…%'` would read every row); no search: the name's
        // index in order.
        let pool = self.ready().await?;
        let rows = match search.filter(|s| !s.is_empty()) {
            Some(prefix) => {
                sqlx::query(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE (username >= $1 AND username < $2) OR (email >= $1 AND email < $2) \
                     ORDER BY username LIMIT $3 OFFSET $4"
                ))
                .bind(prefix.to_owned())
                .bind(format!("{prefix}\u{10FFFF}"))
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await?
            }
            None => {
                sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY username LIMIT $1 OFFSET $2"))
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(rows.iter().map(user_of).collect::<Result<_, _>>()?)
    }

    /// Adds a user; a name (or email) already taken is a conflict.
    pub(crate) async fn add_user(&self, user: &NewUser<'_>) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO users (username, email, name, password_hash, disabled, must_change_password, created_at) VALUES ($1, $2, $3, $4, 0, $5, $6)",
        )
        .bind(user.username)
        .bind(user.email)
        .bind(user.name)
        .bind(user.password_hash)
        .bind(i64::from(user.must_change_password))
        .bind(now_ms())
        .execute(self.ready().await?)
        .await
        .map_err(|e| match DbError::from(e) {
            DbError::Conflict(_) => DbError::Conflict(format!(
                "a user named {:?} (or with that email address) exists already",
                user.username
            )),
            other => other,
        })?;
        Ok(())
    }

    /// Sets a user's password hash (`must_change`: asked for a new one at
    /// the next sign-in); with `end_sessions` (a reset by an admin), their
    /// sessions end everywhere (a change). Answers whether there was such
    /// a user.
    pub(crate) async fn set_password(
        &self,
        username: &str,
        hash: &str,
        must_change: bool,
        end_sessions: bool,
    ) -> Result<bool, DbError> {
        let mut tx = self.ready().await?.begin().await?;
        let done =
            sqlx::query("UPDATE users SET password_hash = $1, must_change_password = $2 WHERE username = $3")
                .bind(hash)
                .bind(i64::from(must_change))
                .bind(username)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if end_sessions {
            Database::record_change(&mut *tx, "password_set", username).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Disables (or enables) a user; disabling ends their sessions
    /// everywhere (a change). Answers whether there was such a user.
    pub(crate) async fn set_disabled(&self, username: &str, disabled: bool) -> Result<bool, DbError> {
        let mut tx = self.ready().await?.begin().await?;
        let done = sqlx::query("UPDATE users SET disabled = $1 WHERE username = $2")
            .bind(i64::from(disabled))
            .bind(username)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if disabled {
            Database::record_change(&mut *tx, "user_disabled", username).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes a user, their memberships and invitation, ending their sessions
    /// everywhere; answers whether there was such a user.
    pub(crate) async fn delete_user(&self, username: &str) -> Result<bool, DbError> {
        let mut tx = self.ready().await?.begin().await?;
        let done = sqlx::query("DELETE FROM users WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        for table in ["group_members", "invitations", "second_factors", "recovery_codes"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE username = $1"))
                .bind(username)
                .execute(&mut *tx)
                .await?;
        }
        Database::record_change(&mut *tx, "user_deleted", username).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records a sign-in's time.
    pub(crate) async fn signed_in(&self, username: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE users SET last_sign_in_at = $1 WHERE username = $2")
            .bind(now_ms())
            .bind(username)
            .execute(self.ready().await?)
            .await?;
        Ok(())
    }

    /// The groups `username` is a member of, by name.
    pub(crate) async fn groups_of(&self, username: &str) -> Result<Vec<String>, DbError> {
        let rows =
            sqlx::query("SELECT group_name FROM group_members WHERE username = $1 ORDER BY group_name")
                .bind(username)
                .fetch_all(self.ready().await?)
                .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("group_name"))
            .collect::<Result<_, _>>()?)
    }

    /// The groups of each of `usernames`, by name, in one statement (a
    /// page of users asks once, not once a user).
    pub(crate) async fn groups_of_each(
        &self,
        usernames: &[&str],
    ) -> Result<std::collections::HashMap<String, Vec<String>>, DbError> {
        let mut found: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
        if usernames.is_empty() {
            return Ok(found);
        }
        let placeholders: Vec<String> = (1..=usernames.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT username, group_name FROM group_members WHERE username IN ({}) ORDER BY group_name",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for name in usernames {
            query = query.bind(name.to_string());
        }
        for row in query.fetch_all(self.ready().await?).await? {
            found
                .entry(row.try_get("username")?)
                .or_default()
                .push(row.try_get("group_name")?);
        }
        Ok(found)
    }

    /// Adds a group; a name taken is a conflict.
    pub(crate) async fn add_group(&self, name: &str, description: Option<&str>) -> Result<(), DbError> {
        sqlx::query("INSERT INTO user_groups (name, description, created_at) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(description)
            .bind(now_ms())
            .execute(self.ready().await?)
            .await
            .map_err(|e| match DbError::from(e) {
                DbError::Conflict(_) => DbError::Conflict(format!("a group named {name:?} exists already")),
                other => other,
            })?;
        Ok(())
    }

    /// The groups, by name, with their member counts.
    pub(crate) async fn groups(&self) -> Result<Vec<(String, i64)>, DbError> {
        let rows = sqlx::query(
            "SELECT g.name AS name, COUNT(m.username) AS members FROM user_groups g LEFT JOIN group_members m ON m.group_name = g.name GROUP BY g.name ORDER BY g.name",
        )
        .fetch_all(self.ready().await?)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("members")?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// The members of `group` by name, each with whether the database has
    /// a user of that name; `None` if there is no such group.
    pub(crate) async fn members_of(&self, group: &str) -> Result<Option<Vec<(String, bool)>>, DbError> {
        let pool = self.ready().await?;
        let exists = sqlx::query("SELECT name FROM user_groups WHERE name = $1")
            .bind(group)
            .fetch_optional(pool)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT m.username AS username, u.username AS known FROM group_members m LEFT JOIN users u ON u.username = m.username \
             WHERE m.group_name = $1 ORDER BY m.username",
        )
        .bind(group)
        .fetch_all(pool)
        .await?;
        Ok(Some(
            rows.iter()
                .map(|r| {
                    Ok((
                        r.try_get("username")?,
                        r.try_get::<Option<String>, _>("known")?.is_some(),
                    ))
                })
                .collect::<Result<_, sqlx::Error>>()?,
        ))
    }

    /// Puts `username` in `group`, which must exist (and may be anyone's
    /// name: a database user, a `[[users]]` one, `provider:name`).
    pub(crate) async fn add_member(&self, group: &str, username: &str) -> Result<(), DbError> {
        let mut tx = self.ready().await?.begin().await?;
        let exists = sqlx::query("SELECT name FROM user_groups WHERE name = $1")
            .bind(group)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(DbError::Conflict(format!("there is no group named {group:?}")));
        }
        let added =
            sqlx::query("INSERT INTO group_members (group_name, username, added_at) VALUES ($1, $2, $3)")
                .bind(group)
                .bind(username)
                .bind(now_ms())
                .execute(&mut *tx)
                .await;
        match added {
            Ok(_) => {}
            Err(err) => match DbError::from(err) {
                DbError::Conflict(_) => {
                    return Err(DbError::Conflict(format!("{username:?} is in {group:?} already")))
                }
                other => return Err(other),
            },
        }
        tx.commit().await?;
        Ok(())
    }

    /// Takes `username` out of `group`, narrowing their sessions
    /// everywhere (a change: they sign in again, without it); answers
    /// whether they were in it.
    pub(crate) async fn remove_member(&self, group: &str, username: &str) -> Result<bool, DbError> {
        let mut tx = self.ready().await?.begin().await?;
        let done = sqlx::query("DELETE FROM group_members WHERE group_name = $1 AND username = $2")
            .bind(group)
            .bind(username)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        Database::record_change(&mut *tx, "member_removed", username).await?;
        tx.commit().await?;
        Ok(true)
    }
}
