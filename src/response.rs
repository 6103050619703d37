//! Response bodies and builders shared by every route.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};

use crate::error::Error;

/// Errors a response body may fail with while streaming.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response s3gate sends.
pub type Body = BoxBody<Bytes, BoxError>;

/// A whole body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A JSON response.
pub fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The JSON API's rendering of an error.
pub fn json_error(error: &Error) -> Response<Body> {
    let mut response = json(error.status(), error.json_body());
    if let Error::MethodNotAllowed { allowed, .. } = error {
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allowed));
    }
    response
}

/// A plain-text response.
pub fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The S3 API's rendering of an error.
pub fn s3_error(error: &Error, resource: &str, request_id: &str) -> Response<Body> {
    let mut response = Response::new(full(error.s3_xml_body(resource, request_id)));
    *response.status_mut() = error.status();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amz-request-id", id);
    }
    if let Error::MethodNotAllowed { allowed, .. } = error {
        headers.insert(header::ALLOW, HeaderValue::from_static(allowed));
    }
    response
}
