//! `GET /.well-known/oauth-authorization-server` (RFC 8414): what really
//! works here; and a clear `404` at OpenID Connect's discovery path.

use http::{Response, StatusCode};
use serde_json::json;

use crate::auth::state::AuthState;
use crate::web::response::{self, OwnBody};

use super::{AUTHORIZE_PATH, DISCOVERY_PATH, INTROSPECT_PATH, REVOKE_PATH, TOKEN_PATH};

/// `/.well-known/openid-configuration`: authgate is an OAuth 2.0
/// authorization server, not an OpenID Provider. An OpenID Connect client
/// that looks here by default learns so, and where the OAuth document is,
/// instead of meeting a sign-in page.
pub(super) fn not_an_openid_provider(state: &AuthState) -> Response<OwnBody> {
    let metadata = format!("{}{DISCOVERY_PATH}", state.issuer());
    response::json(
        StatusCode::NOT_FOUND,
        &json!({
            "error": "not_found",
            "error_description": format!(
                "This authorization server does not speak OpenID Connect. Its OAuth 2.0 metadata (RFC 8414) is at {metadata}."
            ),
            "oauth_authorization_server": metadata,
        }),
    )
}

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
    let body = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}{AUTHORIZE_PATH}"),
        "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
        "revocation_endpoint": format!("{issuer}{REVOKE_PATH}"),
        "introspection_endpoint": format!("{issuer}{INTROSPECT_PATH}"),
        "response_types_supported": ["code", "token"],
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
