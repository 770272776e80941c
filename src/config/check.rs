//! The checker: every value of the raw mirror checked and turned into its
//! section, or refused with the file, the line and the reason.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use url::Url;

use crate::error::Error;
use crate::web::paths;

use super::defaults;
use super::forwarding::{RawCredentials, UpstreamCredentials};
use super::providers::{ProviderConfig, Secret};
use super::raw::{RawAuth, RawConfig, RawLimits, RawPages, RawServer, RawTokens, RawUpstream};
use super::sections::{
    AuthConfig, Branding, Limits, PagesConfig, ServerConfig, StoreConfig, ThrottleConfig, TlsFiles,
    TokensConfig, Upstream, UpstreamConfig, UserConfig,
};
use super::{AdminConfig, AuditConfig, Config, LogFormat};

/// Checks the configuration `source`, the text of `file`.
pub(super) fn parse(file: &Path, source: &str) -> Result<Config, Error> {
    let raw: RawConfig = toml::from_str(source).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        Error::config_at(file, source, offset, e.message().trim_end().to_string())
    })?;
    let check = Checker { file, source };
    let server = check.server(raw.server)?;
    let upstream = check.upstream(raw.upstream)?;
    let tokens = check.tokens(raw.tokens)?;
    let pages = check.pages(raw.pages)?;
    let limits = check.limits(raw.limits)?;
    let providers = check.providers(raw.providers)?;
    let users = check.users(raw.users, &providers)?;
    let known = Known {
        users: &users,
        providers: &providers,
    };
    let auth = check.auth(
        raw.auth,
        &known,
        raw.database.is_some(),
        server.public_url.as_ref(),
    )?;
    let routes = check.routes(
        raw.routes,
        &known,
        &upstream.upgrades,
        &upstream.credentials,
        &auth.second_factor,
    )?;
    let clients = check.clients(raw.clients)?;
    let config = Config {
        source: file.to_path_buf(),
        server,
        upstream,
        routes,
        tokens,
        auth,
        pages,
        limits,
        log_format: raw.log.format.unwrap_or(LogFormat::Text),
        users,
        clients,
        providers,
        database: check.database(raw.database)?,
        admin: AdminConfig {
            groups: raw.admin.groups,
        },
        signing: check.signing(raw.signing)?,
        audit: AuditConfig {
            file: raw.audit.file.map(|f| relative_to(file, f.get_ref())),
            retention_days: check.count("audit.retention_days", raw.audit.retention_days, 90, 1, 36_500)?,
        },
    };
    check.refuse_published_passwords(&config)?;
    if let (Some(client), None) = (
        config.clients.iter().find(|c| c.pairwise_sector.is_some()),
        &config.auth.secret,
    ) {
        return check.fail(
            &client.span,
            format!(
                "client {:?} has pairwise subjects, which are made with auth.secret_file: set it, or they would change at every start",
                client.client_id
            ),
        );
    }
    if let Some(client) = config
        .clients
        .iter()
        .find(|c| !config.signing.algorithms.contains(&c.id_token_alg))
    {
        return check.fail(
            &client.span,
            format!(
                "client {:?} has its ID tokens signed with {}, which [signing] algorithms does not list: add it there",
                client.client_id,
                client.id_token_alg.as_str()
            ),
        );
    }
    Ok(config)
}

/// The people a rule may name: `[[users]]`, and `provider:name` of a
/// configured provider.
pub(super) struct Known<'a> {
    pub(super) users: &'a [UserConfig],
    pub(super) providers: &'a [ProviderConfig],
}

/// Checks one file's values, remembering which file for error messages.
pub(super) struct Checker<'a> {
    pub(super) file: &'a Path,
    pub(super) source: &'a str,
}

impl Checker<'_> {
    pub(super) fn error(&self, span: &Range<usize>, message: impl Into<String>) -> Error {
        Error::config_at(self.file, self.source, span.start, message)
    }

    pub(super) fn fail<T>(&self, span: &Range<usize>, message: impl Into<String>) -> Result<T, Error> {
        Err(self.error(span, message))
    }

    fn server(&self, raw: RawServer) -> Result<ServerConfig, Error> {
        let listen = self.listen(raw.listen)?;
        let workers = match raw.workers {
            None => None,
            some => Some(self.count("server.workers", some, 1, 1, 1024)? as usize),
        };
        let public_url = raw
            .public_url
            .as_ref()
            .map(|url| self.http_url("server.public_url", url))
            .transpose()?;
        Ok(ServerConfig {
            listen,
            workers,
            public_url,
            trusted_proxies: self.trusted_proxies(raw.trusted_proxies)?,
            tls: self.tls(raw.tls_cert, raw.tls_key)?,
        })
    }

    fn tokens(&self, raw: RawTokens) -> Result<TokensConfig, Error> {
        let ttl_secs = self.seconds("tokens.ttl_secs", raw.ttl_secs, defaults::TOKEN_TTL_SECS)?;
        let refresh_ttl_secs = self.seconds(
            "tokens.refresh_ttl_secs",
            raw.refresh_ttl_secs,
            defaults::REFRESH_TTL_SECS,
        )?;
        let max_span = raw.max_ttl_secs.as_ref().map(Spanned::span);
        let max_ttl_secs = self.seconds("tokens.max_ttl_secs", raw.max_ttl_secs, defaults::MAX_TTL_SECS)?;
        if max_ttl_secs < ttl_secs {
            return self.fail(
                &max_span.unwrap_or(0..0),
                format!("tokens.max_ttl_secs ({max_ttl_secs}) is less than tokens.ttl_secs ({ttl_secs})"),
            );
        }
        let store = self.store(&raw.store, &raw.redis_url, &raw.redis_prefix, &raw.cache_secs)?;
        if store != StoreConfig::Memory && raw.persist_path.is_some() {
            return self.fail(
                &raw.persist_path.as_ref().map_or(0..0, Spanned::span),
                "tokens.persist_path is for store = \"memory\"; Redis keeps the sessions itself",
            );
        }
        let idle_secs = match raw.idle_secs {
            None => None,
            some => Some(self.seconds("tokens.idle_secs", some, 0)?),
        };
        Ok(TokensConfig {
            ttl_secs,
            refresh_ttl_secs,
            max_ttl_secs,
            idle_secs,
            persist_path: raw.persist_path.map(|p| relative_to(self.file, p.get_ref())),
            persist_interval: Duration::from_secs(self.seconds(
                "tokens.persist_interval_secs",
                raw.persist_interval_secs,
                defaults::PERSIST_INTERVAL_SECS,
            )?),
            store,
        })
    }

    fn auth(
        &self,
        raw: RawAuth,
        known: &Known<'_>,
        has_database: bool,
        public_url: Option<&url::Url>,
    ) -> Result<AuthConfig, Error> {
        let throttle = ThrottleConfig {
            max_failures_per_user: self.count(
                "auth.max_failures_per_user",
                raw.max_failures_per_user,
                defaults::MAX_FAILURES_PER_USER,
                1,
                1_000_000,
            )? as u32,
            max_failures_per_address: self.count(
                "auth.max_failures_per_address",
                raw.max_failures_per_address,
                defaults::MAX_FAILURES_PER_ADDRESS,
                1,
                1_000_000,
            )? as u32,
            window_secs: self.seconds(
                "auth.failure_window_secs",
                raw.failure_window_secs,
                defaults::FAILURE_WINDOW_SECS,
            )?,
            max_entries: self.count(
                "auth.throttle_max_entries",
                raw.throttle_max_entries,
                defaults::THROTTLE_MAX_ENTRIES,
                100,
                100_000_000,
            )? as usize,
        };
        let secret = self.signing_secret(&raw.secret_file)?;
        Ok(AuthConfig {
            public_paths: self.public_paths(raw.public_paths)?,
            throttle,
            return_hosts: self.return_hosts(raw.return_hosts)?,
            cookie_domain: self.cookie_domain(raw.cookie_domain)?,
            allowed: self.allowed(&raw.allowed_users, &raw.allowed_groups, known)?,
            auto_redirect: self.auto_redirect(&raw.auto_redirect, known)?,
            second_factor: self.second_factor(
                &raw.second_factor,
                raw.second_factor_groups,
                &raw.passkeys,
                &raw.webauthn_rp_id,
                public_url,
                has_database,
                secret.is_some(),
            )?,
            secret,
        })
    }

    /// `[database]`: `sqlite://PATH` (relative to the config file; made
    /// if missing) or `postgres://…` (with `password_file`).
    fn database(&self, raw: Option<super::raw::RawDatabase>) -> Result<Option<String>, Error> {
        let Some(raw) = raw else { return Ok(None) };
        let text = raw.url.get_ref();
        if let Some(path) = text.strip_prefix("sqlite://") {
            if raw.password_file.is_some() {
                return self.fail(
                    &raw.url.span(),
                    "database.password_file is for PostgreSQL; SQLite has none",
                );
            }
            let (path, _) = path.split_once('?').unwrap_or((path, ""));
            if path.is_empty() {
                return self.fail(
                    &raw.url.span(),
                    "database.url = \"sqlite://PATH\": name the file, like \"sqlite://authgate.db\"",
                );
            }
            let file = relative_to(self.file, path);
            return Ok(Some(format!("sqlite://{}?mode=rwc", file.display())));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            let mut url = Url::parse(text)
                .map_err(|e| self.error(&raw.url.span(), format!("database.url is not a URL: {e}")))?;
            if let Some(file) = &raw.password_file {
                let secret = self.secret(&None, &Some(file.clone()), "database.password")?;
                if url.password().is_some() {
                    return self.fail(
                        &file.span(),
                        "database.url has a password already: set it there or in password_file, not both",
                    );
                }
                let password = secret.map(|s| s.expose().to_owned()).unwrap_or_default();
                if url.set_password(Some(&password)).is_err() {
                    return self.fail(&raw.url.span(), "database.url cannot take a password (no host?)");
                }
            }
            return Ok(Some(url.to_string()));
        }
        self.fail(
            &raw.url.span(),
            format!("database.url = {text:?}: use \"sqlite://PATH\" or \"postgres://USER@HOST/DB\""),
        )
    }

    /// `auth.secret_file`: at least 32 characters on its first line.
    fn signing_secret(&self, file: &Option<Spanned<String>>) -> Result<Option<Secret>, Error> {
        let Some(secret) = self.secret(&None, file, "auth.secret")? else {
            return Ok(None);
        };
        if secret.expose().chars().count() < 32 {
            return self.fail(
                &file.as_ref().map_or(0..0, Spanned::span),
                "auth.secret_file must hold at least 32 characters (try: head -c 32 /dev/urandom | base64)",
            );
        }
        Ok(Some(secret))
    }

    fn pages(&self, raw: RawPages) -> Result<PagesConfig, Error> {
        let branding = self.branding(&raw)?;
        Ok(PagesConfig {
            templates_dir: raw.templates_dir.map(|dir| relative_to(self.file, dir.get_ref())),
            branding,
        })
    }

    fn limits(&self, raw: RawLimits) -> Result<Limits, Error> {
        Ok(Limits {
            max_header_bytes: self.count(
                "limits.max_header_bytes",
                raw.max_header_bytes,
                defaults::MAX_HEADER_BYTES,
                8192,
                16 << 20,
            )? as usize,
            max_headers: self.count(
                "limits.max_headers",
                raw.max_headers,
                defaults::MAX_HEADERS,
                16,
                10_000,
            )? as usize,
            max_body_bytes: self.count(
                "limits.max_body_bytes",
                raw.max_body_bytes,
                defaults::MAX_BODY_BYTES,
                1024,
                64 << 20,
            )? as usize,
            header_read_timeout: Duration::from_secs(self.seconds(
                "limits.header_read_timeout_secs",
                raw.header_read_timeout_secs,
                defaults::HEADER_READ_TIMEOUT_SECS,
            )?),
            max_connections: self.count(
                "limits.max_connections",
                raw.max_connections,
                defaults::MAX_CONNECTIONS,
                1,
                1_000_000,
            )? as usize,
        })
    }

    fn listen(&self, raw: Option<Spanned<String>>) -> Result<SocketAddr, Error> {
        let Some(raw) = raw else {
            return Ok(defaults::LISTEN);
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

    pub(super) fn http_url(&self, key: &str, raw: &Spanned<String>) -> Result<Url, Error> {
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

    /// `[upstream]`, which the file must have.
    fn upstream(&self, raw: Option<Spanned<RawUpstream>>) -> Result<UpstreamConfig, Error> {
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
        let connect = self.seconds(
            "upstream.connect_timeout_secs",
            raw.connect_timeout_secs,
            defaults::UPSTREAM_CONNECT_TIMEOUT_SECS,
        )?;
        let timeout = self.seconds(
            "upstream.timeout_secs",
            raw.timeout_secs,
            defaults::UPSTREAM_TIMEOUT_SECS,
        )?;
        let upgrades = match &raw.upgrades {
            Some(list) => self.upgrades(list)?,
            None => defaults::UPGRADES.map(str::to_owned).to_vec(),
        };
        Ok(UpstreamConfig {
            connect_timeout: Duration::from_secs(connect),
            timeout: Duration::from_secs(timeout),
            ca_file: raw
                .ca_file
                .as_ref()
                .map(|path| relative_to(self.file, path.get_ref())),
            underscores_in_headers: raw.underscores_in_headers,
            upgrades,
            credentials: self.credentials(
                "upstream",
                RawCredentials {
                    send_session_token: raw.send_session_token,
                    identity_jwt: raw.identity_jwt.as_ref(),
                    identity_jwt_audience: raw.identity_jwt_audience.as_ref(),
                },
                &upstream,
                &UpstreamCredentials::default(),
            )?,
            target: upstream,
        })
    }

    pub(super) fn seconds(&self, key: &str, raw: Option<Spanned<u64>>, default: u64) -> Result<u64, Error> {
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
    pub(super) fn count(
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
                    .map_or(defaults::REDIS_URL, |u| u.get_ref().as_str());
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
                    prefix: redis_prefix
                        .clone()
                        .unwrap_or_else(|| defaults::REDIS_PREFIX.to_owned()),
                    cache_for: Duration::from_secs(self.seconds(
                        "tokens.cache_secs",
                        cache,
                        defaults::CACHE_SECS,
                    )?),
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
            None => defaults::TITLE.to_owned(),
        };
        let logo_url = match &pages.logo_url {
            Some(u) => {
                let text = u.get_ref();
                let web = Url::parse(text).is_ok_and(|url| matches!(url.scheme(), "https" | "http"));
                let local = paths::safe_return_path(text).is_some();
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
            None => defaults::ACCENT_COLOR.to_owned(),
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

    /// `upgrades`: protocol names a request may upgrade to. `h2c` never:
    /// a tunnel to an upstream's HTTP/2 would carry requests the gateway
    /// never checked.
    pub(super) fn upgrades(&self, raw: &[Spanned<String>]) -> Result<Vec<String>, Error> {
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
}

/// `path` as written in `file`: relative paths are taken from the file's
/// folder.
pub(super) fn relative_to(file: &Path, path: &str) -> PathBuf {
    let path = PathBuf::from(path);
    if path.is_relative() {
        file.parent().unwrap_or(Path::new(".")).join(path)
    } else {
        path
    }
}
