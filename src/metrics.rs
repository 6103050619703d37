//! Prometheus metrics, kept in one registry and rendered at `/metrics`.
//!
//! Labels are configured names only (routes, integrations, clients), never a
//! role ARN, a key or a bucket a request merely named.

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

/// Latency buckets, in seconds: sub-millisecond presigns to slow streams.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Every metric the gateway exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route, method, status, status class, integration and client.
    pub requests: IntCounterVec,
    /// Time to the response headers, by route.
    pub request_duration: HistogramVec,
    /// Object and listing bytes streamed (`/v1/object`, the S3 front), by integration.
    pub response_bytes: IntCounterVec,
    /// Store requests by integration and status class (`error` when none came).
    pub upstream_requests: IntCounterVec,
    /// Time to the store's response headers, by integration.
    pub upstream_duration: HistogramVec,
    /// AssumeRole calls by integration (the first one using the role).
    pub sts_calls: IntCounterVec,
    /// Failed AssumeRole calls by integration and STS error code.
    pub sts_failures: IntCounterVec,
    /// Credential lookups answered from the session cache, by integration.
    pub credential_hits: IntCounterVec,
    /// Credential lookups that had to wait for STS, by integration.
    pub credential_misses: IntCounterVec,
    /// Seconds until each integration's current session expires.
    pub credential_expiry: GaugeVec,
    /// Client connections open now.
    pub open_connections: IntGauge,
    /// Open client connections waiting for a request with no HTTP state held.
    pub idle_connections: IntGauge,
    /// Log lines dropped: the log writer fell behind, or stderr refused them.
    pub log_lines_dropped: IntGauge,
    /// Process start time (seconds since the epoch).
    pub start_time: Gauge,
    /// Media cache answers by integration and status (hit, miss, revalidated, bypass).
    pub cache_requests: IntCounterVec,
    /// Bytes the media cache served, by integration and source (cache, store).
    pub cache_bytes: IntCounterVec,
    /// Media cache entries evicted from memory.
    pub cache_evictions: IntCounter,
    /// Bytes the media cache holds in memory.
    pub cache_memory_bytes: IntGauge,
    /// Bytes the media cache's disk tier occupies.
    pub cache_disk_bytes: IntGauge,
    /// Media cache failures by tier (disk).
    pub cache_errors: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

// The names, help texts and labels are constants: prometheus refuses them
// only if they are malformed or registered twice, a bug every test hits.
#[allow(clippy::expect_used)]
fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}

#[allow(clippy::expect_used)]
fn histogram(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    HistogramVec::new(opts, labels).expect("valid metric")
}

impl Metrics {
    /// A fresh registry with every metric registered.
    #[allow(clippy::expect_used)] // see `counter`
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("s3gate".into()), None).expect("valid prefix");
        let metrics = Self {
            requests: counter(
                "requests_total",
                "HTTP requests by route, method, status, class, integration and client",
                &[
                    "route",
                    "method",
                    "status",
                    "class",
                    "integration",
                    "client",
                ],
            ),
            request_duration: histogram(
                "request_duration_seconds",
                "time to the response headers, by route",
                &["route"],
            ),
            response_bytes: counter(
                "response_bytes_total",
                "bytes streamed by /v1/object and the S3 front, by integration",
                &["integration"],
            ),
            upstream_requests: counter(
                "upstream_requests_total",
                "store requests by integration and status class",
                &["integration", "class"],
            ),
            upstream_duration: histogram(
                "upstream_duration_seconds",
                "time to the store's response headers, by integration",
                &["integration"],
            ),
            sts_calls: counter(
                "sts_calls_total",
                "AssumeRole calls by integration",
                &["integration"],
            ),
            sts_failures: counter(
                "sts_failures_total",
                "failed AssumeRole calls by integration",
                &["integration", "code"],
            ),
            credential_hits: counter(
                "credential_cache_hits_total",
                "credential lookups served from the cache",
                &["integration"],
            ),
            credential_misses: counter(
                "credential_cache_misses_total",
                "credential lookups that waited for STS",
                &["integration"],
            ),
            credential_expiry: GaugeVec::new(
                Opts::new(
                    "credential_expiry_seconds",
                    "seconds until the integration's session credentials expire",
                ),
                &["integration"],
            )
            .expect("valid metric"),
            open_connections: IntGauge::new("open_connections", "client connections open now")
                .expect("valid metric"),
            idle_connections: IntGauge::new(
                "idle_connections",
                "open client connections waiting for a request with no HTTP state held",
            )
            .expect("valid metric"),
            log_lines_dropped: IntGauge::new(
                "log_lines_dropped",
                "log lines dropped: the log writer fell behind, or stderr refused them",
            )
            .expect("valid metric"),
            start_time: Gauge::new(
                "start_time_seconds",
                "start time of the process since the epoch",
            )
            .expect("valid metric"),
            cache_requests: counter(
                "cache_requests_total",
                "media cache answers by integration and status",
                &["integration", "status"],
            ),
            cache_bytes: counter(
                "cache_bytes_total",
                "bytes served by the media cache, by integration and source (cache, store)",
                &["integration", "source"],
            ),
            cache_evictions: IntCounter::new(
                "cache_evictions_total",
                "media cache entries evicted from memory",
            )
            .expect("valid metric"),
            cache_memory_bytes: IntGauge::new(
                "cache_memory_bytes",
                "bytes the media cache holds in memory",
            )
            .expect("valid metric"),
            cache_disk_bytes: IntGauge::new(
                "cache_disk_bytes",
                "bytes the media cache's disk tier occupies",
            )
            .expect("valid metric"),
            cache_errors: counter(
                "cache_errors_total",
                "media cache failures by tier",
                &["tier"],
            ),
            registry,
        };
        for metric in metrics.collectors() {
            metrics
                .registry
                .register(metric)
                .expect("unique metric names");
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        metrics.start_time.set(now.as_secs_f64());
        metrics
    }

    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.requests.clone()),
            Box::new(self.request_duration.clone()),
            Box::new(self.response_bytes.clone()),
            Box::new(self.upstream_requests.clone()),
            Box::new(self.upstream_duration.clone()),
            Box::new(self.sts_calls.clone()),
            Box::new(self.sts_failures.clone()),
            Box::new(self.credential_hits.clone()),
            Box::new(self.credential_misses.clone()),
            Box::new(self.credential_expiry.clone()),
            Box::new(self.open_connections.clone()),
            Box::new(self.idle_connections.clone()),
            Box::new(self.log_lines_dropped.clone()),
            Box::new(self.start_time.clone()),
            Box::new(self.cache_requests.clone()),
            Box::new(self.cache_bytes.clone()),
            Box::new(self.cache_evictions.clone()),
            Box::new(self.cache_memory_bytes.clone()),
            Box::new(self.cache_disk_bytes.clone()),
            Box::new(self.cache_errors.clone()),
        ]
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let dropped = i64::try_from(crate::logging::dropped_lines()).unwrap_or(i64::MAX);
        self.log_lines_dropped.set(dropped);
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// `2xx`, `4xx`…: the class of an HTTP status.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
