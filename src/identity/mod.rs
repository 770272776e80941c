//! Who can sign in, and how that is checked: people, from password
//! sources (the users of `[[users]]` today; an LDAP directory or an
//! outside provider is one more source beside them), and OAuth clients.
//!
//! Passwords are checked with argon2id on the background pool
//! ([`crate::runtime::background`]), never on the async threads, and its
//! few threads each reuse one block of argon2's working memory.

mod client;
mod local;
mod user;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hmac::{Hmac, Mac};
use zeroize::Zeroizing;

use crate::config::Config;

pub(crate) use self::client::Client;
pub(crate) use self::local::LocalUsers;
pub(crate) use self::user::User;

/// What a password source answers: the user, if the password is theirs.
pub(crate) type SourceFuture<'a> = Pin<Box<dyn Future<Output = Option<Arc<User>>> + Send + 'a>>;

/// A source of people who sign in with a username and a password.
pub(crate) trait PasswordSource: Send + Sync + std::fmt::Debug {
    /// The user of that name, if this source has one.
    fn user(&self, username: &str) -> Option<Arc<User>>;

    /// The user, if `password` is theirs.
    fn verify<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
        verification: &'a Verification,
    ) -> SourceFuture<'a>;
}

/// Runs the password hashes, and counts them (for the tests of the
/// shortcuts that avoid them).
#[derive(Debug, Default)]
pub(crate) struct Verification {
    argon2_runs: AtomicUsize,
}

impl Verification {
    /// Whether `password` matches the PHC string `hash`: argon2 on the
    /// background pool; the copy of the password it takes there is wiped
    /// when done.
    pub(crate) async fn argon2(&self, hash: String, password: &str) -> bool {
        self.argon2_runs.fetch_add(1, Ordering::Relaxed);
        let password = Zeroizing::new(password.to_owned());
        crate::runtime::background::run(move || {
            crate::password::verify_keeping_memory(&hash, password.as_bytes())
        })
        .await
        .unwrap_or(false)
    }
}

/// Everyone the gateway knows: people from its password sources, clients
/// by id.
#[derive(Debug)]
pub(crate) struct Directory {
    sources: Vec<Box<dyn PasswordSource>>,
    clients: HashMap<String, Arc<Client>>,
    verification: Verification,
    /// Client secrets already verified once with argon2, as an HMAC under a
    /// key of this directory's own: the expensive hash is paid once per
    /// distinct secret, and no secret is kept in clear. A reload makes a new
    /// directory, so a changed secret stops working at once.
    verified_secrets: VerifiedSecrets,
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
        let clients = config
            .clients
            .iter()
            .map(|entry| {
                (
                    entry.client_id.clone(),
                    Arc::new(Client::from_entry(entry.clone())),
                )
            })
            .collect();
        Self {
            sources: vec![Box::new(LocalUsers::new(&config.users))],
            clients,
            verification: Verification::default(),
            verified_secrets: VerifiedSecrets::new(),
        }
    }

    pub(crate) fn client(&self, client_id: &str) -> Option<&Arc<Client>> {
        self.clients.get(client_id)
    }

    /// The user of that name, from the first source that has one.
    pub(crate) fn user(&self, username: &str) -> Option<Arc<User>> {
        self.sources.iter().find_map(|source| source.user(username))
    }

    pub(crate) fn clients(&self) -> impl Iterator<Item = &Arc<Client>> {
        self.clients.values()
    }

    /// Whether `secret` is the client's secret (argon2id on the background
    /// pool; the hash comparison is constant-time). A public client has no
    /// secret to match.
    pub(crate) async fn verify_client_secret(&self, client: &Client, secret: &str) -> bool {
        let Some(hash) = client.secret_hash() else {
            return false;
        };
        let digest = self.verified_secrets.digest(client.id(), secret);
        if self.verified_secrets.knows(client.id(), &digest) {
            return true;
        }
        let matches = self.verification.argon2(hash.to_owned(), secret).await;
        if matches {
            self.verified_secrets
                .digests
                .insert(client.id().to_owned(), digest);
        }
        matches
    }

    /// The user, if `password` is theirs: asked of the source that has a
    /// user of that name, else of the first (which pays the full hash for
    /// a name nobody has).
    pub(crate) async fn verify_password(&self, username: &str, password: &str) -> Option<Arc<User>> {
        let source = self
            .sources
            .iter()
            .find(|source| source.user(username).is_some())
            .or(self.sources.first())?;
        source.verify(username, password, &self.verification).await
    }

    /// How many argon2 hashes ran.
    #[cfg(test)]
    fn argon2_runs(&self) -> usize {
        self.verification.argon2_runs.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_secret_is_hashed_once_and_kept_only_as_a_keyed_digest() {
        let hash = crate::password::hash_password("s3cret");
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
        let runs = Directory::argon2_runs;
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
}
