//! A person who can sign in, as the sessions and the endpoints see them.

pub(crate) use crate::store::user_uuid;
use std::sync::Arc;

use crate::config::UserConfig;
use crate::store::{Identity, IdentityParts};

/// A user: their entry in the configuration (none for someone an LDAP
/// directory or an outside provider vouched for), and what is made of it
/// once (the identity every session of theirs shares, their stable UUID).
#[derive(Debug)]
pub(crate) struct User {
    entry: Option<UserConfig>,
    /// Shared by all of this user's sessions.
    pub(crate) identity: Arc<Identity>,
    /// Stable across restarts: derived from the username.
    pub(crate) uuid: String,
}

impl User {
    pub(crate) fn from_entry(entry: UserConfig) -> Self {
        Self {
            identity: Identity::from_parts(IdentityParts {
                username: &entry.username,
                email: entry.email.as_deref(),
                name: entry.name.as_deref(),
                groups: &entry.groups,
                ..IdentityParts::default()
            }),
            uuid: user_uuid(&entry.username),
            entry: Some(entry),
        }
    }

    /// The user of `entry` (if any) with another identity: a person from
    /// outside linked to a `[[users]]` entry.
    pub(crate) fn from_entry_with(entry: Option<UserConfig>, identity: Arc<Identity>) -> Self {
        Self {
            uuid: user_uuid(identity.username()),
            identity,
            entry,
        }
    }

    /// Someone a directory or an outside provider vouched for.
    pub(crate) fn outside(identity: Arc<Identity>) -> Self {
        Self {
            uuid: user_uuid(identity.username()),
            identity,
            entry: None,
        }
    }

    /// The entry of `[[users]]`, if the user has one.
    pub(crate) fn entry(&self) -> Option<&UserConfig> {
        self.entry.as_ref()
    }

    pub(crate) fn username(&self) -> &str {
        self.identity.username()
    }

    /// The display name: the configured one, else the username.
    pub(crate) fn name(&self) -> &str {
        self.identity.name().unwrap_or(self.identity.username())
    }

    /// Whether the user may act on everyone's tokens.
    pub(crate) fn is_admin(&self) -> bool {
        self.entry.as_ref().is_some_and(|e| e.admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_uuids_are_stable_and_distinct() {
        let a = user_uuid("alice");
        assert_eq!(a, user_uuid("alice"));
        assert_ne!(a, user_uuid("bob"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "5");
    }
}
