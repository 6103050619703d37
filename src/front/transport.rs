//! A client's byte stream as the HTTP side sees it: plain TCP or TLS over
//! it ([`Transport`]), and bytes already read off it that are to be read
//! again ([`Replay`]: what protocol detection looked at, or what hyper had
//! read but not parsed when an idle HTTP/1 connection was let go).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::connection::WriteStall;

/// A client's stream, which can be waited on without a read buffer.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Resolves once there is something to read: bytes, the end of the
    /// stream or an error.
    fn readable(&mut self) -> impl Future<Output = io::Result<()>> + Send;
}

impl Transport for WriteStall<TcpStream> {
    fn readable(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        has_bytes(self.get_ref())
    }
}

/// Resolves once `socket` has a byte to read, or has ended. `readable()`
/// alone may wake without one (tokio's readiness can be stale); a peek
/// that would block waits again.
async fn has_bytes(socket: &TcpStream) -> io::Result<()> {
    socket.peek(&mut [0u8; 1]).await.map(drop)
}

impl Transport for TlsStream<WriteStall<TcpStream>> {
    async fn readable(&mut self) -> io::Result<()> {
        // rustls may hold records it read off the socket and has not
        // decrypted, or text nobody has read: then there is no waiting.
        let (socket, tls) = self.get_mut();
        let state = tls
            .process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if state.plaintext_bytes_to_read() > 0 || state.peer_has_closed() {
            return Ok(());
        }
        has_bytes(socket.get_ref()).await
    }
}

/// `inner`, with `bytes` read from it before to be read again first.
#[derive(Debug)]
pub struct Replay<S> {
    bytes: Bytes,
    inner: S,
}

impl<S> Replay<S> {
    /// `inner`, nothing to replay.
    pub fn new(inner: S) -> Self {
        Self::with(Bytes::new(), inner)
    }

    /// `inner`, replaying `bytes` first.
    pub fn with(bytes: Bytes, inner: S) -> Self {
        Self { bytes, inner }
    }

    /// Whether bytes wait to be read again.
    pub fn has_bytes(&self) -> bool {
        !self.bytes.is_empty()
    }

    /// The stream, and the bytes not yet read again.
    pub fn into_parts(self) -> (Bytes, S) {
        (self.bytes, self.inner)
    }

    /// The stream.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.bytes.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.bytes.len().min(buf.remaining());
        buf.put_slice(&self.bytes[..n]);
        self.bytes.advance(n);
        if self.bytes.is_empty() {
            // Let go of the buffer the bytes were cut from.
            self.bytes = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn replayed_bytes_come_first_then_the_stream() {
        let stream: &[u8] = b" world";
        let mut replay = Replay::with(Bytes::from_static(b"hello"), stream);
        assert!(replay.has_bytes());
        let mut small = [0u8; 3];
        replay.read_exact(&mut small).await.unwrap();
        assert_eq!(&small, b"hel");
        let mut rest = String::new();
        replay.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "lo world");
        assert!(!replay.has_bytes());
    }
}
