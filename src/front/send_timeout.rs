//! The send timeout of one response: a body the client has taken nothing of
//! for `send_timeout_s` is ended, and its source (the store's response, so
//! the upstream request) dropped with it.
//!
//! hyper polls a response body only when the client can take more (socket
//! room on HTTP/1, stream window on HTTP/2), so a client that stops reading
//! simply stops the polling; nothing inside the body runs. The body is
//! therefore read by a task of its own that hands frames over a one-slot
//! channel: when the slot stays full for the timeout, the task gives up and
//! drops the source. Backpressure is kept: the source is read only once the
//! client has taken the frame before.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::mpsc;

use crate::body::{Body, BoxError};

/// Bodies of at most this many bytes are sent as they are: they fit in the
/// socket's buffers, and the connection's own write timeout covers them.
const SMALL_BODY: u64 = 64 << 10;

/// `body`, ended after `limit` without the client taking a frame of it.
pub fn limit(body: Body, limit: Duration) -> Body {
    if body.is_end_stream() || body.size_hint().upper().is_some_and(|n| n <= SMALL_BODY) {
        return body;
    }
    let (tx, rx) = mpsc::channel(1);
    let timed_out = Arc::new(AtomicBool::new(false));
    let size_hint = body.size_hint();
    tokio::spawn(pump(body, tx, limit, timed_out.clone()));
    Received {
        rx,
        timed_out,
        limit,
        size_hint,
    }
    .boxed()
}

type Item = Result<Frame<Bytes>, BoxError>;

/// Moves frames from `body` into `tx` while the client takes them.
async fn pump(mut body: Body, tx: mpsc::Sender<Item>, limit: Duration, timed_out: Arc<AtomicBool>) {
    loop {
        // Wait until the client has taken the last frame (or left).
        let permit = match tokio::time::timeout(limit, tx.reserve()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return,
            Err(_) => {
                tracing::warn!(
                    send_timeout_s = limit.as_secs(),
                    "client took nothing of the response; response and upstream request ended"
                );
                timed_out.store(true, Ordering::SeqCst);
                return;
            }
        };
        let frame = tokio::select! {
            frame = body.frame() => frame,
            () = tx.closed() => return,
        };
        match frame {
            None => return,
            Some(Err(e)) => {
                permit.send(Err(e));
                return;
            }
            Some(Ok(frame)) => permit.send(Ok(frame)),
        }
    }
}

/// The client's side of the channel.
struct Received {
    rx: mpsc::Receiver<Item>,
    timed_out: Arc<AtomicBool>,
    limit: Duration,
    size_hint: SizeHint,
}

impl HttpBody for Received {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(None) if self.timed_out.load(Ordering::SeqCst) => {
                let message = format!("the client took nothing for {} s", self.limit.as_secs());
                Poll::Ready(Some(Err(message.into())))
            }
            other => other,
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.size_hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body that never ends.
    struct Endless;

    impl HttpBody for Endless {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&[0; 1024])))))
        }
    }

    #[tokio::test]
    async fn a_body_nobody_reads_ends_after_the_limit() {
        let mut body = limit(Endless.boxed(), Duration::from_millis(100));
        assert!(body.frame().await.unwrap().is_ok());
        assert!(body.frame().await.unwrap().is_ok());
        // The client takes nothing for longer than the limit.
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The frame already handed over, then the end.
        assert!(body.frame().await.unwrap().is_ok());
        assert!(body.frame().await.unwrap().is_err());
    }

    #[tokio::test]
    async fn small_bodies_are_sent_as_they_are() {
        let body = limit(crate::body::full("small"), Duration::from_secs(5));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "small");
    }
}
