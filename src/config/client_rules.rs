//! What an OAuth client may be: the rules of `[[clients]]`, shared by the
//! config check (which points at the line) and the admin API and command
//! line (which answer with the same sentence).

use url::Url;

use super::sections::Grant;
use crate::web::syntax::is_scope_token;

/// Why `id` cannot be a client id.
pub(crate) fn client_id_problem(id: &str) -> Option<String> {
    (id.is_empty() || id.len() > 256 || !id.chars().all(|c| c.is_ascii_graphic()))
        .then(|| "client_id must be 1 to 256 visible ASCII characters".to_owned())
}

/// Why `uri` cannot be a registered redirect URI.
pub(crate) fn redirect_uri_problem(uri: &str) -> Option<String> {
    if !uri.chars().all(|c| c.is_ascii_graphic()) {
        return Some(format!(
            "redirect URI {uri:?} must be written in visible ASCII (percent-encode the rest)"
        ));
    }
    match Url::parse(uri) {
        Ok(url) if url.fragment().is_some() => Some(format!(
            "redirect URI {uri:?} has a fragment, which RFC 6749 §3.1.2 forbids"
        )),
        Ok(url) if url.cannot_be_a_base() && url.scheme() != "urn" => {
            Some(format!("redirect URI {uri:?} is not an absolute URL with a path"))
        }
        Ok(_) => None,
        Err(e) => Some(format!("redirect URI {uri:?} is not an absolute URL ({e})")),
    }
}

/// Why `scope` cannot be one of a client's scopes.
pub(crate) fn scope_problem(scope: &str) -> Option<String> {
    (!is_scope_token(scope)).then(|| format!("scope {scope:?} is not a valid scope token (RFC 6749 §3.3)"))
}

/// Why `origin` cannot be a CORS origin.
pub(crate) fn cors_origin_problem(origin: &str) -> Option<String> {
    match Url::parse(origin) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.origin().ascii_serialization() == origin => None,
        _ => Some(format!(
            "cors origin {origin:?} must be an origin like \"https://app.example\" (scheme, host, port; no path, no trailing slash)"
        )),
    }
}

/// The grants of a client that names none: every grant it can use.
pub(crate) fn default_grants(confidential: bool) -> Vec<Grant> {
    Grant::ALL
        .into_iter()
        .filter(|g| confidential || *g != Grant::ClientCredentials)
        .collect()
}

/// Why a client with these grants cannot work: client credentials without
/// a secret, or a redirecting grant without a redirect URI.
pub(crate) fn grants_problem(
    id: &str,
    grants: &[Grant],
    confidential: bool,
    redirect_uris: usize,
) -> Option<String> {
    if grants.contains(&Grant::ClientCredentials) && !confidential {
        return Some(format!(
            "client {id:?} has no client_secret_hash, so it cannot use client_credentials"
        ));
    }
    let redirects = grants
        .iter()
        .any(|g| matches!(g, Grant::AuthorizationCode | Grant::Implicit));
    (redirects && redirect_uris == 0)
        .then(|| format!("client {id:?} has no redirect_uris: list at least one absolute URL"))
}

/// Why `uri` cannot be a back-channel logout URI: an absolute http(s) URL
/// with no fragment (OpenID Connect Back-Channel Logout §2.2), https off
/// loopback.
pub(crate) fn backchannel_uri_problem(uri: &str) -> Option<String> {
    let url = match Url::parse(uri) {
        Ok(url) if url.fragment().is_none() && matches!(url.scheme(), "http" | "https") => url,
        _ => {
            return Some(format!(
                "backchannel_logout_uri {uri:?} must be an absolute http(s) URL without a fragment"
            ))
        }
    };
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    (url.scheme() == "http" && !loopback)
        .then(|| format!("backchannel_logout_uri {uri:?} must be https (http only on loopback): it carries a signed logout token"))
}

/// The signing algorithm of an ID token, by name.
pub(crate) fn id_token_alg(name: &str) -> Result<super::SigningAlg, String> {
    match name {
        "RS256" => Ok(super::SigningAlg::RS256),
        "ES256" => Ok(super::SigningAlg::ES256),
        "EdDSA" => Ok(super::SigningAlg::EdDSA),
        other => Err(format!(
            "id_token_signed_response_alg {other:?}: RS256, ES256 or EdDSA"
        )),
    }
}

/// Why `uri` cannot be a resource indicator (RFC 8707 §2): an absolute URI
/// without a fragment.
pub(crate) fn resource_problem(uri: &str) -> Option<String> {
    match Url::parse(uri) {
        Ok(url) if url.fragment().is_none() && !url.cannot_be_a_base() => None,
        _ => Some(format!(
            "resource {uri:?} must be an absolute URI without a fragment (RFC 8707)"
        )),
    }
}

/// Whether an `access_token_format` asks for JWTs (RFC 9068).
pub(crate) fn jwt_access_tokens(format: &str) -> Result<bool, String> {
    match format {
        "opaque" => Ok(false),
        "jwt" => Ok(true),
        other => Err(format!("access_token_format {other:?}: \"opaque\" or \"jwt\"")),
    }
}

/// The sector of a `subject_type` (`pairwise`: the one host of the
/// client's redirect URIs), or `None` for `public`.
pub(crate) fn pairwise_sector(
    subject_type: &str,
    redirect_uris: &[String],
) -> Result<Option<String>, String> {
    match subject_type {
        "public" => Ok(None),
        "pairwise" => {
            let hosts: std::collections::BTreeSet<String> = redirect_uris
                .iter()
                .filter_map(|u| Url::parse(u).ok()?.host_str().map(str::to_owned))
                .collect();
            match hosts.len() {
                1 => Ok(hosts.into_iter().next()),
                _ => Err("subject_type = \"pairwise\" needs redirect_uris on one host (its sector)".into()),
            }
        }
        other => Err(format!("subject_type {other:?}: \"public\" or \"pairwise\"")),
    }
}
