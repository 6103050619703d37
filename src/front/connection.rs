//! One client connection's limits and what they watch: whether it has sent
//! its first request, how many of its requests are in flight, since when it
//! has been idle, and whether its socket has taken a write lately.
//!
//! hyper offers a header-read timeout and HTTP/2 pings; the rest is here. The
//! connection's task ([`super::server`]) asks [`Activity::deadline`] what to
//! wait for: the first request (`handshake_timeout_s`, from accept), or the
//! end of an idle spell (`keepalive_timeout_s` on HTTP/1,
//! `http2_idle_timeout_s` on HTTP/2 with no open stream). [`WriteStall`]
//! fails the socket when the client has taken no byte for `send_timeout_s`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

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
}

/// The requests of one connection, as its task and its requests see them.
#[derive(Debug)]
pub struct Activity {
    limits: ConnectionLimits,
    accepted: Instant,
    requests: AtomicU64,
    in_flight: AtomicUsize,
    http2: AtomicBool,
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
    pub fn request(self: &Arc<Self>, version: http::Version) -> RequestGuard {
        if version == http::Version::HTTP_2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_one();
        RequestGuard(self.clone())
    }

    /// The next deadline and what it means, or `None` while requests are in flight.
    pub fn deadline(&self) -> Option<(Instant, Expiry)> {
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
        Some((idle_since + limit, Expiry::Shutdown))
    }

    /// Resolves after the next change of the requests in flight.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Whether the deadline `deadline()` gave still stands.
    pub fn still(&self, expected: (Instant, Expiry)) -> bool {
        self.deadline() == Some(expected)
    }
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
        activity.changed.notify_one();
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
}

impl<S> WriteStall<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
            stalled: false,
        }
    }

    /// After a write that could not proceed: arms the timer on the first
    /// one, and fails once it has run out.
    fn on_pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if !self.stalled {
            self.stalled = true;
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
                self.stalled = false;
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
                self.stalled = false;
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
        let (first, expiry) = activity.deadline().unwrap();
        assert_eq!(expiry, Expiry::Close);
        assert_eq!(first, activity.handshake_deadline());
        let guard = activity.request(http::Version::HTTP_11);
        assert_eq!(activity.deadline(), None);
        drop(guard);
        let (idle, expiry) = activity.deadline().unwrap();
        assert_eq!(expiry, Expiry::Shutdown);
        assert!(idle >= Instant::now() + limits.keepalive_timeout - Duration::from_secs(1));
        let guard = activity.request(http::Version::HTTP_2);
        drop(guard);
        let (idle, _) = activity.deadline().unwrap();
        assert!(idle >= Instant::now() + limits.http2_idle_timeout - Duration::from_secs(1));
    }
}
