//! Client authentication at the token, revocation and introspection
//! endpoints (RFC 6749 §2.3): HTTP Basic or `client_id`/`client_secret` in
//! the body, never both.
//!
//! RFC 6749 §2.3.1 has a client form-encode its id and secret before it
//! puts them in HTTP Basic; requests-oauthlib and authlib do not, so a
//! secret holding `+` or `%` reaches the gateway changed by decoding. When
//! the decoded credentials fail and the raw ones differ from them, the raw
//! ones are checked too: those clients work unchanged, and a wrong secret
//! is still refused, pays the full hash and counts once against the
//! throttle.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::header::{self, HeaderMap};
use http::request::Parts;
use percent_encoding::percent_decode_str;
use zeroize::Zeroizing;

use crate::auth::state::AuthState;
use crate::auth::throttle::Subject;
use crate::identity::Client;
use crate::web::request::Params;

use super::error::OAuthError;

/// Who is calling.
pub(crate) enum Caller {
    /// No client identified itself.
    Anonymous,
    /// A public client, identified by `client_id` alone.
    Public(Arc<Client>),
    /// A confidential client whose secret was verified.
    Confidential(Arc<Client>),
}

impl Caller {
    pub(crate) fn client(&self) -> Option<&Arc<Client>> {
        match self {
            Caller::Anonymous => None,
            Caller::Public(client) | Caller::Confidential(client) => Some(client),
        }
    }
}

/// Identifies and authenticates the calling client.
pub(crate) async fn authenticate(
    state: &AuthState,
    parts: &Parts,
    params: &Params,
) -> Result<Caller, OAuthError> {
    let headers = &parts.headers;
    let body_id = params.one("client_id")?;
    let body_secret = params.one("client_secret")?;
    let basic = basic_credentials(headers)?;
    let (client_id, secret, raw) = match (basic, body_id, body_secret) {
        (Some(_), _, Some(_)) => {
            return Err(OAuthError::invalid_request(
                "Use one client authentication method: HTTP Basic or client_secret in the body, not both.",
            ))
        }
        (Some(basic), Some(body_id), None) if basic.id != body_id && basic.raw_id != body_id => {
            return Err(OAuthError::invalid_request(
                "client_id in the body differs from the one in the Authorization header.",
            ))
        }
        (Some(basic), _, None) => {
            let known = |id: &str| state.directory.client(id).is_some();
            // The id as sent, if only that one names a client.
            let id = match !known(&basic.id) && known(&basic.raw_id) {
                true => basic.raw_id.clone(),
                false => basic.id.clone(),
            };
            let raw = (basic.raw_secret != basic.secret).then_some(basic.raw_secret);
            (id, Some(basic.secret), raw)
        }
        (None, Some(id), secret) => (id.to_owned(), secret.map(|s| Zeroizing::new(s.to_owned())), None),
        (None, None, Some(_)) => return Err(OAuthError::invalid_request("client_secret needs a client_id.")),
        (None, None, None) => return Ok(Caller::Anonymous),
    };
    let Some(client) = state.directory.client(&client_id) else {
        return Err(OAuthError::invalid_client("Unknown client."));
    };
    match (client.is_confidential(), secret) {
        (false, None) => Ok(Caller::Public(client)),
        (false, Some(_)) => Err(OAuthError::invalid_client(
            "This client is public: it has no secret to send.",
        )),
        (true, None) => Err(OAuthError::invalid_client(
            "This client must authenticate with its secret.",
        )),
        (true, Some(secret)) => {
            let mut subjects = vec![Subject::Client(client.id().to_owned())];
            subjects.extend(state.client_ip(&parts.extensions, headers).map(Subject::Address));
            state
                .throttle
                .check(&state.config.auth.throttle, &subjects)
                .await
                .map_err(OAuthError::throttled)?;
            let verified = state.directory.verify_client_secret(&client, &secret).await
                || match &raw {
                    Some(raw) => state.directory.verify_client_secret(&client, raw).await,
                    None => false,
                };
            if verified {
                Ok(Caller::Confidential(client))
            } else {
                tracing::info!(client_id = %client.id(), "client authentication failed");
                state
                    .throttle
                    .record_failure(&state.config.auth.throttle, &subjects)
                    .await;
                Err(OAuthError::invalid_client("Client authentication failed."))
            }
        }
    }
}

/// The client id and secret of an `Authorization: Basic` header:
/// form-decoded as RFC 6749 §2.3.1 says, and as sent.
struct Basic {
    id: String,
    secret: Zeroizing<String>,
    raw_id: String,
    raw_secret: Zeroizing<String>,
}

/// The credentials of an `Authorization: Basic` header. Every copy of the
/// secret made here is wiped when dropped.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<Basic>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError::invalid_client("The Authorization header is not valid HTTP Basic credentials.");
    let text = value.to_str().map_err(|_| bad())?;
    let Some((scheme, encoded)) = text.split_once(' ') else {
        return Err(bad());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = Zeroizing::new(STANDARD.decode(encoded.trim()).map_err(|_| bad())?);
    let decoded = std::str::from_utf8(&decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    Ok(Some(Basic {
        id: form_unescape(id).to_string(),
        secret: form_unescape(secret),
        raw_id: id.to_owned(),
        raw_secret: Zeroizing::new(secret.to_owned()),
    }))
}

/// `text` with form-urlencoding undone (`+` is a space, `%XX` a byte); one
/// copy, wiped when dropped, and only one when nothing is encoded.
fn form_unescape(text: &str) -> Zeroizing<String> {
    if !text.contains(['+', '%']) {
        return Zeroizing::new(text.to_owned());
    }
    let spaced = Zeroizing::new(text.replace('+', " "));
    Zeroizing::new(percent_decode_str(&spaced).decode_utf8_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_pass: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(user_pass));
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn basic_credentials_are_form_unescaped_as_rfc_6749_says() {
        let plain = basic_credentials(&basic("app:s3cret")).unwrap().unwrap();
        assert_eq!((plain.id.as_str(), plain.secret.as_str()), ("app", "s3cret"));
        let encoded = basic_credentials(&basic("my+app:a%3Ab+c%25")).unwrap().unwrap();
        assert_eq!(
            (encoded.id.as_str(), encoded.secret.as_str()),
            ("my app", "a:b c%")
        );
        assert_eq!(
            (encoded.raw_id.as_str(), encoded.raw_secret.as_str()),
            ("my+app", "a%3Ab+c%25")
        );
        assert!(basic_credentials(&basic("no-colon")).is_err());
        assert!(basic_credentials(&HeaderMap::new()).unwrap().is_none());
    }
}
