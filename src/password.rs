//! Password hashes: argon2id PHC strings, made, checked for form, and
//! verified. A leaf: the configuration checks hashes with it, and the
//! identity module verifies passwords with it.

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// An argon2id PHC string for `password`, with a random salt and the
/// production parameters (m=19456 KiB, t=2, p=1), for `password_hash` and
/// `client_secret_hash`.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the operating system's random source failed");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt length");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2id with default parameters cannot fail")
        .to_string()
}

/// Why `hash` cannot be used, as the end of a sentence that begins with
/// the key's name ("password_hash is not a PHC hash string (…)").
pub(crate) fn check_hash(hash: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(hash).map_err(|e| format!("is not a PHC hash string ({e})"))?;
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return Err(format!(
            "uses {}, but only argon2id is accepted",
            parsed.algorithm
        ));
    }
    if Params::try_from(&parsed).is_err() || parsed.hash.is_none() || parsed.salt.is_none() {
        return Err("has invalid argon2id parameters".to_owned());
    }
    Ok(())
}

/// Whether `password` matches the PHC string `hash`, with argon2's working
/// memory allocated for this one call. Blocking: call it off the async
/// threads.
pub(crate) fn verify(hash: &str, password: &str) -> bool {
    verify_in(hash, password.as_bytes(), &mut Vec::new())
}

/// Whether `password` matches the PHC string `hash`, computing argon2 in
/// `memory`: a thread that verifies many passwords keeps it and so
/// allocates argon2's working memory (19 MiB at the production
/// parameters) once, not once per verification. It only grows, to the
/// largest cost seen. Blocking.
pub(crate) fn verify_in(hash: &str, password: &[u8], memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version {
        Some(version) => match Version::try_from(version) {
            Ok(version) => version,
            Err(_) => return false,
        },
        None => Version::default(),
    };
    let (Ok(params), Some(salt), Some(expected)) = (Params::try_from(&parsed), parsed.salt, parsed.hash)
    else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut computed = Zeroizing::new(vec![0u8; expected.len()]);
    let argon2 = Argon2::new(algorithm, version, params);
    argon2
        .hash_password_into_with_memory(password, salt, &mut computed, &mut memory[..blocks])
        .is_ok()
        && bool::from(computed.as_slice().ct_eq(expected.as_bytes()))
}

/// Like [`verify_in`], in memory the calling thread keeps for its next
/// verification (the background pool's threads, which are few).
pub(crate) fn verify_keeping_memory(hash: &str, password: &[u8]) -> bool {
    thread_local! {
        static MEMORY: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    MEMORY.with(|memory| verify_in(hash, password, &mut memory.borrow_mut()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only_and_reuses_its_memory() {
        let hash = hash_password("correct horse");
        assert_eq!(check_hash(&hash), Ok(()));
        let mut memory = Vec::new();
        assert!(verify_in(&hash, b"correct horse", &mut memory));
        let kept = memory.as_ptr();
        assert_eq!(memory.len(), 19 * 1024, "one block per KiB of m");
        assert!(!verify_in(&hash, b"correct horsf", &mut memory));
        assert!(!verify_in(&hash, b"", &mut memory));
        assert_eq!(memory.as_ptr(), kept, "the same memory, not another allocation");
        assert!(verify(&hash, "correct horse") && !verify(&hash, "wrong"));
        // The argon2 crate's own verifier agrees.
        use argon2::password_hash::PasswordVerifier;
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
    }

    #[test]
    fn hashes_are_argon2id_with_production_parameters_and_random_salts() {
        let hash = hash_password("s3cret");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert_ne!(hash, hash_password("s3cret"), "salts are random");
        assert!(verify_keeping_memory(&hash, b"s3cret") && !verify_keeping_memory(&hash, b"S3cret"));
    }

    #[test]
    fn hashes_that_cannot_be_used_say_why() {
        assert!(check_hash("plain")
            .unwrap_err()
            .starts_with("is not a PHC hash string"));
        assert!(check_hash("$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA").is_err());
        assert!(!verify_in("plain", b"x", &mut Vec::new()));
        let argon2i =
            "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$Xg9ZCX8mQwa+p0O3uKdXPXmqQh6t1FkOkh2BwW3I3UE";
        assert_eq!(
            check_hash(argon2i).unwrap_err(),
            "uses argon2i, but only argon2id is accepted"
        );
    }
}
