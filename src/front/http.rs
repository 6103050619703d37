//! One accepted connection, served: the TLS handshake, the protocol (HTTP/2
//! by ALPN, or by its preface on a cleartext listener with `h2c`; HTTP/1
//! otherwise), the limits of [`super::connection`], and the listener's drain.
//!
//! An HTTP/1 connection is served in bursts. hyper serves it while requests
//! come; once the last response has gone out and the connection has been
//! idle for [`RELEASE_AFTER`](super::connection::RELEASE_AFTER), hyper's
//! connection (its 8 KiB read and 8 KiB write buffers) is let go, and the
//! task waits on the bare socket until the client sends again, when a fresh
//! one takes over with whatever hyper had read but not parsed. nginx does
//! much the same with its keep-alive connections. An idle connection then
//! costs ≈ 3 KB instead of ≈ 17 KB (`benches/load.sh`: 5,000 idle
//! connections).

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::task::{ready, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::{service_fn, HttpService};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus::IntGauge;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::authenticate::Listener;
use super::connection::{says_close, Activity, ConnectionLimits, Expiry, Tracked, WriteStall};
use super::live::Live;
use super::send_timeout;
use super::transport::{Replay, Transport};
use crate::body::{Body, BoxError, InMemory};

/// The first bytes of every HTTP/2 connection (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How the connections of one listener are served.
pub struct Protocols {
    kind: Listener,
    live: Arc<Live>,
    limits: ConnectionLimits,
    tls: bool,
    /// Connections waiting in [`next_request`] (a reload keeps the metrics).
    idle: IntGauge,
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Protocols {
    /// Serves the routes of `kind` from what `live` holds, over TLS if `tls`.
    pub fn new(kind: Listener, live: Arc<Live>, limits: ConnectionLimits, tls: bool) -> Self {
        // No timer for hyper's HTTP/1 (whose header-read timeout would arm
        // one per request): the burst's deadlines bound a request head, the
        // first by the handshake timeout, the next by the keep-alive one.
        let http1 = http1::Builder::new();
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .keep_alive_interval(limits.http2_keepalive_interval)
            .keep_alive_timeout(limits.http2_keepalive_timeout);
        let idle = live.app().metrics().idle_connections.clone();
        Self {
            kind,
            live,
            limits,
            tls,
            idle,
            http1,
            http2,
        }
    }

    /// Serves one accepted connection until it ends, the listener's drain
    /// (`drain` turning true) included.
    pub async fn serve(
        &self,
        stream: TcpStream,
        mut drain: watch::Receiver<bool>,
    ) -> Result<(), BoxError> {
        let _ = stream.set_nodelay(true);
        let activity = Activity::new(self.limits);
        let mut stream = WriteStall::new(stream, activity.clone());
        let acceptor = self.tls.then(|| self.live.tls()).flatten();
        let Some(acceptor) = acceptor else {
            if !self.limits.h2c {
                return self.http1(Replay::new(stream), &activity, &mut drain).await;
            }
            let seen = Box::pin(read_preface(&mut stream, &activity)).await?;
            let stream = Replay::with(seen.clone(), stream);
            return if seen == PREFACE {
                Box::pin(self.http2(stream, &activity, &mut drain)).await
            } else {
                self.http1(stream, &activity, &mut drain).await
            };
        };
        // Boxed: rustls's state is ≈ 4.5 KB, which a cleartext connection's
        // task would otherwise carry too.
        Box::pin(self.tls(&acceptor, stream, &activity, &mut drain)).await
    }

    /// Serves a TLS connection, the handshake included.
    async fn tls(
        &self,
        acceptor: &TlsAcceptor,
        stream: WriteStall<TcpStream>,
        activity: &Arc<Activity>,
        drain: &mut watch::Receiver<bool>,
    ) -> Result<(), BoxError> {
        let stream = handshake(acceptor, stream, activity).await?;
        if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
            Box::pin(self.http2(stream, activity, drain)).await
        } else {
            self.http1(Replay::new(stream), activity, drain).await
        }
    }

    /// The service hyper calls for each request of one connection.
    fn service(
        &self,
        activity: &Arc<Activity>,
    ) -> impl HttpService<Incoming, ResBody = Tracked<Body>, Error = Infallible, Future: Unpin + Send>
           + Unpin
           + Send
           + 'static {
        let (live, kind) = (self.live.clone(), self.kind);
        let send_timeout = self.limits.send_timeout;
        let activity = activity.clone();
        service_fn(move |request: http::Request<Incoming>| {
            // Read once: the request finishes on this gateway whatever a reload installs.
            let app = live.app();
            let guard = activity.request(request.version(), request.headers());
            let activity = activity.clone();
            // Boxed: hyper holds the request's future inside the connection,
            // so unboxed its whole size would stay with every connection.
            Box::pin(async move {
                let response = app.handle_on(kind, request).await;
                if says_close(response.headers()) {
                    activity.last_request();
                }
                let in_memory = response.extensions().get::<InMemory>().is_some();
                let response = response.map(|body| {
                    let body = if in_memory {
                        body
                    } else {
                        send_timeout::limit(body, send_timeout)
                    };
                    Tracked::new(body, guard)
                });
                Ok::<_, Infallible>(response)
            })
        })
    }

    /// Serves HTTP/1 on `stream` in bursts, letting hyper go between them.
    async fn http1<S: Transport>(
        &self,
        mut stream: Replay<S>,
        activity: &Arc<Activity>,
        drain: &mut watch::Receiver<bool>,
    ) -> Result<(), BoxError> {
        loop {
            if !stream.has_bytes() {
                let _idle = Counted::new(&self.idle);
                match next_request(&mut stream, activity, drain).await? {
                    Idle::Request => {}
                    Idle::Close => return close(stream).await,
                }
            }
            // Boxed: hyper's connection lives only as long as the burst, and
            // the task's own size stays that of the wait above.
            match Box::pin(self.burst(stream, activity, drain)).await? {
                Some(next) => stream = next,
                None => return Ok(()),
            }
        }
    }

    /// hyper serving `stream` until the connection ends (`None`) or is idle
    /// and let go (the stream, with the bytes hyper had read but not parsed).
    async fn burst<S: Transport>(
        &self,
        stream: Replay<S>,
        activity: &Arc<Activity>,
        drain: &mut watch::Receiver<bool>,
    ) -> Result<Option<Replay<S>>, BoxError> {
        let since = activity.requests();
        let burst = Some(since);
        // hyper, asked to finish, closes a connection that has served a
        // request and waits for the next; one that has read only part of a
        // head since it took the connection over it would wait on for ever.
        // That one is closed here, when its keep-alive time is up or the
        // listener drains.
        let unstarted = || activity.requests() == since;
        let mut connection = self
            .http1
            .serve_connection(TokioIo::new(stream), self.service(activity));
        let mut ending = None;
        // One timer for the burst, armed lazily: it is left at an earlier
        // deadline than the current one and moved when it fires, so a client
        // sending back to back moves it about once per RELEASE_AFTER, not
        // once per request (timer-wheel inserts and removals, ≈ 3 % of a
        // presign's CPU when done per request).
        let mut timer = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        let mut armed = None;
        let mut drained = std::pin::pin!(drain.changed());
        let ended = poll_fn(|cx| loop {
            if let Poll::Ready(result) = connection.poll_without_shutdown(cx) {
                return Poll::Ready(result.map_err(BoxError::from));
            }
            if ending != Some(Ending::Close) {
                if let Poll::Ready(changed) = drained.as_mut().poll(cx) {
                    // Err: the listener is gone after its grace period.
                    changed?;
                    ending = Some(Ending::Close);
                    if unstarted() {
                        return Poll::Ready(Ok(()));
                    }
                    std::pin::Pin::new(&mut connection).graceful_shutdown();
                    continue;
                }
            }
            // Looked at after hyper's poll, in which requests start and end.
            let Some((at, expiry)) = ending.is_none().then(|| activity.deadline(burst)).flatten()
            else {
                return Poll::Pending;
            };
            if armed.is_none_or(|armed| armed > at) {
                timer.as_mut().reset(at);
                armed = Some(at);
            }
            ready!(timer.as_mut().poll(cx));
            armed = None;
            if Instant::now() < at {
                continue;
            }
            let end = match expiry {
                Expiry::Close => {
                    return Poll::Ready(Err("no request within the handshake timeout".into()))
                }
                Expiry::Shutdown => {
                    tracing::debug!("idle connection closed");
                    if unstarted() {
                        ending = Some(Ending::Close);
                        return Poll::Ready(Ok(()));
                    }
                    Ending::Close
                }
                Expiry::Release => Ending::Release,
            };
            std::pin::Pin::new(&mut connection).graceful_shutdown();
            ending = Some(end);
        })
        .await;
        match ended {
            Ok(()) => {}
            Err(e) if e.is::<watch::error::RecvError>() => return Ok(None),
            Err(e) => return Err(e),
        }
        let parts = connection.into_parts();
        let (replayed, stream) = parts.io.into_inner().into_parts();
        // Copied (and usually empty): a slice of hyper's read buffer, even an
        // empty one, would keep all of its 8 KiB.
        let unparsed = match (parts.read_buf.is_empty(), replayed.is_empty()) {
            (true, true) => Bytes::new(),
            (false, true) => Bytes::copy_from_slice(&parts.read_buf),
            // hyper had not even read all the replayed bytes.
            _ => Bytes::from([parts.read_buf, replayed].concat()),
        };
        let stream = Replay::with(unparsed, stream);
        if ending == Some(Ending::Release) {
            return Ok(Some(stream));
        }
        close(stream).await.map(|()| None)
    }

    /// Serves HTTP/2 on `stream` until it ends.
    async fn http2<S>(
        &self,
        stream: S,
        activity: &Arc<Activity>,
        drain: &mut watch::Receiver<bool>,
    ) -> Result<(), BoxError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let connection = self
            .http2
            .serve_connection(TokioIo::new(stream), self.service(activity));
        tokio::pin!(connection);
        let mut closing = false;
        loop {
            let deadline = if closing {
                None
            } else {
                activity.deadline(None)
            };
            tokio::select! {
                result = connection.as_mut() => return Ok(result?),
                () = expiry(deadline) => match deadline {
                    Some(d) if activity.still(d, None) => match d.1 {
                        Expiry::Close => return Err("no request within the handshake timeout".into()),
                        Expiry::Shutdown | Expiry::Release => {
                            tracing::debug!("idle connection closed");
                            connection.as_mut().graceful_shutdown();
                            closing = true;
                        }
                    },
                    _ => {}
                },
                () = activity.changed() => {}
                changed = drain.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    if !closing {
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        }
    }
}

/// One in a gauge while it lives.
struct Counted<'a>(&'a IntGauge);

impl<'a> Counted<'a> {
    fn new(gauge: &'a IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Why hyper was asked to end an HTTP/1 connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// It is idle: keep the socket, let hyper go.
    Release,
    /// Idle past the keep-alive timeout, or the listener drains.
    Close,
}

/// What an idle HTTP/1 connection does next.
enum Idle {
    /// The client sent something: serve it.
    Request,
    /// Idle past its deadline, or the listener drains: close it.
    Close,
}

/// Waits, holding nothing but the socket, for the client's next request.
async fn next_request<S: Transport>(
    stream: &mut Replay<S>,
    activity: &Activity,
    drain: &mut watch::Receiver<bool>,
) -> Result<Idle, BoxError> {
    if *drain.borrow() {
        return Ok(Idle::Close);
    }
    let deadline = activity.deadline(None);
    tokio::select! {
        readable = stream.get_mut().readable() => readable.map(|()| Idle::Request).map_err(Into::into),
        () = expiry(deadline) => match deadline {
            Some((_, Expiry::Close)) => Err("no request within the handshake timeout".into()),
            _ => {
                tracing::debug!("idle connection closed");
                Ok(Idle::Close)
            }
        },
        _ = drain.changed() => Ok(Idle::Close),
    }
}

/// Resolves at `deadline`, never without one.
async fn expiry(deadline: Option<(tokio::time::Instant, Expiry)>) {
    match deadline {
        Some((at, _)) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Ends the connection: TLS's close_notify if any, then the FIN.
async fn close<S: Transport>(mut stream: Replay<S>) -> Result<(), BoxError> {
    Ok(stream.get_mut().shutdown().await?)
}

/// The TLS handshake, within the handshake timeout.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: WriteStall<TcpStream>,
    activity: &Activity,
) -> Result<tokio_rustls::server::TlsStream<WriteStall<TcpStream>>, BoxError> {
    match tokio::time::timeout_at(activity.handshake_deadline(), acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(format!("TLS handshake failed: {e}").into()),
        Err(_) => Err("no TLS handshake within the handshake timeout".into()),
    }
}

/// Reads a cleartext connection's first bytes, until they are the HTTP/2
/// preface or cannot become it, within the handshake timeout.
async fn read_preface(
    stream: &mut WriteStall<TcpStream>,
    activity: &Activity,
) -> Result<Bytes, BoxError> {
    let mut seen = Vec::with_capacity(PREFACE.len());
    let read = async {
        while seen.len() < PREFACE.len() && PREFACE.starts_with(&seen) {
            let mut chunk = [0u8; PREFACE.len()];
            let want = PREFACE.len() - seen.len();
            let n = stream.read(&mut chunk[..want]).await?;
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    match tokio::time::timeout_at(activity.handshake_deadline(), read).await {
        Ok(result) => result?,
        Err(_) => return Err("no request within the handshake timeout".into()),
    }
    Ok(Bytes::from(seen))
}
