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
///
/// A segment that is `.` or `..` once its `;` parameters are set aside
/// (`..;x=y`, `%2e%2e;`, `..%3B`) is a dot segment too: Tomcat, Jetty and
/// Spring strip the parameters before they resolve dots.
pub(crate) fn normalize(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let mut segments: Vec<Cow<'_, str>> = Vec::new();
    let trailing_slash = path.len() > 1 && (path.ends_with('/') || ends_with_dot_segment(path));
    for raw in path.split('/').filter(|s| !s.is_empty()) {
        let segment = decode_unreserved(raw);
        match dot_segment(&segment) {
            Some(Dot::Current) => {}
            Some(Dot::Parent) => {
                segments.pop();
            }
            None => segments.push(segment),
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

/// `path` in its normalized form ([`normalize`]): borrowed when it is in
/// that form already (a cheap test lets the usual path through), and as
/// it is when it is not an absolute path.
pub(crate) fn normalized(path: &str) -> Cow<'_, str> {
    let may_change = path.contains("//") || path.contains("/.") || path.contains('%') || path.contains('\\');
    match may_change.then(|| normalize(path)).flatten() {
        Some(normal) if normal != path => Cow::Owned(normal),
        _ => Cow::Borrowed(path),
    }
}

fn ends_with_dot_segment(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    dot_segment(&decode_unreserved(last)).is_some()
}

enum Dot {
    Current,
    Parent,
}

/// Whether a segment (unreserved escapes decoded) is `.` or `..`, its `;`
/// parameters set aside.
fn dot_segment(segment: &str) -> Option<Dot> {
    match without_segment_params(segment) {
        "." => Some(Dot::Current),
        ".." => Some(Dot::Parent),
        _ => None,
    }
}

/// A segment up to its first `;` (or `%3B`): what Tomcat and Jetty take
/// for the segment's name.
fn without_segment_params(segment: &str) -> &str {
    let bytes = segment.as_bytes();
    let end = (0..bytes.len())
        .find(|&i| {
            bytes[i] == b';'
                || (bytes[i] == b'%'
                    && bytes[i + 1..]
                        .get(..2)
                        .is_some_and(|h| h.eq_ignore_ascii_case(b"3b")))
        })
        .unwrap_or(bytes.len());
    &segment[..end]
}

/// `path` with every segment's `;` parameters set aside, as the servers
/// that strip them read it: what public paths and route prefixes are
/// matched on, so that `/admin;x/secret` is under `/admin`.
pub(crate) fn without_params(path: &str) -> Cow<'_, str> {
    if memchr::memchr2(b';', b'%', path.as_bytes()).is_none() {
        return Cow::Borrowed(path);
    }
    let stripped: Vec<&str> = path.split('/').map(without_segment_params).collect();
    let joined = stripped.join("/");
    match joined == path {
        true => Cow::Borrowed(path),
        false => Cow::Owned(joined),
    }
}

/// Decodes `%XX` escapes of unreserved characters; other escapes stay,
/// with upper-case hex, and a `%` that starts no escape becomes `%25`.
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
        if bytes[i] == b'%' {
            // A `%` that starts no escape is written as one: otherwise what
            // follows it, once decoded, could make one (`%4%41` would read
            // `%4A`, and `J` to an upstream that decodes it), and the form
            // checked would not be the form forwarded.
            out.push_str("%25");
            i += 1;
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
/// not `/assetsx`), its segments' `;` parameters set aside.
pub(crate) fn is_public(path: &str, public_paths: &[String]) -> bool {
    if public_paths.is_empty() || has_ambiguous_escapes(path) {
        return false;
    }
    let path = without_params(path);
    let path = path.as_ref();
    public_paths.iter().any(|public| {
        path.strip_prefix(public.as_str())
            .is_some_and(|rest| rest.is_empty() || public.ends_with('/') || rest.starts_with('/'))
    })
}

/// `target` if it is a path on the gateway's own origin that is safe to
/// redirect a browser to after sign-in; `None` otherwise.
pub(crate) fn safe_return_path(target: &str) -> Option<&str> {
    return_target(target, &[])
}

/// Where a browser may be sent back after signing in: `target` itself,
/// byte for byte, if it is a path on the gateway's own origin or an
/// absolute `http(s)` URL on one of `return_hosts` (`host`, `host:port`,
/// or `.domain` for every host under it); `None` otherwise.
///
/// Only what could leave the origin is refused: a target that does not
/// start with a single `/` (`//evil.example`, `/\evil.example`), the
/// same tricks percent-encoded (the target is decoded up to three times,
/// and tabs and line ends dropped as browsers drop them, before its start
/// is looked at), backslashes, and raw whitespace or control characters,
/// which no browser sends in a URL. Anything else a browser can ask for
/// (encoded spaces, quotes, non-ASCII) comes back as it was.
pub(crate) fn return_target<'a>(target: &'a str, return_hosts: &[String]) -> Option<&'a str> {
    if target.len() > 8192
        || target
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
    {
        return None;
    }
    if target.starts_with('/') {
        let mut decoded = Cow::Borrowed(target);
        for _ in 0..4 {
            let seen: String = decoded
                .chars()
                .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
                .collect();
            if seen.starts_with("//") || seen.starts_with("/\\") {
                return None;
            }
            let next = percent_decode_str(&decoded).decode_utf8_lossy().into_owned();
            if next == *decoded {
                break;
            }
            decoded = Cow::Owned(next);
        }
        return Some(target);
    }
    let url = url::Url::parse(target).ok()?;
    let on_allowed_host = matches!(url.scheme(), "http" | "https")
        && url.username().is_empty()
        && url.password().is_none()
        && url
            .host_str()
            .is_some_and(|host| is_return_host(host, url.port(), return_hosts));
    on_allowed_host.then_some(target)
}

/// Whether `host` (with `port`, if the URL names one) is one of
/// `return_hosts`.
fn is_return_host(host: &str, port: Option<u16>, return_hosts: &[String]) -> bool {
    let with_port = port.map(|port| format!("{host}:{port}"));
    return_hosts
        .iter()
        .any(|allowed| match allowed.strip_prefix('.') {
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|rest| rest.is_empty() || rest.ends_with('.')),
            None => allowed == host || with_port.as_deref() == Some(allowed.as_str()),
        })
}

/// An entry point for the fuzz targets (`cargo fuzz`, `--cfg fuzzing`).
#[cfg(fuzzing)]
pub(crate) mod fuzzing {
    use super::*;

    /// What must hold of any path: its normal form is a fixed point with
    /// no dot segment, public only under a public path, and a return
    /// target never leaves the origin.
    pub fn paths(data: &[u8]) {
        let Ok(path) = std::str::from_utf8(data) else {
            return;
        };
        if let Some(normal) = normalize(path) {
            assert!(normal.starts_with('/'), "{normal:?}");
            assert_eq!(
                normalize(&normal).as_deref(),
                Some(normal.as_str()),
                "normalizing twice changes {path:?}"
            );
            for segment in normal.split('/') {
                assert!(
                    dot_segment(&decode_unreserved(segment)).is_none(),
                    "{segment:?} left in {normal:?}"
                );
            }
            assert_eq!(normalized(path), normal.as_str());
            let public = vec!["/public".to_owned()];
            if is_public(&normal, &public) {
                let plain = without_params(&normal);
                assert!(
                    plain == "/public" || plain.starts_with("/public/"),
                    "{normal:?} counted as public"
                );
            }
        }
        if let Some(target) = safe_return_path(path) {
            assert!(
                target.starts_with('/') && !target.starts_with("//") && !target.starts_with("/\\"),
                "{target:?}"
            );
            assert!(
                !target.chars().any(|c| c.is_whitespace() || c.is_control()),
                "{target:?}"
            );
        }
    }
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
        for ok in [
            "/",
            "/app",
            "/app?x=1&y=%2F",
            "/a/b#frag",
            "/app/reports?tab=2&q=a%20b",
            "/a%09b?x=%0d%0a",
            "/caf%C3%A9?q=%22quoted%22&r=%3Cb%3E",
            "/a//b",
        ] {
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
            "/%0a/evil.example",
            "/%25%30%39/evil.example",
            "/a b",
        ] {
            assert_eq!(safe_return_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn absolute_return_targets_must_name_an_allowed_host() {
        let hosts = vec![
            "app.example.com".to_owned(),
            "127.0.0.1:8081".to_owned(),
            ".corp.example".to_owned(),
        ];
        for ok in [
            "https://app.example.com/reports?month=11&year=2026",
            "http://app.example.com:9000/x",
            "http://127.0.0.1:8081/a?b=c",
            "https://wiki.corp.example/page",
            "https://corp.example/",
            "https://a.b.corp.example/",
        ] {
            assert_eq!(return_target(ok, &hosts), Some(ok), "{ok}");
            assert_eq!(safe_return_path(ok), None, "{ok}: never without the list");
        }
        for bad in [
            "https://evil.example/",
            "https://app.example.com.evil.example/",
            "https://user@app.example.com/",
            "https://evil.example#@app.example.com",
            "https://evil.example\\@app.example.com/",
            "http://127.0.0.1:8082/",
            "https://xcorp.example/",
            "javascript://app.example.com/%0aalert(1)",
            "ftp://app.example.com/",
        ] {
            assert_eq!(return_target(bad, &hosts), None, "{bad}");
        }
    }

    #[test]
    fn normalizing_is_idempotent_even_with_stray_percent_signs() {
        // Found by the `paths` fuzz target: decoding once could make an
        // escape of what was none (`%6%31dmin` read `%61dmin`).
        for (input, expected) in [
            ("/p/pt%4%4111%8e%", "/p/pt%254A11%8E%25"),
            ("/%6%31dmin/secret", "/%2561dmin/secret"),
            ("/a%", "/a%25"),
            ("/%%41", "/%25A"),
        ] {
            let once = normalize(input).unwrap();
            assert_eq!(once, expected, "{input}");
            assert_eq!(normalize(&once).unwrap(), once, "{input}: a fixed point");
        }
    }

    #[test]
    fn dot_segments_with_parameters_are_dot_segments() {
        for (input, expected) in [
            ("/public/..;/private", "/private"),
            ("/public/..;x=y/private", "/private"),
            ("/public/%2e%2e;/private", "/private"),
            ("/public/..%3Bjsessionid=1/private", "/private"),
            ("/public/.;x/private", "/public/private"),
            ("/a/b/..;", "/a/"),
            ("/a;x/b;y", "/a;x/b;y"),
        ] {
            assert_eq!(normalize(input).as_deref(), Some(expected), "{input}");
        }
        assert_eq!(without_params("/admin;x=1/secret;v=2"), "/admin/secret");
        assert_eq!(without_params("/admin%3bx/secret"), "/admin/secret");
        assert!(matches!(without_params("/plain/path"), Cow::Borrowed(_)));
        let public = vec!["/public".to_owned()];
        assert!(is_public("/public;jsessionid=1/app.js", &public));
        assert!(!is_public("/publicx;y", &public));
    }
}
