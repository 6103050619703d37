//! One integration: a customer's store, ready to sign for. It owns what a
//! signed read needs (endpoint, region, credentials, pooled client) and
//! performs every read the gateway makes of that store.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use http_body_util::Empty;
use hyper::body::Incoming;

use super::client::Upstream;
use super::endpoint::{Address, Endpoint};
use super::stream;
use crate::body::Body;
use crate::config::{Delivery, IntegrationConfig};
use crate::credentials::{CredentialSource, Sessions};
use crate::error::Error;
use crate::metrics::{status_class, Metrics};
use crate::origins::Origins;
use crate::sigv4::{self, canonical, Credentials, SigningRequest};

/// Request headers a client may send that are forwarded to the store.
pub const FORWARDED_REQUEST_HEADERS: [HeaderName; 5] = [
    header::RANGE,
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_UNMODIFIED_SINCE,
];

/// Request headers a client may send that are forwarded to the store and
/// signed (S3 refuses `x-amz-*` headers a signature does not cover): checksum
/// mode, SSE-C (the customer's key, forwarded, never logged), requester pays.
pub static SIGNED_REQUEST_HEADERS: [HeaderName; 5] = [
    HeaderName::from_static("x-amz-checksum-mode"),
    HeaderName::from_static("x-amz-request-payer"),
    HeaderName::from_static("x-amz-server-side-encryption-customer-algorithm"),
    HeaderName::from_static("x-amz-server-side-encryption-customer-key"),
    HeaderName::from_static("x-amz-server-side-encryption-customer-key-md5"),
];

/// One customer store, ready to sign for.
#[derive(Debug)]
pub struct Integration {
    /// Name from the config.
    pub name: String,
    /// Signing region.
    pub region: String,
    /// Addressing of its objects.
    pub endpoint: Endpoint,
    /// Permitted key prefixes; empty permits every key.
    pub prefixes: Vec<String>,
    /// Default presigned URL lifetime.
    pub presign_ttl_s: u64,
    /// Longest presigned URL lifetime; longer asks are capped.
    pub presign_max_ttl_s: u64,
    /// Serve objects stored as active types inline.
    pub allow_active_content: bool,
    /// How `/v1/object` delivers.
    pub delivery: Delivery,
    /// Browser origins allowed for its objects (beside the global ones).
    pub origins: Origins,
    /// Signing-time window for cache-stable presigned URLs.
    pub presign_window_s: Option<u64>,
    /// Its objects may be kept in the media cache.
    pub cache: bool,
    /// Its own revalidation interval of cached objects.
    pub cache_revalidate_after: Option<Duration>,
    credentials: CredentialSource,
    sessions: Arc<Sessions>,
    client: Arc<Upstream>,
    metrics: Metrics,
}

/// One read of a store: what is signed and sent.
#[derive(Debug)]
pub struct Read<'a> {
    /// `GET` or `HEAD`.
    pub method: Method,
    /// Where.
    pub address: Address,
    /// Query parameters (S3's names), signed in this order.
    pub query: Vec<(&'a str, &'a str)>,
    /// The client's headers, of which the range, conditional and
    /// [`SIGNED_REQUEST_HEADERS`] ones are forwarded.
    pub client_headers: Option<&'a HeaderMap>,
}

impl Integration {
    /// The integration of `config`, signing with `credentials` and reaching
    /// its store through `client`.
    pub fn new(
        config: IntegrationConfig,
        credentials: CredentialSource,
        sessions: Arc<Sessions>,
        client: Arc<Upstream>,
        metrics: Metrics,
    ) -> Self {
        Self {
            name: config.name,
            region: config.region,
            endpoint: config.endpoint,
            prefixes: config.prefixes,
            presign_ttl_s: config.presign_ttl_s,
            presign_max_ttl_s: config.presign_max_ttl_s,
            allow_active_content: config.allow_active_content,
            delivery: config.delivery,
            origins: config.origins,
            presign_window_s: config.presign_window_s,
            cache: config.cache,
            cache_revalidate_after: config.cache_revalidate_after_s.map(Duration::from_secs),
            credentials,
            sessions,
            client,
            metrics,
        }
    }

    /// The lifetime of a URL asked to live `requested` seconds (the default
    /// when `None`): 1 s to 7 days is asked, `presign_max_ttl_s` is given.
    pub fn lifetime(&self, requested: Option<u64>) -> Result<u64, Error> {
        let requested = requested.unwrap_or(self.presign_ttl_s);
        crate::presign::check_requested(requested)?;
        Ok(requested.min(self.presign_max_ttl_s))
    }

    /// Whether `key` lies under one of the permitted prefixes.
    pub fn permits_key(&self, key: &str) -> bool {
        self.prefixes.is_empty() || self.prefixes.iter().any(|p| key.starts_with(p.as_str()))
    }

    /// Current signing credentials.
    pub async fn credentials(&self) -> Result<Arc<Credentials>, Error> {
        self.credentials.get(&self.sessions, &self.name).await
    }

    /// How long before their expiry its credentials stop being used.
    pub fn expiry_margin(&self) -> Duration {
        match self.credentials {
            CredentialSource::Static(_) => Duration::ZERO,
            CredentialSource::Role(_) => self.sessions.expiry_margin(),
        }
    }

    /// Seconds until its session credentials expire (roles that have fetched one).
    pub fn credentials_seconds_left(&self) -> Option<f64> {
        match &self.credentials {
            CredentialSource::Static(_) => None,
            CredentialSource::Role(role) => self.sessions.seconds_left(role),
        }
    }

    /// Longest silence of its store in the middle of a body.
    pub fn body_idle_timeout(&self) -> Duration {
        self.client.body_idle_timeout
    }

    /// Signs and sends `read`. The store's error (status ≥ 400) or redirect
    /// is an [`Error`] that keeps its status and S3 code.
    pub async fn read(&self, read: Read<'_>) -> Result<Response<Incoming>, Error> {
        let credentials = self.credentials().await?;
        let request = self.signed_request(&credentials, read)?;
        let started = std::time::Instant::now();
        let sent = self.client.send(request, &self.name).await;
        let class = sent
            .as_ref()
            .map_or("error", |r| status_class(r.status().as_u16()));
        let name = [self.name.as_str()];
        self.metrics
            .upstream_duration
            .with_label_values(&name)
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .upstream_requests
            .with_label_values(&[&self.name, class])
            .inc();
        let response = sent?;
        if response.status().as_u16() >= 400 {
            return Err(self.client.error(&self.name, response).await);
        }
        Ok(response)
    }

    /// Signs and sends `read`, and streams the store's answer back as the
    /// client's response: same status, allowlisted headers, body with backpressure.
    pub async fn fetch(&self, read: Read<'_>) -> Result<Response<Body>, Error> {
        let upstream = self.read(read).await?;
        Ok(stream::pass_through(upstream, self.body_idle_timeout()))
    }

    /// `read` signed in headers with `UNSIGNED-PAYLOAD`, as of now.
    fn signed_request(
        &self,
        credentials: &Credentials,
        read: Read<'_>,
    ) -> Result<Request<Empty<bytes::Bytes>>, Error> {
        let address = &read.address;
        let signing = SigningRequest {
            method: read.method.as_str(),
            host: &address.host,
            path: &address.path,
            query: &read.query,
            region: &self.region,
            service: "s3",
            time: SystemTime::now(),
        };
        let extra = signed_client_headers(read.client_headers)?;
        let to_sign: Vec<(&str, &str)> = extra
            .iter()
            .map(|(name, value)| (name.as_str(), *value))
            .collect();
        let signed = sigv4::sign_headers_with(credentials, &signing, &to_sign);
        let mut headers = HeaderMap::with_capacity(FORWARDED_REQUEST_HEADERS.len() + 10);
        if let Some(client) = read.client_headers {
            for name in FORWARDED_REQUEST_HEADERS {
                if let Some(value) = client.get(&name) {
                    headers.insert(name, value.clone());
                }
            }
        }
        for (name, value) in &extra {
            headers.insert((*name).clone(), header_value(value)?);
        }
        headers.insert(header::HOST, header_value(&address.host)?);
        headers.insert("x-amz-date", header_value(&signed.amz_date)?);
        headers.insert(
            "x-amz-content-sha256",
            HeaderValue::from_static(signed.content_sha256),
        );
        if let Some(token) = &signed.security_token {
            headers.insert("x-amz-security-token", header_value(token)?);
        }
        headers.insert(header::AUTHORIZATION, header_value(&signed.authorization)?);
        let uri = address.url(&canonical::query_string(&read.query));
        let mut request = Request::builder()
            .method(read.method)
            .uri(uri)
            .body(Empty::new())
            .map_err(|e| Error::Internal(format!("cannot build the upstream request: {e}")))?;
        *request.headers_mut() = headers;
        Ok(request)
    }
}

/// The client's [`SIGNED_REQUEST_HEADERS`], as (lowercase name, value) pairs to sign.
fn signed_client_headers(
    client: Option<&HeaderMap>,
) -> Result<Vec<(&'static HeaderName, &str)>, Error> {
    let Some(client) = client else {
        return Ok(Vec::new());
    };
    let mut extra = Vec::new();
    for name in &SIGNED_REQUEST_HEADERS {
        if let Some(value) = client.get(name) {
            let value = value.to_str().map_err(|_| Error::InvalidParameter {
                name: "header",
                reason: format!("{name} is not visible ASCII"),
            })?;
            extra.push((name, value));
        }
    }
    Ok(extra)
}

fn header_value(value: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(value).map_err(|_| Error::Internal("invalid header value".into()))
}
