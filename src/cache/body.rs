//! A response body fed slice by slice from a task, with backpressure: the
//! task fetches the next slice while the client reads this one, and stops
//! when the client goes away.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::mpsc;

use crate::body::BoxError;

/// Slices in flight between the task and the client.
pub const DEPTH: usize = 1;

/// The body's side of the channel; `len` bytes in all.
pub struct SliceBody {
    slices: mpsc::Receiver<Result<Bytes, BoxError>>,
    remaining: u64,
}

impl SliceBody {
    /// A body of `len` bytes, fed through the channel `slices`.
    pub fn new(slices: mpsc::Receiver<Result<Bytes, BoxError>>, len: u64) -> Self {
        Self {
            slices,
            remaining: len,
        }
    }
}

impl HttpBody for SliceBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        match self.slices.poll_recv(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                let len = bytes.len() as u64;
                if len > self.remaining {
                    return Poll::Ready(Some(Err(
                        "the cache produced more bytes than announced".into()
                    )));
                }
                self.remaining -= len;
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            // The feeding task ended before the last byte: never a short
            // body that looks complete.
            Poll::Ready(None) => Poll::Ready(Some(Err("the cached body ended early".into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
