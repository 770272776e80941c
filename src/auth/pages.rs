//! The HTML pages the gateway serves: a minijinja environment holding the
//! built-in templates, each overridable from `[pages] templates_dir`.

use std::path::Path;

use minijinja::Environment;
use serde::Serialize;

use crate::error::{Error, ErrorKind};

const SIGN_IN: &str = "sign_in.html";
const ERROR: &str = "error.html";
const ACCOUNT: &str = "account.html";
const ADMIN: &str = "admin.html";
const SECOND_FACTOR: &str = "second_factor.html";
const BUILT_IN: [(&str, &str); 5] = [
    (SIGN_IN, include_str!("../../templates/sign_in.html")),
    (ERROR, include_str!("../../templates/error.html")),
    (ACCOUNT, include_str!("../../templates/account.html")),
    (ADMIN, include_str!("../../templates/admin.html")),
    (SECOND_FACTOR, include_str!("../../templates/second_factor.html")),
];

/// What the sign-in page shows and carries in its hidden inputs.
#[derive(Debug, Default, Serialize)]
pub(crate) struct SignInPage<'a> {
    pub(crate) title: &'a str,
    pub(crate) logo_url: Option<&'a str>,
    pub(crate) accent_color: &'a str,
    pub(crate) error: &'a str,
    pub(crate) response_type: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) redirect_uri: &'a str,
    pub(crate) scope: &'a str,
    pub(crate) state: &'a str,
    pub(crate) rd: &'a str,
    pub(crate) code_challenge: &'a str,
    pub(crate) code_challenge_method: &'a str,
    /// OpenID Connect's `nonce`, carried to the ID token.
    pub(crate) nonce: &'a str,
    /// OpenID Connect's `acr_values`, carried to the second factor.
    pub(crate) acr_values: &'a str,
    pub(crate) csrf: &'a str,
    pub(crate) username: &'a str,
    /// One button per outside provider, in config order.
    pub(crate) providers: Vec<ProviderButton>,
    /// No one signs in with a password here: the form is left out.
    pub(crate) hide_password_form: bool,
    /// A passkey alone signs in (`passkeys = true`): its button, the
    /// sign-in request it answers (as a query), and the script.
    pub(crate) passkey: bool,
    pub(crate) request: String,
    pub(crate) script: &'a str,
}

/// A button that starts a sign-in through an outside provider.
#[derive(Debug, Serialize)]
pub(crate) struct ProviderButton {
    pub(crate) href: String,
    pub(crate) label: String,
}

/// What the account page shows.
#[derive(Debug, Default, Serialize)]
pub(crate) struct AccountPage<'a> {
    pub(crate) title: &'a str,
    pub(crate) logo_url: Option<&'a str>,
    pub(crate) accent_color: &'a str,
    pub(crate) username: &'a str,
    pub(crate) name: Option<&'a str>,
    pub(crate) email: Option<&'a str>,
    pub(crate) provider: Option<&'a str>,
    pub(crate) groups: Vec<&'a str>,
    pub(crate) sessions: Vec<AccountSession>,
    pub(crate) can_change_password: bool,
    /// The person's second factor, where second factors are on.
    pub(crate) second_factor: Option<AccountFactor>,
    /// Their security keys and passkeys, where they are offered; and the
    /// script that adds one.
    pub(crate) keys: Option<Vec<AccountKey>>,
    /// A passkey alone signs in here.
    pub(crate) passkeys: bool,
    pub(crate) script: &'a str,
    /// An invitation link's secret: the page is then the one where a new
    /// user chooses their password, and nothing else.
    pub(crate) invitation: Option<&'a str>,
    pub(crate) csrf: &'a str,
    pub(crate) notice: &'a str,
    pub(crate) error: &'a str,
}

/// What the account page says of the person's second factor.
#[derive(Debug, Default, Serialize)]
pub(crate) struct AccountFactor {
    /// An authenticator app is set up: when, and when last used.
    pub(crate) enrolled: bool,
    pub(crate) added: String,
    pub(crate) last_used: String,
    pub(crate) recovery_codes_left: i64,
}

/// One of the person's security keys or passkeys.
#[derive(Debug, Serialize)]
pub(crate) struct AccountKey {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) added: String,
    pub(crate) last_used: String,
}

/// One of the account's sessions.
#[derive(Debug, Serialize)]
pub(crate) struct AccountSession {
    pub(crate) started: String,
    pub(crate) last_seen: String,
    pub(crate) ends: String,
    /// The address and user agent it was signed in with.
    pub(crate) address: Option<String>,
    pub(crate) user_agent: Option<String>,
    pub(crate) client: Option<String>,
    pub(crate) current: bool,
}

/// What the second-factor page shows: a code to enter (`verify`), an
/// authenticator to set up (`enrol`), recovery codes to save (`codes`), or
/// that the person has none (`missing`).
#[derive(Debug, Default, Serialize)]
pub(crate) struct SecondFactorPage<'a> {
    pub(crate) title: &'a str,
    pub(crate) logo_url: Option<&'a str>,
    pub(crate) accent_color: &'a str,
    pub(crate) mode: &'a str,
    pub(crate) username: &'a str,
    /// Where the form posts.
    pub(crate) action: &'a str,
    pub(crate) csrf: &'a str,
    /// Where a step-up goes back to.
    pub(crate) rd: &'a str,
    /// Enrolment is required, not chosen.
    pub(crate) required: bool,
    pub(crate) factor_id: &'a str,
    pub(crate) secret_text: &'a str,
    pub(crate) uri: &'a str,
    /// The QR code, as SVG the server drew.
    pub(crate) qr_svg: &'a str,
    pub(crate) codes: &'a [String],
    /// Where "done" goes after the recovery codes, outside a sign-in.
    pub(crate) done_href: &'a str,
    /// The person has a security key: its button, and the script.
    pub(crate) keys: bool,
    /// The person has an authenticator app: the code field.
    pub(crate) code_field: bool,
    pub(crate) script: &'a str,
    pub(crate) error: &'a str,
}

/// What an error page says.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorPage<'a> {
    pub(crate) title: &'a str,
    pub(crate) message: &'a str,
    pub(crate) error: &'a str,
}

/// The templates, parsed once at start.
#[derive(Debug)]
pub(crate) struct Pages {
    env: Environment<'static>,
}

impl Pages {
    /// The built-in templates, with any found in `dir` taking their place.
    pub(crate) fn load(dir: Option<&Path>) -> Result<Self, Error> {
        let mut env = Environment::new();
        for (name, built_in) in BUILT_IN {
            let source = match dir.map(|d| d.join(name)) {
                Some(path) if path.exists() => std::fs::read_to_string(&path)
                    .map_err(|e| Error::io(format_args!("cannot read template {}", path.display()), e))?,
                _ => built_in.to_owned(),
            };
            env.add_template_owned(name, source).map_err(|e| {
                let at = dir.map_or_else(
                    || format!("built-in {name}"),
                    |d| d.join(name).display().to_string(),
                );
                Error::new(
                    ErrorKind::Template,
                    format!("{at}:{}: {e}", e.line().unwrap_or(0)),
                )
            })?;
        }
        Ok(Self { env })
    }

    pub(crate) fn sign_in(&self, page: &SignInPage<'_>) -> String {
        self.render(SIGN_IN, page)
    }

    pub(crate) fn account(&self, page: &AccountPage<'_>) -> String {
        self.render(ACCOUNT, page)
    }

    /// A page of the admin console, from its context.
    pub(crate) fn admin(&self, context: &serde_json::Value) -> String {
        self.render(ADMIN, context)
    }

    pub(crate) fn second_factor(&self, page: &SecondFactorPage<'_>) -> String {
        self.render(SECOND_FACTOR, page)
    }

    pub(crate) fn error(&self, page: &ErrorPage<'_>) -> String {
        self.render(ERROR, page)
    }

    /// Renders `name`; a template that fails at render time (only a
    /// user-supplied one can) degrades to a plain, escaped page.
    fn render(&self, name: &str, context: &impl Serialize) -> String {
        self.env
            .get_template(name)
            .and_then(|t| t.render(context))
            .unwrap_or_else(|e| {
                tracing::error!(template = name, error = %e, "template failed to render");
                "<!DOCTYPE html><title>Error</title><p>This page could not be shown. The gateway's log says why.</p>".to_owned()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_page_escapes_everything_it_reflects() {
        let pages = Pages::load(None).unwrap();
        let html = pages.sign_in(&SignInPage {
            title: "Sign in",
            state: "\"><script>alert(1)</script>",
            client_id: "<img src=x onerror=alert(1)>",
            username: "a\"b",
            ..Default::default()
        });
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("value=\"a&quot;b\""), "{html}");
        let html = pages.sign_in(&SignInPage {
            providers: vec![ProviderButton {
                href: "/management/authorize?provider=corp&rd=%2F\"x".into(),
                label: "<b>Corp</b>".into(),
            }],
            hide_password_form: true,
            error: "it failed",
            ..Default::default()
        });
        assert!(
            html.contains("Sign in with &lt;b&gt;Corp&lt;&#x2f;b&gt;")
                || html.contains("Sign in with &lt;b&gt;Corp&lt;/b&gt;"),
            "{html}"
        );
        assert!(
            html.contains("href=\"/management/authorize?provider=corp&amp;rd=%2F&quot;x\"")
                || html.contains("href=\"&#x2f;management"),
            "{html}"
        );
        assert!(
            !html.contains("current-password"),
            "no form without passwords: {html}"
        );
        assert!(
            html.contains("it failed"),
            "the error shows without the form: {html}"
        );
    }

    #[test]
    fn templates_dir_overrides_one_template_and_keeps_the_other() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("error.html"), "custom {{ title }}").unwrap();
        let pages = Pages::load(Some(dir.path())).unwrap();
        let page = ErrorPage {
            title: "<t>",
            message: "m",
            error: "e",
        };
        assert_eq!(pages.error(&page), "custom &lt;t&gt;");
        assert!(pages
            .sign_in(&SignInPage::default())
            .contains("autocomplete=\"current-password\""));
    }

    #[test]
    fn a_broken_template_is_refused_at_load_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sign_in.html"), "line one\n{% if %}").unwrap();
        let err = Pages::load(Some(dir.path())).unwrap_err();
        assert!(err.to_string().contains("sign_in.html:2"), "{err}");
    }
}
