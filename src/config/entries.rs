//! The checks of `[[users]]` and `[[clients]]`: names, hashes, grants,
//! scopes, redirect URIs, origins; and the refusal of passwords published
//! in this repository off loopback.

use std::collections::HashSet;

use crate::error::Error;
use crate::password;
use toml::Spanned;

use super::check::Checker;
use super::client_rules::{
    backchannel_uri_problem, client_id_problem, cors_origin_problem, default_grants, grants_problem,
    id_token_alg, jwt_access_tokens, pairwise_sector, redirect_uri_problem, resource_problem, scope_problem,
};
use super::providers::ProviderConfig;
use super::raw::{RawClient, RawUser};
use super::sections::{ClientConfig, Grant, UserConfig};
use super::Config;
use super::SigningAlg;

/// Passwords published in this repository (the shipped `config.toml` and
/// the README). A user or client that still has one is refused on any
/// listen address other than loopback.
const PUBLISHED_PASSWORDS: &[&str] = &["authgate-demo", "demo-client-secret"];

impl Checker<'_> {
    pub(super) fn password_hash(&self, key: &str, raw: &Spanned<String>) -> Result<(), Error> {
        let hint = "run `authgate hash-password` and paste what it prints";
        password::check_hash(raw.get_ref())
            .map_err(|problem| self.error(&raw.span(), format!("{key} {problem}: {hint}")))
    }

    pub(super) fn users(
        &self,
        raw: Vec<Spanned<RawUser>>,
        providers: &[ProviderConfig],
    ) -> Result<Vec<UserConfig>, Error> {
        let mut seen = HashSet::new();
        let mut linked = HashSet::new();
        raw.into_iter()
            .map(|user| {
                let span = user.span();
                let user = user.into_inner();
                let name = user.username.get_ref();
                if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) || name.contains(':') {
                    return self.fail(
                        &user.username.span(),
                        "username must be 1 to 256 characters, with no control characters and no : (which names someone of a provider)",
                    );
                }
                for link in &user.links {
                    let text = link.get_ref();
                    let known = text
                        .split_once(':')
                        .is_some_and(|(provider, subject)| !subject.is_empty() && providers.iter().any(|p| p.id == provider));
                    if !known {
                        return self.fail(&link.span(), format!("link {text:?} must be \"PROVIDER:SUBJECT\" with a provider of [[providers]]"));
                    }
                    if !linked.insert(text.clone()) {
                        return self.fail(&link.span(), format!("{text:?} is linked to two users"));
                    }
                }
                if let Some(bad) = user.groups.iter().find(|g| g.is_empty() || g.contains(',') || g.chars().any(char::is_control)) {
                    return self.fail(&user.username.span(), format!("group {bad:?} cannot be a group name (no commas or control characters)"));
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
                    groups: user.groups,
                    links: user.links.into_iter().map(Spanned::into_inner).collect(),
                    span,
                })
            })
            .collect()
    }

    pub(super) fn clients(&self, raw: Vec<Spanned<RawClient>>) -> Result<Vec<ClientConfig>, Error> {
        let mut seen = HashSet::new();
        raw.into_iter()
            .map(|client| {
                let span = client.span();
                let client = client.into_inner();
                let id = client.client_id.get_ref();
                let at_id = client.client_id.span();
                if let Some(problem) = client_id_problem(id) {
                    return self.fail(&at_id, problem);
                }
                if !seen.insert(id.clone()) {
                    return self.fail(&at_id, format!("duplicate client {id:?}"));
                }
                if let Some(hash) = &client.client_secret_hash {
                    self.password_hash("client_secret_hash", hash)?;
                }
                let confidential = client.client_secret_hash.is_some();
                let (grants, at_grants) = match &client.grants {
                    Some(grants) => (grants.get_ref().clone(), grants.span()),
                    None => (default_grants(confidential), at_id.clone()),
                };
                if let Some(problem) = grants_problem(id, &grants, confidential, client.redirect_uris.len()) {
                    let at = if grants.contains(&Grant::ClientCredentials) && !confidential {
                        at_grants
                    } else {
                        at_id
                    };
                    return self.fail(&at, problem);
                }
                let checked = |values: &[Spanned<String>], problem: fn(&str) -> Option<String>| {
                    values
                        .iter()
                        .map(|value| match problem(value.get_ref()) {
                            Some(problem) => self.fail(&value.span(), problem),
                            None => Ok(value.get_ref().clone()),
                        })
                        .collect::<Result<Vec<_>, _>>()
                };
                let scopes = client
                    .scopes
                    .as_deref()
                    .map(|s| checked(s, scope_problem))
                    .transpose()?;
                let cors_origins = checked(&client.cors_origins, cors_origin_problem)?;
                let redirect_uris = checked(&client.redirect_uris, redirect_uri_problem)?;
                let post_logout_redirect_uris =
                    checked(&client.post_logout_redirect_uris, redirect_uri_problem)?;
                let backchannel_logout_uri = match &client.backchannel_logout_uri {
                    Some(uri) => match backchannel_uri_problem(uri.get_ref()) {
                        Some(problem) => return self.fail(&uri.span(), problem),
                        None => Some(uri.get_ref().clone()),
                    },
                    None => None,
                };
                let jwt_access_tokens = match &client.access_token_format {
                    Some(format) => jwt_access_tokens(format.get_ref())
                        .or_else(|problem| self.fail(&format.span(), problem))?,
                    None => false,
                };
                let resources = checked(&client.resources, resource_problem)?;
                let pairwise_sector = match &client.subject_type {
                    Some(kind) => pairwise_sector(kind.get_ref(), &redirect_uris)
                        .or_else(|problem| self.fail(&kind.span(), problem))?,
                    None => None,
                };
                let id_token_alg = match &client.id_token_signed_response_alg {
                    Some(name) => {
                        id_token_alg(name.get_ref()).or_else(|problem| self.fail(&name.span(), problem))?
                    }
                    None => SigningAlg::RS256,
                };
                Ok(ClientConfig {
                    client_id: client.client_id.into_inner(),
                    client_secret_hash: client.client_secret_hash.map(Spanned::into_inner),
                    redirect_uris,
                    grants,
                    scopes,
                    allow_plain_pkce: client.allow_plain_pkce,
                    cors_origins,
                    post_logout_redirect_uris,
                    backchannel_logout_uri,
                    id_token_alg,
                    jwt_access_tokens,
                    resources,
                    pairwise_sector,
                    span,
                })
            })
            .collect()
    }

    /// Refuses a user or client that still has a password published in
    /// this repository, unless the gateway only listens on loopback.
    pub(super) fn refuse_published_passwords(&self, config: &Config) -> Result<(), Error> {
        let listen = config.server.listen;
        if listen.ip().is_loopback() {
            return Ok(());
        }
        let published = |hash: &str| PUBLISHED_PASSWORDS.iter().any(|p| password::verify(hash, p));
        if let Some(user) = config.users.iter().find(|u| published(&u.password_hash)) {
            return self.fail(
                &user.span,
                format!(
                    "user {:?} has the demo password published in the authgate repository, and server.listen = {listen} is not loopback: \
                     run `authgate hash-password`, type a password of your own, and put its output in password_hash",
                    user.username
                ),
            );
        }
        if let Some(client) = config
            .clients
            .iter()
            .find(|c| c.client_secret_hash.as_deref().is_some_and(published))
        {
            return self.fail(
                &client.span,
                format!(
                    "client {:?} has the demo secret published in the authgate repository, and server.listen = {listen} is not loopback: \
                     run `authgate hash-password` with a secret of your own and put its output in client_secret_hash",
                    client.client_id
                ),
            );
        }
        Ok(())
    }
}
