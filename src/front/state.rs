//! What every handler reads: the integrations, metrics, CORS policy and limits.

use std::sync::Arc;
use std::time::Duration;

use super::context::RequestContext;
use super::cors::Cors;
use super::hosts::AllowedHosts;
use super::listing::ListCaps;
use super::readiness::Readiness;
use crate::auth::{clients, Authenticator};
use crate::body::Body;
use crate::cache::MediaCache;
use crate::error::Error;
use crate::locator::Locator;
use crate::metrics::Metrics;
use crate::upstream::integration::Read;
use crate::upstream::registry;
use crate::upstream::{Registry, Resolved};

/// The gateway's shared state, read by every request.
#[derive(Debug)]
pub struct State {
    /// The integrations, indexed for resolution.
    pub registry: Registry,
    /// Every metric the gateway exports.
    pub metrics: Metrics,
    /// The CORS policy.
    pub cors: Cors,
    /// Request limits.
    pub limits: Limits,
    /// Clients, URL signing keys: who may ask.
    pub auth: Authenticator,
    /// The base of gateway-signed URLs: `[server] public_url`, or the
    /// request's own scheme (this) and host.
    pub public_url: Option<String>,
    /// Whether the listener speaks TLS.
    pub tls: bool,
    /// The host names requests may name.
    pub hosts: AllowedHosts,
    /// Whether the gateway takes new work (`/readyz`).
    pub readiness: Arc<Readiness>,
    /// The media cache, when `[cache]` is configured.
    pub cache: Option<Arc<MediaCache>>,
}

impl State {
    /// Resolves `locator` for the request's caller: the integration that
    /// serves it, if the caller's scope (client and grant) covers it.
    /// Records the integration in the context either way.
    pub fn resolve(&self, ctx: &mut RequestContext, locator: &Locator) -> Result<Resolved, Error> {
        let resolved = self.registry.resolve(locator)?;
        ctx.served_by(&resolved.integration.name);
        if let Some(client) = &ctx.caller.client {
            client.check(&resolved)?;
        }
        if let Some(grant) = ctx.caller.grant() {
            if !self.grant_covers(&grant.prefix, &resolved) {
                return Err(Error::ClientNotPermitted {
                    client: ctx.caller.to_string(),
                    what: format!("{} with this grant", clients::describe(&resolved)),
                });
            }
        }
        Ok(resolved)
    }

    /// Parses and resolves a locator string, as [`resolve`](Self::resolve).
    pub fn resolve_str(&self, ctx: &mut RequestContext, locator: &str) -> Result<Resolved, Error> {
        self.resolve(ctx, &registry::parse(locator)?)
    }

    /// Parses and resolves a locator that must name an object.
    pub fn resolve_object(
        &self,
        ctx: &mut RequestContext,
        locator: &str,
    ) -> Result<Resolved, Error> {
        self.resolve(ctx, &registry::parse_object(locator)?)
    }

    /// Resolves a bucket itself (HeadBucket, GetBucketLocation) for the caller.
    pub fn resolve_bucket(
        &self,
        ctx: &mut RequestContext,
        bucket: &str,
    ) -> Result<Resolved, Error> {
        let resolved = self.registry.resolve_bucket(bucket)?;
        ctx.served_by(&resolved.integration.name);
        if let Some(client) = &ctx.caller.client {
            if !client.permits_bucket(&resolved.integration.name, bucket) {
                return Err(Error::ClientNotPermitted {
                    client: client.name.clone(),
                    what: format!("bucket {bucket:?}"),
                });
            }
        }
        Ok(resolved)
    }

    /// Reads the object `resolved` (already checked against the caller's
    /// scope): through the media cache when there is one, else from the store.
    pub async fn fetch_object(
        &self,
        resolved: &Resolved,
        read: Read<'_>,
    ) -> Result<http::Response<Body>, Error> {
        match &self.cache {
            Some(cache) => cache.serve(resolved, read).await,
            None => resolved.integration.fetch(read).await,
        }
    }

    /// Whether a grant for `prefix` covers `resolved`: same integration and
    /// bucket, and a key under the grant's.
    fn grant_covers(&self, prefix: &str, resolved: &Resolved) -> bool {
        let Ok(granted) = registry::parse(prefix).and_then(|l| self.registry.resolve(&l)) else {
            return false;
        };
        Arc::ptr_eq(&granted.integration, &resolved.integration)
            && granted.bucket == resolved.bucket
            && resolved.key.starts_with(&granted.key)
    }
}

/// Limits on what one request may ask.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most locators in one batch.
    pub max_batch: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Longest time a request body may take to arrive.
    pub body_timeout: Duration,
    /// What one `/v1/list?all=true` may cost.
    pub list_all: ListCaps,
}
