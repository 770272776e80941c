//! An answer's head: found (each byte looked at once, every line ending
//! in CRLF), parsed, its status checked, its hop-by-hop fields left out,
//! and its body's framing read from it (RFC 9112 §6.3).

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::response::Parts;
use http::{Response, StatusCode, Version};

use super::body::{Chunked, Framing};
use super::{MAX_HEAD, MAX_HEADERS};
use crate::proxy::error::{ProtocolError, UpstreamError};

/// Where the response head at the start of `read` ends (past its blank
/// line), if it is all there. Every line must end in CRLF: a bare LF is
/// refused (RFC 9112 §2.2 allows it), as it would split one field in two
/// for a client that reads it as a line end. `scanned` keeps how far
/// earlier calls looked, so that each byte is looked at once however many
/// reads the head takes.
pub(super) fn head_end(read: &[u8], scanned: &mut usize) -> Result<Option<usize>, UpstreamError> {
    let mut at = (*scanned).min(read.len());
    while let Some(offset) = memchr::memchr(b'\n', &read[at..]) {
        let lf = at + offset;
        if lf == 0 || read[lf - 1] != b'\r' {
            return Err(ProtocolError::BareLfInHead.into());
        }
        if lf >= 3 && read[lf - 3] == b'\r' && read[lf - 2] == b'\n' {
            *scanned = 0;
            return Ok(Some(lf + 1));
        }
        at = lf + 1;
    }
    if read.len() > MAX_HEAD {
        return Err(ProtocolError::HeadTooLarge.into());
    }
    // A CR last may yet be followed by its LF: looked at again then.
    *scanned = read.len();
    Ok(None)
}

/// The status of the complete response head `head`.
pub(super) fn response_status(head: &[u8]) -> Result<StatusCode, UpstreamError> {
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let (_, parsed) =
        parse_fields(head, &mut fields)?.ok_or(ProtocolError::Unparsable("incomplete".to_owned()))?;
    status_of(parsed.code)
}

/// A response's status, which must be 100 to 599 (RFC 9110 §15): a code
/// outside that range means nothing to a client.
pub(super) fn status_of(code: Option<u16>) -> Result<StatusCode, UpstreamError> {
    match code {
        Some(code @ 100..=599) => {
            StatusCode::from_u16(code).map_err(|_| ProtocolError::StatusOutOfRange(code).into())
        }
        other => Err(ProtocolError::StatusOutOfRange(other.unwrap_or(0)).into()),
    }
}

/// Takes a complete response head from the start of `read`: its parts,
/// its body's framing, and whether the connection may carry another
/// exchange after it. `None` until the head is all there.
///
/// Hop-by-hop fields (RFC 9110 §7.6.1) and those `Connection` names are
/// left out, except in a `101`, whose `Upgrade` and `Connection` the
/// client needs. Field values are slices of the head's bytes, not copies.
pub(super) fn parse_head(
    read: &mut BytesMut,
    head_request: bool,
    recycled: &mut HeaderMap,
) -> Result<Option<(Parts, Framing, bool)>, UpstreamError> {
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let Some((len, parsed)) = parse_fields(read, &mut fields)? else {
        return Ok(None);
    };
    if len > MAX_HEAD {
        return Err(ProtocolError::HeadTooLarge.into());
    }
    let status = status_of(parsed.code)?;
    let version = if parsed.version == Some(1) {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    let upgrading = status == StatusCode::SWITCHING_PROTOCOLS;
    // Where the fields to keep are in the head (name, value; start and
    // end), so that once the head is split off the buffer their values
    // can be slices of it. `MAX_HEAD` keeps offsets within `u16`.
    let start = read.as_ptr() as usize;
    let offset = |bytes: &[u8]| (bytes.as_ptr() as usize - start) as u16;
    let span = |bytes: &[u8]| (offset(bytes), offset(bytes) + bytes.len() as u16);
    let mut kept = [((0u16, 0u16), (0u16, 0u16)); MAX_HEADERS];
    let mut count = 0;
    let mut facts = Facts::default();
    for field in parsed.headers.iter() {
        if !facts.note(field.name, field.value)? || upgrading {
            kept[count] = (span(field.name.as_bytes()), span(field.value));
            count += 1;
        }
    }
    let (framing, keep_alive) = facts.framing(status, version, head_request)?;
    let head = read.split_to(len).freeze();
    let mut headers = std::mem::take(recycled);
    headers.clear();
    headers.reserve(count);
    for &((name_start, name_end), (value_start, value_end)) in &kept[..count] {
        let name = HeaderName::from_bytes(&head[usize::from(name_start)..usize::from(name_end)])
            .map_err(|_| ProtocolError::InvalidField)?;
        let value = head.slice(usize::from(value_start)..usize::from(value_end));
        headers.append(
            name,
            HeaderValue::from_maybe_shared(value).map_err(|_| ProtocolError::InvalidField)?,
        );
    }
    if facts.transfer_encoding {
        headers.remove(header::CONTENT_LENGTH);
    }
    for named in facts.named.iter().flatten() {
        headers.remove(named);
    }
    let (mut parts, ()) = Response::new(()).into_parts();
    parts.status = status;
    parts.version = version;
    parts.headers = headers;
    Ok(Some((parts, framing, keep_alive)))
}

/// Parses the response head at the start of `buf` into `fields`: its
/// length and what it says, or `None` if it is not all there.
pub(super) fn parse_fields<'h, 'b>(
    buf: &'b [u8],
    fields: &'h mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<(usize, httparse::Response<'h, 'b>)>, UpstreamError> {
    let mut parsed = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut parsed, buf, fields) {
        Ok(httparse::Status::Complete(len)) => Ok(Some((len, parsed))),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(err) => Err(ProtocolError::Unparsable(err.to_string()).into()),
    }
}

/// What a response head's fields say about its framing and its
/// connection.
#[derive(Debug, Default)]
pub(super) struct Facts {
    content_length: Option<u64>,
    /// A `Content-Length` field was there (perhaps empty).
    content_length_field: bool,
    transfer_encoding: bool,
    /// The last transfer coding is `chunked`.
    chunked: bool,
    close: bool,
    keep_alive: bool,
    /// Fields `Connection` names besides its options: dropped too.
    named: Option<Vec<HeaderName>>,
}

/// Hop-by-hop field names (RFC 9110 §7.6.1, and `HTTP2-Settings`, which
/// only means something with an `h2c` upgrade): never forwarded, either
/// way.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "http2-settings",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether `name` (in any case) is a hop-by-hop field's.
pub(crate) fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|hop| hop.len() == name.len() && name.eq_ignore_ascii_case(hop))
}

impl Facts {
    /// Notes one field; answers whether it is hop-by-hop. Names are told
    /// apart by their length first: this runs for every field.
    pub(super) fn note(&mut self, name: &str, value: &[u8]) -> Result<bool, UpstreamError> {
        let is = |known: &str| name.eq_ignore_ascii_case(known);
        match name.len() {
            14 if is("content-length") => {
                self.content_length_field = true;
                for token in tokens(value) {
                    if !token.iter().all(u8::is_ascii_digit) {
                        return Err(ProtocolError::ContentLengthNotANumber.into());
                    }
                    let length = token
                        .iter()
                        .try_fold(0u64, |n, digit| {
                            n.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
                        })
                        .ok_or(ProtocolError::ContentLengthOutOfRange)?;
                    if self.content_length.is_some_and(|l| l != length) {
                        return Err(ProtocolError::ContentLengthsDisagree.into());
                    }
                    self.content_length = Some(length);
                }
                Ok(false)
            }
            17 if is("transfer-encoding") => {
                self.transfer_encoding = true;
                if let Some(last) = tokens(value).last() {
                    self.chunked = last.eq_ignore_ascii_case(b"chunked");
                }
                Ok(true)
            }
            10 if is("connection") => {
                for token in tokens(value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        self.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        self.keep_alive = true;
                    } else if !token.eq_ignore_ascii_case(b"upgrade") {
                        if let Ok(named) = HeaderName::from_bytes(token) {
                            self.named.get_or_insert_with(Vec::new).push(named);
                        }
                    }
                }
                Ok(true)
            }
            _ => Ok(is_hop_by_hop(name)),
        }
    }

    /// How the body is framed (RFC 9112 §6.3), and whether the connection
    /// can carry another exchange after it.
    pub(super) fn framing(
        &self,
        status: StatusCode,
        version: Version,
        head_request: bool,
    ) -> Result<(Framing, bool), UpstreamError> {
        let keep_alive = !self.close && (version == Version::HTTP_11 || self.keep_alive);
        if head_request
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return Ok((Framing::Done, keep_alive));
        }
        if self.transfer_encoding {
            if !self.chunked {
                return Ok((Framing::UntilClose, false));
            }
            // With a Content-Length too: a smuggling attempt or a broken
            // upstream; the length is dropped and the connection not reused.
            return Ok((
                Framing::Chunked(Chunked::Size),
                keep_alive && !self.content_length_field,
            ));
        }
        match self.content_length {
            Some(0) => Ok((Framing::Done, keep_alive)),
            Some(length) => Ok((Framing::Length(length), keep_alive)),
            None if self.content_length_field => Err(ProtocolError::EmptyContentLength.into()),
            None => Ok((Framing::UntilClose, false)),
        }
    }
}

/// The comma-separated tokens of a field value (bytes: every response
/// has a few, and checking them for UTF-8 first cost more than reading
/// them).
pub(super) fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_head_with_a_bare_lf_or_an_odd_status_is_refused() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\nX-A: a\nSet-Cookie: pwn=1\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\n\n",
            b"HTTP/1.1 200 OK\r\n\n",
        ] {
            assert!(head_end(bad, &mut 0).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        for code in [0, 99, 600, 999] {
            assert!(status_of(Some(code)).is_err(), "{code}");
        }
        for code in [100, 101, 200, 599] {
            assert_eq!(status_of(Some(code)).unwrap().as_u16(), code);
        }
    }

    #[test]
    fn answers_are_framed_as_rfc_9112_says() {
        let frame = |status: u16, version, head_request, fields: &[(&str, &str)]| {
            let mut facts = Facts::default();
            for (name, value) in fields {
                facts.note(name, value.as_bytes()).map_err(|e| e.to_string())?;
            }
            facts
                .framing(StatusCode::from_u16(status).unwrap(), version, head_request)
                .map(|(framing, keep_alive)| (format!("{framing:?}"), keep_alive))
                .map_err(|e| e.to_string())
        };
        let v11 = Version::HTTP_11;
        assert_eq!(
            frame(200, v11, false, &[("content-length", "7")]),
            Ok(("Length(7)".into(), true))
        );
        assert_eq!(
            frame(200, v11, false, &[("content-length", "7, 7")]),
            Ok(("Length(7)".into(), true))
        );
        assert_eq!(
            frame(200, v11, false, &[("content-length", "0")]),
            Ok(("Done".into(), true))
        );
        assert_eq!(
            frame(200, v11, true, &[("content-length", "7")]),
            Ok(("Done".into(), true))
        );
        assert_eq!(frame(204, v11, false, &[]), Ok(("Done".into(), true)));
        assert_eq!(
            frame(304, v11, false, &[("content-length", "7")]),
            Ok(("Done".into(), true))
        );
        assert_eq!(frame(200, v11, false, &[]), Ok(("UntilClose".into(), false)));
        assert_eq!(
            frame(200, v11, false, &[("transfer-encoding", "gzip")]),
            Ok(("UntilClose".into(), false))
        );
        assert_eq!(
            frame(200, v11, false, &[("transfer-encoding", "gzip, chunked")]),
            Ok(("Chunked(Size)".into(), true))
        );
        assert_eq!(
            frame(
                200,
                v11,
                false,
                &[("transfer-encoding", "chunked"), ("content-length", "3")]
            ),
            Ok(("Chunked(Size)".into(), false))
        );
        assert_eq!(
            frame(
                200,
                v11,
                false,
                &[("content-length", "7"), ("connection", "close")]
            ),
            Ok(("Length(7)".into(), false))
        );
        assert_eq!(
            frame(200, Version::HTTP_10, false, &[("content-length", "7")]),
            Ok(("Length(7)".into(), false))
        );
        assert_eq!(
            frame(
                200,
                Version::HTTP_10,
                false,
                &[("content-length", "7"), ("connection", "keep-alive")]
            ),
            Ok(("Length(7)".into(), true))
        );
        assert_eq!(
            frame(200, v11, false, &[("content-length", " 7 ,7")]),
            Ok(("Length(7)".into(), true)),
            "a list of one length, repeated"
        );
        assert_eq!(
            frame(200, v11, false, &[("content-length", "18446744073709551615")]),
            Ok(("Length(18446744073709551615)".into(), true))
        );
        for bad in [
            "7, 8",
            "+7",
            "seven",
            "",
            "18446744073709551616",
            "99999999999999999999999",
        ] {
            assert!(
                frame(200, v11, false, &[("content-length", bad)]).is_err(),
                "{bad}"
            );
        }
    }

    fn head_of(wire: &[u8]) -> (Parts, String, bool, Vec<u8>) {
        let mut read = BytesMut::from(wire);
        let (parts, framing, keep_alive) = parse_head(&mut read, false, &mut HeaderMap::new())
            .unwrap()
            .unwrap();
        (parts, format!("{framing:?}"), keep_alive, read.to_vec())
    }

    #[test]
    fn hop_by_hop_fields_are_left_out_of_an_answer() {
        let (parts, framing, keep_alive, rest) = head_of(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: timeout=5\r\nX-Secret: 1\r\n\
              Trailer: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nX-Kept: yes\r\n\r\nokNEXT",
        );
        let mut names: Vec<&str> = parts.headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "content-type", "x-kept"]);
        assert_eq!((framing.as_str(), keep_alive), ("Length(2)", true));
        assert_eq!(rest, b"okNEXT", "the body and what follows are left to read");

        let (parts, framing, keep_alive, _) =
            head_of(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n");
        assert!(parts.headers.is_empty(), "{:?}", parts.headers);
        assert_eq!((framing.as_str(), keep_alive), ("Chunked(Size)", false));

        let (parts, ..) =
            head_of(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
        assert_eq!(
            parts.headers["upgrade"], "websocket",
            "a 101 keeps what the client needs"
        );
        assert_eq!(parts.headers["connection"], "Upgrade");
    }
}
