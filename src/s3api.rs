//! The S3-compatible front, path-style: `GET|HEAD /{bucket}/{key}`,
//! `GET /{bucket}?list-type=2…` (and V1 listing), `HEAD /{bucket}`,
//! `GET /{bucket}?location`. Everything else is refused before any upstream
//! call: writes with `MethodNotAllowed`, other operations with `AccessDenied`.

use http::{header, HeaderMap, HeaderValue, Method, Request, Response};

use crate::app::App;
use crate::endpoint::{Address, View};
use crate::error::Error;
use crate::integrations::Integration;
use crate::locator::{percent_decode, validate_bucket_name, validate_key, Locator};
use crate::response::{self, Body};
use crate::{proxy, upstream};

/// Query parameters of GetObject/HeadObject passed to the store.
const OBJECT_PARAMS: &[&str] = &[
    "versionId",
    "response-content-type",
    "response-content-language",
    "response-expires",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
];

/// Query parameters of ListObjects (V1 and V2) passed to the store.
const LIST_PARAMS: &[&str] = &[
    "list-type",
    "prefix",
    "delimiter",
    "continuation-token",
    "start-after",
    "max-keys",
    "encoding-type",
    "fetch-owner",
    "marker",
];

/// Parameters clients add that carry no operation (SDK hints, query auth).
fn is_ignored(name: &str) -> bool {
    name == "x-id" || name.starts_with("X-Amz-") || name.starts_with("x-amz-")
}

/// One S3 operation the gateway serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// GetObject or HeadObject.
    Object {
        bucket: String,
        key: String,
        params: Vec<(String, String)>,
    },
    /// ListObjectsV2 (or V1 without `list-type`).
    List {
        bucket: String,
        params: Vec<(String, String)>,
    },
    /// HeadBucket.
    HeadBucket { bucket: String },
    /// GetBucketLocation, answered locally.
    Location { bucket: String },
}

impl Operation {
    /// Parses a request of the S3 API; refuses what a read-only gateway does not serve.
    pub fn parse(method: &Method, path: &str, query: Option<&str>) -> Result<Self, Error> {
        if !matches!(*method, Method::GET | Method::HEAD) {
            return Err(Error::MethodNotAllowed {
                method: method.to_string(),
                allowed: "GET, HEAD",
            });
        }
        let path = percent_decode(path).map_err(|reason| Error::InvalidParameter {
            name: "path",
            reason,
        })?;
        let rest = path.strip_prefix('/').unwrap_or(&path);
        let (bucket, key) = match rest.split_once('/') {
            Some((bucket, key)) => (bucket, Some(key)),
            None => (rest, None),
        };
        if bucket.is_empty() {
            return Err(refused("listing buckets"));
        }
        validate_bucket_name(bucket).map_err(|reason| Error::InvalidLocator {
            locator: format!("/{bucket}"),
            reason,
        })?;
        let params: Vec<(String, String)> = query
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let params: Vec<(String, String)> =
            params.into_iter().filter(|(k, _)| !is_ignored(k)).collect();
        let mut seen = std::collections::HashSet::with_capacity(params.len());
        if let Some((name, _)) = params.iter().find(|(k, _)| !seen.insert(k.as_str())) {
            // Stores disagree on which of several values wins: none is forwarded.
            return Err(Error::InvalidParameter {
                name: "query",
                reason: format!("parameter {name:?} is given more than once"),
            });
        }
        let bucket = bucket.to_owned();
        match key {
            Some(key) if !key.is_empty() => {
                validate_key(key).map_err(|reason| Error::InvalidParameter {
                    name: "key",
                    reason,
                })?;
                only(&params, OBJECT_PARAMS)?;
                Ok(Operation::Object {
                    bucket,
                    key: key.to_owned(),
                    params,
                })
            }
            _ if params.iter().any(|(k, _)| k == "location") && params.len() == 1 => {
                Ok(Operation::Location { bucket })
            }
            _ if *method == Method::HEAD && params.is_empty() => {
                Ok(Operation::HeadBucket { bucket })
            }
            _ => {
                only(&params, LIST_PARAMS)?;
                if params.iter().any(|(k, v)| k == "list-type" && v != "2") {
                    return Err(Error::InvalidParameter {
                        name: "list-type",
                        reason: "only list-type=2 (or none) is served".into(),
                    });
                }
                Ok(Operation::List { bucket, params })
            }
        }
    }
}

fn only(params: &[(String, String)], allowed: &[&str]) -> Result<(), Error> {
    match params.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        Some((k, _)) => Err(refused(&format!("the ?{k} operation"))),
        None => Ok(()),
    }
}

fn refused(what: &str) -> Error {
    Error::ReadOnly {
        what: what.to_owned(),
    }
}

/// `GetBucketLocation`'s answer for a bucket in `region`.
pub fn location_xml(region: &str) -> String {
    // us-east-1 is reported as an empty constraint, as S3 does.
    let constraint = if region == "us-east-1" { "" } else { region };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{constraint}</LocationConstraint>"
    )
}

impl App {
    /// Serves one request of the S3 API.
    pub(crate) async fn s3_request<B>(&self, request: Request<B>) -> Result<Response<Body>, Error> {
        if !self.s3_api.anonymous {
            return Err(Error::Unauthenticated);
        }
        let method = request.method();
        let operation = Operation::parse(method, request.uri().path(), request.uri().query())?;
        match operation {
            Operation::Object {
                bucket,
                key,
                params,
            } => {
                let locator = Locator::in_bucket(bucket, key);
                let resolved = self.registry.resolve(&locator)?;
                let query: Vec<(&str, &str)> = params
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let address = resolved.address(View::Dial);
                self.forward(
                    &resolved.integration,
                    method,
                    &address,
                    &query,
                    request.headers(),
                )
                .await
            }
            Operation::List { bucket, params } => {
                let prefix = params
                    .iter()
                    .find(|(k, _)| k == "prefix")
                    .map_or("", |(_, v)| v.as_str());
                let resolved = self
                    .registry
                    .resolve(&Locator::in_bucket(bucket, prefix.to_owned()))?;
                let query: Vec<(&str, &str)> = params
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let address =
                    resolved
                        .integration
                        .endpoint
                        .object(&resolved.bucket, "", View::Dial);
                self.forward(
                    &resolved.integration,
                    &Method::GET,
                    &address,
                    &query,
                    &HeaderMap::new(),
                )
                .await
            }
            Operation::HeadBucket { bucket } => {
                let integration = self.registry.for_bucket(&bucket)?;
                let address = integration.endpoint.object(&bucket, "", View::Dial);
                self.forward(
                    &integration,
                    &Method::HEAD,
                    &address,
                    &[],
                    &HeaderMap::new(),
                )
                .await
            }
            Operation::Location { bucket } => {
                let integration = self.registry.for_bucket(&bucket)?;
                let mut response = Response::new(response::full(location_xml(&integration.region)));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/xml"),
                );
                Ok(response)
            }
        }
    }

    /// Signs the read, sends it and streams the store's answer back as is.
    async fn forward(
        &self,
        integration: &Integration,
        method: &Method,
        address: &Address,
        query: &[(&str, &str)],
        headers: &HeaderMap,
    ) -> Result<Response<Body>, Error> {
        let upstream = upstream::signed_read(integration, method, address, query, headers).await?;
        let response = proxy::pass_through(upstream, integration.upstream.body_idle_timeout);
        Ok(response::served_by(response, &integration.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: Method, path: &str, query: Option<&str>) -> Result<Operation, Error> {
        Operation::parse(&method, path, query)
    }

    #[test]
    fn objects_keep_their_keys() {
        let op = parse(
            Method::GET,
            "/media/a%20b//c%2B/",
            Some("versionId=v1&x-id=GetObject"),
        )
        .unwrap();
        assert_eq!(
            op,
            Operation::Object {
                bucket: "media".into(),
                key: "a b//c+/".into(),
                params: vec![("versionId".into(), "v1".into())],
            }
        );
    }

    #[test]
    fn listing_and_location() {
        let op = parse(
            Method::GET,
            "/media",
            Some("list-type=2&prefix=a%2F&delimiter=%2F"),
        )
        .unwrap();
        assert!(matches!(op, Operation::List { ref params, .. } if params.len() == 3));
        assert!(matches!(
            parse(Method::GET, "/media/", None).unwrap(),
            Operation::List { .. }
        ));
        assert!(matches!(
            parse(Method::GET, "/media", Some("location")).unwrap(),
            Operation::Location { .. }
        ));
        assert!(matches!(
            parse(Method::HEAD, "/media", None).unwrap(),
            Operation::HeadBucket { .. }
        ));
    }

    #[test]
    fn writes_and_other_operations_are_refused() {
        for method in [Method::PUT, Method::POST, Method::DELETE, Method::PATCH] {
            let e = parse(method, "/media/k", None).unwrap_err();
            assert_eq!(
                (e.status().as_u16(), e.s3_code()),
                (405, "MethodNotAllowed")
            );
        }
        for query in [
            "acl",
            "uploads",
            "tagging",
            "versions",
            "list-type=1",
            "policy",
        ] {
            let e = parse(Method::GET, "/media", Some(query)).unwrap_err();
            assert!(matches!(e.status().as_u16(), 400 | 403), "{query}");
        }
        for query in ["acl", "uploadId=1", "attributes"] {
            let e = parse(Method::GET, "/media/k", Some(query)).unwrap_err();
            assert_eq!(
                (e.status().as_u16(), e.s3_code()),
                (403, "AccessDenied"),
                "{query}"
            );
        }
        assert_eq!(
            parse(Method::GET, "/", None).unwrap_err().s3_code(),
            "AccessDenied"
        );
    }

    #[test]
    fn repeated_parameters_and_dot_segments_are_refused() {
        for query in ["prefix=a/&prefix=", "prefix=a/&delimiter=/&prefix=b/"] {
            let e = parse(Method::GET, "/media", Some(query)).unwrap_err();
            assert_eq!((e.status().as_u16(), e.s3_code()), (400, "InvalidArgument"));
            assert!(
                e.to_string().contains("\"prefix\" is given more than once"),
                "{e}"
            );
        }
        let e = parse(Method::GET, "/media/k", Some("versionId=1&versionId=2")).unwrap_err();
        assert_eq!(e.status().as_u16(), 400);
        for path in [
            "/media/../other/k",
            "/media/a/./k",
            "/media/%2E%2E/k",
            "/media/a/..",
        ] {
            let e = parse(Method::GET, path, None).unwrap_err();
            assert_eq!(
                (e.status().as_u16(), e.s3_code()),
                (400, "InvalidArgument"),
                "{path}"
            );
        }
        let long = format!("/media/{}", "k".repeat(1025));
        assert_eq!(
            parse(Method::GET, &long, None)
                .unwrap_err()
                .status()
                .as_u16(),
            400
        );
        // Dots inside a segment are ordinary key characters.
        assert!(parse(Method::GET, "/media/a/.hidden/..x/k..", None).is_ok());
    }
}
