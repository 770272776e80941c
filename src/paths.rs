//! Request paths: the normalized form the upstream sees, public-path
//! matching, and return paths that stay on the gateway's own origin.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

/// The normalized form of a request path, or `None` if it is not an
/// absolute path.
///
/// Percent-encoded unreserved characters are decoded (so `%2e` is `.`),
/// other escapes get upper-case hex, empty segments are merged, and `.` and
/// `..` segments are resolved (never above the root). The gateway forwards
/// this form, so the path it checks is the path the upstream sees.
pub(crate) fn normalize(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let mut segments: Vec<Cow<'_, str>> = Vec::new();
    let trailing_slash = path.len() > 1 && (path.ends_with('/') || ends_with_dot_segment(path));
    for raw in path.split('/').filter(|s| !s.is_empty()) {
        let segment = decode_unreserved(raw);
        match &*segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || (trailing_slash && !segments.is_empty()) {
        out.push('/');
    }
    Some(out)
}

fn ends_with_dot_segment(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    matches!(&*decode_unreserved(last), "." | "..")
}

/// Decodes `%XX` escapes of unreserved characters; other escapes stay,
/// with upper-case hex.
fn decode_unreserved(segment: &str) -> Cow<'_, str> {
    if !segment.contains('%') {
        return Cow::Borrowed(segment);
    }
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            let hex = &segment[i + 1..i + 3];
            let value = u8::from_str_radix(hex, 16).unwrap_or(b'%');
            if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
                out.push(value as char);
            } else {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
            }
            i += 3;
            continue;
        }
        let ch = segment[i..].chars().next().unwrap_or('%');
        out.push(ch);
        i += ch.len_utf8();
    }
    Cow::Owned(out)
}

/// Whether a normalized path holds something an upstream could read as a
/// separator or an escape the gateway did not resolve (`%2F`, `%5C`, `\`,
/// `%25`, `%00`). Such a path never passes as public.
fn has_ambiguous_escapes(normalized: &str) -> bool {
    if normalized.contains('\\') {
        return true;
    }
    let upper = normalized.to_ascii_uppercase();
    ["%2F", "%5C", "%25", "%00"].iter().any(|e| upper.contains(e))
}

/// Whether the normalized `path` is one of `public_paths` or beneath one,
/// at a segment boundary (`/assets` covers `/assets` and `/assets/app.css`,
/// not `/assetsx`).
pub(crate) fn is_public(path: &str, public_paths: &[String]) -> bool {
    if public_paths.is_empty() || has_ambiguous_escapes(path) {
        return false;
    }
    public_paths.iter().any(|public| {
        path.strip_prefix(public.as_str())
            .is_some_and(|rest| rest.is_empty() || public.ends_with('/') || rest.starts_with('/'))
    })
}

/// `target` if it is a path on the gateway's own origin that is safe to
/// redirect a browser to after sign-in; `None` otherwise.
///
/// Refused: anything not starting with a single `/` (`//evil.example`,
/// `/\evil.example`, `https://evil.example`), backslashes, whitespace and
/// control characters, and the same tricks percent-encoded.
pub(crate) fn safe_return_path(target: &str) -> Option<&str> {
    if target.len() > 4096 || !looks_like_local_path(target) {
        return None;
    }
    let mut decoded = Cow::Borrowed(target);
    for _ in 0..3 {
        let next = percent_decode_str(&decoded).decode_utf8_lossy().into_owned();
        if next == *decoded {
            break;
        }
        if !looks_like_local_path(&next) {
            return None;
        }
        decoded = Cow::Owned(next);
    }
    Some(target)
}

fn looks_like_local_path(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && !path
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_resolves_dots_escapes_and_empty_segments() {
        let cases = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("/public/../private", "/private"),
            ("/public/%2e%2e/private", "/private"),
            ("/public/%2E%2E/private", "/private"),
            ("/public/.%2e/private", "/private"),
            ("/public//../private", "/private"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/a/./b/.", "/a/b/"),
            ("/a/..", "/"),
            ("/%41%7e", "/A~"),
            ("/a%2fb", "/a%2Fb"),
            ("//a///b", "/a/b"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize(input).as_deref(), Some(expected), "{input}");
        }
        assert_eq!(normalize("a/b"), None);
        assert_eq!(normalize("*"), None);
    }

    #[test]
    fn public_paths_match_at_segment_boundaries_only() {
        let public = vec!["/public".to_string(), "/static/".to_string()];
        assert!(is_public("/public", &public));
        assert!(is_public("/public/x", &public));
        assert!(is_public("/static/app.css", &public));
        assert!(!is_public("/publicx", &public));
        assert!(!is_public("/static", &public));
        assert!(!is_public("/private", &public));
        assert!(!is_public("/public/a%2F..%2F..%2Fprivate", &public));
        assert!(!is_public("/public/%252e%252e/private", &public));
    }

    #[test]
    fn return_paths_stay_on_our_origin() {
        for ok in ["/", "/app", "/app?x=1&y=%2F", "/a/b#frag"] {
            assert_eq!(safe_return_path(ok), Some(ok), "{ok}");
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "evil.example",
            "/%2F%2Fevil.example",
            "/%2f/evil.example",
            "/%5Cevil.example",
            "/%252F%252Fevil.example",
            "/\t/evil.example",
            "/%09/evil.example",
            "/x\r\nSet-Cookie: a=b",
            "",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_return_path(bad), None, "{bad:?}");
        }
    }
}
