//! [`ConfigBuilder`]: a configuration made in code, checked exactly as
//! `config.toml` is.

use std::net::SocketAddr;
use std::path::Path;

use toml::{Table, Value};

use crate::error::Error;

use super::{check, Config};

/// Builds a [`Config`] in code, for a program that embeds the layer: the
/// same keys as `config.toml` and the same checks (an error names the key
/// and the reason; there is no file to point at). `[upstream]` is the
/// gateway binary's business: a layer ignores it, and the builder fills it
/// in with the built-in upstream unless told otherwise.
///
/// ```
/// use authgate::Config;
///
/// let config = Config::builder()
///     .user("alice", &authgate::hash_password("correct horse"))
///     .public_path("/health")
///     .set("tokens.idle_secs", 900)
///     .build()
///     .unwrap();
/// assert_eq!(config.public_paths(), ["/health"]);
///
/// let err = Config::builder().user("bob", "not a hash").build().unwrap_err();
/// assert!(err.to_string().contains("password_hash is not a PHC hash string"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct ConfigBuilder {
    document: Table,
}

impl ConfigBuilder {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Sets the key at `path` (`"tokens.ttl_secs"`, `"pages.title"`) to
    /// `value`, as the same line of `config.toml` would.
    pub fn set(mut self, path: &str, value: impl Into<Value>) -> Self {
        let mut keys: Vec<&str> = path.split('.').collect();
        let last = keys.pop().unwrap_or_default();
        let mut table = &mut self.document;
        for key in keys {
            let entry = table.entry(key).or_insert_with(|| Value::Table(Table::new()));
            if !entry.is_table() {
                *entry = Value::Table(Table::new());
            }
            table = entry.as_table_mut().expect("made a table just above");
        }
        table.insert(last.to_owned(), value.into());
        self
    }

    /// Appends one entry (`[[users]]`, `[[clients]]`, `[[routes]]`).
    fn push(mut self, array: &str, entry: Table) -> Self {
        let list = self
            .document
            .entry(array)
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = list {
            list.push(Value::Table(entry));
        }
        self
    }

    /// `server.listen`.
    pub fn listen(self, addr: SocketAddr) -> Self {
        self.set("server.listen", addr.to_string())
    }

    /// `server.public_url`.
    pub fn public_url(self, url: &str) -> Self {
        self.set("server.public_url", url)
    }

    /// `upstream.url`: the app the gateway forwards to.
    pub fn upstream_url(self, url: &str) -> Self {
        self.set("upstream.url", url)
    }

    /// `tokens.ttl_secs`.
    pub fn token_ttl_secs(self, secs: u64) -> Self {
        self.set("tokens.ttl_secs", secs.min(i64::MAX as u64) as i64)
    }

    /// One more path that passes without sign-in (`auth.public_paths`).
    pub fn public_path(mut self, path: &str) -> Self {
        let auth = self
            .document
            .entry("auth")
            .or_insert_with(|| Value::Table(Table::new()));
        if let Some(auth) = auth.as_table_mut() {
            let paths = auth
                .entry("public_paths")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(paths) = paths {
                paths.push(Value::from(path));
            }
        }
        self
    }

    /// A user who signs in with the password whose argon2id hash is
    /// `password_hash` ([`hash_password`](crate::hash_password)).
    pub fn user(self, username: &str, password_hash: &str) -> Self {
        let mut entry = Table::new();
        entry.insert("username".into(), username.into());
        entry.insert("password_hash".into(), password_hash.into());
        self.push("users", entry)
    }

    /// An OAuth client; with `secret_hash`, a confidential one.
    pub fn client(self, client_id: &str, secret_hash: Option<&str>, redirect_uris: &[&str]) -> Self {
        let mut entry = Table::new();
        entry.insert("client_id".into(), client_id.into());
        if let Some(hash) = secret_hash {
            entry.insert("client_secret_hash".into(), hash.into());
        }
        entry.insert(
            "redirect_uris".into(),
            Value::Array(redirect_uris.iter().map(|uri| Value::from(*uri)).collect()),
        );
        self.push("clients", entry)
    }

    /// Checks what was set and answers the configuration, or why it cannot
    /// work.
    pub fn build(self) -> Result<Config, Error> {
        let mut document = self.document;
        if !document.contains_key("upstream") {
            let mut upstream = Table::new();
            upstream.insert("builtin".into(), "whoami".into());
            document.insert("upstream".into(), Value::Table(upstream));
        }
        let text = toml::to_string(&document).map_err(|e| {
            Error::new(
                crate::error::ErrorKind::Config,
                format!("cannot write the configuration: {e}"),
            )
        })?;
        check::parse(Path::new("<builder>"), &text).map_err(Error::without_location)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_config_is_checked_as_a_file_is() {
        let hash = crate::password::hash_password("pw");
        let config = Config::builder()
            .user("alice", &hash)
            .user("bob", &hash)
            .client("app", None, &["https://app.example/cb"])
            .public_path("/health")
            .public_path("/assets")
            .token_ttl_secs(120)
            .set("pages.title", "Acme")
            .build()
            .unwrap();
        assert_eq!(config.users.len(), 2);
        assert_eq!(config.clients[0].client_id, "app");
        assert_eq!(config.auth.public_paths, ["/health", "/assets"]);
        assert_eq!(config.tokens.ttl_secs, 120);
        assert_eq!(config.pages.branding.title, "Acme");
        let err = Config::builder()
            .user("a", &hash)
            .user("a", &hash)
            .build()
            .unwrap_err();
        assert!(err.message().contains("duplicate user"), "{err}");
        assert!(err.location().is_none(), "no file to point at");
        let err = Config::builder().set("tokens.ttl", 5).build().unwrap_err();
        assert!(err.message().contains("unknown field `ttl`"), "{err}");
    }
}
