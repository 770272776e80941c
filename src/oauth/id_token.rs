//! OpenID Connect's ID token: who signed in, for which client, signed
//! with the gateway's current key, issued at the token endpoint beside
//! the access token of a grant whose scope has `openid`.

use base64::Engine;
use sha2::{Digest, Sha256, Sha512};

use crate::auth::state::AuthState;
use crate::signing::SigningAlg;
use crate::store::{unix_now, Session, Token};

use super::error::OAuthError;

/// The longest an ID token lives (an access token may live longer).
const ID_TOKEN_TTL_SECS: u64 = 3600;

/// Whether the session's scope asks for OpenID Connect.
pub(super) fn asks_openid(session: &Session) -> bool {
    session
        .scope()
        .is_some_and(|s| s.split(' ').any(|s| s == "openid"))
}

/// OpenID Connect's `at_hash`: the left half of the access token's hash,
/// by the hash of the signing algorithm (SHA-256; SHA-512 for Ed25519).
fn at_hash(alg: SigningAlg, access: &Token) -> String {
    let token = access.as_str().as_bytes();
    let digest: Vec<u8> = match alg {
        SigningAlg::RS256 | SigningAlg::ES256 => Sha256::digest(token).to_vec(),
        SigningAlg::EdDSA => Sha512::digest(token).to_vec(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

/// The ID token for `session` (an access token just issued through a
/// client, with `openid` in its scope; `access`, the token itself where
/// the client is given it, for `at_hash`), or `None` if it asks for none.
pub(super) fn for_session(
    state: &AuthState,
    session: &Session,
    access: Option<&Token>,
    nonce: Option<&str>,
) -> Result<Option<String>, OAuthError> {
    let Some(client_id) = session.client_id() else {
        return Ok(None);
    };
    if !asks_openid(session) || client_id == session.username() {
        return Ok(None);
    }
    let client = state.directory.client(client_id);
    let alg = client
        .as_ref()
        .map_or(SigningAlg::RS256, |c| c.entry().id_token_alg);
    let now = unix_now();
    let scopes = session.scope().unwrap_or("").split(' ');
    let mut claims = session.identity().openid_claims(scopes);
    let mut put = |name: &str, value: serde_json::Value| {
        claims.insert(name.to_owned(), value);
    };
    put(
        "sub",
        state.subject_for(client.as_deref(), session.username()).into(),
    );
    put("iss", state.issuer().into());
    put("aud", client_id.into());
    put("iat", now.into());
    put(
        "exp",
        now.saturating_add(ID_TOKEN_TTL_SECS)
            .min(session.expires_at().max(now + 60))
            .into(),
    );
    let auth_time = session
        .origin()
        .map_or(session.issued_at(), |o| o.signed_in_at)
        .max(1);
    put("auth_time", auth_time.into());
    if let Some(access) = access {
        put("at_hash", at_hash(alg, access).into());
    }
    if let Some(nonce) = nonce {
        put("nonce", nonce.into());
    }
    if let Some(sid) = session.sid() {
        put("sid", sid.into());
    }
    // How the person signed in: the methods given here (a password this
    // gateway checked, a code, a key), and the provider named by `idp`
    // for a sign-in there.
    let methods = session.methods();
    put("acr", methods.level().into());
    if !methods.is_empty() {
        put("amr", serde_json::json!(methods.names()));
    }
    if let Some(provider) = session
        .identity()
        .provider()
        .filter(|p| state.directory.outside_provider(p).is_some())
    {
        put("idp", provider.into());
    }
    state.keys.sign(alg, "JWT", &claims).map(Some).map_err(|err| {
        tracing::error!(error = %err, "could not sign an ID token");
        OAuthError::temporarily_unavailable("The ID token could not be signed; try again in a moment.")
    })
}
