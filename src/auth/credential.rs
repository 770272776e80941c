//! Finding a client's credential: `Authorization: Bearer`, the session
//! cookie, or the `access_token` query parameter that App Services clients
//! send.

use std::borrow::Cow;

use http::header::{self, HeaderMap, HeaderValue};
use http::uri::{PathAndQuery, Uri};

use crate::web::request::cookie;

/// The name of the gateway's session cookie.
pub(crate) const SESSION_COOKIE: &str = "authgate_session";

/// Tokens longer than this are not looked up.
/// Long enough for a JWT access token (RFC 9068) signed with RS256.
const MAX_TOKEN_LEN: usize = 4096;

/// Where a credential was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Header,
    Cookie,
    Query,
}

/// A token a client presented, and where.
#[derive(Debug)]
pub(crate) struct Presented<'a> {
    pub(crate) token: Cow<'a, str>,
    pub(crate) source: Source,
}

/// A query that holds more than one key an upstream could read as
/// `access_token` (however it is encoded, with `&` or `;` between pairs):
/// which one authenticated would be anybody's guess, so the request is
/// refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AmbiguousQueryToken;

/// The credential a request carries, if any. A malformed one (wrong
/// characters, too long) counts as presented but can never match.
pub(crate) fn find<'a>(
    headers: &'a HeaderMap,
    uri: &'a Uri,
) -> Result<Option<Presented<'a>>, AmbiguousQueryToken> {
    let from_query = match uri.query() {
        Some(query) => query_token(query)?,
        None => None,
    };
    if let Some(token) = headers.get(header::AUTHORIZATION).and_then(bearer_token) {
        return Ok(Some(Presented {
            token: Cow::Borrowed(token),
            source: Source::Header,
        }));
    }
    if let Some(token) = cookie(headers, SESSION_COOKIE) {
        return Ok(Some(Presented {
            token: Cow::Borrowed(token),
            source: Source::Cookie,
        }));
    }
    Ok(from_query.map(|token| Presented {
        token,
        source: Source::Query,
    }))
}

/// Removes every gateway credential a request carries: a bearer
/// `Authorization` and the session cookie (other cookies stay), for an
/// upstream that must never be sent one.
pub(crate) fn remove_from(headers: &mut HeaderMap) {
    if headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| bearer_token(v).is_some())
    {
        headers.remove(header::AUTHORIZATION);
    }
    let cookies: Vec<HeaderValue> = headers.get_all(header::COOKIE).iter().cloned().collect();
    if cookies.is_empty() {
        return;
    }
    headers.remove(header::COOKIE);
    for value in cookies {
        let Ok(text) = value.to_str() else {
            headers.append(header::COOKIE, value);
            continue;
        };
        let kept: Vec<&str> = text
            .split(';')
            .map(str::trim)
            .filter(|pair| !pair.is_empty() && pair.split('=').next().map(str::trim) != Some(SESSION_COOKIE))
            .collect();
        if !kept.is_empty() {
            if let Ok(value) = HeaderValue::from_str(&kept.join("; ")) {
                headers.append(header::COOKIE, value);
            }
        }
    }
}

/// The token in an `Authorization: Bearer <token>` value (the scheme is
/// case-insensitive, RFC 7235 §2.1).
pub(crate) fn bearer_token(value: &HeaderValue) -> Option<&str> {
    let value = value.to_str().ok()?;
    // The scheme and one space, without a search for the space: this
    // runs for every request that carries a token.
    let scheme = value.get(..BEARER.len())?;
    let token = value[BEARER.len()..].strip_prefix(' ')?;
    scheme
        .eq_ignore_ascii_case(BEARER)
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

const BEARER: &str = "bearer";

/// Whether `token` could be one the gateway issued (RFC 6750 b64token
/// characters, bounded length); anything else is not looked up.
pub(crate) fn is_well_formed(token: &str) -> bool {
    token.len() <= MAX_TOKEN_LEN && token.bytes().all(|c| B64TOKEN[usize::from(c)])
}

/// Which bytes a b64token may hold (RFC 6750 §2.1), as a table: every
/// token presented is checked, a byte at a time.
const B64TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        table[c] = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=');
        c += 1;
    }
    table
};

const ACCESS_TOKEN: &str = "access_token";

/// Whether a query could hold the `access_token` key at all: most queries
/// hold neither the key as written nor an escape that could spell it.
fn may_hold_token_key(query: &str) -> bool {
    query.contains(ACCESS_TOKEN) || query.contains('%')
}

/// Whether a query pair's key, form-decoded, is `access_token`.
fn is_token_key(pair: &str) -> bool {
    let key = pair.split('=').next().unwrap_or("");
    match key.contains(['%', '+']) {
        false => key == ACCESS_TOKEN,
        true => form_urlencoded::parse(key.as_bytes())
            .next()
            .is_some_and(|(decoded, _)| decoded == ACCESS_TOKEN),
    }
}

/// The query's `access_token` (its key compared decoded, as an
/// upstream's query parser reads it), refusing a query with more than
/// one such key (pairs split at `&` or at `;`, as some parsers do).
fn query_token(query: &str) -> Result<Option<Cow<'_, str>>, AmbiguousQueryToken> {
    if !may_hold_token_key(query) {
        return Ok(None);
    }
    let keys = query.split(['&', ';']).filter(|pair| is_token_key(pair)).count();
    if keys == 0 {
        return Ok(None);
    }
    let pair = query.split('&').find(|pair| is_token_key(pair));
    match (keys, pair) {
        (1, Some(pair)) => Ok(form_urlencoded::parse(pair.as_bytes())
            .next()
            .map(|(_, value)| value)
            .filter(|value| !value.is_empty())
            .map(|value| Cow::Owned(value.into_owned()))),
        _ => Err(AmbiguousQueryToken),
    }
}

/// `uri` without its `access_token` query parameter (its key compared
/// decoded), or `None` if it has none. The token must never reach the
/// upstream or its logs.
pub(crate) fn without_query_token(uri: &Uri) -> Option<Uri> {
    let query = uri.query()?;
    if !may_hold_token_key(query) || !query.split('&').any(is_token_key) {
        return None;
    }
    let kept: Vec<&str> = query.split('&').filter(|pair| !is_token_key(pair)).collect();
    let path_and_query = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
    Uri::from_parts(parts).ok()
}

/// How the session cookie is set: `Secure` (the gateway is reached over
/// https), and its `Domain` (`auth.cookie_domain`), if any, so that every
/// host under it sends it (forward-auth for apps on other hosts).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CookieScope<'a> {
    pub(crate) secure: bool,
    pub(crate) domain: Option<&'a str>,
}

impl<'a> CookieScope<'a> {
    /// The session cookie's scope under `config`.
    pub(crate) fn of(config: &'a crate::config::Config) -> Self {
        Self {
            secure: config.server.is_https(),
            domain: config.auth.cookie_domain.as_deref(),
        }
    }

    fn attributes(&self) -> String {
        let mut attributes = String::from("; Path=/; HttpOnly; SameSite=Lax");
        if let Some(domain) = self.domain {
            attributes.push_str("; Domain=");
            attributes.push_str(domain);
        }
        if self.secure {
            attributes.push_str("; Secure");
        }
        attributes
    }
}

/// The `Set-Cookie` value that gives a browser its session.
pub(crate) fn session_cookie(token: &str, max_age_secs: u64, scope: CookieScope<'_>) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Max-Age={max_age_secs}{}",
        scope.attributes()
    )
}

/// The `Set-Cookie` value that takes the session away.
pub(crate) fn clear_session_cookie(scope: CookieScope<'_>) -> String {
    format!("{SESSION_COOKIE}=; Max-Age=0{}", scope.attributes())
}

/// An entry point for the fuzz targets (`cargo fuzz`, `--cfg fuzzing`).
#[cfg(fuzzing)]
pub(crate) mod fuzzing {
    use super::*;

    /// The credential parsers on arbitrary input (the first line an
    /// `Authorization` value, the second a query, the rest `Cookie`): a
    /// bearer token is never empty or padded; a query the gateway reads a
    /// token from is forwarded without any key an upstream would read as
    /// `access_token`; a gateway field never survives the client fields'
    /// sanitizing.
    pub fn credentials(data: &[u8]) {
        let mut lines = data.splitn(3, |&b| b == b'\n');
        let (authorization, query, cookie_value) = (
            lines.next().unwrap_or(b""),
            lines.next().unwrap_or(b""),
            lines.next().unwrap_or(b""),
        );
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_bytes(authorization) {
            if let Some(token) = bearer_token(&value) {
                assert!(!token.is_empty() && token.trim() == token, "{token:?}");
            }
            headers.insert(header::AUTHORIZATION, value);
        }
        if let Ok(value) = HeaderValue::from_bytes(cookie_value) {
            headers.insert(header::COOKIE, value);
            let _ = crate::web::request::cookie(&headers, SESSION_COOKIE);
        }
        let Ok(query) = std::str::from_utf8(query) else {
            return;
        };
        let Ok(uri) = format!("/x?{query}").parse::<Uri>() else {
            return;
        };
        if find(&headers, &uri).is_ok() {
            let forwarded = without_query_token(&uri).unwrap_or(uri);
            if let Some(query) = forwarded.query() {
                assert!(
                    !query.split('&').any(is_token_key),
                    "{query:?} still names access_token"
                );
            }
        }
        let mut fields = HeaderMap::new();
        for line in data.split(|&b| b == b'\n') {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(&line[..colon]),
                HeaderValue::from_bytes(&line[colon + 1..]),
            ) {
                fields.append(name, value);
            }
        }
        crate::auth::client_fields::sanitize(&mut fields, data.first().is_some_and(|b| b & 1 == 1));
        for name in fields.keys() {
            assert!(
                !crate::auth::client_fields::IDENTITY_FIELDS
                    .iter()
                    .any(|field| crate::auth::client_fields::reads_as(name.as_str(), field)),
                "{name} survived"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_wins_over_cookie_and_query() {
        let mut headers = HeaderMap::new();
        let uri: Uri = "/x?access_token=q".parse().unwrap();
        assert_eq!(find(&headers, &uri).unwrap().unwrap().source, Source::Query);
        headers.insert(header::COOKIE, format!("{SESSION_COOKIE}=c").parse().unwrap());
        assert_eq!(find(&headers, &uri).unwrap().unwrap().token, "c");
        headers.insert(header::AUTHORIZATION, "bearer h".parse().unwrap());
        let found = find(&headers, &uri).unwrap().unwrap();
        assert_eq!((found.token.as_ref(), found.source), ("h", Source::Header));
    }

    #[test]
    fn only_the_bearer_scheme_and_one_space_start_a_bearer_token() {
        let cases = [
            ("Bearer abc", Some("abc")),
            ("bEaReR abc", Some("abc")),
            ("Bearer   abc  ", Some("abc")),
            ("Bearer abc def", Some("abc def")),
            ("Bearer", None),
            ("Bearer ", None),
            ("Bearer    ", None),
            ("Bearerabc", None),
            ("Bearer\tabc", None),
            ("Basic abc", None),
            ("Bear abc", None),
            ("", None),
        ];
        for (value, token) in cases {
            let value = HeaderValue::from_str(value).unwrap();
            assert_eq!(bearer_token(&value), token, "{value:?}");
        }
        let not_text = HeaderValue::from_bytes(b"Bearer \xffabc").unwrap();
        assert_eq!(bearer_token(&not_text), None);
    }

    #[test]
    fn access_token_is_removed_from_the_query() {
        let uri: Uri = "/a?x=1&access_token=t&y=2".parse().unwrap();
        assert_eq!(without_query_token(&uri).unwrap(), "/a?x=1&y=2");
        let uri: Uri = "/a?access_token=t".parse().unwrap();
        assert_eq!(without_query_token(&uri).unwrap(), "/a");
        let uri: Uri = "/a?my_access_token=t".parse().unwrap();
        assert!(without_query_token(&uri).is_none());
        let uri: Uri = "/a?x=access_token=&acc%65ss_token=t&access%5Ftoken"
            .parse()
            .unwrap();
        assert_eq!(without_query_token(&uri).unwrap(), "/a?x=access_token=");
    }

    #[test]
    fn the_token_key_is_compared_decoded_and_only_once() {
        let token = |query: &str| query_token(query).map(|t| t.map(Cow::into_owned));
        assert_eq!(token("a=1&b=2"), Ok(None));
        assert_eq!(token("x=access_token="), Ok(None));
        assert_eq!(token("acc%65ss_token=t"), Ok(Some("t".to_owned())));
        assert_eq!(token("%61ccess%5Ftoken=t&y=1"), Ok(Some("t".to_owned())));
        assert_eq!(token("access_token="), Ok(None), "empty: no credential");
        for ambiguous in [
            "access_token=a&access_token=b",
            "access_token=a&acc%65ss_token=b",
            "access_token=a&x=1;access_token=b",
            "x=1;access_token=a",
            "access_token=a&access_token=",
        ] {
            assert_eq!(token(ambiguous), Err(AmbiguousQueryToken), "{ambiguous}");
        }
        let headers = HeaderMap::new();
        let uri: Uri = "/x?access_token=a&acc%65ss_token=b".parse().unwrap();
        assert_eq!(find(&headers, &uri).unwrap_err(), AmbiguousQueryToken);
    }

    #[test]
    fn malformed_tokens_are_not_looked_up() {
        assert!(is_well_formed("abc-_DEF123"));
        assert!(!is_well_formed("a b"));
        assert!(!is_well_formed(&"a".repeat(MAX_TOKEN_LEN + 1)));
        assert!(
            is_well_formed(&"a".repeat(MAX_TOKEN_LEN)),
            "a JWT access token fits"
        );
        let allowed: String = (0..=255u8)
            .filter(|&b| B64TOKEN[usize::from(b)])
            .map(char::from)
            .collect();
        assert_eq!(
            allowed,
            "+-./0123456789=ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~"
        );
        assert!(!is_well_formed("caf\u{e9}"), "not ASCII");
    }
}
