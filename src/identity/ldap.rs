//! People from an LDAP directory (`[[providers]] kind = "ldap"`): the
//! sign-in form's username and password, checked by the directory itself.
//!
//! A service account searches for the person (the username escaped as
//! RFC 4515 says, so it can never widen the filter), the password is
//! checked by binding as the entry found (never by comparing a stored
//! hash), and the person's groups are searched for. Searches share one
//! connection bound as the service account; binds as people use a few
//! connections of their own. Every operation has the provider's timeout,
//! and a directory that cannot be reached answers
//! [`Checked::Unavailable`]: its people get a clear error, everyone else
//! signs in as before.

use std::sync::Arc;
use std::time::Duration;

use ldap3::{ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use tokio::sync::Mutex;

use crate::config::{LdapConfig, ProviderConfig};
use crate::store::{Identity, IdentityParts};

use super::{Checked, PasswordSource, SourceFuture, User, Verification};

/// How many connections for binds as people are kept open.
const IDLE_BIND_CONNECTIONS: usize = 4;

/// One LDAP directory.
pub(crate) struct LdapDirectory {
    provider: ProviderConfig,
    config: LdapConfig,
    /// Bound as the service account, for searches; remade when it breaks.
    service: Mutex<Option<Ldap>>,
    /// Connections for binds as people, idle.
    binders: std::sync::Mutex<Vec<Ldap>>,
}

impl std::fmt::Debug for LdapDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapDirectory")
            .field("provider", &self.provider.id)
            .finish()
    }
}

/// Why the directory could not answer.
#[derive(Debug, thiserror::Error)]
enum LdapError {
    #[error("cannot reach {url}: {source}")]
    Connect { url: String, source: ldap3::LdapError },
    #[error("the service account's bind was refused: {0}")]
    ServiceBind(ldap3::LdapError),
    #[error("{0}")]
    Operation(#[from] ldap3::LdapError),
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    #[error("ca_file: {0}")]
    Tls(String),
}

/// What the search for a person found.
enum Found {
    Nobody,
    One(Person),
    Several,
}

/// A person's entry.
struct Person {
    dn: String,
    email: Option<String>,
    name: Option<String>,
    /// Their name here, lower case.
    login: String,
}

/// The attribute `user_filter` compares the username with: `uid` in
/// `(uid={username})`, `sAMAccountName` in
/// `(&(objectCategory=person)(sAMAccountName={username}))`.
fn login_attribute(filter: &str) -> Option<&str> {
    let before = &filter[..filter.find("={username}")?];
    let start = before.rfind(['(', '&', '|', '!']).map_or(0, |at| at + 1);
    let attribute = before[start..].trim();
    (!attribute.is_empty()
        && attribute
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b';'))
    .then_some(attribute)
}

impl LdapDirectory {
    pub(crate) fn new(provider: &ProviderConfig, config: &LdapConfig) -> Self {
        Self {
            provider: provider.clone(),
            config: config.clone(),
            service: Mutex::new(None),
            binders: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn timeout(&self) -> Duration {
        self.config.timeout
    }

    async fn connect(&self) -> Result<Ldap, LdapError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout())
            .set_starttls(self.config.start_tls);
        #[cfg(feature = "tls")]
        if let Some(ca_file) = &self.config.ca_file {
            let tls = crate::tls::client_config(Some(ca_file)).map_err(LdapError::Tls)?;
            settings = settings.set_config(tls);
        }
        let url = self.config.url.as_str();
        let (conn, ldap) = LdapConnAsync::from_url_with_settings(settings, &self.config.url)
            .await
            .map_err(|source| LdapError::Connect {
                url: url.to_owned(),
                source,
            })?;
        tokio::spawn(async move {
            if let Err(err) = conn.drive().await {
                tracing::debug!(error = %err, "LDAP connection ended");
            }
        });
        Ok(ldap)
    }

    /// The connection bound as the service account, made (and bound) if
    /// there is none.
    async fn service(&self) -> Result<Ldap, LdapError> {
        let mut slot = self.service.lock().await;
        if let Some(ldap) = slot.as_mut() {
            if !ldap.is_closed() {
                return Ok(ldap.clone());
            }
        }
        let mut ldap = self.connect().await?;
        ldap.with_timeout(self.timeout())
            .simple_bind(&self.config.bind_dn, self.config.bind_password.expose())
            .await
            .and_then(|r| r.success())
            .map_err(LdapError::ServiceBind)?;
        *slot = Some(ldap.clone());
        Ok(ldap)
    }

    /// Searches with the service account, once more on a fresh connection
    /// if the kept one broke.
    async fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> Result<Vec<SearchEntry>, LdapError> {
        let mut last = None;
        for _ in 0..2 {
            let mut ldap = self.service().await?;
            match ldap
                .with_timeout(self.timeout())
                .search(base, Scope::Subtree, filter, attrs.to_vec())
                .await
                .and_then(|r| r.success())
            {
                Ok((entries, _)) => return Ok(entries.into_iter().map(SearchEntry::construct).collect()),
                Err(err) => {
                    // A broken connection is dropped; a refusal is an answer.
                    if matches!(err, ldap3::LdapError::LdapResult { .. }) {
                        return Err(err.into());
                    }
                    *self.service.lock().await = None;
                    last = Some(err);
                }
            }
        }
        Err(last.map_or_else(
            || LdapError::Operation(ldap3::LdapError::EndOfStream),
            LdapError::Operation,
        ))
    }

    /// The entry of `username`: `Ok(None)` if there is none, and
    /// [`Found::Several`] when the filter matches more than one (refused:
    /// which one is meant cannot be told).
    async fn find(&self, username: &str) -> Result<Found, LdapError> {
        let filter = self
            .config
            .user_filter
            .replace("{username}", &ldap_escape(username));
        let email = self.config.email_attribute.as_str();
        let name = self.config.name_attribute.as_str();
        let login = login_attribute(&self.config.user_filter);
        let mut attributes = vec![email, name];
        attributes.extend(login);
        let mut found = self
            .search(&self.config.user_base_dn, &filter, &attributes)
            .await?;
        if found.len() > 1 {
            tracing::warn!(provider = %self.provider.id, username, matches = found.len(), "LDAP user filter matches several entries: refused");
            return Ok(Found::Several);
        }
        let Some(entry) = found.pop() else {
            return Ok(Found::Nobody);
        };
        let first = |attribute: &str| {
            entry
                .attrs
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
                .and_then(|(_, values)| values.first())
                .cloned()
        };
        Ok(Found::One(Person {
            email: first(email),
            name: first(name),
            // The directory's own spelling of the name (it matches names
            // without case, and often without insignificant spaces).
            login: login
                .and_then(first)
                .unwrap_or_else(|| username.to_owned())
                .to_lowercase(),
            dn: entry.dn,
        }))
    }

    /// Whether `password` is the password of the entry `dn`: a bind as it.
    async fn bind_as(&self, dn: &str, password: &str) -> Result<bool, LdapError> {
        let kept = self.binders.lock().ok().and_then(|mut idle| idle.pop());
        let mut ldap = match kept {
            Some(mut ldap) => match ldap.is_closed() {
                false => ldap,
                true => self.connect().await?,
            },
            None => self.connect().await?,
        };
        let result = ldap
            .with_timeout(self.timeout())
            .simple_bind(dn, password)
            .await?;
        if let Ok(mut idle) = self.binders.lock() {
            if idle.len() < IDLE_BIND_CONNECTIONS {
                idle.push(ldap);
            }
        }
        // 49: invalidCredentials. Anything else is the directory's trouble.
        match result.rc {
            0 => Ok(true),
            49 => Ok(false),
            _ => Err(LdapError::Operation(ldap3::LdapError::LdapResult { result })),
        }
    }

    async fn groups(&self, username: &str, dn: &str) -> Result<Vec<String>, LdapError> {
        let Some(base) = &self.config.group_base_dn else {
            return Ok(Vec::new());
        };
        let filter = self
            .config
            .group_filter
            .replace("{dn}", &ldap_escape(dn))
            .replace("{username}", &ldap_escape(username));
        let entries = self.search(base, &filter, &["cn"]).await?;
        Ok(entries
            .into_iter()
            .filter_map(|e| e.attrs.get("cn").and_then(|v| v.first()).cloned())
            .collect())
    }

    async fn check(&self, username: &str, password: &str) -> Result<Checked, LdapError> {
        // An empty password would be an "unauthenticated bind", which
        // directories answer with success (RFC 4513 §5.1.2).
        if password.is_empty() || username.is_empty() {
            return Ok(Checked::Refused);
        }
        let person = match self.find(username).await? {
            Found::One(person) => person,
            Found::Nobody => return Ok(Checked::NotHere),
            Found::Several => return Ok(Checked::Refused),
        };
        if !self.bind_as(&person.dn, password).await? {
            return Ok(Checked::Refused);
        }
        // The directory's spelling of the name, not the one typed.
        let groups = self.groups(&person.login, &person.dn).await?;
        if !self.provider.allowed_groups.is_empty()
            && !groups.iter().any(|g| self.provider.allowed_groups.contains(g))
        {
            tracing::info!(provider = %self.provider.id, username, "LDAP user not in the provider's allowed_groups");
            return Ok(Checked::Refused);
        }
        let login = person.login;
        let identity = Identity::from_parts(IdentityParts {
            username: &format!("{}:{login}", self.provider.id),
            email: person.email.as_deref(),
            name: person.name.as_deref(),
            groups: &groups,
            provider: Some(&self.provider.id),
            subject: Some(&login),
            preferred_username: Some(&login),
            provider_tokens: None,
            password_change_required: false,
        });
        Ok(Checked::Verified(Arc::new(User::outside(identity))))
    }
}

impl PasswordSource for LdapDirectory {
    fn user(&self, _username: &str) -> Option<Arc<User>> {
        None
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn verify<'a>(&'a self, username: &'a str, password: &'a str, _: &'a Verification) -> SourceFuture<'a> {
        Box::pin(async move {
            match self.check(username, password).await {
                Ok(checked) => checked,
                Err(err) => {
                    tracing::warn!(provider = %self.provider.id, error = %err, "LDAP directory unavailable");
                    Checked::Unavailable
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::login_attribute;

    #[test]
    fn the_login_attribute_is_read_from_the_user_filter() {
        assert_eq!(login_attribute("(uid={username})"), Some("uid"));
        assert_eq!(
            login_attribute("(&(objectCategory=person)(sAMAccountName={username}))"),
            Some("sAMAccountName")
        );
        assert_eq!(login_attribute("(|(mail={username})(uid=x))"), Some("mail"));
        assert_eq!(
            login_attribute("(cn=*{username}*)"),
            None,
            "not an equality on the name"
        );
    }
}
