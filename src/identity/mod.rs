//! Who can sign in, and how that is checked: people, from password
//! sources (the users of `[[users]]` today; an LDAP directory or an
//! outside provider is one more source beside them), and OAuth clients.
//!
//! Passwords are checked with argon2id on the background pool
//! ([`crate::runtime::background`]), never on the async threads, and its
//! few threads each reuse one block of argon2's working memory.

mod client;
mod database;
mod database_clients;
mod ldap;
mod local;
mod outside;
mod user;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hmac::{Hmac, Mac};
use zeroize::Zeroizing;

use crate::config::{Config, ProviderKind};
use crate::db::Database;
use crate::store::{Identity, IdentityParts};

pub(crate) use self::client::Client;
use self::database::DatabaseUsers;
pub(crate) use self::database_clients::{client_config, new_client_secret, ClientRequest, DatabaseClients};
use self::ldap::LdapDirectory;
pub(crate) use self::local::LocalUsers;
pub(crate) use self::outside::{LogoutClaims, Outside, OutsideError, OutsideIdentity, ProviderHttp};
pub(crate) use self::user::{user_uuid, User};

/// What a password source answers.
pub(crate) type SourceFuture<'a> = Pin<Box<dyn Future<Output = Checked> + Send + 'a>>;

/// A password source's answer.
#[derive(Debug)]
pub(crate) enum Checked {
    /// The password is the user's.
    Verified(Arc<User>),
    /// The source has the user, and the password is not theirs (or they
    /// may not sign in).
    Refused,
    /// The source has no user of that name.
    NotHere,
    /// The source could not answer (a directory that is down).
    Unavailable,
}

/// A password source that could not answer: its people cannot sign in
/// for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unavailable;

/// A source of people who sign in with a username and a password.
pub(crate) trait PasswordSource: Send + Sync + std::fmt::Debug {
    /// The user of that name, if this source knows it without asking
    /// anyone (the users of the configuration).
    fn user(&self, username: &str) -> Option<Arc<User>>;

    /// The user whose email address this is, if this source knows it
    /// without asking anyone.
    fn user_by_email(&self, _email: &str) -> Option<Arc<User>> {
        None
    }

    /// Whether the source must be asked over the network (an LDAP
    /// directory): asked, in order, for names no local user has.
    fn is_remote(&self) -> bool {
        false
    }

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
    /// `provider:subject` → the `[[users]]` name it signs in as.
    links: HashMap<String, String>,
    /// The providers people are sent to, in config order.
    outside: Vec<Arc<Outside>>,
    /// `[database]`: its groups are anyone's, whatever their source.
    database: Option<Database>,
    clients: HashMap<String, Arc<Client>>,
    /// The database's clients (shared across reloads); `[[clients]]`
    /// comes first for an id both have.
    database_clients: Option<Arc<DatabaseClients>>,
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

    /// Of the secret with the hash it is checked against: a client whose
    /// hash changed (a database client's secret rotated) is checked anew.
    fn digest(&self, client_id: &str, hash: &str, secret: &str) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(client_id.as_bytes());
        mac.update(&[0]);
        mac.update(hash.as_bytes());
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
    pub(crate) fn from_config(
        config: &Config,
        database: Option<&Database>,
        database_clients: Option<Arc<DatabaseClients>>,
    ) -> Self {
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
        let mut sources: Vec<Box<dyn PasswordSource>> = vec![Box::new(LocalUsers::new(&config.users))];
        if let Some(db) = database {
            sources.push(Box::new(DatabaseUsers::new(db.clone())));
        }
        for provider in &config.providers {
            if let ProviderKind::Ldap(ldap) = &provider.kind {
                sources.push(Box::new(LdapDirectory::new(provider, ldap)));
            }
        }
        let links = config
            .users
            .iter()
            .flat_map(|user| {
                user.links
                    .iter()
                    .map(|link| (link.clone(), user.username.clone()))
            })
            .collect();
        Self {
            sources,
            links,
            outside: Outside::all(&config.providers),
            database: database.cloned(),
            clients,
            database_clients,
            verification: Verification::default(),
            verified_secrets: VerifiedSecrets::new(),
        }
    }

    /// The providers people are sent to, in config order.
    pub(crate) fn outside(&self) -> &[Arc<Outside>] {
        &self.outside
    }

    /// The provider people are sent to of that id.
    pub(crate) fn outside_provider(&self, id: &str) -> Option<&Arc<Outside>> {
        self.outside.iter().find(|p| p.id() == id)
    }

    /// Whether any provider sends its access token upstream.
    pub(crate) fn passes_access_tokens(&self) -> bool {
        self.outside.iter().any(|p| p.passes_access_token())
    }

    /// Whether some people come from a source asked over the network (the
    /// database, LDAP), whom the config does not list.
    pub(crate) fn has_remote_sources(&self) -> bool {
        self.sources.iter().any(|s| s.is_remote())
    }

    /// Whether the sign-in form has anyone to check a password of.
    pub(crate) fn has_passwords(&self, config: &Config) -> bool {
        !config.users.is_empty() || self.sources.iter().any(|s| s.is_remote())
    }

    /// The user someone `provider` vouched for signs in as: the
    /// `[[users]]` entry linked to them (by `links`, or by a verified
    /// email where the provider allows it), else `provider:name`.
    pub(crate) fn outside_user(&self, provider: &Outside, person: &OutsideIdentity) -> Arc<User> {
        let user = provider.user(person);
        let by_email = || {
            let email = person
                .email
                .as_deref()
                .filter(|_| person.email_verified && provider.links_by_verified_email())?;
            let local = self.sources.first()?;
            local.user_by_email(email)
        };
        match by_email() {
            Some(local) => self.merged(&local, &user),
            None => self.linked(user),
        }
    }

    /// The client of that id: of `[[clients]]`, else of the database.
    pub(crate) fn client(&self, client_id: &str) -> Option<Arc<Client>> {
        match self.clients.get(client_id) {
            Some(client) => Some(client.clone()),
            None => self.database_clients.as_ref()?.get(client_id),
        }
    }

    /// Whether `[[clients]]` has a client of that id (which the database
    /// may then not have).
    pub(crate) fn is_config_client(&self, client_id: &str) -> bool {
        self.clients.contains_key(client_id)
    }

    /// The clients of `[[clients]]`.
    pub(crate) fn config_clients(&self) -> impl Iterator<Item = &Arc<Client>> {
        self.clients.values()
    }

    /// The user of that name, from the first source that has one.
    pub(crate) fn user(&self, username: &str) -> Option<Arc<User>> {
        self.sources.iter().find_map(|source| source.user(username))
    }

    /// Who `username` is, for a sign-in that proved it without a password
    /// (a passkey): a `[[users]]` entry, or an enabled user of `db`. Not
    /// someone of a directory or provider, which only a password or the
    /// provider can vouch for.
    pub(crate) async fn without_password(
        &self,
        db: Option<&Database>,
        username: &str,
    ) -> Result<Option<Arc<User>>, Unavailable> {
        if let Some(user) = self.user(username) {
            return Ok(Some(self.with_database_groups(user).await));
        }
        match db {
            Some(db) => database::without_password(db, username).await.map_err(|err| {
                tracing::warn!(error = %err, "database unavailable at a passkey sign-in");
                Unavailable
            }),
            None => Ok(None),
        }
    }

    /// Every client, of `[[clients]]` and of the database.
    pub(crate) fn clients(&self) -> Vec<Arc<Client>> {
        let mut all: Vec<Arc<Client>> = self.clients.values().cloned().collect();
        if let Some(database) = &self.database_clients {
            all.extend(
                database
                    .all()
                    .into_iter()
                    .filter(|c| !self.clients.contains_key(c.id())),
            );
        }
        all
    }

    /// Whether `secret` is the client's secret (argon2id on the background
    /// pool; the hash comparison is constant-time). A public client has no
    /// secret to match.
    pub(crate) async fn verify_client_secret(&self, client: &Client, secret: &str) -> bool {
        let Some(hash) = client.secret_hash() else {
            return false;
        };
        let digest = self.verified_secrets.digest(client.id(), hash, secret);
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

    /// The user, if `password` is theirs: asked of the local source that
    /// has a user of that name; else of each directory in order, until
    /// one has the name; else of the first source, which pays the full
    /// hash for a name nobody has. [`Unavailable`] when a directory that
    /// might have had the name could not answer.
    pub(crate) async fn verify_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<Arc<User>>, Unavailable> {
        let verified = |checked| match checked {
            Checked::Verified(user) => Some(user),
            _ => None,
        };
        if let Some(local) = self.sources.iter().find(|source| source.user(username).is_some()) {
            let user = verified(local.verify(username, password, &self.verification).await);
            return Ok(match user {
                Some(user) => Some(self.with_database_groups(user).await),
                None => None,
            });
        }
        let mut unavailable = false;
        let mut asked = false;
        for source in self.sources.iter().filter(|source| source.is_remote()) {
            asked = true;
            match source.verify(username, password, &self.verification).await {
                Checked::Verified(user) => {
                    return Ok(Some(self.with_database_groups(self.linked(user)).await))
                }
                Checked::Refused => return Ok(None),
                Checked::NotHere => {}
                Checked::Unavailable => unavailable = true,
            }
        }
        if unavailable {
            return Err(Unavailable);
        }
        if !asked {
            if let Some(first) = self.sources.first() {
                return Ok(verified(
                    first.verify(username, password, &self.verification).await,
                ));
            }
        }
        Ok(None)
    }

    /// `user`, with the groups the database gives them too. A database
    /// that cannot be reached gives none (logged): their other groups still
    /// count, and they sign in.
    pub(crate) async fn with_database_groups(&self, user: Arc<User>) -> Arc<User> {
        let Some(db) = &self.database else { return user };
        let extra = match db.groups_of(user.username()).await {
            Ok(groups) => groups,
            Err(err) => {
                tracing::warn!(error = %err, username = user.username(), "the database's groups are left out of this sign-in");
                return user;
            }
        };
        if extra.iter().all(|g| user.identity.in_group(g)) {
            return user;
        }
        Arc::new(User::from_entry_with(
            user.entry().cloned(),
            user.identity.with_groups(extra),
        ))
    }

    /// The user someone from outside signs in as: the `[[users]]` entry
    /// that links their `provider:subject`, with the groups of both;
    /// else themselves.
    pub(crate) fn linked(&self, outside: Arc<User>) -> Arc<User> {
        let identity = &outside.identity;
        let (Some(provider), Some(subject)) = (identity.provider(), identity.subject()) else {
            return outside;
        };
        let Some(local) = self
            .links
            .get(&format!("{provider}:{subject}"))
            .and_then(|name| self.user(name))
        else {
            return outside;
        };
        self.merged(&local, &outside)
    }

    /// `local`, signed in through `outside`'s provider: the groups of both.
    fn merged(&self, local: &User, outside: &User) -> Arc<User> {
        let identity = &outside.identity;
        let mut groups: Vec<String> = local.identity.groups().map(str::to_owned).collect();
        groups.extend(identity.groups().map(str::to_owned));
        let merged = Identity::from_parts(IdentityParts {
            username: local.username(),
            email: local.identity.email().or(identity.email()),
            name: local.identity.name().or(identity.name()),
            groups: &groups,
            provider: identity.provider(),
            subject: identity.subject(),
            preferred_username: identity.preferred_username(),
            provider_tokens: identity.provider_tokens().cloned(),
            password_change_required: false,
        });
        Arc::new(User::from_entry_with(local.entry().cloned(), merged))
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
        let directory = Directory::from_config(&config, None, None);
        let client = directory.client("c").unwrap().clone();
        assert!(!directory.verify_client_secret(&client, "wrong").await);
        assert!(
            directory.verified_secrets.digests.is_empty(),
            "a wrong secret is never remembered"
        );
        assert!(directory.verify_client_secret(&client, "s3cret").await);
        let remembered = *directory.verified_secrets.digests.get("c").unwrap();
        assert_ne!(&remembered[..6], b"s3cret", "a digest, not the secret");
        assert_eq!(
            remembered,
            directory.verified_secrets.digest("c", &hash, "s3cret")
        );
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
        let reloaded = Directory::from_config(&config, None, None);
        assert!(reloaded.verified_secrets.digests.is_empty());
        assert_ne!(reloaded.verified_secrets.digest("c", &hash, "s3cret"), remembered);
        // The same secret against another hash (a rotated one) is another
        // digest: what was verified against the old hash is not taken.
        let rotated = crate::password::hash_password("other");
        assert_ne!(
            directory.verified_secrets.digest("c", &rotated, "s3cret"),
            remembered
        );
    }
}
