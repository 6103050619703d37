//! CORS for browser frontends: origins matched exactly (or by a configured
//! `https://*.example.com` pattern, or `*` when configured), preflights
//! answered before authentication and without any upstream call, and the
//! headers on every response, errors included.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use crate::body::{self, Body};
use crate::front::response;
use crate::origins::Origins;

/// Request headers a browser may send.
const ALLOWED_HEADERS: &str = "Range, If-None-Match, If-Match, If-Modified-Since, If-Unmodified-Since, Authorization, Content-Type, x-amz-date, x-amz-content-sha256, x-amz-security-token, x-amz-user-agent, amz-sdk-invocation-id, amz-sdk-request";
/// Methods a browser may use.
const ALLOWED_METHODS: &str = "GET, HEAD, OPTIONS, POST";
/// Response headers script may read.
const EXPOSED_HEADERS: &str =
    "Content-Length, Content-Range, Accept-Ranges, ETag, Last-Modified, x-amz-version-id, x-request-id, x-cache-status";

/// The gateway's CORS policy.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    /// Origins allowed for every route.
    pub global: Origins,
    /// `Access-Control-Max-Age` of preflights.
    pub max_age_s: u64,
    /// Answer Private Network Access preflights.
    pub allow_private_network: bool,
}

/// How a request's origin fares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No `Origin` header: not a CORS request.
    NotCors,
    /// Allowed; the value to send as `Access-Control-Allow-Origin`.
    Allowed(HeaderValue),
    /// Not allowed: no CORS headers.
    Denied,
}

impl Cors {
    /// Judges the request's `Origin` against the global origins and the
    /// origins of the integration the request is for.
    pub fn verdict(&self, headers: &HeaderMap, scoped: Option<&Origins>) -> Verdict {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Verdict::NotCors;
        };
        let Ok(text) = origin.to_str() else {
            return Verdict::Denied;
        };
        let sets = std::iter::once(&self.global).chain(scoped);
        let mut allowed = false;
        let mut any = false;
        for set in sets {
            if set.allows(text) {
                allowed = true;
                any |= set.allows_only_as_any(text);
            }
        }
        match (allowed, any) {
            (false, _) => Verdict::Denied,
            (true, true) => Verdict::Allowed(HeaderValue::from_static("*")),
            (true, false) => Verdict::Allowed(origin.clone()),
        }
    }

    /// Whether a request is a CORS preflight.
    pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        method == Method::OPTIONS
            && headers.contains_key(header::ORIGIN)
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// The answer to a preflight: 204 with the policy, or 403 without CORS
    /// headers. Either way it varies on what it judged.
    pub fn preflight(&self, headers: &HeaderMap, verdict: &Verdict) -> Response<Body> {
        let mut response = self.preflight_verdict(headers, verdict);
        response.headers_mut().insert(
            header::VARY,
            HeaderValue::from_static(
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        );
        response
    }

    fn preflight_verdict(&self, headers: &HeaderMap, verdict: &Verdict) -> Response<Body> {
        let requested = headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let Verdict::Allowed(origin) = verdict else {
            return response::text(StatusCode::FORBIDDEN, "CORS origin not allowed\n");
        };
        if !matches!(requested, "GET" | "HEAD" | "POST") {
            return response::text(StatusCode::FORBIDDEN, "CORS method not allowed\n");
        }
        let mut response = Response::new(body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOWED_METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOWED_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(self.max_age_s),
        );
        let private_network = headers
            .get("access-control-request-private-network")
            .is_some_and(|v| v == "true");
        if private_network && self.allow_private_network {
            h.insert(
                "access-control-allow-private-network",
                HeaderValue::from_static("true"),
            );
        }
        response
    }

    /// Adds the CORS headers of an actual (non-preflight) response.
    pub fn decorate(&self, response: &mut Response<Body>, verdict: &Verdict) {
        let h = response.headers_mut();
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        if let Verdict::Allowed(origin) = verdict {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED_HEADERS),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(list: &[&str]) -> Origins {
        Origins::parse(&list.iter().map(ToString::to_string).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn exact_and_wildcard_matching() {
        let o = origins(&[
            "https://app.example.com",
            "http://localhost:5173",
            "https://*.labels.io",
        ]);
        assert!(o.allows("https://app.example.com"));
        assert!(!o.allows("https://app.example.com:8443"));
        assert!(!o.allows("http://app.example.com"));
        assert!(!o.allows("https://app.example.com.evil.io"));
        assert!(!o.allows("https://evilapp.example.com"));
        assert!(o.allows("http://localhost:5173"));
        assert!(!o.allows("http://localhost:5174"));
        assert!(o.allows("https://team-1.labels.io"));
        assert!(!o.allows("https://labels.io"));
        assert!(!o.allows("https://a.b.labels.io"));
        assert!(!o.allows("http://team.labels.io"));
        assert!(!o.allows("https://x.labels.io:444"));
        assert!(!o.allows("null"));
    }

    #[test]
    fn bad_origins_are_refused() {
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://a.*.com",
            "ftp://x",
            "https://App.example.com",
            "https://*",
        ] {
            assert!(Origins::parse(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }
}
