//! Who a session is for ([`Identity`]), the header values made of it
//! once, and what an outside provider issued at the sign-in
//! ([`ProviderTokens`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::unix_now;

/// Who a session is for: the user's name, email, display name and groups,
/// and the provider that vouched for them; shared by all of that user's
/// sessions from one sign-in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identity {
    username: Box<str>,
    email: Option<Box<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<Box<str>>,
    #[serde(default, skip_serializing_if = "<[_]>::is_empty")]
    groups: Box<[Box<str>]>,
    /// The outside provider (`[[providers]] id`); `None` for `[[users]]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider: Option<Box<str>>,
    /// The provider's stable identifier for the person (`sub`, GitHub's
    /// numeric id, the LDAP entry's DN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<Box<str>>,
    /// The name the provider gave (`preferred_username`, GitHub's login,
    /// LDAP's uid), where it differs from `username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    preferred_username: Option<Box<str>>,
    /// What the outside provider issued at the sign-in (kept here, on the
    /// server side only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider_tokens: Option<Arc<ProviderTokens>>,
    /// Signed in with a temporary password: nothing passes until it is
    /// changed (on the account page).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    password_change_required: bool,
    #[serde(skip)]
    headers: IdentityHeaders,
}

/// The tokens an outside provider issued at a sign-in: its access token
/// (for `pass_access_token`), refresh token and ID token (for signing out
/// there too), and when to refresh.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct ProviderTokens {
    pub(crate) access_token: Box<str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_token: Option<Box<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id_token: Option<Box<str>>,
    /// When the access token stops working (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expires_at: Option<u64>,
    /// When to refresh it: three quarters into its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_at: Option<u64>,
}

impl ProviderTokens {
    /// Tokens issued now, the access token for `expires_in` seconds.
    pub(crate) fn issued(
        access_token: &str,
        refresh_token: Option<&str>,
        id_token: Option<&str>,
        expires_in: Option<u64>,
    ) -> Self {
        let now = unix_now();
        Self {
            access_token: access_token.into(),
            refresh_token: refresh_token.map(Into::into),
            id_token: id_token.map(Into::into),
            expires_at: expires_in.map(|secs| now.saturating_add(secs)),
            refresh_at: expires_in.map(|secs| now.saturating_add(secs - secs / 4)),
        }
    }

    /// Whether it is time to refresh at `now` (there is a refresh token,
    /// and the access token is three quarters through its life).
    pub(crate) fn due(&self, now: u64) -> bool {
        self.refresh_token.is_some() && self.refresh_at.is_some_and(|at| now >= at)
    }
}

/// An identity's fields as header values, made the first time a request
/// is forwarded for it, then shared by every such request.
#[derive(Clone, Debug, Default)]
struct IdentityHeaders(std::sync::OnceLock<ForwardedIdentity>);

/// The header values of an identity (`None` for a field it lacks, or one
/// that cannot be a header value).
#[derive(Clone, Debug, Default)]
pub(crate) struct ForwardedIdentity {
    pub(crate) user: Option<http::HeaderValue>,
    pub(crate) email: Option<http::HeaderValue>,
    /// The groups, comma-separated.
    pub(crate) groups: Option<http::HeaderValue>,
    pub(crate) preferred_username: Option<http::HeaderValue>,
}

/// Made from the identity's fields: never what tells two identities apart.
impl PartialEq for IdentityHeaders {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for IdentityHeaders {}

/// Consistent with `PartialEq`: the fields alone tell identities apart.
impl std::hash::Hash for IdentityHeaders {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

/// What an identity is made of, for [`Identity::from_parts`].
#[derive(Clone, Debug, Default)]
pub(crate) struct IdentityParts<'a> {
    pub(crate) username: &'a str,
    pub(crate) email: Option<&'a str>,
    pub(crate) name: Option<&'a str>,
    pub(crate) groups: &'a [String],
    pub(crate) provider: Option<&'a str>,
    pub(crate) subject: Option<&'a str>,
    pub(crate) preferred_username: Option<&'a str>,
    pub(crate) provider_tokens: Option<Arc<ProviderTokens>>,
    pub(crate) password_change_required: bool,
}

impl Identity {
    /// The identity of `username`, with an email address where known.
    pub fn new(username: &str, email: Option<&str>) -> Arc<Self> {
        Self::from_parts(IdentityParts {
            username,
            email,
            ..IdentityParts::default()
        })
    }

    /// An identity with every field. Groups are kept sorted and once each.
    pub(crate) fn from_parts(parts: IdentityParts<'_>) -> Arc<Self> {
        let mut groups: Vec<Box<str>> = parts.groups.iter().map(|g| g.as_str().into()).collect();
        groups.sort_unstable();
        groups.dedup();
        Arc::new(Self {
            username: parts.username.into(),
            email: parts.email.map(Into::into),
            name: parts.name.map(Into::into),
            groups: groups.into_boxed_slice(),
            provider: parts.provider.map(Into::into),
            subject: parts.subject.map(Into::into),
            preferred_username: parts.preferred_username.map(Into::into),
            provider_tokens: parts.provider_tokens,
            password_change_required: parts.password_change_required,
            headers: IdentityHeaders::default(),
        })
    }

    /// The identity's fields as header values.
    pub(crate) fn as_headers(&self) -> &ForwardedIdentity {
        self.headers.0.get_or_init(|| {
            let value = |text: &str| http::HeaderValue::from_bytes(text.as_bytes()).ok();
            // A group whose name holds a comma would read as two: left out.
            let groups: Vec<&str> = self
                .groups
                .iter()
                .map(|g| &**g)
                .filter(|g| !g.contains(','))
                .collect();
            ForwardedIdentity {
                user: value(&self.username),
                email: self.email.as_deref().and_then(value),
                groups: (!groups.is_empty()).then(|| value(&groups.join(","))).flatten(),
                preferred_username: self.preferred_username.as_deref().and_then(value),
            }
        })
    }

    /// The user's name: a `[[users]]` name, or `provider:name` for a
    /// person from an outside provider.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The user's email address.
    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }

    /// The user's display name, where known.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The groups the user was in when they signed in, sorted.
    pub fn groups(&self) -> impl ExactSizeIterator<Item = &str> {
        self.groups.iter().map(|g| &**g)
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.binary_search_by(|g| (**g).cmp(group)).is_ok()
    }

    /// The outside provider that vouched for the user (`[[providers]]
    /// id`); `None` for a user of `[[users]]`.
    pub fn provider(&self) -> Option<&str> {
        self.provider.as_deref()
    }

    /// The provider's stable identifier for the user.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// The name the provider gave the user, where it differs from
    /// [`username`](Self::username).
    pub fn preferred_username(&self) -> Option<&str> {
        self.preferred_username.as_deref()
    }

    /// Whether the user signed in with a temporary password, which they
    /// must change before anything else passes.
    pub fn password_change_required(&self) -> bool {
        self.password_change_required
    }

    /// The same identity, its password changed.
    pub(crate) fn with_password_changed(&self) -> Arc<Self> {
        Arc::new(Self {
            password_change_required: false,
            headers: IdentityHeaders::default(),
            ..self.clone()
        })
    }

    /// The OpenID Connect claims about this person that `scopes` release
    /// (`profile`: name and preferred_username; `email`; `groups`), with
    /// `sub`, a stable id of the person at this gateway.
    pub(crate) fn openid_claims<'s>(
        &self,
        scopes: impl Iterator<Item = &'s str> + Clone,
    ) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::Value;
        let has = |name: &str| scopes.clone().any(|s| s == name);
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), Value::String(user_uuid(&self.username)));
        if has("profile") {
            claims.insert(
                "name".into(),
                Value::String(self.name().unwrap_or(&self.username).to_owned()),
            );
            claims.insert(
                "preferred_username".into(),
                Value::String(self.preferred_username().unwrap_or(&self.username).to_owned()),
            );
        }
        if has("email") {
            if let Some(email) = self.email() {
                claims.insert("email".into(), Value::String(email.to_owned()));
                // authgate itself proves no address; a provider's (or a
                // directory's) is kept only when it vouched for it.
                claims.insert("email_verified".into(), Value::Bool(self.provider.is_some()));
            }
        }
        if has("groups") {
            claims.insert(
                "groups".into(),
                self.groups().map(|g| Value::String(g.to_owned())).collect(),
            );
        }
        claims
    }

    pub(crate) fn provider_tokens(&self) -> Option<&Arc<ProviderTokens>> {
        self.provider_tokens.as_ref()
    }

    /// The same identity in `more` groups as well.
    pub(crate) fn with_groups(&self, more: impl IntoIterator<Item = String>) -> Arc<Self> {
        let mut groups: Vec<Box<str>> = self.groups.to_vec();
        groups.extend(more.into_iter().map(Into::into));
        groups.sort_unstable();
        groups.dedup();
        Arc::new(Self {
            groups: groups.into_boxed_slice(),
            headers: IdentityHeaders::default(),
            ..self.clone()
        })
    }

    /// The same identity with the provider's tokens of a refresh.
    pub(crate) fn with_provider_tokens(&self, tokens: ProviderTokens) -> Arc<Self> {
        Arc::new(Self {
            provider_tokens: Some(Arc::new(tokens)),
            headers: IdentityHeaders::default(),
            ..self.clone()
        })
    }
}

/// A user's UUID, derived from the username (the same on every start and
/// every replica): SHA-256 of a fixed prefix and the name, shaped as a
/// version-5-style UUID.
pub(crate) fn user_uuid(username: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("authgate user\0{username}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
