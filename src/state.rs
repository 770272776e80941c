//! What the layer's services share: the configuration, the directory, the
//! token store and the pages.

use std::sync::Arc;

use crate::config::Config;
use crate::directory::{Directory, User};
use crate::error::Error;
use crate::pages::Pages;
use crate::store::{Session, StoreError, Token, TokenStore};

pub(crate) struct AuthState {
    pub(crate) config: Config,
    pub(crate) directory: Directory,
    pub(crate) store: Arc<dyn TokenStore>,
    pub(crate) pages: Pages,
}

impl AuthState {
    pub(crate) fn new(config: Config, store: Arc<dyn TokenStore>) -> Result<Self, Error> {
        Ok(Self {
            directory: Directory::from_config(&config),
            pages: Pages::load(config.templates_dir.as_deref())?,
            config,
            store,
        })
    }

    /// The issuer identifier (RFC 8414): `server.public_url`, or the
    /// listen address.
    pub(crate) fn issuer(&self) -> String {
        match &self.config.public_url {
            Some(url) => url.as_str().trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.config.listen),
        }
    }

    /// Issues a fresh token for `user` and keeps its session.
    pub(crate) async fn issue(
        &self,
        user: &User,
        client_id: Option<&str>,
        scope: Option<&str>,
    ) -> Result<(Token, Session), StoreError> {
        let token = Token::generate();
        let mut session =
            Session::new(&user.username, user.email.as_deref(), self.config.token_ttl_secs).with_scope(scope);
        if let Some(client_id) = client_id {
            session = session.for_client(client_id);
        }
        self.store.insert(token.key(), session.clone()).await?;
        Ok((token, session))
    }
}
