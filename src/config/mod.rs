//! The gateway's configuration: `config.toml`, parsed and checked.
//!
//! A configuration that cannot work is refused as a whole, with the file,
//! the line and the reason: nothing starts half-configured.
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

use std::collections::HashSet;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use argon2::password_hash::PasswordHash;
use serde::Deserialize;
use toml::Spanned;
use url::Url;

use crate::error::Error;

/// Passwords published in this repository (the shipped `config.toml` and
/// the README). A user or client that still has one is refused on any
/// listen address other than loopback.
pub(crate) const PUBLISHED_PASSWORDS: &[&str] = &["authgate-demo", "demo-client-secret"];

/// A checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) source: PathBuf,
    pub(crate) listen: SocketAddr,
    pub(crate) workers: Option<usize>,
    pub(crate) public_url: Option<Url>,
    pub(crate) upstream: Upstream,
    pub(crate) routes: Vec<Route>,
    pub(crate) upstream_connect_timeout: Duration,
    pub(crate) upstream_timeout: Duration,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) upstream_ca_file: Option<PathBuf>,
    /// Let client fields with `_` in their names through
    /// (`upstream.underscores_in_headers`).
    pub(crate) underscores_in_headers: bool,
    /// The protocols a request may upgrade to (`upstream.upgrades`),
    /// lower case.
    pub(crate) upgrades: Vec<String>,
    pub(crate) tls: Option<TlsFiles>,
    pub(crate) token_ttl_secs: u64,
    pub(crate) refresh_ttl_secs: u64,
    pub(crate) max_ttl_secs: u64,
    pub(crate) idle_secs: Option<u64>,
    pub(crate) persist_path: Option<PathBuf>,
    pub(crate) persist_interval: Duration,
    pub(crate) store: StoreConfig,
    pub(crate) public_paths: Vec<String>,
    /// Hosts a sign-in may return to besides the gateway's own origin
    /// (`auth.return_hosts`), lower case; `.example.com` covers its
    /// subdomains.
    pub(crate) return_hosts: Vec<String>,
    /// The session cookie's `Domain` (`auth.cookie_domain`).
    pub(crate) cookie_domain: Option<String>,
    pub(crate) trusted_proxies: Vec<ipnet::IpNet>,
    pub(crate) throttle: ThrottleConfig,
    pub(crate) limits: Limits,
    pub(crate) templates_dir: Option<PathBuf>,
    pub(crate) branding: Branding,
    pub(crate) log_format: LogFormat,
    pub(crate) users: Vec<UserConfig>,
    pub(crate) clients: Vec<ClientConfig>,
}

/// Where authenticated traffic goes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Upstream {
    /// An HTTP server, by URL.
    Url(Url),
    /// The built-in upstream that answers with the request it received.
    Whoami,
}

/// How the sign-in page looks (`[pages] title`, `logo_url`,
/// `accent_color`), without editing the template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Branding {
    pub(crate) title: String,
    pub(crate) logo_url: Option<String>,
    pub(crate) accent_color: String,
}

/// The certificate chain and key that terminate TLS (`[server] tls_cert`,
/// `tls_key`), both PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

/// A route (`[[routes]]`): requests for a host and path prefix go to their
/// own upstream under their own policy. First match wins; `[upstream]` is
/// the default route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) host: Option<String>,
    pub(crate) path_prefix: String,
    pub(crate) upstream: Upstream,
    pub(crate) policy: Policy,
    pub(crate) strip_prefix: bool,
    /// The protocols a request on this route may upgrade to.
    pub(crate) upgrades: Vec<String>,
}

/// Who may use a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Policy {
    /// Anyone, signed in or not.
    Public,
    /// Anyone signed in.
    Authenticated,
    /// Only these users (others get `403`).
    Users(Vec<String>),
}

impl Route {
    /// Whether a request for `host` (port ignored) and the normalized
    /// `path` takes this route.
    pub(crate) fn matches(&self, host: Option<&str>, path: &str) -> bool {
        let host_ok = self.host.as_deref().is_none_or(|want| {
            host.map(|h| {
                h.rsplit_once(':').map_or(h, |(name, port)| {
                    if port.bytes().all(|b| b.is_ascii_digit()) {
                        name
                    } else {
                        h
                    }
                })
            })
            .is_some_and(|h| h.eq_ignore_ascii_case(want))
        });
        host_ok
            && path
                .strip_prefix(self.path_prefix.trim_end_matches('/'))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || self.path_prefix == "/")
    }

    /// `path` as the route's upstream sees it: with `strip_prefix`, the
    /// prefix's segments taken off (segment by segment, so a prefix
    /// segment carrying `;` parameters goes whole).
    pub(crate) fn upstream_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        if !self.strip_prefix {
            return path.into();
        }
        let mut rest = path;
        for _ in self.path_prefix.split('/').filter(|s| !s.is_empty()) {
            let segment = rest.trim_start_matches('/');
            rest = segment.find('/').map_or("", |at| &segment[at..]);
        }
        match rest.is_empty() {
            true => "/".into(),
            false => rest.into(),
        }
    }
}

/// How log lines are written (`[log] format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where tokens are kept (`[tokens] store`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StoreConfig {
    Memory,
    Redis {
        url: String,
        prefix: String,
        cache_for: Duration,
    },
}

/// Brute-force throttling (`[auth]`): failures counted in a sliding
/// window, per username (or client) and per client address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ThrottleConfig {
    pub(crate) max_failures_per_user: u32,
    pub(crate) max_failures_per_address: u32,
    pub(crate) window_secs: u64,
    pub(crate) max_entries: usize,
}

/// Limits on what a client may send (`[limits]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) max_header_bytes: usize,
    pub(crate) max_headers: usize,
    pub(crate) max_body_bytes: usize,
    pub(crate) header_read_timeout: Duration,
    pub(crate) max_connections: usize,
}

/// A user who can sign in.
#[derive(Clone, Debug)]
pub(crate) struct UserConfig {
    pub(crate) username: String,
    pub(crate) password_hash: String,
    pub(crate) email: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) admin: bool,
    /// Where the entry starts in the file, for later complaints.
    pub(crate) span: Range<usize>,
}

/// An OAuth client.
#[derive(Clone, Debug)]
pub(crate) struct ClientConfig {
    pub(crate) client_id: String,
    pub(crate) client_secret_hash: Option<String>,
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) grants: Vec<Grant>,
    /// `None`: any scope may be asked for.
    pub(crate) scopes: Option<Vec<String>>,
    pub(crate) allow_plain_pkce: bool,
    pub(crate) cors_origins: Vec<String>,
    pub(crate) span: Range<usize>,
}

/// An OAuth grant a client may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Grant {
    AuthorizationCode,
    Implicit,
    Password,
    ClientCredentials,
    RefreshToken,
}

impl Grant {
    pub(crate) const ALL: [Grant; 5] = [
        Grant::AuthorizationCode,
        Grant::Implicit,
        Grant::Password,
        Grant::ClientCredentials,
        Grant::RefreshToken,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Grant::AuthorizationCode => "authorization_code",
            Grant::Implicit => "implicit",
            Grant::Password => "password",
            Grant::ClientCredentials => "client_credentials",
            Grant::RefreshToken => "refresh_token",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    upstream: Option<Spanned<RawUpstream>>,
    #[serde(default)]
    tokens: RawTokens,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    pages: RawPages,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    routes: Vec<Spanned<RawRoute>>,
    #[serde(default)]
    users: Vec<Spanned<RawUser>>,
    #[serde(default)]
    clients: Vec<Spanned<RawClient>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<String>>,
    public_url: Option<Spanned<String>>,
    #[serde(default)]
    trusted_proxies: Vec<Spanned<String>>,
    workers: Option<Spanned<u64>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<LogFormat>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_header_bytes: Option<Spanned<u64>>,
    max_headers: Option<Spanned<u64>>,
    max_body_bytes: Option<Spanned<u64>>,
    header_read_timeout_secs: Option<Spanned<u64>>,
    max_connections: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    url: Option<Spanned<String>>,
    builtin: Option<Spanned<String>>,
    connect_timeout_secs: Option<Spanned<u64>>,
    timeout_secs: Option<Spanned<u64>>,
    ca_file: Option<Spanned<String>>,
    #[serde(default)]
    underscores_in_headers: bool,
    upgrades: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    ttl_secs: Option<Spanned<u64>>,
    refresh_ttl_secs: Option<Spanned<u64>>,
    max_ttl_secs: Option<Spanned<u64>>,
    idle_secs: Option<Spanned<u64>>,
    persist_path: Option<Spanned<String>>,
    persist_interval_secs: Option<Spanned<u64>>,
    store: Option<Spanned<String>>,
    redis_url: Option<Spanned<String>>,
    redis_prefix: Option<String>,
    cache_secs: Option<Spanned<u64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(default)]
    public_paths: Vec<Spanned<String>>,
    max_failures_per_user: Option<Spanned<u64>>,
    max_failures_per_address: Option<Spanned<u64>>,
    failure_window_secs: Option<Spanned<u64>>,
    throttle_max_entries: Option<Spanned<u64>>,
    #[serde(default)]
    return_hosts: Vec<Spanned<String>>,
    cookie_domain: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPages {
    templates_dir: Option<Spanned<String>>,
    title: Option<Spanned<String>>,
    logo_url: Option<Spanned<String>>,
    accent_color: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    host: Option<String>,
    path_prefix: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    builtin: Option<Spanned<String>>,
    policy: Option<Spanned<String>>,
    allowed_users: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    strip_prefix: bool,
    upgrades: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    username: Spanned<String>,
    password_hash: Spanned<String>,
    email: Option<Spanned<String>>,
    name: Option<String>,
    #[serde(default)]
    admin: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    client_id: Spanned<String>,
    client_secret_hash: Option<Spanned<String>>,
    #[serde(default)]
    redirect_uris: Vec<Spanned<String>>,
    grants: Option<Spanned<Vec<Grant>>>,
    scopes: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    allow_plain_pkce: bool,
    #[serde(default)]
    cors_origins: Vec<Spanned<String>>,
}

/// Checks one file's values, remembering which file for error messages.
struct Checker<'a> {
    file: &'a Path,
    source: &'a str,
}

impl Checker<'_> {
    fn error(&self, span: &Range<usize>, message: impl Into<String>) -> Error {
        Error::config_at(self.file, self.source, span.start, message)
    }

    fn fail<T>(&self, span: &Range<usize>, message: impl Into<String>) -> Result<T, Error> {
        Err(self.error(span, message))
    }

    fn listen(&self, raw: Option<Spanned<String>>) -> Result<SocketAddr, Error> {
        let Some(raw) = raw else {
            return Ok(SocketAddr::from(([127, 0, 0, 1], 8080)));
        };
        raw.get_ref().parse().or_else(|_| {
            self.fail(
                &raw.span(),
                format!(
                    "server.listen = {:?} is not an address: write IP:port, like \"127.0.0.1:8080\"",
                    raw.get_ref()
                ),
            )
        })
    }

    fn http_url(&self, key: &str, raw: &Spanned<String>) -> Result<Url, Error> {
        let url = Url::parse(raw.get_ref()).map_err(|e| {
            self.error(
                &raw.span(),
                format!("{key} = {:?} is not a URL: {e}", raw.get_ref()),
            )
        })?;
        match url.scheme() {
            "http" => {}
            "https" if key == "server.public_url" || cfg!(feature = "tls") => {}
            "https" => {
                return self.fail(
                    &raw.span(),
                    format!(
                        "{key}: https upstreams need the tls feature, which this authgate was built without"
                    ),
                )
            }
            other => {
                return self.fail(
                    &raw.span(),
                    format!("{key}: the scheme must be http or https, not {other:?}"),
                )
            }
        }
        if url.host_str().is_none() {
            return self.fail(&raw.span(), format!("{key} = {:?} has no host", raw.get_ref()));
        }
        if url.query().is_some() || url.fragment().is_some() || url.path() != "/" {
            return self.fail(
                &raw.span(),
                format!(
                    "{key} = {:?} must be an origin only (scheme, host, port), with no path, query or fragment",
                    raw.get_ref()
                ),
            );
        }
        Ok(url)
    }

    fn routes(
        &self,
        raw: Vec<Spanned<RawRoute>>,
        users: &[UserConfig],
        default_upgrades: &[String],
    ) -> Result<Vec<Route>, Error> {
        raw.into_iter()
            .map(|route| {
                let span = route.span();
                let route = route.into_inner();
                let upstream = match (&route.url, &route.builtin) {
                    (Some(url), None) => Upstream::Url(self.http_url("routes.url", url)?),
                    (None, Some(b)) if b.get_ref() == "whoami" => Upstream::Whoami,
                    _ => return self.fail(&span, "a route needs url = \"http://HOST:PORT\" (or builtin = \"whoami\"), one of them"),
                };
                let path_prefix = match &route.path_prefix {
                    None => "/".to_owned(),
                    Some(prefix) => {
                        let text = prefix.get_ref();
                        if crate::web::paths::normalize(text).as_deref() != Some(text.as_str()) || text.contains(['?', '#', '%']) {
                            return self.fail(&prefix.span(), format!("path_prefix {text:?} must be a normalized path starting with /"));
                        }
                        text.clone()
                    }
                };
                let policy = match (route.policy.as_ref().map(|p| p.get_ref().as_str()), &route.allowed_users) {
                    (Some("public"), None) => Policy::Public,
                    (Some("authenticated") | None, None) => Policy::Authenticated,
                    (Some("authenticated") | None, Some(allowed)) => {
                        if let Some(unknown) = allowed.get_ref().iter().find(|u| !users.iter().any(|c| &c.username == *u)) {
                            return self.fail(&allowed.span(), format!("allowed_users names {unknown:?}, who is not in [[users]]"));
                        }
                        Policy::Users(allowed.get_ref().clone())
                    }
                    (Some(other), _) => {
                        let at = route.policy.as_ref().map_or(span.clone(), Spanned::span);
                        return self.fail(
                            &at,
                            format!("policy {other:?}: use \"public\" or \"authenticated\" (with allowed_users to name who)"),
                        );
                    }
                };
                if route.strip_prefix && path_prefix == "/" {
                    return self.fail(&span, "strip_prefix needs a path_prefix other than /");
                }
                let upgrades = match &route.upgrades {
                    Some(list) => self.upgrades(list)?,
                    None => default_upgrades.to_vec(),
                };
                Ok(Route {
                    host: route.host.map(|h| h.to_ascii_lowercase()),
                    path_prefix,
                    upstream,
                    policy,
                    strip_prefix: route.strip_prefix,
                    upgrades,
                })
            })
            .collect()
    }

    /// `[server] tls_cert` and `tls_key`: both or neither, each readable and
    /// matching.
    fn tls(
        &self,
        cert: Option<Spanned<String>>,
        key: Option<Spanned<String>>,
    ) -> Result<Option<TlsFiles>, Error> {
        let (cert, key) = match (cert, key) {
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => (cert, key),
            (Some(one), None) | (None, Some(one)) => {
                return self.fail(
                    &one.span(),
                    "set both server.tls_cert and server.tls_key (PEM files), or neither",
                )
            }
        };
        let files = TlsFiles {
            cert: relative_to(self.file, cert.get_ref()),
            key: relative_to(self.file, key.get_ref()),
        };
        #[cfg(feature = "tls")]
        if let Err(reason) = crate::tls::server_config(&files.cert, &files.key) {
            return self.fail(&cert.span(), reason);
        }
        #[cfg(not(feature = "tls"))]
        {
            drop(files);
            return self.fail(
                &cert.span(),
                "TLS needs the tls feature, which this authgate was built without",
            );
        }
        #[allow(unreachable_code)]
        Ok(Some(files))
    }

    fn upstream(&self, raw: Option<Spanned<RawUpstream>>) -> Result<(Upstream, Duration, Duration), Error> {
        let Some(raw) = raw else {
            return self.fail(
                &(0..0),
                "missing [upstream]: set url = \"http://HOST:PORT\", or builtin = \"whoami\" to try the gateway with no app",
            );
        };
        let span = raw.span();
        let raw = raw.into_inner();
        let upstream = match (&raw.url, &raw.builtin) {
            (Some(_), Some(builtin)) => {
                return self.fail(&builtin.span(), "upstream: set either url or builtin, not both")
            }
            (Some(url), None) => Upstream::Url(self.http_url("upstream.url", url)?),
            (None, Some(builtin)) if builtin.get_ref() == "whoami" => Upstream::Whoami,
            (None, Some(builtin)) => {
                return self.fail(
                    &builtin.span(),
                    format!(
                        "upstream.builtin = {:?}: the only built-in upstream is \"whoami\"",
                        builtin.get_ref()
                    ),
                )
            }
            (None, None) => {
                return self.fail(
                    &span,
                    "[upstream] needs url = \"http://HOST:PORT\", or builtin = \"whoami\"",
                )
            }
        };
        let connect = self.seconds("upstream.connect_timeout_secs", raw.connect_timeout_secs, 5)?;
        let timeout = self.seconds("upstream.timeout_secs", raw.timeout_secs, 60)?;
        Ok((
            upstream,
            Duration::from_secs(connect),
            Duration::from_secs(timeout),
        ))
    }

    fn seconds(&self, key: &str, raw: Option<Spanned<u64>>, default: u64) -> Result<u64, Error> {
        match raw {
            None => Ok(default),
            Some(value) if *value.get_ref() == 0 => {
                self.fail(&value.span(), format!("{key} must be at least 1"))
            }
            Some(value) if *value.get_ref() > 10 * 365 * 24 * 3600 => {
                self.fail(&value.span(), format!("{key} is more than ten years"))
            }
            Some(value) => Ok(value.into_inner()),
        }
    }

    /// A count between `min` and `max`, or `default`.
    fn count(
        &self,
        key: &str,
        raw: Option<Spanned<u64>>,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, Error> {
        match raw {
            None => Ok(default),
            Some(value) if !(min..=max).contains(value.get_ref()) => {
                self.fail(&value.span(), format!("{key} must be between {min} and {max}"))
            }
            Some(value) => Ok(value.into_inner()),
        }
    }

    fn store(
        &self,
        store: &Option<Spanned<String>>,
        redis_url: &Option<Spanned<String>>,
        redis_prefix: &Option<String>,
        cache_secs: &Option<Spanned<u64>>,
    ) -> Result<StoreConfig, Error> {
        let kind = store.as_ref().map_or("memory", |s| s.get_ref().as_str());
        match kind {
            "memory" => Ok(StoreConfig::Memory),
            "redis" if !cfg!(feature = "redis") => self.fail(
                &store.as_ref().map_or(0..0, Spanned::span),
                "tokens.store = \"redis\", but this authgate was built without the redis feature",
            ),
            "redis" => {
                let url = redis_url
                    .as_ref()
                    .map_or("redis://127.0.0.1:6379", |u| u.get_ref().as_str());
                if !(url.starts_with("redis://")
                    || url.starts_with("rediss://")
                    || url.starts_with("unix://"))
                {
                    let span = redis_url.as_ref().map_or(0..0, Spanned::span);
                    return self.fail(
                        &span,
                        format!("tokens.redis_url = {url:?} must start with redis://"),
                    );
                }
                let cache = cache_secs.clone();
                Ok(StoreConfig::Redis {
                    url: url.to_owned(),
                    prefix: redis_prefix.clone().unwrap_or_else(|| "authgate:".to_owned()),
                    cache_for: Duration::from_secs(self.seconds("tokens.cache_secs", cache, 10)?),
                })
            }
            other => self.fail(
                &store.as_ref().map_or(0..0, Spanned::span),
                format!("tokens.store = {other:?}: use \"memory\" or \"redis\""),
            ),
        }
    }

    fn branding(&self, pages: &RawPages) -> Result<Branding, Error> {
        let title = match &pages.title {
            Some(t)
                if t.get_ref().trim().is_empty()
                    || t.get_ref().len() > 120
                    || t.get_ref().chars().any(char::is_control) =>
            {
                return self.fail(
                    &t.span(),
                    "pages.title must be 1 to 120 characters, with no control characters",
                )
            }
            Some(t) => t.get_ref().clone(),
            None => "Sign in".to_owned(),
        };
        let logo_url = match &pages.logo_url {
            Some(u) => {
                let text = u.get_ref();
                let web = Url::parse(text).is_ok_and(|url| matches!(url.scheme(), "https" | "http"));
                let local = crate::web::paths::safe_return_path(text).is_some();
                if !(web || local) || text.contains(['"', '\'', ' ', '<', '>']) {
                    return self.fail(
                        &u.span(),
                        format!("pages.logo_url {text:?} must be an http(s) URL or a path on this site"),
                    );
                }
                Some(text.clone())
            }
            None => None,
        };
        let accent_color = match &pages.accent_color {
            Some(c) => {
                let text = c.get_ref();
                let hex = text.strip_prefix('#').is_some_and(|h| {
                    matches!(h.len(), 3 | 4 | 6 | 8) && h.bytes().all(|b| b.is_ascii_hexdigit())
                });
                let named =
                    !text.is_empty() && text.len() <= 24 && text.bytes().all(|b| b.is_ascii_alphabetic());
                if !(hex || named) {
                    return self.fail(
                        &c.span(),
                        format!("pages.accent_color {text:?} must be #rgb, #rrggbb or a CSS colour name"),
                    );
                }
                text.clone()
            }
            None => "#2557d6".to_owned(),
        };
        Ok(Branding {
            title,
            logo_url,
            accent_color,
        })
    }

    fn trusted_proxies(&self, raw: Vec<Spanned<String>>) -> Result<Vec<ipnet::IpNet>, Error> {
        raw.iter()
            .map(|entry| {
                let text = entry.get_ref();
                text.parse::<ipnet::IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .or_else(|_| {
                        self.fail(
                            &entry.span(),
                            format!("trusted proxy {text:?} is not an IP address or CIDR range (like \"10.0.0.0/8\")"),
                        )
                    })
            })
            .collect()
    }

    fn password_hash(&self, key: &str, raw: &Spanned<String>) -> Result<(), Error> {
        let hint = "run `authgate hash-password` and paste what it prints";
        let hash = PasswordHash::new(raw.get_ref()).map_err(|e| {
            self.error(
                &raw.span(),
                format!("{key} is not a PHC hash string ({e}): {hint}"),
            )
        })?;
        if hash.algorithm.as_str() != "argon2id" {
            return self.fail(
                &raw.span(),
                format!(
                    "{key} uses {}, but only argon2id is accepted: {hint}",
                    hash.algorithm
                ),
            );
        }
        if argon2::Params::try_from(&hash).is_err() || hash.hash.is_none() || hash.salt.is_none() {
            return self.fail(
                &raw.span(),
                format!("{key} has invalid argon2id parameters: {hint}"),
            );
        }
        Ok(())
    }

    fn users(&self, raw: Vec<Spanned<RawUser>>) -> Result<Vec<UserConfig>, Error> {
        let mut seen = HashSet::new();
        raw.into_iter()
            .map(|user| {
                let span = user.span();
                let user = user.into_inner();
                let name = user.username.get_ref();
                if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
                    return self.fail(
                        &user.username.span(),
                        "username must be 1 to 256 characters, with no control characters",
                    );
                }
                if !seen.insert(name.clone()) {
                    return self.fail(&user.username.span(), format!("duplicate user {name:?}"));
                }
                self.password_hash("password_hash", &user.password_hash)?;
                if let Some(email) = &user.email {
                    let e = email.get_ref();
                    if !e.contains('@') || e.chars().any(|c| c.is_control() || c.is_whitespace()) {
                        return self.fail(&email.span(), format!("email {e:?} is not an email address"));
                    }
                }
                Ok(UserConfig {
                    username: user.username.into_inner(),
                    password_hash: user.password_hash.into_inner(),
                    email: user.email.map(Spanned::into_inner),
                    name: user.name,
                    admin: user.admin,
                    span,
                })
            })
            .collect()
    }

    fn clients(&self, raw: Vec<Spanned<RawClient>>) -> Result<Vec<ClientConfig>, Error> {
        let mut seen = HashSet::new();
        raw.into_iter()
            .map(|client| {
                let span = client.span();
                let client = client.into_inner();
                let id = client.client_id.get_ref();
                if id.is_empty() || id.len() > 256 || !id.chars().all(|c| c.is_ascii_graphic()) {
                    return self.fail(
                        &client.client_id.span(),
                        "client_id must be 1 to 256 visible ASCII characters",
                    );
                }
                if !seen.insert(id.clone()) {
                    return self.fail(&client.client_id.span(), format!("duplicate client {id:?}"));
                }
                if let Some(hash) = &client.client_secret_hash {
                    self.password_hash("client_secret_hash", hash)?;
                }
                let confidential = client.client_secret_hash.is_some();
                let grants = match &client.grants {
                    Some(grants) => {
                        if grants.get_ref().contains(&Grant::ClientCredentials) && !confidential {
                            return self.fail(
                                &grants.span(),
                                format!("client {id:?} has no client_secret_hash, so it cannot use client_credentials"),
                            );
                        }
                        grants.get_ref().clone()
                    }
                    None if confidential => Grant::ALL.to_vec(),
                    None => Grant::ALL.into_iter().filter(|g| *g != Grant::ClientCredentials).collect(),
                };
                let redirects = grants.iter().any(|g| matches!(g, Grant::AuthorizationCode | Grant::Implicit));
                if redirects && client.redirect_uris.is_empty() {
                    return self.fail(
                        &client.client_id.span(),
                        format!("client {id:?} has no redirect_uris: list at least one absolute URL"),
                    );
                }
                let scopes = match &client.scopes {
                    None => None,
                    Some(scopes) => Some(
                        scopes
                            .iter()
                            .map(|scope| {
                                let text = scope.get_ref();
                                if crate::oauth::is_scope_token(text) {
                                    Ok(text.clone())
                                } else {
                                    self.fail(&scope.span(), format!("scope {text:?} is not a valid scope token (RFC 6749 §3.3)"))
                                }
                            })
                            .collect::<Result<Vec<_>, _>>()?,
                    ),
                };
                let mut cors_origins = Vec::new();
                for origin in &client.cors_origins {
                    let text = origin.get_ref();
                    match Url::parse(text) {
                        Ok(url)
                            if matches!(url.scheme(), "http" | "https")
                                && url.origin().ascii_serialization() == *text =>
                        {
                            cors_origins.push(text.clone())
                        }
                        _ => {
                            return self.fail(
                                &origin.span(),
                                format!("cors origin {text:?} must be an origin like \"https://app.example\" (scheme, host, port; no path, no trailing slash)"),
                            )
                        }
                    }
                }
                let mut uris = Vec::with_capacity(client.redirect_uris.len());
                for uri in &client.redirect_uris {
                    let text = uri.get_ref();
                    if !text.chars().all(|c| c.is_ascii_graphic()) {
                        return self.fail(
                            &uri.span(),
                            format!("redirect URI {text:?} must be written in visible ASCII (percent-encode the rest)"),
                        );
                    }
                    match Url::parse(text) {
                        Ok(url) if url.fragment().is_some() => {
                            return self.fail(
                                &uri.span(),
                                format!("redirect URI {text:?} has a fragment, which RFC 6749 §3.1.2 forbids"),
                            )
                        }
                        Ok(url) if url.cannot_be_a_base() && url.scheme() != "urn" => {
                            return self.fail(
                                &uri.span(),
                                format!("redirect URI {text:?} is not an absolute URL with a path"),
                            )
                        }
                        Ok(_) => uris.push(text.clone()),
                        Err(e) => {
                            return self.fail(
                                &uri.span(),
                                format!("redirect URI {text:?} is not an absolute URL ({e})"),
                            )
                        }
                    }
                }
                Ok(ClientConfig {
                    client_id: client.client_id.into_inner(),
                    client_secret_hash: client.client_secret_hash.map(Spanned::into_inner),
                    redirect_uris: uris,
                    grants,
                    scopes,
                    allow_plain_pkce: client.allow_plain_pkce,
                    cors_origins,
                    span,
                })
            })
            .collect()
    }

    /// `upgrades`: protocol names a request may upgrade to. `h2c` never:
    /// a tunnel to an upstream's HTTP/2 would carry requests the gateway
    /// never checked.
    fn upgrades(&self, raw: &[Spanned<String>]) -> Result<Vec<String>, Error> {
        raw.iter()
            .map(|entry| {
                let text = entry.get_ref().to_ascii_lowercase();
                if text == "h2c" {
                    return self.fail(
                        &entry.span(),
                        "upgrades: h2c is never forwarded (requests inside the tunnel would skip the sign-in check)",
                    );
                }
                if text.is_empty() || !text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
                    return self.fail(
                        &entry.span(),
                        format!("upgrades: {:?} is not a protocol name (like \"websocket\")", entry.get_ref()),
                    );
                }
                Ok(text)
            })
            .collect()
    }

    /// `auth.return_hosts`: `host`, `host:port`, or `.domain` for every
    /// host under it.
    fn return_hosts(&self, raw: Vec<Spanned<String>>) -> Result<Vec<String>, Error> {
        raw.into_iter()
            .map(|entry| {
                let text = entry.get_ref().to_ascii_lowercase();
                let bare = text.strip_prefix('.').unwrap_or(&text);
                let parsed = Url::parse(&format!("http://{bare}/")).ok().filter(|url| {
                    let host = url.host_str().unwrap_or_default();
                    let written = match url.port() {
                        Some(port) => format!("{host}:{port}"),
                        None => host.to_owned(),
                    };
                    written == bare && url.username().is_empty()
                });
                if parsed.is_none() || (text.starts_with('.') && bare.contains(':')) {
                    return self.fail(
                        &entry.span(),
                        format!(
                            "auth.return_hosts: {:?} must be a host (\"app.example.com\"), a host and port, or \".example.com\" for every host under it",
                            entry.get_ref()
                        ),
                    );
                }
                Ok(text)
            })
            .collect()
    }

    fn cookie_domain(&self, raw: Option<Spanned<String>>) -> Result<Option<String>, Error> {
        let Some(raw) = raw else { return Ok(None) };
        let text = raw.get_ref().trim_start_matches('.').to_ascii_lowercase();
        let ok = !text.is_empty()
            && text.contains('.')
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            && !text.split('.').any(str::is_empty);
        if !ok {
            return self.fail(
                &raw.span(),
                format!(
                    "auth.cookie_domain = {:?} must be a domain name like \"example.com\" (no scheme, port or path)",
                    raw.get_ref()
                ),
            );
        }
        Ok(Some(text))
    }

    fn public_paths(&self, raw: Vec<Spanned<String>>) -> Result<Vec<String>, Error> {
        raw.into_iter()
            .map(|path| {
                let text = path.get_ref();
                if !text.starts_with('/') || text.contains(['?', '#', '%', '\\']) || text.chars().any(char::is_control) {
                    return self.fail(
                        &path.span(),
                        format!("public path {text:?} must start with / and hold no ?, #, %, \\ or control characters"),
                    );
                }
                let normal = crate::web::paths::normalize(text);
                if normal.as_deref() != Some(text.as_str()) {
                    return self.fail(
                        &path.span(),
                        format!("public path {text:?} is not normalized (no ., .. or empty segments)"),
                    );
                }
                Ok(path.into_inner())
            })
            .collect()
    }
}

/// `path` as written in `file`: relative paths are taken from the file's
/// folder.
fn relative_to(file: &Path, path: &str) -> PathBuf {
    let path = PathBuf::from(path);
    if path.is_relative() {
        file.parent().unwrap_or(Path::new(".")).join(path)
    } else {
        path
    }
}

impl Config {
    /// Reads and checks the configuration file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let source = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format_args!("cannot read {}", path.display()), e))?;
        Self::parse(path, &source)
    }

    /// Checks a configuration given as TOML text (named `config.toml` in errors).
    pub fn from_toml_str(source: &str) -> Result<Self, Error> {
        Self::parse(Path::new("config.toml"), source)
    }

    fn parse(file: &Path, source: &str) -> Result<Self, Error> {
        let raw: RawConfig = toml::from_str(source).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            Error::config_at(file, source, offset, e.message().trim_end().to_string())
        })?;
        let check = Checker { file, source };
        let listen = check.listen(raw.server.listen)?;
        let workers = match raw.server.workers {
            None => None,
            some => Some(check.count("server.workers", some, 1, 1, 1024)? as usize),
        };
        let public_url = raw
            .server
            .public_url
            .as_ref()
            .map(|url| check.http_url("server.public_url", url))
            .transpose()?;
        let upstream_ca_file = raw
            .upstream
            .as_ref()
            .and_then(|u| u.get_ref().ca_file.as_ref())
            .map(|path| relative_to(file, path.get_ref()));
        let underscores_in_headers = raw
            .upstream
            .as_ref()
            .is_some_and(|u| u.get_ref().underscores_in_headers);
        let upgrades = match raw.upstream.as_ref().and_then(|u| u.get_ref().upgrades.as_ref()) {
            Some(list) => check.upgrades(list)?,
            None => vec!["websocket".to_owned()],
        };
        let (upstream, upstream_connect_timeout, upstream_timeout) = check.upstream(raw.upstream)?;
        let tls = check.tls(raw.server.tls_cert, raw.server.tls_key)?;
        let token_ttl_secs = check.seconds("tokens.ttl_secs", raw.tokens.ttl_secs, 3600)?;
        let refresh_ttl_secs =
            check.seconds("tokens.refresh_ttl_secs", raw.tokens.refresh_ttl_secs, 30 * 86400)?;
        let max_span = raw.tokens.max_ttl_secs.as_ref().map(Spanned::span);
        let max_ttl_secs = check.seconds("tokens.max_ttl_secs", raw.tokens.max_ttl_secs, 7 * 86400)?;
        if max_ttl_secs < token_ttl_secs {
            return check.fail(
                &max_span.unwrap_or(0..0),
                format!(
                    "tokens.max_ttl_secs ({max_ttl_secs}) is less than tokens.ttl_secs ({token_ttl_secs})"
                ),
            );
        }
        let store = check.store(
            &raw.tokens.store,
            &raw.tokens.redis_url,
            &raw.tokens.redis_prefix,
            &raw.tokens.cache_secs,
        )?;
        if store != StoreConfig::Memory && raw.tokens.persist_path.is_some() {
            return check.fail(
                &raw.tokens.persist_path.as_ref().map_or(0..0, Spanned::span),
                "tokens.persist_path is for store = \"memory\"; Redis keeps the sessions itself",
            );
        }
        let idle_secs = match raw.tokens.idle_secs {
            None => None,
            some => Some(check.seconds("tokens.idle_secs", some, 0)?),
        };
        let persist_path = raw.tokens.persist_path.map(|p| relative_to(file, p.get_ref()));
        let persist_interval = Duration::from_secs(check.seconds(
            "tokens.persist_interval_secs",
            raw.tokens.persist_interval_secs,
            30,
        )?);
        let public_paths = check.public_paths(raw.auth.public_paths)?;
        let return_hosts = check.return_hosts(raw.auth.return_hosts)?;
        let cookie_domain = check.cookie_domain(raw.auth.cookie_domain)?;
        let trusted_proxies = check.trusted_proxies(raw.server.trusted_proxies)?;
        let throttle = ThrottleConfig {
            max_failures_per_user: check.count(
                "auth.max_failures_per_user",
                raw.auth.max_failures_per_user,
                10,
                1,
                1_000_000,
            )? as u32,
            max_failures_per_address: check.count(
                "auth.max_failures_per_address",
                raw.auth.max_failures_per_address,
                50,
                1,
                1_000_000,
            )? as u32,
            window_secs: check.seconds("auth.failure_window_secs", raw.auth.failure_window_secs, 300)?,
            max_entries: check.count(
                "auth.throttle_max_entries",
                raw.auth.throttle_max_entries,
                100_000,
                100,
                100_000_000,
            )? as usize,
        };
        let l = raw.limits;
        let limits = Limits {
            max_header_bytes: check.count(
                "limits.max_header_bytes",
                l.max_header_bytes,
                64 * 1024,
                8192,
                16 << 20,
            )? as usize,
            max_headers: check.count("limits.max_headers", l.max_headers, 100, 16, 10_000)? as usize,
            max_body_bytes: check.count(
                "limits.max_body_bytes",
                l.max_body_bytes,
                64 * 1024,
                1024,
                64 << 20,
            )? as usize,
            header_read_timeout: Duration::from_secs(check.seconds(
                "limits.header_read_timeout_secs",
                l.header_read_timeout_secs,
                10,
            )?),
            max_connections: check.count("limits.max_connections", l.max_connections, 10_000, 1, 1_000_000)?
                as usize,
        };
        let branding = check.branding(&raw.pages)?;
        let templates_dir = raw
            .pages
            .templates_dir
            .map(|dir| relative_to(file, dir.get_ref()));
        let users = check.users(raw.users)?;
        let routes = check.routes(raw.routes, &users, &upgrades)?;
        let clients = check.clients(raw.clients)?;
        let config = Self {
            source: file.to_path_buf(),
            listen,
            workers,
            public_url,
            upstream,
            routes,
            upstream_connect_timeout,
            upstream_timeout,
            upstream_ca_file,
            underscores_in_headers,
            upgrades,
            tls,
            token_ttl_secs,
            refresh_ttl_secs,
            max_ttl_secs,
            idle_secs,
            persist_path,
            persist_interval,
            store,
            public_paths,
            return_hosts,
            cookie_domain,
            trusted_proxies,
            throttle,
            limits,
            templates_dir,
            branding,
            log_format: raw.log.format.unwrap_or(LogFormat::Text),
            users,
            clients,
        };
        config.refuse_published_passwords(source)?;
        Ok(config)
    }

    /// Refuses a user or client that still has a password published in this
    /// repository, unless the gateway only listens on loopback.
    fn refuse_published_passwords(&self, source: &str) -> Result<(), Error> {
        if self.listen.ip().is_loopback() {
            return Ok(());
        }
        let published = |hash: &str| {
            PUBLISHED_PASSWORDS
                .iter()
                .any(|password| crate::identity::verify_hash(hash, password))
        };
        for user in &self.users {
            if published(&user.password_hash) {
                return Err(Error::config_at(
                    &self.source,
                    source,
                    user.span.start,
                    format!(
                        "user {:?} has the demo password published in the authgate repository, and server.listen = {} is not loopback: \
                         run `authgate hash-password`, type a password of your own, and put its output in password_hash",
                        user.username, self.listen
                    ),
                ));
            }
        }
        for client in &self.clients {
            if client.client_secret_hash.as_deref().is_some_and(published) {
                return Err(Error::config_at(
                    &self.source,
                    source,
                    client.span.start,
                    format!(
                        "client {:?} has the demo secret published in the authgate repository, and server.listen = {} is not loopback: \
                         run `authgate hash-password` with a secret of your own and put its output in client_secret_hash",
                        client.client_id, self.listen
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The file the configuration was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The address the gateway listens on (`server.listen`).
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The same configuration listening on another address (`127.0.0.1:0`
    /// in tests picks a free port).
    pub fn with_listen(mut self, listen: SocketAddr) -> Self {
        self.listen = listen;
        self
    }

    /// How many threads serve requests (`server.workers`): by default one
    /// per core this process may run on (its CPU affinity, so `taskset`
    /// is honoured).
    pub fn workers(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// How log lines are written (`log.format`).
    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }

    /// The gateway's public base URL (`server.public_url`), if set.
    pub fn public_url(&self) -> Option<&Url> {
        self.public_url.as_ref()
    }

    /// Where authenticated traffic goes (`upstream.url` or `upstream.builtin`).
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// The same configuration with another upstream URL.
    pub fn with_upstream_url(mut self, url: Url) -> Self {
        self.upstream = Upstream::Url(url);
        self
    }

    /// Access token lifetime in seconds (`tokens.ttl_secs`, default 3600).
    pub fn token_ttl_secs(&self) -> u64 {
        self.token_ttl_secs
    }

    /// The first route (`[[routes]]`) a request for `host` and `path` takes,
    /// with its index; `None` for the default route (`[upstream]`).
    pub(crate) fn route_for(&self, host: Option<&str>, path: &str) -> Option<(usize, &Route)> {
        self.routes
            .iter()
            .enumerate()
            .find(|(_, route)| route.matches(host, path))
    }

    /// Paths that pass without sign-in (`auth.public_paths`).
    pub fn public_paths(&self) -> &[String] {
        &self.public_paths
    }

    /// Whether the gateway itself terminates TLS (`server.tls_cert`).
    pub(crate) fn terminates_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether cookies must be `Secure`: the gateway terminates TLS, or its
    /// public URL is https.
    pub(crate) fn secure_cookies(&self) -> bool {
        self.terminates_tls() || self.public_url.as_ref().is_some_and(|u| u.scheme() == "https")
    }

    /// How the session cookie is set.
    pub(crate) fn session_cookie_scope(&self) -> crate::auth::credential::CookieScope<'_> {
        crate::auth::credential::CookieScope {
            secure: self.secure_cookies(),
            domain: self.cookie_domain.as_deref(),
        }
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
        assert_eq!(ok.branding.accent_color, "#0a7c4a");
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
        assert_eq!(ok.upgrades, ["websocket", "foo"]);
        assert_eq!(
            ok.return_hosts,
            ["app.example.com:8443", ".corp.example", "127.0.0.1:8081"]
        );
        assert_eq!(ok.cookie_domain.as_deref(), Some("example.com"));
        let default = Config::from_toml_str(up).unwrap();
        assert_eq!(default.upgrades, ["websocket"]);
        assert!(!default.underscores_in_headers);
    }

    #[test]
    fn public_paths_must_be_normalized() {
        let err = refused("[upstream]\nbuiltin = \"whoami\"\n[auth]\npublic_paths = [\"/a/../b\"]\n");
        assert_eq!(err.location().unwrap().line, 4, "{err}");
    }
}
