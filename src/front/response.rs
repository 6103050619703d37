//! Response builders shared by every route, and the one place where an
//! [`Error`] becomes a response: JSON on the JSON API, S3 XML on the S3 API.

use http::{header, HeaderValue, Response, StatusCode};

use crate::body::{full, Body};
use crate::error::Error;

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
    add_error_headers(error, response.headers_mut());
    response
}

/// Headers an error's status calls for, on either API: `Allow` on a 405, a
/// 416's `Content-Range` (which tells the object's size), the scheme a 401
/// asks for.
fn add_error_headers(error: &Error, headers: &mut http::HeaderMap) {
    match error {
        Error::Unauthorized { .. } => {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"s3gate\""),
            );
        }
        Error::MethodNotAllowed { allowed, .. } => {
            headers.insert(header::ALLOW, HeaderValue::from_static(allowed));
        }
        Error::UpstreamStatus {
            content_range: Some(range),
            ..
        } => {
            headers.insert(header::CONTENT_RANGE, range.clone());
        }
        _ => {}
    }
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
/// A store's error carries the store's request id and host id (SDKs report
/// them); the gateway's own id stays in `x-request-id`.
pub fn s3_error(error: &Error, resource: &str, request_id: &str) -> Response<Body> {
    let store_ids = error.store_ids();
    let store_request_id = store_ids
        .and_then(|ids| ids.request_id.as_ref())
        .and_then(|id| id.to_str().ok());
    let request_id = store_request_id.unwrap_or(request_id);
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
    if let Some(host_id) = store_ids.and_then(|ids| ids.host_id.clone()) {
        headers.insert("x-amz-id-2", host_id);
    }
    add_error_headers(error, headers);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_416_tells_the_size_on_both_apis() {
        let error = Error::UpstreamStatus {
            integration: "i".into(),
            status: 416,
            code: "InvalidRange".into(),
            message: String::new(),
            content_range: Some(HeaderValue::from_static("bytes */14")),
            store_ids: None,
        };
        for response in [json_error(&error), s3_error(&error, "/b/k", "1")] {
            assert_eq!(response.status(), 416);
            assert_eq!(response.headers()[header::CONTENT_RANGE], "bytes */14");
        }
    }

    #[test]
    fn a_405_names_the_allowed_methods() {
        let error = Error::MethodNotAllowed {
            method: "PUT".into(),
            allowed: "GET, HEAD",
        };
        assert_eq!(json_error(&error).headers()[header::ALLOW], "GET, HEAD");
    }
}
