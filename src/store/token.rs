//! Tokens and the keys they are stored under.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A bearer token: 256 random bits, URL-safe base64 without padding.
///
/// Its `Debug` output never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A fresh token from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A token that is a signed JWT (an RFC 9068 access token): kept,
    /// looked up and revoked by its hash like any other.
    pub(crate) fn signed(jwt: String) -> Self {
        Self(jwt)
    }

    /// The token as the client sends it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key the store keeps this token's session under.
    pub fn key(&self) -> TokenKey {
        TokenKey::of(&self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

/// The SHA-256 of a token: what a store keys on.
///
/// It hashes as its first eight bytes: a digest needs no second hash.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenKey([u8; 32]);

impl Hash for TokenKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(word));
    }
}

/// The hashing of maps keyed on [`TokenKey`]: the key's own first eight
/// bytes, which are already uniform, where the default SipHash cost about
/// 170 instructions a lookup over them again (callgrind, on every
/// authenticated request).
///
/// Flooding such a map takes inserting keys that collide, and its keys
/// are digests of tokens the gateway drew itself: a client chooses only
/// what it looks up, and a lookup adds nothing.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DigestHash;

impl BuildHasher for DigestHash {
    type Hasher = DigestHasher;

    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(0)
    }
}

/// See [`DigestHash`]. Any other input is folded in eight bytes at a
/// time, so it still hashes, only not as well as a digest.
pub(crate) struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.rotate_left(29) ^ n;
    }
}

impl TokenKey {
    /// The key for a token as a client presented it.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest in lower-case hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A digest from 64 hex digits.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(bytes))
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TokenKey({:02x}{:02x}{:02x}{:02x}..)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bits_url_safe_and_distinct() {
        let a = Token::generate();
        let b = Token::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 43);
        let raw = URL_SAFE_NO_PAD.decode(a.as_str()).unwrap();
        assert_eq!(raw.len(), 32);
        assert!(a
            .as_str()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn key_is_the_sha256_of_the_token() {
        let key = TokenKey::of("abc");
        assert_eq!(
            key.as_bytes()[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256(\"abc\") starts with ba7816bf"
        );
        assert!(!format!("{:?}", Token::generate()).contains(Token::generate().as_str()));
    }

    #[test]
    fn a_key_hashes_as_its_first_eight_bytes() {
        let key = TokenKey::of("abc");
        assert_eq!(DigestHash.hash_one(key), 0xeacf_018f_bf16_78ba);
        let other = TokenKey::of("abd");
        assert_ne!(DigestHash.hash_one(key), DigestHash.hash_one(other));
        // Anything else is folded in, not dropped.
        assert_ne!(
            DigestHash.hash_one("a longer string"),
            DigestHash.hash_one("a longer strinG")
        );
    }
}
