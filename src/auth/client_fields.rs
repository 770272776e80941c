//! What a client's request may carry on to the service behind the layer.
//!
//! An upstream does not always read a field's name as the gateway does.
//! CGI-style servers (Rack, WSGI, PHP, Apache's environment) turn every
//! character of a name that is not a letter or a digit into `_` and fold
//! its case, so `X_Forwarded_User` and `X.Forwarded.User` are the same
//! variable there as `X-Forwarded-User` (the class of Django's
//! CVE-2015-0219). And a `Connection` header names fields to drop at the
//! next hop, which must never be the fields the gateway sets.
//!
//! So, before the gateway adds anything to a request:
//! - the fields `Connection` names are removed, and `Connection` keeps
//!   only its options (`upgrade`, `close`, `keep-alive`): nothing the
//!   gateway sets afterwards can be named by it;
//! - a field whose name reads, as a CGI server reads it, as one of the
//!   gateway's own ([`GATEWAY_FIELDS`]) is removed, in every spelling
//!   but the gateway's, and the gateway's own identity fields
//!   ([`IDENTITY_FIELDS`]) in every spelling;
//! - a field whose name holds anything but letters, digits and `-` is
//!   removed, as nginx does by default (`ignore_invalid_headers`);
//!   `[upstream] underscores_in_headers = true` lets `_` through, as
//!   nginx's `underscores_in_headers on`.
//!
//! Most requests carry none of these: one pass over the names decides.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The fields only the gateway sets: a client's, in any spelling, never
/// reaches the service behind it.
pub(crate) const IDENTITY_FIELDS: [&str; 14] = [
    "x-forwarded-user",
    "x-forwarded-preferred-username",
    "x-forwarded-email",
    "x-forwarded-scope",
    "x-forwarded-groups",
    "x-forwarded-access-token",
    "x-forwarded-auth-level",
    "x-authgate-jwt",
    "x-auth-request-user",
    "x-auth-request-preferred-username",
    "x-auth-request-email",
    "x-auth-request-scope",
    "x-auth-request-groups",
    "x-auth-request-access-token",
];

/// Fields the gateway (or HTTP's framing) gives a meaning to under their
/// own spelling: a client's copy under another spelling is removed.
const GATEWAY_FIELDS: [&str; 10] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "x-request-id",
    "content-length",
    "content-type",
    "transfer-encoding",
    "proxy-authorization",
    "http2-settings",
];

/// What one pass over a request's fields found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Found {
    /// More than one `Authorization` field: which one an upstream reads
    /// is anybody's guess, so the request is refused.
    pub(crate) repeated_authorization: bool,
}

/// How a byte of a field name counts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NameByte {
    /// A letter (lower case, as names are kept), a digit or `-`.
    Plain,
    Underscore,
    /// Any other token character (`.`, `~`, `!`, …).
    Other,
}

const NAME_BYTES: [NameByte; 256] = {
    let mut table = [NameByte::Other; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' {
            table[b] = NameByte::Plain;
        } else if c == b'_' {
            table[b] = NameByte::Underscore;
        }
        b += 1;
    }
    table
};

/// Removes from a client's request what must not reach the service
/// behind the gateway (see the module's docs); `underscores` lets names
/// with `_` through.
pub(crate) fn sanitize(headers: &mut HeaderMap, underscores: bool) -> Found {
    let mut found = Found::default();
    let mut authorizations = 0;
    let mut connection = false;
    let mut suspect = false;
    for (name, _) in headers.iter() {
        if name == header::AUTHORIZATION {
            authorizations += 1;
        } else if name == header::CONNECTION {
            connection = true;
        } else if !suspect {
            suspect = is_suspect(name.as_str());
        }
    }
    found.repeated_authorization = authorizations > 1;
    if connection {
        drop_named_by_connection(headers);
    }
    if suspect {
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|name| is_doomed(name.as_str(), underscores))
            .cloned()
            .collect();
        for name in doomed {
            headers.remove(name);
        }
    }
    found
}

/// A cheap test that lets most names pass without a closer look: one of
/// an identity field's lengths with its `x-`, or a byte that is not plain.
fn is_suspect(name: &str) -> bool {
    let bytes = name.as_bytes();
    (bytes.starts_with(b"x-") && IDENTITY_FIELDS.iter().any(|f| f.len() == bytes.len()))
        || bytes
            .iter()
            .any(|&b| NAME_BYTES[usize::from(b)] != NameByte::Plain)
}

/// Whether the field `name` is removed.
fn is_doomed(name: &str, underscores: bool) -> bool {
    if IDENTITY_FIELDS.iter().any(|field| reads_as(name, field)) {
        return true;
    }
    let plain = name
        .bytes()
        .all(|b| NAME_BYTES[usize::from(b)] == NameByte::Plain);
    if plain {
        return false;
    }
    let allowed = underscores
        && name
            .bytes()
            .all(|b| NAME_BYTES[usize::from(b)] != NameByte::Other);
    !allowed || GATEWAY_FIELDS.iter().any(|field| reads_as(name, field))
}

/// Whether a CGI-style server reads the field `name` as `field` (every
/// byte that is not a letter or digit becomes `_`, case folded). Names
/// here are lower case already.
pub(crate) fn reads_as(name: &str, field: &str) -> bool {
    name.len() == field.len()
        && name
            .bytes()
            .zip(field.bytes())
            .all(|(a, b)| a == b || (!a.is_ascii_alphanumeric() && !b.is_ascii_alphanumeric()))
}

/// Removes the fields `Connection` names, and leaves in `Connection` only
/// its options, so that nothing set later can be named by it.
fn drop_named_by_connection(headers: &mut HeaderMap) {
    let mut options: Vec<&'static str> = Vec::new();
    let mut named: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        let Ok(text) = value.to_str() else { continue };
        for token in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match CONNECTION_OPTIONS.iter().find(|o| token.eq_ignore_ascii_case(o)) {
                Some(option) if !options.contains(option) => options.push(option),
                Some(_) => {}
                None => named.extend(HeaderName::from_bytes(token.as_bytes()).ok()),
            }
        }
    }
    for name in &named {
        if name != header::CONNECTION {
            headers.remove(name);
        }
    }
    match options.is_empty() {
        true => {
            headers.remove(header::CONNECTION);
        }
        false => {
            let value = HeaderValue::from_str(&options.join(", ")).expect("options are tokens");
            headers.insert(header::CONNECTION, value);
        }
    }
}

/// `Connection` tokens that are not field names.
const CONNECTION_OPTIONS: [&str; 3] = ["upgrade", "close", "keep-alive"];

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(fields: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn names(map: &HeaderMap) -> Vec<String> {
        let mut names: Vec<String> = map
            .iter()
            .map(|(n, v)| format!("{n}={}", v.to_str().unwrap()))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn every_spelling_of_an_identity_field_is_removed() {
        for underscores in [false, true] {
            for field in IDENTITY_FIELDS {
                for spelling in [
                    field.to_owned(),
                    field.replace('-', "_"),
                    field.replacen('-', "_", 1),
                    field.replace('-', "."),
                    field.replace('-', "~"),
                ] {
                    let mut map = headers(&[(&spelling, "forged"), ("accept", "*/*")]);
                    sanitize(&mut map, underscores);
                    assert_eq!(
                        names(&map),
                        ["accept=*/*"],
                        "{spelling} (underscores {underscores})"
                    );
                }
            }
        }
    }

    #[test]
    fn odd_names_are_dropped_unless_underscores_are_allowed_and_never_as_a_gateway_field() {
        let fields = [
            ("x_custom", "1"),
            ("x.custom", "2"),
            ("x_forwarded_for", "3"),
            ("x-forwarded-for", "4"),
            ("content_length", "5"),
            ("x-kept", "6"),
        ];
        let mut map = headers(&fields);
        sanitize(&mut map, false);
        assert_eq!(names(&map), ["x-forwarded-for=4", "x-kept=6"]);
        let mut map = headers(&fields);
        sanitize(&mut map, true);
        assert_eq!(names(&map), ["x-forwarded-for=4", "x-kept=6", "x_custom=1"]);
    }

    #[test]
    fn connection_loses_its_names_and_keeps_its_options() {
        let mut map = headers(&[
            ("connection", "Keep-Alive, X-Forwarded-User, authorization"),
            ("connection", "upgrade, x-secret, connection"),
            ("authorization", "Bearer x"),
            ("x-secret", "1"),
            ("upgrade", "websocket"),
        ]);
        sanitize(&mut map, false);
        assert_eq!(
            names(&map),
            ["connection=keep-alive, upgrade", "upgrade=websocket"]
        );
        let mut map = headers(&[("connection", "x-secret"), ("x-secret", "1"), ("host", "h")]);
        sanitize(&mut map, false);
        assert_eq!(names(&map), ["host=h"]);
    }

    #[test]
    fn repeated_authorization_is_reported_and_plain_requests_pass_untouched() {
        let mut map = headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
        assert!(sanitize(&mut map, false).repeated_authorization);
        let plain = [
            ("host", "h"),
            ("user-agent", "curl/8"),
            ("accept", "*/*"),
            ("authorization", "Bearer a"),
            ("x-request-id", "abc"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-userx", "not ours"),
        ];
        let mut map = headers(&plain);
        assert_eq!(sanitize(&mut map, false), Found::default());
        assert_eq!(map, headers(&plain));
    }
}
