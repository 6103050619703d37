//! The request lifecycle, top to bottom, in one place: context (id, route,
//! caller) → CORS → the route's handler → error rendering → one logging step
//! for metrics and the access log, on success and error alike.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Method, Request, Response, StatusCode};

use super::access_log::{self, AccessLine};
use super::authenticate::{authenticate, Listener};
use super::connection::ConnectionLimits;
use super::context::{Api, JsonRoute, RequestContext, Route};
use super::cors::{Cors, Verdict};
use super::hosts::AllowedHosts;
use super::listing::ListCaps;
use super::query::Query;
use super::readiness::Readiness;
use super::state::{Limits, State};
use super::{content, json_api, response, s3_api};
use crate::auth::Authenticator;
use crate::body::{Body, BoxError};
use crate::cache::MediaCache;
use crate::config::{CacheConfig, Config, ConfigError, ServerConfig};
use crate::decimal;
use crate::error::{Error, Side};
use crate::locator::Locator;
use crate::metrics::{status_class, Metrics};
use crate::upstream::registry::{Registry, RegistryConfig};

/// Longest request URI (path and query) accepted, in bytes: signing one
/// upstream re-encodes it, and must stay within what a URI may hold.
const MAX_URI_BYTES: usize = 16 * 1024;

/// The gateway: its shared state, and the request lifecycle over it.
#[derive(Debug)]
pub struct App {
    state: State,
    next_request: Arc<AtomicU64>,
    connections: ConnectionLimits,
}

/// What a reloaded gateway keeps of the one it replaces.
struct Carried {
    metrics: Metrics,
    readiness: Arc<Readiness>,
    next_request: Arc<AtomicU64>,
    cache: Option<Arc<MediaCache>>,
}

impl App {
    /// Builds the gateway from a validated config; contacts nothing.
    pub async fn new(config: Config) -> Result<Self, ConfigError> {
        let carried = Carried {
            metrics: Metrics::new(),
            readiness: Arc::default(),
            next_request: Arc::new(AtomicU64::new(1)),
            cache: None,
        };
        Self::build(config, carried).await
    }

    /// Builds the gateway that replaces `previous` on a reload: it keeps
    /// `previous`'s metrics, readiness and request ids, and the cached
    /// sessions of every role whose key (ARN, external ID, session name and
    /// duration, STS endpoint and region, calling identity) is unchanged.
    /// Requests in flight on `previous` finish on it. Contacts nothing.
    pub async fn reload(config: Config, previous: &App) -> Result<Self, ConfigError> {
        let carried = Carried {
            metrics: previous.state.metrics.clone(),
            readiness: previous.state.readiness.clone(),
            next_request: previous.next_request.clone(),
            cache: previous.state.cache.clone(),
        };
        let app = Self::build(config, carried).await?;
        let kept = app
            .state
            .registry
            .adopt_sessions(&previous.state.registry)
            .await;
        tracing::debug!(kept, "cached sessions kept across the reload");
        Ok(app)
    }

    async fn build(config: Config, carried: Carried) -> Result<Self, ConfigError> {
        let Carried {
            metrics,
            readiness,
            next_request,
            cache,
        } = carried;
        let cache = open_cache(config.cache.as_ref(), cache, &metrics).await?;
        let hosts = allowed_hosts(&config.server);
        let connections = ConnectionLimits::from_config(&config.server);
        let registry = RegistryConfig {
            integrations: config.integrations,
            identity: config.identity.as_ref(),
            sts: &config.sts,
            upstream: &config.upstream,
        };
        let state = State {
            registry: Registry::new(registry, &metrics).await?,
            metrics,
            cors: Cors {
                global: config.cors.origins,
                max_age_s: config.cors.max_age_s,
                allow_private_network: config.cors.allow_private_network,
            },
            limits: Limits {
                max_batch: config.server.max_batch,
                max_body_bytes: config.server.max_body_bytes,
                body_timeout: std::time::Duration::from_secs(config.server.body_timeout_s),
                list_all: ListCaps {
                    max_keys: config.upstream.list_all_max_keys,
                    max_pages: config.upstream.list_all_max_pages,
                },
            },
            auth: Authenticator::new(
                config.clients,
                &config.url_signing_keys,
                config.s3_api.anonymous,
            )
            .map_err(|e| ConfigError::Invalid {
                context: "[server]".into(),
                field: "url_signing_keys_env",
                message: e.to_string(),
            })?,
            public_url: config
                .server
                .public_url
                .map(|url| url.trim_end_matches('/').to_owned()),
            tls: config.server.tls.is_some(),
            hosts,
            readiness,
            cache,
        };
        Ok(Self {
            state,
            next_request,
            connections,
        })
    }

    /// The media cache, when one is configured.
    pub fn cache(&self) -> Option<&Arc<MediaCache>> {
        self.state.cache.as_ref()
    }

    /// Whether the gateway takes new work (`/readyz`).
    pub fn readiness(&self) -> &Arc<Readiness> {
        &self.state.readiness
    }

    /// The limits every connection is served under.
    pub fn connection_limits(&self) -> ConnectionLimits {
        self.connections
    }

    /// The integration registry.
    pub fn registry(&self) -> &Registry {
        &self.state.registry
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.state.metrics
    }

    /// Who may ask.
    pub fn auth(&self) -> &Authenticator {
        &self.state.auth
    }

    /// Handles one request on the main listener; never fails: errors become responses.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<BoxError>,
    {
        self.handle_on(Listener::Main, request).await
    }

    /// Handles one request that came in on `listener`.
    pub async fn handle_on<B>(&self, listener: Listener, request: Request<B>) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<BoxError>,
    {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let ctx = RequestContext::new(id, request.method().clone(), request.uri().path());
        tracing::debug!(id, method = %ctx.method, path = %ctx.path, "request received");
        let mut in_flight = InFlight {
            app: self,
            ctx,
            answered: false,
        };
        let ctx = &mut in_flight.ctx;
        let sent_body = sends_body(&request);
        let mut response = match self.admit(&request) {
            Err(error) => error_response(ctx, &error),
            Ok(()) => {
                let verdict = self.cors_verdict(&request, ctx);
                if Cors::is_preflight(&ctx.method, request.headers()) {
                    self.state.cors.preflight(request.headers(), &verdict)
                } else {
                    let result = self.authenticate_and_dispatch(ctx, request, listener).await;
                    let mut response = result.unwrap_or_else(|error| error_response(ctx, &error));
                    self.state.cors.decorate(&mut response, &verdict);
                    response
                }
            }
        };
        let read_body = ctx.method == Method::POST
            && matches!(
                ctx.route,
                Route::Json(JsonRoute::Presign | JsonRoute::Grant)
            );
        if sent_body && (!read_body || !response.status().is_success()) {
            // The body was never read: the client may still be sending it
            // (or waiting on `Expect: 100-continue`), so this HTTP/1
            // connection cannot carry another request.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        content::harden(response.headers_mut());
        let streams = matches!(ctx.route, Route::S3 | Route::Json(JsonRoute::Object));
        if let (true, Some(integration)) = (streams, ctx.integration()) {
            let sent = self
                .state
                .metrics
                .response_bytes
                .with_label_values(&[integration]);
            response = response.map(|body| crate::body::counted(body, sent));
        }
        response
            .headers_mut()
            .insert(X_REQUEST_ID, request_id_value(id));
        in_flight.answered = true;
        let status = response.status();
        self.count(&in_flight.ctx, status);
        let line = AccessLine::new(&mut in_flight.ctx, status).cache_from(response.headers());
        response.map(|body| access_log::logged(body, line))
    }

    /// What every request must pass before anything else: a URI within the
    /// limit, and a host the gateway serves.
    fn admit<B>(&self, request: &Request<B>) -> Result<(), Error> {
        let uri = request.uri();
        let length = uri.path().len() + uri.query().map_or(0, str::len);
        if length > MAX_URI_BYTES {
            return Err(Error::UriTooLong {
                limit: MAX_URI_BYTES,
            });
        }
        self.state.hosts.check(uri, request.headers())
    }

    /// Authenticates the caller, then runs the route's handler.
    async fn authenticate_and_dispatch<B>(
        &self,
        ctx: &mut RequestContext,
        request: Request<B>,
        listener: Listener,
    ) -> Result<Response<Body>, Error>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<BoxError>,
    {
        if ctx.method == Method::OPTIONS {
            return Err(Error::NotAPreflight);
        }
        ctx.caller = authenticate(&self.state, ctx, &request, listener)?;
        self.dispatch(ctx, request).await
    }

    /// Runs the route's handler.
    async fn dispatch<B>(
        &self,
        ctx: &mut RequestContext,
        request: Request<B>,
    ) -> Result<Response<Body>, Error>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<BoxError>,
    {
        match ctx.route {
            Route::Json(route) => json_api::handle(&self.state, ctx, route, request).await,
            // Boxed, as json_api boxes its large routes.
            Route::S3 => Box::pin(s3_api::handle(&self.state, ctx, &request)).await,
        }
    }

    /// Judges the request's origin; integration origins apply to requests
    /// that name one of that integration's objects.
    fn cors_verdict<B>(&self, request: &Request<B>, ctx: &RequestContext) -> Verdict {
        let headers = request.headers();
        if !headers.contains_key(header::ORIGIN) {
            return Verdict::NotCors;
        }
        let registry = &self.state.registry;
        let integration = if registry.has_scoped_origins() {
            match ctx.route.api() {
                Api::Json => Query::parse(request.uri().query())
                    .ok()
                    .and_then(|q| Locator::parse(q.get("locator")?).ok())
                    .and_then(|locator| registry.resolve(&locator).ok())
                    .map(|resolved| resolved.integration),
                Api::S3 => {
                    let path = ctx.path.trim_start_matches('/');
                    registry
                        .for_bucket(path.split('/').next().unwrap_or(""))
                        .ok()
                }
            }
        } else {
            None
        };
        let verdict = self
            .state
            .cors
            .verdict(headers, integration.as_ref().map(|i| &i.origins));
        if verdict == Verdict::Denied {
            let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
            tracing::info!(id = ctx.id, origin = origin.unwrap_or("?"), path = %ctx.path, "CORS origin not allowed");
        }
        verdict
    }

    /// Metrics and the access line of a request that never got a response.
    fn log_unanswered(&self, ctx: &mut RequestContext, status: StatusCode) {
        self.count(ctx, status);
        AccessLine::new(ctx, status).write(0, false);
    }

    /// The request's metrics, counted when its response headers are ready.
    fn count(&self, ctx: &RequestContext, status: StatusCode) {
        let metrics = &self.state.metrics;
        let integration = ctx.integration().unwrap_or("-");
        metrics
            .requests
            .with_label_values(&[
                ctx.route.label(),
                ctx.method.as_str(),
                status.as_str(),
                status_class(status.as_u16()),
                integration,
                ctx.caller.name(),
            ])
            .inc();
        metrics
            .request_duration
            .with_label_values(&[ctx.route.label()])
            .observe(ctx.start.elapsed().as_secs_f64());
    }
}

/// A request being handled. Logs, when dropped unanswered, a request whose
/// client went away (its handler was dropped mid-way) as status 499, or one
/// whose handler panicked as 500, so that no request goes unrecorded.
struct InFlight<'a> {
    app: &'a App,
    ctx: RequestContext,
    answered: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let status = if std::thread::panicking() {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST)
        };
        let app = self.app;
        app.log_unanswered(&mut self.ctx, status);
    }
}

/// `x-request-id`, named once: a name given as a string is copied into a
/// new allocation on every insert.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The `x-request-id` value of request `id`, in one allocation
/// (`HeaderValue::from(u64)` makes two). Marked sensitive so that HPACK
/// sends it as a "never indexed" literal: a value that never repeats would
/// otherwise enter the HTTP/2 connection's header table on every response,
/// after a walk through the earlier ids left there. 7 more bytes per
/// response, 2 % fewer instructions per 12 KB response (callgrind). HTTP/1
/// ignores the flag.
fn request_id_value(id: u64) -> HeaderValue {
    let mut digits = decimal::Digits::default();
    let mut value = HeaderValue::from_str(decimal::format(id, &mut digits))
        .unwrap_or_else(|_| HeaderValue::from(id));
    value.set_sensitive(true);
    value
}

/// Logs a failed request and renders its error for the request's API.
/// Client mistakes log at debug, upstream and internal failures louder;
/// messages never hold secrets.
fn error_response(ctx: &mut RequestContext, error: &Error) -> Response<Body> {
    if let Some(name) = error.integration() {
        ctx.served_by(name);
    }
    let (id, code) = (ctx.id, error.code());
    match error.side() {
        Side::Client => tracing::debug!(id, code, %error, "request refused"),
        Side::Upstream => tracing::warn!(id, code, %error, "upstream failure"),
        Side::Internal => tracing::error!(id, code, %error, "internal error"),
    }
    match ctx.route.api() {
        Api::Json => response::json_error(error),
        Api::S3 => response::s3_error(error, &ctx.path, &ctx.id.to_string()),
    }
}

/// `[server] allowed_hosts`, and the host of `public_url`.
fn allowed_hosts(server: &ServerConfig) -> AllowedHosts {
    let public = server
        .public_url
        .as_deref()
        .and_then(|url| url.parse::<http::Uri>().ok())
        .and_then(|uri| uri.host().map(str::to_owned));
    let names = server.allowed_hosts.iter().map(String::as_str);
    AllowedHosts::new(names.chain(public.as_deref()))
}

/// Whether an HTTP/1 request announces a body (HTTP/2 streams end on their own).
fn sends_body<B>(request: &Request<B>) -> bool {
    let headers = request.headers();
    request.version() <= http::Version::HTTP_11
        && (headers.contains_key(header::TRANSFER_ENCODING)
            || headers
                .get(header::CONTENT_LENGTH)
                .is_some_and(|length| length.as_bytes() != b"0"))
}

/// The media cache `config` asks for. A reload keeps the running cache (its
/// entries, its disk tier) when `[cache]` is unchanged; a changed one takes
/// effect on a restart, and a removed one stops caching at once.
async fn open_cache(
    config: Option<&CacheConfig>,
    running: Option<Arc<MediaCache>>,
    metrics: &Metrics,
) -> Result<Option<Arc<MediaCache>>, ConfigError> {
    let Some(config) = config else {
        return Ok(None);
    };
    if let Some(running) = running {
        if running.config() != config {
            tracing::warn!(
                "[cache] changed: it takes effect on a restart; the running cache stays"
            );
        }
        return Ok(Some(running));
    }
    let cache =
        MediaCache::open(config, metrics)
            .await
            .map_err(|message| ConfigError::Invalid {
                context: "[cache]".into(),
                field: "memory_mb",
                message,
            })?;
    Ok(Some(cache))
}
