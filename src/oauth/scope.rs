//! Scopes (RFC 6749 §3.3): what a client may ask for, and what a refresh
//! may narrow to.

use crate::identity::Client;

use crate::web::syntax::is_scope_token;

use super::error::OAuthError;

fn tokens(scope: &str) -> Result<Vec<&str>, OAuthError> {
    let mut out: Vec<&str> = Vec::new();
    for token in scope.split(' ').filter(|t| !t.is_empty()) {
        if !is_scope_token(token) {
            return Err(OAuthError::invalid_scope(format!(
                "{token:?} is not a valid scope."
            )));
        }
        if !out.contains(&token) {
            out.push(token);
        }
    }
    Ok(out)
}

/// The scope to grant `client` for a request asking for `requested`: each
/// asked-for scope must be one the client is configured with; asking for
/// none grants all of them. A client with no `scopes` list, or no client,
/// gets what it asks for.
/// OpenID Connect's scopes, which every client may ask for: they release
/// to it only claims about the person who signs in to it.
pub(crate) const OPENID_SCOPES: [&str; 4] = ["openid", "profile", "email", "groups"];

pub(crate) fn grant_scope(
    client: Option<&Client>,
    requested: Option<&str>,
) -> Result<Option<String>, OAuthError> {
    let allowed = client.and_then(|c| c.scopes());
    let Some(requested) = requested else {
        return Ok(allowed.filter(|a| !a.is_empty()).map(|a| a.join(" ")));
    };
    let asked = tokens(requested)?;
    if let Some(allowed) = allowed {
        let allowed = |scope: &str| OPENID_SCOPES.contains(&scope) || allowed.iter().any(|a| a == scope);
        if let Some(denied) = asked.iter().find(|s| !allowed(s)) {
            return Err(OAuthError::invalid_scope(format!(
                "This client may not ask for the scope {denied:?}."
            )));
        }
    }
    Ok(Some(asked.join(" ")).filter(|s| !s.is_empty()))
}

/// A refresh may ask for the original scope or less (RFC 6749 §6).
pub(crate) fn narrow_scope(
    original: Option<&str>,
    requested: Option<&str>,
) -> Result<Option<String>, OAuthError> {
    let Some(requested) = requested else {
        return Ok(original.map(str::to_owned));
    };
    let granted: Vec<&str> = original.map(|o| o.split(' ').collect()).unwrap_or_default();
    let asked = tokens(requested)?;
    if let Some(extra) = asked.iter().find(|s| !granted.contains(s)) {
        return Err(OAuthError::invalid_scope(format!(
            "The scope {extra:?} was not granted originally."
        )));
    }
    Ok(Some(asked.join(" ")).filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_can_only_narrow() {
        assert_eq!(
            narrow_scope(Some("a b"), Some("b")).unwrap().as_deref(),
            Some("b")
        );
        assert_eq!(narrow_scope(Some("a b"), None).unwrap().as_deref(), Some("a b"));
        assert_eq!(
            narrow_scope(Some("a"), Some("a c")).unwrap_err().error(),
            "invalid_scope"
        );
    }
}
