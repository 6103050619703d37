//! The request lifecycle, top to bottom, in one place:
//! context → route → handler (parse → resolve → credentials → sign) →
//! response → one access-log step, on success and error alike.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;

use crate::config::{Config, ConfigError, ServerConfig};
use crate::error::{Error, Side};
use crate::integrations::Registry;
use crate::metrics::Metrics;
use crate::presign::{self, parse_expires, PresignMethod, PresignOptions};
use crate::response::{self, Body, BoxError};

/// The gateway: configuration and registry, shared by every connection.
#[derive(Debug)]
pub struct App {
    server: ServerConfig,
    registry: Registry,
    metrics: Metrics,
    next_request: AtomicU64,
}

/// What the access log records of one request.
struct Context {
    id: u64,
    start: Instant,
    method: Method,
    path: String,
}

impl App {
    /// Builds the gateway from a validated config; contacts nothing.
    pub async fn new(config: &Config) -> Result<Self, ConfigError> {
        let metrics = Metrics::new();
        Ok(Self {
            server: config.server.clone(),
            registry: Registry::from_config(config, &metrics).await?,
            metrics,
            next_request: AtomicU64::new(1),
        })
    }

    /// The integration registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Handles one request; never fails: errors become responses.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<BoxError>,
    {
        let ctx = Context {
            id: self.next_request.fetch_add(1, Ordering::Relaxed),
            start: Instant::now(),
            method: request.method().clone(),
            path: request.uri().path().to_owned(),
        };
        tracing::debug!(id = ctx.id, method = %ctx.method, path = %ctx.path, "request received");
        let response = match self.route(request).await {
            Ok(response) => response,
            Err(error) => {
                log_error(&ctx, &error);
                response::json_error(&error)
            }
        };
        self.log(&ctx, &response);
        response
    }

    async fn route<B>(&self, request: Request<B>) -> Result<Response<Body>, Error>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<BoxError>,
    {
        let method = request.method().clone();
        match request.uri().path() {
            "/healthz" => match method {
                Method::GET | Method::HEAD => Ok(response::text(StatusCode::OK, "ok\n")),
                _ => Err(not_allowed(&method, "GET, HEAD")),
            },
            "/metrics" => match method {
                Method::GET => Ok(self.metrics_page()),
                _ => Err(not_allowed(&method, "GET")),
            },
            "/v1/presign" => match method {
                Method::GET => self.presign_one(request.uri().query().unwrap_or("")).await,
                Method::POST => self.presign_batch(request).await,
                _ => Err(not_allowed(&method, "GET, POST")),
            },
            path => Err(Error::NoSuchRoute {
                path: path.to_owned(),
            }),
        }
    }

    /// `GET /v1/presign?locator=...`
    async fn presign_one(&self, query: &str) -> Result<Response<Body>, Error> {
        let params = PresignQuery::parse(query)?;
        let locator = params.locator.ok_or(Error::InvalidParameter {
            name: "locator",
            reason: "is required".into(),
        })?;
        let presigned =
            presign::presign(&self.registry, &locator, &params.options, SystemTime::now()).await?;
        let body = serde_json::to_string(&presigned).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(response::json(StatusCode::OK, body))
    }

    /// `POST /v1/presign` with `{"locators":[...]}`: one result per locator, in order.
    async fn presign_batch<B>(&self, request: Request<B>) -> Result<Response<Body>, Error>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<BoxError>,
    {
        let body = read_body(request, self.server.max_body_bytes).await?;
        let batch: BatchRequest =
            serde_json::from_slice(&body).map_err(|e| Error::MalformedBody(e.to_string()))?;
        if batch.locators.len() > self.server.max_batch {
            return Err(Error::BatchTooLarge {
                count: batch.locators.len(),
                limit: self.server.max_batch,
            });
        }
        let options = batch.options()?;
        let now = SystemTime::now();
        let mut results = Vec::with_capacity(batch.locators.len());
        for locator in &batch.locators {
            let item = match presign::presign(&self.registry, locator, &options, now).await {
                Ok(p) => serde_json::json!({
                    "locator": locator, "url": p.url, "expires_at": p.expires_at, "integration": p.integration,
                }),
                Err(e) => serde_json::json!({ "locator": locator, "error": e.to_json() }),
            };
            results.push(item);
        }
        let body = serde_json::json!({ "results": results }).to_string();
        Ok(response::json(StatusCode::OK, body))
    }

    /// `GET /metrics`: Prometheus text format.
    fn metrics_page(&self) -> Response<Body> {
        for integration in self.registry.integrations() {
            if let Some(left) = integration.credentials_seconds_left() {
                let gauge = self.metrics.credential_expiry.with_label_values(&[&integration.name]);
                gauge.set(left);
            }
        }
        let mut response = Response::new(response::full(self.metrics.render()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        response
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn log(&self, ctx: &Context, response: &Response<Body>) {
        let status = response.status().as_u16();
        let micros = ctx.start.elapsed().as_micros() as u64;
        tracing::info!(
            target: "s3gate::access",
            id = ctx.id,
            method = %ctx.method,
            path = %ctx.path,
            status,
            micros,
        );
    }
}

fn not_allowed(method: &Method, allowed: &'static str) -> Error {
    Error::MethodNotAllowed {
        method: method.to_string(),
        allowed,
    }
}

/// Reads a whole request body, refusing more than `limit` bytes.
async fn read_body<B>(request: Request<B>, limit: usize) -> Result<Bytes, Error>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Error::BodyTooLarge { limit });
    }
    match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Error::BodyTooLarge { limit }),
        Err(e) => Err(Error::MalformedBody(format!("cannot read the body: {e}"))),
    }
}

/// Query parameters of `GET /v1/presign`.
#[derive(Debug, Default)]
struct PresignQuery {
    locator: Option<String>,
    options: PresignOptions,
}

impl PresignQuery {
    fn parse(query: &str) -> Result<Self, Error> {
        let mut q = PresignQuery::default();
        let mut method = None;
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.into_owned();
            let o = &mut q.options;
            match name.as_ref() {
                "locator" => set_once(&mut q.locator, "locator", value)?,
                "expires" => set_once(&mut o.expires_s, "expires", parse_expires(&value)?)?,
                "method" => set_once(&mut method, "method", PresignMethod::parse(&value)?)?,
                "response-content-type" => {
                    set_once(&mut o.response_content_type, "response-content-type", value)?
                }
                "response-content-disposition" => set_once(
                    &mut o.response_content_disposition,
                    "response-content-disposition",
                    value,
                )?,
                "version_id" => set_once(&mut o.version_id, "version_id", value)?,
                other => {
                    return Err(Error::InvalidParameter {
                        name: "query",
                        reason: format!("unknown parameter {other:?}"),
                    })
                }
            }
        }
        q.options.method = method.unwrap_or_default();
        Ok(q)
    }
}

/// Fills `slot`, refusing a parameter given twice.
fn set_once<T>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), Error> {
    match slot.replace(value) {
        None => Ok(()),
        Some(_) => Err(Error::InvalidParameter {
            name,
            reason: "is given more than once".into(),
        }),
    }
}

/// Body of `POST /v1/presign`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    locators: Vec<String>,
    expires: Option<u64>,
    method: Option<String>,
    response_content_type: Option<String>,
    response_content_disposition: Option<String>,
}

impl BatchRequest {
    fn options(&self) -> Result<PresignOptions, Error> {
        Ok(PresignOptions {
            expires_s: self.expires,
            method: self
                .method
                .as_deref()
                .map(PresignMethod::parse)
                .transpose()?
                .unwrap_or_default(),
            response_content_type: self.response_content_type.clone(),
            response_content_disposition: self.response_content_disposition.clone(),
            version_id: None,
        })
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
