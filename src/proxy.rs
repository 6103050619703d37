//! Streaming passthrough of store responses.
//!
//! Bodies stream with backpressure (the store is read as fast as the client
//! reads); a client that goes away drops the upstream response, which cancels
//! the upstream request. Statuses keep their meaning; only end-to-end headers
//! from an allowlist are passed on, so hop-by-hop headers never leak through.

use http::{header, HeaderName, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::error::Error;
use crate::response::{self, Body};

/// Store response headers passed on to the client.
pub const PASSED_RESPONSE_HEADERS: [HeaderName; 14] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_RANGE,
    header::ACCEPT_RANGES,
    header::ETAG,
    header::LAST_MODIFIED,
    header::CACHE_CONTROL,
    header::CONTENT_DISPOSITION,
    header::CONTENT_ENCODING,
    header::CONTENT_LANGUAGE,
    header::EXPIRES,
    HeaderName::from_static("x-amz-version-id"),
    HeaderName::from_static("x-amz-delete-marker"),
    HeaderName::from_static("x-amz-request-id"),
];

/// The store's response as the client's: same status, allowlisted headers,
/// body streamed.
pub fn pass_through(upstream: Response<Incoming>) -> Response<Body> {
    let (parts, body) = upstream.into_parts();
    let mut response = Response::new(body.map_err(Into::into).boxed());
    *response.status_mut() = parts.status;
    for name in PASSED_RESPONSE_HEADERS {
        for value in parts.headers.get_all(&name) {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
}

/// Largest store error body read to report its code.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// A store error response (status ≥ 400) as an [`Error`] that keeps its status,
/// with the S3 `Code` and `Message` when the body carries them.
pub async fn upstream_error(integration: &str, upstream: Response<Incoming>) -> Error {
    let status = upstream.status();
    let body = http_body_util::Limited::new(upstream.into_body(), ERROR_BODY_LIMIT)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    let field = |name: &str| {
        let start = text.find(&format!("<{name}>"))? + name.len() + 2;
        let end = start + text[start..].find(&format!("</{name}>"))?;
        Some(text[start..end].to_owned())
    };
    Error::UpstreamStatus {
        integration: integration.to_owned(),
        status: status.as_u16(),
        code: field("Code").unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("Error")
                .replace(' ', "")
        }),
        message: field("Message").unwrap_or_default(),
    }
}

/// `response` without its body (for HEAD), keeping its headers.
pub fn without_body(response: Response<Body>) -> Response<Body> {
    let (parts, _) = response.into_parts();
    Response::from_parts(parts, response::empty())
}
