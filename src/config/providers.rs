//! `[[providers]]`: the outside identity providers people sign in
//! through (OpenID Connect, GitHub) and the LDAP directories the sign-in
//! form checks; their types and their checks.

use std::collections::HashSet;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use url::Url;
use zeroize::Zeroizing;

use crate::error::Error;

use super::check::{relative_to, Checker};

/// A provider: its id (in URLs), its button's label, the groups it lets in,
/// and what kind it is.
#[derive(Clone, Debug)]
pub(crate) struct ProviderConfig {
    pub(crate) id: String,
    pub(crate) display_name: String,
    /// At least one must match; empty: anyone the provider vouches for.
    pub(crate) allowed_groups: Vec<String>,
    /// Sign-ins of a verified email that a `[[users]]` entry has become
    /// that user.
    pub(crate) link_by_verified_email: bool,
    /// The provider's access token goes upstream as
    /// `X-Forwarded-Access-Token`.
    pub(crate) pass_access_token: bool,
    pub(crate) kind: ProviderKind,
}

/// What kind of provider, with its own settings.
#[derive(Clone, Debug)]
pub(crate) enum ProviderKind {
    Oidc(OidcConfig),
    Github(GithubConfig),
    Ldap(LdapConfig),
}

impl ProviderConfig {
    /// Whether people sign in by being sent to the provider (not by the
    /// sign-in form's password).
    pub(crate) fn is_redirect(&self) -> bool {
        !matches!(self.kind, ProviderKind::Ldap(_))
    }
}

/// A secret read from the configuration or a file beside it.
#[derive(Clone)]
pub(crate) struct Secret(Zeroizing<String>);

impl Secret {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// `kind = "oidc"`.
#[derive(Clone, Debug)]
pub(crate) struct OidcConfig {
    /// Exactly as the provider writes `iss`.
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    /// `None`: a public client, PKCE alone.
    pub(crate) client_secret: Option<Secret>,
    pub(crate) scopes: Vec<String>,
    /// The claim that names the person: `email` then `sub` by default.
    pub(crate) username_claim: Option<String>,
    /// A claim path (dots for nesting) holding the person's groups.
    pub(crate) groups_claim: Option<String>,
    /// Lower case; needs `email_verified`.
    pub(crate) allowed_email_domains: Vec<String>,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) timeout: Duration,
    /// `logout = "provider"`: signing out here signs out there too
    /// (RP-Initiated Logout).
    pub(crate) logout_at_provider: bool,
}

/// `kind = "github"`.
#[derive(Clone, Debug)]
pub(crate) struct GithubConfig {
    pub(crate) client_id: String,
    pub(crate) client_secret: Secret,
    /// Lower case; empty: any GitHub account.
    pub(crate) allowed_orgs: Vec<String>,
    /// The REST API (`https://api.github.com`, or GitHub Enterprise's
    /// `https://HOST/api/v3`).
    pub(crate) api_url: Url,
    /// Where people are sent to authorize (`https://github.com`, or the
    /// Enterprise host).
    pub(crate) web_url: Url,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) timeout: Duration,
}

/// `kind = "ldap"`.
#[derive(Clone, Debug)]
pub(crate) struct LdapConfig {
    pub(crate) url: Url,
    pub(crate) start_tls: bool,
    pub(crate) bind_dn: String,
    pub(crate) bind_password: Secret,
    pub(crate) user_base_dn: String,
    /// With `{username}`, replaced by the escaped username.
    pub(crate) user_filter: String,
    pub(crate) group_base_dn: Option<String>,
    /// With `{dn}` and/or `{username}`.
    pub(crate) group_filter: String,
    pub(crate) email_attribute: String,
    pub(crate) name_attribute: String,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) timeout: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    id: Spanned<String>,
    kind: Spanned<String>,
    display_name: Option<Spanned<String>>,
    #[serde(default)]
    allowed_groups: Vec<String>,
    #[serde(default)]
    link_by_verified_email: bool,
    pass_access_token: Option<Spanned<bool>>,
    timeout_secs: Option<Spanned<u64>>,
    ca_file: Option<Spanned<String>>,
    // oidc and github
    client_id: Option<Spanned<String>>,
    client_secret: Option<Spanned<String>>,
    client_secret_file: Option<Spanned<String>>,
    // oidc
    issuer: Option<Spanned<String>>,
    scopes: Option<Spanned<Vec<String>>>,
    username_claim: Option<Spanned<String>>,
    groups_claim: Option<Spanned<String>>,
    allowed_email_domains: Option<Spanned<Vec<String>>>,
    logout: Option<Spanned<String>>,
    // github
    allowed_orgs: Option<Spanned<Vec<String>>>,
    api_url: Option<Spanned<String>>,
    // ldap
    url: Option<Spanned<String>>,
    start_tls: Option<Spanned<bool>>,
    bind_dn: Option<Spanned<String>>,
    bind_password: Option<Spanned<String>>,
    bind_password_file: Option<Spanned<String>>,
    user_base_dn: Option<Spanned<String>>,
    user_filter: Option<Spanned<String>>,
    group_base_dn: Option<Spanned<String>>,
    group_filter: Option<Spanned<String>>,
    email_attribute: Option<Spanned<String>>,
    name_attribute: Option<Spanned<String>>,
}

/// `scopes` when an OIDC provider sets none.
const DEFAULT_SCOPES: [&str; 3] = ["openid", "email", "profile"];
/// How long a call to a provider may take, by default.
const DEFAULT_TIMEOUT_SECS: u64 = 10;

impl RawProvider {
    /// The first key set that belongs to another kind: the key, where it
    /// is, and the kinds it belongs to.
    fn foreign_keys(&self, kind: &str) -> Option<(&'static str, Range<usize>, &'static str)> {
        let oidc = "oidc";
        let github = "github";
        let ldap = "ldap";
        let redirect = "oidc and github";
        let keys: [(&str, Option<Range<usize>>, &str); 23] = [
            (
                "pass_access_token",
                self.pass_access_token.as_ref().map(Spanned::span),
                redirect,
            ),
            ("logout", self.logout.as_ref().map(Spanned::span), oidc),
            ("client_id", self.client_id.as_ref().map(Spanned::span), redirect),
            (
                "client_secret",
                self.client_secret.as_ref().map(Spanned::span),
                redirect,
            ),
            (
                "client_secret_file",
                self.client_secret_file.as_ref().map(Spanned::span),
                redirect,
            ),
            ("issuer", self.issuer.as_ref().map(Spanned::span), oidc),
            ("scopes", self.scopes.as_ref().map(Spanned::span), oidc),
            (
                "username_claim",
                self.username_claim.as_ref().map(Spanned::span),
                oidc,
            ),
            (
                "groups_claim",
                self.groups_claim.as_ref().map(Spanned::span),
                oidc,
            ),
            (
                "allowed_email_domains",
                self.allowed_email_domains.as_ref().map(Spanned::span),
                oidc,
            ),
            (
                "allowed_orgs",
                self.allowed_orgs.as_ref().map(Spanned::span),
                github,
            ),
            ("api_url", self.api_url.as_ref().map(Spanned::span), github),
            ("url", self.url.as_ref().map(Spanned::span), ldap),
            ("start_tls", self.start_tls.as_ref().map(Spanned::span), ldap),
            ("bind_dn", self.bind_dn.as_ref().map(Spanned::span), ldap),
            (
                "bind_password",
                self.bind_password.as_ref().map(Spanned::span),
                ldap,
            ),
            (
                "bind_password_file",
                self.bind_password_file.as_ref().map(Spanned::span),
                ldap,
            ),
            (
                "user_base_dn",
                self.user_base_dn.as_ref().map(Spanned::span),
                ldap,
            ),
            ("user_filter", self.user_filter.as_ref().map(Spanned::span), ldap),
            (
                "group_base_dn",
                self.group_base_dn.as_ref().map(Spanned::span),
                ldap,
            ),
            (
                "group_filter",
                self.group_filter.as_ref().map(Spanned::span),
                ldap,
            ),
            (
                "email_attribute",
                self.email_attribute.as_ref().map(Spanned::span),
                ldap,
            ),
            (
                "name_attribute",
                self.name_attribute.as_ref().map(Spanned::span),
                ldap,
            ),
        ];
        keys.into_iter().find_map(|(key, span, kinds)| {
            let span = span?;
            (!kinds.contains(kind)).then_some((key, span, kinds))
        })
    }
}

impl Checker<'_> {
    pub(super) fn providers(&self, raw: Vec<Spanned<RawProvider>>) -> Result<Vec<ProviderConfig>, Error> {
        let mut seen = HashSet::new();
        raw.into_iter()
            .map(|provider| {
                let span = provider.span();
                let raw = provider.into_inner();
                let id = raw.id.get_ref();
                if id.is_empty()
                    || id.len() > 64
                    || !id
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                {
                    return self.fail(
                        &raw.id.span(),
                        format!("provider id {id:?} must be 1 to 64 of a-z, 0-9 and -"),
                    );
                }
                if !seen.insert(id.clone()) {
                    return self.fail(&raw.id.span(), format!("provider id {id:?} is used twice"));
                }
                let kind_name = raw.kind.get_ref().as_str();
                if !matches!(kind_name, "oidc" | "github" | "ldap") {
                    return self.fail(
                        &raw.kind.span(),
                        format!("provider kind {kind_name:?}: use \"oidc\", \"github\" or \"ldap\""),
                    );
                }
                if let Some((key, at, kinds)) = raw.foreign_keys(kind_name) {
                    return self.fail(
                        &at,
                        format!("{key} is a setting of {kinds} providers, not of kind = {kind_name:?}"),
                    );
                }
                let timeout = Duration::from_secs(self.count(
                    "providers.timeout_secs",
                    raw.timeout_secs.clone(),
                    DEFAULT_TIMEOUT_SECS,
                    1,
                    120,
                )?);
                let ca_file = raw.ca_file.as_ref().map(|f| relative_to(self.file, f.get_ref()));
                if let (Some(path), Some(at)) = (&ca_file, &raw.ca_file) {
                    #[cfg(feature = "tls")]
                    if let Err(reason) = crate::tls::client_config(Some(path)) {
                        return self.fail(&at.span(), format!("ca_file: {reason}"));
                    }
                    #[cfg(not(feature = "tls"))]
                    return self.fail(
                        &at.span(),
                        format!(
                            "ca_file {}: TLS needs the tls feature, which this authgate was built without",
                            path.display()
                        ),
                    );
                }
                let kind = match kind_name {
                    "oidc" => ProviderKind::Oidc(self.oidc(&raw, &span, ca_file, timeout)?),
                    "github" => ProviderKind::Github(self.github(&raw, &span, ca_file, timeout)?),
                    _ => ProviderKind::Ldap(self.ldap(&raw, &span, ca_file, timeout)?),
                };
                let display_name = match &raw.display_name {
                    Some(name)
                        if name.get_ref().trim().is_empty()
                            || name.get_ref().len() > 80
                            || name.get_ref().chars().any(char::is_control) =>
                    {
                        return self.fail(
                            &name.span(),
                            "display_name must be 1 to 80 characters, with no control characters",
                        )
                    }
                    Some(name) => name.get_ref().clone(),
                    None => match &kind {
                        ProviderKind::Github(_) => "GitHub".to_owned(),
                        _ => id.clone(),
                    },
                };
                Ok(ProviderConfig {
                    id: raw.id.into_inner(),
                    display_name,
                    allowed_groups: raw.allowed_groups,
                    link_by_verified_email: raw.link_by_verified_email,
                    pass_access_token: raw.pass_access_token.as_ref().is_some_and(|p| *p.get_ref()),
                    kind,
                })
            })
            .collect()
    }

    /// A key a provider of its kind must have.
    fn required<'v>(
        &self,
        value: &'v Option<Spanned<String>>,
        key: &str,
        span: &Range<usize>,
        kind: &str,
    ) -> Result<&'v Spanned<String>, Error> {
        match value {
            Some(value) if !value.get_ref().trim().is_empty() => Ok(value),
            Some(value) => self.fail(&value.span(), format!("{key} must not be empty")),
            None => self.fail(span, format!("a {kind} provider needs {key}")),
        }
    }

    /// `client_secret` or `client_secret_file` (or, with `file_key`, the
    /// LDAP bind password): the value, or the file's first line.
    pub(super) fn secret(
        &self,
        inline: &Option<Spanned<String>>,
        file: &Option<Spanned<String>>,
        key: &str,
    ) -> Result<Option<Secret>, Error> {
        match (inline, file) {
            (Some(_), Some(file)) => self.fail(&file.span(), format!("set {key} or {key}_file, not both")),
            (Some(value), None) => Ok(Some(Secret(Zeroizing::new(value.get_ref().clone())))),
            (None, Some(file)) => {
                let path = relative_to(self.file, file.get_ref());
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| self.error(&file.span(), format!("{key}_file {}: {e}", path.display())))?;
                let secret = Zeroizing::new(text.lines().next().unwrap_or("").trim_end().to_owned());
                if secret.is_empty() {
                    return self.fail(&file.span(), format!("{key}_file {} is empty", path.display()));
                }
                Ok(Some(Secret(secret)))
            }
            (None, None) => Ok(None),
        }
    }

    /// A URL a provider is reached at: https, or http on loopback only
    /// (a test provider on this machine).
    fn provider_url(&self, key: &str, raw: &Spanned<String>, schemes: [&str; 2]) -> Result<Url, Error> {
        let url = Url::parse(raw.get_ref()).map_err(|e| {
            self.error(
                &raw.span(),
                format!("{key} = {:?} is not a URL: {e}", raw.get_ref()),
            )
        })?;
        let [secure, plain] = schemes;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        if url.host().is_none() {
            return self.fail(&raw.span(), format!("{key} = {:?} has no host", raw.get_ref()));
        }
        match url.scheme() {
            s if s == secure => {}
            s if s == plain && loopback => {}
            s if s == plain => {
                return self.fail(
                    &raw.span(),
                    format!("{key} = {:?} must use {secure}:// off loopback: what the provider answers decides who signs in", raw.get_ref()),
                )
            }
            other => return self.fail(&raw.span(), format!("{key}: the scheme must be {secure} (or {plain} on loopback), not {other:?}")),
        }
        if url.query().is_some() || url.fragment().is_some() {
            return self.fail(
                &raw.span(),
                format!("{key} = {:?} must have no query or fragment", raw.get_ref()),
            );
        }
        Ok(url)
    }

    fn oidc(
        &self,
        raw: &RawProvider,
        span: &Range<usize>,
        ca_file: Option<PathBuf>,
        timeout: Duration,
    ) -> Result<OidcConfig, Error> {
        let issuer = self.required(&raw.issuer, "issuer", span, "oidc")?;
        self.provider_url("issuer", issuer, ["https", "http"])?;
        let client_id = self.required(&raw.client_id, "client_id", span, "oidc")?;
        let client_secret = self.secret(&raw.client_secret, &raw.client_secret_file, "client_secret")?;
        let scopes = match &raw.scopes {
            Some(scopes) => {
                if !scopes.get_ref().iter().any(|s| s == "openid") {
                    return self.fail(&scopes.span(), "scopes must include \"openid\"");
                }
                if let Some(bad) = scopes
                    .get_ref()
                    .iter()
                    .find(|s| !crate::web::syntax::is_scope_token(s))
                {
                    return self.fail(&scopes.span(), format!("scope {bad:?} is not a scope token"));
                }
                scopes.get_ref().clone()
            }
            None => DEFAULT_SCOPES.map(str::to_owned).to_vec(),
        };
        let claim = |value: &Option<Spanned<String>>, key: &str| -> Result<Option<String>, Error> {
            match value {
                Some(v) if v.get_ref().is_empty() || v.get_ref().split('.').any(str::is_empty) => self.fail(
                    &v.span(),
                    format!(
                        "{key} {:?} is not a claim name (dots separate nested claims)",
                        v.get_ref()
                    ),
                ),
                Some(v) => Ok(Some(v.get_ref().clone())),
                None => Ok(None),
            }
        };
        let allowed_email_domains = match &raw.allowed_email_domains {
            Some(domains) => {
                if let Some(bad) = domains
                    .get_ref()
                    .iter()
                    .find(|d| d.is_empty() || d.contains(['@', '/', ' ', ':']))
                {
                    return self.fail(
                        &domains.span(),
                        format!("allowed_email_domains: {bad:?} is not a domain (write \"example.com\")"),
                    );
                }
                domains
                    .get_ref()
                    .iter()
                    .map(|d| d.trim_start_matches('.').to_ascii_lowercase())
                    .collect()
            }
            None => Vec::new(),
        };
        let logout_at_provider = match raw.logout.as_ref().map(|l| (l.get_ref().as_str(), l.span())) {
            None | Some(("local", _)) => false,
            Some(("provider", _)) => true,
            Some((other, at)) => {
                return self.fail(&at, format!("logout = {other:?}: use \"local\" (sign out here only) or \"provider\" (at the provider too)"))
            }
        };
        Ok(OidcConfig {
            logout_at_provider,
            issuer: issuer.get_ref().clone(),
            client_id: client_id.get_ref().clone(),
            client_secret,
            scopes,
            username_claim: claim(&raw.username_claim, "username_claim")?,
            groups_claim: claim(&raw.groups_claim, "groups_claim")?,
            allowed_email_domains,
            ca_file,
            timeout,
        })
    }

    fn github(
        &self,
        raw: &RawProvider,
        span: &Range<usize>,
        ca_file: Option<PathBuf>,
        timeout: Duration,
    ) -> Result<GithubConfig, Error> {
        let client_id = self.required(&raw.client_id, "client_id", span, "github")?;
        let Some(client_secret) =
            self.secret(&raw.client_secret, &raw.client_secret_file, "client_secret")?
        else {
            return self.fail(span, "a github provider needs client_secret or client_secret_file (GitHub's OAuth apps are confidential)");
        };
        let (api_url, web_url) = match &raw.api_url {
            None => (
                Url::parse("https://api.github.com/").expect("a valid URL"),
                Url::parse("https://github.com/").expect("a valid URL"),
            ),
            Some(raw_url) => {
                let mut api = self.provider_url("api_url", raw_url, ["https", "http"])?;
                if !api.path().ends_with('/') {
                    let path = format!("{}/", api.path());
                    api.set_path(&path);
                }
                let mut web = api.clone();
                // GitHub Enterprise: the API under /api/v3 of the web host.
                let web_path = api.path().strip_suffix("api/v3/").unwrap_or("/").to_owned();
                web.set_path(&web_path);
                (api, web)
            }
        };
        Ok(GithubConfig {
            client_id: client_id.get_ref().clone(),
            client_secret,
            allowed_orgs: raw
                .allowed_orgs
                .as_ref()
                .map(|orgs| orgs.get_ref().iter().map(|o| o.to_ascii_lowercase()).collect())
                .unwrap_or_default(),
            api_url,
            web_url,
            ca_file,
            timeout,
        })
    }

    fn ldap(
        &self,
        raw: &RawProvider,
        span: &Range<usize>,
        ca_file: Option<PathBuf>,
        timeout: Duration,
    ) -> Result<LdapConfig, Error> {
        let url_raw = self.required(&raw.url, "url", span, "ldap")?;
        let url = Url::parse(url_raw.get_ref()).map_err(|e| {
            self.error(
                &url_raw.span(),
                format!("url = {:?} is not a URL: {e}", url_raw.get_ref()),
            )
        })?;
        let start_tls = raw.start_tls.as_ref().is_some_and(|s| *s.get_ref());
        match url.scheme() {
            "ldaps" => {}
            "ldap" => {}
            other => {
                return self.fail(
                    &url_raw.span(),
                    format!("url: the scheme must be ldap or ldaps, not {other:?}"),
                )
            }
        }
        if start_tls && url.scheme() == "ldaps" {
            return self.fail(
                &url_raw.span(),
                "start_tls is for ldap:// URLs; ldaps:// is TLS from the start",
            );
        }
        if url.host().is_none() {
            return self.fail(&url_raw.span(), "url has no host");
        }
        // ldap:// is no special scheme to the URL parser: its host is text.
        let host = url
            .host_str()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if url.scheme() == "ldap" && !start_tls && !loopback {
            return self.fail(
                &url_raw.span(),
                "url = ldap:// off loopback would send people's passwords in clear, and anyone on the way could answer \"bind succeeded\": use ldaps://, or start_tls = true",
            );
        }
        let bind_dn = self.required(&raw.bind_dn, "bind_dn", span, "ldap")?;
        let Some(bind_password) =
            self.secret(&raw.bind_password, &raw.bind_password_file, "bind_password")?
        else {
            return self.fail(
                span,
                "an ldap provider needs bind_password or bind_password_file (the service account's)",
            );
        };
        let user_base_dn = self.required(&raw.user_base_dn, "user_base_dn", span, "ldap")?;
        let user_filter = match &raw.user_filter {
            Some(filter) if !filter.get_ref().contains("{username}") => {
                return self.fail(
                    &filter.span(),
                    "user_filter must contain {username}, like \"(uid={username})\"",
                )
            }
            Some(filter) => filter.get_ref().clone(),
            None => "(uid={username})".to_owned(),
        };
        let group_filter = match &raw.group_filter {
            Some(filter)
                if !filter.get_ref().contains("{dn}") && !filter.get_ref().contains("{username}") =>
            {
                return self.fail(
                    &filter.span(),
                    "group_filter must contain {dn} or {username}, like \"(member={dn})\"",
                )
            }
            Some(filter) => filter.get_ref().clone(),
            None => "(member={dn})".to_owned(),
        };
        let attribute = |value: &Option<Spanned<String>>, default: &str| {
            value.as_ref().map_or(default.to_owned(), |v| v.get_ref().clone())
        };
        Ok(LdapConfig {
            url,
            start_tls,
            bind_dn: bind_dn.get_ref().clone(),
            bind_password,
            user_base_dn: user_base_dn.get_ref().clone(),
            user_filter,
            group_base_dn: raw.group_base_dn.as_ref().map(|d| d.get_ref().clone()),
            group_filter,
            email_attribute: attribute(&raw.email_attribute, "mail"),
            name_attribute: attribute(&raw.name_attribute, "cn"),
            ca_file,
            timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Policy, ProviderKind};
    use crate::error::Error;

    const UP: &str = "[upstream]\nbuiltin = \"whoami\"\n";
    const CORP: &str = "[[providers]]\nid = \"corp\"\nkind = \"oidc\"\nissuer = \"https://idp.example\"\nclient_id = \"authgate\"\nclient_secret = \"s\"\n";

    fn refused(toml: &str) -> Error {
        Config::from_toml_str(toml).expect_err("config should have been refused")
    }

    fn line(err: &Error) -> usize {
        err.location().expect("a location").line
    }

    #[test]
    fn kinds_ids_and_keys_of_other_kinds_are_refused_with_their_lines() {
        let err = refused(&format!("{UP}[[providers]]\nid = \"x\"\nkind = \"saml\"\n"));
        assert_eq!(line(&err), 5, "{err}");
        assert!(
            err.message().contains("\"oidc\", \"github\" or \"ldap\""),
            "{err}"
        );
        let err = refused(&format!("{UP}{CORP}{CORP}"));
        assert_eq!(line(&err), 10, "the second id: {err}");
        assert!(err.message().contains("used twice"), "{err}");
        let err = refused(&format!(
            "{UP}[[providers]]\nid = \"Corp SSO\"\nkind = \"oidc\"\n"
        ));
        assert_eq!(line(&err), 4, "{err}");
        let err = refused(&format!("{UP}{CORP}bind_dn = \"cn=x\"\n"));
        assert_eq!(line(&err), 9, "{err}");
        assert!(
            err.message().contains("bind_dn is a setting of ldap providers"),
            "{err}"
        );
        let err = refused(&format!("{UP}{CORP}frobnicate = 1\n"));
        assert!(err.message().contains("unknown field `frobnicate`"), "{err}");
        let err = refused(&format!(
            "{UP}[[providers]]\nid = \"corp\"\nkind = \"oidc\"\nclient_id = \"a\"\n"
        ));
        assert!(err.message().contains("needs issuer"), "{err}");
    }

    #[test]
    fn an_issuer_off_loopback_must_be_https() {
        let err = refused(&format!(
            "{UP}{}",
            CORP.replace("https://idp.example", "http://idp.example")
        ));
        assert_eq!(line(&err), 6, "{err}");
        assert!(err.message().contains("must use https:// off loopback"), "{err}");
        for ok in [
            "http://127.0.0.1:9000",
            "http://localhost:9000/realms/x",
            "https://idp.example/tenant",
        ] {
            Config::from_toml_str(&format!("{UP}{}", CORP.replace("https://idp.example", ok)))
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let err = refused(&format!(
            "{UP}{}",
            CORP.replace("\"https://idp.example\"", "\"https://idp.example?x=1\"")
        ));
        assert!(err.message().contains("no query"), "{err}");
        let err = refused(&format!("{UP}{CORP}scopes = [\"email\"]\n"));
        assert!(err.message().contains("must include \"openid\""), "{err}");
    }

    #[test]
    fn secret_files_are_read_and_an_unreadable_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("corp.secret"), "from-a-file\nignored\n").unwrap();
        let toml = format!(
            "{UP}[[providers]]\nid = \"corp\"\nkind = \"oidc\"\nissuer = \"https://idp.example\"\nclient_id = \"a\"\nclient_secret_file = \"corp.secret\"\n"
        );
        let path = dir.path().join("config.toml");
        std::fs::write(&path, &toml).unwrap();
        let config = Config::load(&path).unwrap();
        let ProviderKind::Oidc(oidc) = &config.providers[0].kind else {
            panic!()
        };
        assert_eq!(oidc.client_secret.as_ref().unwrap().expose(), "from-a-file");
        std::fs::write(&path, toml.replace("corp.secret", "missing.secret")).unwrap();
        let err = Config::load(&path).unwrap_err();
        assert_eq!(line(&err), 8, "{err}");
        assert!(err.message().contains("missing.secret"), "{err}");
        let err = refused(&format!("{UP}{CORP}client_secret_file = \"x\"\n"));
        assert!(err.message().contains("not both"), "{err}");
        std::fs::write(dir.path().join("short.secret"), "too short\n").unwrap();
        std::fs::write(&path, format!("{UP}[auth]\nsecret_file = \"short.secret\"\n")).unwrap();
        let err = Config::load(&path).unwrap_err();
        assert_eq!(line(&err), 4, "{err}");
        assert!(err.message().contains("at least 32 characters"), "{err}");
        std::fs::write(
            dir.path().join("good.secret"),
            "0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        std::fs::write(&path, format!("{UP}[auth]\nsecret_file = \"good.secret\"\n")).unwrap();
        assert!(Config::load(&path).unwrap().auth.secret.is_some());
    }

    #[test]
    fn ldap_and_github_settings_are_checked() {
        let ldap = "[[providers]]\nid = \"ldap\"\nkind = \"ldap\"\nurl = \"ldap://127.0.0.1:389\"\nbind_dn = \"cn=a\"\nbind_password = \"p\"\nuser_base_dn = \"ou=people\"\n";
        let config = Config::from_toml_str(&format!("{UP}{ldap}")).unwrap();
        let ProviderKind::Ldap(found) = &config.providers[0].kind else {
            panic!()
        };
        assert_eq!(found.user_filter, "(uid={username})");
        assert!(!config.providers[0].is_redirect());
        let err = refused(&format!("{UP}{ldap}user_filter = \"(uid=alice)\"\n"));
        assert!(err.message().contains("must contain {username}"), "{err}");
        let err = refused(&format!(
            "{UP}{}",
            ldap.replace("127.0.0.1:389", "ldap.example.com")
        ));
        assert!(err.message().contains("in clear"), "{err}");
        Config::from_toml_str(&format!(
            "{UP}{}start_tls = true\n",
            ldap.replace("127.0.0.1:389", "ldap.example.com")
        ))
        .unwrap();
        let err = refused(&format!("{UP}{}", ldap.replace("ldap://", "http://")));
        assert!(err.message().contains("ldap or ldaps"), "{err}");
        let err = refused(&format!(
            "{UP}{}start_tls = true\n",
            ldap.replace("ldap://", "ldaps://")
        ));
        assert!(err.message().contains("start_tls"), "{err}");
        let err = refused(&format!("{UP}{}", ldap.replace("bind_password = \"p\"\n", "")));
        assert!(err.message().contains("bind_password"), "{err}");

        let github =
            "[[providers]]\nid = \"gh\"\nkind = \"github\"\nclient_id = \"a\"\nclient_secret = \"b\"\n";
        let config = Config::from_toml_str(&format!(
            "{UP}{github}api_url = \"https://ghe.example/api/v3\"\nallowed_orgs = [\"Acme\"]\n"
        ))
        .unwrap();
        let ProviderKind::Github(found) = &config.providers[0].kind else {
            panic!()
        };
        assert_eq!(found.api_url.as_str(), "https://ghe.example/api/v3/");
        assert_eq!(found.web_url.as_str(), "https://ghe.example/");
        assert_eq!(found.allowed_orgs, ["acme"]);
        assert_eq!(config.providers[0].display_name, "GitHub");
        let err = refused(&format!("{UP}{}", github.replace("client_secret = \"b\"\n", "")));
        assert!(err.message().contains("client_secret"), "{err}");
    }

    #[test]
    fn rules_may_name_provider_users_and_auto_redirect_needs_one_button_only() {
        let config = Config::from_toml_str(&format!(
            "{UP}[[routes]]\npath_prefix = \"/ops\"\nbuiltin = \"whoami\"\nallowed_users = [\"corp:alice\"]\nallowed_groups = [\"ops\"]\n{CORP}"
        ))
        .unwrap();
        let Policy::Only(allowed) = &config.routes[0].policy else {
            panic!()
        };
        assert_eq!(
            (allowed.users.as_slice(), allowed.groups.as_slice()),
            (&["corp:alice".to_owned()][..], &["ops".to_owned()][..])
        );
        let err = refused(&format!("{UP}[auth]\nallowed_users = [\"other:alice\"]\n{CORP}"));
        assert_eq!(line(&err), 4, "{err}");
        let err = refused(&format!("{UP}[auth]\nallowed_groups = [\"a,b\"]\n"));
        assert!(err.message().contains("no commas"), "{err}");
        Config::from_toml_str(&format!("{UP}[auth]\nauto_redirect = true\n{CORP}")).unwrap();
        let hash = crate::password::hash_password("pw");
        let err = refused(&format!(
            "{UP}[auth]\nauto_redirect = true\n[[users]]\nusername = \"a\"\npassword_hash = \"{hash}\"\n{CORP}"
        ));
        assert!(
            err.message()
                .contains("exactly one outside provider and no password sign-in"),
            "{err}"
        );
        let err = refused(&format!(
            "{UP}[[users]]\nusername = \"a\"\npassword_hash = \"{hash}\"\nlinks = [\"nobody:1\"]\n{CORP}"
        ));
        assert_eq!(line(&err), 6, "{err}");
        let err = refused(&format!(
            "{UP}[[users]]\nusername = \"corp:a\"\npassword_hash = \"{hash}\"\n"
        ));
        assert!(err.message().contains("no :"), "{err}");
    }
}
