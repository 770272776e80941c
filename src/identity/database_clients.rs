//! The OAuth clients of the database, as the endpoints see them: loaded
//! into memory at start and again whenever the change feed says a client
//! changed, so a token request never waits on the database.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::client_rules::{
    backchannel_uri_problem, client_id_problem, cors_origin_problem, default_grants, grants_problem,
    id_token_alg, jwt_access_tokens, pairwise_sector, redirect_uri_problem, resource_problem, scope_problem,
};
use crate::config::{ClientConfig, Grant, SigningAlg};
use crate::db::{Database, DbClient, DbError};

use super::client::Client;

/// The database's clients, by id, as last loaded.
#[derive(Debug)]
pub(crate) struct DatabaseClients {
    db: Database,
    loaded: ArcSwap<HashMap<String, Arc<Client>>>,
}

impl DatabaseClients {
    /// None loaded yet: [`DatabaseClients::reload`] fills it.
    pub(crate) fn new(db: Database) -> Self {
        Self {
            db,
            loaded: ArcSwap::from_pointee(HashMap::new()),
        }
    }

    pub(crate) fn get(&self, client_id: &str) -> Option<Arc<Client>> {
        self.loaded.load().get(client_id).cloned()
    }

    pub(crate) fn all(&self) -> Vec<Arc<Client>> {
        self.loaded.load().values().cloned().collect()
    }

    /// Reads every client again; answers how many there are. A client
    /// whose row breaks the rules of `[[clients]]` (written by hand, or a
    /// grant this authgate does not know) is left out, and said so in the
    /// log.
    pub(crate) async fn reload(&self) -> Result<usize, DbError> {
        let rows = self.db.clients().await?;
        let clients: HashMap<String, Arc<Client>> = rows
            .into_iter()
            .filter_map(|row| match client_config(&row) {
                Ok(entry) => Some((row.client_id, Arc::new(Client::from_entry(entry)))),
                Err(problem) => {
                    tracing::warn!(
                        client_id = row.client_id,
                        problem,
                        "a database client cannot work: left out"
                    );
                    None
                }
            })
            .collect();
        let count = clients.len();
        self.loaded.store(Arc::new(clients));
        Ok(count)
    }
}

/// The client a row describes, checked by the rules of `[[clients]]`; or
/// why it cannot be one.
pub(crate) fn client_config(row: &DbClient) -> Result<ClientConfig, String> {
    let id = &row.client_id;
    let uris = |list: &[String], problem: fn(&str) -> Option<String>| list.iter().find_map(|u| problem(u));
    let problem = client_id_problem(id)
        .or_else(|| uris(&row.redirect_uris, redirect_uri_problem))
        .or_else(|| row.scopes.iter().flatten().find_map(|s| scope_problem(s)))
        .or_else(|| uris(&row.cors_origins, cors_origin_problem))
        .or_else(|| uris(&row.post_logout_redirect_uris, redirect_uri_problem))
        .or_else(|| {
            row.backchannel_logout_uri
                .as_deref()
                .and_then(backchannel_uri_problem)
        })
        .or_else(|| uris(&row.resources, resource_problem));
    if let Some(problem) = problem {
        return Err(problem);
    }
    let grants: Vec<Grant> = row
        .grants
        .iter()
        .map(|name| {
            Grant::named(name).ok_or_else(|| {
                let known: Vec<&str> = Grant::ALL.iter().map(|g| g.as_str()).collect();
                format!("{name:?} is not a grant: the grants are {}", known.join(", "))
            })
        })
        .collect::<Result<_, _>>()?;
    let id_token_alg = row
        .id_token_alg
        .as_deref()
        .map_or(Ok(SigningAlg::RS256), id_token_alg)?;
    let jwt_access_tokens = row
        .access_token_format
        .as_deref()
        .map_or(Ok(false), jwt_access_tokens)?;
    let pairwise_sector = match row.subject_type.as_deref() {
        Some(kind) => pairwise_sector(kind, &row.redirect_uris)?,
        None => None,
    };
    let confidential = row.secret_hash.is_some();
    if let Some(problem) = grants_problem(id, &grants, confidential, row.redirect_uris.len()) {
        return Err(problem);
    }
    Ok(ClientConfig {
        client_id: id.clone(),
        client_secret_hash: row.secret_hash.clone(),
        redirect_uris: row.redirect_uris.clone(),
        grants,
        scopes: row.scopes.clone(),
        allow_plain_pkce: false,
        cors_origins: row.cors_origins.clone(),
        post_logout_redirect_uris: row.post_logout_redirect_uris.clone(),
        backchannel_logout_uri: row.backchannel_logout_uri.clone(),
        id_token_alg,
        jwt_access_tokens,
        resources: row.resources.clone(),
        pairwise_sector,
        span: 0..0,
    })
}

/// What a new client of the database is asked to be.
#[derive(Debug, Default)]
pub(crate) struct ClientRequest {
    /// Absent: a random one.
    pub(crate) client_id: Option<String>,
    pub(crate) confidential: bool,
    pub(crate) redirect_uris: Vec<String>,
    /// Absent: every grant it can use (a redirecting one only with a
    /// redirect URI).
    pub(crate) grants: Option<Vec<String>>,
    /// Absent: any scope.
    pub(crate) scopes: Option<Vec<String>>,
    pub(crate) cors_origins: Vec<String>,
    pub(crate) post_logout_redirect_uris: Vec<String>,
    pub(crate) backchannel_logout_uri: Option<String>,
    pub(crate) id_token_alg: Option<String>,
    pub(crate) access_token_format: Option<String>,
    pub(crate) resources: Vec<String>,
    pub(crate) subject_type: Option<String>,
}

impl ClientRequest {
    /// The row to write and its secret in clear (to show once), checked
    /// by the rules of `[[clients]]`; or why it cannot be.
    pub(crate) fn into_row(self) -> Result<(DbClient, Option<String>), String> {
        let redirects = !self.redirect_uris.is_empty();
        let grants = self.grants.unwrap_or_else(|| {
            default_grants(self.confidential)
                .into_iter()
                .filter(|g| redirects || !matches!(g, Grant::AuthorizationCode | Grant::Implicit))
                .map(|g| g.as_str().to_owned())
                .collect()
        });
        let secret = self.confidential.then(new_client_secret);
        let mut row = DbClient {
            client_id: self
                .client_id
                .unwrap_or_else(|| new_client_secret()[..22].to_owned()),
            // Checked with a stand-in: argon2 is paid only for a client
            // that passes.
            secret_hash: secret.as_ref().map(|_| String::new()),
            redirect_uris: self.redirect_uris,
            grants,
            scopes: self.scopes,
            cors_origins: self.cors_origins,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            backchannel_logout_uri: self.backchannel_logout_uri,
            id_token_alg: self.id_token_alg,
            access_token_format: self.access_token_format,
            resources: self.resources,
            subject_type: self.subject_type,
            created_at: 0,
            updated_at: 0,
        };
        client_config(&row)?;
        row.secret_hash = secret.as_deref().map(crate::password::hash_password);
        Ok((row, secret))
    }
}

/// A new client secret: 256 random bits, base64url (shown once; only its
/// argon2id hash is kept).
pub(crate) fn new_client_secret() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
