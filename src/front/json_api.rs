//! The JSON API: `/healthz`, `/metrics`, `/v1/presign` (one or a batch),
//! `/v1/object` (redirect or proxy delivery) and `/v1/list`. Each handler
//! reads the shared [`State`] and records into the request context.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;

use super::authenticate::unix;
use super::content;
use super::context::{JsonRoute, RequestContext};
use super::gateway_url;
use super::listing::{self, ListRequest};
use super::query::Query;
use super::response;
use super::state::State;
use crate::auth::url_signature::Grant;
use crate::auth::Via;
use crate::body::{self, Body, BoxError};
use crate::config::Delivery;
use crate::error::Error;
use crate::presign::{self, parse_expires, PresignMethod, PresignOptions, Presigned};
use crate::upstream::endpoint::View;
use crate::upstream::integration::Read;

/// Parameters of `GET /v1/presign`.
const PRESIGN_PARAMS: &[&str] = &[
    "locator",
    "expires",
    "method",
    "response-content-type",
    "response-content-disposition",
    "version_id",
    "grant",
];

/// Parameters of `/v1/object`, gateway signatures' included.
const OBJECT_PARAMS: &[&str] = &[
    "locator",
    "expires",
    "response-content-type",
    "response-content-disposition",
    "version_id",
    "grant",
    "client",
    "kid",
    "sig",
];

/// Parameters of `/v1/list`.
const LIST_PARAMS: &[&str] = &["locator", "delimiter", "limit", "cursor", "all", "grant"];

/// Lifetime of a grant when the request does not say.
const DEFAULT_GRANT_S: u64 = 3600;

/// Serves one request of the JSON API.
pub async fn handle<B>(
    state: &State,
    ctx: &mut RequestContext,
    route: JsonRoute,
    request: Request<B>,
) -> Result<Response<Body>, Error>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let method = request.method();
    let read = matches!(*method, Method::GET | Method::HEAD);
    match route {
        JsonRoute::Healthz if read => Ok(response::text(StatusCode::OK, "ok\n")),
        JsonRoute::Healthz => Err(not_allowed(method, "GET, HEAD")),
        JsonRoute::Readyz if !read => Err(not_allowed(method, "GET, HEAD")),
        JsonRoute::Readyz if state.readiness.is_ready() => {
            Ok(response::text(StatusCode::OK, "ready\n"))
        }
        JsonRoute::Readyz => Err(Error::Draining),
        JsonRoute::Metrics if method == Method::GET => Ok(metrics_page(state)),
        JsonRoute::Metrics => Err(not_allowed(method, "GET")),
        // The presign and redirect routes are awaited in place; the others
        // boxed, so that their futures (up to ≈ 4 KB) do not make every
        // request's future that large: it is moved into a box once per
        // request (a copy of its whole size).
        JsonRoute::Presign => match *method {
            Method::GET => presign_one(state, ctx, &request).await,
            Method::POST => Box::pin(presign_batch(state, ctx, request)).await,
            _ => Err(not_allowed(method, "GET, POST")),
        },
        JsonRoute::Grant if method == Method::POST => Box::pin(grant(state, ctx, request)).await,
        JsonRoute::Grant => Err(not_allowed(method, "POST")),
        JsonRoute::Object if read => object(state, ctx, &request).await,
        JsonRoute::Object => Err(not_allowed(method, "GET, HEAD")),
        JsonRoute::List if method == Method::GET => {
            Box::pin(list(state, ctx, &query(&request, LIST_PARAMS)?)).await
        }
        JsonRoute::List => Err(not_allowed(method, "GET")),
        JsonRoute::Unknown => Err(Error::NoSuchRoute {
            path: ctx.path.clone(),
        }),
    }
}

/// The request's query, refusing names not in `allowed`.
fn query<B>(request: &Request<B>, allowed: &[&str]) -> Result<Query, Error> {
    let query = Query::parse(request.uri().query())?;
    query.only(allowed)?;
    Ok(query)
}

fn not_allowed(method: &Method, allowed: &'static str) -> Error {
    Error::MethodNotAllowed {
        method: method.to_string(),
        allowed,
    }
}

/// `GET /metrics`: Prometheus text format.
fn metrics_page(state: &State) -> Response<Body> {
    for integration in state.registry.integrations() {
        if let Some(left) = integration.credentials_seconds_left() {
            let gauge = state
                .metrics
                .credential_expiry
                .with_label_values(&[&integration.name]);
            gauge.set(left);
        }
    }
    let mut response = Response::new(body::full(state.metrics.render()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// `GET /v1/presign?locator=...`
async fn presign_one<B>(
    state: &State,
    ctx: &mut RequestContext,
    request: &Request<B>,
) -> Result<Response<Body>, Error> {
    let query = query(request, PRESIGN_PARAMS)?;
    let options = presign_options(ctx, &query)?;
    // Only proxy delivery needs the gateway's own URL.
    let base = || gateway_url::base_url(state, request.uri(), request.headers());
    let presigned = presign_for(state, ctx, base, query.require("locator")?, &options).await?;
    Ok(response::json(StatusCode::OK, presigned.to_json()))
}

/// `POST /v1/presign` with `{"locators":[...]}`: one result per locator, in order.
async fn presign_batch<B>(
    state: &State,
    ctx: &mut RequestContext,
    request: Request<B>,
) -> Result<Response<Body>, Error>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let limits = &state.limits;
    let base = gateway_url::base_url(state, request.uri(), request.headers());
    let body = read_body(request, limits.max_body_bytes, limits.body_timeout).await?;
    let batch: BatchRequest =
        serde_json::from_slice(&body).map_err(|e| Error::MalformedBody(e.to_string()))?;
    if batch.locators.len() > limits.max_batch {
        return Err(Error::BatchTooLarge {
            count: batch.locators.len(),
            limit: limits.max_batch,
        });
    }
    let mut options = batch.options()?;
    options.not_after = ctx.caller.grant().map(|grant| grant.expires_at);
    let mut results = Vec::with_capacity(batch.locators.len());
    for locator in &batch.locators {
        let item = match presign_for(state, ctx, || base.clone(), locator, &options).await {
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

/// Presigns one locator for the caller: a URL on the store, or with proxy
/// delivery a gateway-signed URL under `base`. A grant's holder gets URLs
/// that end with the grant at the latest.
async fn presign_for(
    state: &State,
    ctx: &mut RequestContext,
    base: impl FnOnce() -> Result<String, Error>,
    locator: &str,
    options: &PresignOptions,
) -> Result<Presigned, Error> {
    let resolved = state.resolve_object(ctx, locator)?;
    match resolved.integration.delivery {
        Delivery::Proxy => {
            content::check_override(options.response_content_type.as_deref())?;
            let base = base()?;
            let now = SystemTime::now();
            gateway_url::sign(state, ctx, &base, locator, &resolved, options, now)
        }
        Delivery::Redirect => presign::presign(&resolved, options).await,
    }
}

/// `POST /v1/grant` with `{"prefix":"s3://bucket/prefix/","expires":3600}`:
/// a stateless, read-only grant for that prefix, within the caller's scope.
async fn grant<B>(
    state: &State,
    ctx: &mut RequestContext,
    request: Request<B>,
) -> Result<Response<Body>, Error>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let limits = &state.limits;
    let body = read_body(request, limits.max_body_bytes, limits.body_timeout).await?;
    let asked: GrantRequest =
        serde_json::from_slice(&body).map_err(|e| Error::MalformedBody(e.to_string()))?;
    let expires = asked.expires.unwrap_or(DEFAULT_GRANT_S);
    presign::check_requested(expires)?;
    let resolved = state.resolve_str(ctx, &asked.prefix)?;
    let expires = expires.min(resolved.integration.presign_max_ttl_s);
    let grant = Grant {
        client: ctx.caller.signing_name().to_owned(),
        prefix: asked.prefix,
        expires_at: unix(SystemTime::now()) + expires,
    };
    let body = serde_json::json!({
        "grant": grant.encode(&state.auth.url_keys),
        "prefix": grant.prefix,
        "expires_at": grant.expires_at,
    });
    Ok(response::json(StatusCode::OK, body.to_string()))
}

/// `GET|HEAD /v1/object?locator=...`: 307 to a presigned URL, or the bytes
/// streamed, as the integration's `delivery` says.
async fn object<B>(
    state: &State,
    ctx: &mut RequestContext,
    request: &Request<B>,
) -> Result<Response<Body>, Error> {
    let query = query(request, OBJECT_PARAMS)?;
    let resolved = state.resolve_object(ctx, query.require("locator")?)?;
    let integration = &resolved.integration;
    let mut options = presign_options(ctx, &query)?;
    if ctx.caller.via == Via::SignedUrl {
        // A signed URL's `expires` is its own expiry, not a lifetime.
        options.expires_s = None;
    }
    let head = request.method() == Method::HEAD;
    match integration.delivery {
        Delivery::Redirect => {
            options.method = if head {
                PresignMethod::Head
            } else {
                PresignMethod::Get
            };
            let credentials = integration.credentials().await?;
            let presigned = presign::sign(&resolved, &credentials, &options, SystemTime::now())?;
            // Cacheable while the URL stays what it is: the rest of the
            // signing window, or most of the URL's life.
            let expires_in = presigned.expires_in;
            let max_age = presigned
                .window_left
                .unwrap_or_else(|| expires_in.saturating_sub((expires_in / 10).min(60)));
            Ok(redirect(&presigned.url, max_age.min(expires_in)))
        }
        Delivery::Proxy => {
            content::check_override(options.response_content_type.as_deref())?;
            let read = Read {
                method: request.method().clone(),
                address: resolved.address(View::Dial),
                query: options.s3_query(&resolved),
                client_headers: Some(request.headers()),
            };
            let mut response = Box::pin(state.fetch_object(&resolved, read)).await?;
            content::guard_object(response.headers_mut(), integration.allow_active_content);
            Ok(response)
        }
    }
}

/// `GET /v1/list?locator=s3://b/prefix/&delimiter=/&limit=N&cursor=C[&all=true]`
async fn list(
    state: &State,
    ctx: &mut RequestContext,
    query: &Query,
) -> Result<Response<Body>, Error> {
    let resolved = state.resolve_str(ctx, query.require("locator")?)?;
    let request = ListRequest {
        delimiter: query.get("delimiter").map(str::to_owned),
        limit: query.get("limit").map(parse_limit).transpose()?,
        cursor: query
            .get("cursor")
            .map(|c| listing::check_cursor("cursor", c).map(|()| c.to_owned()))
            .transpose()?,
        all: query
            .get("all")
            .map(parse_all)
            .transpose()?
            .unwrap_or(false),
    };
    listing::respond(resolved, request, state.limits.list_all).await
}

fn parse_limit(value: &str) -> Result<u32, Error> {
    match value.parse::<u32>() {
        Ok(n) if (1..=listing::MAX_PAGE).contains(&n) => Ok(n),
        _ => Err(Error::InvalidParameter {
            name: "limit",
            reason: format!("must be 1 to {}, got {value:?}", listing::MAX_PAGE),
        }),
    }
}

fn parse_all(value: &str) -> Result<bool, Error> {
    match value {
        "false" => Ok(false),
        "true" => Ok(true),
        other => Err(Error::InvalidParameter {
            name: "all",
            reason: format!("must be true or false, got {other:?}"),
        }),
    }
}

/// The presign options a query gives; a grant's holder gets URLs that end
/// with the grant at the latest.
fn presign_options(ctx: &RequestContext, query: &Query) -> Result<PresignOptions, Error> {
    Ok(PresignOptions {
        not_after: ctx.caller.grant().map(|grant| grant.expires_at),
        expires_s: query.get("expires").map(parse_expires).transpose()?,
        method: query
            .get("method")
            .map(PresignMethod::parse)
            .transpose()?
            .unwrap_or_default(),
        response_content_type: query.get("response-content-type").map(str::to_owned),
        response_content_disposition: query.get("response-content-disposition").map(str::to_owned),
        version_id: query.get("version_id").map(str::to_owned),
    })
}

/// A 307 to `url`, privately cacheable for `max_age` seconds.
fn redirect(url: &str, max_age: u64) -> Response<Body> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(url) {
        headers.insert(header::LOCATION, location);
    }
    if let Ok(cache) = HeaderValue::from_str(&format!("private, max-age={max_age}")) {
        headers.insert(header::CACHE_CONTROL, cache);
    }
    response
}

/// Reads a whole request body, refusing more than `limit` bytes or a body
/// that takes longer than `within` to arrive.
async fn read_body<B>(request: Request<B>, limit: usize, within: Duration) -> Result<Bytes, Error>
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
    let collect = Limited::new(request.into_body(), limit).collect();
    let Ok(collected) = tokio::time::timeout(within, collect).await else {
        return Err(Error::RequestTimeout {
            seconds: within.as_secs(),
        });
    };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Error::BodyTooLarge { limit }),
        Err(e) => Err(Error::MalformedBody(format!("cannot read the body: {e}"))),
    }
}

/// Body of `POST /v1/grant`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantRequest {
    prefix: String,
    expires: Option<u64>,
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
    /// The batch's options, checked once for every item.
    fn options(&self) -> Result<PresignOptions, Error> {
        if let Some(expires) = self.expires {
            presign::check_requested(expires)?;
        }
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
            not_after: None,
        })
    }
}
