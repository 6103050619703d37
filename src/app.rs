//! The request lifecycle, top to bottom, in one place:
//! context → API (JSON or S3) → route → handler (parse → resolve →
//! credentials → sign → respond or stream) → one logging step for metrics and
//! the access log, on success and error alike.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};

use crate::config::{Config, ConfigError, S3ApiConfig, ServerConfig, UpstreamConfig};
use crate::cors::{Cors, Origins, Verdict};
use crate::error::{Error, Side};
use crate::integrations::Registry;
use crate::locator::Locator;
use crate::metrics::Metrics;
use crate::response::{self, Body, BoxError};

/// The gateway: configuration and registry, shared by every connection.
#[derive(Debug)]
pub struct App {
    pub(crate) server: ServerConfig,
    pub(crate) upstream: UpstreamConfig,
    pub(crate) s3_api: S3ApiConfig,
    pub(crate) registry: Registry,
    pub(crate) metrics: Metrics,
    cors: Cors,
    next_request: AtomicU64,
}

/// Which API a request speaks, and so how its errors are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// `/v1/*`, `/healthz`, `/metrics`: JSON errors.
    Json,
    /// Everything else: the S3-compatible front, S3 XML errors.
    S3,
}

/// What the access log records of one request.
pub(crate) struct Context {
    pub(crate) id: u64,
    start: Instant,
    method: Method,
    path: String,
    api: Api,
    route: &'static str,
}

impl App {
    /// Builds the gateway from a validated config; contacts nothing.
    pub async fn new(config: &Config) -> Result<Self, ConfigError> {
        let metrics = Metrics::new();
        Ok(Self {
            server: config.server.clone(),
            upstream: config.upstream.clone(),
            s3_api: config.s3_api.clone(),
            registry: Registry::from_config(config, &metrics).await?,
            metrics,
            cors: Cors {
                global: Origins::parse(&config.cors.allowed_origins).map_err(|message| {
                    ConfigError::Invalid {
                        context: "[cors]".into(),
                        field: "allowed_origins",
                        message,
                    }
                })?,
                max_age_s: config.cors.max_age_s,
                allow_private_network: config.cors.allow_private_network,
            },
            next_request: AtomicU64::new(1),
        })
    }

    /// The integration registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Handles one request; never fails: errors become responses.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<BoxError>,
    {
        let path = request.uri().path();
        let (api, route) = classify(path);
        let ctx = Context {
            id: self.next_request.fetch_add(1, Ordering::Relaxed),
            start: Instant::now(),
            method: request.method().clone(),
            path: path.to_owned(),
            api,
            route,
        };
        tracing::debug!(id = ctx.id, method = %ctx.method, path = %ctx.path, "request received");
        let mut watch = Abandoned {
            app: self,
            ctx: &ctx,
            answered: false,
        };
        let sent_body = sends_body(&request);
        let reads_body = ctx.route == "presign" && ctx.method == Method::POST;
        let verdict = self.cors_verdict(&request, api);
        if verdict == Verdict::Denied {
            let origin = request
                .headers()
                .get(header::ORIGIN)
                .and_then(|o| o.to_str().ok())
                .unwrap_or("?");
            tracing::info!(id = ctx.id, origin, path = %ctx.path, "CORS origin not allowed");
        }
        let mut response = if Cors::is_preflight(&ctx.method, request.headers()) {
            self.cors.preflight(request.headers(), &verdict)
        } else {
            let result = match api {
                Api::Json => self.route_json(request).await,
                Api::S3 => self.s3_request(request).await,
            };
            let mut response = result.unwrap_or_else(|error| {
                log_error(&ctx, &error);
                let response = match ctx.api {
                    Api::Json => response::json_error(&error),
                    Api::S3 => response::s3_error(&error, &ctx.path, &ctx.id.to_string()),
                };
                match error.integration() {
                    Some(name) => response::served_by(response, name),
                    None => response,
                }
            });
            self.cors.decorate(&mut response, &verdict);
            response
        };
        if sent_body && (!reads_body || !response.status().is_success()) {
            // The body was never read: the client may still be sending it
            // (or waiting on `Expect: 100-continue`), so this HTTP/1
            // connection cannot carry another request.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Ok(id) = HeaderValue::from_str(&ctx.id.to_string()) {
            response.headers_mut().insert("x-request-id", id);
        }
        watch.answered = true;
        let served_by = response.extensions().get::<response::ServedBy>();
        self.log(&ctx, response.status(), served_by.map(|s| s.0.as_str()));
        response
    }

    async fn route_json<B>(&self, request: Request<B>) -> Result<Response<Body>, Error>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<BoxError>,
    {
        let method = request.method().clone();
        let read = matches!(method, Method::GET | Method::HEAD);
        match request.uri().path() {
            "/healthz" if read => Ok(response::text(StatusCode::OK, "ok\n")),
            "/healthz" => Err(not_allowed(&method, "GET, HEAD")),
            "/metrics" if method == Method::GET => Ok(self.metrics_page()),
            "/metrics" => Err(not_allowed(&method, "GET")),
            "/v1/presign" => match method {
                Method::GET => self.presign_one(request.uri().query().unwrap_or("")).await,
                Method::POST => self.presign_batch(request).await,
                _ => Err(not_allowed(&method, "GET, POST")),
            },
            "/v1/object" if read => self.object(&request).await,
            "/v1/object" => Err(not_allowed(&method, "GET, HEAD")),
            "/v1/list" if method == Method::GET => {
                self.list(request.uri().query().unwrap_or("")).await
            }
            "/v1/list" => Err(not_allowed(&method, "GET")),
            path => Err(Error::NoSuchRoute {
                path: path.to_owned(),
            }),
        }
    }

    /// Judges the request's origin; integration origins apply to requests
    /// that name one of that integration's objects.
    fn cors_verdict<B>(&self, request: &Request<B>, api: Api) -> Verdict {
        let headers = request.headers();
        if !headers.contains_key(header::ORIGIN) {
            return Verdict::NotCors;
        }
        let integration = if self.registry.has_scoped_origins() {
            match api {
                Api::Json => request.uri().query().and_then(|q| {
                    let (_, locator) =
                        form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "locator")?;
                    let parsed = Locator::parse(&locator).ok()?;
                    self.registry.resolve(&parsed).ok().map(|r| r.integration)
                }),
                Api::S3 => {
                    let path = request.uri().path().trim_start_matches('/');
                    let bucket = path.split('/').next().unwrap_or("");
                    self.registry.for_bucket(bucket).ok()
                }
            }
        } else {
            None
        };
        self.cors
            .verdict(headers, integration.as_ref().map(|i| &i.origins))
    }

    /// `GET /metrics`: Prometheus text format.
    fn metrics_page(&self) -> Response<Body> {
        for integration in self.registry.integrations() {
            if let Some(left) = integration.credentials_seconds_left() {
                let gauge = self
                    .metrics
                    .credential_expiry
                    .with_label_values(&[&integration.name]);
                gauge.set(left);
            }
        }
        let mut response = Response::new(response::full(self.metrics.render()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        response
    }

    /// The one logging step: metrics and the access log line.
    fn log(&self, ctx: &Context, status: StatusCode, integration: Option<&str>) {
        self.metrics
            .requests
            .with_label_values(&[ctx.route, status.as_str()])
            .inc();
        let status = status.as_u16();
        let integration = integration.unwrap_or("-");
        let micros = ctx.start.elapsed().as_micros() as u64;
        tracing::info!(
            target: "s3gate::access",
            id = ctx.id,
            method = %ctx.method,
            path = %ctx.path,
            status,
            integration = %integration,
            micros,
        );
    }
}

/// Logs a request whose client went away before it was answered (its
/// handler was dropped mid-way) as status 499, or one whose handler panicked
/// as 500, so that no request goes unrecorded.
struct Abandoned<'a> {
    app: &'a App,
    ctx: &'a Context,
    answered: bool,
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let status = if std::thread::panicking() {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::from_u16(499).expect("a valid status code")
        };
        self.app.log(self.ctx, status, None);
    }
}

/// The API and metrics route of a path.
fn classify(path: &str) -> (Api, &'static str) {
    match path {
        "/healthz" => (Api::Json, "healthz"),
        "/metrics" => (Api::Json, "metrics"),
        "/v1/presign" => (Api::Json, "presign"),
        "/v1/object" => (Api::Json, "object"),
        "/v1/list" => (Api::Json, "list"),
        p if p == "/v1" || p.starts_with("/v1/") => (Api::Json, "unknown"),
        _ => (Api::S3, "s3"),
    }
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

pub(crate) fn not_allowed(method: &Method, allowed: &'static str) -> Error {
    Error::MethodNotAllowed {
        method: method.to_string(),
        allowed,
    }
}

/// Logs a failed request: client mistakes at debug, upstream and internal
/// failures louder. Messages never hold secrets.
fn log_error(ctx: &Context, error: &Error) {
    let code = error.code();
    match error.side() {
        Side::Client => tracing::debug!(id = ctx.id, code, %error, "request refused"),
        Side::Upstream => tracing::warn!(id = ctx.id, code, %error, "upstream failure"),
        Side::Internal => tracing::error!(id = ctx.id, code, %error, "internal error"),
    }
}
