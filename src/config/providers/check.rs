//! The checks of `[[providers]]`: each kind's required keys, secrets
//! from files, the URLs providers are reached at.

use std::collections::HashSet;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;
use url::Url;
use zeroize::Zeroizing;

use crate::error::Error;

use super::super::check::{relative_to, Checker};
use super::{
    GithubConfig, LdapConfig, OidcConfig, ProviderConfig, ProviderKind, RawProvider, Secret, DEFAULT_SCOPES,
    DEFAULT_TIMEOUT_SECS,
};

impl Checker<'_> {
    pub(in crate::config) fn providers(
        &self,
        raw: Vec<Spanned<RawProvider>>,
    ) -> Result<Vec<ProviderConfig>, Error> {
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
    pub(in crate::config) fn secret(
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
            trust_amr: raw.trust_amr.as_ref().is_some_and(|t| *t.get_ref()),
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
