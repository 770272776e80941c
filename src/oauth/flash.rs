//! Why a sign-in failed, carried across the redirect back to the sign-in
//! page (Post/Redirect/Get): a browser's Back or reload after a failed
//! attempt shows the page again, never "Confirm Form Resubmission".
//!
//! A short-lived cookie, signed with the gateway's key, holds what the page
//! shows: which failure, the username typed (never the password), and for
//! a throttled attempt how long to wait. The page that shows it clears it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::header::HeaderMap;

use crate::auth::csrf::CsrfKey;
use crate::store::unix_now;
use crate::web::request::cookie;

/// The cookie's name.
const FLASH_COOKIE: &str = "authgate_flash";
/// What the signature is for.
const PURPOSE: &str = "sign-in flash";
/// How long a flash may wait for its page.
const LIFETIME_SECS: u64 = 60;

/// Why the last attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    WrongPassword,
    /// Too many failures: the wait, in seconds.
    Throttled(u64),
}

/// What the sign-in page shows after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Flash {
    pub(super) failure: Failure,
    pub(super) username: String,
}

impl Flash {
    /// The `Set-Cookie` value that carries it to the page.
    pub(super) fn set_cookie(&self, key: &CsrfKey, secure: bool) -> String {
        let (kind, wait) = match self.failure {
            Failure::WrongPassword => ("w", 0),
            Failure::Throttled(wait) => ("t", wait),
        };
        let payload = format!(
            "{kind}.{wait}.{}.{}",
            unix_now(),
            URL_SAFE_NO_PAD.encode(self.username.as_bytes())
        );
        let signature = key.sign(PURPOSE, payload.as_bytes());
        format!(
            "{FLASH_COOKIE}={payload}.{signature}; Path=/management/authorize; Max-Age={LIFETIME_SECS}; HttpOnly; SameSite=Lax{}",
            if secure { "; Secure" } else { "" }
        )
    }

    /// The flash a request carries, if it is one the gateway signed and
    /// it is fresh.
    pub(super) fn read(key: &CsrfKey, headers: &HeaderMap) -> Option<Self> {
        let value = cookie(headers, FLASH_COOKIE)?;
        let (payload, signature) = value.rsplit_once('.')?;
        if !key.verify_signed(PURPOSE, payload.as_bytes(), signature) {
            return None;
        }
        let mut parts = payload.splitn(4, '.');
        let (kind, wait, issued, username) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let issued: u64 = issued.parse().ok()?;
        if unix_now().saturating_sub(issued) > LIFETIME_SECS {
            return None;
        }
        let failure = match kind {
            "w" => Failure::WrongPassword,
            "t" => Failure::Throttled(wait.parse().ok()?),
            _ => return None,
        };
        let username = String::from_utf8(URL_SAFE_NO_PAD.decode(username).ok()?).ok()?;
        Some(Self { failure, username })
    }

    /// Whether a request carries a flash cookie at all (to clear it).
    pub(super) fn is_present(headers: &HeaderMap) -> bool {
        cookie(headers, FLASH_COOKIE).is_some()
    }
}

/// The `Set-Cookie` value that clears the flash once shown.
pub(super) fn clear_cookie(secure: bool) -> String {
    format!(
        "{FLASH_COOKIE}=; Path=/management/authorize; Max-Age=0; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    fn carried(set_cookie: &str) -> HeaderMap {
        let pair = set_cookie.split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, pair.parse().unwrap());
        headers
    }

    #[test]
    fn a_flash_is_read_back_only_with_its_signature() {
        let key = CsrfKey::generate();
        for failure in [Failure::WrongPassword, Failure::Throttled(120)] {
            let flash = Flash {
                failure,
                username: "ålice; \"x\"".to_owned(),
            };
            let set = flash.set_cookie(&key, true);
            assert!(set.contains("; Secure") && set.contains("HttpOnly"), "{set}");
            assert_eq!(Flash::read(&key, &carried(&set)), Some(flash.clone()));
            assert_eq!(
                Flash::read(&CsrfKey::generate(), &carried(&set)),
                None,
                "another key"
            );
            let tampered = set
                .replacen(".w.", ".t.", 1)
                .replacen("=w.", "=t.", 1)
                .replacen("=t.", "=w.", 1);
            if tampered != set {
                assert_eq!(Flash::read(&key, &carried(&tampered)), None, "{tampered}");
            }
        }
        let form_field = key.field_for(&crate::auth::csrf::new_cookie_value());
        assert!(
            !key.verify_signed(PURPOSE, b"", &form_field),
            "a form field is no flash"
        );
    }
}
