//! The keys authgate signs with: ID tokens, JWT access tokens, the
//! identity JWT sent to upstreams, logout tokens. One key per algorithm
//! signs at a time; every key whose tokens may still be alive is in the
//! JWKS (`/.well-known/jwks.json`), so a relying party that fetches it
//! again after a rotation verifies old and new tokens alike.
//!
//! With `[signing] keys_dir`, keys are PEM files there (`0600`), made at
//! first start and read again every minute, so gateways sharing the folder
//! share the keys; a new one is made `rotate_after_days` after the newest
//! (or by `authgate keys rotate`), published at once and signing five
//! minutes later, and the replaced one stays published for another such
//! period. Without, they are made in memory at first use and end with the
//! process.

mod keys;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;

pub(crate) use crate::config::{SigningAlg, SigningConfig};

use self::keys::{KeyFile, Loaded};

/// How long a new key is in the JWKS before it signs: the JWKS's cache
/// time, so a relying party that fetched the set just before a rotation
/// has the new key by the time it meets a token signed with it.
pub(crate) const PUBLISHED_BEFORE_SIGNING_SECS: u64 = 300;

/// One signing key and what is published of it.
#[derive(Debug)]
pub(crate) struct SigningKey {
    pub(crate) alg: SigningAlg,
    /// The key's id: its RFC 7638 thumbprint.
    pub(crate) kid: String,
    /// When it was made (seconds since the epoch).
    pub(crate) created: u64,
    encoding: EncodingKey,
    /// The public key as a JWK, with `kid`, `alg` and `use`.
    jwk: serde_json::Value,
}

/// Why a token could not be signed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SigningError {
    #[error("no signing key for {0}")]
    NoKey(&'static str),
    #[error("signing failed: {0}")]
    Failed(String),
    #[error("the signing keys cannot be read or made: {0}")]
    Keys(String),
}

/// The keys in use, as last read.
#[derive(Debug, Default)]
struct Ring {
    /// The newest key of each algorithm asked for.
    signing: Vec<Arc<SigningKey>>,
    /// Every key still published, newest first.
    published: Vec<Arc<SigningKey>>,
}

/// The gateway's signing keys (shared across reloads).
#[derive(Debug)]
pub(crate) struct KeyRing {
    dir: Option<PathBuf>,
    algorithms: Vec<SigningAlg>,
    rotate_after: Duration,
    ring: ArcSwap<Ring>,
    /// In memory only: made at first use.
    made: std::sync::OnceLock<()>,
}

impl KeyRing {
    /// The ring `config` asks for. With a folder, its keys are read (and
    /// the missing made) now, so a folder that cannot be used is refused
    /// at start; in memory, keys are made at first use.
    pub(crate) fn open(config: &SigningConfig) -> Result<Self, SigningError> {
        let ring = Self {
            dir: config.keys_dir.clone(),
            algorithms: config.algorithms.clone(),
            rotate_after: Duration::from_secs(config.rotate_after_days * 86_400),
            ring: ArcSwap::from_pointee(Ring::default()),
            made: std::sync::OnceLock::new(),
        };
        if ring.dir.is_some() {
            ring.refresh()?;
        }
        Ok(ring)
    }

    /// Reads the folder again, makes a key for an algorithm that has none
    /// or whose newest is due for rotation, and forgets keys past their
    /// publication; answers whether a key was made.
    pub(crate) fn refresh(&self) -> Result<bool, SigningError> {
        let Some(dir) = &self.dir else {
            return Ok(false);
        };
        let Loaded { keys, made } = keys::refresh(dir, &self.algorithms, self.rotate_after)?;
        self.install(keys);
        Ok(made)
    }

    /// Makes a new key of every algorithm now (`authgate keys rotate`).
    pub(crate) fn rotate(&self) -> Result<(), SigningError> {
        let Some(dir) = &self.dir else {
            return Err(SigningError::Keys(
                "keys kept in memory cannot be rotated: set [signing] keys_dir".into(),
            ));
        };
        for alg in &self.algorithms {
            keys::make_file(dir, *alg)?;
        }
        self.refresh().map(drop)
    }

    fn install(&self, files: Vec<KeyFile>) {
        let mut published: Vec<Arc<SigningKey>> = files.into_iter().map(|f| Arc::new(f.key)).collect();
        published.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.kid.cmp(&b.kid)));
        let now = keys::now();
        // The newest key published long enough for every relying party to
        // have fetched it; where none is yet, the one published longest
        // (the first key of a new folder signs at once).
        let signing = self
            .algorithms
            .iter()
            .filter_map(|alg| {
                let mut of_alg = published.iter().filter(|k| k.alg == *alg);
                let oldest = of_alg.clone().next_back();
                of_alg
                    .find(|k| k.created.saturating_add(PUBLISHED_BEFORE_SIGNING_SECS) <= now)
                    .or(oldest)
                    .cloned()
            })
            .collect();
        self.ring.store(Arc::new(Ring { signing, published }));
    }

    /// In memory: the keys, made at first use.
    fn ensure(&self) -> Result<(), SigningError> {
        if self.dir.is_some() || self.made.get().is_some() {
            return Ok(());
        }
        let mut made = Vec::new();
        for alg in &self.algorithms {
            made.push(keys::make(*alg, keys::now())?);
        }
        // Two first uses at once may both make keys: the first stored wins.
        if self.made.set(()).is_ok() {
            self.install(made);
        }
        Ok(())
    }

    /// The key that signs with `alg` now.
    pub(crate) fn current(&self, alg: SigningAlg) -> Result<Arc<SigningKey>, SigningError> {
        self.ensure()?;
        self.ring
            .load()
            .signing
            .iter()
            .find(|k| k.alg == alg)
            .cloned()
            .ok_or(SigningError::NoKey(alg.as_str()))
    }

    /// The algorithms offered, RS256 first.
    pub(crate) fn algorithms(&self) -> &[SigningAlg] {
        &self.algorithms
    }

    /// `claims` as a compact JWS signed with the current `alg` key, with
    /// `typ` in the header (`JWT`, `at+jwt`, `logout+jwt`).
    pub(crate) fn sign<T: Serialize>(
        &self,
        alg: SigningAlg,
        typ: &str,
        claims: &T,
    ) -> Result<String, SigningError> {
        let key = self.current(alg)?;
        let mut header = Header::new(keys::jwt_alg(alg));
        header.kid = Some(key.kid.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(|e| SigningError::Failed(e.to_string()))
    }

    /// The claims of a token one of the published keys signed (its
    /// expiry not checked: an `id_token_hint` may have expired), or why
    /// not.
    pub(crate) fn verify_own(&self, token: &str) -> Result<serde_json::Value, SigningError> {
        let refused = |why: &str| SigningError::Failed(why.to_owned());
        let header = jsonwebtoken::decode_header(token).map_err(|_| refused("not a JWT"))?;
        let kid = header.kid.ok_or_else(|| refused("it names no key"))?;
        let ring = self.ring.load();
        let key = ring
            .published
            .iter()
            .find(|k| k.kid == kid && keys::jwt_alg(k.alg) == header.alg)
            .ok_or_else(|| refused("no key of this gateway signed it"))?;
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(key.jwk.clone()).map_err(|e| refused(&e.to_string()))?;
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|e| refused(&e.to_string()))?;
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<serde_json::Value>(token, &decoding, &validation)
            .map(|data| data.claims)
            .map_err(|_| refused("its signature does not verify"))
    }

    /// The JWKS: every published key's public part.
    pub(crate) fn jwks(&self) -> Result<serde_json::Value, SigningError> {
        self.ensure()?;
        let ring = self.ring.load();
        let keys: Vec<&serde_json::Value> = ring.published.iter().map(|k| &k.jwk).collect();
        Ok(serde_json::json!({ "keys": keys }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(dir: Option<&std::path::Path>, algorithms: &[SigningAlg]) -> KeyRing {
        KeyRing::open(&SigningConfig {
            keys_dir: dir.map(Into::into),
            algorithms: algorithms.to_vec(),
            rotate_after_days: 90,
        })
        .unwrap()
    }

    /// Verifies `token` against the JWKS, as a relying party would.
    fn verify(jwks: &serde_json::Value, token: &str) -> serde_json::Value {
        let header = jsonwebtoken::decode_header(token).unwrap();
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).unwrap();
        let jwk = set
            .find(header.kid.as_deref().unwrap())
            .expect("the kid is in the JWKS");
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .unwrap()
            .claims
    }

    #[test]
    fn each_algorithm_signs_what_its_published_key_verifies() {
        let ring = ring(None, &[SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA]);
        let jwks = ring.jwks().unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 3, "{jwks}");
        for key in jwks["keys"].as_array().unwrap() {
            assert!(
                key.get("d").is_none() && key.get("p").is_none(),
                "no private part: {key}"
            );
            assert_eq!(key["use"], "sig");
        }
        for alg in [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA] {
            let token = ring.sign(alg, "JWT", &serde_json::json!({"sub": "ann"})).unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.typ.as_deref(), Some("JWT"));
            assert_eq!(verify(&jwks, &token)["sub"], "ann", "{alg:?}");
        }
    }

    /// The key ids the ring publishes, newest first.
    fn published(ring: &KeyRing) -> Vec<String> {
        ring.jwks().unwrap()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The one key file of `dir` other than `except`.
    fn other_file(dir: &std::path::Path, except: &std::path::Path) -> std::path::PathBuf {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p != except)
            .unwrap()
    }

    #[test]
    fn keys_in_a_folder_are_kept_private_shared_rotated_and_retired() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let at = |secs_ago: u64| keys.join(format!("RS256-{}.pem", keys::now() - secs_ago));
        let first = ring(Some(&keys), &[SigningAlg::RS256]);
        let kid = first.current(SigningAlg::RS256).unwrap().kid.clone();
        let files: Vec<_> = std::fs::read_dir(&keys)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1);
        assert_eq!(
            std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // Another gateway on the same folder: the same key.
        let second = ring(Some(&keys), &[SigningAlg::RS256]);
        assert_eq!(second.current(SigningAlg::RS256).unwrap().kid, kid);

        // The key made 100 days ago: a new one is made and published at
        // once, but the old one signs until relying parties can have it.
        let aged = at(100 * 86_400);
        std::fs::rename(&files[0], &aged).unwrap();
        assert!(first.refresh().unwrap(), "a key was made");
        let both = published(&first);
        assert_eq!(both.len(), 2);
        assert_eq!(both[1], kid, "newest first");
        assert_eq!(first.current(SigningAlg::RS256).unwrap().kid, kid);
        // Five minutes on, the new key signs.
        let new = other_file(&keys, &aged);
        let ready = at(PUBLISHED_BEFORE_SIGNING_SECS);
        std::fs::rename(&new, &ready).unwrap();
        first.refresh().unwrap();
        assert_eq!(first.current(SigningAlg::RS256).unwrap().kid, both[0]);
        assert_eq!(published(&first), both, "the old one stays published");

        // Replaced more than a period ago: gone, its file too.
        let older = at(200 * 86_400);
        std::fs::rename(&aged, &older).unwrap();
        std::fs::rename(&ready, at(95 * 86_400)).unwrap();
        first.refresh().unwrap();
        assert!(!older.exists(), "the retired key's file is removed");
        assert_eq!(published(&first).len(), 2, "the 95-day-old one and a new one");

        // `authgate keys rotate`: one more, published now.
        let before = published(&first).len();
        first.rotate().unwrap();
        assert_eq!(published(&first).len(), before + 1);
    }

    #[test]
    fn a_key_file_that_is_not_a_key_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(format!("RS256-{}.pem", keys::now())), "not a key").unwrap();
        let err = KeyRing::open(&SigningConfig {
            keys_dir: Some(dir.path().into()),
            algorithms: vec![SigningAlg::RS256],
            rotate_after_days: 90,
        })
        .unwrap_err();
        assert!(err.to_string().contains("RS256-"), "{err}");
    }
}
