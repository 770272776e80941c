//! The gateway's configuration: `config.toml`, parsed and checked, or
//! built in code with [`ConfigBuilder`].
//!
//! A configuration that cannot work is refused as a whole, with the file,
//! the line and the reason: nothing starts half-configured. Inside, it is
//! one typed section per table of the file, and each component is given
//! only its own.
//!
//! ```
//! let config = authgate::Config::from_toml_str(r#"
//!     [upstream]
//!     url = "http://127.0.0.1:9000"
//!
//!     [[users]]
//!     username = "alice"
//!     password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$Xg9ZCX8mQwa+p0O3uKdXPXmqQh6t1FkOkh2BwW3I3UE"
//! "#).unwrap();
//! assert_eq!(config.token_ttl_secs(), 3600);
//!
//! let err = authgate::Config::from_toml_str("[server]\nlisten = \"nowhere\"\n").unwrap_err();
//! assert_eq!(err.location().unwrap().line, 2);
//! ```

mod access;
mod builder;
mod check;
pub(crate) mod client_rules;
pub(crate) mod defaults;
mod entries;
mod forwarding;
mod providers;
mod raw;
mod second_factor;
mod sections;
mod signing;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use url::Url;

use crate::error::Error;

pub use self::builder::ConfigBuilder;
pub(crate) use self::forwarding::UpstreamCredentials;
pub(crate) use self::providers::{GithubConfig, LdapConfig, OidcConfig, ProviderConfig, ProviderKind};
pub(crate) use self::second_factor::{AuthLevel, WebauthnConfig};
pub(crate) use self::sections::{
    Allowed, AuthConfig, ClientConfig, Grant, Limits, PagesConfig, Policy, Route, ServerConfig, StoreConfig,
    ThrottleConfig, TokensConfig, UpstreamConfig, UserConfig,
};
pub use self::sections::{LogFormat, Upstream};
pub(crate) use self::signing::{SigningAlg, SigningConfig};

/// A checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) source: PathBuf,
    pub(crate) server: ServerConfig,
    pub(crate) upstream: UpstreamConfig,
    pub(crate) routes: Vec<Route>,
    pub(crate) tokens: TokensConfig,
    pub(crate) auth: AuthConfig,
    pub(crate) pages: PagesConfig,
    pub(crate) limits: Limits,
    pub(crate) log_format: LogFormat,
    pub(crate) users: Vec<UserConfig>,
    pub(crate) clients: Vec<ClientConfig>,
    pub(crate) providers: Vec<ProviderConfig>,
    /// `[database] url`, resolved (a SQLite path made absolute, a
    /// PostgreSQL password from its file); `None`: config users only.
    pub(crate) database: Option<String>,
    /// `[audit]`.
    pub(crate) audit: AuditConfig,
    /// `[admin]`.
    pub(crate) admin: AdminConfig,
    /// `[signing]`.
    pub(crate) signing: SigningConfig,
}

/// `[admin]`: who may use the admin API besides `[[users]] admin = true`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct AdminConfig {
    /// Members of these groups (from any source) are admins.
    pub(crate) groups: Vec<String>,
}

/// `[audit]`: where the audit log goes besides the database, and how long
/// the database keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AuditConfig {
    pub(crate) file: Option<PathBuf>,
    pub(crate) retention_days: u64,
}

impl Config {
    /// Reads and checks the configuration file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let source = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format_args!("cannot read {}", path.display()), e))?;
        check::parse(path, &source)
    }

    /// Checks a configuration given as TOML text (named `config.toml` in errors).
    pub fn from_toml_str(source: &str) -> Result<Self, Error> {
        check::parse(Path::new("config.toml"), source)
    }

    /// A configuration built in code rather than read from a file.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::new()
    }

    /// The file the configuration was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The address the gateway listens on (`server.listen`).
    pub fn listen(&self) -> SocketAddr {
        self.server.listen
    }

    /// The same configuration listening on another address (`127.0.0.1:0`
    /// in tests picks a free port).
    pub fn with_listen(mut self, listen: SocketAddr) -> Self {
        self.server.listen = listen;
        self
    }

    /// How many threads serve requests (`server.workers`): by default one
    /// per core this process may run on (its CPU affinity, so `taskset`
    /// is honoured).
    pub fn workers(&self) -> usize {
        self.server
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// How log lines are written (`log.format`).
    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }

    /// The gateway's public base URL (`server.public_url`), if set.
    pub fn public_url(&self) -> Option<&Url> {
        self.server.public_url.as_ref()
    }

    /// Where authenticated traffic goes (`upstream.url` or `upstream.builtin`).
    pub fn upstream(&self) -> &Upstream {
        &self.upstream.target
    }

    /// The same configuration with another upstream URL.
    pub fn with_upstream_url(mut self, url: Url) -> Self {
        self.upstream.target = Upstream::Url(url);
        self
    }

    /// Access token lifetime in seconds (`tokens.ttl_secs`, default 3600).
    pub fn token_ttl_secs(&self) -> u64 {
        self.tokens.ttl_secs
    }

    /// Paths that pass without sign-in (`auth.public_paths`).
    pub fn public_paths(&self) -> &[String] {
        &self.auth.public_paths
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$Xg9ZCX8mQwa+p0O3uKdXPXmqQh6t1FkOkh2BwW3I3UE";

    fn refused(toml: &str) -> Error {
        Config::from_toml_str(toml).expect_err("config should have been refused")
    }

    #[test]
    fn unknown_key_is_refused_with_its_line() {
        let err = refused("[upstream]\nurl = \"http://127.0.0.1:1\"\n\n[tokens]\nttl = 5\n");
        assert_eq!(err.location().unwrap().line, 5, "{err}");
        assert!(err.message().contains("unknown field `ttl`"), "{err}");
    }

    #[test]
    fn bad_toml_is_refused_with_its_line() {
        let err = refused("[upstream]\nurl = \"http://127.0.0.1:1\n");
        assert_eq!(err.location().unwrap().line, 2, "{err}");
    }

    #[test]
    fn malformed_hash_duplicate_user_and_bad_redirect_are_refused() {
        let up = "[upstream]\nurl = \"http://127.0.0.1:1\"\n";
        let err = refused(&format!(
            "{up}[[users]]\nusername = \"a\"\npassword_hash = \"plain\"\n"
        ));
        assert_eq!(err.location().unwrap().line, 5, "{err}");
        let err = refused(&format!(
            "{up}[[users]]\nusername = \"a\"\npassword_hash = \"{HASH}\"\n[[users]]\nusername = \"a\"\npassword_hash = \"{HASH}\"\n"
        ));
        assert!(err.message().contains("duplicate user"), "{err}");
        assert_eq!(err.location().unwrap().line, 7, "{err}");
        let err = refused(&format!(
            "{up}[[clients]]\nclient_id = \"c\"\nredirect_uris = [\"/callback\"]\n"
        ));
        assert!(err.message().contains("not an absolute URL"), "{err}");
        assert_eq!(err.location().unwrap().line, 5, "{err}");
    }

    #[test]
    fn upstream_is_required_and_defaults_apply() {
        let err = refused("[server]\nlisten = \"127.0.0.1:1\"\n");
        assert!(err.message().contains("[upstream]"), "{err}");
        let config = Config::from_toml_str("[upstream]\nbuiltin = \"whoami\"\n").unwrap();
        assert_eq!(config.upstream(), &Upstream::Whoami);
        assert_eq!(config.listen(), "127.0.0.1:8080".parse().unwrap());
    }

    #[test]
    fn duplicate_clients_and_unsafe_branding_are_refused_with_their_lines() {
        let up = "[upstream]\nbuiltin = \"whoami\"\n";
        let client = "[[clients]]\nclient_id = \"c\"\nredirect_uris = [\"https://app.example/cb\"]\n";
        let err = refused(&format!("{up}{client}{client}"));
        assert!(err.message().contains("duplicate client"), "{err}");
        assert_eq!(err.location().unwrap().line, 7, "the second client_id: {err}");
        let err = refused(&format!(
            "{up}[pages]\naccent_color = \"red; }} body {{ display: none\"\n"
        ));
        assert_eq!(err.location().unwrap().line, 4, "{err}");
        let err = refused(&format!("{up}[pages]\nlogo_url = \"javascript:alert(1)\"\n"));
        assert!(err.message().contains("logo_url"), "{err}");
        let ok = Config::from_toml_str(&format!(
            "{up}[pages]\ntitle = \"Acme\"\naccent_color = \"#0a7c4a\"\nlogo_url = \"/static/logo.svg\"\n"
        ))
        .unwrap();
        assert_eq!(ok.pages.branding.accent_color, "#0a7c4a");
    }

    #[test]
    fn upgrades_return_hosts_and_cookie_domain_are_checked_with_their_lines() {
        let up = "[upstream]\nbuiltin = \"whoami\"\n";
        let err = refused("[upstream]\nbuiltin = \"whoami\"\nupgrades = [\"websocket\", \"h2c\"]\n");
        assert_eq!(err.location().unwrap().line, 3, "{err}");
        assert!(err.message().contains("h2c is never forwarded"), "{err}");
        let err = refused(&format!(
            "{up}[[routes]]\npath_prefix = \"/x\"\nbuiltin = \"whoami\"\nupgrades = [\"web socket\"]\n"
        ));
        assert_eq!(err.location().unwrap().line, 6, "{err}");
        for bad in [
            "https://app.example",
            "app.example/x",
            "user@app.example",
            ".example.com:80",
            "",
        ] {
            let err = refused(&format!("{up}[auth]\nreturn_hosts = [\"{bad}\"]\n"));
            assert_eq!(err.location().unwrap().line, 4, "{bad}: {err}");
        }
        for bad in ["https://example.com", "example.com:8080", "localhost", "a..b"] {
            let err = refused(&format!("{up}[auth]\ncookie_domain = \"{bad}\"\n"));
            assert_eq!(err.location().unwrap().line, 4, "{bad}: {err}");
        }
        let ok = Config::from_toml_str(&format!(
            "{up}upgrades = [\"WebSocket\", \"foo\"]\n[auth]\nreturn_hosts = [\"App.Example.com:8443\", \".corp.example\", \"127.0.0.1:8081\"]\ncookie_domain = \".Example.com\"\n"
        ))
        .unwrap();
        assert_eq!(ok.upstream.upgrades, ["websocket", "foo"]);
        assert_eq!(
            ok.auth.return_hosts,
            ["app.example.com:8443", ".corp.example", "127.0.0.1:8081"]
        );
        assert_eq!(ok.auth.cookie_domain.as_deref(), Some("example.com"));
        let default = Config::from_toml_str(up).unwrap();
        assert_eq!(default.upstream.upgrades, ["websocket"]);
        assert!(!default.upstream.underscores_in_headers);
    }

    #[test]
    fn public_paths_must_be_normalized() {
        let err = refused("[upstream]\nbuiltin = \"whoami\"\n[auth]\npublic_paths = [\"/a/../b\"]\n");
        assert_eq!(err.location().unwrap().line, 4, "{err}");
    }
}
