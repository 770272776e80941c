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

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::ThreadId;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::response::Parts;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body, SizeHint};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

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

/// Why an exchange failed.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: io::Error,
    /// Nothing of an answer came: the connection was found closed (an
    /// upstream may close an idle connection just as it is reused).
    pub(crate) unanswered: bool,
}

impl Failure {
    fn answered(error: io::Error) -> Self {
        Self {
            error,
            unanswered: false,
        }
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
    ) -> Result<Head, Failure> {
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
    ) -> Result<Head, Failure> {
        std::mem::swap(&mut self.write, &mut failed.write);
        self.head_request = failed.head_request;
        self.upgrade = failed.upgrade;
        self.write_head().await?;
        self.read_head(fields).await
    }

    /// Writes the request head encoded in `write`.
    async fn write_head(&mut self) -> Result<(), Failure> {
        let unanswered = |error| Failure {
            error,
            unanswered: true,
        };
        self.stage = Stage::Sending;
        self.stream.write_all(&self.write).await.map_err(unanswered)?;
        // Nothing for TCP; TLS may hold the last record until flushed.
        self.stream.flush().await.map_err(unanswered)?;
        self.stage = Stage::Awaiting;
        Ok(())
    }

    /// Sends a request's body, framed as `framing`; stops early if a
    /// final answer comes first. Answers the stage that follows.
    async fn send_body(&mut self, body: &mut Incoming, framing: RequestFraming) -> Result<Stage, Failure> {
        self.write.clear();
        let mut written = 0;
        let mut sent: u64 = 0;
        let mut finished = false;
        std::future::poll_fn(|cx| loop {
            while written < self.write.len() {
                match Pin::new(&mut self.stream).poll_write(cx, &self.write[written..]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(Failure::answered(io::ErrorKind::WriteZero.into())))
                    }
                    Poll::Ready(Ok(n)) => written += n,
                    Poll::Ready(Err(err)) => return Poll::Ready(Err(Failure::answered(err))),
                    Poll::Pending => return self.poll_answered_early(cx),
                }
            }
            if finished {
                return match Pin::new(&mut self.stream).poll_flush(cx) {
                    Poll::Ready(Ok(())) => Poll::Ready(Ok(Stage::Awaiting)),
                    Poll::Ready(Err(err)) => Poll::Ready(Err(Failure::answered(err))),
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
                            return Poll::Ready(Err(Failure::answered(invalid(
                                "request body longer than its Content-Length",
                            ))));
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
                    return Poll::Ready(Err(Failure::answered(io::Error::other(err))));
                }
                Poll::Ready(None) => {
                    if let RequestFraming::Length(length) = framing {
                        if sent != length {
                            return Poll::Ready(Err(Failure::answered(invalid(
                                "request body shorter than its Content-Length",
                            ))));
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
    fn poll_answered_early(&mut self, cx: &mut Context<'_>) -> Poll<Result<Stage, Failure>> {
        loop {
            match self.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(Failure::answered(closed()))),
                Poll::Ready(Err(err)) => return Poll::Ready(Err(Failure::answered(err))),
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
                    Err(err) => return Poll::Ready(Err(Failure::answered(err))),
                }
            }
        }
    }

    /// Reads the head of the answer to the request just sent, skipping
    /// informational answers. A `101` is taken only if the request asked
    /// for an upgrade. The answer's fields go into `headers`' memory
    /// (emptied first) once a whole head has come.
    pub(crate) async fn read_head(&mut self, headers: &mut HeaderMap) -> Result<Head, Failure> {
        let (head, reusable) = match self.stage {
            Stage::Awaiting => (self.head_request, true),
            Stage::Interrupted => (self.head_request, false),
            _ => return Err(Failure::answered(invalid("no request awaits an answer"))),
        };
        loop {
            // Scoped to this block, so that the parsed head is not kept in
            // the future's state across the read below. Parsed once it is
            // all there: each read's bytes are searched for its end once.
            let end = head_end(&self.read, &mut self.head_scanned).map_err(Failure::answered)?;
            if end.is_some() {
                let parsed = parse_head(&mut self.read, head, headers).map_err(Failure::answered)?;
                if let Some((parts, framing, keep_alive)) = parsed {
                    if parts.status.is_informational() {
                        if parts.status != StatusCode::SWITCHING_PROTOCOLS {
                            continue;
                        }
                        if !self.upgrade {
                            return Err(Failure::answered(invalid(
                                "101 Switching Protocols to a request that asked for no upgrade",
                            )));
                        }
                    }
                    self.stage = Stage::Idle;
                    let body = BodyReader {
                        framing,
                        scanned: 0,
                        keep_alive: keep_alive && reusable,
                    };
                    return Ok(Head { parts, body });
                }
            }
            if self.read.len() > MAX_HEAD {
                return Err(Failure::answered(invalid("response head too large")));
            }
            let nothing_yet = self.read.is_empty();
            let failed = |error| Failure {
                error,
                unanswered: nothing_yet,
            };
            match self.fill().await {
                Ok(0) => return Err(failed(closed())),
                Ok(_) => {}
                Err(err) => return Err(failed(err)),
            }
        }
    }
}

/// How a request's body is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RequestFraming {
    None,
    Length(u64),
    Chunked,
}

impl RequestFraming {
    fn of(req: &Request<Incoming>) -> Self {
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
fn encode_head(
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

/// Where the response head at the start of `read` ends (past its blank
/// line), if it is all there. Every line must end in CRLF: a bare LF is
/// refused (RFC 9112 §2.2 allows it), as it would split one field in two
/// for a client that reads it as a line end. `scanned` keeps how far
/// earlier calls looked, so that each byte is looked at once however many
/// reads the head takes.
fn head_end(read: &[u8], scanned: &mut usize) -> io::Result<Option<usize>> {
    let mut at = (*scanned).min(read.len());
    while let Some(offset) = memchr::memchr(b'\n', &read[at..]) {
        let lf = at + offset;
        if lf == 0 || read[lf - 1] != b'\r' {
            return Err(invalid("bare LF in the response head"));
        }
        if lf >= 3 && read[lf - 3] == b'\r' && read[lf - 2] == b'\n' {
            *scanned = 0;
            return Ok(Some(lf + 1));
        }
        at = lf + 1;
    }
    if read.len() > MAX_HEAD {
        return Err(invalid("response head too large"));
    }
    // A CR last may yet be followed by its LF: looked at again then.
    *scanned = read.len();
    Ok(None)
}

/// The status of the complete response head `head`.
fn response_status(head: &[u8]) -> io::Result<StatusCode> {
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let (_, parsed) = parse_fields(head, &mut fields)?.ok_or_else(|| invalid("incomplete response head"))?;
    status_of(parsed.code)
}

/// A response's status, which must be 100 to 599 (RFC 9110 §15): a code
/// outside that range means nothing to a client.
fn status_of(code: Option<u16>) -> io::Result<StatusCode> {
    match code {
        Some(code @ 100..=599) => StatusCode::from_u16(code).map_err(invalid),
        _ => Err(invalid("response status outside 100-599")),
    }
}

/// Takes a complete response head from the start of `read`: its parts,
/// its body's framing, and whether the connection may carry another
/// exchange after it. `None` until the head is all there.
///
/// Hop-by-hop fields (RFC 9110 §7.6.1) and those `Connection` names are
/// left out, except in a `101`, whose `Upgrade` and `Connection` the
/// client needs. Field values are slices of the head's bytes, not copies.
fn parse_head(
    read: &mut BytesMut,
    head_request: bool,
    recycled: &mut HeaderMap,
) -> io::Result<Option<(Parts, Framing, bool)>> {
    let mut fields = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let Some((len, parsed)) = parse_fields(read, &mut fields)? else {
        return Ok(None);
    };
    if len > MAX_HEAD {
        return Err(invalid("response head too large"));
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
        let name =
            HeaderName::from_bytes(&head[usize::from(name_start)..usize::from(name_end)]).map_err(invalid)?;
        let value = head.slice(usize::from(value_start)..usize::from(value_end));
        headers.append(name, HeaderValue::from_maybe_shared(value).map_err(invalid)?);
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
fn parse_fields<'h, 'b>(
    buf: &'b [u8],
    fields: &'h mut [MaybeUninit<httparse::Header<'b>>],
) -> io::Result<Option<(usize, httparse::Response<'h, 'b>)>> {
    let mut parsed = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut parsed, buf, fields) {
        Ok(httparse::Status::Complete(len)) => Ok(Some((len, parsed))),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(err) => Err(invalid(err)),
    }
}

/// What a response head's fields say about its framing and its
/// connection.
#[derive(Debug, Default)]
struct Facts {
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
    fn note(&mut self, name: &str, value: &[u8]) -> io::Result<bool> {
        let is = |known: &str| name.eq_ignore_ascii_case(known);
        match name.len() {
            14 if is("content-length") => {
                self.content_length_field = true;
                for token in tokens(value) {
                    if !token.iter().all(u8::is_ascii_digit) {
                        return Err(invalid("Content-Length is not a number"));
                    }
                    let length = token
                        .iter()
                        .try_fold(0u64, |n, digit| {
                            n.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
                        })
                        .ok_or_else(|| invalid("Content-Length out of range"))?;
                    if self.content_length.is_some_and(|l| l != length) {
                        return Err(invalid("Content-Length values disagree"));
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
    fn framing(
        &self,
        status: StatusCode,
        version: Version,
        head_request: bool,
    ) -> io::Result<(Framing, bool)> {
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
            None if self.content_length_field => Err(invalid("empty Content-Length")),
            None => Ok((Framing::UntilClose, false)),
        }
    }
}

/// The comma-separated tokens of a field value (bytes: every response
/// has a few, and checking them for UTF-8 first cost more than reading
/// them).
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|token| !token.is_empty())
}

/// How an answer's body is framed, and how much of it is left.
#[derive(Debug)]
enum Framing {
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
enum Chunked {
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
enum Decoded {
    Data(Bytes),
    End,
    NeedMore,
}

impl Chunked {
    /// Decodes from the start of `read`, consuming what it uses;
    /// `scanned` keeps how far a line not yet whole has been searched.
    fn decode(&mut self, read: &mut BytesMut, scanned: &mut usize) -> io::Result<Decoded> {
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
                        return Err(invalid("malformed chunk size"));
                    }
                    let size = std::str::from_utf8(&line[..digits])
                        .ok()
                        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
                        .ok_or_else(|| invalid("malformed chunk size"))?;
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
                        return Err(invalid("chunk data longer than its size"));
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
fn line_end(read: &[u8], max: usize, scanned: &mut usize) -> io::Result<Option<usize>> {
    let bound = max.saturating_add(2);
    let limit = bound.min(read.len());
    let from = (*scanned).min(limit);
    match memchr::memchr(b'\n', &read[from..limit]) {
        Some(offset) => {
            let lf = from + offset;
            *scanned = 0;
            match lf.checked_sub(1).map(|cr| read[cr]) {
                Some(b'\r') => Ok(Some(lf - 1)),
                _ => Err(invalid("bare LF in chunked framing")),
            }
        }
        None if read.len() > bound => Err(invalid("chunked framing line too long")),
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
    ) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            match &mut self.framing {
                Framing::Done => return Poll::Ready(None),
                Framing::Length(left) => {
                    if connection.read.is_empty() && std::task::ready!(connection.poll_fill(cx))? == 0 {
                        return Poll::Ready(Some(Err(closed())));
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
                            return Poll::Ready(Some(Err(closed())));
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

fn invalid(reason: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "the upstream closed the connection")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `wire` to a chunked decoder in pieces of the given sizes (as
    /// reads would bring it): the data it yields, whether it ended, and
    /// what it left unread.
    fn decode_in_pieces(wire: &[u8], pieces: &[usize]) -> io::Result<(Vec<u8>, bool, Vec<u8>)> {
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
