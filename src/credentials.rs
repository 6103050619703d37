//! Where each integration's signing credentials come from: static keys, or
//! session credentials from STS AssumeRole with an external ID.
//!
//! Sessions are cached (moka) per role: integrations that share a role ARN,
//! external ID, STS endpoint and calling identity share one entry and one STS
//! call. A cached session is
//! - served as long as it is valid (never in its last `expiry_margin_s`);
//! - refreshed in the background once its remaining life falls under
//!   min(`refresh_margin_s`, `refresh_margin_ratio` × lifetime) (and never
//!   later than `expiry_margin_s` + 2 s before expiry), while it keeps serving;
//! - fetched once for any number of concurrent first requests (moka coalesces
//!   them into one AssumeRole call).
//!
//! After an STS failure, retries wait a jittered exponential backoff; until
//! then, requests that have no valid session fail fast with the last error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use moka::future::Cache;

use crate::config::{CredentialsConfig, Keys, StsConfig};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::sigv4::Credentials;

/// The credentials an integration signs with.
#[derive(Debug, Clone)]
pub enum CredentialSource {
    /// Long-lived keys from the config.
    Static(Arc<Credentials>),
    /// A role assumed through STS.
    Role(Arc<Role>),
}

/// One role to assume: what is sent to STS, and the client that sends it.
pub struct Role {
    id: RoleId,
    arn: String,
    external_id: Option<String>,
    session_name: String,
    duration_s: Option<u64>,
    client: aws_sdk_sts::Client,
}

impl std::fmt::Debug for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Role")
            .field("arn", &self.arn)
            .field("external_id", &self.external_id)
            .finish()
    }
}

/// Index of a distinct role in [`Sessions`].
type RoleId = usize;

/// What makes two integrations' roles the same session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RoleKey {
    arn: String,
    external_id: Option<String>,
    session_name: String,
    duration_s: Option<u64>,
    sts_endpoint: Option<String>,
    sts_region: String,
    caller_access_key: Option<String>,
}

/// A cached session and when to start refreshing it.
#[derive(Debug)]
struct Session {
    credentials: Arc<Credentials>,
    refresh_at: SystemTime,
}

/// Why AssumeRole failed (never a secret).
#[derive(Debug, Clone)]
pub struct StsFailure {
    /// STS error code, or the SDK's failure kind (`DispatchFailure`, `TimeoutError`, …).
    pub code: String,
    /// What went wrong, for the log: STS's own message names account IDs and
    /// ARNs, so clients see it only when it is the gateway's (`from_sts` false).
    pub message: String,
    /// The message is STS's.
    pub from_sts: bool,
    /// The role or the gateway's identity was refused (as opposed to STS being unavailable).
    pub refused: bool,
}

impl StsFailure {
    fn to_error(&self, integration: &str) -> Error {
        if self.refused {
            return Error::UpstreamAuthFailed {
                integration: integration.to_owned(),
                code: self.code.clone(),
                hint: sts_hint(&self.code).into(),
            };
        }
        let reason = if self.from_sts {
            format!("STS failed ({})", self.code)
        } else {
            format!("STS failed ({}): {}", self.code, self.message)
        };
        Error::CredentialsUnavailable {
            integration: integration.to_owned(),
            reason,
        }
    }
}

/// What to check when STS refuses a role with `code`.
fn sts_hint(code: &str) -> &'static str {
    match code {
        "AccessDenied" => "check that the role's trust policy names the gateway's identity and that `external_id` matches its sts:ExternalId condition",
        "InvalidClientTokenId" | "SignatureDoesNotMatch" | "ExpiredToken" => {
            "the gateway's own identity ([identity]) is not valid for this STS"
        }
        "NoGatewayIdentity" => "give the gateway an identity: [identity] or the AWS default chain",
        "ValidationError" => "check `role_arn`, `session_name` and `session_duration_s` (at most the role's maximum session duration)",
        "RegionDisabledException" => "STS is not activated in this region: set `sts_region` or `sts_endpoint`",
        _ => "see the gateway's log for STS's message",
    }
}

/// Retry bookkeeping of one role.
#[derive(Debug, Default)]
struct Health {
    refreshing: bool,
    failures: u32,
    retry_at: Option<Instant>,
    last_failure: Option<StsFailure>,
    expires_at: Option<SystemTime>,
}

/// The session cache shared by every integration that assumes a role.
pub struct Sessions {
    roles: Vec<Arc<Role>>,
    cache: Cache<RoleId, Arc<Session>>,
    health: Mutex<HashMap<RoleId, Health>>,
    tuning: StsConfig,
    metrics: Metrics,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("roles", &self.roles)
            .finish()
    }
}

/// Expires cached sessions `expiry_margin_s` before the credentials do.
struct SessionExpiry {
    margin: Duration,
}

impl moka::Expiry<RoleId, Arc<Session>> for SessionExpiry {
    fn expire_after_create(
        &self,
        _: &RoleId,
        session: &Arc<Session>,
        _: Instant,
    ) -> Option<Duration> {
        Some(self.usable_for(session))
    }

    fn expire_after_update(
        &self,
        _: &RoleId,
        session: &Arc<Session>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.usable_for(session))
    }
}

impl SessionExpiry {
    fn usable_for(&self, session: &Session) -> Duration {
        let expiry = session
            .credentials
            .expires_at()
            .unwrap_or(SystemTime::UNIX_EPOCH);
        expiry
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .saturating_sub(self.margin)
    }
}

/// Builds the credential sources of every integration.
pub struct SourcesBuilder {
    tuning: StsConfig,
    identity: Option<SharedCredentialsProvider>,
    http: aws_sdk_sts::config::SharedHttpClient,
    keys: HashMap<RoleKey, RoleId>,
    roles: Vec<Arc<Role>>,
}

impl SourcesBuilder {
    /// Prepares the gateway's identity from `[identity]`; the AWS default chain
    /// is only consulted (lazily) when an integration assumes a role without keys of its own.
    pub fn new(identity: Option<&Keys>, tuning: &StsConfig) -> Self {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        Self {
            tuning: tuning.clone(),
            identity: identity.map(|keys| sdk_provider(keys, "s3gate-config-identity")),
            http,
            keys: HashMap::new(),
            roles: Vec::new(),
        }
    }

    /// The source for one integration: static keys, or a (possibly shared) role.
    pub async fn source(&mut self, config: &CredentialsConfig) -> CredentialSource {
        let role = match config {
            CredentialsConfig::Static(keys) => {
                return CredentialSource::Static(Arc::new(Credentials::new(
                    keys.access_key_id.clone(),
                    keys.secret.expose(),
                    None,
                    None,
                )))
            }
            CredentialsConfig::Role(role) => role,
        };
        let key = RoleKey {
            arn: role.arn.clone(),
            external_id: role.external_id.clone(),
            session_name: role.session_name.clone(),
            duration_s: role.duration_s,
            sts_endpoint: role.sts_endpoint.clone(),
            sts_region: role.sts_region.clone(),
            caller_access_key: role.caller.as_ref().map(|k| k.access_key_id.clone()),
        };
        if let Some(&id) = self.keys.get(&key) {
            return CredentialSource::Role(self.roles[id].clone());
        }
        let caller = match &role.caller {
            Some(keys) => Some(sdk_provider(keys, "s3gate-integration-keys")),
            None => self.identity.clone(),
        };
        let client = self.sts_client(&key, caller).await;
        let id = self.roles.len();
        let role = Arc::new(Role {
            id,
            arn: key.arn.clone(),
            external_id: key.external_id.clone(),
            session_name: key.session_name.clone(),
            duration_s: key.duration_s,
            client,
        });
        self.keys.insert(key, id);
        self.roles.push(role.clone());
        CredentialSource::Role(role)
    }

    async fn sts_client(
        &self,
        key: &RoleKey,
        caller: Option<SharedCredentialsProvider>,
    ) -> aws_sdk_sts::Client {
        use aws_config::{retry::RetryConfig, timeout::TimeoutConfig, BehaviorVersion, Region};
        let timeout = Duration::from_secs(self.tuning.timeout_s);
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(self.http.clone())
            .region(Region::new(key.sts_region.clone()))
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(timeout.min(Duration::from_secs(3)))
                    .operation_timeout(timeout)
                    .build(),
            );
        if let Some(provider) = caller {
            loader = loader.credentials_provider(provider);
        }
        if let Some(endpoint) = &key.sts_endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        aws_sdk_sts::Client::new(&loader.load().await)
    }

    /// The shared session cache.
    pub fn finish(self, metrics: Metrics) -> Arc<Sessions> {
        let cache = Cache::builder()
            .max_capacity(self.roles.len().max(1) as u64)
            // One second more than the signing margin: a session the cache
            // returns always leaves at least a second to sign with.
            .expire_after(SessionExpiry {
                margin: Duration::from_secs(self.tuning.expiry_margin_s + 1),
            })
            .build();
        Arc::new(Sessions {
            roles: self.roles,
            cache,
            health: Mutex::new(HashMap::new()),
            tuning: self.tuning,
            metrics,
        })
    }
}

impl Sessions {
    /// Current credentials of `role`, for `integration`; never expired ones.
    pub async fn get(
        self: &Arc<Self>,
        role: &Arc<Role>,
        integration: &str,
    ) -> Result<Arc<Credentials>, Error> {
        if let Some(session) = self.cache.get(&role.id).await {
            self.metrics.credential_hits.inc();
            if SystemTime::now() >= session.refresh_at {
                self.refresh_in_background(role);
            }
            return Ok(session.credentials.clone());
        }
        self.metrics.credential_misses.inc();
        if let Some(failure) = self.backing_off(role.id) {
            return Err(failure.to_error(integration));
        }
        let this = self.clone();
        let fetch = {
            let role = role.clone();
            async move { this.assume(&role).await }
        };
        match self.cache.try_get_with(role.id, fetch).await {
            Ok(session) => Ok(session.credentials.clone()),
            Err(failure) => Err(failure.to_error(integration)),
        }
    }

    /// Seconds until `role`'s last fetched session expires, if one was fetched.
    pub fn seconds_left(&self, role: &Role) -> Option<f64> {
        let health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        let expiry = health.get(&role.id)?.expires_at?;
        Some(
            expiry
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .as_secs_f64(),
        )
    }

    /// How long before their expiry session credentials stop being used.
    pub fn expiry_margin(&self) -> Duration {
        Duration::from_secs(self.tuning.expiry_margin_s)
    }

    /// The last failure while a retry is not yet due.
    fn backing_off(&self, id: RoleId) -> Option<StsFailure> {
        let health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        let h = health.get(&id)?;
        match h.retry_at {
            Some(at) if Instant::now() < at => h.last_failure.clone(),
            _ => None,
        }
    }

    fn refresh_in_background(self: &Arc<Self>, role: &Arc<Role>) {
        {
            let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
            let h = health.entry(role.id).or_default();
            if h.refreshing || h.retry_at.is_some_and(|at| Instant::now() < at) {
                return;
            }
            h.refreshing = true;
        }
        let this = self.clone();
        let role = role.clone();
        tokio::spawn(async move {
            if let Ok(session) = this.assume(&role).await {
                this.cache.insert(role.id, session).await;
            }
            let mut health = this.health.lock().unwrap_or_else(PoisonError::into_inner);
            health.entry(role.id).or_default().refreshing = false;
        });
    }

    /// One AssumeRole call; records its outcome for the backoff.
    async fn assume(&self, role: &Role) -> Result<Arc<Session>, StsFailure> {
        self.metrics.sts_calls.with_label_values(&[&role.arn]).inc();
        let started = SystemTime::now();
        let result = self.call_sts(role).await;
        let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        let h = health.entry(role.id).or_default();
        match result {
            Ok(credentials) => {
                let expiry = credentials.expires_at().unwrap_or(started);
                let lifetime = expiry.duration_since(started).unwrap_or_default();
                // Refresh before the cache lets the session go (expiry_margin_s
                // + 1 s), or requests would wait on STS.
                let margin = Duration::from_secs(self.tuning.refresh_margin_s)
                    .min(lifetime.mul_f64(self.tuning.refresh_margin_ratio))
                    .max(Duration::from_secs(self.tuning.expiry_margin_s + 2))
                    .min(lifetime);
                tracing::info!(role = %role.arn, lifetime_s = lifetime.as_secs(), "assumed role");
                h.failures = 0;
                h.retry_at = None;
                h.last_failure = None;
                h.expires_at = Some(expiry);
                Ok(Arc::new(Session {
                    credentials: Arc::new(credentials),
                    refresh_at: expiry - margin,
                }))
            }
            Err(failure) => {
                self.metrics
                    .sts_failures
                    .with_label_values(&[&role.arn, &failure.code])
                    .inc();
                h.failures += 1;
                let delay = backoff(h.failures, &self.tuning);
                h.retry_at = Some(Instant::now() + delay);
                h.last_failure = Some(failure.clone());
                tracing::warn!(role = %role.arn, code = %failure.code, message = %failure.message, retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "AssumeRole failed");
                Err(failure)
            }
        }
    }

    async fn call_sts(&self, role: &Role) -> Result<Credentials, StsFailure> {
        let mut request = role
            .client
            .assume_role()
            .role_arn(&role.arn)
            .role_session_name(&role.session_name)
            .set_external_id(role.external_id.clone());
        if let Some(d) = role.duration_s {
            request = request.duration_seconds(i32::try_from(d).unwrap_or(i32::MAX));
        }
        let output = request.send().await.map_err(|e| sts_failure(&e))?;
        let c = output.credentials.ok_or_else(|| StsFailure {
            code: "MissingCredentials".into(),
            message: "AssumeRole answered without credentials".into(),
            from_sts: false,
            refused: false,
        })?;
        let expiry = SystemTime::try_from(c.expiration).map_err(|e| StsFailure {
            code: "InvalidExpiration".into(),
            message: e.to_string(),
            from_sts: false,
            refused: false,
        })?;
        Ok(Credentials::new(
            c.access_key_id,
            c.secret_access_key,
            Some(c.session_token),
            Some(expiry),
        ))
    }
}

/// The keys as a credentials provider for the STS client.
fn sdk_provider(keys: &Keys, source: &'static str) -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(aws_credential_types::Credentials::new(
        keys.access_key_id.clone(),
        keys.secret.expose().to_owned(),
        None,
        None,
        source,
    ))
}

/// Full-jitter exponential backoff: uniform in [base·2ⁿ⁻¹ / 2, base·2ⁿ⁻¹], capped.
fn backoff(failures: u32, tuning: &StsConfig) -> Duration {
    let exp = tuning
        .retry_base_ms
        .saturating_mul(1 << failures.saturating_sub(1).min(20));
    let ceiling = exp.min(tuning.retry_max_ms);
    let jitter = uuid::Uuid::new_v4().as_u64_pair().0 % (ceiling / 2 + 1);
    Duration::from_millis(ceiling - jitter)
}

/// Classifies an AssumeRole failure. STS refusing (the role, its trust policy
/// or the gateway's identity is wrong) is told apart from STS being unavailable.
fn sts_failure(error: &SdkError<AssumeRoleError, HttpResponse>) -> StsFailure {
    match error {
        SdkError::ServiceError(e) => {
            // Some STS implementations nest <Error> differently; read the body then.
            let body = e.raw().body().bytes().unwrap_or_default();
            let code = e
                .err()
                .code()
                .map(str::to_owned)
                .or_else(|| crate::xml::field(body, "Code"))
                .unwrap_or_else(|| format!("HTTP{}", e.raw().status().as_u16()));
            let message = e
                .err()
                .message()
                .map(str::to_owned)
                .or_else(|| crate::xml::field(body, "Message"))
                .unwrap_or_default();
            let unavailable = e.raw().status().is_server_error()
                || matches!(
                    code.as_str(),
                    "Throttling" | "ThrottlingException" | "RequestTimeout"
                );
            StsFailure {
                code,
                message,
                from_sts: true,
                refused: !unavailable,
            }
        }
        SdkError::TimeoutError(_) => StsFailure {
            code: "TimeoutError".into(),
            from_sts: false,
            message: "STS did not answer in time".into(),
            refused: false,
        },
        SdkError::DispatchFailure(e) => StsFailure {
            code: "DispatchFailure".into(),
            from_sts: false,
            message: match e.as_connector_error() {
                Some(c) => format!("cannot reach STS: {}", crate::error::chain(c)),
                None => format!("cannot reach STS: {e:?}"),
            },
            refused: false,
        },
        SdkError::ConstructionFailure(_) => StsFailure {
            code: "NoGatewayIdentity".into(),
            from_sts: false,
            message: format!("cannot sign the STS call: {}", crate::error::chain(error)),
            refused: true,
        },
        _ => StsFailure {
            code: "ResponseError".into(),
            from_sts: false,
            message: crate::error::chain(error),
            refused: false,
        },
    }
}

impl CredentialSource {
    /// Current credentials for `integration`; never expired ones.
    pub async fn get(
        &self,
        sessions: &Arc<Sessions>,
        integration: &str,
    ) -> Result<Arc<Credentials>, Error> {
        match self {
            CredentialSource::Static(creds) => Ok(creds.clone()),
            CredentialSource::Role(role) => sessions.get(role, integration).await,
        }
    }
}
