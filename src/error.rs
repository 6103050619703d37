//! The one error type of a request, and its mapping to HTTP responses.
//!
//! Every failure a client can see is a variant here with a stable `code`,
//! an HTTP status and a message that never contains a secret. The JSON API
//! renders it as `{"error":{"code","message"}}`, the S3 API as S3 XML.

use http::StatusCode;

/// A request failure, as the client sees it.
// Variant fields are named for what they hold and shown by each variant's
// message; documenting each again would only repeat its name.
#[allow(missing_docs)]
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The locator could not be parsed.
    #[error("malformed locator {locator:?}: {reason}")]
    InvalidLocator { locator: String, reason: String },
    /// A query or body parameter is missing or malformed.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    /// The request body is not what the endpoint accepts.
    #[error("malformed request body: {0}")]
    MalformedBody(String),
    /// No integration permits this bucket.
    #[error("bucket {bucket:?} is not permitted by any integration")]
    BucketNotPermitted { bucket: String },
    /// The access point is not configured in any integration.
    #[error("access point {arn:?} is not configured in any integration")]
    AccessPointNotPermitted { arn: String },
    /// The key lies outside the integration's permitted prefixes. The
    /// message does not name the integration (a customer); the log does.
    #[error("key {key:?} in bucket {bucket:?} is outside the permitted prefixes")]
    PrefixNotPermitted {
        integration: String,
        bucket: String,
        key: String,
    },
    /// The S3 API does not serve this operation: the gateway is read-only.
    #[error("s3gate is a read-only gateway and does not serve {what}")]
    ReadOnly { what: String },
    /// The S3 API needs a client signature and the request has none.
    #[error("the S3 API needs requests signed with a client's access key ([[clients]] access_key_id), or [s3_api] anonymous = true")]
    Unauthenticated,
    /// The JSON API needs a client credential and the request has none that is valid.
    #[error("{reason}")]
    Unauthorized { reason: &'static str },
    /// The caller is authenticated but the object lies outside its scope.
    #[error("client {client:?} may not read {what}")]
    ClientNotPermitted { client: String, what: String },
    /// The S3 front does not know the request's access key.
    #[error("the access key id is not known to this gateway")]
    InvalidAccessKeyId,
    /// A client signature (SigV4, gateway URL or grant) does not verify.
    #[error("the request signature does not match; check the secret and the signing method")]
    SignatureDoesNotMatch,
    /// A signed request's time is too far from the gateway's clock.
    #[error(
        "the difference between the request time and the gateway's time is over {max_skew_s} s"
    )]
    RequestTimeTooSkewed { max_skew_s: u64 },
    /// A presigned or gateway-signed URL, or a grant, has expired.
    #[error("the request has expired")]
    RequestExpired,
    /// A SigV4 `Authorization` header that cannot be parsed.
    #[error("malformed Authorization header: {reason}")]
    AuthorizationHeaderMalformed { reason: String },
    /// Presigned-URL query parameters that cannot be parsed.
    #[error("malformed presigned query: {reason}")]
    AuthorizationQueryParametersError { reason: String },
    /// A request's URI (path and query) is over the gateway's limit.
    #[error("the request URI is over the limit of {limit} bytes")]
    UriTooLong { limit: usize },
    /// A request with a `Host` the gateway does not serve (DNS rebinding).
    #[error("host {host:?} is not served here; add it to [server] allowed_hosts")]
    MisdirectedRequest { host: String },
    /// An `OPTIONS` request that is not a CORS preflight.
    #[error("OPTIONS is answered only as a CORS preflight: it needs Origin and Access-Control-Request-Method")]
    NotAPreflight,
    /// The method is not allowed on this route.
    #[error("method {method} is not allowed here; allowed: {allowed}")]
    MethodNotAllowed {
        method: String,
        allowed: &'static str,
    },
    /// No such route.
    #[error("no route for {path:?}")]
    NoSuchRoute { path: String },
    /// The gateway is draining after a shutdown signal: `/readyz` says so.
    #[error("the gateway is shutting down and takes no new work")]
    Draining,
    /// The request body is over the configured limit.
    #[error("request body is over the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// A batch holds more locators than `max_batch`.
    #[error("batch of {count} locators is over the limit of {limit}")]
    BatchTooLarge { count: usize, limit: usize },
    /// STS refused to issue the integration's role session.
    #[error("integration {integration:?}: STS refused the role ({code}): {hint}")]
    UpstreamAuthFailed {
        integration: String,
        code: String,
        hint: String,
    },
    /// The integration has no valid credentials right now.
    #[error("integration {integration:?}: no valid credentials: {reason}")]
    CredentialsUnavailable { integration: String, reason: String },
    /// The upstream could not be reached or answered garbage.
    #[error("integration {integration:?}: upstream failed: {reason}")]
    UpstreamFailed { integration: String, reason: String },
    /// The store answered with an error status; the status is kept.
    #[error("integration {integration:?}: the store answered {status} {code}: {message}")]
    UpstreamStatus {
        integration: String,
        status: u16,
        code: String,
        message: String,
        /// A 416's `Content-Range: bytes */SIZE`, which tells the size.
        content_range: Option<http::HeaderValue>,
        /// The store's ids of its answer, which SDKs report (boxed: errors stay small).
        store_ids: Option<Box<StoreIds>>,
    },
    /// The upstream did not answer in time.
    #[error("integration {integration:?}: upstream timed out after {seconds} s")]
    UpstreamTimeout { integration: String, seconds: u64 },
    /// The store answered with a redirect: the integration's region or
    /// endpoint is not the bucket's. Never followed (upstream hosts come
    /// from the config only).
    #[error("integration {integration:?}: the store redirected ({status} {code}){hint}")]
    UpstreamRedirect {
        integration: String,
        status: u16,
        code: String,
        hint: String,
    },
    /// The client did not send its request body in time.
    #[error("the request body did not arrive within {seconds} s")]
    RequestTimeout { seconds: u64 },
    /// A bug or an unexpected local failure.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The ids a store gives each answer (`x-amz-request-id`, `x-amz-id-2`),
/// passed to S3 clients so that their error reports name the store's request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreIds {
    /// `x-amz-request-id`.
    pub request_id: Option<http::HeaderValue>,
    /// `x-amz-id-2` (S3's host id).
    pub host_id: Option<http::HeaderValue>,
}

impl StoreIds {
    /// The ids of a store's error answer, from its headers or else its S3
    /// XML body (`RequestId`, `HostId`), if it gave any.
    pub fn of(headers: &http::HeaderMap, body: &[u8]) -> Option<Box<Self>> {
        let id = |header: &str, field: &str| {
            headers.get(header).cloned().or_else(|| {
                crate::xml::field(body, field)
                    .filter(|id| !id.is_empty())
                    .and_then(|id| http::HeaderValue::from_str(&id).ok())
            })
        };
        let ids = Self {
            request_id: id("x-amz-request-id", "RequestId"),
            host_id: id("x-amz-id-2", "HostId"),
        };
        (ids != Self::default()).then(|| Box::new(ids))
    }
}

/// Who is to blame for an error: decides the log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client sent something wrong.
    Client,
    /// An upstream (S3 or STS) failed.
    Upstream,
    /// The gateway itself failed.
    Internal,
}

impl Error {
    /// HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        use Error::*;
        match self {
            InvalidLocator { .. } | InvalidParameter { .. } | MalformedBody(_) => {
                StatusCode::BAD_REQUEST
            }
            BucketNotPermitted { .. }
            | AccessPointNotPermitted { .. }
            | PrefixNotPermitted { .. }
            | ReadOnly { .. }
            | Unauthenticated
            | ClientNotPermitted { .. }
            | InvalidAccessKeyId
            | SignatureDoesNotMatch
            | RequestTimeTooSkewed { .. }
            | RequestExpired => StatusCode::FORBIDDEN,
            Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            AuthorizationHeaderMalformed { .. } | AuthorizationQueryParametersError { .. } => {
                StatusCode::BAD_REQUEST
            }
            MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            MisdirectedRequest { .. } => StatusCode::MISDIRECTED_REQUEST,
            NotAPreflight => StatusCode::BAD_REQUEST,
            NoSuchRoute { .. } => StatusCode::NOT_FOUND,
            Draining => StatusCode::SERVICE_UNAVAILABLE,
            BodyTooLarge { .. } | BatchTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            UpstreamAuthFailed { .. } | UpstreamFailed { .. } | UpstreamRedirect { .. } => {
                StatusCode::BAD_GATEWAY
            }
            RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            CredentialsUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            UpstreamStatus { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code (for store errors, the store's S3 code).
    pub fn code(&self) -> &str {
        use Error::*;
        match self {
            InvalidLocator { .. } => "InvalidLocator",
            InvalidParameter { .. } => "InvalidArgument",
            MalformedBody(_) => "MalformedBody",
            BucketNotPermitted { .. } => "BucketNotPermitted",
            AccessPointNotPermitted { .. } => "AccessPointNotPermitted",
            PrefixNotPermitted { .. } => "PrefixNotPermitted",
            ReadOnly { .. } | Unauthenticated => "AccessDenied",
            Unauthorized { .. } => "Unauthorized",
            ClientNotPermitted { .. } => "ClientNotPermitted",
            InvalidAccessKeyId => "InvalidAccessKeyId",
            SignatureDoesNotMatch => "SignatureDoesNotMatch",
            RequestTimeTooSkewed { .. } => "RequestTimeTooSkewed",
            RequestExpired => "RequestExpired",
            AuthorizationHeaderMalformed { .. } => "AuthorizationHeaderMalformed",
            AuthorizationQueryParametersError { .. } => "AuthorizationQueryParametersError",
            MethodNotAllowed { .. } => "MethodNotAllowed",
            UriTooLong { .. } => "UriTooLong",
            MisdirectedRequest { .. } => "MisdirectedRequest",
            NotAPreflight => "BadRequest",
            NoSuchRoute { .. } => "NoSuchRoute",
            Draining => "Draining",
            BodyTooLarge { .. } => "RequestTooLarge",
            BatchTooLarge { .. } => "BatchTooLarge",
            UpstreamAuthFailed { .. } => "UpstreamAuthFailed",
            CredentialsUnavailable { .. } => "CredentialsUnavailable",
            UpstreamFailed { .. } => "UpstreamFailed",
            UpstreamTimeout { .. } => "UpstreamTimeout",
            UpstreamRedirect { .. } => "UpstreamRedirect",
            RequestTimeout { .. } => "RequestTimeout",
            UpstreamStatus { code, .. } => code,
            Internal(_) => "InternalError",
        }
    }

    /// The integration the error happened in, once one was resolved.
    pub fn integration(&self) -> Option<&str> {
        use Error::*;
        match self {
            PrefixNotPermitted { integration, .. }
            | UpstreamAuthFailed { integration, .. }
            | CredentialsUnavailable { integration, .. }
            | UpstreamFailed { integration, .. }
            | UpstreamStatus { integration, .. }
            | UpstreamTimeout { integration, .. }
            | UpstreamRedirect { integration, .. } => Some(integration),
            _ => None,
        }
    }

    /// Whose fault the error is.
    pub fn side(&self) -> Side {
        if matches!(self, Error::Draining) {
            return Side::Client;
        }
        match self.status().as_u16() {
            500 => Side::Internal,
            502..=504 => Side::Upstream,
            _ => Side::Client,
        }
    }

    /// The message clients see: the error's own text, except that what a
    /// store said in its error body stays in the log.
    pub fn client_message(&self) -> String {
        match self {
            Error::UpstreamStatus {
                integration,
                status,
                code,
                ..
            } => format!("integration {integration:?}: the store answered {status} {code}"),
            other => other.to_string(),
        }
    }

    /// The `{"code","message"}` object of the JSON API.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "code": self.code(), "message": self.client_message() })
    }

    /// The JSON API body: `{"error":{"code","message"}}`.
    pub fn json_body(&self) -> String {
        serde_json::json!({ "error": self.to_json() }).to_string()
    }

    /// The code S3 clients expect for this error on the S3 API.
    pub fn s3_code(&self) -> &str {
        use Error::*;
        match self {
            BucketNotPermitted { .. }
            | AccessPointNotPermitted { .. }
            | PrefixNotPermitted { .. }
            | ClientNotPermitted { .. }
            | Unauthorized { .. }
            | RequestExpired => "AccessDenied",
            InvalidLocator { .. } => "InvalidBucketName",
            NoSuchRoute { .. } => "InvalidRequest",
            UpstreamFailed { .. } | UpstreamAuthFailed { .. } | UpstreamRedirect { .. } => {
                "BadGateway"
            }
            CredentialsUnavailable { .. } => "ServiceUnavailable",
            UpstreamTimeout { .. } => "GatewayTimeout",
            other => other.code(),
        }
    }

    /// The S3 API body: `<Error><Code/><Message/><Resource/><RequestId/></Error>`.
    pub fn s3_xml_body(&self, resource: &str, request_id: &str) -> String {
        let host_id = match self {
            Error::UpstreamStatus { store_ids, .. } => store_ids
                .as_ref()
                .and_then(|ids| ids.host_id.as_ref())
                .and_then(|v| v.to_str().ok())
                .map(|id| format!("<HostId>{}</HostId>", crate::xml::escape(id))),
            _ => None,
        };
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><Resource>{}</Resource><RequestId>{}</RequestId>{}</Error>",
            crate::xml::escape(self.s3_code()),
            crate::xml::escape(&self.client_message()),
            crate::xml::escape(resource),
            crate::xml::escape(request_id),
            host_id.unwrap_or_default()
        )
    }

    /// The store's ids of its answer, for an error the store answered.
    pub fn store_ids(&self) -> Option<&StoreIds> {
        match self {
            Error::UpstreamStatus { store_ids, .. } => store_ids.as_deref(),
            _ => None,
        }
    }
}

/// An error and its sources, joined by `: `.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        message.push_str(": ");
        message.push_str(&e.to_string());
        source = e.source();
    }
    message
}
