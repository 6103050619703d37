//! The TOML schema of the configuration file, and its conversion into the
//! typed [`Config`]: each value is checked and parsed here, once.
//!
//! Unknown keys are rejected. Secrets are read from their environment
//! variable or file here, and never appear in an error message.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use serde::Deserialize;

use super::{
    CacheConfig, ClientConfig, Config, ConfigError, CorsConfig, CredentialsConfig, Delivery,
    IntegrationConfig, Keys, LogConfig, RoleConfig, S3ApiConfig, Scope, Secret, ServerConfig,
    StsConfig, UpstreamConfig, DEFAULT_PRESIGN_MAX_TTL_S, DEFAULT_SESSION_DURATION_S,
    MAX_PRESIGN_TTL_S,
};
use crate::locator::{valid_region, validate_bucket_name, AccessPointArn};
use crate::origins::Origins;
use crate::upstream::endpoint::{Endpoint, Origin};

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    identity: IdentityFile,
    #[serde(default)]
    sts: StsConfig,
    #[serde(default)]
    upstream: UpstreamConfig,
    #[serde(default)]
    s3_api: S3ApiConfig,
    #[serde(default)]
    cors: CorsFile,
    #[serde(default)]
    integrations: Vec<IntegrationFile>,
    #[serde(default)]
    clients: Vec<ClientFile>,
    #[serde(default)]
    log: LogConfig,
    cache: Option<CacheConfig>,
}

/// One `[[clients]]` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    name: String,
    #[serde(default)]
    token_sha256: Vec<String>,
    access_key_id: Option<String>,
    secret_access_key_env: Option<String>,
    secret_access_key_file: Option<PathBuf>,
    integrations: Vec<String>,
    #[serde(default)]
    buckets: Vec<String>,
    #[serde(default)]
    prefixes: Vec<String>,
    #[serde(default)]
    metrics: bool,
}

/// `[identity]`: who the gateway is when it calls STS.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityFile {
    credentials: Option<KeysFile>,
    /// The ARN customers' trust policies name (`s3gate policy`); never sent anywhere.
    principal_arn: Option<String>,
}

/// `[cors]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct CorsFile {
    allowed_origins: Vec<String>,
    max_age_s: u64,
    allow_private_network: bool,
}

impl Default for CorsFile {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            max_age_s: 600,
            allow_private_network: false,
        }
    }
}

/// One `[[integrations]]` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IntegrationFile {
    name: String,
    #[serde(default = "default_region")]
    region: String,
    #[serde(default)]
    default: bool,
    bucket: Option<String>,
    #[serde(default)]
    buckets: Vec<String>,
    #[serde(default)]
    prefixes: Vec<String>,
    endpoint_url: Option<String>,
    public_endpoint_url: Option<String>,
    force_path_style: Option<bool>,
    access_point_arn: Option<String>,
    #[serde(default = "default_presign_ttl")]
    presign_ttl_s: u64,
    #[serde(default = "default_presign_max_ttl")]
    presign_max_ttl_s: u64,
    #[serde(default)]
    allow_active_content: bool,
    #[serde(default)]
    delivery: Delivery,
    #[serde(default)]
    allowed_origins: Vec<String>,
    presign_window_s: Option<u64>,
    ca_file: Option<PathBuf>,
    role_arn: Option<String>,
    external_id: Option<String>,
    session_name: Option<String>,
    session_duration_s: Option<u64>,
    sts_endpoint: Option<String>,
    sts_region: Option<String>,
    credentials: Option<KeysFile>,
    #[serde(default = "default_true")]
    cache: bool,
    cache_revalidate_after_s: Option<u64>,
}

fn default_true() -> bool {
    true
}

/// `credentials` tables: an access key and where its secret is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    access_key_id: String,
    secret_access_key_env: Option<String>,
    secret_access_key_file: Option<PathBuf>,
    /// Inline (discouraged: warned about at load); zeroed once read.
    secret_access_key: Option<Secret>,
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

fn default_region() -> String {
    "us-east-1".into()
}

fn default_presign_ttl() -> u64 {
    900
}

fn default_presign_max_ttl() -> u64 {
    DEFAULT_PRESIGN_MAX_TTL_S
}

/// Parses and validates configuration text into the typed [`Config`].
pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
    let file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: PathBuf::from("<config>"),
        message: parse_message(text, &e),
    })?;
    file.into_config()
}

/// Where the TOML parser stopped and why: the line, column, table and key,
/// never the offending line's value (it may hold a secret).
fn parse_message(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    let Some(span) = error.span() else {
        return message.to_owned();
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let mut place = format!("line {line}, column {column}");
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['));
    let key = text[line_start..]
        .split_once('=')
        .map(|(key, _)| key.trim())
        .filter(|key| !key.is_empty() && !key.contains('\n') && key.len() <= 64);
    if let Some(table) = table.filter(|t| t.len() <= 64 && !t.contains('=')) {
        place.push_str(&format!(", in {table}"));
    }
    if let Some(key) = key {
        place.push_str(&format!(", `{key}`"));
    }
    format!("{place}: {message}")
}

impl ConfigFile {
    fn into_config(self) -> Result<Config, ConfigError> {
        self.server.validate()?;
        self.sts.validate()?;
        self.upstream.validate()?;
        if let Some(cache) = &self.cache {
            cache.validate()?;
        }
        let cors = CorsConfig {
            origins: Origins::parse(&self.cors.allowed_origins)
                .map_err(|m| invalid("[cors]".into(), "allowed_origins", m))?,
            max_age_s: self.cors.max_age_s,
            allow_private_network: self.cors.allow_private_network,
        };
        let identity = self
            .identity
            .credentials
            .map(|keys| keys.resolve("[identity]"))
            .transpose()?;
        let identity_principal_arn = self.identity.principal_arn.clone();
        if let Some(arn) = &identity_principal_arn {
            validate_principal_arn(arn)
                .map_err(|m| invalid("[identity]".into(), "principal_arn", m))?;
        }
        check_uniqueness(&self.integrations)?;
        let names: HashSet<&str> = self.integrations.iter().map(|i| i.name.as_str()).collect();
        let clients = resolve_clients(&self.clients, &names)?;
        let url_signing_keys = url_signing_keys(&self.server)?;
        let integrations = self
            .integrations
            .into_iter()
            .map(|i| i.into_config(&self.sts))
            .collect::<Result<_, _>>()?;
        let config = Config {
            server: self.server,
            identity,
            identity_principal_arn,
            sts: self.sts,
            upstream: self.upstream,
            s3_api: self.s3_api,
            cors,
            integrations,
            clients,
            url_signing_keys,
            log: self.log,
            cache: self.cache,
        };
        check_exposure(&config)?;
        Ok(config)
    }
}

/// Without clients the JSON API is anonymous: only on loopback, unless the
/// operator says otherwise.
fn check_exposure(config: &Config) -> Result<(), ConfigError> {
    if config.server.allow_anonymous || config.listens_on_loopback_only() {
        return Ok(());
    }
    if config.clients.is_empty() {
        let msg = "is not a loopback address and no [[clients]] are configured: anyone who reaches it could use every integration; add [[clients]], or set [server] allow_anonymous = true to serve anonymously";
        return Err(invalid("[server]".into(), "listen", msg));
    }
    if config.s3_api.anonymous {
        let msg = "= true serves every integration's objects to anyone who reaches the non-loopback `listen`, whatever the [[clients]] may read; set [server] allow_anonymous = true to mean it";
        return Err(invalid("[s3_api]".into(), "anonymous", msg));
    }
    Ok(())
}

/// Checks and converts every `[[clients]]` entry.
fn resolve_clients(
    clients: &[ClientFile],
    integrations: &HashSet<&str>,
) -> Result<Vec<ClientConfig>, ConfigError> {
    let mut names = HashSet::new();
    let mut access_keys = HashSet::new();
    let mut tokens = HashSet::new();
    let mut resolved = Vec::with_capacity(clients.len());
    for client in clients {
        let config = client.resolve(integrations)?;
        let ctx = || format!("client {:?}", client.name);
        if !names.insert(config.name.clone()) {
            return Err(invalid(ctx(), "name", "is used by another client"));
        }
        if let Some(keys) = &config.keys {
            if !access_keys.insert(keys.access_key_id.clone()) {
                return Err(invalid(ctx(), "access_key_id", "is used by another client"));
            }
        }
        for digest in &config.token_sha256 {
            if !tokens.insert(*digest) {
                return Err(invalid(
                    ctx(),
                    "token_sha256",
                    "holds a token digest used twice",
                ));
            }
        }
        resolved.push(config);
    }
    Ok(resolved)
}

impl ClientFile {
    fn resolve(&self, integrations: &HashSet<&str>) -> Result<ClientConfig, ConfigError> {
        let ctx = || format!("client {:?}", self.name);
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !name_ok {
            let msg = "must be 1 to 64 letters, digits, `.`, `_` or `-`";
            return Err(invalid("a client".into(), "name", msg));
        }
        let token_sha256 = self
            .token_sha256
            .iter()
            .map(|hex| parse_sha256(hex).ok_or_else(|| invalid(ctx(), "token_sha256", "must hold 64-digit hex SHA-256 digests (see `s3gate token`), never the tokens themselves")))
            .collect::<Result<Vec<_>, _>>()?;
        if token_sha256.iter().any(is_blank_digest) {
            let msg = "holds the digest of an empty token (was the token's variable unset?)";
            return Err(invalid(ctx(), "token_sha256", msg));
        }
        let keys = self.keys()?;
        if token_sha256.is_empty() && keys.is_none() {
            let msg = "or `access_key_id` is required: a client needs a way to authenticate";
            return Err(invalid(ctx(), "token_sha256", msg));
        }
        Ok(ClientConfig {
            name: self.name.clone(),
            token_sha256,
            keys,
            integrations: self.integration_scope(integrations)?,
            buckets: self.buckets()?,
            prefixes: self.prefixes()?,
            metrics: self.metrics,
        })
    }

    fn keys(&self) -> Result<Option<Keys>, ConfigError> {
        let ctx = format!("client {:?}", self.name);
        let Some(access_key_id) = &self.access_key_id else {
            if self.secret_access_key_env.is_some() || self.secret_access_key_file.is_some() {
                return Err(invalid(
                    ctx,
                    "access_key_id",
                    "is required with a secret access key",
                ));
            }
            return Ok(None);
        };
        let valid = (16..=128).contains(&access_key_id.len())
            && access_key_id.bytes().all(|b| b.is_ascii_alphanumeric());
        if !valid {
            let msg = "must be 16 to 128 letters and digits";
            return Err(invalid(ctx, "access_key_id", msg));
        }
        let file = KeysFile {
            access_key_id: access_key_id.clone(),
            secret_access_key_env: self.secret_access_key_env.clone(),
            secret_access_key_file: self.secret_access_key_file.clone(),
            secret_access_key: None,
        };
        let keys = file.resolve(&ctx)?;
        if keys.secret.expose().len() < 16 {
            let msg = "the secret access key must be at least 16 characters";
            return Err(invalid(ctx, "credentials", msg));
        }
        Ok(Some(keys))
    }

    fn integration_scope(&self, known: &HashSet<&str>) -> Result<Option<Vec<String>>, ConfigError> {
        let ctx = || format!("client {:?}", self.name);
        match self.integrations.as_slice() {
            [] => Err(invalid(
                ctx(),
                "integrations",
                "must name at least one integration, or [\"*\"] for all",
            )),
            [all] if all == "*" => Ok(None),
            names => {
                for name in names {
                    if !known.contains(name.as_str()) {
                        let msg = format!("names {name:?}, which is not a configured integration");
                        return Err(invalid(ctx(), "integrations", msg));
                    }
                }
                Ok(Some(names.to_vec()))
            }
        }
    }

    fn buckets(&self) -> Result<Vec<String>, ConfigError> {
        for bucket in &self.buckets {
            validate_bucket_name(bucket)
                .map_err(|m| invalid(format!("client {:?}", self.name), "buckets", m))?;
        }
        Ok(self.buckets.clone())
    }

    fn prefixes(&self) -> Result<Vec<String>, ConfigError> {
        if self.prefixes.iter().any(String::is_empty) {
            let ctx = format!("client {:?}", self.name);
            return Err(invalid(ctx, "prefixes", "must not hold an empty prefix"));
        }
        Ok(self.prefixes.clone())
    }
}

/// A 64-digit hex SHA-256 digest.
fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    crate::hex::decode(hex)?.try_into().ok()
}

/// Whether `digest` is the SHA-256 of an empty (or newline-only) token.
fn is_blank_digest(digest: &[u8; 32]) -> bool {
    use sha2::{Digest, Sha256};
    ["", "\n", "\r\n"]
        .iter()
        .any(|blank| Sha256::digest(blank.as_bytes()).as_slice() == digest)
}

/// Most `[server] max_connections`.
const MAX_CONNECTIONS: usize = 1_000_000;

/// Longest connection timeout accepted, in seconds (a day).
const MAX_TIMEOUT_S: u64 = 86_400;

/// Shortest URL signing key accepted, in characters.
const MIN_URL_SIGNING_KEY: usize = 32;

/// The URL signing keys from `url_signing_keys_env` or `_file`.
fn url_signing_keys(server: &ServerConfig) -> Result<Vec<Secret>, ConfigError> {
    let err = |field, m: String| invalid("[server]".into(), field, m);
    let text = match (&server.url_signing_keys_env, &server.url_signing_keys_file) {
        (None, None) => return Ok(Vec::new()),
        (Some(_), Some(_)) => {
            let msg = "cannot be combined with `url_signing_keys_file`".to_owned();
            return Err(err("url_signing_keys_env", msg));
        }
        (Some(var), None) => Secret::new(std::env::var(var).map_err(|_| {
            err(
                "url_signing_keys_env",
                format!("names {var}, which is not set"),
            )
        })?),
        (None, Some(path)) => Secret::new(std::fs::read_to_string(path).map_err(|e| {
            err(
                "url_signing_keys_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?),
    };
    let field = if server.url_signing_keys_env.is_some() {
        "url_signing_keys_env"
    } else {
        "url_signing_keys_file"
    };
    let keys: Vec<Secret> = text
        .expose()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|k| !k.is_empty())
        .map(|k| Secret::new(k.to_owned()))
        .collect();
    if keys.is_empty() {
        return Err(err(field, "holds no key".into()));
    }
    if keys.iter().any(|k| k.expose().len() < MIN_URL_SIGNING_KEY) {
        let msg = format!("holds a key shorter than {MIN_URL_SIGNING_KEY} characters (`s3gate token` makes good ones)");
        return Err(err(field, msg));
    }
    Ok(keys)
}

/// Names are unique, one integration at most is the default, and no bucket
/// is scoped to two integrations.
fn check_uniqueness(integrations: &[IntegrationFile]) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    let mut scoped: HashMap<&str, &str> = HashMap::new();
    let mut default: Option<&str> = None;
    for integration in integrations {
        let ctx = integration.context();
        if !names.insert(integration.name.as_str()) {
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

impl UpstreamConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let ctx = || "[upstream]".to_owned();
        for (field, value) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("header_timeout_s", self.header_timeout_s),
            ("body_idle_timeout_s", self.body_idle_timeout_s),
            ("list_all_max_keys", self.list_all_max_keys as u64),
            ("list_all_max_pages", self.list_all_max_pages as u64),
        ] {
            if value == 0 {
                return Err(invalid(ctx(), field, "must be at least 1"));
            }
        }
        Ok(())
    }
}

impl CacheConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let ctx = || "[cache]".to_owned();
        if self.memory_mb == 0 {
            return Err(invalid(ctx(), "memory_mb", "must be at least 1"));
        }
        if self.max_object_mb == 0 {
            return Err(invalid(ctx(), "max_object_mb", "must be at least 1"));
        }
        if !(64..=16 * 1024).contains(&self.slice_kb) {
            return Err(invalid(ctx(), "slice_kb", "must be 64 to 16384 (16 MiB)"));
        }
        if self.disk_path.is_some() && self.disk_mb < 16 {
            return Err(invalid(
                ctx(),
                "disk_mb",
                "must be at least 16 with a `disk_path`",
            ));
        }
        if self.disk_path.is_none() && self.disk_mb != 0 {
            return Err(invalid(ctx(), "disk_path", "is required with `disk_mb`"));
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

impl ServerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let ctx = || "[server]".to_owned();
        if let Some(url) = &self.public_url {
            validate_endpoint_url(url).map_err(|m| invalid(ctx(), "public_url", m))?;
        }
        if self.listen.port() != 0 && self.metrics_listen == Some(self.listen) {
            return Err(invalid(
                ctx(),
                "metrics_listen",
                "must differ from `listen`",
            ));
        }
        if self.max_batch == 0 {
            return Err(invalid(ctx(), "max_batch", "must be at least 1"));
        }
        if self.body_timeout_s == 0 {
            return Err(invalid(ctx(), "body_timeout_s", "must be at least 1"));
        }
        if self.max_body_bytes < 1024 {
            return Err(invalid(ctx(), "max_body_bytes", "must be at least 1024"));
        }
        self.validate_connections()
    }

    /// The connection limits: all at least 1, none beyond what they mean.
    fn validate_connections(&self) -> Result<(), ConfigError> {
        let ctx = || "[server]".to_owned();
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            let msg = format!("must be 1 to {MAX_CONNECTIONS}");
            return Err(invalid(ctx(), "max_connections", msg));
        }
        for (field, value) in [
            ("handshake_timeout_s", self.handshake_timeout_s),
            ("keepalive_timeout_s", self.keepalive_timeout_s),
            (
                "http2_keepalive_interval_s",
                self.http2_keepalive_interval_s,
            ),
            ("http2_keepalive_timeout_s", self.http2_keepalive_timeout_s),
            ("http2_idle_timeout_s", self.http2_idle_timeout_s),
            ("send_timeout_s", self.send_timeout_s),
        ] {
            if !(1..=MAX_TIMEOUT_S).contains(&value) {
                let msg = format!("must be 1 to {MAX_TIMEOUT_S} seconds");
                return Err(invalid(ctx(), field, msg));
            }
        }
        Ok(())
    }
}

impl IntegrationFile {
    fn context(&self) -> String {
        format!("integration {:?}", self.name)
    }

    /// Buckets claimed by this integration when it is not the default.
    fn scoped_buckets(&self) -> impl Iterator<Item = &str> {
        self.bucket.iter().chain(&self.buckets).map(String::as_str)
    }

    fn into_config(self, sts: &StsConfig) -> Result<IntegrationConfig, ConfigError> {
        let ctx = self.context();
        if self.name.trim().is_empty() {
            return Err(invalid(
                "an integration".into(),
                "name",
                "must not be empty",
            ));
        }
        if !valid_region(&self.region) {
            let msg = format!("{:?} is not a region name", self.region);
            return Err(invalid(ctx, "region", msg));
        }
        let scope = self.scope()?;
        let access_point = self.access_point()?;
        let endpoint = self.endpoint(access_point.as_ref())?;
        self.check_lifetimes()?;
        let origins = Origins::parse(&self.allowed_origins)
            .map_err(|m| invalid(ctx.clone(), "allowed_origins", m))?;
        let credentials = self.credentials(sts)?;
        Ok(IntegrationConfig {
            name: self.name,
            region: self.region,
            scope,
            prefixes: self.prefixes,
            endpoint,
            access_point,
            presign_ttl_s: self.presign_ttl_s,
            presign_max_ttl_s: self.presign_max_ttl_s,
            allow_active_content: self.allow_active_content,
            delivery: self.delivery,
            origins,
            presign_window_s: self.presign_window_s,
            ca_file: self.ca_file,
            credentials,
            cache: self.cache,
            cache_revalidate_after_s: self.cache_revalidate_after_s,
        })
    }

    fn check_lifetimes(&self) -> Result<(), ConfigError> {
        let ctx = || self.context();
        if self.presign_ttl_s == 0 || self.presign_ttl_s > MAX_PRESIGN_TTL_S {
            let msg = format!("must be 1 to {MAX_PRESIGN_TTL_S} seconds (7 days)");
            return Err(invalid(ctx(), "presign_ttl_s", msg));
        }
        if self.presign_max_ttl_s == 0 || self.presign_max_ttl_s > MAX_PRESIGN_TTL_S {
            let msg = format!("must be 1 to {MAX_PRESIGN_TTL_S} seconds (7 days)");
            return Err(invalid(ctx(), "presign_max_ttl_s", msg));
        }
        if self.presign_ttl_s > self.presign_max_ttl_s {
            let msg = format!(
                "= {} is over `presign_max_ttl_s` = {}: raise the maximum too",
                self.presign_ttl_s, self.presign_max_ttl_s
            );
            return Err(invalid(ctx(), "presign_ttl_s", msg));
        }
        if let Some(window) = self.presign_window_s {
            if window == 0 || window + self.presign_ttl_s > MAX_PRESIGN_TTL_S {
                let msg = "must be at least 1 and, with presign_ttl_s, at most 7 days";
                return Err(invalid(ctx(), "presign_window_s", msg));
            }
        }
        Ok(())
    }

    fn scope(&self) -> Result<Scope, ConfigError> {
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
        let buckets = self.scoped_buckets().map(str::to_owned);
        Ok(if self.default {
            Scope::Default(buckets.collect())
        } else {
            Scope::Buckets(buckets.collect())
        })
    }

    fn access_point(&self) -> Result<Option<AccessPointArn>, ConfigError> {
        let ctx = || self.context();
        let Some(arn) = &self.access_point_arn else {
            return Ok(None);
        };
        let ap = AccessPointArn::parse(arn).map_err(|m| invalid(ctx(), "access_point_arn", m))?;
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
        Ok(Some(ap))
    }

    fn endpoint(&self, access_point: Option<&AccessPointArn>) -> Result<Endpoint, ConfigError> {
        let ctx = || self.context();
        if let Some(url) = &self.sts_endpoint {
            validate_endpoint_url(url).map_err(|m| invalid(ctx(), "sts_endpoint", m))?;
        }
        let origin = |field: &'static str, url: &Option<String>| {
            url.as_deref()
                .map(|url| {
                    validate_endpoint_url(url)
                        .and_then(|()| Origin::parse(url))
                        .map_err(|m| invalid(ctx(), field, m))
                })
                .transpose()
        };
        let dial = origin("endpoint_url", &self.endpoint_url)?;
        let public = origin("public_endpoint_url", &self.public_endpoint_url)?;
        if self.force_path_style == Some(false) {
            for (field, origin) in [("endpoint_url", &dial), ("public_endpoint_url", &public)] {
                if origin.as_ref().is_some_and(Origin::has_ip_host) {
                    let msg = format!("= false needs a DNS name in `{field}`: virtual-hosted addressing puts the bucket in front of the host");
                    return Err(invalid(ctx(), "force_path_style", msg));
                }
            }
        }
        Ok(match (access_point, dial) {
            (Some(arn), _) => Endpoint::access_point(arn),
            (None, Some(dial)) => {
                Endpoint::custom(dial, public, self.force_path_style.unwrap_or(true))
            }
            (None, None) if public.is_some() => {
                let msg =
                    "needs `endpoint_url` (it replaces that endpoint's host in presigned URLs)";
                return Err(invalid(ctx(), "public_endpoint_url", msg));
            }
            (None, None) => Endpoint::aws(&self.region, self.force_path_style.unwrap_or(false)),
        })
    }

    fn credentials(&self, sts: &StsConfig) -> Result<CredentialsConfig, ConfigError> {
        let ctx = self.context();
        let keys = self
            .credentials
            .as_ref()
            .map(|keys| keys.resolve(&ctx))
            .transpose()?;
        let Some(arn) = &self.role_arn else {
            return self.static_keys(keys);
        };
        validate_role_arn(arn).map_err(|m| invalid(ctx.clone(), "role_arn", m))?;
        if let Some(id) = &self.external_id {
            validate_external_id(id).map_err(|m| invalid(ctx.clone(), "external_id", m))?;
        }
        if let Some(name) = &self.session_name {
            validate_session_name(name).map_err(|m| invalid(ctx.clone(), "session_name", m))?;
        }
        self.check_session_duration(sts)?;
        if let Some(region) = &self.sts_region {
            if !valid_region(region) {
                let msg = format!("{region:?} is not a region name");
                return Err(invalid(ctx, "sts_region", msg));
            }
        }
        Ok(CredentialsConfig::Role(RoleConfig {
            arn: arn.clone(),
            external_id: self.external_id.clone(),
            session_name: self.session_name.clone().unwrap_or_else(|| "s3gate".into()),
            duration_s: self.session_duration_s,
            sts_endpoint: self.sts_endpoint.clone(),
            sts_region: self
                .sts_region
                .clone()
                .unwrap_or_else(|| self.region.clone()),
            caller: keys,
        }))
    }

    /// Static keys for an integration that assumes no role.
    fn static_keys(&self, keys: Option<Keys>) -> Result<CredentialsConfig, ConfigError> {
        let ctx = self.context();
        let Some(keys) = keys else {
            let msg =
                "are missing: set `role_arn` (+ `external_id`) or `[integrations.credentials]`";
            return Err(invalid(ctx, "credentials", msg));
        };
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
        Ok(CredentialsConfig::Static(keys))
    }

    fn check_session_duration(&self, sts: &StsConfig) -> Result<(), ConfigError> {
        let ctx = self.context();
        if let Some(d) = self.session_duration_s {
            if !(1..=43_200).contains(&d) {
                return Err(invalid(
                    ctx,
                    "session_duration_s",
                    "must be 1 to 43200 seconds",
                ));
            }
            if d < 900 {
                tracing::warn!(
                    "{ctx}: session_duration_s = {d}: AWS STS refuses sessions under 900 s"
                );
            }
        }
        let duration = self
            .session_duration_s
            .unwrap_or(DEFAULT_SESSION_DURATION_S);
        if duration <= sts.expiry_margin_s + 1 {
            let msg = format!(
                "= {duration} leaves nothing to sign with: sessions stop being used [sts] expiry_margin_s = {} s before they expire",
                sts.expiry_margin_s
            );
            return Err(invalid(ctx, "session_duration_s", msg));
        }
        Ok(())
    }
}

impl KeysFile {
    /// Reads the secret from the one place it is configured in.
    fn resolve(&self, ctx: &str) -> Result<Keys, ConfigError> {
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
            let value = std::env::var(var).map_err(|_| {
                err(format!(
                    "environment variable {var} (secret_access_key_env) is not set"
                ))
            })?;
            Secret::new(value)
        } else if let Some(path) = &self.secret_access_key_file {
            let mut text = std::fs::read_to_string(path).map_err(|e| {
                err(format!(
                    "cannot read secret_access_key_file {}: {e}",
                    path.display()
                ))
            })?;
            text.truncate(text.trim_end().len());
            Secret::new(text)
        } else {
            tracing::warn!("{ctx}: the secret access key is inline in the config; prefer secret_access_key_env or secret_access_key_file");
            self.secret_access_key
                .clone()
                .unwrap_or_else(|| Secret::new(String::new()))
        };
        if secret.expose().is_empty() {
            return Err(err("the secret access key is empty".into()));
        }
        Ok(Keys {
            access_key_id: self.access_key_id.clone(),
            secret,
        })
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

fn validate_role_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = matches!(parts[..], ["arn", _, "iam", "", account, resource]
        if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
            && resource.starts_with("role/") && resource.len() > 5);
    ok.then_some(())
        .ok_or_else(|| format!("{arn:?} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"))
}

/// An IAM principal a trust policy can name: an account's root, a user or a role.
fn validate_principal_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = matches!(parts[..], ["arn", partition, "iam", "", account, resource]
        if partition.starts_with("aws")
            && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
            && (resource == "root"
                || resource.strip_prefix("user/").or_else(|| resource.strip_prefix("role/"))
                    .is_some_and(|name| !name.is_empty())));
    ok.then_some(()).ok_or_else(|| {
        format!("{arn:?} is not an IAM principal ARN (arn:aws:iam::ACCOUNT:user/NAME, role/NAME or root)")
    })
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
