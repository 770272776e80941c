//! Users and clients, and password checks that never block the async
//! worker threads.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::Semaphore;

use crate::config::Config;

/// A user who can sign in.
#[derive(Debug)]
pub(crate) struct User {
    pub(crate) username: Arc<str>,
    pub(crate) email: Option<Arc<str>>,
    password_hash: String,
}

/// An OAuth client registered in the configuration.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) client_id: String,
    pub(crate) redirect_uris: Vec<String>,
    #[allow(dead_code)] // confidential clients authenticate at the token endpoint
    pub(crate) secret_hash: Option<String>,
}

impl Client {
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
                };
                (c.client_id.clone(), Arc::new(client))
            })
            .collect();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            users,
            clients,
            hashing: Arc::new(Semaphore::new(cores)),
        }
    }

    pub(crate) fn client(&self, client_id: &str) -> Option<&Arc<Client>> {
        self.clients.get(client_id)
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
        let password = password.to_owned();
        let _permit = self.hashing.acquire().await.ok()?;
        let matches = tokio::task::spawn_blocking(move || verify_hash(&hash, &password))
            .await
            .unwrap_or(false);
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
}
