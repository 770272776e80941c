//! Outside providers people are sent to for signing in (OpenID Connect,
//! GitHub): starting a sign-in, finishing it, and the rules of the
//! provider's `[[providers]]` entry (allowed email domains and groups)
//! applied to whoever comes back.
//!
//! Someone from outside is `provider:name` here, never the `[[users]]`
//! entry of the same name, unless that entry links their
//! `provider:subject` or the provider has `link_by_verified_email`.

mod claims;
mod github;
mod http;
mod oidc;

use std::sync::Arc;

use url::Url;

use crate::config::{ProviderConfig, ProviderKind};
use crate::store::{Identity, IdentityParts, ProviderTokens, Session, TokenKey, TokenStore};

use self::github::GithubProvider;
pub(crate) use self::http::ProviderHttp;
pub(crate) use self::oidc::LogoutClaims;
use self::oidc::OidcProvider;
use super::User;

/// An error and its causes, on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Google's issuer, whose accounts need `hd` for a domain rule.
const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// Where a sign-in sends the browser, and what its callback must match.
#[derive(Debug)]
pub(crate) struct Authorization {
    pub(crate) url: Url,
    pub(crate) state: String,
    /// OpenID Connect's `nonce`.
    pub(crate) nonce: Option<String>,
    /// PKCE's code verifier.
    pub(crate) verifier: String,
}

/// Why a sign-in through a provider failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OutsideError {
    /// The provider could not be reached or answered nonsense.
    #[error("the provider cannot be reached: {0}")]
    Unreachable(String),
    /// The provider refused (an error response, a refused code).
    #[error("the provider refused: {0}")]
    Refused(String),
    /// What came back cannot be trusted (a bad token, a mix-up).
    #[error("{0}")]
    Invalid(String),
    /// The person is who they say, but this gateway does not let them in.
    #[error("{0}")]
    NotAllowed(String),
}

/// Who a provider says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutsideIdentity {
    pub(crate) subject: String,
    /// The provider's name for them (unqualified).
    pub(crate) username: String,
    pub(crate) email: Option<String>,
    pub(crate) email_verified: bool,
    pub(crate) name: Option<String>,
    pub(crate) groups: Vec<String>,
    /// The provider's session, for its back-channel logout.
    pub(crate) sid: Option<String>,
    /// Google's `hd`: the Workspace domain of the account, if any.
    pub(crate) hosted_domain: Option<String>,
    /// How the person signed in there, as the ID token says (`amr`,
    /// `acr`); believed only with `trust_amr`.
    pub(crate) amr: Vec<String>,
    pub(crate) acr: Option<String>,
    /// What the provider issued.
    pub(crate) tokens: Option<ProviderTokens>,
}

/// The kinds of outside provider.
#[derive(Debug)]
enum Kind {
    Oidc(Box<OidcProvider>),
    Github(Box<GithubProvider>),
}

/// One outside provider of the configuration.
#[derive(Debug)]
pub(crate) struct Outside {
    config: ProviderConfig,
    kind: Kind,
    /// The sessions whose provider tokens are being refreshed now.
    refreshing: dashmap::DashSet<TokenKey>,
}

impl Outside {
    /// The providers of `providers` that people are sent to.
    pub(crate) fn all(providers: &[ProviderConfig]) -> Vec<Arc<Outside>> {
        providers
            .iter()
            .filter_map(|config| {
                let made = match &config.kind {
                    ProviderKind::Oidc(oidc) => {
                        OidcProvider::new(config, oidc).map(|p| Kind::Oidc(Box::new(p)))
                    }
                    ProviderKind::Github(github) => {
                        GithubProvider::new(config, github).map(|p| Kind::Github(Box::new(p)))
                    }
                    ProviderKind::Ldap(_) => return None,
                };
                // The configuration's checks made sure of what could fail
                // here (its ca_file).
                let kind = made
                    .map_err(
                        |reason| tracing::error!(provider = %config.id, error = %reason, "provider unusable"),
                    )
                    .ok()?;
                Some(Arc::new(Outside {
                    config: config.clone(),
                    kind,
                    refreshing: dashmap::DashSet::new(),
                }))
            })
            .collect()
    }

    pub(crate) fn id(&self) -> &str {
        &self.config.id
    }

    pub(crate) fn display_name(&self) -> &str {
        &self.config.display_name
    }

    /// Where to send the browser to sign in, coming back to `redirect_uri`.
    pub(crate) async fn start(&self, redirect_uri: &str) -> Result<Authorization, OutsideError> {
        match &self.kind {
            Kind::Oidc(oidc) => oidc.start(redirect_uri).await,
            Kind::Github(github) => github.start(redirect_uri),
        }
    }

    /// Finishes a sign-in: the callback's `code` and `iss`, with the PKCE
    /// verifier and nonce [`start`](Self::start) made. The person, if this
    /// provider's rules let them in.
    pub(crate) async fn finish(
        &self,
        redirect_uri: &str,
        code: &str,
        iss: Option<&str>,
        verifier: &str,
        nonce: Option<&str>,
    ) -> Result<OutsideIdentity, OutsideError> {
        let person = match &self.kind {
            Kind::Oidc(oidc) => {
                oidc.check_response_issuer(iss).await?;
                let nonce = nonce.ok_or_else(|| OutsideError::Invalid("the sign-in kept no nonce".into()))?;
                oidc.finish(redirect_uri, code, verifier, nonce).await?
            }
            Kind::Github(github) => github.finish(redirect_uri, code, verifier).await?,
        };
        self.admit(&person)?;
        Ok(person)
    }

    /// The claims of a back-channel logout token from this provider, if
    /// it is valid (only OpenID Connect providers send them).
    pub(crate) async fn logout_claims(&self, token: &str) -> Result<LogoutClaims, OutsideError> {
        match &self.kind {
            Kind::Oidc(oidc) => oidc.logout_claims(token).await,
            Kind::Github(_) => Err(OutsideError::Invalid("GitHub sends no logout tokens".into())),
        }
    }

    /// Whether the provider's access token goes upstream.
    pub(crate) fn passes_access_token(&self) -> bool {
        self.config.pass_access_token
    }

    /// How `person` signed in at the provider, where its config trusts
    /// the provider to say (`trust_amr`); else nothing known.
    pub(crate) fn methods_of(&self, person: &OutsideIdentity) -> crate::store::AuthMethods {
        use crate::store::AuthMethods;
        let trusted = matches!(&self.config.kind, crate::config::ProviderKind::Oidc(oidc) if oidc.trust_amr);
        if !trusted {
            return AuthMethods::NONE;
        }
        // OpenID's PAPE multi-factor policy, or a plain "mfa".
        let acr_mfa = person.acr.as_deref().is_some_and(|acr| {
            acr == "mfa" || acr == "http://schemas.openid.net/pape/policies/2007/06/multi-factor"
        });
        AuthMethods::from_names(person.amr.iter().map(String::as_str)).with(if acr_mfa {
            AuthMethods::ASSERTED_MFA
        } else {
            AuthMethods::NONE
        })
    }

    /// Refreshes the provider tokens of the session under `key` in the
    /// background, unless that is already under way: the session gets the
    /// new tokens, or ends if the provider refuses.
    pub(crate) fn refresh_in_background(
        self: &Arc<Self>,
        key: TokenKey,
        session: Session,
        store: Arc<dyn TokenStore>,
    ) {
        if !matches!(self.kind, Kind::Oidc(_)) {
            return;
        }
        let Some(tokens) = session.identity().provider_tokens().cloned() else {
            return;
        };
        if !self.refreshing.insert(key) {
            return;
        }
        let provider = self.clone();
        tokio::spawn(async move {
            let Kind::Oidc(oidc) = &provider.kind else { return };
            match oidc.refresh(&tokens).await {
                Ok(fresh) => {
                    let identity = session.identity().with_provider_tokens(fresh);
                    // Only where the session is still there: one revoked
                    // while the provider answered stays revoked.
                    if let Err(err) = store.update(key, session.with_identity(identity)).await {
                        tracing::warn!(error = %err, "could not keep refreshed provider tokens");
                    }
                }
                Err(OutsideError::Refused(reason)) => {
                    tracing::info!(
                        provider = provider.id(),
                        reason,
                        "the provider refused a refresh: the session ends"
                    );
                    if let Err(err) = store.remove(&key).await {
                        tracing::warn!(error = %err, "could not end a session whose refresh was refused");
                    }
                }
                Err(err) => {
                    tracing::warn!(provider = provider.id(), error = %err, "provider token refresh failed; tried again later")
                }
            }
            provider.refreshing.remove(&key);
        });
    }

    /// Where to send the browser to sign out at the provider too, if
    /// `logout = "provider"`.
    pub(crate) async fn end_session_url(&self, identity: &Identity, post_logout: &str) -> Option<Url> {
        match &self.kind {
            Kind::Oidc(oidc) => {
                oidc.end_session_url(identity.provider_tokens().map(|t| &**t), post_logout)
                    .await
            }
            Kind::Github(_) => None,
        }
    }

    /// The provider's rules: allowed email domains (of a verified email)
    /// and allowed groups.
    fn admit(&self, person: &OutsideIdentity) -> Result<(), OutsideError> {
        if let ProviderKind::Oidc(oidc) = &self.config.kind {
            if !oidc.allowed_email_domains.is_empty() {
                let domain = person
                    .email
                    .as_deref()
                    .filter(|_| person.email_verified)
                    .and_then(|email| email.rsplit_once('@'))
                    .map(|(_, domain)| domain.to_ascii_lowercase());
                // Google verifies any address its accounts hold, a work
                // address of someone who left too: its accounts of a
                // Workspace domain say so in `hd`, which must agree.
                let google = oidc.issuer == GOOGLE_ISSUER;
                let hosted_ok = match (&person.hosted_domain, &domain) {
                    (Some(hd), Some(domain)) => hd == domain,
                    (None, _) => !google,
                    (Some(_), None) => false,
                };
                let allowed = hosted_ok && domain.is_some_and(|d| oidc.allowed_email_domains.contains(&d));
                if !allowed {
                    return Err(OutsideError::NotAllowed(format!(
                        "Only people with a verified email address at {} may sign in here.",
                        oidc.allowed_email_domains.join(", ")
                    )));
                }
            }
        }
        let groups = &self.config.allowed_groups;
        if !groups.is_empty() && !person.groups.iter().any(|g| groups.contains(g)) {
            return Err(OutsideError::NotAllowed(
                "Your account is not in a group that may sign in here.".into(),
            ));
        }
        Ok(())
    }

    /// The user a person from this provider is here: `provider:name`.
    pub(crate) fn user(&self, person: &OutsideIdentity) -> Arc<User> {
        let identity = Identity::from_parts(IdentityParts {
            username: &format!("{}:{}", self.config.id, person.username),
            // Only an address the provider verified goes upstream.
            email: person.email.as_deref().filter(|_| person.email_verified),
            name: person.name.as_deref(),
            groups: &person.groups,
            provider: Some(&self.config.id),
            subject: Some(&person.subject),
            preferred_username: Some(&person.username),
            provider_tokens: person.tokens.clone().map(Arc::new),
            password_change_required: false,
        });
        Arc::new(User::outside(identity))
    }

    /// Whether a verified email makes the person the `[[users]]` entry
    /// that has it.
    pub(crate) fn links_by_verified_email(&self) -> bool {
        self.config.link_by_verified_email
    }
}
