//! The accept loop: plain TCP or TLS (rustls), HTTP/1.1 and HTTP/2, the
//! connection limits of `[server]` ([`super::connection`]), and a graceful
//! drain bounded by a grace period.
//!
//! Listeners serve a [`Live`] gateway: a reload swaps the gateway and the
//! TLS acceptor for new requests and connections, while those in flight
//! keep theirs. The drain marks the gateway not ready (`/readyz` 503).
//!
//! At `max_connections` the loop stops accepting until one closes: further
//! clients wait in the kernel's backlog, they are not refused. Cleartext
//! listeners speak HTTP/1 only unless `h2c = true`; TLS ones offer `h2` by ALPN.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::app::App;
pub use super::authenticate::Listener;
use super::connection::{Activity, ConnectionLimits, Expiry, Tracked, WriteStall};
pub use super::live::Live;
use super::send_timeout;
use crate::body::{BoxError, InMemory};
use crate::config::TlsConfig;

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> io::Result<()> {
    serve_as(Listener::Main, listener, app, tls, shutdown, grace).await
}

/// What one listener's connections share.
struct Shared {
    kind: Listener,
    live: Arc<Live>,
    builder: auto::Builder<TokioExecutor>,
    limits: ConnectionLimits,
    tls: bool,
}

/// Serves the routes of `kind` (all, or `/metrics` and `/healthz` only) on
/// `listener`, as [`serve`] does.
pub async fn serve_as(
    kind: Listener,
    listener: TcpListener,
    app: Arc<App>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> io::Result<()> {
    serve_live(kind, listener, Live::new(app, tls), shutdown, grace).await
}

/// Serves what `live` holds on `listener`, as [`serve_as`] does; a reload
/// changes it for new requests. The main listener speaks TLS if `live` has
/// an acceptor at start, the metrics listener never. Connection limits are
/// the ones of the gateway at start.
pub async fn serve_live(
    kind: Listener,
    listener: TcpListener,
    live: Arc<Live>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> io::Result<()> {
    let limits = live.app().connection_limits();
    let tls = kind == Listener::Main && live.tls().is_some();
    let shared = Arc::new(Shared {
        kind,
        builder: builder(&limits, tls),
        live,
        limits,
        tls,
    });
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // Dropped at the end: connections still open then are closed.
    let (draining, drain) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        // At max_connections, accept waits for a connection to close.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let shared = shared.clone();
        let drain = drain.clone();
        let open = shared.live.app().metrics().open_connections.clone();
        open.inc();
        tokio::spawn(async move {
            if let Err(e) = connection(&shared, stream, drain).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            open.dec();
            drop(permit);
        });
    }
    drop(listener);
    shared.live.app().readiness().drain();
    let open = limits.max_connections - permits.available_permits();
    tracing::info!(open, grace_s = grace.as_secs(), "draining connections");
    let _ = draining.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    match tokio::time::timeout(grace, permits.acquire_many(all)).await {
        Ok(_) => tracing::info!("drained"),
        Err(_) => tracing::warn!("grace period over; closing remaining connections"),
    }
    Ok(())
}

/// The HTTP builder of a listener: hyper's own timers and pings, HTTP/2
/// only with TLS or `h2c`.
fn builder(limits: &ConnectionLimits, tls: bool) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's header-read timer also runs while an HTTP/1 connection is idle
    // between requests: a backstop behind the keep-alive watchdog, which
    // closes idle connections first.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.keepalive_timeout + limits.handshake_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.http2_keepalive_interval)
        .keep_alive_timeout(limits.http2_keepalive_timeout);
    if tls || limits.h2c {
        builder
    } else {
        builder.http1_only()
    }
}

/// One accepted connection, TLS handshake included, until it ends.
async fn connection(
    shared: &Shared,
    stream: TcpStream,
    drain: watch::Receiver<bool>,
) -> Result<(), BoxError> {
    let _ = stream.set_nodelay(true);
    let activity = Activity::new(shared.limits);
    let stream = WriteStall::new(stream, shared.limits.send_timeout);
    let Some(acceptor) = shared.tls.then(|| shared.live.tls()).flatten() else {
        return serve_connection(shared, stream, activity, drain).await;
    };
    match tokio::time::timeout_at(activity.handshake_deadline(), acceptor.accept(stream)).await {
        Ok(Ok(stream)) => serve_connection(shared, stream, activity, drain).await,
        Ok(Err(e)) => Err(format!("TLS handshake failed: {e}").into()),
        Err(_) => Err("no TLS handshake within the handshake timeout".into()),
    }
}

/// Serves HTTP on `stream`, closing it when a deadline of `activity` passes
/// or the listener drains.
async fn serve_connection<S>(
    shared: &Shared,
    stream: S,
    activity: Arc<Activity>,
    mut drain: watch::Receiver<bool>,
) -> Result<(), BoxError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (live, kind) = (shared.live.clone(), shared.kind);
    let send_timeout = shared.limits.send_timeout;
    let requests = activity.clone();
    let service = service_fn(move |request: http::Request<Incoming>| {
        // Read once: the request finishes on this gateway whatever a reload installs.
        let app = live.app();
        let guard = requests.request(request.version());
        // Boxed: hyper holds the request's future inside the connection, so
        // unboxed its whole size would stay with every idle connection.
        Box::pin(async move {
            let response = app.handle_on(kind, request).await;
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
    });
    let connection = shared
        .builder
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        let deadline = if closing { None } else { activity.deadline() };
        let expired = async {
            match deadline {
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = connection.as_mut() => return result,
            () = expired => match deadline {
                Some(d) if activity.still(d) => match d.1 {
                    Expiry::Close => return Err("no request within the handshake timeout".into()),
                    Expiry::Shutdown => {
                        tracing::debug!("idle connection closed");
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                },
                _ => {}
            },
            () = activity.changed() => {}
            changed = drain.changed() => {
                // The listener is gone after its grace period: close.
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

/// Builds the TLS acceptor from PEM files.
pub fn tls_acceptor(tls: &TlsConfig) -> Result<TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let certs = CertificateDer::pem_slice_iter(&read(&tls.cert_file)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", tls.cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", tls.cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&tls.key_file)?)
        .map_err(|e| format!("{}: {e}", tls.key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key do not fit: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Resolves when the process receives SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
