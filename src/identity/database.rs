//! People from the database (`[database]`): asked for names no
//! `[[users]]` entry has, before any LDAP directory. A disabled user is
//! refused; a database that cannot be reached answers
//! [`Checked::Unavailable`], and config users sign in as before.

use std::sync::Arc;

use crate::db::{Database, DbError};
use crate::store::{Identity, IdentityParts};

use super::{Checked, PasswordSource, SourceFuture, User, Verification};

#[derive(Debug)]
pub(crate) struct DatabaseUsers {
    db: Database,
}

impl DatabaseUsers {
    pub(crate) fn new(db: Database) -> Self {
        Self { db }
    }

    async fn check(
        &self,
        username: &str,
        password: &str,
        verification: &Verification,
    ) -> Result<Checked, DbError> {
        let Some(user) = self.db.user(username).await? else {
            return Ok(Checked::NotHere);
        };
        let Some(hash) = user.password_hash.clone() else {
            // Invited, and no password set yet.
            return Ok(Checked::Refused);
        };
        if !verification.argon2(hash, password).await {
            return Ok(Checked::Refused);
        }
        signed_in(&self.db, user).await
    }
}

/// The user of the database `user` is, signed in now (their sign-in's time
/// recorded); refused if disabled.
async fn signed_in(db: &Database, user: crate::db::DbUser) -> Result<Checked, DbError> {
    let username = user.username.as_str();
    if user.disabled {
        tracing::info!(username, "sign-in of a disabled database user refused");
        return Ok(Checked::Refused);
    }
    let groups = db.groups_of(username).await?;
    if let Err(err) = db.signed_in(username).await {
        tracing::warn!(error = %err, "could not record a sign-in's time");
    }
    let identity = Identity::from_parts(IdentityParts {
        username,
        email: user.email.as_deref(),
        name: user.name.as_deref(),
        groups: &groups,
        password_change_required: user.must_change_password,
        ..IdentityParts::default()
    });
    Ok(Checked::Verified(Arc::new(User::outside(identity))))
}

/// The enabled database user `username`, for a sign-in that proved who
/// they are without a password (a passkey).
pub(super) async fn without_password(db: &Database, username: &str) -> Result<Option<Arc<User>>, DbError> {
    let Some(user) = db.user(username).await? else {
        return Ok(None);
    };
    Ok(match signed_in(db, user).await? {
        Checked::Verified(user) => Some(user),
        _ => None,
    })
}

impl PasswordSource for DatabaseUsers {
    fn user(&self, _username: &str) -> Option<Arc<User>> {
        None
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn verify<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
        verification: &'a Verification,
    ) -> SourceFuture<'a> {
        Box::pin(async move {
            match self.check(username, password, verification).await {
                Ok(checked) => checked,
                Err(err) => {
                    tracing::warn!(error = %err, "database unavailable at a sign-in");
                    Checked::Unavailable
                }
            }
        })
    }
}
