//! An OAuth client, as the endpoints see it.

use std::sync::Arc;

use crate::config::{ClientConfig, Grant};
use crate::store::{ClientGrant, Identity};

/// An OAuth client: its entry in the configuration, and what is made of
/// it once.
#[derive(Debug)]
pub(crate) struct Client {
    entry: ClientConfig,
    /// The client as the subject of its own (client-credentials) tokens.
    pub(crate) identity: Arc<Identity>,
    /// Grants by scope, shared by this client's tokens (a few at most).
    shared_grants: dashmap::DashMap<Option<String>, Arc<ClientGrant>>,
}

/// Past this many distinct scopes, a client's grants are no longer shared.
const SHARED_GRANTS: usize = 64;

impl Client {
    pub(crate) fn from_entry(entry: ClientConfig) -> Self {
        Self {
            identity: Identity::new(&entry.client_id, None),
            shared_grants: dashmap::DashMap::new(),
            entry,
        }
    }

    /// What it was made of.
    pub(crate) fn entry(&self) -> &ClientConfig {
        &self.entry
    }

    pub(crate) fn id(&self) -> &str {
        &self.entry.client_id
    }

    pub(crate) fn secret_hash(&self) -> Option<&str> {
        self.entry.client_secret_hash.as_deref()
    }

    /// The scopes the client may ask for; `None`: any.
    pub(crate) fn scopes(&self) -> Option<&[String]> {
        self.entry.scopes.as_deref()
    }

    /// Whether it may use `code_challenge_method=plain`.
    pub(crate) fn allows_plain_pkce(&self) -> bool {
        self.entry.allow_plain_pkce
    }

    /// The origins whose browser code may call the token endpoints.
    pub(crate) fn cors_origins(&self) -> &[String] {
        &self.entry.cors_origins
    }

    /// The grant of this client with `scope`, shared between its tokens.
    pub(crate) fn grant(&self, scope: Option<&str>) -> Arc<ClientGrant> {
        let key = scope.filter(|s| !s.is_empty()).map(str::to_owned);
        if let Some(grant) = self.shared_grants.get(&key) {
            return grant.clone();
        }
        let grant = ClientGrant::new(self.id(), scope);
        if self.shared_grants.len() < SHARED_GRANTS {
            self.shared_grants.insert(key, grant.clone());
        }
        grant
    }

    /// Whether the client has a secret (RFC 6749 §2.1).
    pub(crate) fn is_confidential(&self) -> bool {
        self.entry.client_secret_hash.is_some()
    }

    pub(crate) fn may_use(&self, grant: Grant) -> bool {
        self.entry.grants.contains(&grant)
    }

    /// The redirect URI to use: the one asked for if it is registered
    /// (exact match), or the only one registered if none was asked for.
    pub(crate) fn redirect_uri<'a>(&'a self, asked: Option<&'a str>) -> Option<&'a str> {
        let registered = &self.entry.redirect_uris;
        match asked {
            Some(uri) => registered.iter().find(|r| r.as_str() == uri).map(String::as_str),
            None if registered.len() == 1 => Some(&registered[0]),
            None => None,
        }
    }
}
