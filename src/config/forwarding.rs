//! What an upstream is sent besides the request (`[upstream]` and each
//! `[[routes]]`): the session's token, and the signed identity JWT.

use toml::Spanned;

use crate::error::Error;

use super::check::Checker;
use super::sections::Upstream;

/// The credentials an upstream is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UpstreamCredentials {
    /// `Authorization: Bearer <the session's token>` (App Services'
    /// behaviour, the default). Without it an upstream never sees a
    /// credential that works at the gateway: the client's `Authorization`
    /// and session cookie are removed too.
    pub(crate) send_session_token: bool,
    /// The audience of the `X-Authgate-Jwt` it is sent; `None`: none.
    pub(crate) identity_jwt: Option<String>,
}

impl Default for UpstreamCredentials {
    fn default() -> Self {
        Self {
            send_session_token: true,
            identity_jwt: None,
        }
    }
}

/// The three keys, as written.
#[derive(Debug, Default)]
pub(super) struct RawCredentials<'a> {
    pub(super) send_session_token: Option<bool>,
    pub(super) identity_jwt: Option<&'a Spanned<bool>>,
    pub(super) identity_jwt_audience: Option<&'a Spanned<String>>,
}

/// The audience an upstream's identity JWT is for by default: its origin.
fn default_audience(upstream: &Upstream) -> String {
    match upstream {
        Upstream::Url(url) => url.origin().ascii_serialization(),
        Upstream::Whoami => "authgate:whoami".to_owned(),
    }
}

impl Checker<'_> {
    /// The credentials of `[upstream]` (inheriting the defaults) or of a
    /// route (inheriting `[upstream]`'s): each key given replaces the
    /// inherited one.
    pub(super) fn credentials(
        &self,
        section: &str,
        raw: RawCredentials<'_>,
        upstream: &Upstream,
        inherited: &UpstreamCredentials,
    ) -> Result<UpstreamCredentials, Error> {
        let wanted = match raw.identity_jwt {
            Some(on) => *on.get_ref(),
            None => inherited.identity_jwt.is_some(),
        };
        if let Some(audience) = raw.identity_jwt_audience {
            if !wanted {
                return self.fail(
                    &audience.span(),
                    format!("{section}.identity_jwt_audience is set but identity_jwt is not true: set identity_jwt = true, or remove it"),
                );
            }
            let text = audience.get_ref();
            if text.is_empty()
                || text.len() > 1024
                || text.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                return self.fail(
                    &audience.span(),
                    format!("{section}.identity_jwt_audience must be 1 to 1024 visible characters (an origin or URI)"),
                );
            }
        }
        // The audience named here, else this upstream's own origin (a
        // route's upstream is not [upstream]'s, even where it inherits
        // identity_jwt from there).
        let identity_jwt = wanted.then(|| match raw.identity_jwt_audience {
            Some(audience) => audience.get_ref().clone(),
            None => default_audience(upstream),
        });
        Ok(UpstreamCredentials {
            send_session_token: raw.send_session_token.unwrap_or(inherited.send_session_token),
            identity_jwt,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn a_route_inherits_what_upstream_sends_and_is_its_own_audience() {
        let config = Config::from_toml_str(
            "[upstream]\nurl = \"http://127.0.0.1:9000\"\nsend_session_token = false\nidentity_jwt = true\nidentity_jwt_audience = \"https://main.example\"\n\
             [[routes]]\npath_prefix = \"/reports\"\nurl = \"http://10.0.0.5:8080\"\n\
             [[routes]]\npath_prefix = \"/legacy\"\nurl = \"http://127.0.0.1:9100\"\nsend_session_token = true\nidentity_jwt = false\n",
        )
        .unwrap();
        let main = &config.upstream.credentials;
        assert!(!main.send_session_token);
        assert_eq!(main.identity_jwt.as_deref(), Some("https://main.example"));
        let reports = &config.routes[0].credentials;
        assert!(!reports.send_session_token, "inherited");
        assert_eq!(
            reports.identity_jwt.as_deref(),
            Some("http://10.0.0.5:8080"),
            "its own origin"
        );
        let legacy = &config.routes[1].credentials;
        assert!(legacy.send_session_token);
        assert_eq!(legacy.identity_jwt, None);
        // Without the keys: today's behaviour.
        let plain = Config::from_toml_str("[upstream]\nbuiltin = \"whoami\"\n").unwrap();
        assert!(plain.upstream.credentials.send_session_token);
        assert_eq!(plain.upstream.credentials.identity_jwt, None);
    }

    #[test]
    fn an_audience_without_identity_jwt_is_refused_with_its_line() {
        let err = Config::from_toml_str(
            "[upstream]\nbuiltin = \"whoami\"\nidentity_jwt_audience = \"https://app.example\"\n",
        )
        .unwrap_err();
        assert_eq!(err.location().unwrap().line, 3);
        assert!(err.to_string().contains("identity_jwt = true"), "{err}");
    }
}
