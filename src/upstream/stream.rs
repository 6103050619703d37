//! Store responses streamed back to the client.
//!
//! Bodies stream with backpressure (the store is read as fast as the client
//! reads); a client that goes away drops the upstream response, which cancels
//! the upstream request, and a store that falls silent mid-body is cut off.
//! Statuses keep their meaning; only end-to-end headers from an allowlist are
//! passed on, so hop-by-hop headers never leak through.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{header, HeaderName, Response};
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::time::Sleep;

use crate::body::{Body, BoxError};

/// Store response headers passed on to the client by name.
pub const PASSED_RESPONSE_HEADERS: [HeaderName; 18] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_RANGE,
    header::ACCEPT_RANGES,
    header::ETAG,
    header::LAST_MODIFIED,
    header::CACHE_CONTROL,
    header::CONTENT_DISPOSITION,
    header::CONTENT_ENCODING,
    header::CONTENT_LANGUAGE,
    header::EXPIRES,
    HeaderName::from_static("x-amz-version-id"),
    HeaderName::from_static("x-amz-delete-marker"),
    HeaderName::from_static("x-amz-request-id"),
    HeaderName::from_static("x-amz-id-2"),
    HeaderName::from_static("x-amz-bucket-region"),
    HeaderName::from_static("x-amz-storage-class"),
    HeaderName::from_static("x-amz-mp-parts-count"),
];

/// Store response header families passed on by prefix: user metadata,
/// checksums and server-side encryption (which key, never key material).
const PASSED_RESPONSE_PREFIXES: [&str; 3] = [
    "x-amz-meta-",
    "x-amz-checksum-",
    "x-amz-server-side-encryption",
];

/// Whether a store response header reaches the client.
fn is_passed(name: &HeaderName) -> bool {
    PASSED_RESPONSE_HEADERS.contains(name)
        || PASSED_RESPONSE_PREFIXES
            .iter()
            .any(|prefix| name.as_str().starts_with(prefix))
}

/// The store's response as the client's: same status, allowlisted headers,
/// body streamed, cut off after `idle` of silence from the store.
pub fn pass_through(upstream: Response<Incoming>, idle: Duration) -> Response<Body> {
    let (parts, body) = upstream.into_parts();
    let mut response = Response::new(IdleTimeout::new(body, idle).boxed());
    *response.status_mut() = parts.status;
    for (name, value) in &parts.headers {
        if is_passed(name) {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
}

/// The store's response head with a body the gateway rewrote: same status,
/// allowlisted headers, `Content-Length` of the new body.
pub fn with_body(parts: &http::response::Parts, body: bytes::Bytes) -> Response<Body> {
    let mut response = Response::new(crate::body::full(body));
    *response.status_mut() = parts.status;
    for (name, value) in &parts.headers {
        if is_passed(name) && name != header::CONTENT_LENGTH {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
}

/// A body that fails when its source stays silent for `idle` while the
/// reader is waiting on it. Time the reader spends not asking (a slow client)
/// does not count.
pub struct IdleTimeout<B> {
    inner: B,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    waiting: bool,
}

impl<B> IdleTimeout<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
        }
    }
}

impl<B> HttpBody for IdleTimeout<B>
where
    B: HttpBody + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.waiting = false;
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if !this.waiting {
            this.waiting = true;
            let deadline = tokio::time::Instant::now() + this.idle;
            this.timer.as_mut().reset(deadline);
        }
        match this.timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                tracing::warn!(
                    idle_s = this.idle.as_secs(),
                    "store fell silent mid-body; response cut off"
                );
                Poll::Ready(Some(Err(format!(
                    "the store sent nothing for {} s",
                    this.idle.as_secs()
                )
                .into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
