//! The accept loop: plain TCP or TLS (rustls), `max_connections`, and a
//! graceful drain bounded by a grace period; each connection is served by
//! [`super::http`].
//!
//! Listeners serve a [`Live`] gateway: a reload swaps the gateway and the
//! TLS acceptor for new requests and connections, while those in flight
//! keep theirs. The drain marks the gateway not ready (`/readyz` 503).
//!
//! At `max_connections` the loop stops accepting until one closes: further
//! clients wait in the kernel's backlog, they are not refused. Cleartext
//! listeners speak HTTP/1 only unless `h2c = true`; TLS ones offer `h2` by ALPN.

use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::app::App;
pub use super::authenticate::Listener;
use super::http::Protocols;
pub use super::live::Live;
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
    let protocols = Arc::new(Protocols::new(kind, live.clone(), limits, tls));
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
        let protocols = protocols.clone();
        let drain = drain.clone();
        let open = live.app().metrics().open_connections.clone();
        open.inc();
        tokio::spawn(async move {
            if let Err(e) = protocols.serve(stream, drain).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            open.dec();
            drop(permit);
        });
    }
    drop(listener);
    live.app().readiness().drain();
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
