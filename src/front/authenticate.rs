//! The authentication phase: which credential each route takes, and the
//! caller it proves. Runs before any handler; the scope of the caller is
//! checked where locators are resolved ([`State::resolve`]).

use std::time::SystemTime;

use http::{Method, Request};

use super::context::{JsonRoute, RequestContext, Route};
use super::query::Query;
use super::state::State;
use crate::auth::url_signature::SignedObject;
use crate::auth::{Caller, Via};
use crate::error::Error;

/// The listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The gateway's listener: every route.
    Main,
    /// `[server] metrics_listen`: `/metrics`, `/healthz` and `/readyz` only, unauthenticated.
    Metrics,
}

/// The caller of `request`, or why it may not ask.
pub fn authenticate<B>(
    state: &State,
    ctx: &RequestContext,
    request: &Request<B>,
    listener: Listener,
) -> Result<Caller, Error> {
    let now = SystemTime::now();
    match ctx.route {
        Route::S3 if listener == Listener::Metrics => Err(no_route(ctx)),
        // A write is refused as one whatever its signature claims: the
        // verifier only knows the payloads of GET and HEAD.
        Route::S3 if !matches!(*request.method(), Method::GET | Method::HEAD) => {
            Err(Error::MethodNotAllowed {
                method: request.method().to_string(),
                allowed: "GET, HEAD",
            })
        }
        Route::S3 => state
            .auth
            .s3(request.method(), request.uri(), request.headers(), now),
        Route::Json(route) => json(state, ctx, route, request, listener, unix(now)),
    }
}

fn json<B>(
    state: &State,
    ctx: &RequestContext,
    route: JsonRoute,
    request: &Request<B>,
    listener: Listener,
    now: u64,
) -> Result<Caller, Error> {
    let auth = &state.auth;
    match route {
        JsonRoute::Healthz | JsonRoute::Readyz => return Ok(Caller::anonymous()),
        _ if listener == Listener::Metrics && route != JsonRoute::Metrics => {
            return Err(no_route(ctx))
        }
        JsonRoute::Unknown => return Ok(Caller::anonymous()),
        JsonRoute::Metrics if listener == Listener::Metrics || auth.json_anonymous() => {
            return Ok(Caller::anonymous())
        }
        _ => {}
    }
    let mut caller = auth.bearer(request.headers(), now)?;
    if caller.is_none() {
        caller = from_query(state, route, request, now)?;
    }
    let caller = match caller {
        Some(caller) => caller,
        None if auth.json_anonymous() => Caller::anonymous(),
        None => return Err(Error::Unauthorized {
            reason:
                "this request needs `Authorization: Bearer TOKEN`, a grant or a gateway-signed URL",
        }),
    };
    let refused = |what: &str| Error::ClientNotPermitted {
        client: caller.to_string(),
        what: what.to_owned(),
    };
    match route {
        JsonRoute::Metrics
            if caller.via != Via::Token || !caller.client.as_ref().is_some_and(|c| c.metrics) =>
        {
            Err(refused("/metrics"))
        }
        JsonRoute::Grant if caller.grant().is_some() => {
            Err(refused("grants: a grant cannot issue grants"))
        }
        _ => Ok(caller),
    }
}

/// A grant in `grant=`, or on `/v1/object` a gateway signature.
fn from_query<B>(
    state: &State,
    route: JsonRoute,
    request: &Request<B>,
    now: u64,
) -> Result<Option<Caller>, Error> {
    let raw = request.uri().query().unwrap_or_default();
    if !raw.contains("grant=") && !raw.contains("sig=") {
        return Ok(None);
    }
    let query = Query::parse(Some(raw))?;
    if let Some(grant) = query.get("grant") {
        if route != JsonRoute::Grant {
            return state.auth.grant(grant, now).map(Some);
        }
    }
    match (route, query.get("sig")) {
        (JsonRoute::Object, Some(sig)) => signed_object(state, request.method(), &query, sig, now),
        _ => Ok(None),
    }
}

/// Verifies a gateway-signed `/v1/object` URL.
fn signed_object(
    state: &State,
    method: &Method,
    query: &Query,
    sig: &str,
    now: u64,
) -> Result<Option<Caller>, Error> {
    let expires_at = query
        .require("expires")?
        .parse()
        .map_err(|_| Error::InvalidParameter {
            name: "expires",
            reason: "must be the unix time the signed URL expires at".into(),
        })?;
    let url = SignedObject {
        method: method.as_str(),
        client: query.get("client").unwrap_or_default(),
        locator: query.require("locator")?,
        expires_at,
        content_type: query.get("response-content-type"),
        content_disposition: query.get("response-content-disposition"),
        version_id: query.get("version_id"),
    };
    let kid = query.require("kid")?;
    state.auth.signed_object(&url, kid, sig, now).map(Some)
}

fn no_route(ctx: &RequestContext) -> Error {
    Error::NoSuchRoute {
        path: ctx.path.clone(),
    }
}

/// Seconds since the epoch.
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
