//! The checked configuration's sections, one type each: what a component
//! is given (the proxy its upstream, the layer its `[auth]`), never the
//! whole file.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

/// `[server]`: where and how the gateway listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServerConfig {
    pub(crate) listen: SocketAddr,
    pub(crate) workers: Option<usize>,
    pub(crate) public_url: Option<Url>,
    pub(crate) trusted_proxies: Vec<ipnet::IpNet>,
    pub(crate) tls: Option<TlsFiles>,
}

impl ServerConfig {
    /// Whether the gateway is reached over https: it terminates TLS, or
    /// its public URL says so.
    pub(crate) fn is_https(&self) -> bool {
        self.tls.is_some() || self.public_url.as_ref().is_some_and(|u| u.scheme() == "https")
    }
}

/// `[upstream]`: where authenticated traffic goes, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UpstreamConfig {
    pub(crate) target: Upstream,
    pub(crate) connect_timeout: Duration,
    pub(crate) timeout: Duration,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) ca_file: Option<PathBuf>,
    /// Let client fields with `_` in their names through
    /// (`underscores_in_headers`).
    pub(crate) underscores_in_headers: bool,
    /// The protocols a request may upgrade to, lower case.
    pub(crate) upgrades: Vec<String>,
    /// What it is sent besides the request: the session's token, the
    /// identity JWT.
    pub(crate) credentials: super::forwarding::UpstreamCredentials,
}

/// `[tokens]`: lifetimes, and where sessions are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TokensConfig {
    pub(crate) ttl_secs: u64,
    pub(crate) refresh_ttl_secs: u64,
    pub(crate) max_ttl_secs: u64,
    pub(crate) idle_secs: Option<u64>,
    pub(crate) persist_path: Option<PathBuf>,
    pub(crate) persist_interval: Duration,
    pub(crate) store: StoreConfig,
}

/// `[auth]`: what passes without sign-in, throttling, and where a sign-in
/// may return to.
#[derive(Clone, Debug)]
pub(crate) struct AuthConfig {
    pub(crate) public_paths: Vec<String>,
    pub(crate) throttle: ThrottleConfig,
    /// Hosts a sign-in may return to besides the gateway's own origin,
    /// lower case; `.example.com` covers its subdomains.
    pub(crate) return_hosts: Vec<String>,
    /// The session cookie's `Domain`.
    pub(crate) cookie_domain: Option<String>,
    /// Who may pass a route that names no one of its own; `None`: anyone
    /// signed in.
    pub(crate) allowed: Option<Allowed>,
    /// With one outside provider and no password sign-in, go straight to
    /// it instead of showing the sign-in page.
    pub(crate) auto_redirect: bool,
    /// The key the gateway signs its cookies and forms with, shared by
    /// every gateway given the same file; `None`: a random one per process.
    pub(crate) secret: Option<super::providers::Secret>,
    /// Who must give a second factor.
    pub(crate) second_factor: super::second_factor::SecondFactorConfig,
}

/// The people a route is open to: these users, and the members of these
/// groups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Allowed {
    pub(crate) users: Vec<String>,
    pub(crate) groups: Vec<String>,
}

impl Allowed {
    /// Whether `username`, in the groups `in_group` says, is let in.
    pub(crate) fn admits(&self, username: &str, in_group: impl Fn(&str) -> bool) -> bool {
        self.users.iter().any(|u| u == username) || self.groups.iter().any(|g| in_group(g))
    }
}

/// `[pages]`: the templates and their branding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PagesConfig {
    pub(crate) templates_dir: Option<PathBuf>,
    pub(crate) branding: Branding,
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
    /// What its upstream is sent besides the request.
    pub(crate) credentials: super::forwarding::UpstreamCredentials,
    /// How a session must have been signed in to pass.
    pub(crate) auth_level: super::second_factor::AuthLevel,
}

/// Who may use a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Policy {
    /// Anyone, signed in or not.
    Public,
    /// Anyone signed in.
    Authenticated,
    /// Only these users and groups (others get `403`).
    Only(Allowed),
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
    pub(crate) groups: Vec<String>,
    /// Outside identities that sign in as this user: `provider:subject`.
    pub(crate) links: Vec<String>,
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
    /// Where RP-initiated logout may send the browser back to (exact).
    pub(crate) post_logout_redirect_uris: Vec<String>,
    /// Where OpenID Connect Back-Channel Logout tells the client that a
    /// session ended.
    pub(crate) backchannel_logout_uri: Option<String>,
    /// What its ID tokens are signed with (RS256 by default).
    pub(crate) id_token_alg: super::SigningAlg,
    /// Its access tokens: opaque (the default) or JWTs (RFC 9068), which
    /// resource servers can verify offline.
    pub(crate) jwt_access_tokens: bool,
    /// The resource indicators (RFC 8707) it may ask tokens for: their
    /// JWT access tokens' `aud`.
    pub(crate) resources: Vec<String>,
    /// OpenID Connect's pairwise subject: the host its `sub`s are made for
    /// (its redirect URIs' one host); `None`: the public `sub`.
    pub(crate) pairwise_sector: Option<String>,
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

    /// The grant of that name (`authorization_code`, …).
    pub(crate) fn named(name: &str) -> Option<Self> {
        Grant::ALL.into_iter().find(|g| g.as_str() == name)
    }

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
