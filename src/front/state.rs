//! What every handler reads: the integrations, metrics, CORS policy and limits.

use std::time::Duration;

use super::cors::Cors;
use crate::metrics::Metrics;
use crate::upstream::Registry;

/// The gateway's shared state, read by every request.
#[derive(Debug)]
pub struct State {
    /// The integrations, indexed for resolution.
    pub registry: Registry,
    /// Every metric the gateway exports.
    pub metrics: Metrics,
    /// The CORS policy.
    pub cors: Cors,
    /// Request limits.
    pub limits: Limits,
    /// Serve the S3 API without client authentication.
    pub s3_anonymous: bool,
}

/// Limits on what one request may ask.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most locators in one batch.
    pub max_batch: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Longest time a request body may take to arrive.
    pub body_timeout: Duration,
    /// Most keys one `/v1/list?all=true` returns.
    pub list_all_max_keys: usize,
}
