//! Recovery codes: ten single-use codes that stand in for a lost
//! authenticator, shown once and kept only as their SHA-256 (each has 59
//! random bits, so no salt or slow hash is needed).

use sha2::{Digest, Sha256};

/// How many a person is given.
pub(crate) const COUNT: usize = 10;
/// Letters and digits that cannot be read as one another (no 0/o, 1/l/i).
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
const LENGTH: usize = 12;

/// A set of new codes, written `xxxx-xxxx-xxxx`.
pub(crate) fn generate() -> Vec<String> {
    (0..COUNT)
        .map(|_| {
            let mut code = String::with_capacity(LENGTH + 2);
            let mut random = [0u8; LENGTH];
            getrandom::fill(&mut random).expect("the operating system's random source failed");
            for (i, byte) in random.iter().enumerate() {
                if i > 0 && i % 4 == 0 {
                    code.push('-');
                }
                // 256 is not a multiple of 31: rejection would be exact,
                // but the bias of a modulo here is under 1 in 8 per letter
                // and costs under a bit of the code's 59.
                code.push(ALPHABET[usize::from(*byte) % ALPHABET.len()] as char);
            }
            code
        })
        .collect()
}

/// The code as typed, without dashes, spaces or capitals, if it can be
/// one.
fn normalized(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (code.len() == LENGTH && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// What is kept of a code: the SHA-256 of its normalized form, in hex;
/// `None` if what was typed cannot be a recovery code.
pub(crate) fn hash(typed: &str) -> Option<String> {
    let code = normalized(typed)?;
    Some(
        Sha256::digest(code.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_hash_the_same_however_they_are_typed() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), COUNT);
        let code = &codes[0];
        assert_eq!(code.len(), 14);
        assert_eq!(hash(code), hash(&code.to_uppercase().replace('-', " ")));
        assert!(hash(code).is_some());
        assert_eq!(
            hash("123456"),
            None,
            "an authenticator's code is not a recovery code"
        );
        assert_eq!(hash("0000-0000-0000"), None);
    }
}
