//! What the layer's services share: the configuration, the directory and
//! the pages (replaced whole on reload), and the token store, throttle and
//! CSRF key (kept across reloads).

use std::net::IpAddr;
use std::sync::Arc;

use http::header::HeaderMap;
use http::{Response, StatusCode};

use crate::auth::pages::ErrorPage;
use crate::web::request::wants_html;
use crate::web::response::{self, OwnBody};

use crate::auth::csrf::CsrfKey;
use crate::auth::pages::Pages;
use crate::auth::throttle::Throttle;
use crate::config::Config;
use crate::db::Database;
use crate::error::Error;
use crate::identity::{Client, DatabaseClients, Directory, User};
use crate::obs::audit::{Audit, Fields};
use crate::obs::metrics::SignIn;
use crate::obs::metrics::{MeteredStore, Metrics};
use crate::signing::KeyRing;
use crate::store::{unix_now, AuthMethods, Session, SessionOrigin, StoreError, Token, TokenStore};
use crate::web::peer::{self, ClientAddr};

pub(crate) struct AuthState {
    pub(crate) config: Config,
    /// `[database]`, kept across reloads (its URL takes a restart).
    pub(crate) database: Option<Database>,
    /// The audit log (kept across reloads).
    pub(crate) audit: Arc<Audit>,
    /// The signing keys (kept across reloads; `[signing]` takes a
    /// restart).
    pub(crate) keys: Arc<KeyRing>,
    pub(crate) directory: Directory,
    /// The database's OAuth clients, loaded into memory (kept across
    /// reloads; the change feed reloads them).
    pub(crate) database_clients: Option<Arc<DatabaseClients>>,
    pub(crate) pages: Pages,
    pub(crate) store: Arc<dyn TokenStore>,
    pub(crate) throttle: Arc<Throttle>,
    pub(crate) csrf: Arc<CsrfKey>,
    pub(crate) metrics: Arc<Metrics>,
    /// The WebAuthn relying party, where security keys are offered.
    pub(crate) webauthn: Option<Arc<webauthn_rs::prelude::Webauthn>>,
}

/// The WebAuthn relying party of `config`, where it offers security keys.
fn webauthn_of(config: &Config) -> Option<Arc<webauthn_rs::prelude::Webauthn>> {
    let relying_party = config.auth.second_factor.webauthn.as_ref()?;
    crate::second_factor::webauthn::relying_party(relying_party, &config.pages.branding.title).map(Arc::new)
}

impl AuthState {
    pub(crate) fn new(config: Config, store: Arc<dyn TokenStore>) -> Result<Self, Error> {
        let metrics = Arc::new(Metrics::new());
        let config_secret = config.auth.secret.clone();
        let store: Arc<dyn TokenStore> = Arc::new(MeteredStore::new(store, metrics.clone()));
        let database = config
            .database
            .as_deref()
            .map(Database::open)
            .transpose()
            .map_err(|e| Error::new(crate::error::ErrorKind::Config, e.to_string()))?;
        let audit = Arc::new(Audit::start(
            database.clone(),
            config.audit.file.clone(),
            config.audit.retention_days,
        ));
        let database_clients = database.clone().map(|db| Arc::new(DatabaseClients::new(db)));
        let keys = Arc::new(
            KeyRing::open(&config.signing)
                .map_err(|e| Error::new(crate::error::ErrorKind::Config, format!("[signing]: {e}")))?,
        );
        Ok(Self {
            webauthn: webauthn_of(&config),
            metrics,
            directory: Directory::from_config(&config, database.as_ref(), database_clients.clone()),
            database_clients,
            keys,
            database,
            audit,
            pages: Pages::load(config.pages.templates_dir.as_deref())?,
            config,
            throttle: Arc::new(Throttle::new(store.failure_counters())),
            store,
            csrf: Arc::new(match &config_secret {
                Some(secret) => CsrfKey::from_secret(secret.expose()),
                None => CsrfKey::generate(),
            }),
        })
    }

    /// The same store, throttle and CSRF key with a new configuration.
    pub(crate) fn reloaded(&self, config: Config) -> Result<Self, Error> {
        Ok(Self {
            webauthn: webauthn_of(&config),
            directory: Directory::from_config(&config, self.database.as_ref(), self.database_clients.clone()),
            database_clients: self.database_clients.clone(),
            keys: self.keys.clone(),
            database: self.database.clone(),
            audit: self.audit.clone(),
            pages: Pages::load(config.pages.templates_dir.as_deref())?,
            config,
            store: self.store.clone(),
            throttle: self.throttle.clone(),
            csrf: self.csrf.clone(),
            metrics: self.metrics.clone(),
        })
    }

    /// An error page for a browser.
    pub(crate) fn error_page(
        &self,
        status: StatusCode,
        title: &str,
        message: &str,
        error: &str,
    ) -> Response<OwnBody> {
        response::html(
            status,
            self.pages.error(&ErrorPage {
                title,
                message,
                error,
            }),
        )
    }

    /// An error for whoever asked: a page for a browser, JSON otherwise.
    pub(crate) fn error_for(
        &self,
        headers: &HeaderMap,
        status: StatusCode,
        error: &str,
        description: &str,
    ) -> Response<OwnBody> {
        let title = status.canonical_reason().unwrap_or("Error");
        self.error_titled(headers, status, title, description, error)
    }

    /// An error for whoever asked, with a title for the page: a page for
    /// a browser, JSON (`error`, `error_description`) otherwise.
    pub(crate) fn error_titled(
        &self,
        headers: &HeaderMap,
        status: StatusCode,
        title: &str,
        description: &str,
        error: &str,
    ) -> Response<OwnBody> {
        if wants_html(headers) {
            self.error_page(status, title, description, error)
        } else {
            response::json_error(status, error, description)
        }
    }

    /// Counts a sign-in's outcome and records it in the audit log.
    pub(crate) fn sign_in_outcome(&self, outcome: SignIn, fields: Fields<'_>) {
        self.metrics.sign_in(outcome);
        let event = match outcome {
            SignIn::Succeeded => "sign_in.succeeded",
            SignIn::Failed => "sign_in.failed",
            SignIn::Throttled => "sign_in.throttled",
        };
        self.audit.record(event, fields);
    }

    /// The issuer identifier (RFC 8414): `server.public_url`, or the
    /// listen address.
    pub(crate) fn issuer(&self) -> String {
        match &self.config.server.public_url {
            Some(url) => url.as_str().trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.config.server.listen),
        }
    }

    /// The client's address, from the connection and the forwarding headers
    /// of trusted proxies.
    pub(crate) fn client_ip(&self, extensions: &http::Extensions, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = extensions.get::<ClientAddr>().map(|a| a.0.ip());
        peer::client_ip(peer, headers, &self.config.server.trusted_proxies)
    }

    /// Whether the request came straight from a trusted proxy.
    pub(crate) fn is_from_trusted_proxy(&self, extensions: &http::Extensions) -> bool {
        extensions
            .get::<ClientAddr>()
            .is_some_and(|peer| peer::is_trusted(peer.0.ip(), &self.config.server.trusted_proxies))
    }

    /// A new access-token session for `user`, with the configured lifetime
    /// and idle timeout.
    pub(crate) fn access_session(&self, user: &User, ttl_secs: u64) -> Session {
        Session::for_identity(user.identity.clone(), ttl_secs)
            .with_idle(self.config.tokens.idle_secs, unix_now())
    }

    /// Where a sign-in request comes from (its client's address and user
    /// agent), signed in now with `methods`.
    pub(crate) fn origin_of(
        &self,
        extensions: &http::Extensions,
        headers: &HeaderMap,
        methods: AuthMethods,
    ) -> Arc<SessionOrigin> {
        SessionOrigin::new(
            self.client_ip(extensions, headers),
            headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
            methods,
        )
    }

    /// The `sub` a client knows `username` by: the public one, or, for a
    /// client with pairwise subjects, one of its sector's own (the same
    /// for every client of that host, unlinkable across hosts), made with
    /// `auth.secret_file`.
    pub(crate) fn subject_for(&self, client: Option<&Client>, username: &str) -> String {
        use hmac::Mac;
        let sector = client.and_then(|c| c.entry().pairwise_sector.as_deref());
        match (sector, &self.config.auth.secret) {
            (Some(sector), Some(secret)) => {
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.expose().as_bytes())
                    .expect("HMAC takes a key of any length");
                mac.update(b"authgate pairwise sub\0");
                mac.update(sector.as_bytes());
                mac.update(&[0]);
                mac.update(username.as_bytes());
                use base64::Engine;
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            }
            _ => crate::store::user_uuid(username),
        }
    }

    /// Issues a fresh access token for `user`, signed in from `origin`,
    /// and keeps its session.
    pub(crate) async fn issue(
        &self,
        user: &User,
        client: Option<&Client>,
        scope: Option<&str>,
        origin: Arc<SessionOrigin>,
    ) -> Result<(Token, Session), StoreError> {
        let token = Token::generate();
        let session = self
            .access_session(user, self.config.tokens.ttl_secs)
            .with_origin(origin);
        let session = match client {
            Some(client) => session.with_grant(client.grant(scope)),
            None => session.with_scope(scope),
        };
        self.store.insert(token.key(), session.clone()).await?;
        self.metrics.tokens_issued.inc();
        Ok((token, session))
    }
}
