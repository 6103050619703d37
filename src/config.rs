//! The TOML configuration: schema, defaults and validation.
//!
//! Unknown keys are rejected; every validation error names the section or the
//! integration and the field at fault.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cors::Origins;
use crate::locator::{valid_region, validate_bucket_name, AccessPointArn};

/// Longest presigned URL lifetime S3 accepts: 7 days.
pub const MAX_PRESIGN_TTL_S: u64 = 7 * 24 * 3600;

/// Role session lifetime STS grants when `session_duration_s` is not set.
pub const DEFAULT_SESSION_DURATION_S: u64 = 3600;

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A field holds a value the gateway cannot use.
    #[error("{context}: `{field}` {message}")]
    Invalid {
        context: String,
        field: &'static str,
        message: String,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`: listener and limits.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[identity]`: the gateway's own AWS identity, used to assume roles.
    #[serde(default)]
    pub identity: IdentityConfig,
    /// `[sts]`: how session credentials are refreshed.
    #[serde(default)]
    pub sts: StsConfig,
    /// `[upstream]`: connections to the stores.
    #[serde(default)]
    pub upstream: UpstreamConfig,
    /// `[s3_api]`: the S3-compatible front.
    #[serde(default)]
    pub s3_api: S3ApiConfig,
    /// `[cors]`: which browser origins may call the gateway.
    #[serde(default)]
    pub cors: CorsConfig,
    /// `[[integrations]]`: one per customer store.
    #[serde(default)]
    pub integrations: Vec<IntegrationConfig>,
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

/// `[identity]`: who the gateway is when it calls STS.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Static keys; without them the AWS default credential chain is used.
    pub credentials: Option<StaticCredentialsConfig>,
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
    /// Idle connections kept per upstream host.
    pub pool_max_idle_per_host: usize,
    /// Most keys `/v1/list?all=true` returns before it stops with a cursor.
    pub list_all_max_keys: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 3000,
            header_timeout_s: 30,
            body_idle_timeout_s: 30,
            pool_idle_timeout_s: 90,
            pool_max_idle_per_host: 64,
            list_all_max_keys: 100_000,
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

/// `[cors]`: browser origins allowed on every route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Exact origins (`https://app.example.com`), `https://*.example.com` patterns, or `*`.
    pub allowed_origins: Vec<String>,
    /// `Access-Control-Max-Age` of preflight answers, in seconds.
    pub max_age_s: u64,
    /// Answer Private Network Access preflights (`Access-Control-Allow-Private-Network`).
    pub allow_private_network: bool,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            max_age_s: 600,
            allow_private_network: false,
        }
    }
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

impl UpstreamConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let ctx = || "[upstream]".to_owned();
        for (field, value) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("header_timeout_s", self.header_timeout_s),
            ("body_idle_timeout_s", self.body_idle_timeout_s),
            ("list_all_max_keys", self.list_all_max_keys as u64),
        ] {
            if value == 0 {
                return Err(invalid(ctx(), field, "must be at least 1"));
            }
        }
        Ok(())
    }
}

impl StsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let ctx = || "[sts]".to_owned();
        if !(self.refresh_margin_ratio > 0.0 && self.refresh_margin_ratio < 1.0) {
            return Err(invalid(
                ctx(),
                "refresh_margin_ratio",
                "must be between 0 and 1",
            ));
        }
        if self.retry_base_ms == 0 || self.retry_base_ms > self.retry_max_ms {
            return Err(invalid(
                ctx(),
                "retry_base_ms",
                "must be at least 1 and at most `retry_max_ms`",
            ));
        }
        if self.timeout_s == 0 {
            return Err(invalid(ctx(), "timeout_s", "must be at least 1"));
        }
        Ok(())
    }
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

/// One `[[integrations]]` entry: a customer's store and how to reach it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationConfig {
    /// Unique name, shown in responses and logs.
    pub name: String,
    /// Signing region.
    #[serde(default = "default_region")]
    pub region: String,
    /// Serve every bucket in `buckets` not claimed by a scoped integration.
    #[serde(default)]
    pub default: bool,
    /// The one bucket this integration is scoped to.
    pub bucket: Option<String>,
    /// Permitted buckets (scoped to each of them unless `default = true`).
    #[serde(default)]
    pub buckets: Vec<String>,
    /// When set, only keys starting with one of these prefixes are served.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Custom S3 endpoint the gateway dials (MinIO, another S3-compatible store).
    pub endpoint_url: Option<String>,
    /// Endpoint put in presigned URLs when browsers dial another host than the gateway.
    pub public_endpoint_url: Option<String>,
    /// Path-style addressing; defaults to true for custom endpoints.
    pub force_path_style: Option<bool>,
    /// Address objects through this S3 access point.
    pub access_point_arn: Option<String>,
    /// Default presigned URL lifetime in seconds.
    #[serde(default = "default_presign_ttl")]
    pub presign_ttl_s: u64,
    /// How `/v1/object` delivers.
    #[serde(default)]
    pub delivery: Delivery,
    /// Browser origins allowed for this integration's objects, beside `[cors]`'s.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Round signing times down to windows of this many seconds, so that one
    /// object's presigned URL stays byte-identical (and cacheable) for a window.
    pub presign_window_s: Option<u64>,
    /// PEM file of extra CA certificates to trust for this endpoint (private CA).
    pub ca_file: Option<PathBuf>,
    /// Role to assume (the customer's role that trusts the gateway's account).
    pub role_arn: Option<String>,
    /// External ID the role's trust policy demands.
    pub external_id: Option<String>,
    /// STS role session name.
    pub session_name: Option<String>,
    /// Requested session lifetime in seconds.
    pub session_duration_s: Option<u64>,
    /// Custom STS endpoint (regional STS, or a store's own STS).
    pub sts_endpoint: Option<String>,
    /// Region for STS calls; defaults to `region`.
    pub sts_region: Option<String>,
    /// Static keys: sign with them, or, with `role_arn`, assume the role with them.
    pub credentials: Option<StaticCredentialsConfig>,
}

/// `credentials` tables: an access key and where its secret is.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticCredentialsConfig {
    /// Access key id.
    pub access_key_id: String,
    /// Environment variable holding the secret.
    pub secret_access_key_env: Option<String>,
    /// File holding the secret (trailing whitespace trimmed).
    pub secret_access_key_file: Option<PathBuf>,
    /// The secret inline (discouraged: warned about at load).
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for StaticCredentialsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentialsConfig")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key_env", &self.secret_access_key_env)
            .field("secret_access_key_file", &self.secret_access_key_file)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

fn default_region() -> String {
    "us-east-1".into()
}

fn default_presign_ttl() -> u64 {
    900
}

impl Config {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config = Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })?;
        Ok(config)
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<config>"),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every rule that parsing alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.sts.validate()?;
        self.upstream.validate()?;
        Origins::parse(&self.cors.allowed_origins)
            .map_err(|m| invalid("[cors]".into(), "allowed_origins", m))?;
        if let Some(creds) = &self.identity.credentials {
            creds.resolve_secret("[identity]")?;
            creds.warn_if_inline("[identity]");
        }
        let mut names = HashMap::new();
        let mut scoped: HashMap<&str, &str> = HashMap::new();
        let mut default: Option<&str> = None;
        for integration in &self.integrations {
            integration.validate()?;
            let ctx = integration.context();
            if let Some(duration) = integration.role_session_duration_s() {
                if duration <= self.sts.expiry_margin_s + 1 {
                    let msg = format!(
                        "= {duration} leaves nothing to sign with: sessions stop being used [sts] expiry_margin_s = {} s before they expire",
                        self.sts.expiry_margin_s
                    );
                    return Err(invalid(ctx, "session_duration_s", msg));
                }
            }
            if names.insert(integration.name.as_str(), ()).is_some() {
                return Err(invalid(ctx, "name", "is used by another integration"));
            }
            if integration.default {
                if let Some(other) = default.replace(&integration.name) {
                    let msg = format!("is also set by integration {other:?}: only one default");
                    return Err(invalid(ctx, "default", msg));
                }
                continue;
            }
            for bucket in integration.scoped_buckets() {
                if let Some(other) = scoped.insert(bucket, &integration.name) {
                    let msg = format!("{bucket:?} is already scoped to integration {other:?}");
                    return Err(invalid(ctx, "bucket", msg));
                }
            }
        }
        Ok(())
    }
}

impl ServerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let ctx = || "[server]".to_owned();
        if self.max_batch == 0 {
            return Err(invalid(ctx(), "max_batch", "must be at least 1"));
        }
        if self.body_timeout_s == 0 {
            return Err(invalid(ctx(), "body_timeout_s", "must be at least 1"));
        }
        if self.max_body_bytes < 1024 {
            return Err(invalid(ctx(), "max_body_bytes", "must be at least 1024"));
        }
        Ok(())
    }
}

impl IntegrationConfig {
    /// `integration "NAME"`, the prefix of this integration's errors.
    pub fn context(&self) -> String {
        format!("integration {:?}", self.name)
    }

    /// The lifetime asked of this integration's role sessions, if it assumes a role.
    pub fn role_session_duration_s(&self) -> Option<u64> {
        self.role_arn.as_ref().map(|_| {
            self.session_duration_s
                .unwrap_or(DEFAULT_SESSION_DURATION_S)
        })
    }

    /// Buckets claimed by this integration when it is not the default.
    pub fn scoped_buckets(&self) -> impl Iterator<Item = &str> {
        self.bucket.iter().chain(&self.buckets).map(String::as_str)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let ctx = self.context();
        if self.name.trim().is_empty() {
            return Err(invalid(
                "an integration".into(),
                "name",
                "must not be empty",
            ));
        }
        if !valid_region(&self.region) {
            return Err(invalid(
                ctx,
                "region",
                format!("{:?} is not a region name", self.region),
            ));
        }
        self.validate_scope()?;
        self.validate_endpoints()?;
        if self.presign_ttl_s == 0 || self.presign_ttl_s > MAX_PRESIGN_TTL_S {
            let msg = format!("must be 1 to {MAX_PRESIGN_TTL_S} seconds (7 days)");
            return Err(invalid(ctx, "presign_ttl_s", msg));
        }
        if let Some(window) = self.presign_window_s {
            if window == 0 || window + self.presign_ttl_s > MAX_PRESIGN_TTL_S {
                let msg = "must be at least 1 and, with presign_ttl_s, at most 7 days";
                return Err(invalid(ctx, "presign_window_s", msg));
            }
        }
        Origins::parse(&self.allowed_origins)
            .map_err(|m| invalid(ctx.clone(), "allowed_origins", m))?;
        self.validate_credentials()
    }

    fn validate_scope(&self) -> Result<(), ConfigError> {
        let ctx = || self.context();
        if self.default && self.bucket.is_some() {
            return Err(invalid(
                ctx(),
                "bucket",
                "cannot scope the default integration",
            ));
        }
        if self.bucket.is_none() && self.buckets.is_empty() && self.access_point_arn.is_none() {
            let msg = "is required: name `bucket` or `buckets` (or an `access_point_arn`)";
            return Err(invalid(ctx(), "buckets", msg));
        }
        for bucket in self.scoped_buckets() {
            validate_bucket_name(bucket).map_err(|m| invalid(ctx(), "buckets", m))?;
        }
        if self.prefixes.iter().any(String::is_empty) {
            return Err(invalid(ctx(), "prefixes", "must not hold an empty prefix"));
        }
        Ok(())
    }

    fn validate_endpoints(&self) -> Result<(), ConfigError> {
        let ctx = || self.context();
        for (field, url) in [
            ("endpoint_url", &self.endpoint_url),
            ("public_endpoint_url", &self.public_endpoint_url),
            ("sts_endpoint", &self.sts_endpoint),
        ] {
            if let Some(url) = url {
                validate_endpoint_url(url).map_err(|m| invalid(ctx(), field, m))?;
            }
        }
        if self.force_path_style == Some(false) {
            for (field, url) in [
                ("endpoint_url", &self.endpoint_url),
                ("public_endpoint_url", &self.public_endpoint_url),
            ] {
                if url.as_deref().is_some_and(has_ip_host) {
                    let msg = format!("= false needs a DNS name in `{field}`: virtual-hosted addressing puts the bucket in front of the host");
                    return Err(invalid(ctx(), "force_path_style", msg));
                }
            }
        }
        if self.public_endpoint_url.is_some() && self.endpoint_url.is_none() {
            let msg = "needs `endpoint_url` (it replaces that endpoint's host in presigned URLs)";
            return Err(invalid(ctx(), "public_endpoint_url", msg));
        }
        if let Some(arn) = &self.access_point_arn {
            let ap =
                AccessPointArn::parse(arn).map_err(|m| invalid(ctx(), "access_point_arn", m))?;
            if ap.region != self.region {
                let msg = format!(
                    "is in region {} but the integration's region is {}",
                    ap.region, self.region
                );
                return Err(invalid(ctx(), "access_point_arn", msg));
            }
            if self.endpoint_url.is_some() {
                let msg = "cannot be combined with `endpoint_url`";
                return Err(invalid(ctx(), "access_point_arn", msg));
            }
        }
        if let Some(region) = &self.sts_region {
            if !valid_region(region) {
                return Err(invalid(
                    ctx(),
                    "sts_region",
                    format!("{region:?} is not a region name"),
                ));
            }
        }
        Ok(())
    }

    fn validate_credentials(&self) -> Result<(), ConfigError> {
        let ctx = self.context();
        if let Some(creds) = &self.credentials {
            creds.resolve_secret(&ctx)?;
            creds.warn_if_inline(&ctx);
        }
        let Some(role) = &self.role_arn else {
            if self.credentials.is_none() {
                let msg =
                    "are missing: set `role_arn` (+ `external_id`) or `[integrations.credentials]`";
                return Err(invalid(ctx, "credentials", msg));
            }
            for (field, set) in [
                ("external_id", self.external_id.is_some()),
                ("session_name", self.session_name.is_some()),
                ("session_duration_s", self.session_duration_s.is_some()),
                ("sts_endpoint", self.sts_endpoint.is_some()),
                ("sts_region", self.sts_region.is_some()),
            ] {
                if set {
                    return Err(invalid(ctx, field, "needs `role_arn`"));
                }
            }
            return Ok(());
        };
        validate_role_arn(role).map_err(|m| invalid(ctx.clone(), "role_arn", m))?;
        if let Some(id) = &self.external_id {
            validate_external_id(id).map_err(|m| invalid(ctx.clone(), "external_id", m))?;
        }
        if let Some(name) = &self.session_name {
            validate_session_name(name).map_err(|m| invalid(ctx.clone(), "session_name", m))?;
        }
        if let Some(d) = self.session_duration_s {
            if !(1..=43_200).contains(&d) {
                let msg = "must be 1 to 43200 seconds";
                return Err(invalid(ctx, "session_duration_s", msg));
            }
            if d < 900 {
                tracing::warn!(
                    "{ctx}: session_duration_s = {d}: AWS STS refuses sessions under 900 s"
                );
            }
        }
        Ok(())
    }
}

impl StaticCredentialsConfig {
    fn warn_if_inline(&self, ctx: &str) {
        if self.secret_access_key.is_some() {
            tracing::warn!("{ctx}: the secret access key is inline in the config; prefer secret_access_key_env or secret_access_key_file");
        }
    }

    /// Reads the secret from the one place it is configured in.
    pub fn resolve_secret(&self, ctx: &str) -> Result<String, ConfigError> {
        let err = |m: String| invalid(ctx.to_owned(), "credentials", m);
        if self.access_key_id.trim().is_empty() {
            return Err(err("`access_key_id` is empty".into()));
        }
        let sources = [
            self.secret_access_key_env.is_some(),
            self.secret_access_key_file.is_some(),
            self.secret_access_key.is_some(),
        ];
        match sources.iter().filter(|s| **s).count() {
            0 => return Err(err("need one of `secret_access_key_env`, `secret_access_key_file`, `secret_access_key`".into())),
            1 => {}
            _ => return Err(err("set only one of `secret_access_key_env`, `secret_access_key_file`, `secret_access_key`".into())),
        }
        let secret = if let Some(var) = &self.secret_access_key_env {
            std::env::var(var).map_err(|_| {
                err(format!(
                    "environment variable {var} (secret_access_key_env) is not set"
                ))
            })?
        } else if let Some(path) = &self.secret_access_key_file {
            std::fs::read_to_string(path)
                .map_err(|e| {
                    err(format!(
                        "cannot read secret_access_key_file {}: {e}",
                        path.display()
                    ))
                })?
                .trim_end()
                .to_owned()
        } else {
            self.secret_access_key.clone().unwrap_or_default()
        };
        if secret.is_empty() {
            return Err(err("the secret access key is empty".into()));
        }
        Ok(secret)
    }
}

fn invalid(context: String, field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        context,
        field,
        message: message.into(),
    }
}

/// An `http(s)://host[:port]` URL with no path, query or credentials.
fn validate_endpoint_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(format!("{url:?} must be an http:// or https:// URL")),
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{url:?} has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("{url:?} must not carry credentials"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!("{url:?} must not have a path or query"));
    }
    Ok(())
}

/// Whether a (valid) endpoint URL names its host by IP address.
fn has_ip_host(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    uri.host()
        .is_some_and(|host| host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok())
}

fn validate_role_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = matches!(parts[..], ["arn", _, "iam", "", account, resource]
        if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
            && resource.starts_with("role/") && resource.len() > 5);
    ok.then_some(())
        .ok_or_else(|| format!("{arn:?} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"))
}

fn validate_external_id(id: &str) -> Result<(), String> {
    let ok = (2..=1224).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:/-".contains(&b));
    ok.then_some(())
        .ok_or_else(|| "must be 2 to 1224 characters of letters, digits and _+=,.@:/-".into())
}

fn validate_session_name(name: &str) -> Result<(), String> {
    let ok = (2..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    ok.then_some(())
        .ok_or_else(|| "must be 2 to 64 characters of letters, digits and _+=,.@-".into())
}
