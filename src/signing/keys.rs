//! Signing keys as files and as memory: made, read, rotated, retired.
//! A key file is `ALG-CREATED.pem` (PKCS #8), written once, `0600`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};

use super::{SigningAlg, SigningError, SigningKey};

/// A key read or made.
pub(super) struct KeyFile {
    pub(super) key: SigningKey,
}

/// The keys still published, and whether one was made.
pub(super) struct Loaded {
    pub(super) keys: Vec<KeyFile>,
    pub(super) made: bool,
}

pub(super) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(super) fn jwt_alg(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::RS256 => Algorithm::RS256,
        SigningAlg::ES256 => Algorithm::ES256,
        SigningAlg::EdDSA => Algorithm::EdDSA,
    }
}

fn failed(what: impl std::fmt::Display) -> SigningError {
    SigningError::Keys(what.to_string())
}

/// A new private key of `alg`, as PKCS #8 PEM.
fn new_pem(alg: SigningAlg) -> Result<String, SigningError> {
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let random32 = || {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(failed)?;
        Ok::<_, SigningError>(bytes)
    };
    let pem = match alg {
        SigningAlg::RS256 => {
            use rsa::pkcs8::EncodePrivateKey as _;
            let key =
                rsa::RsaPrivateKey::new(&mut getrandom04::rand_core::UnwrapErr(getrandom04::SysRng), 2048)
                    .map_err(failed)?;
            key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
                .map_err(failed)?
                .to_string()
        }
        SigningAlg::ES256 => {
            // A random scalar is a key unless it is zero or past the
            // group's order (odds of about 2^-32): then draw again.
            let key = loop {
                if let Ok(key) = p256::SecretKey::from_slice(&random32()?) {
                    break key;
                }
            };
            key.to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
                .map_err(failed)?
                .to_string()
        }
        // PKCS #8 v1, the private key alone (jsonwebtoken reads that
        // form; the public key is derived from it).
        SigningAlg::EdDSA => ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: random32()?,
            public_key: None,
        }
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(failed)?
        .to_string(),
    };
    Ok(pem)
}

/// The key a PEM holds, as one of `alg` made at `created`.
fn key_of(alg: SigningAlg, pem: &str, created: u64) -> Result<SigningKey, SigningError> {
    let encoding = match alg {
        SigningAlg::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
        SigningAlg::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        SigningAlg::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
    }
    .map_err(failed)?;
    let mut jwk = Jwk::from_encoding_key(&encoding, jwt_alg(alg)).map_err(failed)?;
    let kid = jwk.thumbprint(ThumbprintHash::SHA256).map_err(failed)?;
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(match alg {
        SigningAlg::RS256 => KeyAlgorithm::RS256,
        SigningAlg::ES256 => KeyAlgorithm::ES256,
        SigningAlg::EdDSA => KeyAlgorithm::EdDSA,
    });
    Ok(SigningKey {
        alg,
        kid,
        created,
        encoding,
        jwk: serde_json::to_value(&jwk).map_err(failed)?,
    })
}

/// A new key of `alg` in memory.
pub(super) fn make(alg: SigningAlg, created: u64) -> Result<KeyFile, SigningError> {
    Ok(KeyFile {
        key: key_of(alg, &new_pem(alg)?, created)?,
    })
}

/// A new key of `alg` in a new file of `dir` (made if missing, `0700`).
pub(super) fn make_file(dir: &Path, alg: SigningAlg) -> Result<PathBuf, SigningError> {
    use std::io::Write;
    std::fs::create_dir_all(dir).map_err(|e| failed(format_args!("cannot make {}: {e}", dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    let pem = new_pem(alg)?;
    let mut created = now();
    loop {
        let path = dir.join(format!("{}-{created}.pem", alg.as_str()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut file) => {
                file.write_all(pem.as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| failed(format_args!("cannot write {}: {e}", path.display())))?;
                return Ok(path);
            }
            // Another gateway made one this second: the next second's name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => created += 1,
            Err(e) => return Err(failed(format_args!("cannot make {}: {e}", path.display()))),
        }
    }
}

/// The algorithm and creation time a key file's name says.
fn parse_name(name: &str) -> Option<(SigningAlg, u64)> {
    let stem = name.strip_suffix(".pem")?;
    let (alg, created) = stem.rsplit_once('-')?;
    let alg = match alg {
        "RS256" => SigningAlg::RS256,
        "ES256" => SigningAlg::ES256,
        "EdDSA" => SigningAlg::EdDSA,
        _ => return None,
    };
    Some((alg, created.parse().ok()?))
}

/// Reads `dir`; makes a key for each of `algorithms` that has none or
/// whose newest is `rotate_after` old; keeps published, for each
/// algorithm, the newest and every key replaced less than `rotate_after`
/// ago (whose tokens may live); removes the files of the others.
pub(super) fn refresh(
    dir: &Path,
    algorithms: &[SigningAlg],
    rotate_after: Duration,
) -> Result<Loaded, SigningError> {
    let mut made = false;
    let read = |dir: &Path| -> Result<Vec<(SigningAlg, u64, PathBuf)>, SigningError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(failed(format_args!("cannot read {}: {e}", dir.display()))),
        };
        Ok(entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let (alg, created) = parse_name(&name)?;
                Some((alg, created, entry.path()))
            })
            .collect())
    };
    let now = now();
    let due = rotate_after.as_secs();
    for alg in algorithms {
        let newest = read(dir)?
            .into_iter()
            .filter(|(a, ..)| a == alg)
            .map(|(_, c, _)| c)
            .max();
        if newest.is_none_or(|created| created.saturating_add(due) <= now) {
            make_file(dir, *alg)?;
            made = true;
        }
    }
    let mut files = read(dir)?;
    files.sort_by_key(|f| std::cmp::Reverse(f.1));
    let mut keys = Vec::new();
    for (alg, created, path) in &files {
        // Replaced when the next newer key of its algorithm began to sign.
        let replaced = files
            .iter()
            .filter(|(a, c, _)| a == alg && c > created)
            .map(|(_, c, _)| c.saturating_add(super::PUBLISHED_BEFORE_SIGNING_SECS))
            .min();
        let published = replaced.is_none_or(|at| at.saturating_add(due) > now);
        if !published {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a retired signing key");
            }
            continue;
        }
        let pem = std::fs::read_to_string(path)
            .map_err(|e| failed(format_args!("cannot read {}: {e}", path.display())))?;
        let key =
            key_of(*alg, &pem, *created).map_err(|e| failed(format_args!("{}: {e}", path.display())))?;
        keys.push(KeyFile { key });
    }
    Ok(Loaded { keys, made })
}
