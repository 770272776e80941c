//! `[auth] second_factor` and `second_factor_groups`, and a route's
//! `auth_level`: who must give a second factor, and where.

use toml::Spanned;

use crate::error::Error;

use super::check::Checker;

/// `[auth] second_factor`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum SecondFactorPolicy {
    /// No second factors: nobody is asked for one, nobody may enrol.
    #[default]
    Off,
    /// People may enrol; whoever has a factor gives it at every sign-in.
    Optional,
    /// Everyone gives one; who has none enrols at the next sign-in.
    Required,
}

/// Who must give a second factor, and with what.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SecondFactorConfig {
    pub(crate) policy: SecondFactorPolicy,
    /// Required for the members of these groups even when `Optional`.
    pub(crate) groups: Vec<String>,
    /// Security keys and passkeys (WebAuthn): the relying party, where
    /// `server.public_url` names a host (browsers refuse an address).
    pub(crate) webauthn: Option<WebauthnConfig>,
    /// A passkey alone signs in, from the sign-in page.
    pub(crate) passkeys: bool,
}

/// The WebAuthn relying party: its ID (a domain) and the origin pages
/// are served from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WebauthnConfig {
    pub(crate) rp_id: String,
    pub(crate) origin: url::Url,
}

impl SecondFactorConfig {
    /// Whether a second factor is on at all.
    pub(crate) fn is_on(&self) -> bool {
        self.policy != SecondFactorPolicy::Off
    }

    /// Whether someone in the groups `in_group` says must give one even
    /// without having enrolled (they enrol at the sign-in).
    pub(crate) fn required_for(&self, in_group: impl Fn(&str) -> bool) -> bool {
        match self.policy {
            SecondFactorPolicy::Off => false,
            SecondFactorPolicy::Required => true,
            SecondFactorPolicy::Optional => self.groups.iter().any(|g| in_group(g)),
        }
    }
}

/// A route's `auth_level`: how a session must have been signed in to pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum AuthLevel {
    /// Any session (one factor is enough).
    #[default]
    Password,
    /// A session signed in with two factors; one with one is asked for the
    /// second (a step-up).
    Mfa,
}

impl Checker<'_> {
    /// `auth.second_factor` and `auth.second_factor_groups`; on, it needs
    /// `[database]` (where factors are kept) and `auth.secret_file` (what
    /// their secrets are encrypted with), said by `has_database` and
    /// `has_secret`. Security keys are offered where `public_url` names a
    /// host (`webauthn_rp_id` that host or a domain above it); `passkeys`
    /// needs them.
    #[allow(clippy::too_many_arguments)] // the keys of one feature, each checked here
    pub(super) fn second_factor(
        &self,
        policy: &Option<Spanned<String>>,
        groups: Option<Spanned<Vec<String>>>,
        passkeys: &Option<Spanned<bool>>,
        rp_id: &Option<Spanned<String>>,
        public_url: Option<&url::Url>,
        has_database: bool,
        has_secret: bool,
    ) -> Result<SecondFactorConfig, Error> {
        let parsed = match policy.as_ref().map(|p| p.get_ref().as_str()) {
            None | Some("off") => SecondFactorPolicy::Off,
            Some("optional") => SecondFactorPolicy::Optional,
            Some("required") => SecondFactorPolicy::Required,
            Some(other) => {
                return self.fail(
                    &policy.as_ref().expect("matched Some").span(),
                    format!("auth.second_factor = {other:?}: use \"off\", \"optional\" or \"required\""),
                )
            }
        };
        if let Some(groups) = &groups {
            if parsed == SecondFactorPolicy::Off {
                return self.fail(
                    &groups.span(),
                    "auth.second_factor_groups needs auth.second_factor = \"optional\" (or \"required\", for everyone)",
                );
            }
            if let Some(bad) = groups
                .get_ref()
                .iter()
                .find(|g| g.is_empty() || g.chars().any(char::is_control))
            {
                return self.fail(
                    &groups.span(),
                    format!("auth.second_factor_groups: {bad:?} cannot be a group name"),
                );
            }
        }
        if let (Some(policy), true) = (policy, parsed != SecondFactorPolicy::Off) {
            if !has_database {
                return self.fail(
                    &policy.span(),
                    "auth.second_factor needs [database]: that is where people's second factors are kept",
                );
            }
            if !has_secret {
                return self.fail(
                    &policy.span(),
                    "auth.second_factor needs auth.secret_file: authenticator secrets are kept encrypted with it",
                );
            }
        }
        let host = public_url
            .and_then(|url| url.domain())
            .map(str::to_ascii_lowercase);
        let webauthn = match (rp_id, &host) {
            _ if parsed == SecondFactorPolicy::Off => None,
            (Some(rp_id), Some(host)) => {
                let id = rp_id.get_ref().to_ascii_lowercase();
                if *host != id && !host.ends_with(&format!(".{id}")) {
                    return self.fail(
                        &rp_id.span(),
                        format!("auth.webauthn_rp_id {id:?} must be the host of server.public_url ({host}) or a domain it is under"),
                    );
                }
                Some(id)
            }
            (Some(rp_id), None) => {
                return self.fail(
                    &rp_id.span(),
                    "auth.webauthn_rp_id needs server.public_url with a host name (browsers refuse WebAuthn on an IP address)",
                )
            }
            (None, host) => host.clone(),
        }
        .map(|rp_id| WebauthnConfig {
            rp_id,
            origin: public_url.expect("a host comes from public_url").clone(),
        });
        let passkeys = match passkeys {
            Some(on) if *on.get_ref() => {
                if parsed == SecondFactorPolicy::Off {
                    return self.fail(
                        &on.span(),
                        "auth.passkeys needs auth.second_factor = \"optional\" or \"required\": passkeys are kept with the second factors",
                    );
                }
                if webauthn.is_none() {
                    return self.fail(
                        &on.span(),
                        "auth.passkeys needs server.public_url with a host name (http://localhost:PORT will do): browsers refuse WebAuthn on an IP address",
                    );
                }
                true
            }
            _ => false,
        };
        Ok(SecondFactorConfig {
            policy: parsed,
            groups: groups.map(Spanned::into_inner).unwrap_or_default(),
            webauthn,
            passkeys,
        })
    }

    /// A route's `auth_level`; `"mfa"` needs second factors on.
    pub(super) fn auth_level(
        &self,
        raw: &Option<Spanned<String>>,
        second_factor: &SecondFactorConfig,
    ) -> Result<AuthLevel, Error> {
        let Some(raw) = raw else {
            return Ok(AuthLevel::Password);
        };
        match raw.get_ref().as_str() {
            "password" => Ok(AuthLevel::Password),
            "mfa" if second_factor.is_on() => Ok(AuthLevel::Mfa),
            "mfa" => self.fail(
                &raw.span(),
                "auth_level = \"mfa\" needs [auth] second_factor = \"optional\" or \"required\", so that people can have a second factor",
            ),
            other => self.fail(&raw.span(), format!("auth_level = {other:?}: use \"password\" or \"mfa\"")),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = "[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nbuiltin = \"whoami\"\n";

    fn refused(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, format!("{BASE}{text}")).unwrap();
        std::fs::write(
            dir.path().join("secret"),
            "a-secret-of-forty-characters-0123456789",
        )
        .unwrap();
        Config::load(&path).unwrap_err().to_string()
    }

    #[test]
    fn a_second_factor_that_could_not_be_kept_or_a_route_that_could_never_pass_is_refused_with_its_line() {
        let err = refused("[auth]\nsecond_factor = \"optional\"\n");
        assert!(err.contains("[database]") && err.contains("c.toml:6"), "{err}");
        let err = refused("[auth]\nsecond_factor = \"sometimes\"\n");
        assert!(err.contains("\"off\", \"optional\" or \"required\""), "{err}");
        let err = refused("[auth]\nsecond_factor_groups = [\"admins\"]\n");
        assert!(
            err.contains("second_factor = \\\"optional\\\"") || err.contains("second_factor = \"optional\""),
            "{err}"
        );
        let err =
            refused("[[routes]]\npath_prefix = \"/admin\"\nbuiltin = \"whoami\"\nauth_level = \"mfa\"\n");
        assert!(
            err.contains("auth_level = \"mfa\" needs") && err.contains("c.toml:8"),
            "{err}"
        );
        let err = refused("[database]\nurl = \"sqlite://x.db\"\n[auth]\nsecond_factor = \"required\"\n");
        assert!(err.contains("auth.secret_file"), "{err}");
        let secret = "[database]\nurl = \"sqlite://x.db\"\n[auth]\nsecret_file = \"secret\"\nsecond_factor = \"optional\"\n";
        let err = refused(&format!("{secret}passkeys = true\n"));
        assert!(err.contains("auth.passkeys needs server.public_url"), "{err}");
        let err = refused(&format!("{secret}webauthn_rp_id = \"example.com\"\n"));
        assert!(err.contains("needs server.public_url"), "{err}");
    }
}
