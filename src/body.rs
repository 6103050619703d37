//! The body type of every response, and its simplest forms.

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};

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
pub fn counted(body: Body, sent: prometheus::IntCounter) -> Body {
    body.map_frame(move |frame| {
        if let Some(data) = frame.data_ref() {
            sent.inc_by(data.len() as u64);
        }
        frame
    })
    .boxed()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}
