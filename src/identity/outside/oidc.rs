//! An OpenID Connect provider (`kind = "oidc"`), with the `openidconnect`
//! crate: discovery, the authorization code flow with PKCE S256 and a
//! nonce, the ID token's signature and claims, userinfo, and back-channel
//! logout tokens.
//!
//! What the crate checks of an ID token: the signature against the
//! provider's keys, with only the asymmetric algorithms allowed (never
//! `none`, never an HMAC, so a public key can never be used as a shared
//! secret), `iss`, `aud` (no audience but ours unless `azp` is ours),
//! `exp`, `nonce`, and `at_hash` here after it. Discovery and the keys are
//! cached; an unknown `kid` fetches the keys once more before refusing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClaimName, CoreClaimType,
    CoreClientAuthMethod, CoreErrorResponseType, CoreGenderClaim, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm,
    CoreResponseMode, CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreSubjectIdentifierType, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AdditionalClaims, AdditionalProviderMetadata, AuthType, AuthorizationCode,
    ClaimsVerificationError, Client, ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields, EndSessionUrl,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl, JsonWebKey, JsonWebKeySet,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadata, RedirectUrl, Scope,
    SignatureVerificationError, StandardErrorResponse, StandardTokenResponse, SubjectIdentifier,
    TokenResponse, UserInfoClaims,
};
use openidconnect::{RefreshToken, RequestTokenError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::config::{OidcConfig, ProviderConfig};
use crate::store::ProviderTokens;

use super::claims::{self, Claims};
use super::http::ProviderHttp;
use super::{error_chain, Authorization, OutsideError, OutsideIdentity};

/// How long discovery is trusted before it is fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// After discovery fails, how long until it is tried again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);
/// Keys are fetched again for an unknown `kid` at most this often.
const KEY_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// How far the provider's clock may be from ours.
const CLOCK_SKEW_SECS: i64 = 60;

/// The signature algorithms an ID token may use: asymmetric ones only.
const ALGORITHMS: [CoreJwsSigningAlgorithm; 10] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EcdsaP521Sha512,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// Every claim, beside those the crate knows by name.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(crate) struct OtherClaims {
    #[serde(flatten)]
    other: serde_json::Map<String, Value>,
}

impl AdditionalClaims for OtherClaims {}

/// Discovery's fields beyond OpenID Connect Discovery 1.0's.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(crate) struct MoreMetadata {
    /// RP-Initiated Logout 1.0.
    end_session_endpoint: Option<EndSessionUrl>,
    /// RFC 9207: the provider sends `iss` with every authorization
    /// response.
    authorization_response_iss_parameter_supported: Option<bool>,
}

impl AdditionalProviderMetadata for MoreMetadata {}

type Metadata = ProviderMetadata<
    MoreMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

type IdFields = IdTokenFields<
    OtherClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

type Rp = Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    StandardTokenResponse<IdFields, CoreTokenType>,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What discovery said, and when.
struct Discovered {
    metadata: Arc<Metadata>,
    fetched: Instant,
    /// When the keys were last fetched again for an unknown `kid`.
    keys_refetched: Option<Instant>,
}

/// One OpenID Connect provider.
pub(crate) struct OidcProvider {
    provider: ProviderConfig,
    config: OidcConfig,
    http: ProviderHttp,
    discovered: Mutex<Option<Discovered>>,
    /// When discovery last failed, and why: for [`RETRY_AFTER_FAILURE`]
    /// no one waits for another try.
    failed: std::sync::Mutex<Option<(Instant, String)>>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("id", &self.provider.id)
            .finish()
    }
}

impl OidcProvider {
    pub(crate) fn new(provider: &ProviderConfig, config: &OidcConfig) -> Result<Self, String> {
        Ok(Self {
            provider: provider.clone(),
            http: ProviderHttp::new(config.timeout, config.ca_file.as_deref())?,
            config: config.clone(),
            discovered: Mutex::new(None),
            failed: std::sync::Mutex::new(None),
        })
    }

    /// The provider's metadata and keys: cached, fetched when older than
    /// [`DISCOVERY_TTL`]; a provider that cannot be reached is answered
    /// from the last copy, if there is one.
    async fn metadata(&self) -> Result<Arc<Metadata>, OutsideError> {
        let mut slot = self.discovered.lock().await;
        if let Some(found) = slot.as_ref().filter(|d| d.fetched.elapsed() < DISCOVERY_TTL) {
            return Ok(found.metadata.clone());
        }
        // Failed just now (those who waited for that try among them): the
        // last copy, or the failure, at once.
        let recent = self
            .failed
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .filter(|(at, _)| at.elapsed() < RETRY_AFTER_FAILURE);
        if let Some((_, reason)) = recent {
            return match slot.as_ref() {
                Some(stale) => Ok(stale.metadata.clone()),
                None => Err(OutsideError::Unreachable(reason)),
            };
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone())
            .map_err(|e| OutsideError::Unreachable(format!("issuer: {e}")))?;
        let discovered = Metadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| error_chain(&e))
            .and_then(
                |metadata| match insecure_endpoint(&self.config.issuer, &metadata) {
                    Some(endpoint) => Err(format!(
                        "discovery names {endpoint}, which is not https for an https issuer"
                    )),
                    None => Ok(metadata),
                },
            );
        match discovered {
            Ok(metadata) => {
                if let Ok(mut failed) = self.failed.lock() {
                    *failed = None;
                }
                let metadata = Arc::new(metadata);
                *slot = Some(Discovered {
                    metadata: metadata.clone(),
                    fetched: Instant::now(),
                    keys_refetched: None,
                });
                Ok(metadata)
            }
            Err(reason) => {
                tracing::warn!(provider = %self.provider.id, error = %reason, "OpenID Connect discovery failed");
                if let Ok(mut failed) = self.failed.lock() {
                    *failed = Some((Instant::now(), reason.clone()));
                }
                match slot.as_ref() {
                    Some(stale) => Ok(stale.metadata.clone()),
                    None => Err(OutsideError::Unreachable(reason)),
                }
            }
        }
    }

    /// Fetches the keys again (an ID token named a `kid` they lack), at
    /// most once per [`KEY_REFETCH_INTERVAL`]; answers whether they changed.
    async fn refetch_keys(&self) -> Result<bool, OutsideError> {
        let mut slot = self.discovered.lock().await;
        let Some(found) = slot.as_mut() else {
            return Ok(false);
        };
        if found
            .keys_refetched
            .is_some_and(|at| at.elapsed() < KEY_REFETCH_INTERVAL)
        {
            return Ok(false);
        }
        found.keys_refetched = Some(Instant::now());
        let keys = JsonWebKeySet::fetch_async(found.metadata.jwks_uri(), &self.http)
            .await
            .map_err(|e| OutsideError::Unreachable(error_chain(&e)))?;
        let changed = keys.keys() != found.metadata.jwks().keys();
        let mut metadata = (*found.metadata).clone();
        metadata = metadata.set_jwks(keys);
        found.metadata = Arc::new(metadata);
        Ok(changed)
    }

    fn client(&self, metadata: &Metadata, redirect_uri: &str) -> Result<Rp, OutsideError> {
        let secret = self
            .config
            .client_secret
            .as_ref()
            .map(|s| ClientSecret::new(s.expose().to_owned()));
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|e| OutsideError::Invalid(format!("redirect URI: {e}")))?;
        let mut client = Rp::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.config.client_id.clone()),
            secret,
        )
        .set_redirect_uri(redirect);
        // client_secret_basic unless the provider only takes the secret in
        // the form.
        let methods = metadata.token_endpoint_auth_methods_supported();
        let basic = methods.is_none_or(|m| m.contains(&CoreClientAuthMethod::ClientSecretBasic));
        if !basic && methods.is_some_and(|m| m.contains(&CoreClientAuthMethod::ClientSecretPost)) {
            client = client.set_auth_type(AuthType::RequestBody);
        }
        Ok(client)
    }

    /// Where to send the browser: the provider's authorization endpoint
    /// with a fresh `state`, `nonce` and PKCE challenge.
    pub(crate) async fn start(&self, redirect_uri: &str) -> Result<Authorization, OutsideError> {
        let metadata = self.metadata().await?;
        let client = self.client(&metadata, redirect_uri)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in self.config.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(Authorization {
            url,
            state: state.secret().clone(),
            nonce: Some(nonce.secret().clone()),
            verifier: verifier.secret().clone(),
        })
    }

    /// RFC 9207: the `iss` of the authorization response, where the
    /// provider sends one (or says it always does), must be its issuer.
    pub(crate) async fn check_response_issuer(&self, iss: Option<&str>) -> Result<(), OutsideError> {
        let metadata = self.metadata().await?;
        let promised = metadata
            .additional_metadata()
            .authorization_response_iss_parameter_supported
            == Some(true);
        match iss {
            Some(iss) if iss == self.config.issuer => Ok(()),
            Some(iss) => Err(OutsideError::Invalid(format!(
                "the answer came with iss={iss:?}, not this provider's issuer (a mix-up attack?)"
            ))),
            None if promised => Err(OutsideError::Invalid(
                "the provider promised an iss parameter and sent none".into(),
            )),
            None => Ok(()),
        }
    }

    /// Redeems the code and checks the ID token: who signed in.
    pub(crate) async fn finish(
        &self,
        redirect_uri: &str,
        code: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<OutsideIdentity, OutsideError> {
        let metadata = self.metadata().await?;
        let client = self.client(&metadata, redirect_uri)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OutsideError::Unreachable(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| OutsideError::Refused(format!("the token request failed: {}", error_chain(&e))))?;
        let id_token = response
            .id_token()
            .ok_or_else(|| OutsideError::Invalid("the provider sent no ID token".into()))?;
        let nonce = Nonce::new(nonce.to_owned());
        let access_token = response.access_token();
        let mut all = match self.verified(&client, id_token, &nonce, access_token) {
            Err(Unverified::NoKey) => {
                // A key rotated since the keys were fetched: fetch them once
                // more, then decide.
                self.refetch_keys().await?;
                let client = self.client(&*self.metadata().await?, redirect_uri)?;
                self.verified(&client, id_token, &nonce, access_token)
            }
            other => other,
        }
        .map_err(Unverified::into_error)?;
        if let Some(missing) = self.missing_claims(&all) {
            tracing::debug!(provider = %self.provider.id, missing, "fetching userinfo");
            let subject = all
                .lookup("sub")
                .and_then(Value::as_str)
                .map(|s| SubjectIdentifier::new(s.to_owned()));
            if let Ok(request) = client.user_info(access_token.clone(), subject) {
                let info: UserInfoClaims<OtherClaims, CoreGenderClaim> = request
                    .request_async(&self.http)
                    .await
                    .map_err(|e| OutsideError::Invalid(format!("userinfo: {}", error_chain(&e))))?;
                all.merge_missing(serde_json::to_value(&info).unwrap_or(Value::Null));
            }
        }
        let mut person = claims::identity(
            &all,
            self.config.username_claim.as_deref(),
            self.config.groups_claim.as_deref(),
        )?;
        person.tokens = Some(ProviderTokens::issued(
            access_token.secret(),
            response.refresh_token().map(|t| t.secret().as_str()),
            Some(&id_token.to_string()),
            response.expires_in().map(|d| d.as_secs()),
        ));
        Ok(person)
    }

    /// The ID token's claims, verified (with `at_hash` against the access
    /// token, where the token has one).
    fn verified(
        &self,
        client: &Rp,
        id_token: &IdToken,
        nonce: &Nonce,
        access_token: &AccessToken,
    ) -> Result<Claims, Unverified> {
        let now = chrono::Utc::now();
        let skew = chrono::Duration::seconds(CLOCK_SKEW_SECS);
        let verifier = client
            .id_token_verifier()
            .set_allowed_algs(ALGORITHMS)
            .set_time_fn(move || now - skew)
            .set_issue_time_verifier_fn(move |iat| match iat > now + skew {
                true => Err("the ID token was issued in the future".to_owned()),
                false => Ok(()),
            });
        let claims = id_token.claims(&verifier, nonce).map_err(|err| match err {
            ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey) => {
                Unverified::NoKey
            }
            err => Unverified::Invalid(format!("the ID token is not valid: {}", error_chain(&err))),
        })?;
        if let Some(expected) = claims.access_token_hash() {
            let invalid = |e: &dyn std::fmt::Display| Unverified::Invalid(format!("at_hash: {e}"));
            let alg = id_token.signing_alg().map_err(|e| invalid(&e))?;
            let key = id_token.signing_key(&verifier).map_err(|e| invalid(&e))?;
            let actual = AccessTokenHash::from_token(access_token, alg, key).map_err(|e| invalid(&e))?;
            if actual != *expected {
                return Err(Unverified::Invalid(
                    "the access token is not the one the ID token was issued with (at_hash)".into(),
                ));
            }
        }
        Ok(Claims::from_value(
            serde_json::to_value(claims).unwrap_or(Value::Null),
        ))
    }

    /// Checks a back-channel logout token (OpenID Connect Back-Channel
    /// Logout 1.0 §2.6): signed by one of the provider's keys (fetched once
    /// more for an unknown `kid`), with an asymmetric algorithm; `iss` this
    /// provider, `aud` this client, `iat` not in the future, `exp` (if
    /// any) not past, a `jti`, the back-channel logout event, `sub` or
    /// `sid`, and no `nonce`. `typ`, if sent, is `logout+jwt` (or
    /// `application/logout+jwt`).
    pub(crate) async fn logout_claims(&self, token: &str) -> Result<LogoutClaims, OutsideError> {
        let invalid = |why: &str| OutsideError::Invalid(format!("the logout token {why}"));
        let parts: Vec<&str> = token.split('.').collect();
        let [header, payload, signature] = parts[..] else {
            return Err(invalid("is not a signed JWT"));
        };
        let decode =
            |part: &str| base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, part);
        let header: Value = decode(header)
            .ok()
            .and_then(|h| serde_json::from_slice(&h).ok())
            .ok_or_else(|| invalid("has no readable header"))?;
        let alg: CoreJwsSigningAlgorithm =
            serde_json::from_value(header["alg"].clone()).map_err(|_| invalid("names no algorithm"))?;
        if !ALGORITHMS.contains(&alg) {
            return Err(invalid(&format!(
                "is signed with {:?}, which is not accepted",
                header["alg"]
            )));
        }
        let typed = |t: &str| {
            t.eq_ignore_ascii_case("logout+jwt") || t.eq_ignore_ascii_case("application/logout+jwt")
        };
        if header.get("typ").is_some_and(|t| !t.as_str().is_some_and(typed)) {
            return Err(invalid("is not typed logout+jwt"));
        }
        let signature = decode(signature).map_err(|_| invalid("has an unreadable signature"))?;
        let signed = &token.as_bytes()[..header_payload_len(token)];
        let kid = header["kid"].as_str();
        let verified = |metadata: &Metadata| {
            metadata
                .jwks()
                .keys()
                .iter()
                .filter(|key| kid.is_none_or(|kid| key.key_id().is_some_and(|k| **k == *kid)))
                .any(|key| key.verify_signature(&alg, signed, &signature).is_ok())
        };
        let signed_by_provider = verified(&*self.metadata().await?)
            || (self.refetch_keys().await? && verified(&*self.metadata().await?));
        if !signed_by_provider {
            return Err(invalid("is not signed by this provider"));
        }
        let claims: Value = decode(payload)
            .ok()
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or_else(|| invalid("has no readable claims"))?;
        if claims["iss"].as_str() != Some(self.config.issuer.as_str()) {
            return Err(invalid("is from another issuer"));
        }
        let client = self.config.client_id.as_str();
        let for_us = match &claims["aud"] {
            Value::String(aud) => aud == client,
            Value::Array(auds) => auds.iter().any(|a| a.as_str() == Some(client)),
            _ => false,
        };
        if !for_us {
            return Err(invalid("is for another audience"));
        }
        let now = chrono::Utc::now().timestamp();
        match claims["iat"].as_i64() {
            Some(iat) if iat <= now + CLOCK_SKEW_SECS && iat >= now - LOGOUT_TOKEN_MAX_AGE_SECS => {}
            Some(_) => return Err(invalid("was not issued just now (iat)")),
            None => return Err(invalid("has no iat")),
        }
        if claims["exp"]
            .as_i64()
            .is_some_and(|exp| exp + CLOCK_SKEW_SECS < now)
        {
            return Err(invalid("has expired"));
        }
        if claims["events"]
            .get(BACKCHANNEL_LOGOUT_EVENT)
            .is_none_or(|e| !e.is_object())
        {
            return Err(invalid("carries no back-channel logout event"));
        }
        if claims.get("nonce").is_some() {
            return Err(invalid(
                "carries a nonce, which an ID token has and a logout token must not",
            ));
        }
        let text = |name: &str| claims[name].as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        let jti = text("jti").ok_or_else(|| invalid("has no jti"))?;
        let (sub, sid) = (text("sub"), text("sid"));
        if sub.is_none() && sid.is_none() {
            return Err(invalid("names neither sub nor sid"));
        }
        Ok(LogoutClaims { jti, sub, sid })
    }

    /// New tokens for `tokens`' refresh token. [`OutsideError::Refused`]
    /// when the provider refuses it: the sign-in is over.
    pub(crate) async fn refresh(&self, tokens: &ProviderTokens) -> Result<ProviderTokens, OutsideError> {
        let Some(refresh_token) = tokens.refresh_token.as_deref() else {
            return Err(OutsideError::Refused("no refresh token".into()));
        };
        let metadata = self.metadata().await?;
        // A refresh names no redirect URI; the client wants one all the same.
        let client = self.client(&metadata, &self.config.issuer)?;
        let response = client
            .exchange_refresh_token(&RefreshToken::new(refresh_token.to_owned()))
            .map_err(|e| OutsideError::Unreachable(e.to_string()))?
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(refused) => OutsideError::Refused(refused.to_string()),
                other => OutsideError::Unreachable(error_chain(&other)),
            })?;
        Ok(ProviderTokens::issued(
            response.access_token().secret(),
            response
                .refresh_token()
                .map(|t| t.secret().as_str())
                .or(Some(refresh_token)),
            response
                .id_token()
                .map(|t| t.to_string())
                .as_deref()
                .or(tokens.id_token.as_deref()),
            response.expires_in().map(|d| d.as_secs()),
        ))
    }

    /// Where to send the browser to sign out at the provider too
    /// (RP-Initiated Logout 1.0), if the config asks for it and the
    /// provider has an end-session endpoint.
    pub(crate) async fn end_session_url(
        &self,
        tokens: Option<&ProviderTokens>,
        post_logout: &str,
    ) -> Option<url::Url> {
        if !self.config.logout_at_provider {
            return None;
        }
        let metadata = self.metadata().await.ok()?;
        let mut url = metadata
            .additional_metadata()
            .end_session_endpoint
            .as_ref()?
            .url()
            .clone();
        {
            let mut query = url.query_pairs_mut();
            if let Some(hint) = tokens.and_then(|t| t.id_token.as_deref()) {
                query.append_pair("id_token_hint", hint);
            }
            query.append_pair("client_id", &self.config.client_id);
            query.append_pair("post_logout_redirect_uri", post_logout);
        }
        Some(url)
    }

    /// The claims the identity needs that `claims` lacks, named; `None` if
    /// it has them all.
    fn missing_claims(&self, claims: &Claims) -> Option<&'static str> {
        if claims
            .lookup(self.config.username_claim.as_deref().unwrap_or("email"))
            .is_none()
        {
            return Some("username");
        }
        if let Some(path) = &self.config.groups_claim {
            if claims.lookup(path).is_none() {
                return Some("groups");
            }
        }
        None
    }
}

/// An endpoint of an https issuer's metadata that is not https (someone
/// on the network could answer there in the provider's name).
fn insecure_endpoint(issuer: &str, metadata: &Metadata) -> Option<String> {
    if !issuer.starts_with("https://") {
        return None;
    }
    let endpoints = [
        Some(metadata.authorization_endpoint().url()),
        metadata.token_endpoint().map(|u| u.url()),
        metadata.userinfo_endpoint().map(|u| u.url()),
        Some(metadata.jwks_uri().url()),
        metadata
            .additional_metadata()
            .end_session_endpoint
            .as_ref()
            .map(|u| u.url()),
    ];
    endpoints
        .into_iter()
        .flatten()
        .find(|url| url.scheme() != "https")
        .map(|url| url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(token_endpoint: &str) -> Metadata {
        serde_json::from_value(serde_json::json!({
            "issuer": "https://idp.example",
            "authorization_endpoint": "https://idp.example/auth",
            "token_endpoint": token_endpoint,
            "jwks_uri": "https://idp.example/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"]
        }))
        .unwrap()
    }

    #[test]
    fn an_https_issuer_names_https_endpoints_only() {
        assert_eq!(
            insecure_endpoint("https://idp.example", &metadata("https://idp.example/token")),
            None
        );
        assert_eq!(
            insecure_endpoint("https://idp.example", &metadata("http://idp.example/token")).as_deref(),
            Some("http://idp.example/token")
        );
        assert_eq!(
            insecure_endpoint("http://127.0.0.1:9000", &metadata("http://127.0.0.1:9000/token")),
            None,
            "a test provider on loopback"
        );
    }
}

/// The event a logout token must carry.
const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How old a logout token may be.
const LOGOUT_TOKEN_MAX_AGE_SECS: i64 = 600;

/// What a valid logout token says: whose sessions end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogoutClaims {
    pub(crate) jti: String,
    pub(crate) sub: Option<String>,
    pub(crate) sid: Option<String>,
}

/// The length of a JWS's signing input (`header.payload`).
fn header_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

/// Why an ID token was not accepted.
enum Unverified {
    /// No published key has its `kid`: worth fetching the keys again.
    NoKey,
    Invalid(String),
}

impl Unverified {
    fn into_error(self) -> OutsideError {
        match self {
            Unverified::NoKey => OutsideError::Invalid(
                "the ID token is signed with a key the provider does not publish".into(),
            ),
            Unverified::Invalid(reason) => OutsideError::Invalid(reason),
        }
    }
}

type IdToken = openidconnect::IdToken<
    OtherClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
