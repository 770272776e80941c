//! A request's head, written for the upstream: its request line, its
//! fields as the [`FieldPolicy`] says, and the framing of its body (its
//! length, or chunked).

use http::header::{self, HeaderValue};
use http::Request;
use http_body::Body;
use hyper::body::Incoming;

use super::{Fate, FieldPolicy};

/// How a request's body is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RequestFraming {
    None,
    Length(u64),
    Chunked,
}

impl RequestFraming {
    pub(super) fn of(req: &Request<Incoming>) -> Self {
        let body = req.body();
        if body.is_end_stream() {
            return Self::None;
        }
        match body.size_hint().exact() {
            Some(length) if req.headers().contains_key(header::CONTENT_LENGTH) => Self::Length(length),
            _ => Self::Chunked,
        }
    }
}

/// Writes the request line and headers of `req` into `out`, framed as
/// `body` says, its fields as `policy` says. `Expect` is not passed on:
/// the gateway already answered it for the client, and an upstream's `100
/// Continue` would be noise.
pub(super) fn encode_head(
    req: &Request<Incoming>,
    body: RequestFraming,
    policy: Option<&dyn FieldPolicy>,
    out: &mut Vec<u8>,
) {
    out.clear();
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.uri().path_and_query().map_or("/", |p| p.as_str()).as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut renamed = false;
    for (name, value) in req.headers() {
        let skip = name == header::EXPECT
            || (body != RequestFraming::None
                && (name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING));
        if skip {
            continue;
        }
        let written_as = match policy.map(|p| p.fate(name, renamed)) {
            None | Some(Fate::Kept) => name.as_str(),
            Some(Fate::LeftOut) => continue,
            Some(Fate::Renamed(other)) => {
                renamed = true;
                other
            }
        };
        write_field(out, written_as, value);
    }
    if let Some(policy) = policy {
        policy.extra_fields(&mut |name, value| write_field(out, name, value));
    }
    match body {
        RequestFraming::None => {}
        RequestFraming::Length(length) => {
            out.extend_from_slice(format!("content-length: {length}\r\n").as_bytes());
        }
        RequestFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

fn write_field(out: &mut Vec<u8>, name: &str, value: &HeaderValue) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}
