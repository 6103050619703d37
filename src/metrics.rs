//! Prometheus metrics, kept in one registry and rendered at `/metrics`.

use prometheus::{
    Encoder, Gauge, GaugeVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Every metric the gateway exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route, status and client (`-` for anonymous).
    pub requests: IntCounterVec,
    /// AssumeRole calls by integration (the first one using the role).
    pub sts_calls: IntCounterVec,
    /// Failed AssumeRole calls by integration and STS error code.
    pub sts_failures: IntCounterVec,
    /// Credential lookups answered from the session cache.
    pub credential_hits: IntCounter,
    /// Credential lookups that had to wait for STS.
    pub credential_misses: IntCounter,
    /// Seconds until each integration's current session expires.
    pub credential_expiry: GaugeVec,
    /// Process uptime reference (seconds since the epoch at start).
    pub start_time: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    // Longer than 60 lines: one declaration per metric, then one registration
    // loop; a list reads best in one place.
    /// A fresh registry with every metric registered.
    // The names, help texts and labels are constants: prometheus refuses them
    // only if they are malformed or registered twice, a bug every test hits.
    #[allow(clippy::expect_used)]
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("s3gate".into()), None).expect("valid prefix");
        let requests = IntCounterVec::new(
            Opts::new(
                "requests_total",
                "HTTP requests by route, status and client",
            ),
            &["route", "status", "client"],
        )
        .expect("valid metric");
        let sts_calls = IntCounterVec::new(
            Opts::new("sts_calls_total", "AssumeRole calls by integration"),
            &["integration"],
        )
        .expect("valid metric");
        let sts_failures = IntCounterVec::new(
            Opts::new(
                "sts_failures_total",
                "failed AssumeRole calls by integration",
            ),
            &["integration", "code"],
        )
        .expect("valid metric");
        let credential_hits = IntCounter::new(
            "credential_cache_hits_total",
            "credential lookups served from the cache",
        )
        .expect("valid metric");
        let credential_misses = IntCounter::new(
            "credential_cache_misses_total",
            "credential lookups that waited for STS",
        )
        .expect("valid metric");
        let credential_expiry = GaugeVec::new(
            Opts::new(
                "credential_expiry_seconds",
                "seconds until the integration's session credentials expire",
            ),
            &["integration"],
        )
        .expect("valid metric");
        let start_time = Gauge::new(
            "start_time_seconds",
            "start time of the process since the epoch",
        )
        .expect("valid metric");
        for metric in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(sts_calls.clone()),
            Box::new(sts_failures.clone()),
            Box::new(credential_hits.clone()),
            Box::new(credential_misses.clone()),
            Box::new(credential_expiry.clone()),
            Box::new(start_time.clone()),
        ] {
            registry.register(metric).expect("unique metric names");
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        start_time.set(now.as_secs_f64());
        Self {
            registry,
            requests,
            sts_calls,
            sts_failures,
            credential_hits,
            credential_misses,
            credential_expiry,
            start_time,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
