//! People from `[[users]]`: the first source of password sign-ins.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::config::UserConfig;

use super::{Checked, PasswordSource, SourceFuture, User, Verification};

/// The users of the configuration, by name.
#[derive(Debug)]
pub(crate) struct LocalUsers {
    users: HashMap<String, Arc<User>>,
}

impl LocalUsers {
    pub(crate) fn new(entries: &[UserConfig]) -> Self {
        let users = entries
            .iter()
            .map(|entry| (entry.username.clone(), Arc::new(User::from_entry(entry.clone()))))
            .collect();
        Self { users }
    }
}

impl PasswordSource for LocalUsers {
    fn user(&self, username: &str) -> Option<Arc<User>> {
        self.users.get(username).cloned()
    }

    fn user_by_email(&self, email: &str) -> Option<Arc<User>> {
        let mut found = self
            .users
            .values()
            .filter(|u| u.identity.email().is_some_and(|e| e.eq_ignore_ascii_case(email)));
        // An address two users share links neither.
        match (found.next(), found.next()) {
            (Some(one), None) => Some(one.clone()),
            _ => None,
        }
    }

    fn verify<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
        verification: &'a Verification,
    ) -> SourceFuture<'a> {
        Box::pin(async move {
            let user = self.users.get(username).cloned();
            // An unknown username costs what a known one does: the answer's
            // timing does not tell which usernames exist.
            let hash = match user.as_ref().and_then(|u| u.entry()) {
                Some(entry) => entry.password_hash.clone(),
                None => dummy_hash().to_owned(),
            };
            let matches = verification.argon2(hash, password).await;
            match user {
                Some(user) if matches => Checked::Verified(user),
                Some(_) => Checked::Refused,
                None => Checked::NotHere,
            }
        })
    }
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| crate::password::hash_password("no user has this password"))
}
