//! `[[providers]]`: the outside identity providers people sign in
//! through (OpenID Connect, GitHub) and the LDAP directories the sign-in
//! form checks; their types and their checks.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use url::Url;
use zeroize::Zeroizing;

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
    /// The ID token's `amr` and `acr` say how the person signed in there:
    /// a second factor there counts here.
    pub(crate) trust_amr: bool,
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
    trust_amr: Option<Spanned<bool>>,
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
        let keys: [(&str, Option<Range<usize>>, &str); 24] = [
            (
                "pass_access_token",
                self.pass_access_token.as_ref().map(Spanned::span),
                redirect,
            ),
            ("logout", self.logout.as_ref().map(Spanned::span), oidc),
            ("trust_amr", self.trust_amr.as_ref().map(Spanned::span), oidc),
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

mod check;
#[cfg(test)]
mod tests;
