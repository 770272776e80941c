//! What can go wrong forwarding a request: one error type, with a kind
//! (what went wrong), whether the request may be sent again, the status a
//! client is answered with, and the chain of what caused it.

use std::fmt;

use http::StatusCode;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong, in a word: a label of the `authgate_upstream_errors_total`
/// metric.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No connection could be opened: refused, unreachable, or its TLS
    /// handshake failed.
    Connect,
    /// No answer's head within `upstream.timeout_secs`.
    Timeout,
    /// The connection closed before the answer, or in the middle of it.
    Closed,
    /// What came is not an HTTP/1.1 answer the gateway can forward.
    Protocol,
    /// Reading or writing the connection failed.
    Io,
    /// The client's request body broke off, or did not match its length.
    RequestBody,
}

impl ErrorKind {
    /// The kind's name, as the metric labels it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Closed => "closed",
            Self::Protocol => "protocol",
            Self::Io => "io",
            Self::RequestBody => "request_body",
        }
    }
}

/// What was wrong with what an upstream sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The head is larger than the gateway reads.
    #[error("the response head is too large")]
    HeadTooLarge,
    /// A line of the head ends in LF without CR (RFC 9112 §2.2 allows
    /// refusing it; a client reading it as a line end would see two
    /// fields where the gateway saw one).
    #[error("a bare LF in the response head")]
    BareLfInHead,
    /// Not an HTTP/1 response head at all.
    #[error("not an HTTP/1 response head ({0})")]
    Unparsable(String),
    /// A status outside 100-599 (RFC 9110 §15).
    #[error("the response status {0} is outside 100-599")]
    StatusOutOfRange(u16),
    /// A field whose name or value HTTP does not allow.
    #[error("a response field with an invalid name or value")]
    InvalidField,
    /// `Content-Length` holds something other than digits.
    #[error("Content-Length is not a number")]
    ContentLengthNotANumber,
    /// `Content-Length` does not fit in 64 bits.
    #[error("Content-Length is out of range")]
    ContentLengthOutOfRange,
    /// Two `Content-Length` values that differ.
    #[error("Content-Length values disagree")]
    ContentLengthsDisagree,
    /// A `Content-Length` field with no value.
    #[error("an empty Content-Length")]
    EmptyContentLength,
    /// A chunk-size line that is not hex digits and extensions.
    #[error("a malformed chunk size")]
    MalformedChunkSize,
    /// A chunk's data does not end where its size says.
    #[error("chunk data longer than its size")]
    ChunkLongerThanItsSize,
    /// A line of the chunked framing ends in LF without CR.
    #[error("a bare LF in chunked framing")]
    BareLfInChunks,
    /// A chunk-size line, or the trailer section, past its bound.
    #[error("chunked framing past its bound")]
    ChunkedFramingTooLong,
    /// `101 Switching Protocols` to a request that asked for no upgrade.
    #[error("101 Switching Protocols to a request that asked for no upgrade")]
    UnaskedUpgrade,
    /// An answer read when no request awaits one.
    #[error("an answer to no request")]
    NoRequest,
}

/// Whether a request that failed may be sent again, on another
/// connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retry {
    /// Never: the upstream may have acted on it.
    Never,
    /// Nothing of an answer came, as when an upstream closes an idle
    /// connection just as it is reused: a request that can be sent again
    /// whole (no body) may be, if it is idempotent or was not written.
    IfNothingAnswered,
}

/// Why a request could not be forwarded.
#[derive(Debug)]
pub struct UpstreamError {
    kind: ErrorKind,
    retry: Retry,
    cause: Option<BoxError>,
}

impl UpstreamError {
    fn new(kind: ErrorKind, cause: Option<BoxError>) -> Self {
        Self {
            kind,
            retry: Retry::Never,
            cause,
        }
    }

    /// No connection could be opened.
    pub(crate) fn connect(cause: impl Into<BoxError>) -> Self {
        Self::new(ErrorKind::Connect, Some(cause.into()))
    }

    /// No answer's head in time.
    pub(crate) fn timeout() -> Self {
        Self::new(ErrorKind::Timeout, None)
    }

    /// The connection closed.
    pub(crate) fn closed() -> Self {
        Self::new(ErrorKind::Closed, None)
    }

    /// What the upstream sent cannot be forwarded.
    pub(crate) fn protocol(problem: ProtocolError) -> Self {
        Self::new(ErrorKind::Protocol, Some(Box::new(problem)))
    }

    /// The connection failed.
    pub(crate) fn io(cause: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, Some(Box::new(cause)))
    }

    /// The client's request body broke off or did not match its length.
    pub(crate) fn request_body(cause: impl Into<BoxError>) -> Self {
        Self::new(ErrorKind::RequestBody, Some(cause.into()))
    }

    /// The same error, with nothing of an answer come (see [`Retry`]).
    pub(crate) fn nothing_answered(mut self) -> Self {
        self.retry = Retry::IfNothingAnswered;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the request may be sent again.
    pub fn retry(&self) -> Retry {
        self.retry
    }

    /// The status a client is answered with: `504` for a timeout, `400`
    /// for a request body the client broke, `502` for the rest.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::RequestBody => StatusCode::BAD_REQUEST,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    /// What the client is told, in a sentence.
    pub(crate) fn description(&self) -> &'static str {
        match self.kind {
            ErrorKind::Connect => "The upstream service cannot be reached.",
            ErrorKind::Timeout => "The upstream service did not answer in time.",
            ErrorKind::Closed => "The upstream service closed the connection without answering.",
            ErrorKind::Protocol => "The upstream service sent an answer the gateway cannot forward.",
            ErrorKind::Io => "The connection to the upstream service failed.",
            ErrorKind::RequestBody => "The request body did not arrive whole, or not as long as it said.",
        }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::Connect => "cannot connect to the upstream",
            ErrorKind::Timeout => "the upstream did not answer in time",
            ErrorKind::Closed => "the upstream closed the connection",
            ErrorKind::Protocol => "the upstream's answer cannot be forwarded",
            ErrorKind::Io => "the upstream connection failed",
            ErrorKind::RequestBody => "the client's request body broke off",
        };
        match &self.cause {
            Some(cause) => write!(f, "{what}: {cause}"),
            None => f.write_str(what),
        }
    }
}

impl std::error::Error for UpstreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|cause| cause as &(dyn std::error::Error + 'static))
    }
}

impl From<ProtocolError> for UpstreamError {
    fn from(problem: ProtocolError) -> Self {
        Self::protocol(problem)
    }
}

impl From<std::io::Error> for UpstreamError {
    fn from(cause: std::io::Error) -> Self {
        Self::io(cause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_says_what_caused_it_and_what_the_client_gets() {
        let err = UpstreamError::protocol(ProtocolError::StatusOutOfRange(999));
        assert_eq!(err.kind(), ErrorKind::Protocol);
        assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(err.retry(), Retry::Never);
        assert_eq!(
            err.to_string(),
            "the upstream's answer cannot be forwarded: the response status 999 is outside 100-599"
        );
        let source = std::error::Error::source(&err).unwrap();
        assert_eq!(source.to_string(), "the response status 999 is outside 100-599");
        let closed = UpstreamError::closed().nothing_answered();
        assert_eq!(
            (closed.retry(), closed.status()),
            (Retry::IfNothingAnswered, StatusCode::BAD_GATEWAY)
        );
        assert_eq!(UpstreamError::timeout().status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            UpstreamError::request_body("short").status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(ErrorKind::RequestBody.as_str(), "request_body");
    }
}
