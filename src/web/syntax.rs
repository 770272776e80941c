//! What OAuth allows in a value, checked where the configuration is read
//! and where a request is.

/// Whether `scope` is one scope token (RFC 6749 §3.3): `%x21 / %x23-5B /
/// %x5D-7E`.
pub(crate) fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|c| c == 0x21 || (0x23..=0x5b).contains(&c) || (0x5d..=0x7e).contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_tokens_follow_rfc_6749() {
        assert!(is_scope_token("read:items"));
        assert!(!is_scope_token("a\"b"));
        assert!(!is_scope_token("a\\b"));
        assert!(!is_scope_token("a b"));
        assert!(!is_scope_token(""));
    }
}
