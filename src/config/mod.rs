//! The configuration the gateway runs on, parsed once.
//!
//! [`Config::load`] reads the TOML file ([`file`] holds its schema), checks
//! every rule and returns typed values: parsed origins, access point ARNs and
//! endpoints, and secrets read from their environment variable or file into a
//! zeroizing [`Secret`]. Nothing downstream parses a config string again.
//! Every error names the section or the integration and the field at fault.

mod file;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::locator::AccessPointArn;
use crate::origins::Origins;
use crate::upstream::endpoint::Endpoint;

/// Longest presigned URL lifetime S3 accepts: 7 days.
pub const MAX_PRESIGN_TTL_S: u64 = 7 * 24 * 3600;

/// Longest presigned URL lifetime by default: 24 hours.
pub const DEFAULT_PRESIGN_MAX_TTL_S: u64 = 24 * 3600;

/// Role session lifetime STS grants when `session_duration_s` is not set.
pub const DEFAULT_SESSION_DURATION_S: u64 = 3600;

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the TOML parser said.
        message: String,
    },
    /// A field holds a value the gateway cannot use.
    #[error("{context}: `{field}` {message}")]
    Invalid {
        /// `[section]` or `integration "NAME"`.
        context: String,
        /// The field at fault.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// `[server]`: listener and limits.
    pub server: ServerConfig,
    /// `[identity]`: the gateway's own keys for STS; `None` uses the AWS default chain.
    pub identity: Option<Keys>,
    /// `[identity] principal_arn`: the ARN of that identity, which
    /// `s3gate policy` writes into trust policies (it cannot be known offline).
    pub identity_principal_arn: Option<String>,
    /// `[sts]`: how session credentials are refreshed.
    pub sts: StsConfig,
    /// `[upstream]`: connections to the stores.
    pub upstream: UpstreamConfig,
    /// `[s3_api]`: the S3-compatible front.
    pub s3_api: S3ApiConfig,
    /// `[cors]`: which browser origins may call the gateway.
    pub cors: CorsConfig,
    /// `[[integrations]]`: one per customer store, in file order.
    pub integrations: Vec<IntegrationConfig>,
    /// `[[clients]]`: who may call the gateway; empty for an anonymous one.
    pub clients: Vec<ClientConfig>,
    /// Keys of gateway-signed URLs and grants, the signing one first; empty
    /// when none is configured (a random key is made at start).
    pub url_signing_keys: Vec<Secret>,
    /// `[log]`: how log lines are written.
    pub log: LogConfig,
    /// `[cache]`: the media cache; `None` caches nothing.
    pub cache: Option<CacheConfig>,
}

/// `[cache]`: hot objects kept in memory and, optionally, on local disk.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Memory for hot slices and metadata, in MiB.
    pub memory_mb: u64,
    /// Directory of the disk tier; none keeps the cache in memory only.
    pub disk_path: Option<PathBuf>,
    /// Size of the disk tier, in MiB.
    pub disk_mb: u64,
    /// Seconds an entry is served before a conditional GET checks its ETag.
    pub revalidate_after_s: u64,
    /// Objects larger than this (MiB) stream through uncached.
    pub max_object_mb: u64,
    /// Size of the slices objects are fetched and kept in, in KiB.
    pub slice_kb: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            memory_mb: 256,
            disk_path: None,
            disk_mb: 0,
            revalidate_after_s: 60,
            max_object_mb: 512,
            slice_kb: 1024,
        }
    }
}

/// `[log]` (read before the rest, see [`crate::logging::format_in`]).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: crate::logging::Format,
}

impl Config {
    /// Whether every address the gateway listens on is a loopback one.
    pub fn listens_on_loopback_only(&self) -> bool {
        self.server.listen.ip().is_loopback()
            && self
                .server
                .metrics_listen
                .is_none_or(|a| a.ip().is_loopback())
    }
}

/// One `[[clients]]` entry: a caller of the gateway and what it may read.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Unique name, shown in the access log and metrics.
    pub name: String,
    /// SHA-256 digests of its bearer tokens (several while one is rotated).
    pub token_sha256: Vec<[u8; 32]>,
    /// Its SigV4 keys for the S3 front.
    pub keys: Option<Keys>,
    /// The integrations it may use; `None` for every one (`["*"]`).
    pub integrations: Option<Vec<String>>,
    /// When not empty, only these buckets within its integrations.
    pub buckets: Vec<String>,
    /// When not empty, only keys under these prefixes.
    pub prefixes: Vec<String>,
    /// May read `/metrics`.
    pub metrics: bool,
}

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        file::parse(text)
    }
}

/// A secret string (a secret access key): zeroed on drop, never printed.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The secret itself, for the signer that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An access key and its secret, read from where the config says.
#[derive(Debug, Clone)]
pub struct Keys {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret: Secret,
}

/// `[cors]`: browser origins allowed on every route.
#[derive(Debug, Clone)]
pub struct CorsConfig {
    /// Allowed origins.
    pub origins: Origins,
    /// `Access-Control-Max-Age` of preflight answers, in seconds.
    pub max_age_s: u64,
    /// Answer Private Network Access preflights (`Access-Control-Allow-Private-Network`).
    pub allow_private_network: bool,
}

/// One integration: a customer's store, how to reach it, what it permits.
#[derive(Debug)]
pub struct IntegrationConfig {
    /// Unique name, shown in responses and logs.
    pub name: String,
    /// Signing region.
    pub region: String,
    /// Which buckets it serves.
    pub scope: Scope,
    /// When not empty, only keys starting with one of these prefixes are served.
    pub prefixes: Vec<String>,
    /// Addressing of its objects.
    pub endpoint: Endpoint,
    /// The access point it serves through, if any.
    pub access_point: Option<AccessPointArn>,
    /// Default presigned URL lifetime in seconds.
    pub presign_ttl_s: u64,
    /// Longest lifetime a request may ask for; longer asks are capped.
    pub presign_max_ttl_s: u64,
    /// Serve objects stored as active types (HTML, SVG, …) inline.
    pub allow_active_content: bool,
    /// How `/v1/object` delivers.
    pub delivery: Delivery,
    /// Browser origins allowed for its objects, beside `[cors]`'s.
    pub origins: Origins,
    /// Signing-time window for cache-stable presigned URLs, in seconds.
    pub presign_window_s: Option<u64>,
    /// PEM file of extra CA certificates to trust for its endpoint.
    pub ca_file: Option<PathBuf>,
    /// What it signs with.
    pub credentials: CredentialsConfig,
    /// Its objects may be kept in the media cache (when `[cache]` is set).
    pub cache: bool,
    /// Its own revalidation interval, instead of `[cache]`'s.
    pub cache_revalidate_after_s: Option<u64>,
}

impl IntegrationConfig {
    /// Whether the config names `bucket` for this integration.
    pub fn serves_bucket(&self, bucket: &str) -> bool {
        match &self.scope {
            Scope::Default(buckets) => buckets.contains(bucket),
            Scope::Buckets(buckets) => buckets.iter().any(|b| b == bucket),
        }
    }

    /// `integration "NAME"`, the prefix of this integration's errors.
    pub fn context(&self) -> String {
        format!("integration {:?}", self.name)
    }
}

/// The buckets an integration serves.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Every bucket of the set not claimed by a scoped integration.
    Default(HashSet<String>),
    /// Exactly these buckets (empty for an access point only).
    Buckets(Vec<String>),
}

/// Where an integration's signing credentials come from.
#[derive(Debug, Clone)]
pub enum CredentialsConfig {
    /// Long-lived keys.
    Static(Keys),
    /// A role assumed through STS.
    Role(RoleConfig),
}

/// A role to assume and how.
#[derive(Debug, Clone)]
pub struct RoleConfig {
    /// Role ARN.
    pub arn: String,
    /// External ID the role's trust policy demands.
    pub external_id: Option<String>,
    /// STS role session name.
    pub session_name: String,
    /// Requested session lifetime in seconds (STS's default when `None`).
    pub duration_s: Option<u64>,
    /// Custom STS endpoint.
    pub sts_endpoint: Option<String>,
    /// Region of the STS calls.
    pub sts_region: String,
    /// Keys that call STS instead of the gateway's identity.
    pub caller: Option<Keys>,
}

/// How an integration delivers objects from `/v1/object`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// `307` to a presigned URL: the browser fetches from the store.
    #[default]
    Redirect,
    /// The gateway streams the bytes itself.
    Proxy,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Most locators in one `POST /v1/presign`.
    pub max_batch: usize,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Seconds to let in-flight requests finish after SIGTERM/SIGINT.
    pub shutdown_grace_s: u64,
    /// Longest time a client may take to send a request body, in seconds.
    pub body_timeout_s: u64,
    /// Serve HTTPS with this certificate chain and key (PEM).
    pub tls: Option<TlsConfig>,
    /// Serve the JSON API without clients on a non-loopback address.
    pub allow_anonymous: bool,
    /// Host names requests may name (`Host`); IP literals always pass.
    pub allowed_hosts: Vec<String>,
    /// The gateway's URL as browsers reach it (`https://host[:port]`), the
    /// base of gateway-signed URLs; the request's own scheme and host by default.
    pub public_url: Option<String>,
    /// A second listener serving only `/metrics` and `/healthz`, unauthenticated.
    pub metrics_listen: Option<SocketAddr>,
    /// Environment variable holding the URL signing keys (comma or whitespace separated).
    pub url_signing_keys_env: Option<String>,
    /// File holding the URL signing keys, one per line.
    pub url_signing_keys_file: Option<PathBuf>,
    /// Most client connections served at once; beyond it, accept waits.
    pub max_connections: usize,
    /// Seconds from accept until the TLS handshake, protocol detection and
    /// the first request's headers must be done.
    pub handshake_timeout_s: u64,
    /// Seconds an HTTP/1 connection may stay idle between requests.
    pub keepalive_timeout_s: u64,
    /// Seconds between HTTP/2 keep-alive pings.
    pub http2_keepalive_interval_s: u64,
    /// Seconds a ping may go unanswered before the HTTP/2 connection is closed.
    pub http2_keepalive_timeout_s: u64,
    /// Seconds an HTTP/2 connection may stay without open streams.
    pub http2_idle_timeout_s: u64,
    /// Speak cleartext HTTP/2 (prior knowledge) on a listener without TLS.
    pub h2c: bool,
    /// Seconds a client may take nothing of a response before it, and its
    /// upstream request, are ended.
    pub send_timeout_s: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_batch: 1000,
            max_body_bytes: 1 << 20,
            shutdown_grace_s: 10,
            body_timeout_s: 30,
            tls: None,
            allow_anonymous: false,
            allowed_hosts: vec!["localhost".into()],
            public_url: None,
            metrics_listen: None,
            url_signing_keys_env: None,
            url_signing_keys_file: None,
            max_connections: 10_000,
            handshake_timeout_s: 10,
            keepalive_timeout_s: 75,
            http2_keepalive_interval_s: 30,
            http2_keepalive_timeout_s: 20,
            http2_idle_timeout_s: 120,
            h2c: false,
            send_timeout_s: 60,
        }
    }
}

/// `[server.tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
}

/// `[upstream]`: the pooled client that talks to the stores.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// TCP (and TLS) connect timeout, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Time allowed until the response headers arrive, in seconds.
    pub header_timeout_s: u64,
    /// Longest silence of a store in the middle of a response body, in
    /// seconds; then the response is cut off.
    pub body_idle_timeout_s: u64,
    /// Idle pooled connections are closed after this many seconds.
    pub pool_idle_timeout_s: u64,
    /// Idle connections kept per upstream host. Below the number of store
    /// requests in flight at once, connections churn: each one returned to
    /// a full pool is closed and the next request opens a new one (a TLS
    /// handshake with a real store).
    pub pool_max_idle_per_host: usize,
    /// Most keys `/v1/list?all=true` returns before it stops with a cursor.
    pub list_all_max_keys: usize,
    /// Most store pages (of 1,000 keys) one `/v1/list?all=true` reads.
    pub list_all_max_pages: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 3000,
            header_timeout_s: 30,
            body_idle_timeout_s: 30,
            pool_idle_timeout_s: 90,
            // 64 churned under 8 HTTP/2 clients × 32 streams: one store
            // connection opened and closed per 4 requests, ≈ 20 % of the
            // gateway's CPU per request there (and a quarter of the store's).
            // An idle connection holds a socket and hyper's buffers until
            // `pool_idle_timeout_s`.
            pool_max_idle_per_host: 256,
            list_all_max_keys: 100_000,
            list_all_max_pages: 100,
        }
    }
}

/// `[s3_api]`: the S3-compatible front (`GET|HEAD /{bucket}/{key}`, ListObjectsV2).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3ApiConfig {
    /// Serve the S3 API without client authentication (signatures are not checked).
    pub anonymous: bool,
}

/// `[sts]`: refresh-ahead and retry policy for assumed-role sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StsConfig {
    /// Refresh when less than this many seconds of a session remain…
    pub refresh_margin_s: u64,
    /// …or less than this fraction of its lifetime, whichever is smaller.
    pub refresh_margin_ratio: f64,
    /// Sessions are never used in their last seconds: treated as expired this early.
    pub expiry_margin_s: u64,
    /// First retry delay after an STS failure, in milliseconds (doubles, jittered).
    pub retry_base_ms: u64,
    /// Longest retry delay, in milliseconds.
    pub retry_max_ms: u64,
    /// Timeout of one STS call, in seconds.
    pub timeout_s: u64,
}

impl Default for StsConfig {
    fn default() -> Self {
        Self {
            refresh_margin_s: 300,
            refresh_margin_ratio: 0.2,
            expiry_margin_s: 30,
            retry_base_ms: 500,
            retry_max_ms: 30_000,
            timeout_s: 10,
        }
    }
}
