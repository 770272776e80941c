//! CSRF protection for the sign-in form: a random cookie bound to the
//! browser, and a hidden form field holding its HMAC under a key only the
//! gateway knows. A cross-site form cannot read the cookie, and a cookie
//! planted from a sibling domain cannot come with a matching field.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The cookie that binds the form to the browser.
pub(crate) const CSRF_COOKIE: &str = "authgate_csrf";

/// The key the form field is an HMAC under.
pub(crate) struct CsrfKey([u8; 32]);

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey(..)")
    }
}

impl CsrfKey {
    pub(crate) fn generate() -> Self {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the operating system's random source failed");
        Self(key)
    }

    /// The key made from a secret every gateway of a deployment shares
    /// (`[auth] secret_file`).
    pub(crate) fn from_secret(secret: &str) -> Self {
        use sha2::Digest;
        let mut digest = Sha256::new();
        digest.update(b"authgate signing key\0");
        digest.update(secret.as_bytes());
        Self(digest.finalize().into())
    }

    fn mac(&self, cookie: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(cookie.as_bytes());
        mac
    }

    /// The form field for a browser holding `cookie`.
    pub(crate) fn field_for(&self, cookie: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(cookie).finalize().into_bytes())
    }

    /// A signature of `data` for `purpose` (a purpose of its own, so that
    /// it can never pass as a form field, nor one purpose's as another's).
    pub(crate) fn sign(&self, purpose: &str, data: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.purpose_mac(purpose, data).finalize().into_bytes())
    }

    /// Whether `signature` is [`CsrfKey::sign`]'s for `data` and `purpose`.
    pub(crate) fn verify_signed(&self, purpose: &str, data: &[u8], signature: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(signature)
            .is_ok_and(|sig| self.purpose_mac(purpose, data).verify_slice(&sig).is_ok())
    }

    fn purpose_mac(&self, purpose: &str, data: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        // A form field is the MAC of a 43-byte cookie value, which holds
        // no NUL: a purpose's input always does.
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(data);
        mac
    }

    /// Whether `field` was made for `cookie` (compared in constant time).
    pub(crate) fn verify(&self, cookie: Option<&str>, field: Option<&str>) -> bool {
        let (Some(cookie), Some(field)) = (cookie, field) else {
            return false;
        };
        let Ok(field) = URL_SAFE_NO_PAD.decode(field) else {
            return false;
        };
        self.mac(cookie).verify_slice(&field).is_ok()
    }
}

/// A fresh random cookie value.
pub(crate) fn new_cookie_value() -> String {
    crate::store::Token::generate().as_str().to_owned()
}

/// Whether a cookie value could be one the gateway made.
pub(crate) fn is_cookie_value(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// The `Set-Cookie` value for `value`: only sent to the sign-in endpoint.
pub(crate) fn set_cookie(value: &str, secure: bool) -> String {
    format!(
        "{CSRF_COOKIE}={value}; Path=/management; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A form page's CSRF field, for the browser's CSRF cookie, and that
/// cookie to set with the page when the browser had none.
pub(crate) struct FormCsrf {
    pub(crate) field: String,
    new_cookie: Option<http::HeaderValue>,
}

impl FormCsrf {
    /// Sets the new cookie, if there is one, on `response`.
    pub(crate) fn set_on<B>(&self, response: &mut http::Response<B>) {
        if let Some(value) = &self.new_cookie {
            response
                .headers_mut()
                .append(http::header::SET_COOKIE, value.clone());
        }
    }
}

impl CsrfKey {
    /// The CSRF field for a form page answering `headers`: for the
    /// browser's cookie, or for a new one.
    pub(crate) fn for_form(&self, headers: &http::HeaderMap, secure: bool) -> FormCsrf {
        let existing = crate::web::request::cookie(headers, CSRF_COOKIE).filter(|v| is_cookie_value(v));
        let value = existing.map_or_else(new_cookie_value, str::to_owned);
        FormCsrf {
            field: self.field_for(&value),
            new_cookie: existing
                .is_none()
                .then(|| http::HeaderValue::try_from(set_cookie(&value, secure)).ok())
                .flatten(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_verifies_only_with_its_cookie_and_key() {
        let key = CsrfKey::generate();
        let cookie = new_cookie_value();
        let field = key.field_for(&cookie);
        assert!(key.verify(Some(&cookie), Some(&field)));
        assert!(!key.verify(Some(&new_cookie_value()), Some(&field)));
        assert!(!CsrfKey::generate().verify(Some(&cookie), Some(&field)));
        assert!(!key.verify(None, Some(&field)));
        assert!(!key.verify(Some(&cookie), None));
        assert!(
            !key.verify(Some(&cookie), Some(&cookie)),
            "double-submitting the cookie is not enough"
        );
    }
}
