//! How long a client connection may stay open without a request, and the
//! server's graceful shutdown of its connections.
//!
//! hyper's header-read timeout covers an HTTP/1 connection once its HTTP/1
//! side reads a request head, and between its requests. It does not cover
//! what comes first: the auto builder reads a connection's first bytes to
//! tell HTTP/1 from the HTTP/2 preface before hyper's HTTP/1 side (and its
//! timer) exists, so a connection that sends nothing, or half a preface,
//! was never closed. Nor does HTTP/2 have a timeout for its first
//! request, or for a connection with no stream open. Each such connection
//! held one of `max_connections`' slots for as long as its client liked.
//!
//! Here every connection must start a request within the header-read
//! timeout (and a second, so that hyper's own `408` for half a head comes
//! first), and an HTTP/2 connection with no stream open for that long is
//! asked to close (`GOAWAY`) and, if it does not within a grace period,
//! closed.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Version;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::watch;

use crate::runtime::timer::CoarseSleep;

/// How long a connection asked to close may take before it is closed.
const GRACE: Duration = Duration::from_secs(1);

/// What one client connection has been doing: requests started, and
/// HTTP/2 streams still open.
#[derive(Clone, Debug)]
pub(crate) struct Activity(Arc<State>);

#[derive(Debug)]
struct State {
    opened: Instant,
    /// A request has started on the connection.
    requested: AtomicBool,
    /// That request was HTTP/2: streams are tracked.
    http2: AtomicBool,
    open_streams: AtomicUsize,
    /// When the last stream closed, in nanoseconds since `opened`.
    quiet_since_ns: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Self {
        Self(Arc::new(State {
            opened: Instant::now(),
            requested: AtomicBool::new(false),
            http2: AtomicBool::new(false),
            open_streams: AtomicUsize::new(0),
            quiet_since_ns: AtomicU64::new(0),
        }))
    }

    /// Notes a request starting. An HTTP/2 request's stream counts as open
    /// until the guard (kept with its answer's body) is dropped.
    pub(crate) fn request(&self, version: Version) -> Option<StreamGuard> {
        let state = &self.0;
        // HTTP/2 is noted first: a connection is never seen requested but
        // not yet HTTP/2, which would leave its deadline unwatched.
        let http2 = version == Version::HTTP_2;
        if http2 {
            state.http2.store(true, Ordering::Relaxed);
        }
        if !state.requested.load(Ordering::Relaxed) {
            state.requested.store(true, Ordering::Relaxed);
        }
        if !http2 {
            return None;
        }
        state.open_streams.fetch_add(1, Ordering::AcqRel);
        Some(StreamGuard(self.0.clone()))
    }

    /// Whether [`Activity::expired`] still has anything to watch: until a
    /// first request, and on an HTTP/2 connection.
    fn is_watched(&self) -> bool {
        !self.0.requested.load(Ordering::Relaxed) || self.0.http2.load(Ordering::Relaxed)
    }

    /// Completes once the connection has gone too long without a request:
    /// none within `first_within` of opening, or (HTTP/2) no stream open
    /// for `idle_for`. An HTTP/1 connection's later requests are hyper's to
    /// time.
    async fn expired(&self, first_within: Duration, idle_for: Duration) {
        let state = &self.0;
        let mut deadline = state.opened + first_within;
        loop {
            CoarseSleep::until(deadline).await;
            if !state.requested.load(Ordering::Relaxed) {
                return;
            }
            if !state.http2.load(Ordering::Relaxed) {
                return std::future::pending().await;
            }
            let now = Instant::now();
            if state.open_streams.load(Ordering::Acquire) > 0 {
                deadline = now + idle_for;
                continue;
            }
            let quiet_since =
                state.opened + Duration::from_nanos(state.quiet_since_ns.load(Ordering::Acquire));
            if now >= quiet_since + idle_for {
                return;
            }
            deadline = quiet_since + idle_for;
        }
    }
}

/// An open HTTP/2 stream of a connection; closed when dropped.
#[derive(Debug)]
pub(crate) struct StreamGuard(Arc<State>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let state = &self.0;
        let since = u64::try_from(state.opened.elapsed().as_nanos()).unwrap_or(u64::MAX);
        state.quiet_since_ns.store(since, Ordering::Release);
        state.open_streams.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project! {
    /// An answer's body, keeping its stream open (see [`Activity`]) until
    /// it is dropped.
    pub(crate) struct TrackedBody<B> {
        #[pin]
        body: B,
        guard: Option<StreamGuard>,
    }
}

impl<B> TrackedBody<B> {
    pub(crate) fn new(body: B, guard: Option<StreamGuard>) -> Self {
        Self { body, guard }
    }
}

impl<B: Body<Data = Bytes>> Body for TrackedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The deadlines a connection is held to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadlines {
    /// The header-read timeout: the first request must start within it
    /// (and [`FIRST_REQUEST_MARGIN`]), and an HTTP/2 connection may stay
    /// this long with no stream open.
    pub(crate) idle_for: Duration,
}

/// Added to the first request's deadline, so that a client that sent half
/// a request head gets hyper's `408` rather than a silent close.
const FIRST_REQUEST_MARGIN: Duration = Duration::from_secs(1);

/// Tells a thread's connections that the server is shutting down, and
/// waits for them to finish.
#[derive(Debug)]
pub(crate) struct Drain(watch::Sender<bool>);

impl Drain {
    pub(crate) fn new() -> Self {
        Self(watch::channel(false).0)
    }

    /// What one connection keeps while it is served.
    pub(crate) fn watcher(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }

    /// Asks every connection to finish, and completes when all have.
    pub(crate) async fn finish(self) {
        let _ = self.0.send(true);
        self.0.closed().await;
    }
}

/// Drives `connection` to its end. It is asked to finish (`shut_down`,
/// hyper's graceful shutdown) when the server shuts down, and when it has
/// gone too long without a request (see [`Activity`]); in that case, if it
/// has not finished within a grace period, it is dropped (closed), and
/// `None` is answered.
pub(crate) async fn drive<C, E>(
    connection: C,
    shut_down: fn(Pin<&mut C>),
    activity: &Activity,
    deadlines: Deadlines,
    mut stopping: watch::Receiver<bool>,
) -> Option<Result<(), E>>
where
    C: Future<Output = Result<(), E>>,
{
    let mut connection = pin!(connection);
    let expired = activity.expired(deadlines.idle_for + FIRST_REQUEST_MARGIN, deadlines.idle_for);
    let mut expired = pin!(expired);
    // Polled only while it matters: an HTTP/1 connection's later requests
    // are hyper's to time, and its deadline need not be looked at on every
    // wake of the connection.
    let mut expired = std::future::poll_fn(|cx| match activity.is_watched() {
        true => expired.as_mut().poll(cx),
        false => Poll::Pending,
    });
    // Asked to finish because the server is stopping: it may take the
    // server's own grace period.
    let mut asked = false;
    let mut stop_seen = false;
    loop {
        tokio::select! {
            biased;
            result = connection.as_mut() => return Some(result),
            () = &mut expired, if !asked => {
                tracing::debug!("connection without a request in time: closing it");
                shut_down(connection.as_mut());
                break;
            }
            changed = stopping.changed(), if !stop_seen => {
                stop_seen = true;
                if changed.is_ok() {
                    shut_down(connection.as_mut());
                    asked = true;
                }
            }
        }
    }
    tokio::select! {
        result = connection.as_mut() => Some(result),
        () = CoarseSleep::until(Instant::now() + GRACE) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_without_a_request_expires_and_one_with_a_request_does_not() {
        let idle = Activity::new();
        let within = Duration::from_millis(300);
        tokio::time::timeout(Duration::from_secs(3), idle.expired(within, within))
            .await
            .expect("no request: expired");

        let http1 = Activity::new();
        assert!(http1.request(Version::HTTP_11).is_none());
        assert!(
            tokio::time::timeout(Duration::from_millis(1200), http1.expired(within, within))
                .await
                .is_err(),
            "an HTTP/1 connection's later requests are hyper's to time"
        );
    }

    #[tokio::test]
    async fn an_http2_connection_expires_only_with_no_stream_open() {
        let activity = Activity::new();
        let within = Duration::from_millis(300);
        let stream = activity.request(Version::HTTP_2).expect("a stream");
        assert!(
            tokio::time::timeout(Duration::from_millis(1200), activity.expired(within, within))
                .await
                .is_err(),
            "a stream is open"
        );
        drop(stream);
        let closed = Instant::now();
        tokio::time::timeout(Duration::from_secs(3), activity.expired(within, within))
            .await
            .expect("no stream open: expired");
        assert!(closed.elapsed() >= within, "{:?}", closed.elapsed());
    }
}
