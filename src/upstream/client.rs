//! The pooled HTTP client that talks to the stores.
//!
//! HTTP/1.1 and HTTP/2 over rustls (webpki roots, plus an integration's
//! `ca_file` for a private CA), keep-alive, TCP_NODELAY, a connect timeout and
//! a timeout until the response headers arrive. Bodies stream, nothing is
//! buffered whole.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::UpstreamConfig;
use crate::error::Error;
use crate::xml;

/// A pooled client for one trust configuration.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    header_timeout: Duration,
    /// Longest silence of a store in the middle of a body.
    pub body_idle_timeout: Duration,
}

impl Upstream {
    /// A client trusting the webpki roots and, if given, the CAs in `ca_file`.
    pub fn new(config: &UpstreamConfig, ca_file: Option<&Path>) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = ca_file {
            add_pem_roots(&mut roots, path)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_millis(config.connect_timeout_ms)));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(config.pool_idle_timeout_s))
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .build(https);
        Ok(Self {
            client,
            header_timeout: Duration::from_secs(config.header_timeout_s),
            body_idle_timeout: Duration::from_secs(config.body_idle_timeout_s),
        })
    }

    /// Sends `request`; fails with 502 when the store cannot be reached or
    /// answers with a redirect, and 504 when its response headers do not
    /// arrive in time.
    pub async fn send(
        &self,
        request: Request<Empty<Bytes>>,
        integration: &str,
    ) -> Result<Response<Incoming>, Error> {
        let response =
            match tokio::time::timeout(self.header_timeout, self.client.request(request)).await {
                Ok(Ok(response)) => response,
                Ok(Err(e)) => {
                    return Err(Error::UpstreamFailed {
                        integration: integration.to_owned(),
                        reason: format!("cannot reach the store: {}", crate::error::chain(&e)),
                    })
                }
                Err(_) => {
                    return Err(Error::UpstreamTimeout {
                        integration: integration.to_owned(),
                        seconds: self.header_timeout.as_secs(),
                    })
                }
            };
        let status = response.status();
        if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
            return Err(self.error(integration, response).await);
        }
        Ok(response)
    }

    /// A store's error (status ≥ 400) or redirect as an [`Error`]: an error
    /// keeps its status, with the S3 `Code` and `Message` when the body
    /// carries them (read within the header timeout and a size limit).
    pub async fn error(&self, integration: &str, response: Response<Incoming>) -> Error {
        let status = response.status();
        let bucket_region = response
            .headers()
            .get("x-amz-bucket-region")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let content_range = response.headers().get(header::CONTENT_RANGE).cloned();
        let headers = response.headers().clone();
        let body = Limited::new(response.into_body(), ERROR_BODY_LIMIT).collect();
        let body = match tokio::time::timeout(self.header_timeout, body).await {
            Ok(Ok(collected)) => collected.to_bytes(),
            _ => Bytes::new(),
        };
        let store_ids = crate::error::StoreIds::of(&headers, &body);
        let code = xml::field(&body, "Code").unwrap_or_else(|| {
            let reason = status.canonical_reason().unwrap_or("Error");
            reason.replace(' ', "")
        });
        if status.is_redirection() {
            let hint = match bucket_region {
                Some(region) => format!(
                    "; the bucket is in region {region}: set the integration's `region` to it"
                ),
                None => "; check the integration's `region` and `endpoint_url`".to_owned(),
            };
            return Error::UpstreamRedirect {
                integration: integration.to_owned(),
                status: status.as_u16(),
                code,
                hint,
            };
        }
        Error::UpstreamStatus {
            integration: integration.to_owned(),
            status: status.as_u16(),
            code,
            message: xml::field(&body, "Message").unwrap_or_default(),
            content_range,
            store_ids,
        }
    }
}

/// Largest store error body read to report its code.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

fn add_pem_roots(roots: &mut rustls::RootCertStore, path: &Path) -> Result<(), String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        added += 1;
    }
    if added == 0 {
        return Err(format!("{}: no certificate found", path.display()));
    }
    Ok(())
}
