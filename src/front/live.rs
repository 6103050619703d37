//! What the listeners serve, swapped whole by a reload: the gateway and the
//! TLS acceptor. Each request reads the gateway once, when it arrives, and
//! each connection the acceptor once, when it is accepted: what is in flight
//! finishes on what it started with.

use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio_rustls::TlsAcceptor;

use super::app::App;

/// The current gateway and TLS acceptor.
pub struct Live {
    app: ArcSwap<App>,
    tls: ArcSwapOption<TlsAcceptor>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("tls", &self.tls.load().is_some())
            .finish_non_exhaustive()
    }
}

impl Live {
    /// Serves `app`, over TLS with `tls` when given.
    pub fn new(app: Arc<App>, tls: Option<TlsAcceptor>) -> Arc<Self> {
        Arc::new(Self {
            app: ArcSwap::new(app),
            tls: ArcSwapOption::new(tls.map(Arc::new)),
        })
    }

    /// The gateway new requests are served by.
    pub fn app(&self) -> Arc<App> {
        self.app.load_full()
    }

    /// The acceptor new connections of the main listener shake hands with.
    pub fn tls(&self) -> Option<Arc<TlsAcceptor>> {
        self.tls.load_full()
    }

    /// Installs a reloaded gateway and acceptor for what arrives from now on.
    pub fn install(&self, app: Arc<App>, tls: Option<TlsAcceptor>) {
        self.app.store(app);
        self.tls.store(tls.map(Arc::new));
    }
}
