//! Reading who someone is from a provider's claims: the username, email,
//! name and groups, by the claim names and paths the configuration gives.

use serde_json::{Map, Value};

use super::{OutsideError, OutsideIdentity};

/// A provider's claims about one person (an ID token's and userinfo's,
/// or GitHub's user object), as JSON.
#[derive(Debug, Clone, Default)]
pub(crate) struct Claims(Map<String, Value>);

impl Claims {
    /// The claims of a JSON object (anything else holds none).
    pub(crate) fn from_value(value: Value) -> Self {
        match value {
            Value::Object(map) => Self(map),
            _ => Self::default(),
        }
    }

    /// The claim at `path`: the claim of that exact name (names may hold
    /// dots, as `https://example.com/roles` does), else the path's dots
    /// followed into nested objects (`realm_access.roles`).
    pub(crate) fn lookup(&self, path: &str) -> Option<&Value> {
        if let Some(value) = self.0.get(path).filter(|v| !v.is_null()) {
            return Some(value);
        }
        let mut parts = path.split('.');
        let mut value = self.0.get(parts.next()?)?;
        for part in parts {
            value = value.as_object()?.get(part)?;
        }
        (!value.is_null()).then_some(value)
    }

    /// Adds the claims of `other` that these lack.
    pub(crate) fn merge_missing(&mut self, other: Value) {
        if let Value::Object(other) = other {
            for (name, value) in other {
                if self.0.get(&name).is_none_or(Value::is_null) {
                    self.0.insert(name, value);
                }
            }
        }
    }

    /// The claim at `path` as text: a string, or a number.
    fn text(&self, path: &str) -> Option<String> {
        match self.lookup(path)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// Who the claims say signed in. The username is `username_claim`, else
/// a verified `email`, else `sub` (an email address the provider has not
/// verified names no one: anyone may have typed it); groups are read from
/// `groups_claim`, a list of strings or one string.
pub(crate) fn identity(
    claims: &Claims,
    username_claim: Option<&str>,
    groups_claim: Option<&str>,
) -> Result<OutsideIdentity, OutsideError> {
    let subject = claims
        .text("sub")
        .ok_or_else(|| OutsideError::Invalid("the provider's answer names no subject (sub)".into()))?;
    let email_verified = match claims.lookup("email_verified") {
        Some(Value::Bool(b)) => *b,
        // Some providers send it as a string.
        Some(Value::String(s)) => s == "true",
        _ => false,
    };
    let username =
        match username_claim {
            Some("email") if !email_verified => return Err(OutsideError::Invalid(
                "the provider has not verified the email address that names the user here (email_verified)"
                    .into(),
            )),
            Some(claim) => claims.text(claim).ok_or_else(|| {
                OutsideError::Invalid(format!(
                    "the provider's answer has no {claim} claim, which names the user here"
                ))
            })?,
            None => claims
                .text("email")
                .filter(|_| email_verified)
                .unwrap_or_else(|| subject.clone()),
        };
    // The name goes upstream in X-Forwarded-User: it must be one.
    if username.chars().any(char::is_control) || username.len() > 256 {
        return Err(OutsideError::Invalid(
            "the provider's name for the user has control characters or is too long".into(),
        ));
    }
    let groups = match groups_claim.and_then(|path| claims.lookup(path)) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| match item {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    };
    Ok(OutsideIdentity {
        subject,
        username,
        email: claims.text("email"),
        email_verified,
        name: claims.text("name"),
        groups,
        sid: claims.text("sid"),
        hosted_domain: claims.text("hd").map(|d| d.to_ascii_lowercase()),
        amr: match claims.lookup("amr") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        },
        acr: claims.text("acr"),
        tokens: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_found_by_name_and_by_path_and_the_username_falls_back() {
        let claims = Claims::from_value(serde_json::json!({
            "sub": "248289761001",
            "email": "jane@example.com",
            "email_verified": "true",
            "https://example.com/roles": ["ops"],
            "realm_access": {"roles": ["staff", "admins", 7, {"no": 1}]},
            "preferred_username": "jane",
            "groups": "solo"
        }));
        assert_eq!(claims.lookup("https://example.com/roles").unwrap()[0], "ops");
        let jane = identity(&claims, Some("preferred_username"), Some("realm_access.roles")).unwrap();
        assert_eq!(jane.username, "jane");
        assert_eq!(jane.groups, ["staff", "admins", "7"]);
        assert!(jane.email_verified);
        assert_eq!(identity(&claims, None, Some("groups")).unwrap().groups, ["solo"]);
        assert_eq!(
            identity(&claims, None, None).unwrap().username,
            "jane@example.com"
        );
        let unverified = Claims::from_value(
            serde_json::json!({"sub": "s-9", "email": "boss@example.com", "email_verified": false}),
        );
        assert_eq!(
            identity(&unverified, None, None).unwrap().username,
            "s-9",
            "an unverified address names no one"
        );
        assert!(identity(&unverified, Some("email"), None).is_err());
        let bare = Claims::from_value(serde_json::json!({"sub": "s-1"}));
        assert_eq!(identity(&bare, None, None).unwrap().username, "s-1");
        assert!(
            identity(&bare, Some("preferred_username"), None).is_err(),
            "a named claim that is missing"
        );
        assert!(identity(&Claims::default(), None, None).is_err(), "no subject");
        let odd = Claims::from_value(
            serde_json::json!({"sub": "s", "email": "a\r\nX-Forwarded-User: root", "email_verified": true}),
        );
        assert!(
            identity(&odd, None, None).is_err(),
            "a name that cannot be a header value"
        );
        let mut merged = bare.clone();
        merged.merge_missing(serde_json::json!({"sub": "other", "name": "Jane"}));
        assert_eq!(
            merged.text("sub").unwrap(),
            "s-1",
            "what the ID token said stands"
        );
        assert_eq!(merged.text("name").unwrap(), "Jane");
    }
}
