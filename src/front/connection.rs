//! One client connection's limits and what they watch: whether it has sent
//! its first request, how many of its requests are in flight, since when it
//! has been idle, whether it may carry another request, and whether its
//! socket has taken a write lately.
//!
//! hyper offers a header-read timeout and HTTP/2 pings; the rest is here. The
//! connection's task ([`super::http`]) asks [`Activity::deadline`] what to
//! wait for: the first request (`handshake_timeout_s`, from accept), or the
//! end of an idle spell (`keepalive_timeout_s` on HTTP/1,
//! `http2_idle_timeout_s` on HTTP/2 with no open stream), and
//! [`Activity::releasable`] whether an HTTP/1 connection is idle enough to
//! give its buffers back. [`WriteStall`] fails the socket when the client has
//! taken no byte for `send_timeout_s`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderMap;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use crate::config::ServerConfig;

/// `[server]`'s connection limits, as durations.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Most connections served at once.
    pub max_connections: usize,
    /// From accept to the first request's headers (TLS and protocol detection included).
    pub handshake_timeout: Duration,
    /// Longest idle spell of an HTTP/1 connection.
    pub keepalive_timeout: Duration,
    /// Interval of HTTP/2 keep-alive pings.
    pub http2_keepalive_interval: Duration,
    /// How long a ping may go unanswered.
    pub http2_keepalive_timeout: Duration,
    /// Longest spell of an HTTP/2 connection without open streams.
    pub http2_idle_timeout: Duration,
    /// Whether cleartext listeners speak HTTP/2 (prior knowledge).
    pub h2c: bool,
    /// Longest time a client may take nothing of a response.
    pub send_timeout: Duration,
}

impl ConnectionLimits {
    /// The limits `[server]` sets.
    pub fn from_config(server: &ServerConfig) -> Self {
        Self {
            max_connections: server.max_connections,
            handshake_timeout: Duration::from_secs(server.handshake_timeout_s),
            keepalive_timeout: Duration::from_secs(server.keepalive_timeout_s),
            http2_keepalive_interval: Duration::from_secs(server.http2_keepalive_interval_s),
            http2_keepalive_timeout: Duration::from_secs(server.http2_keepalive_timeout_s),
            http2_idle_timeout: Duration::from_secs(server.http2_idle_timeout_s),
            h2c: server.h2c,
            send_timeout: Duration::from_secs(server.send_timeout_s),
        }
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self::from_config(&ServerConfig::default())
    }
}

/// What the connection's task does when a deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No request yet: drop the connection.
    Close,
    /// Idle: let hyper close it (HTTP/1) or send GOAWAY (HTTP/2).
    Shutdown,
    /// Idle for [`RELEASE_AFTER`]: let hyper go, keep the socket (HTTP/1).
    Release,
}

/// How long an idle HTTP/1 connection keeps hyper's state (its buffers)
/// before it is let go. A client that sends its next request sooner (one
/// that sends back to back) is served without building that state anew,
/// which costs ≈ 4,000 instructions (callgrind, a presign); one that
/// pauses longer costs ≈ 3 KB instead of ≈ 17 KB while it waits. Short, so
/// that a burst of connections that each ask once and wait does not hold
/// the state of all at once (memory the allocator keeps afterwards).
pub const RELEASE_AFTER: Duration = Duration::from_millis(10);

/// The requests of one connection, as its task and its requests see them.
#[derive(Debug)]
pub struct Activity {
    limits: ConnectionLimits,
    accepted: Instant,
    requests: AtomicU64,
    in_flight: AtomicUsize,
    http2: AtomicBool,
    /// A request or response said `Connection: close` (or HTTP/1.0).
    last_request: AtomicBool,
    /// The socket has refused a write that has not gone out since.
    write_pending: AtomicBool,
    idle_since: Mutex<Instant>,
    changed: Notify,
}

impl Activity {
    /// A connection accepted now.
    pub fn new(limits: ConnectionLimits) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Self {
            limits,
            accepted: now,
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            http2: AtomicBool::new(false),
            last_request: AtomicBool::new(false),
            write_pending: AtomicBool::new(false),
            idle_since: Mutex::new(now),
            changed: Notify::new(),
        })
    }

    /// The moment the first request must have arrived by.
    pub fn handshake_deadline(&self) -> Instant {
        self.accepted + self.limits.handshake_timeout
    }

    /// A request has arrived; the guard ends it when dropped (with its
    /// response body, or unanswered).
    pub fn request(self: &Arc<Self>, version: http::Version, headers: &HeaderMap) -> RequestGuard {
        match version {
            http::Version::HTTP_2 => self.http2.store(true, Ordering::Relaxed),
            http::Version::HTTP_11 if !says_close(headers) => {}
            _ => self.last_request(),
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.notify();
        RequestGuard(self.clone())
    }

    /// Wakes an HTTP/2 connection's task, whose streams run in tasks of
    /// their own. An HTTP/1 connection's requests start and end while its
    /// task polls hyper, which looks at the deadlines after each poll.
    fn notify(&self) {
        if self.http2.load(Ordering::Relaxed) {
            self.changed.notify_one();
        }
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The connection carries no further request: a response said
    /// `Connection: close`.
    pub fn last_request(&self) {
        self.last_request.store(true, Ordering::Relaxed);
    }

    /// Whether an HTTP/1 connection that had received `since` requests
    /// before has answered a request since, has none in flight, sent all it
    /// wrote and may carry another: hyper then holds nothing of it but its
    /// buffers, and may be let go.
    fn releasable(&self, since: u64) -> bool {
        self.requests() > since
            && self.in_flight.load(Ordering::SeqCst) == 0
            && !self.write_pending.load(Ordering::SeqCst)
            && !self.last_request.load(Ordering::Relaxed)
    }

    /// Records whether the socket refused a write.
    fn write_pending(&self, pending: bool) {
        self.write_pending.store(pending, Ordering::SeqCst);
    }

    /// The next deadline and what it means, or `None` while requests are
    /// in flight. `burst` is, for an HTTP/1 connection hyper serves, the
    /// requests received before hyper took it: a burst that has answered
    /// one may be released.
    pub fn deadline(&self, burst: Option<u64>) -> Option<(Instant, Expiry)> {
        if self.requests.load(Ordering::Relaxed) == 0 {
            return Some((self.handshake_deadline(), Expiry::Close));
        }
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let idle_since = *self
            .idle_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let limit = if self.http2.load(Ordering::Relaxed) {
            self.limits.http2_idle_timeout
        } else {
            self.limits.keepalive_timeout
        };
        match burst {
            Some(since) if RELEASE_AFTER < limit && self.releasable(since) => {
                Some((idle_since + RELEASE_AFTER, Expiry::Release))
            }
            _ => Some((idle_since + limit, Expiry::Shutdown)),
        }
    }

    /// Resolves after the next change of the requests in flight (HTTP/2).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Whether the deadline `deadline(burst)` gave still stands.
    pub fn still(&self, expected: (Instant, Expiry), burst: Option<u64>) -> bool {
        self.deadline(burst) == Some(expected)
    }
}

/// Whether a `Connection` header holds the `close` token.
pub fn says_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .any(|value| {
            value
                .as_bytes()
                .split(|&b| b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
        })
}

/// One request in flight on a connection.
#[derive(Debug)]
pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let activity = &self.0;
        *activity
            .idle_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        activity.in_flight.fetch_sub(1, Ordering::SeqCst);
        activity.notify();
    }
}

/// A response body that keeps its request counted in flight until it ends.
pub struct Tracked<B> {
    inner: B,
    guard: Option<RequestGuard>,
}

impl<B> Tracked<B> {
    /// Counts `inner` in flight until it ends or is dropped.
    pub fn new(inner: B, guard: RequestGuard) -> Self {
        Self {
            inner,
            guard: Some(guard),
        }
    }
}

impl<B: HttpBody + Unpin> HttpBody for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(frame, Poll::Ready(None | Some(Err(_)))) {
            this.guard = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A socket that fails its writes once the peer has taken nothing for
/// `limit`: a client that stops reading cannot hold its connection (and the
/// responses on it) forever.
pub struct WriteStall<S> {
    inner: S,
    limit: Duration,
    timer: Pin<Box<Sleep>>,
    stalled: bool,
    activity: Arc<Activity>,
}

impl<S> WriteStall<S> {
    /// Wraps `inner`, the socket of the connection `activity` watches.
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        let limit = activity.limits.send_timeout;
        Self {
            inner,
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
            stalled: false,
            activity,
        }
    }

    /// The socket.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// After a write that went out.
    fn on_ready(&mut self) {
        if self.stalled {
            self.stalled = false;
            self.activity.write_pending(false);
        }
    }

    /// After a write that could not proceed: arms the timer on the first
    /// one, and fails once it has run out.
    fn on_pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if !self.stalled {
            self.stalled = true;
            self.activity.write_pending(true);
            let deadline = Instant::now() + self.limit;
            self.timer.as_mut().reset(deadline);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                tracing::debug!(
                    send_timeout_s = self.limit.as_secs(),
                    "client took nothing; connection closed"
                );
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client took nothing for the send timeout",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteStall<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteStall<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => self.on_pending(cx),
            ready => {
                self.on_ready();
                ready
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.on_pending(cx),
            ready => {
                self.on_ready();
                ready
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.on_pending(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_request_is_due_by_the_handshake_timeout_then_idle_spells_count() {
        let limits = ConnectionLimits::default();
        let activity = Activity::new(limits);
        let (first, expiry) = activity.deadline(Some(0)).unwrap();
        assert_eq!(expiry, Expiry::Close);
        assert_eq!(first, activity.handshake_deadline());
        let guard = activity.request(http::Version::HTTP_11, &HeaderMap::new());
        assert_eq!(activity.deadline(Some(0)), None);
        drop(guard);
        let (idle, expiry) = activity.deadline(None).unwrap();
        assert_eq!(expiry, Expiry::Shutdown);
        assert!(idle >= Instant::now() + limits.keepalive_timeout - Duration::from_secs(1));
        // A burst that answered the request is let go first; one that
        // answered none waits for the keep-alive timeout.
        let (release, expiry) = activity.deadline(Some(0)).unwrap();
        assert_eq!(expiry, Expiry::Release);
        assert_eq!(release, idle - limits.keepalive_timeout + RELEASE_AFTER);
        assert_eq!(activity.deadline(Some(1)), Some((idle, Expiry::Shutdown)));
        let guard = activity.request(http::Version::HTTP_2, &HeaderMap::new());
        drop(guard);
        let (idle, _) = activity.deadline(None).unwrap();
        assert!(idle >= Instant::now() + limits.http2_idle_timeout - Duration::from_secs(1));
    }

    #[test]
    fn a_connection_that_carries_no_further_request_is_not_released() {
        let cases: [(http::Version, &[&str]); 5] = [
            (http::Version::HTTP_11, &["close"]),
            (http::Version::HTTP_11, &["keep-alive", "Upgrade,  CLOSE"]),
            (http::Version::HTTP_10, &[]),
            (http::Version::HTTP_10, &["keep-alive"]),
            (http::Version::HTTP_09, &[]),
        ];
        for (version, connection) in cases {
            let activity = Activity::new(ConnectionLimits::default());
            let mut headers = HeaderMap::new();
            for value in connection {
                headers.append(http::header::CONNECTION, value.parse().unwrap());
            }
            drop(activity.request(version, &headers));
            assert!(!activity.releasable(0), "{version:?} {connection:?}");
        }
        let activity = Activity::new(ConnectionLimits::default());
        drop(activity.request(http::Version::HTTP_11, &HeaderMap::new()));
        activity.last_request();
        assert!(!activity.releasable(0), "a response said close");
    }

    #[test]
    fn a_write_the_socket_refused_holds_the_connection_until_it_goes_out() {
        let activity = Activity::new(ConnectionLimits::default());
        drop(activity.request(http::Version::HTTP_11, &HeaderMap::new()));
        activity.write_pending(true);
        assert!(!activity.releasable(0));
        activity.write_pending(false);
        assert!(activity.releasable(0));
    }
}
