//! Authenticator secrets at rest: sealed with AES-256-GCM under a key
//! made of `auth.secret_file`, bound to the person they are for, so a
//! copy of the database gives no codes, and a secret moved to another
//! person's row does not open.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::Engine;
use hmac::Mac;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The sealing key of `secret` (the contents of `auth.secret_file`).
fn key(secret: &str) -> LessSafeKey {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(b"authgate second factor secrets v1");
    let bytes = mac.finalize().into_bytes();
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &bytes).expect("a 32-byte key"))
}

/// `plain` sealed for `username`: base64url of nonce, ciphertext and tag.
pub(crate) fn seal(secret: &str, username: &str, plain: &[u8]) -> String {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).expect("the operating system's random source failed");
    let mut sealed = plain.to_vec();
    key(secret)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(username.as_bytes()),
            &mut sealed,
        )
        .expect("AES-GCM seals any length kept here");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    B64.encode(out)
}

/// What [`seal`] sealed for `username`, or `None` if it was sealed for
/// someone else, with another key, or altered.
pub(crate) fn open(secret: &str, username: &str, sealed: &str) -> Option<Vec<u8>> {
    let bytes = B64.decode(sealed).ok()?;
    if bytes.len() < NONCE_LEN {
        return None;
    }
    let (nonce, rest) = bytes.split_at(NONCE_LEN);
    let mut rest = rest.to_vec();
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let plain = key(secret)
        .open_in_place(nonce, Aad::from(username.as_bytes()), &mut rest)
        .ok()?;
    Some(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_person_and_key() {
        let key = "0123456789abcdef0123456789abcdef";
        let sealed = seal(key, "alice", b"the secret");
        assert_eq!(open(key, "alice", &sealed).as_deref(), Some(&b"the secret"[..]));
        assert_eq!(open(key, "bob", &sealed), None);
        assert_eq!(open("another key, as long as the first", "alice", &sealed), None);
        let mut altered = B64.decode(&sealed).unwrap();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(open(key, "alice", &B64.encode(altered)), None);
        assert_ne!(
            seal(key, "alice", b"the secret"),
            sealed,
            "a fresh nonce each time"
        );
    }
}
