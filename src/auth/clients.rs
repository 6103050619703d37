//! The configured clients: who they are, how they prove it, what they may read.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ClientConfig, Keys};
use crate::error::Error;
use crate::upstream::Resolved;

/// One client of the gateway.
#[derive(Debug)]
pub struct Client {
    /// Its configured name.
    pub name: String,
    tokens: Vec<[u8; 32]>,
    /// Its SigV4 keys for the S3 front.
    pub keys: Option<Keys>,
    integrations: Option<HashSet<String>>,
    buckets: Vec<String>,
    prefixes: Vec<String>,
    /// May read `/metrics`.
    pub metrics: bool,
}

impl Client {
    fn new(config: ClientConfig) -> Self {
        Self {
            name: config.name,
            tokens: config.token_sha256,
            keys: config.keys,
            integrations: config.integrations.map(|names| names.into_iter().collect()),
            buckets: config.buckets,
            prefixes: config.prefixes,
            metrics: config.metrics,
        }
    }

    /// Whether the client may use `integration` at all.
    pub fn uses(&self, integration: &str) -> bool {
        self.integrations
            .as_ref()
            .is_none_or(|names| names.contains(integration))
    }

    /// Whether the client may read `bucket` of `integration` (an empty
    /// bucket is the integration's access point).
    pub fn permits_bucket(&self, integration: &str, bucket: &str) -> bool {
        self.uses(integration)
            && (self.buckets.is_empty() || self.buckets.iter().any(|b| b == bucket))
    }

    /// Whether the client may read `key` (or list under it) in `bucket`.
    pub fn permits(&self, integration: &str, bucket: &str, key: &str) -> bool {
        self.permits_bucket(integration, bucket)
            && (self.prefixes.is_empty() || self.prefixes.iter().any(|p| key.starts_with(p)))
    }

    /// Refuses, naming what was asked, a resolved object outside the client's scope.
    pub fn check(&self, resolved: &Resolved) -> Result<(), Error> {
        if self.permits(&resolved.integration.name, &resolved.bucket, &resolved.key) {
            return Ok(());
        }
        Err(Error::ClientNotPermitted {
            client: self.name.clone(),
            what: describe(resolved),
        })
    }

    /// The buckets the client names itself, if it narrows to any.
    pub fn explicit_buckets(&self) -> &[String] {
        &self.buckets
    }

    fn holds_token(&self, digest: &[u8; 32]) -> bool {
        // Every digest is compared, in constant time, whatever matches.
        self.tokens
            .iter()
            .fold(subtle::Choice::from(0), |found, t| found | t.ct_eq(digest))
            .into()
    }
}

/// `s3://bucket/key`, or the key alone for an access point.
pub fn describe(resolved: &Resolved) -> String {
    if resolved.bucket.is_empty() {
        format!("key {:?} of an access point", resolved.key)
    } else {
        format!("s3://{}/{}", resolved.bucket, resolved.key)
    }
}

/// Every configured client, indexed by access key.
#[derive(Debug, Default)]
pub struct Clients {
    clients: Vec<Arc<Client>>,
    by_access_key: HashMap<String, Arc<Client>>,
    by_name: HashMap<String, Arc<Client>>,
}

impl Clients {
    /// Indexes the configured clients.
    pub fn new(configs: Vec<ClientConfig>) -> Self {
        let mut clients = Self::default();
        for config in configs {
            let client = Arc::new(Client::new(config));
            if let Some(keys) = &client.keys {
                clients
                    .by_access_key
                    .insert(keys.access_key_id.clone(), client.clone());
            }
            clients.by_name.insert(client.name.clone(), client.clone());
            clients.clients.push(client);
        }
        clients
    }

    /// Whether no client is configured (the gateway is anonymous).
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Whether any client has S3 keys.
    pub fn have_keys(&self) -> bool {
        !self.by_access_key.is_empty()
    }

    /// The client holding bearer `token`: its SHA-256 is compared with every
    /// configured digest in constant time.
    pub fn by_token(&self, token: &str) -> Option<Arc<Client>> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for client in &self.clients {
            if client.holds_token(&digest) {
                found = Some(client.clone());
            }
        }
        found
    }

    /// The client with S3 access key `id`.
    pub fn by_access_key(&self, id: &str) -> Option<&Arc<Client>> {
        self.by_access_key.get(id)
    }

    /// The client named `name`.
    pub fn by_name(&self, name: &str) -> Option<&Arc<Client>> {
        self.by_name.get(name)
    }
}
