//! Users and clients, and password checks that never block the async
//! worker threads.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use hmac::{Hmac, Mac};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::config::{Config, Grant};
use crate::store::{ClientGrant, Identity};

/// A user who can sign in.
#[derive(Debug)]
pub(crate) struct User {
    pub(crate) username: Arc<str>,
    pub(crate) email: Option<Arc<str>>,
    /// Shared by all of this user's sessions.
    pub(crate) identity: Arc<Identity>,
    pub(crate) name: String,
    pub(crate) admin: bool,
    /// Stable across restarts: derived from the username.
    pub(crate) uuid: String,
    password_hash: String,
}

/// A user's UUID, derived from the username (the same on every start and
/// every replica): SHA-256 of a fixed prefix and the name, shaped as a
/// version-5-style UUID.
fn user_uuid(username: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("authgate user\0{username}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// An OAuth client registered in the configuration.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) client_id: String,
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) secret_hash: Option<String>,
    pub(crate) grants: Vec<Grant>,
    pub(crate) scopes: Option<Vec<String>>,
    pub(crate) allow_plain_pkce: bool,
    pub(crate) cors_origins: Vec<String>,
    /// The client as the subject of its own (client-credentials) tokens.
    pub(crate) identity: Arc<Identity>,
    /// Grants by scope, shared by this client's tokens (a few at most).
    shared_grants: dashmap::DashMap<Option<String>, Arc<ClientGrant>>,
}

/// Past this many distinct scopes, a client's grants are no longer shared.
const SHARED_GRANTS: usize = 64;

impl Client {
    /// The grant of this client with `scope`, shared between its tokens.
    pub(crate) fn grant(&self, scope: Option<&str>) -> Arc<ClientGrant> {
        let key = scope.filter(|s| !s.is_empty()).map(str::to_owned);
        if let Some(grant) = self.shared_grants.get(&key) {
            return grant.clone();
        }
        let grant = ClientGrant::new(&self.client_id, scope);
        if self.shared_grants.len() < SHARED_GRANTS {
            self.shared_grants.insert(key, grant.clone());
        }
        grant
    }

    /// Whether the client has a secret (RFC 6749 §2.1).
    pub(crate) fn is_confidential(&self) -> bool {
        self.secret_hash.is_some()
    }

    pub(crate) fn may_use(&self, grant: Grant) -> bool {
        self.grants.contains(&grant)
    }

    /// The redirect URI to use: the one asked for if it is registered
    /// (exact match), or the only one registered if none was asked for.
    pub(crate) fn redirect_uri<'a>(&'a self, asked: Option<&'a str>) -> Option<&'a str> {
        match asked {
            Some(uri) => self
                .redirect_uris
                .iter()
                .find(|r| r.as_str() == uri)
                .map(String::as_str),
            None if self.redirect_uris.len() == 1 => Some(&self.redirect_uris[0]),
            None => None,
        }
    }
}

/// Everyone the gateway knows: users by name, clients by id.
#[derive(Debug)]
pub(crate) struct Directory {
    users: HashMap<String, Arc<User>>,
    clients: HashMap<String, Arc<Client>>,
    /// Bounds how many argon2 verifications run at once (each takes its
    /// memory cost in RAM and a core for tens of milliseconds).
    hashing: Arc<Semaphore>,
    /// Client secrets already verified once with argon2, as an HMAC under a
    /// key of this directory's own: the expensive hash is paid once per
    /// distinct secret, and no secret is kept in clear. A reload makes a new
    /// directory, so a changed secret stops working at once.
    verified_secrets: VerifiedSecrets,
    /// How many argon2 verifications ran (for the tests of the shortcut).
    argon2_runs: std::sync::atomic::AtomicUsize,
}

/// Keyed digests of client secrets that passed argon2.
#[derive(Debug)]
struct VerifiedSecrets {
    /// HMAC-SHA256 with this directory's random key already absorbed:
    /// each digest starts from a copy, which saves hashing the key again.
    keyed: Hmac<sha2::Sha256>,
    digests: dashmap::DashMap<String, [u8; 32]>,
}

impl VerifiedSecrets {
    fn new() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut()).expect("the operating system's random source failed");
        Self {
            keyed: Hmac::new_from_slice(key.as_ref()).expect("HMAC takes a key of any length"),
            digests: dashmap::DashMap::new(),
        }
    }

    fn digest(&self, client_id: &str, secret: &str) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(client_id.as_bytes());
        mac.update(&[0]);
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Whether `digest` is the one remembered for `client_id` (constant time).
    fn knows(&self, client_id: &str, digest: &[u8; 32]) -> bool {
        use subtle::ConstantTimeEq;
        self.digests
            .get(client_id)
            .is_some_and(|known| bool::from(known.ct_eq(digest)))
    }
}

impl Directory {
    pub(crate) fn from_config(config: &Config) -> Self {
        let users = config
            .users
            .iter()
            .map(|u| {
                let user = User {
                    username: u.username.as_str().into(),
                    email: u.email.as_deref().map(Into::into),
                    identity: Identity::new(&u.username, u.email.as_deref()),
                    name: u.name.clone().unwrap_or_else(|| u.username.clone()),
                    admin: u.admin,
                    uuid: user_uuid(&u.username),
                    password_hash: u.password_hash.clone(),
                };
                (u.username.clone(), Arc::new(user))
            })
            .collect();
        let clients = config
            .clients
            .iter()
            .map(|c| {
                let client = Client {
                    client_id: c.client_id.clone(),
                    redirect_uris: c.redirect_uris.clone(),
                    secret_hash: c.client_secret_hash.clone(),
                    grants: c.grants.clone(),
                    scopes: c.scopes.clone(),
                    allow_plain_pkce: c.allow_plain_pkce,
                    cors_origins: c.cors_origins.clone(),
                    identity: Identity::new(&c.client_id, None),
                    shared_grants: dashmap::DashMap::new(),
                };
                (c.client_id.clone(), Arc::new(client))
            })
            .collect();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            users,
            clients,
            hashing: Arc::new(Semaphore::new(cores)),
            verified_secrets: VerifiedSecrets::new(),
            argon2_runs: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    pub(crate) fn client(&self, client_id: &str) -> Option<&Arc<Client>> {
        self.clients.get(client_id)
    }

    pub(crate) fn user(&self, username: &str) -> Option<&Arc<User>> {
        self.users.get(username)
    }

    pub(crate) fn clients(&self) -> impl Iterator<Item = &Arc<Client>> {
        self.clients.values()
    }

    /// Whether `secret` is the client's secret (argon2id on the blocking
    /// pool; the hash comparison is constant-time). A public client has no
    /// secret to match.
    pub(crate) async fn verify_client_secret(&self, client: &Client, secret: &str) -> bool {
        let Some(hash) = client.secret_hash.clone() else {
            return false;
        };
        let digest = self.verified_secrets.digest(&client.client_id, secret);
        if self.verified_secrets.knows(&client.client_id, &digest) {
            return true;
        }
        let matches = self
            .verify_blocking(hash, Zeroizing::new(secret.to_owned()))
            .await;
        if matches {
            self.verified_secrets
                .digests
                .insert(client.client_id.clone(), digest);
        }
        matches
    }

    /// Runs argon2 on the blocking pool; the copy of the password it
    /// takes there is wiped when done.
    async fn verify_blocking(&self, hash: String, password: Zeroizing<String>) -> bool {
        let Ok(_permit) = self.hashing.acquire().await else {
            return false;
        };
        self.argon2_runs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            crate::runtime::background::yield_to_requests();
            verify_hash(&hash, &password)
        })
        .await
        .unwrap_or(false)
    }

    /// The user, if `password` is theirs.
    ///
    /// Runs argon2id on the blocking pool. An unknown username is checked
    /// against a dummy hash with the same cost, so the answer's timing does
    /// not tell which usernames exist.
    pub(crate) async fn verify_password(&self, username: &str, password: &str) -> Option<Arc<User>> {
        let user = self.users.get(username).cloned();
        let hash = match &user {
            Some(user) => user.password_hash.clone(),
            None => dummy_hash().to_owned(),
        };
        let matches = self
            .verify_blocking(hash, Zeroizing::new(password.to_owned()))
            .await;
        user.filter(|_| matches)
    }
}

/// Whether `password` matches the PHC string `hash`. Blocking: call it off
/// the async threads.
pub(crate) fn verify_hash(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

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

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password("no user has this password"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_argon2id_with_production_parameters() {
        let hash = hash_password("s3cret");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_hash(&hash, "s3cret"));
        assert!(!verify_hash(&hash, "S3cret"));
        assert!(!verify_hash("not a hash", "s3cret"));
        assert_ne!(hash, hash_password("s3cret"), "salts are random");
    }

    #[tokio::test]
    async fn a_client_secret_is_hashed_once_and_kept_only_as_a_keyed_digest() {
        let hash = hash_password("s3cret");
        let config = crate::Config::from_toml_str(&format!(
            "[upstream]\nbuiltin = \"whoami\"\n[[clients]]\nclient_id = \"c\"\nclient_secret_hash = \"{hash}\"\ngrants = [\"client_credentials\"]\n"
        ))
        .unwrap();
        let directory = Directory::from_config(&config);
        let client = directory.client("c").unwrap().clone();
        assert!(!directory.verify_client_secret(&client, "wrong").await);
        assert!(
            directory.verified_secrets.digests.is_empty(),
            "a wrong secret is never remembered"
        );
        assert!(directory.verify_client_secret(&client, "s3cret").await);
        let remembered = *directory.verified_secrets.digests.get("c").unwrap();
        assert_ne!(&remembered[..6], b"s3cret", "a digest, not the secret");
        assert_eq!(remembered, directory.verified_secrets.digest("c", "s3cret"));
        // The shortcut: verified again without argon2.
        let runs = |d: &Directory| d.argon2_runs.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(runs(&directory), 2);
        for _ in 0..100 {
            assert!(directory.verify_client_secret(&client, "s3cret").await);
        }
        assert_eq!(runs(&directory), 2, "no argon2 for a secret already verified");
        for _ in 0..3 {
            assert!(
                !directory.verify_client_secret(&client, "s3cret ").await,
                "a wrong secret, every time"
            );
        }
        assert_eq!(runs(&directory), 5, "a wrong secret always pays the full argon2");
        // Another directory (a reload) remembers nothing and uses another key.
        let reloaded = Directory::from_config(&config);
        assert!(reloaded.verified_secrets.digests.is_empty());
        assert_ne!(reloaded.verified_secrets.digest("c", "s3cret"), remembered);
    }

    #[test]
    fn user_uuids_are_stable_and_distinct() {
        let a = user_uuid("alice");
        assert_eq!(a, user_uuid("alice"));
        assert_ne!(a, user_uuid("bob"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "5");
    }
}
