//! An answer's body, read from its connection as its framing says: a
//! length, chunks (each line searched once, the trailer section bounded,
//! every bound kept with arithmetic that cannot wrap), or until the
//! connection closes.

use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::SizeHint;

use super::{Connection, MAX_CHUNK_LINE, MAX_TRAILERS};
use crate::proxy::error::{ProtocolError, UpstreamError};

/// How an answer's body is framed, and how much of it is left.
#[derive(Debug)]
pub(super) enum Framing {
    /// Read whole.
    Done,
    /// This many bytes are left.
    Length(u64),
    Chunked(Chunked),
    /// Until the upstream closes the connection.
    UntilClose,
}

/// Where a chunked body's decoding is.
#[derive(Debug)]
pub(super) enum Chunked {
    /// At a chunk-size line.
    Size,
    /// In a chunk's data, this many bytes left.
    Data(u64),
    /// At the line end after a chunk's data.
    DataEnd,
    /// In the trailer section, this many bytes read.
    Trailers(usize),
}

/// What the chunked decoder found in the bytes at hand.
pub(super) enum Decoded {
    Data(Bytes),
    End,
    NeedMore,
}

impl Chunked {
    /// Decodes from the start of `read`, consuming what it uses;
    /// `scanned` keeps how far a line not yet whole has been searched.
    pub(super) fn decode(
        &mut self,
        read: &mut BytesMut,
        scanned: &mut usize,
    ) -> Result<Decoded, UpstreamError> {
        loop {
            match self {
                Chunked::Size => {
                    let Some(line_end) = line_end(read, MAX_CHUNK_LINE, scanned)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    let line = &read[..line_end];
                    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
                    // Then only whitespace before an extension (RFC 9112 §7.1.1).
                    let mut rest = line[digits..].iter().skip_while(|b| matches!(b, b' ' | b'\t'));
                    let extension_or_nothing = rest.next().is_none_or(|&b| b == b';');
                    if digits == 0 || digits > 16 || !extension_or_nothing {
                        return Err(ProtocolError::MalformedChunkSize.into());
                    }
                    let size = std::str::from_utf8(&line[..digits])
                        .ok()
                        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
                        .ok_or(ProtocolError::MalformedChunkSize)?;
                    read.advance(line_end + 2);
                    *self = if size == 0 {
                        Chunked::Trailers(0)
                    } else {
                        Chunked::Data(size)
                    };
                }
                Chunked::Data(left) => {
                    if read.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = (*left).min(read.len() as u64) as usize;
                    *left -= take as u64;
                    if *left == 0 {
                        *self = Chunked::DataEnd;
                    }
                    return Ok(Decoded::Data(read.split_to(take).freeze()));
                }
                Chunked::DataEnd => {
                    if read.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &read[..2] != b"\r\n" {
                        return Err(ProtocolError::ChunkLongerThanItsSize.into());
                    }
                    read.advance(2);
                    *self = Chunked::Size;
                }
                Chunked::Trailers(seen) => {
                    // What is left of the bound: once it is spent, only
                    // the empty line that ends the section may come.
                    let left = MAX_TRAILERS.saturating_sub(*seen);
                    let Some(line_end) = line_end(read, left, scanned)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    read.advance(line_end + 2);
                    if line_end == 0 {
                        return Ok(Decoded::End);
                    }
                    *seen = seen.saturating_add(line_end + 2);
                }
            }
        }
    }
}

/// Where the CRLF ending the line at the start of `read` is, if it is
/// there; an error for a bare LF, or if no line end comes within `max`
/// bytes and its CRLF. `scanned` keeps how far earlier calls looked
/// (back to `0` once the line is found), so that a line that comes in
/// many reads is searched once.
pub(super) fn line_end(read: &[u8], max: usize, scanned: &mut usize) -> Result<Option<usize>, UpstreamError> {
    let bound = max.saturating_add(2);
    let limit = bound.min(read.len());
    let from = (*scanned).min(limit);
    match memchr::memchr(b'\n', &read[from..limit]) {
        Some(offset) => {
            let lf = from + offset;
            *scanned = 0;
            match lf.checked_sub(1).map(|cr| read[cr]) {
                Some(b'\r') => Ok(Some(lf - 1)),
                _ => Err(ProtocolError::BareLfInChunks.into()),
            }
        }
        None if read.len() > bound => Err(ProtocolError::ChunkedFramingTooLong.into()),
        None => {
            *scanned = limit;
            Ok(None)
        }
    }
}

/// Reads an answer's body from its connection, as its framing says.
#[derive(Debug)]
pub(crate) struct BodyReader {
    framing: Framing,
    /// How far a chunked body's line not yet whole has been searched.
    scanned: usize,
    /// The connection may carry another exchange once this body is read.
    keep_alive: bool,
}

impl BodyReader {
    pub(super) fn new(framing: Framing, keep_alive: bool) -> Self {
        Self {
            framing,
            scanned: 0,
            keep_alive,
        }
    }

    /// Whether the body was read to its end.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.framing, Framing::Done)
    }

    /// Whether, read to its end, the body leaves the connection ready for
    /// another exchange.
    pub(crate) fn keeps_alive(&self) -> bool {
        self.keep_alive
    }

    pub(crate) fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Done => SizeHint::with_exact(0),
            Framing::Length(left) => SizeHint::with_exact(left),
            _ => SizeHint::default(),
        }
    }

    /// Takes the whole body if `connection` already read it (a short
    /// answer usually comes in one read with its head).
    pub(crate) fn take_whole(&mut self, connection: &mut Connection) -> Option<Bytes> {
        match self.framing {
            Framing::Length(left) if left <= connection.read.len() as u64 => {
                self.framing = Framing::Done;
                Some(connection.read.split_to(left as usize).freeze())
            }
            _ => None,
        }
    }

    /// The next piece of the body; `None` at its end.
    pub(crate) fn poll_data(
        &mut self,
        connection: &mut Connection,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, UpstreamError>>> {
        loop {
            match &mut self.framing {
                Framing::Done => return Poll::Ready(None),
                Framing::Length(left) => {
                    if connection.read.is_empty() && std::task::ready!(connection.poll_fill(cx))? == 0 {
                        return Poll::Ready(Some(Err(UpstreamError::closed())));
                    }
                    let take = (*left).min(connection.read.len() as u64);
                    *left -= take;
                    if *left == 0 {
                        self.framing = Framing::Done;
                    }
                    return Poll::Ready(Some(Ok(connection.read.split_to(take as usize).freeze())));
                }
                Framing::UntilClose => {
                    if connection.read.is_empty() && std::task::ready!(connection.poll_fill(cx))? == 0 {
                        self.framing = Framing::Done;
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(connection.read.split().freeze())));
                }
                Framing::Chunked(chunked) => match chunked.decode(&mut connection.read, &mut self.scanned)? {
                    Decoded::Data(data) => return Poll::Ready(Some(Ok(data))),
                    Decoded::End => self.framing = Framing::Done,
                    Decoded::NeedMore => {
                        if std::task::ready!(connection.poll_fill(cx))? == 0 {
                            return Poll::Ready(Some(Err(UpstreamError::closed())));
                        }
                    }
                },
            }
        }
    }

    /// Reads the rest of the body and drops it, up to `max` bytes.
    /// Answers whether it got to the end.
    pub(crate) async fn skip(&mut self, connection: &mut Connection, max: usize) -> bool {
        let mut read = 0;
        loop {
            match std::future::poll_fn(|cx| self.poll_data(connection, cx)).await {
                None => return true,
                Some(Ok(data)) => {
                    read += data.len();
                    if read > max {
                        return false;
                    }
                }
                Some(Err(_)) => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::head::head_end;
    use super::*;
    use proptest::prelude::*;

    /// Feeds `wire` to a chunked decoder in pieces of the given sizes (as
    /// reads would bring it): the data it yields, whether it ended, and
    /// what it left unread.
    fn decode_in_pieces(wire: &[u8], pieces: &[usize]) -> Result<(Vec<u8>, bool, Vec<u8>), UpstreamError> {
        let mut decoder = Chunked::Size;
        let mut scanned = 0;
        let mut read = BytesMut::new();
        let mut fed = 0;
        let mut sizes = pieces.iter().copied().cycle();
        let mut data = Vec::new();
        loop {
            match decoder.decode(&mut read, &mut scanned)? {
                Decoded::Data(bytes) => data.extend_from_slice(&bytes),
                Decoded::End => return Ok((data, true, read.to_vec())),
                Decoded::NeedMore if fed == wire.len() => return Ok((data, false, read.to_vec())),
                Decoded::NeedMore => {
                    let n = sizes.next().unwrap_or(1).max(1).min(wire.len() - fed);
                    read.extend_from_slice(&wire[fed..fed + n]);
                    fed += n;
                }
            }
        }
    }

    proptest! {
        #[test]
        fn chunked_bodies_decode_the_same_however_they_are_read(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 0..8),
            extensions in any::<bool>(),
            pieces in prop::collection::vec(1usize..64, 1..16),
        ) {
            let mut wire = Vec::new();
            for chunk in &chunks {
                let extension = if extensions { ";name=\"v\"" } else { "" };
                wire.extend_from_slice(format!("{:X}{extension}\r\n", chunk.len()).as_bytes());
                wire.extend_from_slice(chunk);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\ntrailer: t\r\n\r\nNEXT");
            let (data, ended, left) = decode_in_pieces(&wire, &pieces).unwrap();
            prop_assert_eq!(data, chunks.concat());
            prop_assert!(ended);
            // What follows the body (a next answer) is left unread.
            prop_assert!(b"NEXT".starts_with(&left));
        }
    }

    #[test]
    fn malformed_chunked_framing_is_refused() {
        for wire in [
            &b"zz\r\n"[..],
            b"5\r\nhello!!\r\n",
            b"5\nhello\r\n",
            b"5\r\nhello\r\n0\r\nbare\nlf\r\n\r\n",
            b"ffffffffffffffffff\r\n",
            b"5 garbage\r\n",
        ] {
            assert!(
                decode_in_pieces(wire, &[3]).is_err(),
                "{}",
                String::from_utf8_lossy(wire)
            );
        }
        let endless_extension = [&b"5;"[..], &[b'x'; MAX_CHUNK_LINE + 8]].concat();
        assert!(decode_in_pieces(&endless_extension, &[512]).is_err());
    }

    #[test]
    fn a_trailer_section_past_its_bound_is_refused_whatever_its_lines() {
        for line in [MAX_TRAILERS - 2, MAX_TRAILERS - 1, MAX_TRAILERS, MAX_TRAILERS + 1] {
            let mut wire = b"2\r\nok\r\n0\r\n".to_vec();
            wire.extend(std::iter::repeat_n(b'a', line));
            wire.extend_from_slice(b"\r\n");
            wire.extend(std::iter::repeat_n(b'b', 256 * 1024));
            let outcome = decode_in_pieces(&wire, &[4096]);
            assert!(outcome.is_err(), "a {line}-byte trailer line then no line end");
        }
        // Within the bound, a trailer section ends as it should.
        let mut wire = b"0\r\n".to_vec();
        wire.extend(std::iter::repeat_n(b'a', MAX_TRAILERS - 4));
        wire.extend_from_slice(b"\r\n\r\n");
        assert!(decode_in_pieces(&wire, &[1000]).unwrap().1);
    }

    #[test]
    fn a_line_that_comes_in_many_reads_is_searched_once() {
        let mut read = BytesMut::new();
        let mut scanned = 0;
        for n in 1..=100 {
            read.extend_from_slice(&[b'a'; 10]);
            assert_eq!(line_end(&read, MAX_CHUNK_LINE, &mut scanned).unwrap(), None);
            assert_eq!(scanned, n * 10, "what was searched is not searched again");
        }
        read.extend_from_slice(b"\r\n");
        assert_eq!(line_end(&read, MAX_CHUNK_LINE, &mut scanned).unwrap(), Some(1000));
        assert_eq!(scanned, 0);

        let mut head = BytesMut::new();
        let mut scanned = 0;
        for piece in [&b"HTTP/1.1 200 OK\r"[..], b"\nA: b\r\n", b"\r", b"\n"] {
            let before = scanned;
            let end = head_end(&head, &mut scanned).unwrap();
            assert!(end.is_none() && scanned >= before);
            head.extend_from_slice(piece);
        }
        assert_eq!(head_end(&head, &mut scanned).unwrap(), Some(head.len()));
    }
}
