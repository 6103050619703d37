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
//! At most one STS call per role is in flight. After an STS failure, retries
//! wait a jittered exponential backoff and run in the background; requests
//! that have no valid session meanwhile fail fast with the last error (as do
//! requests whose session expired while its refresh was still in flight).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

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

/// One role to assume: what is sent to STS.
#[derive(Debug)]
pub struct Role {
    id: RoleId,
    /// What makes it the same session as another config's role.
    key: RoleKey,
    arn: String,
    /// The integration(s) using it, as metrics name it (never the ARN).
    label: String,
    external_id: Option<String>,
    session_name: String,
    duration_s: Option<u64>,
}

/// Where the session cache reads the time: the system clock in production,
/// a clock the tests move (the shape of aws-credential-types' `TimeSource`).
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A boxed future of one AssumeRole call.
pub type AssumeFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Credentials, StsFailure>> + Send + 'a>>;

/// The one call that fetches a session for a role.
pub trait AssumeRole: Send + Sync {
    /// Assumes `role`.
    fn assume<'a>(&'a self, role: &'a Role) -> AssumeFuture<'a>;
}

/// A jitter source: a value in `[0, n]` for `n`.
pub type Jitter = Arc<dyn Fn(u64) -> u64 + Send + Sync>;

/// Production jitter: std's randomly keyed hasher over a counter.
fn random_jitter() -> Jitter {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    let state = std::collections::hash_map::RandomState::new();
    let counter = AtomicU64::new(0);
    Arc::new(move |n| {
        let mut hasher = state.build_hasher();
        hasher.write_u64(counter.fetch_add(1, Ordering::Relaxed));
        hasher.finish() % n.saturating_add(1)
    })
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

/// A cached session, when to start refreshing it, and when it stops being served.
#[derive(Debug)]
struct Session {
    credentials: Arc<Credentials>,
    refresh_at: SystemTime,
    usable_until: SystemTime,
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
    /// The session expired while its refresh was still waiting for STS.
    fn pending() -> Self {
        StsFailure {
            code: "RefreshPending".into(),
            message: "the session expired while STS had not yet answered its refresh".into(),
            from_sts: false,
            refused: false,
        }
    }

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
#[derive(Debug, Default, Clone)]
struct Health {
    refreshing: bool,
    failures: u32,
    retry_at: Option<SystemTime>,
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
    clock: Arc<dyn Clock>,
    sts: Arc<dyn AssumeRole>,
    jitter: Jitter,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("roles", &self.roles)
            .finish()
    }
}

/// Builds the credential sources of every integration.
pub struct SourcesBuilder {
    tuning: StsConfig,
    identity: Option<SharedCredentialsProvider>,
    http: aws_sdk_sts::config::SharedHttpClient,
    keys: HashMap<RoleKey, RoleId>,
    roles: Vec<Arc<Role>>,
    clients: Vec<aws_sdk_sts::Client>,
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
            clients: Vec::new(),
        }
    }

    /// The source for the integration `name`: static keys, or a (possibly
    /// shared) role, labelled in metrics by the first integration using it.
    pub async fn source(&mut self, name: &str, config: &CredentialsConfig) -> CredentialSource {
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
            key: key.clone(),
            arn: key.arn.clone(),
            label: name.to_owned(),
            external_id: key.external_id.clone(),
            session_name: key.session_name.clone(),
            duration_s: key.duration_s,
        });
        self.clients.push(client);
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

    /// The shared session cache, calling STS with the SDK clients built.
    pub fn finish(self, metrics: Metrics) -> Arc<Sessions> {
        let sts = Arc::new(SdkSts {
            clients: self.clients,
        });
        Sessions::new(
            self.roles,
            self.tuning,
            metrics,
            Arc::new(SystemClock),
            sts,
            random_jitter(),
        )
    }
}

/// AssumeRole through the AWS SDK, one client per role.
struct SdkSts {
    clients: Vec<aws_sdk_sts::Client>,
}

impl AssumeRole for SdkSts {
    fn assume<'a>(&'a self, role: &'a Role) -> AssumeFuture<'a> {
        Box::pin(async move {
            let client = self.clients.get(role.id).ok_or_else(|| StsFailure {
                code: "NoClient".into(),
                message: format!("no STS client for role {}", role.arn),
                from_sts: false,
                refused: false,
            })?;
            call_sts(client, role).await
        })
    }
}

impl Sessions {
    /// The cache of `roles`' sessions, timed by `clock`, fetched with `sts`,
    /// retries jittered by `jitter`.
    pub fn new(
        roles: Vec<Arc<Role>>,
        tuning: StsConfig,
        metrics: Metrics,
        clock: Arc<dyn Clock>,
        sts: Arc<dyn AssumeRole>,
        jitter: Jitter,
    ) -> Arc<Self> {
        let cache = Cache::builder()
            .max_capacity(roles.len().max(1) as u64)
            .build();
        Arc::new(Sessions {
            roles,
            cache,
            health: Mutex::new(HashMap::new()),
            tuning,
            metrics,
            clock,
            sts,
            jitter,
        })
    }

    /// Current credentials of `role`, for `integration`; never expired ones.
    pub async fn get(
        self: &Arc<Self>,
        role: &Arc<Role>,
        integration: &str,
    ) -> Result<Arc<Credentials>, Error> {
        if let Some(session) = self.cache.get(&role.id).await {
            let now = self.clock.now();
            if now < session.usable_until {
                self.metrics
                    .credential_hits
                    .with_label_values(&[integration])
                    .inc();
                if now >= session.refresh_at {
                    self.refresh_in_background(role);
                }
                return Ok(session.credentials.clone());
            }
            self.cache.invalidate(&role.id).await;
        }
        // Boxed: a miss waits on STS through moka, a future of ≈ 1.5 KB
        // that every request's future would otherwise carry and copy.
        Box::pin(self.fetch(role, integration)).await
    }

    /// Credentials of `role` that are not in the cache: fetched once however
    /// many ask at the same time.
    async fn fetch(
        self: &Arc<Self>,
        role: &Arc<Role>,
        integration: &str,
    ) -> Result<Arc<Credentials>, Error> {
        self.metrics
            .credential_misses
            .with_label_values(&[integration])
            .inc();
        if let Some(failure) = self.fail_fast(role) {
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

    /// Takes over `previous`'s cached session and retry state for each of
    /// these roles whose key `previous` also has, so that a reload assumes
    /// no unchanged role again (nor retries a failing one before its
    /// backoff is over). Returns how many sessions it kept.
    pub async fn adopt(&self, previous: &Sessions) -> usize {
        let mut kept = 0;
        for role in &self.roles {
            let Some(old) = previous.roles.iter().find(|old| old.key == role.key) else {
                continue;
            };
            if let Some(session) = previous.cache.get(&old.id).await {
                self.cache.insert(role.id, session).await;
                kept += 1;
            }
            let health = previous
                .health
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&old.id)
                .cloned();
            if let Some(health) = health {
                let mut mine = self.health.lock().unwrap_or_else(PoisonError::into_inner);
                mine.insert(
                    role.id,
                    Health {
                        refreshing: false,
                        ..health
                    },
                );
            }
        }
        kept
    }

    /// Seconds until `role`'s last fetched session expires, if one was fetched.
    pub fn seconds_left(&self, role: &Role) -> Option<f64> {
        let health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        let expiry = health.get(&role.id)?.expires_at?;
        Some(
            expiry
                .duration_since(self.clock.now())
                .unwrap_or_default()
                .as_secs_f64(),
        )
    }

    /// How long before their expiry session credentials stop being used.
    pub fn expiry_margin(&self) -> Duration {
        Duration::from_secs(self.tuning.expiry_margin_s)
    }

    /// Why a request without a valid session fails at once rather than wait
    /// for STS: a call for the role is already in flight (a refresh that
    /// outlived the session), or STS has failed since the last session —
    /// then retries run in the background, one at a time, after the backoff.
    /// `None` (no failure yet, nothing in flight): the request waits for the
    /// one call all concurrent requests share.
    fn fail_fast(self: &Arc<Self>, role: &Arc<Role>) -> Option<StsFailure> {
        let (failure, retry_due) = {
            let health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
            let h = health.get(&role.id)?;
            if h.refreshing {
                let pending = h.last_failure.clone().unwrap_or_else(StsFailure::pending);
                return Some(pending);
            }
            let failure = h.last_failure.clone()?;
            let retry_due = h.retry_at.is_none_or(|at| self.clock.now() >= at);
            (failure, retry_due)
        };
        if retry_due {
            self.refresh_in_background(role);
        }
        Some(failure)
    }

    fn refresh_in_background(self: &Arc<Self>, role: &Arc<Role>) {
        {
            let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
            let h = health.entry(role.id).or_default();
            if h.refreshing || h.retry_at.is_some_and(|at| self.clock.now() < at) {
                return;
            }
            h.refreshing = true;
        }
        let this = self.clone();
        let role = role.clone();
        tokio::spawn(async move {
            // Cleared however the task ends (a panic or an abort included),
            // or every later request would wait on a refresh that is gone.
            let _refreshing = Refreshing(&this, role.id);
            if let Ok(session) = this.assume(&role).await {
                this.cache.insert(role.id, session).await;
            }
        });
    }

    /// One AssumeRole call; records its outcome for the backoff.
    async fn assume(&self, role: &Role) -> Result<Arc<Session>, StsFailure> {
        self.metrics
            .sts_calls
            .with_label_values(&[&role.label])
            .inc();
        let started = self.clock.now();
        let result = self.sts.assume(role).await;
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
                // One second more than the signing margin: a session the cache
                // serves always leaves at least a second to sign with.
                let unusable = Duration::from_secs(self.tuning.expiry_margin_s + 1);
                Ok(Arc::new(Session {
                    credentials: Arc::new(credentials),
                    refresh_at: expiry - margin,
                    usable_until: expiry.checked_sub(unusable).unwrap_or(started),
                }))
            }
            Err(failure) => {
                self.metrics
                    .sts_failures
                    .with_label_values(&[&role.label, &failure.code])
                    .inc();
                h.failures += 1;
                let delay = backoff(h.failures, &self.tuning, &self.jitter);
                h.retry_at = Some(self.clock.now() + delay);
                h.last_failure = Some(failure.clone());
                tracing::warn!(role = %role.arn, code = %failure.code, message = %failure.message, retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), "AssumeRole failed");
                Err(failure)
            }
        }
    }
}

/// One AssumeRole call through the SDK.
async fn call_sts(client: &aws_sdk_sts::Client, role: &Role) -> Result<Credentials, StsFailure> {
    let mut request = client
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
fn backoff(failures: u32, tuning: &StsConfig, jitter: &Jitter) -> Duration {
    let exp = tuning
        .retry_base_ms
        .saturating_mul(1 << failures.saturating_sub(1).min(20));
    let ceiling = exp.min(tuning.retry_max_ms);
    Duration::from_millis(ceiling - jitter(ceiling / 2).min(ceiling / 2))
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

/// Marks a role's background refresh as over when dropped.
struct Refreshing<'a>(&'a Sessions, RoleId);

impl Drop for Refreshing<'_> {
    fn drop(&mut self) {
        let mut health = self.0.health.lock().unwrap_or_else(PoisonError::into_inner);
        health.entry(self.1).or_default().refreshing = false;
    }
}

#[cfg(test)]
mod tests {
    //! The session cache's rules, on a clock the tests move and an STS that
    //! counts its calls: each test runs in milliseconds.
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use super::*;

    /// A clock that moves only when told.
    struct ManualClock(Mutex<SystemTime>);

    impl ManualClock {
        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> SystemTime {
            *self.0.lock().unwrap()
        }
    }

    /// An STS that issues `lifetime` sessions while up, and counts calls.
    struct FakeSts {
        clock: Arc<ManualClock>,
        lifetime: Duration,
        up: AtomicBool,
        calls: AtomicU32,
        /// Held by a test to keep STS from answering.
        gate: tokio::sync::Semaphore,
    }

    impl AssumeRole for FakeSts {
        fn assume<'a>(&'a self, role: &'a Role) -> AssumeFuture<'a> {
            Box::pin(async move {
                let _permit = self.gate.acquire().await;
                let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
                if !self.up.load(Ordering::SeqCst) {
                    return Err(StsFailure {
                        code: "DispatchFailure".into(),
                        message: "STS is down".into(),
                        from_sts: false,
                        refused: false,
                    });
                }
                let expiry = self.clock.now() + self.lifetime;
                let key = format!("ASIA{}R{n}", role.id);
                Ok(Credentials::new(
                    key,
                    "secret",
                    Some("token".into()),
                    Some(expiry),
                ))
            })
        }
    }

    fn test_key(arn: &str) -> RoleKey {
        RoleKey {
            arn: arn.into(),
            external_id: Some("ext".into()),
            session_name: "s3gate".into(),
            duration_s: None,
            sts_endpoint: None,
            sts_region: "us-east-1".into(),
            caller_access_key: None,
        }
    }

    struct World {
        clock: Arc<ManualClock>,
        sts: Arc<FakeSts>,
        sessions: Arc<Sessions>,
        roles: Vec<Arc<Role>>,
    }

    fn tuning(refresh_margin_s: u64, ratio: f64, expiry_margin_s: u64) -> StsConfig {
        StsConfig {
            refresh_margin_s,
            refresh_margin_ratio: ratio,
            expiry_margin_s,
            retry_base_ms: 1000,
            retry_max_ms: 8000,
            timeout_s: 10,
        }
    }

    /// Sessions of `lifetime_s` for `roles` roles, jitter fixed at 0.
    fn world(tuning: StsConfig, lifetime_s: u64, roles: usize) -> World {
        let clock = Arc::new(ManualClock(Mutex::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        )));
        let sts = Arc::new(FakeSts {
            clock: clock.clone(),
            lifetime: Duration::from_secs(lifetime_s),
            up: AtomicBool::new(true),
            calls: AtomicU32::new(0),
            gate: tokio::sync::Semaphore::new(1),
        });
        let roles: Vec<Arc<Role>> = (0..roles)
            .map(|id| {
                Arc::new(Role {
                    id,
                    key: test_key(&format!("arn:aws:iam::123456789012:role/r{id}")),
                    arn: format!("arn:aws:iam::123456789012:role/r{id}"),
                    label: format!("i{id}"),
                    external_id: Some("ext".into()),
                    session_name: "s3gate".into(),
                    duration_s: None,
                })
            })
            .collect();
        let sessions = Sessions::new(
            roles.clone(),
            tuning,
            Metrics::new(),
            clock.clone(),
            sts.clone(),
            Arc::new(|_| 0),
        );
        World {
            clock,
            sts,
            sessions,
            roles,
        }
    }

    impl World {
        async fn get(&self, role: usize) -> Result<Arc<Credentials>, Error> {
            self.sessions.get(&self.roles[role], "i").await
        }

        fn calls(&self) -> u32 {
            self.sts.calls.load(Ordering::SeqCst)
        }

        /// Waits (bounded) until STS has been called `n` times and the
        /// refresh has finished.
        async fn settle(&self, n: u32) {
            for _ in 0..1000 {
                let refreshing = {
                    let health = self.sessions.health.lock().unwrap();
                    health.values().any(|h| h.refreshing)
                };
                if self.calls() >= n && !refreshing {
                    return;
                }
                tokio::task::yield_now().await;
            }
            panic!("STS was called {} times, expected {n}", self.calls());
        }

        /// Moves the clock to `before` seconds before the first session expires.
        fn to_before_expiry(&self, lifetime_s: u64, before: u64) {
            self.clock.advance(Duration::from_secs(lifetime_s - before));
        }
    }

    /// Asserts that a session of `lifetime_s` under `tuning` is refreshed
    /// exactly `ahead_s` seconds before it expires.
    async fn refreshes_ahead_by(tuning: StsConfig, lifetime_s: u64, ahead_s: u64) {
        let w = world(tuning, lifetime_s, 1);
        let first = w.get(0).await.unwrap();
        w.to_before_expiry(lifetime_s, ahead_s + 1);
        assert!(Arc::ptr_eq(&w.get(0).await.unwrap(), &first));
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!(w.calls(), 1, "refreshed before {ahead_s} s ahead of expiry");
        w.clock.advance(Duration::from_secs(1));
        let served = w.get(0).await.unwrap();
        assert!(
            Arc::ptr_eq(&served, &first),
            "the old session keeps serving"
        );
        w.settle(2).await;
        let refreshed = w.get(0).await.unwrap();
        assert_ne!(refreshed.access_key_id(), first.access_key_id());
        assert_eq!(w.calls(), 2);
    }

    #[tokio::test]
    async fn refresh_ahead_by_ratio_of_the_lifetime() {
        // 20 % of 1,000 s is sooner than the 300 s margin.
        refreshes_ahead_by(tuning(300, 0.2, 30), 1000, 200).await;
    }

    #[tokio::test]
    async fn refresh_ahead_by_absolute_margin() {
        // 100 s is sooner than half of 1,000 s.
        refreshes_ahead_by(tuning(100, 0.5, 30), 1000, 100).await;
    }

    #[tokio::test]
    async fn refresh_never_later_than_the_expiry_margin_plus_two_seconds() {
        refreshes_ahead_by(tuning(1, 0.001, 30), 1000, 32).await;
    }

    #[tokio::test]
    async fn backoff_doubles_and_is_capped() {
        let t = tuning(300, 0.2, 30);
        let none: Jitter = Arc::new(|_| 0);
        let delays: Vec<u64> = (1..=6)
            .map(|n| u64::try_from(backoff(n, &t, &none).as_millis()).unwrap())
            .collect();
        assert_eq!(delays, [1000, 2000, 4000, 8000, 8000, 8000]);
        // Full jitter stays in the upper half, even if the source overshoots.
        let most: Jitter = Arc::new(|n| n + 7);
        assert_eq!(backoff(3, &t, &most).as_millis(), 2000);
    }

    #[tokio::test]
    async fn an_outage_is_served_through_until_expiry_then_fails_fast() {
        let lifetime = 1000;
        let w = world(tuning(300, 0.2, 30), lifetime, 1);
        let first = w.get(0).await.unwrap();
        w.sts.up.store(false, Ordering::SeqCst);
        // Refresh fails; the session still serves until its last 31 s.
        w.to_before_expiry(lifetime, 100);
        assert!(Arc::ptr_eq(&w.get(0).await.unwrap(), &first));
        w.settle(2).await;
        w.clock.advance(Duration::from_secs(68)); // 32 s left
        assert!(Arc::ptr_eq(&w.get(0).await.unwrap(), &first));
        w.settle(3).await;
        // 31 s left: no longer served; STS's last error is reported.
        w.clock.advance(Duration::from_secs(1));
        let calls = w.calls();
        let error = w.get(0).await.unwrap_err();
        assert_eq!(error.code(), "CredentialsUnavailable", "{error}");
        assert!(error.to_string().contains("DispatchFailure"), "{error}");
        // Until the retry is due, requests fail fast without calling STS.
        let calls_after_failure = w.calls();
        assert!(calls_after_failure <= calls + 1);
        assert!(w.get(0).await.is_err());
        assert_eq!(w.calls(), calls_after_failure, "failed fast");
        // STS is back and the retry is due: the request that finds it due
        // starts it in the background and still fails fast; then served again.
        w.sts.up.store(true, Ordering::SeqCst);
        w.clock.advance(Duration::from_secs(9));
        let calls = w.calls();
        assert!(w.get(0).await.is_err());
        w.settle(calls + 1).await;
        let recovered = w.get(0).await.unwrap();
        assert!(!Arc::ptr_eq(&recovered, &first));
        assert_eq!(w.calls(), calls + 1);
    }

    #[tokio::test]
    async fn a_session_expiring_during_a_slow_refresh_fails_fast_without_a_second_call() {
        let lifetime = 1000;
        let w = world(tuning(300, 0.2, 30), lifetime, 1);
        let first = w.get(0).await.unwrap();
        // STS stops answering; the refresh starts and hangs.
        let held = w.sts.gate.acquire().await.unwrap();
        w.to_before_expiry(lifetime, 100);
        assert!(Arc::ptr_eq(&w.get(0).await.unwrap(), &first));
        w.clock.advance(Duration::from_secs(70)); // 30 s left: no longer served
        for _ in 0..10 {
            let answer = tokio::time::timeout(Duration::from_secs(5), w.get(0))
                .await
                .expect("fails fast rather than wait for the refresh");
            let error = answer.unwrap_err();
            assert_eq!(error.code(), "CredentialsUnavailable", "{error}");
            assert!(error.to_string().contains("RefreshPending"), "{error}");
        }
        // The refresh answers: its session serves, and it was the only call.
        drop(held);
        w.settle(2).await;
        let refreshed = w.get(0).await.unwrap();
        assert!(!Arc::ptr_eq(&refreshed, &first));
        assert_eq!(w.calls(), 2);
    }

    #[tokio::test]
    async fn a_thousand_cold_requests_make_one_call() {
        let w = Arc::new(world(tuning(300, 0.2, 30), 1000, 1));
        let held = w.sts.gate.acquire().await;
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let w = w.clone();
                tokio::spawn(async move { w.get(0).await.map(|c| c.access_key_id().to_owned()) })
            })
            .collect();
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        drop(held);
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), "ASIA0R1");
        }
        assert_eq!(w.calls(), 1);
    }

    #[tokio::test]
    async fn roles_have_their_own_sessions() {
        let w = world(tuning(300, 0.2, 30), 1000, 2);
        let a = w.get(0).await.unwrap();
        let b = w.get(1).await.unwrap();
        assert_ne!(a.access_key_id(), b.access_key_id());
        assert_eq!(w.calls(), 2);
        assert!(Arc::ptr_eq(&w.get(0).await.unwrap(), &a));
        assert_eq!(w.calls(), 2);
    }

    #[tokio::test]
    async fn role_keys_share_only_identical_roles() {
        let tuning = StsConfig::default();
        let mut builder = SourcesBuilder::new(None, &tuning);
        let role = |arn: &str, ext: &str, endpoint: Option<&str>| {
            CredentialsConfig::Role(crate::config::RoleConfig {
                arn: arn.into(),
                external_id: Some(ext.into()),
                session_name: "s3gate".into(),
                duration_s: None,
                sts_endpoint: endpoint.map(str::to_owned),
                sts_region: "us-east-1".into(),
                caller: None,
            })
        };
        let arn = "arn:aws:iam::123456789012:role/r";
        let other = "arn:aws:iam::123456789012:role/s";
        let mut ids = Vec::new();
        for config in [
            role(arn, "e1", None),
            role(arn, "e1", None),
            role(arn, "e2", None),
            role(other, "e1", None),
            role(arn, "e1", Some("http://127.0.0.1:9")),
        ] {
            match builder.source("i", &config).await {
                CredentialSource::Role(r) => ids.push(r.id),
                CredentialSource::Static(_) => panic!("a role"),
            }
        }
        assert_eq!(ids, [0, 0, 1, 2, 3]);
    }

    #[tokio::test]
    async fn a_reload_keeps_the_sessions_of_unchanged_roles_only() {
        let w = world(tuning(300, 0.2, 30), 1000, 2);
        let kept = w.get(0).await.unwrap();
        w.get(1).await.unwrap();
        assert_eq!(w.calls(), 2);
        // The new config: role 0 unchanged (at another index), role 1's
        // external ID changed, and a role not seen before.
        let mut changed = test_key("arn:aws:iam::123456789012:role/r1");
        changed.external_id = Some("rotated".into());
        let keys = [
            test_key("arn:aws:iam::123456789012:role/new"),
            test_key("arn:aws:iam::123456789012:role/r0"),
            changed,
        ];
        let roles: Vec<Arc<Role>> = keys
            .into_iter()
            .enumerate()
            .map(|(id, key)| {
                Arc::new(Role {
                    id,
                    arn: key.arn.clone(),
                    external_id: key.external_id.clone(),
                    session_name: key.session_name.clone(),
                    duration_s: None,
                    label: format!("n{id}"),
                    key,
                })
            })
            .collect();
        let sessions = Sessions::new(
            roles.clone(),
            tuning(300, 0.2, 30),
            Metrics::new(),
            w.clock.clone(),
            w.sts.clone(),
            Arc::new(|_| 0),
        );
        assert_eq!(sessions.adopt(&w.sessions).await, 1);
        let same = sessions.get(&roles[1], "i").await.unwrap();
        assert!(
            Arc::ptr_eq(&same, &kept),
            "the unchanged role's session is kept"
        );
        assert_eq!(w.calls(), 2, "no AssumeRole for the unchanged role");
        assert!(sessions.seconds_left(&roles[1]).is_some());
        sessions.get(&roles[2], "i").await.unwrap();
        assert_eq!(w.calls(), 3, "the changed role is assumed anew");
        sessions.get(&roles[0], "i").await.unwrap();
        assert_eq!(w.calls(), 4, "the new role is assumed");
    }
}
