//! Proof Key for Code Exchange (RFC 7636).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whether `value` has the shape of a code verifier or challenge: 43 to
/// 128 unreserved characters (RFC 7636 §4.1, §4.2).
pub(crate) fn is_well_formed(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `verifier` answers `challenge` under `method` (`S256` or
/// `plain`), compared in constant time.
pub(crate) fn verify(challenge: &str, method: &str, verifier: &str) -> bool {
    if !is_well_formed(verifier) {
        return false;
    }
    let computed = match method {
        "S256" => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
        "plain" => verifier.to_owned(),
        _ => return false,
    };
    computed.len() == challenge.len() && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7636_appendix_b_example_verifies() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(verify(challenge, "S256", verifier));
        assert!(!verify(challenge, "S256", &verifier.replace('d', "e")));
        assert!(!verify(challenge, "plain", verifier));
        assert!(verify(verifier, "plain", verifier));
        assert!(!verify(challenge, "S512", verifier));
        assert!(!verify("short", "plain", "short"));
    }
}
