//! Discovery: the metadata (RFC 8414 and OpenID Connect Discovery, one
//! document) and the signing keys (JWKS).

use http::{Response, StatusCode};
use serde_json::json;

use crate::auth::state::AuthState;
use crate::web::response::{self, OwnBody};

use super::{AUTHORIZE_PATH, INTROSPECT_PATH, JWKS_PATH, REVOKE_PATH, TOKEN_PATH, USERINFO_PATH};

/// `/.well-known/jwks.json`: the public keys ID tokens and JWTs are
/// signed with, cached by clients for five minutes, so a key made by a
/// rotation is fetched within that (and a relying party meeting an
/// unknown `kid` fetches again at once).
pub(super) fn jwks(state: &AuthState) -> Response<OwnBody> {
    match state.keys.jwks() {
        Ok(jwks) => {
            let mut response = response::json(StatusCode::OK, &jwks);
            let headers = response.headers_mut();
            headers.insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("public, max-age=300"),
            );
            headers.insert(
                http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
                http::HeaderValue::from_static("*"),
            );
            response
        }
        Err(err) => {
            tracing::error!(error = %err, "the signing keys cannot be published");
            super::error::OAuthError::temporarily_unavailable("The signing keys cannot be read now.")
                .into_response()
        }
    }
}

/// The same document at `/.well-known/oauth-authorization-server` (RFC
/// 8414) and `/.well-known/openid-configuration` (OpenID Connect
/// Discovery): what really works here.
pub(super) fn metadata(state: &AuthState) -> Response<OwnBody> {
    let issuer = state.issuer();
    let clients = state.directory.clients();
    let plain_allowed = clients.iter().any(|c| c.allows_plain_pkce());
    let mut pkce_methods = vec!["S256"];
    if plain_allowed {
        pkce_methods.push("plain");
    }
    let mut scopes: Vec<&str> = clients
        .iter()
        .filter_map(|c| c.scopes())
        .flatten()
        .map(String::as_str)
        .collect();
    scopes.sort_unstable();
    scopes.dedup();
    for openid in super::scope::OPENID_SCOPES {
        if !scopes.contains(&openid) {
            scopes.push(openid);
        }
    }
    let algorithms: Vec<&str> = state.keys.algorithms().iter().map(|a| a.as_str()).collect();
    let body = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}{AUTHORIZE_PATH}"),
        "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
        "userinfo_endpoint": format!("{issuer}{USERINFO_PATH}"),
        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "end_session_endpoint": format!("{issuer}{}", super::end_session::END_SESSION_PATH),
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": algorithms,
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "acr", "amr", "idp", "name", "preferred_username", "email", "email_verified", "groups"],
        "acr_values_supported": ["mfa", "password"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "revocation_endpoint": format!("{issuer}{REVOKE_PATH}"),
        "introspection_endpoint": format!("{issuer}{INTROSPECT_PATH}"),
        "response_types_supported": ["code", "token", "id_token", "id_token token"],
        "response_modes_supported": ["query", "fragment"],
        "grant_types_supported": ["authorization_code", "implicit", "password", "client_credentials", "refresh_token"],
        "code_challenge_methods_supported": pkce_methods,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": scopes,
    });
    let mut response = response::json(StatusCode::OK, &body);
    response.headers_mut().insert(
        http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
        http::HeaderValue::from_static("*"),
    );
    response
}
