//! An S3-compatible store on a local folder (the `s3s` and `s3s-fs` crates),
//! for `s3gate demo` and the tests. SigV4 is verified on every request, header
//! and presigned alike.
//!
//! Buckets are the folder's subfolders and objects its files. Like S3, it
//! honours the `response-*` overrides of signed GETs. An optional gate
//! sees each request before the store does (the tests use it to enforce session
//! tokens), and every request is counted.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use s3s::auth::S3Auth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use s3s::auth::SimpleAuth;

/// Decides whether a request may reach the store; `Err` is answered `403 AccessDenied`.
pub type Gate = Arc<
    dyn Fn(&http::request::Parts) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// A running embedded store; stops when dropped.
pub struct EmbeddedStore {
    addr: std::net::SocketAddr,
    requests: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("addr", &self.addr)
            .finish()
    }
}

impl EmbeddedStore {
    /// Serves the folder `root` on `listener`, verifying signatures with `auth`.
    pub fn start(
        listener: TcpListener,
        root: &Path,
        auth: impl S3Auth,
        gate: Option<Gate>,
    ) -> std::io::Result<Self> {
        let fs =
            s3s_fs::FileSystem::new(root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        Self::start_backend(listener, fs, auth, gate)
    }

    /// Serves any `s3s` backend on `listener`, verifying signatures with `auth`.
    pub fn start_backend(
        listener: TcpListener,
        backend: impl s3s::S3,
        auth: impl S3Auth,
        gate: Option<Gate>,
    ) -> std::io::Result<Self> {
        let mut builder = S3ServiceBuilder::new(backend);
        builder.set_auth(auth);
        let service = builder.build();
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(accept_loop(
            listener,
            service,
            gate,
            requests.clone(),
            stopped,
        ));
        Ok(Self {
            addr,
            requests,
            stop,
        })
    }

    /// Address the store listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far (gated ones included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    service: S3Service,
    gate: Option<Gate>,
    requests: Arc<AtomicU64>,
    mut stopped: watch::Receiver<bool>,
) {
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            _ = stopped.changed() => return,
        };
        // Without TCP_NODELAY small responses stall on delayed ACKs.
        let _ = stream.set_nodelay(true);
        let (service, gate, requests, builder) = (
            service.clone(),
            gate.clone(),
            requests.clone(),
            builder.clone(),
        );
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let handler = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                requests.fetch_add(1, Ordering::SeqCst);
                let service = service.clone();
                let gate = gate.clone();
                async move { handle(service, gate, request).await }
            });
            let connection = builder.serve_connection(TokioIo::new(stream), handler);
            tokio::select! {
                _ = connection => {}
                _ = stopped.changed() => {}
            }
        });
    }
}

async fn handle(
    service: S3Service,
    gate: Option<Gate>,
    request: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<s3s::Body>, s3s::HttpError> {
    let (parts, body) = request.into_parts();
    if let Some(gate) = gate {
        if let Err(reason) = gate(&parts).await {
            return Ok(access_denied(&reason));
        }
    }
    let overrides = response_overrides(parts.uri.query());
    let mut response = service
        .call(http::Request::from_parts(parts, s3s::Body::from(body)))
        .await?;
    if response.status().is_success() {
        for (name, value) in overrides {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}

/// The `response-*` query parameters of a GET, as the headers S3 answers with.
fn response_overrides(query: Option<&str>) -> Vec<(http::HeaderName, http::HeaderValue)> {
    use http::header;
    let Some(query) = query else {
        return Vec::new();
    };
    form_urlencoded::parse(query.as_bytes())
        .filter_map(|(name, value)| {
            let header = match name.as_ref() {
                "response-cache-control" => header::CACHE_CONTROL,
                "response-content-type" => header::CONTENT_TYPE,
                "response-content-disposition" => header::CONTENT_DISPOSITION,
                "response-content-language" => header::CONTENT_LANGUAGE,
                "response-content-encoding" => header::CONTENT_ENCODING,
                "response-expires" => header::EXPIRES,
                _ => return None,
            };
            Some((header, http::HeaderValue::from_str(&value).ok()?))
        })
        .collect()
}

fn access_denied(reason: &str) -> http::Response<s3s::Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>{}</Message></Error>",
        reason.replace('&', "&amp;").replace('<', "&lt;")
    );
    let mut response = http::Response::new(s3s::Body::from(xml));
    *response.status_mut() = http::StatusCode::FORBIDDEN;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    response
}
