//! `[signing]`: the keys authgate signs with (ID tokens, JWT access
//! tokens, the identity JWT for upstreams, logout tokens): where they are
//! kept, which algorithms, and when a new one takes over.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::error::Error;

use super::check::{relative_to, Checker};

/// An algorithm authgate signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
pub(crate) enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys: always offered
    /// (OpenID Connect requires it).
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl SigningAlg {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::ES256 => "ES256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }
}

/// `[signing]`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SigningConfig {
    /// Where the keys are (made at first start, files `0600`); `None`: in
    /// memory only, new at each start (without `[signing]`: fine for one
    /// gateway whose tokens may end at a restart).
    pub(crate) keys_dir: Option<PathBuf>,
    /// RS256 first, then the others asked for, each once.
    pub(crate) algorithms: Vec<SigningAlg>,
    /// A new key signs from this long after the last one was made.
    pub(crate) rotate_after_days: u64,
}

impl Default for SigningConfig {
    fn default() -> Self {
        Self {
            keys_dir: None,
            algorithms: vec![SigningAlg::RS256],
            rotate_after_days: 90,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSigning {
    pub(super) keys_dir: Option<Spanned<String>>,
    pub(super) algorithms: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) rotate_after_days: Option<Spanned<u64>>,
}

impl Checker<'_> {
    pub(super) fn signing(&self, raw: Option<RawSigning>) -> Result<SigningConfig, Error> {
        let Some(raw) = raw else {
            return Ok(SigningConfig::default());
        };
        let mut algorithms = vec![SigningAlg::RS256];
        for name in raw.algorithms.iter().flat_map(|a| a.get_ref()) {
            let alg = match name.get_ref().as_str() {
                "RS256" => SigningAlg::RS256,
                "ES256" => SigningAlg::ES256,
                "EdDSA" => SigningAlg::EdDSA,
                other => {
                    return self.fail(
                        &name.span(),
                        format!(
                        "signing.algorithms: {other:?} is not one authgate signs with: RS256, ES256 or EdDSA"
                    ),
                    )
                }
            };
            if !algorithms.contains(&alg) {
                algorithms.push(alg);
            }
        }
        Ok(SigningConfig {
            keys_dir: raw.keys_dir.map(|dir| relative_to(self.file, dir.get_ref())),
            algorithms,
            rotate_after_days: self.count("signing.rotate_after_days", raw.rotate_after_days, 90, 1, 3650)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn signing_algorithms_are_checked_and_rs256_is_always_offered() {
        let config = Config::from_toml_str(
            "[upstream]\nbuiltin = \"whoami\"\n[signing]\nkeys_dir = \"keys\"\nalgorithms = [\"EdDSA\", \"ES256\"]\nrotate_after_days = 30\n",
        )
        .unwrap();
        use crate::config::SigningAlg::*;
        assert_eq!(config.signing.algorithms, [RS256, EdDSA, ES256]);
        assert_eq!(config.signing.rotate_after_days, 30);
        assert!(config.signing.keys_dir.unwrap().ends_with("keys"));
        let err =
            Config::from_toml_str("[upstream]\nbuiltin = \"whoami\"\n[signing]\nalgorithms = [\"HS256\"]\n")
                .unwrap_err();
        assert_eq!(err.location().unwrap().line, 4);
        assert!(err.to_string().contains("RS256, ES256 or EdDSA"), "{err}");
    }
}
