//! Whether the gateway takes new work: `/readyz` answers 200 while it does,
//! 503 once a shutdown signal has started the drain.
//!
//! A gateway is reachable only through a bound listener, and its config is
//! loaded before any listener is, so "serving" is the state it starts in.
//! The state is shared by every config a reload installs.

use std::sync::atomic::{AtomicBool, Ordering};

/// The gateway's readiness, shared by its listeners and reloads.
#[derive(Debug, Default)]
pub struct Readiness {
    draining: AtomicBool,
}

impl Readiness {
    /// Marks the gateway as draining: `/readyz` answers 503 from now on.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether the gateway takes new work.
    pub fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::SeqCst)
    }
}
