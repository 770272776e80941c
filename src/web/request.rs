//! Reading what a client sent to the gateway's own endpoints: parameters
//! from a query or a form body, cookies, and what kind of client it is.

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::Method;
use http_body::Body;
use http_body_util::{BodyExt, Limited};

/// Name/value pairs from a query string or a form body.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

/// A parameter that appeared more than once (RFC 6749 §3.1 forbids it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Repeated(pub(crate) String);

impl Params {
    /// Parses `application/x-www-form-urlencoded` text (a query or a body).
    pub(crate) fn parse(text: &[u8]) -> Self {
        Self(
            form_urlencoded::parse(text)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// Parameters already split into pairs (a JSON body's fields).
    pub(crate) fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    /// The parameters of a URI's query.
    pub(crate) fn from_query(query: Option<&str>) -> Self {
        query.map_or_else(Self::default, |q| Self::parse(q.as_bytes()))
    }

    /// The value of `name` if sent once and not empty; an error if sent twice.
    pub(crate) fn one(&self, name: &str) -> Result<Option<&str>, Repeated> {
        let mut found = None;
        for (key, value) in &self.0 {
            if key == name {
                if found.is_some() {
                    return Err(Repeated(name.to_owned()));
                }
                found = Some(value.as_str());
            }
        }
        Ok(found.filter(|v| !v.is_empty()))
    }

    /// Every pair, in order.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Every value sent for `name`, in order.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The first parameter, among `names`, that was sent more than once.
    pub(crate) fn first_repeated(&self, names: &[&str]) -> Option<Repeated> {
        names.iter().find_map(|name| self.one(name).err())
    }
}

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    TooLarge,
    Broken,
}

/// Reads a whole body of at most `limit` bytes.
pub(crate) async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, BodyError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Broken),
    }
}

/// The value of cookie `name` (its first), from every `Cookie` header;
/// `None` when it is empty or not UTF-8.
///
/// Read as bytes, with `memchr`: the session cookie is looked for on every
/// request that carries no bearer token, and splitting it as text cost
/// about 1,000 instructions (now about 300). Another cookie's bytes that
/// are not text do not hide this one.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .find_map(|header| cookie_in(header.as_bytes(), name.as_bytes()))?;
    std::str::from_utf8(value).ok().filter(|value| !value.is_empty())
}

/// The value of the first pair named `name` in one `Cookie` header.
fn cookie_in<'a>(mut header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    loop {
        let (pair, rest) = match memchr::memchr(b';', header) {
            Some(end) => (&header[..end], Some(&header[end + 1..])),
            None => (header, None),
        };
        let pair = pair.trim_ascii();
        if let Some(equals) = memchr::memchr(b'=', pair) {
            if pair[..equals].trim_ascii() == name {
                return Some(trim_quotes(pair[equals + 1..].trim_ascii()));
            }
        }
        header = rest?;
    }
}

/// `value` without the double quotes around it.
fn trim_quotes(mut value: &[u8]) -> &[u8] {
    while let [b'"', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b'"'] = value {
        value = rest;
    }
    value
}

/// Whether the request is a browser navigating to a page (a GET or HEAD
/// that asks for HTML), which gets a redirect to sign in rather than a 401.
pub(crate) fn is_browser_navigation(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    if let Some(mode) = headers.get("sec-fetch-mode") {
        return mode.as_bytes() == b"navigate";
    }
    wants_html(headers)
}

/// Whether a form was posted by a browser navigating (`Sec-Fetch-Mode:
/// navigate`, which every current browser sends with a form): its failure
/// is answered with a redirect back to the page (Post/Redirect/Get), so
/// that Back and reload never post it again.
pub(crate) fn is_form_navigation(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-mode")
        .is_some_and(|mode| mode.as_bytes() == b"navigate")
}

/// Whether the client prefers HTML (a browser) to JSON (an API client).
pub(crate) fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_refuse_repeats_and_treat_empty_as_absent() {
        let params = Params::parse(b"a=1&b=&c=x&c=y");
        assert_eq!(params.one("a"), Ok(Some("1")));
        assert_eq!(params.one("b"), Ok(None));
        assert_eq!(params.one("z"), Ok(None));
        assert_eq!(params.one("c"), Err(Repeated("c".into())));
        assert_eq!(params.first_repeated(&["a", "c"]), Some(Repeated("c".into())));
    }

    #[test]
    fn cookies_are_found_across_headers() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, "a=1; b=2".parse().unwrap());
        headers.append(header::COOKIE, "session=xyz".parse().unwrap());
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "session"), Some("xyz"));
        assert_eq!(cookie(&headers, "none"), None);
    }

    #[test]
    fn a_cookie_is_its_first_pair_trimmed_and_unquoted() {
        let cases: [(&[u8], Option<&str>); 12] = [
            (b"s=abc", Some("abc")),
            (b" s = abc ; t=1", Some("abc")),
            (b"t=1;s=\"abc\"", Some("abc")),
            (b"s=a=b", Some("a=b")),
            (b"s=first; s=second", Some("first")),
            (b"s=; s=second", None),
            (b"s=\"\"", None),
            (b"ss=1; s_=2", None),
            (b"s", None),
            (b";;s=x;;", Some("x")),
            (b"other=caf\xc3\xa9\xff; s=tok", Some("tok")),
            (b"s=\xff", None),
        ];
        for (value, expected) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(header::COOKIE, http::HeaderValue::from_bytes(value).unwrap());
            assert_eq!(
                cookie(&headers, "s"),
                expected,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
    }
}
