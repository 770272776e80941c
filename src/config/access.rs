//! Who may pass, as the configuration says: `[[routes]]` and their
//! rules, `allowed_users` and `allowed_groups`, `auto_redirect`, and where
//! a sign-in may come from and return to (public paths, return hosts, the
//! cookie's domain).

use toml::Spanned;
use url::Url;

use crate::error::Error;
use crate::web::paths;

use super::check::{Checker, Known};
use super::forwarding::{RawCredentials, UpstreamCredentials};
use super::raw::RawRoute;
use super::second_factor::SecondFactorConfig;
use super::sections::{Allowed, Policy, Route, Upstream};

impl Checker<'_> {
    /// `allowed_users` and `allowed_groups`: `None` when neither is set.
    pub(super) fn allowed(
        &self,
        users: &Option<Spanned<Vec<String>>>,
        groups: &Option<Spanned<Vec<String>>>,
        known: &Known<'_>,
    ) -> Result<Option<Allowed>, Error> {
        if users.is_none() && groups.is_none() {
            return Ok(None);
        }
        if let Some(users) = users {
            let is_known = |name: &str| {
                known.users.iter().any(|u| u.username == name)
                    || name.split_once(':').is_some_and(|(provider, rest)| {
                        !rest.is_empty() && known.providers.iter().any(|p| p.id == provider)
                    })
            };
            if let Some(unknown) = users.get_ref().iter().find(|u| !is_known(u)) {
                return self.fail(
                    &users.span(),
                    format!("allowed_users names {unknown:?}, who is not in [[users]] (name someone of a provider as \"PROVIDER:NAME\")"),
                );
            }
        }
        if let Some(groups) = groups {
            if let Some(bad) = groups
                .get_ref()
                .iter()
                .find(|g| g.is_empty() || g.contains(',') || g.chars().any(char::is_control))
            {
                return self.fail(
                    &groups.span(),
                    format!(
                        "allowed_groups: {bad:?} cannot be a group name (no commas or control characters)"
                    ),
                );
            }
        }
        let list = |value: &Option<Spanned<Vec<String>>>| {
            value.as_ref().map(|v| v.get_ref().clone()).unwrap_or_default()
        };
        Ok(Some(Allowed {
            users: list(users),
            groups: list(groups),
        }))
    }

    /// `auth.auto_redirect`: only where the page would offer one button.
    pub(super) fn auto_redirect(
        &self,
        raw: &Option<Spanned<bool>>,
        known: &Known<'_>,
    ) -> Result<bool, Error> {
        let Some(raw) = raw.as_ref().filter(|r| *r.get_ref()) else {
            return Ok(false);
        };
        let buttons = known.providers.iter().filter(|p| p.is_redirect()).count();
        let form = !known.users.is_empty() || known.providers.iter().any(|p| !p.is_redirect());
        if buttons != 1 || form {
            return self.fail(
                &raw.span(),
                format!(
                    "auth.auto_redirect needs exactly one outside provider and no password sign-in; this config has {buttons} outside provider(s){}",
                    if form { " and a password form ([[users]] or an ldap provider)" } else { "" }
                ),
            );
        }
        Ok(true)
    }

    pub(super) fn routes(
        &self,
        raw: Vec<Spanned<RawRoute>>,
        known: &Known<'_>,
        default_upgrades: &[String],
        default_credentials: &UpstreamCredentials,
        second_factor: &SecondFactorConfig,
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
                        if paths::normalize(text).as_deref() != Some(text.as_str()) || text.contains(['?', '#', '%']) {
                            return self.fail(&prefix.span(), format!("path_prefix {text:?} must be a normalized path starting with /"));
                        }
                        text.clone()
                    }
                };
                let allowed = self.allowed(&route.allowed_users, &route.allowed_groups, known)?;
                let policy = match (route.policy.as_ref().map(|p| p.get_ref().as_str()), allowed) {
                    (Some("public"), None) => Policy::Public,
                    (Some("authenticated") | None, None) => Policy::Authenticated,
                    (Some("authenticated") | None, Some(allowed)) => Policy::Only(allowed),
                    (Some(other), _) => {
                        let at = route.policy.as_ref().map_or(span.clone(), Spanned::span);
                        return self.fail(
                            &at,
                            format!("policy {other:?}: use \"public\" or \"authenticated\" (with allowed_users or allowed_groups to name who)"),
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
                let credentials = self.credentials(
                    "routes",
                    RawCredentials {
                        send_session_token: route.send_session_token,
                        identity_jwt: route.identity_jwt.as_ref(),
                        identity_jwt_audience: route.identity_jwt_audience.as_ref(),
                    },
                    &upstream,
                    default_credentials,
                )?;
                let auth_level = self.auth_level(&route.auth_level, second_factor)?;
                Ok(Route {
                    auth_level,
                    host: route.host.map(|h| h.to_ascii_lowercase()),
                    path_prefix,
                    credentials,
                    upstream,
                    policy,
                    strip_prefix: route.strip_prefix,
                    upgrades,
                })
            })
            .collect()
    }

    /// `auth.return_hosts`: `host`, `host:port`, or `.domain` for every
    /// host under it.
    pub(super) fn return_hosts(&self, raw: Vec<Spanned<String>>) -> Result<Vec<String>, Error> {
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

    pub(super) fn cookie_domain(&self, raw: Option<Spanned<String>>) -> Result<Option<String>, Error> {
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

    pub(super) fn public_paths(&self, raw: Vec<Spanned<String>>) -> Result<Vec<String>, Error> {
        raw.into_iter()
            .map(|path| {
                let text = path.get_ref();
                if !text.starts_with('/') || text.contains(['?', '#', '%', '\\']) || text.chars().any(char::is_control) {
                    return self.fail(
                        &path.span(),
                        format!("public path {text:?} must start with / and hold no ?, #, %, \\ or control characters"),
                    );
                }
                let normal = paths::normalize(text);
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
