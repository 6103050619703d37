//! The access log: one `s3gate::access` line per request, written when its
//! response body ends (or is abandoned), so that it can say how many bytes
//! were sent and whether the body was sent whole.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::context::RequestContext;
use crate::auth::Caller;
use crate::body::{Body, BoxError};
use crate::cache::Status;

/// What the access line of one request says, taken from its context.
#[derive(Debug)]
pub struct AccessLine {
    id: u64,
    start: Instant,
    method: http::Method,
    path: String,
    status: u16,
    caller: Caller,
    integration: Option<String>,
    cache: &'static str,
}

impl AccessLine {
    /// The line of the request `ctx`, answered with `status`; takes the
    /// path, caller and integration, which the context no longer needs
    /// (moved rather than copied: two allocations fewer per request).
    pub fn new(ctx: &mut RequestContext, status: StatusCode) -> Self {
        Self {
            id: ctx.id,
            start: ctx.start,
            method: ctx.method.clone(),
            path: std::mem::take(&mut ctx.path),
            status: status.as_u16(),
            caller: std::mem::replace(&mut ctx.caller, Caller::anonymous()),
            integration: ctx.take_integration(),
            cache: "-",
        }
    }

    /// Names how the media cache answered, from the response's headers.
    pub fn cache_from(mut self, headers: &http::HeaderMap) -> Self {
        self.cache = Status::of(headers).map_or("-", Status::as_str);
        self
    }

    /// Writes the line: `bytes` of body sent, `complete` if the body ended.
    pub fn write(&self, bytes: u64, complete: bool) {
        if !tracing::enabled!(target: "s3gate::access", tracing::Level::INFO) {
            return;
        }
        let micros = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        let client = self.caller.name();
        let via = self.caller.via_label();
        let integration = self.integration.as_deref().unwrap_or("-");
        let written = crate::logging::line::info("s3gate::access", |line| {
            line.u64("id", self.id)
                .str("method", self.method.as_str())
                .str("path", &self.path)
                .u64("status", u64::from(self.status))
                .str("client", client)
                .str("via", via)
                .str("integration", integration)
                .str("cache", self.cache)
                .u64("bytes", bytes)
                .bool("complete", complete)
                .u64("micros", micros);
        });
        if !written {
            tracing::info!(
                target: "s3gate::access",
                id = self.id,
                method = %self.method,
                path = %self.path,
                status = self.status,
                client,
                via,
                integration,
                cache = %self.cache,
                bytes,
                complete,
                micros,
            );
        }
    }
}

/// `body`, whose access line is written when it ends or is dropped.
pub fn logged(body: Body, line: AccessLine) -> Body {
    http_body_util::BodyExt::boxed(Logged {
        inner: body,
        line: Some(line),
        bytes: 0,
    })
}

struct Logged {
    inner: Body,
    line: Option<AccessLine>,
    bytes: u64,
}

impl Logged {
    fn finish(&mut self, complete: bool) {
        if let Some(line) = self.line.take() {
            line.write(self.bytes, complete);
        }
    }
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish(false),
            Poll::Ready(None) => this.finish(true),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        // A body with nothing to send (HEAD, 304) may never be polled.
        let complete = self.inner.is_end_stream();
        self.finish(complete);
    }
}
