//! The registry of integrations and locator resolution.
//!
//! A locator's bucket goes to the integration scoped to that bucket; else to the
//! default integration if the bucket is in its permitted list; else it is
//! refused with no upstream call. Access point ARNs go to the integration that
//! configures that access point. Keys must lie under the integration's
//! `prefixes` when it sets any.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::client::Upstream;
use super::endpoint::{Address, View};
use super::integration::Integration;
use crate::config::{ConfigError, IntegrationConfig, Keys, Scope, StsConfig, UpstreamConfig};
use crate::credentials::{Sessions, SourcesBuilder};
use crate::error::Error;
use crate::locator::{AccessPointArn, Locator, Target};
use crate::metrics::Metrics;

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
    /// Upstream address of the object (or, with an empty key, of the bucket).
    pub fn address(&self, view: View) -> Address {
        self.integration
            .endpoint
            .object(&self.bucket, &self.key, view)
    }

    /// Upstream address of the bucket (or access point) itself, for listings.
    pub fn bucket_address(&self) -> Address {
        self.integration
            .endpoint
            .object(&self.bucket, "", View::Dial)
    }
}

/// Every integration, indexed for resolution.
#[derive(Debug, Default)]
pub struct Registry {
    integrations: Vec<Arc<Integration>>,
    scoped: HashMap<String, Arc<Integration>>,
    default: Option<(Arc<Integration>, HashSet<String>)>,
    access_points: HashMap<AccessPointArn, Arc<Integration>>,
    sessions: Option<Arc<Sessions>>,
}

/// What the registry is built from: the config's integrations and what
/// they share.
#[derive(Debug)]
pub struct RegistryConfig<'a> {
    /// The integrations, in config order.
    pub integrations: Vec<IntegrationConfig>,
    /// The gateway's identity for STS.
    pub identity: Option<&'a Keys>,
    /// Session refresh tuning.
    pub sts: &'a StsConfig,
    /// Connections to the stores.
    pub upstream: &'a UpstreamConfig,
}

impl Registry {
    /// Builds the registry. Nothing is fetched yet: sessions are assumed on first use.
    pub async fn new(config: RegistryConfig<'_>, metrics: &Metrics) -> Result<Self, ConfigError> {
        let mut sources = SourcesBuilder::new(config.identity, config.sts);
        let mut built = Vec::with_capacity(config.integrations.len());
        for integration in &config.integrations {
            built.push(
                sources
                    .source(&integration.name, &integration.credentials)
                    .await,
            );
        }
        let sessions = sources.finish(metrics.clone());
        let shared = Arc::new(upstream_client(config.upstream, None)?);
        let mut registry = Registry {
            sessions: Some(sessions.clone()),
            ..Registry::default()
        };
        for (ic, source) in config.integrations.into_iter().zip(built) {
            let client = match &ic.ca_file {
                Some(_) => Arc::new(upstream_client(config.upstream, Some(&ic))?),
                None => shared.clone(),
            };
            let scope = ic.scope.clone();
            let access_point = ic.access_point.clone();
            let integration = Arc::new(Integration::new(
                ic,
                source,
                sessions.clone(),
                client,
                metrics.clone(),
            ));
            registry.add(integration, scope, access_point);
        }
        Ok(registry)
    }

    /// Takes over `previous`'s cached sessions for every role whose key is
    /// unchanged (a reload); returns how many it kept.
    pub async fn adopt_sessions(&self, previous: &Registry) -> usize {
        match (&self.sessions, &previous.sessions) {
            (Some(sessions), Some(old)) => sessions.adopt(old).await,
            _ => 0,
        }
    }

    /// Indexes `integration` by its buckets and access point.
    fn add(
        &mut self,
        integration: Arc<Integration>,
        scope: Scope,
        access_point: Option<AccessPointArn>,
    ) {
        match scope {
            Scope::Default(buckets) => self.default = Some((integration.clone(), buckets)),
            Scope::Buckets(buckets) => {
                for bucket in buckets {
                    self.scoped.insert(bucket, integration.clone());
                }
            }
        }
        if let Some(arn) = access_point {
            self.access_points.insert(arn, integration.clone());
        }
        self.integrations.push(integration);
    }

    /// Whether any integration allows origins of its own.
    pub fn has_scoped_origins(&self) -> bool {
        self.integrations.iter().any(|i| !i.origins.is_empty())
    }

    /// All integrations, in config order.
    pub fn integrations(&self) -> &[Arc<Integration>] {
        &self.integrations
    }

    /// Every bucket named in the config, with the integration serving it.
    pub fn buckets(&self) -> impl Iterator<Item = (&str, &Arc<Integration>)> {
        let scoped = self.scoped.iter().map(|(b, i)| (b.as_str(), i));
        let default = self
            .default
            .iter()
            .flat_map(|(i, buckets)| buckets.iter().map(move |b| (b.as_str(), i)))
            .filter(|(b, _)| !self.scoped.contains_key(*b));
        scoped.chain(default)
    }

    /// Parses a locator that must name an object, and resolves it.
    pub fn resolve_object(&self, locator: &str) -> Result<Resolved, Error> {
        self.resolve(&parse_object(locator)?)
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

    /// `bucket` itself (HeadBucket, GetBucketLocation), whatever the prefixes.
    pub fn resolve_bucket(&self, bucket: &str) -> Result<Resolved, Error> {
        Ok(Resolved {
            integration: self.for_bucket(bucket)?,
            bucket: bucket.to_owned(),
            key: String::new(),
            version_id: None,
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

/// Parses a locator string.
pub fn parse(locator: &str) -> Result<Locator, Error> {
    Locator::parse(locator).map_err(|reason| Error::InvalidLocator {
        locator: without_user_information(locator),
        reason,
    })
}

/// `locator` for an error message, a URL's user information (a password,
/// perhaps) left out.
fn without_user_information(locator: &str) -> String {
    let Some((scheme, rest)) = locator.split_once("://") else {
        return locator.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://…@{}", &rest[at + 1..]),
        None => locator.to_owned(),
    }
}

/// Parses a locator string that must name an object.
pub fn parse_object(locator: &str) -> Result<Locator, Error> {
    let parsed = parse(locator)?;
    if parsed.key.is_empty() {
        return Err(Error::InvalidLocator {
            locator: locator.to_owned(),
            reason: "names a bucket, not an object".into(),
        });
    }
    Ok(parsed)
}

/// The upstream client for `integration`'s `ca_file`, or the shared one.
fn upstream_client(
    config: &UpstreamConfig,
    integration: Option<&IntegrationConfig>,
) -> Result<Upstream, ConfigError> {
    let ca_file = integration.and_then(|i| i.ca_file.as_deref());
    Upstream::new(config, ca_file).map_err(|message| ConfigError::Invalid {
        context: integration.map_or_else(|| "[upstream]".to_owned(), IntegrationConfig::context),
        field: "ca_file",
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_locator_is_named_without_its_user_information() {
        let error = parse("https://me:secret@minio.local:9000/b/k").unwrap_err();
        let text = error.to_string();
        assert!(!text.contains("secret") && !text.contains("me:"), "{text}");
        assert!(text.contains("https://…@minio.local:9000/b/k"), "{text}");
        assert_eq!(without_user_information("s3://b/k@v"), "s3://b/k@v");
        assert_eq!(without_user_information("no scheme"), "no scheme");
    }
}
