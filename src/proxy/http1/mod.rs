//! HTTP/1.1 on an upstream connection, spoken by the request's own task.
//!
//! hyper's client runs each connection as a task of its own and passes the
//! request, the response and the body's chunks to it over channels: per
//! forwarded request, two task wake-ups across tasks and a handful of
//! allocations, which made the gateway's user time per request twice
//! nginx's. Here the forwarding future writes the request head (and body)
//! itself and reads the answer's head, and the answer's body is read
//! straight from the socket by whoever polls it: the client connection's
//! task, as an nginx worker handles both sides of a request in one event
//! loop.
//!
//! What is read from the upstream is framed as RFC 9112 §6.3 says
//! (`Content-Length`, `chunked`, or until the connection closes; no body
//! for `HEAD`, `1xx`, `204` and `304`); anything else is refused as an
//! invalid answer, never forwarded half-understood.

mod body;
mod encode;
mod head;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::ThreadId;

use bytes::{Buf, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::response::Parts;
use http::{Method, Request, StatusCode, Uri};
use http_body::Body;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use self::encode::{encode_head, RequestFraming};
use self::head::{head_end, parse_head, response_status};
use crate::proxy::error::{ProtocolError, UpstreamError};

pub(crate) use self::body::BodyReader;
pub(crate) use self::head::is_hop_by_hop;

/// Entry points for the fuzz targets (`cargo fuzz`, `--cfg fuzzing`).
#[cfg(fuzzing)]
pub(crate) mod fuzzing {
    use bytes::BytesMut;

    use super::body::{line_end, Chunked, Decoded};
    use super::head::{head_end, parse_head};

    /// Finds and parses a response head in `data`, read in pieces of a
    /// size its first byte gives: the same answer as read whole; a status
    /// in 100-599; no line end in any value; no bare LF let through.
    pub fn response_head(data: &[u8]) {
        let Some((&first, wire)) = data.split_first() else {
            return;
        };
        let step = usize::from(first % 64) + 1;
        let whole = head_end(wire, &mut 0).ok().flatten();
        let mut scanned = 0;
        let mut piecewise = None;
        for end in (step..wire.len() + step).step_by(step) {
            match head_end(&wire[..end.min(wire.len())], &mut scanned) {
                Ok(Some(at)) => {
                    piecewise = Some(at);
                    break;
                }
                Ok(None) => {}
                Err(_) => break,
            }
        }
        assert_eq!(
            piecewise, whole,
            "read in pieces, the head ends where it does read whole"
        );
        let Some(end) = whole else { return };
        assert!(
            !wire[..end].windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r') && wire[0] != b'\n',
            "a bare LF passed"
        );
        let mut read = BytesMut::from(wire);
        if let Ok(Some((parts, _, _))) = parse_head(&mut read, false, &mut http::HeaderMap::new()) {
            assert!((100..=599).contains(&parts.status.as_u16()));
            for (name, value) in &parts.headers {
                assert!(
                    !value.as_bytes().iter().any(|b| matches!(b, b'\r' | b'\n')),
                    "{name}"
                );
                if parts.status != http::StatusCode::SWITCHING_PROTOCOLS {
                    assert!(!super::is_hop_by_hop(name.as_str()), "{name} forwarded");
                }
            }
        }
    }

    /// Decodes a chunked body in `data`, in pieces of a size its first
    /// byte gives: the same data, end and failure as in one piece, never
    /// more data than came.
    pub fn chunked_body(data: &[u8]) {
        let Some((&first, wire)) = data.split_first() else {
            return;
        };
        let step = usize::from(first % 32) + 1;
        let decode = |step: usize| {
            let mut decoder = Chunked::Size;
            let (mut scanned, mut fed) = (0, 0);
            let mut read = BytesMut::new();
            let mut out = Vec::new();
            loop {
                match decoder.decode(&mut read, &mut scanned) {
                    Ok(Decoded::Data(bytes)) => out.extend_from_slice(&bytes),
                    Ok(Decoded::End) => return (out, Some(true)),
                    Ok(Decoded::NeedMore) if fed == wire.len() => return (out, None),
                    Ok(Decoded::NeedMore) => {
                        let n = step.min(wire.len() - fed);
                        read.extend_from_slice(&wire[fed..fed + n]);
                        fed += n;
                    }
                    Err(_) => return (out, Some(false)),
                }
            }
        };
        let (whole, ended) = decode(wire.len().max(1));
        let (pieces, ended_in_pieces) = decode(step);
        assert_eq!(ended, ended_in_pieces);
        if ended == Some(true) {
            assert_eq!(whole, pieces);
        }
        assert!(whole.len() <= wire.len() && pieces.len() <= wire.len());
        let _ = line_end(wire, 64, &mut 0);
    }
}

/// What becomes of one of a request's own fields as it is written.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    Kept,
    LeftOut,
    /// Written under this name instead.
    Renamed(&'static str),
}

/// What a request's writer does with its fields besides framing them: which
/// of them are left out or renamed, and which are written after them. The
/// codec knows nothing of why (the proxy's forwarding policy says).
pub(crate) trait FieldPolicy: Send + Sync {
    /// What becomes of the request's own field `name`; `renamed_before`
    /// says an earlier field was already renamed.
    fn fate(&self, name: &HeaderName, renamed_before: bool) -> Fate;

    /// Writes the fields that follow the request's own.
    fn extra_fields(&self, write: &mut dyn FnMut(&str, &HeaderValue));
}

/// How much room a read into a connection's buffer asks for.
const READ_SIZE: usize = 8 * 1024;
/// The longest response head accepted (its offsets fit in a `u16`).
const MAX_HEAD: usize = u16::MAX as usize;
/// The most header fields a response head may have.
const MAX_HEADERS: usize = 100;
/// The longest chunk-size line (with its extensions) accepted.
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// The most trailer bytes read (and dropped) after a chunked body.
const MAX_TRAILERS: usize = 16 * 1024;

/// A connection's byte stream: plain TCP, or TLS to an `https` upstream.
pub(crate) enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::client::TlsStream<hyper_util::rt::TokioIo<hyper_util::rt::TokioIo<TcpStream>>>>),
}

macro_rules! on_stream {
    ($self:expr, $io:ident => $body:expr) => {
        match $self.get_mut() {
            Stream::Plain($io) => {
                let $io = Pin::new($io);
                $body
            }
            #[cfg(feature = "tls")]
            Stream::Tls($io) => {
                let $io = Pin::new(&mut **$io);
                $body
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        on_stream!(self, io => io.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        on_stream!(self, io => io.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_stream!(self, io => io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_stream!(self, io => io.poll_shutdown(cx))
    }
}

/// An open connection to the upstream, between or during exchanges.
pub(crate) struct Connection {
    stream: Stream,
    /// Read from the upstream and not yet used.
    read: BytesMut,
    /// The request head being written (kept to reuse its memory).
    write: Vec<u8>,
    /// The thread whose runtime registered the socket: its I/O events
    /// are delivered there.
    home: ThreadId,
    /// Where the exchange in progress is, for whoever must finish it.
    stage: Stage,
    /// The request in progress is a `HEAD` (its answer has no body).
    head_request: bool,
    /// The request in progress asks for a protocol upgrade.
    upgrade: bool,
    /// How far `read` has been searched for the end of an answer's head.
    head_scanned: usize,
}

/// Where a connection's exchange is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Between exchanges: ready for a request.
    Idle,
    /// The request is being written: if abandoned now, the connection
    /// cannot be used again.
    Sending,
    /// The request was written whole; the answer's head is awaited.
    Awaiting,
    /// The request was not written whole (the upstream answered first):
    /// after this answer the connection is closed.
    Interrupted,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("home", &self.home)
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

/// The head of an answer, and how its body is framed.
pub(crate) struct Head {
    pub(crate) parts: Parts,
    pub(crate) body: BodyReader,
}

impl Connection {
    pub(crate) fn new(stream: Stream) -> Self {
        Self {
            stream,
            read: BytesMut::new(),
            write: Vec::new(),
            home: std::thread::current().id(),
            stage: Stage::Idle,
            head_request: false,
            upgrade: false,
            head_scanned: 0,
        }
    }

    pub(crate) fn home(&self) -> ThreadId {
        self.home
    }

    pub(crate) fn stage(&self) -> Stage {
        self.stage
    }

    /// Whether the upstream closed this idle connection (or sent it
    /// something unasked, which makes it as unusable). Does not wait.
    pub(crate) fn is_closed(&mut self) -> bool {
        if !self.read.is_empty() || self.stage != Stage::Idle {
            return true;
        }
        let mut probe = [0u8; 1];
        match &mut self.stream {
            // No system call unless the runtime saw the socket readable.
            Stream::Plain(tcp) => {
                !matches!(tcp.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            #[cfg(feature = "tls")]
            Stream::Tls(_) => {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                let mut buf = ReadBuf::new(&mut probe);
                !Pin::new(&mut self.stream)
                    .poll_read(&mut cx, &mut buf)
                    .is_pending()
            }
        }
    }

    /// Reads more of what the upstream sent; `0` when it closed.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read.capacity() - self.read.len() < READ_SIZE / 8 {
            self.read.reserve(READ_SIZE);
        }
        let read = self.stream.read_buf(&mut self.read);
        std::pin::pin!(read).poll(cx)
    }

    async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// Sends `req` (origin-form target, `Host` set, no hop-by-hop
    /// headers) and reads the head of its answer. A body the request
    /// carries is sent as it comes; if the upstream answers before it is
    /// all sent, sending stops there and the connection is closed after
    /// the answer.
    ///
    /// Once written, the request's head is let go: its fields and target
    /// are slices of the server's read buffer, which the server can only
    /// reuse (rather than allocate anew) once no slice of it is left. Its
    /// emptied header map is `fields`, which then holds the answer's: the
    /// server hands the answer's map back for the client's next request,
    /// so one map serves the connection's whole life.
    pub(crate) async fn exchange(
        &mut self,
        req: &mut Request<Incoming>,
        policy: Option<&dyn FieldPolicy>,
        fields: &mut HeaderMap,
    ) -> Result<Head, UpstreamError> {
        let body = RequestFraming::of(req);
        self.head_request = req.method() == Method::HEAD;
        self.upgrade = req.headers().contains_key(header::UPGRADE);
        encode_head(req, body, policy, &mut self.write);
        *fields = std::mem::take(req.headers_mut());
        fields.clear();
        *req.uri_mut() = Uri::default();
        self.write_head().await?;
        if body != RequestFraming::None {
            // Until the body is all sent, an abandoned exchange cannot be
            // finished: the connection would be closed, never reused.
            self.stage = Stage::Sending;
            // Boxed: most requests have no body, and unboxed this state
            // would make every request's future larger.
            self.stage = Box::pin(self.send_body(req.body_mut(), body)).await?;
        }
        self.read_head(fields).await
    }

    /// Sends once more, on this new connection, the body-less request
    /// `failed` sent (and found closed), and reads the head of its answer.
    pub(crate) async fn exchange_again(
        &mut self,
        failed: &mut Connection,
        fields: &mut HeaderMap,
    ) -> Result<Head, UpstreamError> {
        std::mem::swap(&mut self.write, &mut failed.write);
        self.head_request = failed.head_request;
        self.upgrade = failed.upgrade;
        self.write_head().await?;
        self.read_head(fields).await
    }

    /// Writes the request head encoded in `write`.
    async fn write_head(&mut self) -> Result<(), UpstreamError> {
        let unanswered = |error| UpstreamError::io(error).nothing_answered();
        self.stage = Stage::Sending;
        self.stream.write_all(&self.write).await.map_err(unanswered)?;
        // Nothing for TCP; TLS may hold the last record until flushed.
        self.stream.flush().await.map_err(unanswered)?;
        self.stage = Stage::Awaiting;
        Ok(())
    }

    /// Sends a request's body, framed as `framing`; stops early if a
    /// final answer comes first. Answers the stage that follows.
    async fn send_body(
        &mut self,
        body: &mut Incoming,
        framing: RequestFraming,
    ) -> Result<Stage, UpstreamError> {
        self.write.clear();
        let mut written = 0;
        let mut sent: u64 = 0;
        let mut finished = false;
        std::future::poll_fn(|cx| loop {
            while written < self.write.len() {
                match Pin::new(&mut self.stream).poll_write(cx, &self.write[written..]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(UpstreamError::io(io::ErrorKind::WriteZero.into())))
                    }
                    Poll::Ready(Ok(n)) => written += n,
                    Poll::Ready(Err(err)) => return Poll::Ready(Err(UpstreamError::io(err))),
                    Poll::Pending => return self.poll_answered_early(cx),
                }
            }
            if finished {
                return match Pin::new(&mut self.stream).poll_flush(cx) {
                    Poll::Ready(Ok(())) => Poll::Ready(Ok(Stage::Awaiting)),
                    Poll::Ready(Err(err)) => Poll::Ready(Err(UpstreamError::io(err))),
                    Poll::Pending => self.poll_answered_early(cx),
                };
            }
            self.write.clear();
            written = 0;
            match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else { continue };
                    if data.is_empty() {
                        continue;
                    }
                    sent += data.len() as u64;
                    match framing {
                        RequestFraming::Length(length) if sent > length => {
                            return Poll::Ready(Err(UpstreamError::request_body(
                                "the request body is longer than its Content-Length",
                            )));
                        }
                        RequestFraming::Chunked => {
                            self.write
                                .extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                            self.write.extend_from_slice(&data);
                            self.write.extend_from_slice(b"\r\n");
                        }
                        _ => self.write.extend_from_slice(&data),
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    return Poll::Ready(Err(UpstreamError::request_body(err)));
                }
                Poll::Ready(None) => {
                    if let RequestFraming::Length(length) = framing {
                        if sent != length {
                            return Poll::Ready(Err(UpstreamError::request_body(
                                "the request body is shorter than its Content-Length",
                            )));
                        }
                    }
                    if framing == RequestFraming::Chunked {
                        self.write.extend_from_slice(b"0\r\n\r\n");
                    }
                    finished = true;
                }
                Poll::Pending => return self.poll_answered_early(cx),
            }
        })
        .await
    }

    /// While a request body waits (on the client or on the upstream):
    /// whether the upstream already sent its final answer's head.
    /// Informational answers (`100 Continue`) are dropped.
    fn poll_answered_early(&mut self, cx: &mut Context<'_>) -> Poll<Result<Stage, UpstreamError>> {
        loop {
            match self.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(UpstreamError::closed())),
                Poll::Ready(Err(err)) => return Poll::Ready(Err(UpstreamError::io(err))),
                Poll::Ready(Ok(_)) => {}
            }
            loop {
                let head = head_end(&self.read, &mut self.head_scanned).and_then(|end| match end {
                    Some(end) => Ok(Some((end, response_status(&self.read[..end])?))),
                    None => Ok(None),
                });
                match head {
                    Ok(Some((len, status)))
                        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS =>
                    {
                        self.read.advance(len);
                    }
                    Ok(Some(_)) => return Poll::Ready(Ok(Stage::Interrupted)),
                    Ok(None) => break,
                    Err(err) => return Poll::Ready(Err(err)),
                }
            }
        }
    }

    /// Reads the head of the answer to the request just sent, skipping
    /// informational answers. A `101` is taken only if the request asked
    /// for an upgrade. The answer's fields go into `headers`' memory
    /// (emptied first) once a whole head has come.
    pub(crate) async fn read_head(&mut self, headers: &mut HeaderMap) -> Result<Head, UpstreamError> {
        let (head, reusable) = match self.stage {
            Stage::Awaiting => (self.head_request, true),
            Stage::Interrupted => (self.head_request, false),
            _ => return Err(ProtocolError::NoRequest.into()),
        };
        loop {
            // Scoped to this block, so that the parsed head is not kept in
            // the future's state across the read below. Parsed once it is
            // all there: each read's bytes are searched for its end once.
            let end = head_end(&self.read, &mut self.head_scanned)?;
            if end.is_some() {
                let parsed = parse_head(&mut self.read, head, headers)?;
                if let Some((parts, framing, keep_alive)) = parsed {
                    if parts.status.is_informational() {
                        if parts.status != StatusCode::SWITCHING_PROTOCOLS {
                            continue;
                        }
                        if !self.upgrade {
                            return Err(ProtocolError::UnaskedUpgrade.into());
                        }
                    }
                    self.stage = Stage::Idle;
                    let body = BodyReader::new(framing, keep_alive && reusable);
                    return Ok(Head { parts, body });
                }
            }
            if self.read.len() > MAX_HEAD {
                return Err(ProtocolError::HeadTooLarge.into());
            }
            let nothing_yet = self.read.is_empty();
            let failed = |error: UpstreamError| match nothing_yet {
                true => error.nothing_answered(),
                false => error,
            };
            match self.fill().await {
                Ok(0) => return Err(failed(UpstreamError::closed())),
                Ok(_) => {}
                Err(err) => return Err(failed(UpstreamError::io(err))),
            }
        }
    }
}

/// A connection whose exchange switched protocols (`101`): the bytes
/// already read from it come first, then the socket's.
pub(crate) struct Upgraded(pub(crate) Connection);

impl AsyncRead for Upgraded {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let connection = &mut self.get_mut().0;
        if connection.read.is_empty() {
            return Pin::new(&mut connection.stream).poll_read(cx, buf);
        }
        let n = connection.read.len().min(buf.remaining());
        buf.put_slice(&connection.read[..n]);
        connection.read.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0.stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0.stream).poll_shutdown(cx)
    }
}
