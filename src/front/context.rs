//! The request context: what one request is, decided once when it arrives,
//! and what its handler records for the access log and metrics.

use std::time::Instant;

use http::Method;

pub use crate::auth::Caller;

/// Which API a request speaks, and so how its errors are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `/v1/*`, `/healthz`, `/readyz`, `/metrics`: JSON errors.
    Json,
    /// Everything else: the S3-compatible front, S3 XML errors.
    S3,
}

/// The routes of the JSON API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonRoute {
    /// `/healthz`.
    Healthz,
    /// `/readyz`: 200 while serving, 503 while draining.
    Readyz,
    /// `/metrics`.
    Metrics,
    /// `/v1/presign`.
    Presign,
    /// `/v1/object`.
    Object,
    /// `/v1/list`.
    List,
    /// `/v1/grant`.
    Grant,
    /// Any other path under `/v1`.
    Unknown,
}

/// Where a request goes, decided once from its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A route of the JSON API.
    Json(JsonRoute),
    /// The S3-compatible front.
    S3,
}

impl Route {
    /// The route of `path`. The JSON API's names are reserved wholly: any
    /// path under them, however encoded, is the JSON API's (and unknown
    /// there), never a bucket of the S3 front.
    pub fn of(path: &str) -> Self {
        Route::Json(match path {
            "/healthz" => JsonRoute::Healthz,
            "/readyz" => JsonRoute::Readyz,
            "/metrics" => JsonRoute::Metrics,
            "/v1/presign" => JsonRoute::Presign,
            "/v1/object" => JsonRoute::Object,
            "/v1/list" => JsonRoute::List,
            "/v1/grant" => JsonRoute::Grant,
            p if is_reserved(p) => JsonRoute::Unknown,
            _ => return Route::S3,
        })
    }

    /// The API the route belongs to.
    pub fn api(self) -> Api {
        match self {
            Route::Json(_) => Api::Json,
            Route::S3 => Api::S3,
        }
    }

    /// The route's name in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Route::Json(JsonRoute::Healthz) => "healthz",
            Route::Json(JsonRoute::Readyz) => "readyz",
            Route::Json(JsonRoute::Metrics) => "metrics",
            Route::Json(JsonRoute::Presign) => "presign",
            Route::Json(JsonRoute::Object) => "object",
            Route::Json(JsonRoute::List) => "list",
            Route::Json(JsonRoute::Grant) => "grant",
            Route::Json(JsonRoute::Unknown) => "unknown",
            Route::S3 => "s3",
        }
    }
}

/// Paths the JSON API reserves, with everything under them.
const RESERVED: &[&str] = &["/v1", "/healthz", "/readyz", "/metrics"];

/// Whether `path`, raw or percent-decoded (in any case), lies under a reserved name.
fn is_reserved(path: &str) -> bool {
    let under = |p: &str| {
        RESERVED.iter().any(|name| {
            p.get(..name.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(name))
                && matches!(p.as_bytes().get(name.len()), None | Some(b'/'))
        })
    };
    under(path)
        || (path.contains('%')
            && crate::locator::percent_decode(path).is_ok_and(|decoded| under(&decoded)))
}

/// One request as every phase sees it.
#[derive(Debug)]
pub struct RequestContext {
    /// Request id, also sent as `x-request-id`.
    pub id: u64,
    /// When the request arrived.
    pub start: Instant,
    /// Its method.
    pub method: Method,
    /// Its path (no query: queries may carry signatures).
    pub path: String,
    /// Where it goes.
    pub route: Route,
    /// Who sent it.
    pub caller: Caller,
    integration: Option<String>,
}

impl RequestContext {
    /// The context of a request that just arrived.
    pub fn new(id: u64, method: Method, path: &str) -> Self {
        Self {
            id,
            start: Instant::now(),
            method,
            path: path.to_owned(),
            route: Route::of(path),
            caller: Caller::anonymous(),
            integration: None,
        }
    }

    /// Records the integration that serves the request.
    pub fn served_by(&mut self, integration: &str) {
        if self.integration.as_deref() != Some(integration) {
            self.integration = Some(integration.to_owned());
        }
    }

    /// Takes the integration's name, for the access line.
    pub fn take_integration(&mut self) -> Option<String> {
        self.integration.take()
    }

    /// The integration that served (or failed) the request, once known.
    pub fn integration(&self) -> Option<&str> {
        self.integration.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_decided_by_path_alone() {
        assert_eq!(Route::of("/v1/presign"), Route::Json(JsonRoute::Presign));
        assert_eq!(Route::of("/v1"), Route::Json(JsonRoute::Unknown));
        assert_eq!(Route::of("/v1/nope"), Route::Json(JsonRoute::Unknown));
        assert_eq!(Route::of("/v1x/key"), Route::S3);
        for reserved in [
            "/healthz/",
            "/healthz/x",
            "/v1%2Fpresign",
            "/%76%31/x",
            "/METRICS",
            "/readyz/x",
            "/READYZ",
        ] {
            assert_eq!(
                Route::of(reserved),
                Route::Json(JsonRoute::Unknown),
                "{reserved}"
            );
        }
        assert_eq!(Route::of("/healthzx/k"), Route::S3);
        assert_eq!(Route::of("/v1%2Fpresign").label(), "unknown");
        assert_eq!(Route::of("/media/k").api(), Api::S3);
        assert_eq!(Route::of("/metrics").label(), "metrics");
        assert_eq!(Route::of("/readyz"), Route::Json(JsonRoute::Readyz));
        assert_eq!(Route::of("/readyz").label(), "readyz");
    }
}
