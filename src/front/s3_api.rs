//! The S3-compatible front, path-style: `GET|HEAD /{bucket}/{key}`,
//! `GET /{bucket}?list-type=2…` (and V1 listing), `HEAD /{bucket}`,
//! `GET /{bucket}?location`. Everything else is refused before any upstream
//! call: writes with `MethodNotAllowed`, other operations with `AccessDenied`.

use http::{header, HeaderMap, HeaderValue, Method, Request, Response};

use super::content;
use super::context::RequestContext;
use super::query::Query;
use super::state::State;
use super::{listing, s3_listing};
use crate::body::{self, Body};
use crate::error::Error;
use crate::locator::{percent_decode, validate_bucket_name, validate_key, Locator};
use crate::upstream::endpoint::View;
use crate::upstream::integration::Read;
use crate::upstream::Resolved;
use crate::xml;

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
        /// The bucket.
        bucket: String,
        /// The object key.
        key: String,
        /// Its `versionId` and `response-*` parameters.
        query: Query,
    },
    /// ListObjectsV2 (or V1 without `list-type`).
    List {
        /// The bucket.
        bucket: String,
        /// The listing's parameters.
        query: Query,
    },
    /// HeadBucket.
    HeadBucket {
        /// The bucket.
        bucket: String,
    },
    /// GetBucketLocation, asked of the store.
    Location {
        /// The bucket.
        bucket: String,
    },
    /// ListBuckets (`GET /`), answered locally with the caller's buckets.
    ListBuckets,
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
            let query = Query::parse(query)?.without(is_ignored);
            if *method != Method::GET || key.is_some() || !query.is_empty() {
                return Err(refused("this request on the service"));
            }
            return Ok(Operation::ListBuckets);
        }
        validate_bucket_name(bucket).map_err(|reason| Error::InvalidLocator {
            locator: format!("/{bucket}"),
            reason,
        })?;
        let query = Query::parse(query)?.without(is_ignored);
        let bucket = bucket.to_owned();
        match key {
            Some(key) if !key.is_empty() => {
                validate_key(key).map_err(|reason| Error::InvalidParameter {
                    name: "key",
                    reason,
                })?;
                only(&query, OBJECT_PARAMS)?;
                Ok(Operation::Object {
                    bucket,
                    key: key.to_owned(),
                    query,
                })
            }
            _ if query.has("location") && query.len() == 1 => Ok(Operation::Location { bucket }),
            _ if *method == Method::HEAD && query.is_empty() => {
                Ok(Operation::HeadBucket { bucket })
            }
            _ => {
                only(&query, LIST_PARAMS)?;
                // S3 reads an empty delimiter as none (rclone sends one to
                // list recursively); a store could split on the empty string.
                let query = if query.get("delimiter") == Some("") {
                    query.without(|name| name == "delimiter")
                } else {
                    query
                };
                if query.get("list-type").is_some_and(|v| v != "2") {
                    return Err(Error::InvalidParameter {
                        name: "list-type",
                        reason: "only list-type=2 (or none) is served".into(),
                    });
                }
                check_listing(&query)?;
                Ok(Operation::List { bucket, query })
            }
        }
    }
}

/// Checks a listing's positions like keys (dot segments, length) and its
/// encoding type, before any upstream call.
fn check_listing(query: &Query) -> Result<(), Error> {
    for name in ["prefix", "start-after", "marker"] {
        if let Some(value) = query.get(name) {
            listing::check_position(name, value)?;
        }
    }
    if let Some(token) = query.get("continuation-token") {
        listing::check_cursor("continuation-token", token)?;
    }
    match query.get("encoding-type") {
        None | Some("url") => Ok(()),
        Some(other) => Err(Error::InvalidParameter {
            name: "encoding-type",
            reason: format!("only `url` is an encoding type, got {other:?}"),
        }),
    }
}

/// Refuses, as an operation the gateway does not serve, any parameter not in `allowed`.
fn only(query: &Query, allowed: &[&str]) -> Result<(), Error> {
    match query.unknown(allowed) {
        Some(name) => Err(refused(&format!("the ?{name} operation"))),
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

/// Serves one request of the S3 API: every operation reads through
/// the integration that serves the bucket (and prefix).
pub async fn handle<B>(
    state: &State,
    ctx: &mut RequestContext,
    request: &Request<B>,
) -> Result<Response<Body>, Error> {
    let method = request.method();
    let operation = Operation::parse(method, request.uri().path(), request.uri().query())?;
    let headers = request.headers();
    let bucket_headers = bucket_headers(headers);
    let (resolved, read) = match &operation {
        Operation::Object { bucket, key, query } => {
            let locator = Locator::in_bucket(bucket.clone(), key.clone());
            let resolved = state.resolve(ctx, &locator)?;
            content::check_override(query.get("response-content-type"))?;
            let read = Read {
                method: method.clone(),
                address: resolved.address(View::Dial),
                query: query.pairs(),
                client_headers: Some(headers),
            };
            (resolved, read)
        }
        Operation::List { bucket, query } => {
            let prefix = query.get("prefix").unwrap_or_default().to_owned();
            let resolved = state.resolve(ctx, &Locator::in_bucket(bucket.clone(), prefix))?;
            // The store lists raw keys; the gateway encodes them (s3_listing).
            let encode = query.get("encoding-type") == Some("url");
            let mut pairs = query.pairs();
            pairs.retain(|(name, _)| *name != "encoding-type");
            let read = Read {
                method: Method::GET,
                address: resolved.bucket_address(),
                query: pairs,
                client_headers: Some(&bucket_headers),
            };
            return s3_listing::fetch(&resolved.integration, read, encode).await;
        }
        Operation::HeadBucket { bucket } => {
            let resolved = state.resolve_bucket(ctx, bucket)?;
            let read = Read {
                method: Method::HEAD,
                address: resolved.bucket_address(),
                query: Vec::new(),
                client_headers: Some(&bucket_headers),
            };
            (resolved, read)
        }
        Operation::Location { bucket } => {
            let resolved = state.resolve_bucket(ctx, bucket)?;
            return location(&resolved, &bucket_headers).await;
        }
        Operation::ListBuckets => return list_buckets(state, ctx),
    };
    if !matches!(operation, Operation::Object { .. }) {
        return resolved.integration.fetch(read).await;
    }
    let mut response = state.fetch_object(&resolved, read).await?;
    let allow = resolved.integration.allow_active_content;
    content::guard_object(response.headers_mut(), allow);
    Ok(response)
}

/// Of the client's headers, those a bucket operation forwards (requester pays).
fn bucket_headers(headers: &HeaderMap) -> HeaderMap {
    let mut forwarded = HeaderMap::new();
    if let Some(value) = headers.get("x-amz-request-payer") {
        forwarded.insert("x-amz-request-payer", value.clone());
    }
    forwarded
}

/// `GetBucketLocation`, asked of the store with the integration's
/// credentials: a bucket the store does not have is its `404 NoSuchBucket`.
/// The answer names the integration's region: a store that accepts its
/// signatures is in that region (AWS redirects otherwise, which is a 502),
/// and some stores answer an empty constraint whatever their region. A
/// store that does not serve it (or a policy that does not grant it) is
/// asked `HeadBucket` instead.
async fn location(resolved: &Resolved, headers: &HeaderMap) -> Result<Response<Body>, Error> {
    let integration = &resolved.integration;
    let read = Read {
        method: Method::GET,
        address: resolved.bucket_address(),
        query: vec![("location", "")],
        client_headers: Some(headers),
    };
    match integration.read(read).await {
        Ok(_) => return Ok(xml_response(location_xml(&integration.region))),
        Err(Error::UpstreamStatus {
            status: 403 | 405 | 501,
            ..
        }) => {}
        Err(e) => return Err(e),
    }
    let head = Read {
        method: Method::HEAD,
        address: resolved.bucket_address(),
        query: Vec::new(),
        client_headers: Some(headers),
    };
    match integration.read(head).await {
        Ok(_) => Ok(xml_response(location_xml(&integration.region))),
        // A HEAD answer has no body to name the code: S3's is NoSuchBucket.
        Err(Error::UpstreamStatus {
            integration,
            status: 404,
            message,
            content_range,
            store_ids,
            ..
        }) => Err(Error::UpstreamStatus {
            integration,
            status: 404,
            code: "NoSuchBucket".into(),
            message,
            content_range,
            store_ids,
        }),
        Err(e) => Err(e),
    }
}

/// `ListBuckets`: the buckets the caller may read, named in the config (a
/// client's own `buckets`, else those of its integrations).
fn list_buckets(state: &State, ctx: &RequestContext) -> Result<Response<Body>, Error> {
    let Some(client) = &ctx.caller.client else {
        return Err(refused("listing buckets to anonymous callers"));
    };
    let mut names: Vec<&str> = state
        .registry
        .buckets()
        .filter(|(bucket, integration)| client.permits_bucket(&integration.name, bucket))
        .map(|(bucket, _)| bucket)
        .collect();
    names.sort_unstable();
    names.dedup();
    Ok(xml_response(list_buckets_xml(&names, &client.name)))
}

/// `ListBuckets`' answer.
pub fn list_buckets_xml(buckets: &[&str], owner: &str) -> String {
    use std::fmt::Write;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    let owner = xml::escape(owner);
    let _ = write!(
        out,
        "<Owner><ID>{owner}</ID><DisplayName>{owner}</DisplayName></Owner><Buckets>"
    );
    for bucket in buckets {
        let _ = write!(
            out,
            "<Bucket><Name>{}</Name><CreationDate>1970-01-01T00:00:00.000Z</CreationDate></Bucket>",
            xml::escape(bucket)
        );
    }
    out.push_str("</Buckets></ListAllMyBucketsResult>");
    out
}

/// An S3 XML answer made by the gateway itself.
fn xml_response(xml: String) -> Response<Body> {
    let mut response = Response::new(body::full(xml));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::needless_pass_by_value)] // call sites read better with owned methods
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
                query: Query::parse(Some("versionId=v1")).unwrap(),
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
        assert!(matches!(op, Operation::List { ref query, .. } if query.len() == 3));
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
    fn an_empty_delimiter_is_no_delimiter() {
        // rclone lists recursively with `delimiter=`; S3 reads that as no
        // delimiter, and some stores would split on the empty string.
        for raw in ["delimiter=&max-keys=1000&prefix=", "list-type=2&delimiter="] {
            let Operation::List { query, .. } = parse(Method::GET, "/media", Some(raw)).unwrap()
            else {
                panic!("{raw}: not a listing");
            };
            assert!(!query.has("delimiter"), "{raw}: {query:?}");
        }
        let Operation::List { query, .. } =
            parse(Method::GET, "/media", Some("delimiter=%2F")).unwrap()
        else {
            panic!("not a listing");
        };
        assert_eq!(query.get("delimiter"), Some("/"));
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
            parse(Method::GET, "/", None).unwrap(),
            Operation::ListBuckets
        );
        for (method, query) in [(Method::HEAD, None), (Method::GET, Some("acl"))] {
            assert_eq!(
                parse(method, "/", query).unwrap_err().s3_code(),
                "AccessDenied"
            );
        }
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
