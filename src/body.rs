//! The body type of every response, and its simplest forms.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::{Body as HttpBody, Frame, SizeHint};

/// Errors a response body may fail with while streaming.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response s3gate sends.
pub type Body = BoxBody<Bytes, BoxError>;

/// A response extension marking a body held wholly in memory: it holds no
/// store request to release, so the send timeout's task (one per response,
/// ≈ 6 % of the CPU of a cache hit) is left out. On HTTP/1 a client that
/// takes nothing is cut off by the connection's write stall timeout; on
/// HTTP/2 a stream whose window stays shut holds its body (at most one
/// slice) until the connection ends, as it did with the task.
#[derive(Debug, Clone, Copy)]
pub struct InMemory;

/// A whole body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// `body`, counting the bytes of its data frames into `sent` as they go.
///
/// Its own type rather than `map_frame`: `MapFrame` reports no size hint, and
/// the send timeout ([`crate::front::send_timeout`]) leaves a small body as it
/// is only when its size is known; without the hint every streamed response,
/// 12 KB included, got a task and a channel of its own (≈ 5 % of the CPU of
/// small HTTP/2 responses).
pub fn counted(body: Body, sent: prometheus::IntCounter) -> Body {
    Counted { inner: body, sent }.boxed()
}

struct Counted {
    inner: Body,
    sent: prometheus::IntCounter,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &frame {
            if let Some(data) = frame.data_ref() {
                self.sent.inc_by(data.len() as u64);
            }
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

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_counted_body_keeps_its_size_and_counts_its_bytes() {
        let sent = prometheus::IntCounter::new("sent", "bytes sent").unwrap();
        let body = counted(full("twelve bytes"), sent.clone());
        assert_eq!(body.size_hint().exact(), Some(12));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "twelve bytes");
        assert_eq!(sent.get(), 12);
    }
}
