//! The registry of integrations and locator resolution.
//!
//! A locator's bucket goes to the integration scoped to that bucket; else to the
//! default integration if the bucket is in its permitted list; else it is
//! refused with no upstream call. Access point ARNs go to the integration that
//! configures that access point. Keys must lie under the integration's
//! `prefixes` when it sets any.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::config::{Config, ConfigError, Delivery, IntegrationConfig};
use crate::cors::Origins;
use crate::credentials::{CredentialSource, Sessions, SourcesBuilder};
use crate::endpoint::{Address, Endpoint, Origin, View};
use crate::error::Error;
use crate::locator::{AccessPointArn, Locator, Target};
use crate::metrics::Metrics;
use crate::sigv4::Credentials;
use crate::upstream::Upstream;

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
    /// How `/v1/object` delivers.
    pub delivery: Delivery,
    /// Where its credentials come from.
    pub credentials: CredentialSource,
    sessions: Arc<Sessions>,
    /// The pooled client that reaches its store.
    pub upstream: Arc<Upstream>,
    /// Browser origins allowed for its objects (beside the global ones).
    pub origins: Origins,
    /// Signing-time window for cache-stable presigned URLs.
    pub presign_window_s: Option<u64>,
}

impl Integration {
    fn from_config(
        config: &IntegrationConfig,
        credentials: CredentialSource,
        sessions: Arc<Sessions>,
        upstream: Arc<Upstream>,
    ) -> Result<Self, ConfigError> {
        let ctx = config.context();
        let invalid = |field, message: String| ConfigError::Invalid {
            context: ctx.clone(),
            field,
            message,
        };
        let endpoint = if let Some(arn) = &config.access_point_arn {
            Endpoint::access_point(
                &AccessPointArn::parse(arn).map_err(|m| invalid("access_point_arn", m))?,
            )
        } else if let Some(url) = &config.endpoint_url {
            let dial = Origin::parse(url).map_err(|m| invalid("endpoint_url", m))?;
            let public = config
                .public_endpoint_url
                .as_deref()
                .map(Origin::parse)
                .transpose()
                .map_err(|m| invalid("public_endpoint_url", m))?;
            Endpoint::custom(dial, public, config.force_path_style.unwrap_or(true))
        } else {
            Endpoint::aws(&config.region, config.force_path_style.unwrap_or(false))
        };
        Ok(Self {
            name: config.name.clone(),
            region: config.region.clone(),
            endpoint,
            prefixes: config.prefixes.clone(),
            presign_ttl_s: config.presign_ttl_s,
            delivery: config.delivery,
            credentials,
            sessions,
            upstream,
            origins: Origins::parse(&config.allowed_origins)
                .map_err(|m| invalid("allowed_origins", m))?,
            presign_window_s: config.presign_window_s,
        })
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
    pub fn expiry_margin(&self) -> std::time::Duration {
        match self.credentials {
            CredentialSource::Static(_) => std::time::Duration::ZERO,
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
}

/// A locator resolved to its integration.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The integration that serves it.
    pub integration: Arc<Integration>,
    /// Bucket name (empty for access points).
    pub bucket: String,
    /// Object key or listing prefix.
    pub key: String,
    /// Object version, when the locator named one.
    pub version_id: Option<String>,
}

impl Resolved {
    /// Upstream address of the object.
    pub fn address(&self, view: View) -> Address {
        self.integration
            .endpoint
            .object(&self.bucket, &self.key, view)
    }
}

/// Every integration, indexed for resolution.
#[derive(Debug, Default)]
pub struct Registry {
    integrations: Vec<Arc<Integration>>,
    scoped: HashMap<String, Arc<Integration>>,
    default: Option<(Arc<Integration>, HashSet<String>)>,
    access_points: HashMap<AccessPointArn, Arc<Integration>>,
}

impl Registry {
    /// Builds the registry from a validated config. Nothing is fetched yet:
    /// sessions are assumed on first use.
    pub async fn from_config(config: &Config, metrics: &Metrics) -> Result<Self, ConfigError> {
        let mut sources = SourcesBuilder::new(config)?;
        let mut built = Vec::with_capacity(config.integrations.len());
        for ic in &config.integrations {
            built.push(sources.source(ic).await?);
        }
        let sessions = sources.finish(metrics.clone());
        let shared = Arc::new(upstream_client(config, None)?);
        let mut registry = Registry::default();
        for (ic, source) in config.integrations.iter().zip(built) {
            let upstream = match &ic.ca_file {
                Some(_) => Arc::new(upstream_client(config, Some(ic))?),
                None => shared.clone(),
            };
            let integration = Integration::from_config(ic, source, sessions.clone(), upstream)?;
            let integration = Arc::new(integration);
            if ic.default {
                let buckets = ic.buckets.iter().cloned().collect();
                registry.default = Some((integration.clone(), buckets));
            } else {
                for bucket in ic.scoped_buckets() {
                    registry
                        .scoped
                        .insert(bucket.to_owned(), integration.clone());
                }
            }
            if let Some(arn) = &ic.access_point_arn {
                let arn = AccessPointArn::parse(arn).expect("validated");
                registry.access_points.insert(arn, integration.clone());
            }
            registry.integrations.push(integration);
        }
        Ok(registry)
    }

    /// Whether any integration allows origins of its own.
    pub fn has_scoped_origins(&self) -> bool {
        self.integrations.iter().any(|i| !i.origins.is_empty())
    }

    /// All integrations, in config order.
    pub fn integrations(&self) -> &[Arc<Integration>] {
        &self.integrations
    }

    /// Parses a locator that must name an object, and resolves it.
    pub fn resolve_object(&self, locator: &str) -> Result<Resolved, Error> {
        let parsed = Locator::parse(locator).map_err(|reason| Error::InvalidLocator {
            locator: locator.to_owned(),
            reason,
        })?;
        if parsed.key.is_empty() {
            return Err(Error::InvalidLocator {
                locator: locator.to_owned(),
                reason: "names a bucket, not an object".into(),
            });
        }
        self.resolve(&parsed)
    }

    /// The integration serving `locator`, or why none may.
    pub fn resolve(&self, locator: &Locator) -> Result<Resolved, Error> {
        let (integration, bucket) = match &locator.target {
            Target::Bucket(bucket) => (self.for_bucket(bucket)?, bucket.clone()),
            Target::AccessPoint(arn) => {
                let integration =
                    self.access_points
                        .get(arn)
                        .ok_or_else(|| Error::AccessPointNotPermitted {
                            arn: arn.to_string(),
                        })?;
                (integration.clone(), String::new())
            }
        };
        if let Some(host) = &locator.custom_host {
            if !integration.endpoint.serves_host(host) {
                return Err(Error::InvalidLocator {
                    locator: format!("{host}/{bucket}"),
                    reason: format!(
                        "host {host:?} is not the endpoint of integration {:?}",
                        integration.name
                    ),
                });
            }
        }
        if !integration.permits_key(&locator.key) {
            return Err(Error::PrefixNotPermitted {
                integration: integration.name.clone(),
                bucket,
                key: locator.key.clone(),
            });
        }
        Ok(Resolved {
            integration,
            bucket,
            key: locator.key.clone(),
            version_id: locator.version_id.clone(),
        })
    }

    /// The integration serving `bucket`, whatever the key.
    pub fn for_bucket(&self, bucket: &str) -> Result<Arc<Integration>, Error> {
        if let Some(integration) = self.scoped.get(bucket) {
            return Ok(integration.clone());
        }
        match &self.default {
            Some((integration, permitted)) if permitted.contains(bucket) => Ok(integration.clone()),
            _ => Err(Error::BucketNotPermitted {
                bucket: bucket.to_owned(),
            }),
        }
    }
}

/// The upstream client for `integration`'s `ca_file`, or the shared one.
fn upstream_client(
    config: &Config,
    integration: Option<&IntegrationConfig>,
) -> Result<Upstream, ConfigError> {
    let ca_file = integration.and_then(|i| i.ca_file.as_deref());
    Upstream::new(&config.upstream, ca_file).map_err(|message| ConfigError::Invalid {
        context: integration.map_or_else(|| "[upstream]".to_owned(), IntegrationConfig::context),
        field: "ca_file",
        message,
    })
}
