//! A typed builder of test configs, rendered to TOML by the `toml` crate:
//! tests say which field they set instead of editing config text.

use toml::{Table, Value};

use super::{ACCESS_KEY, SECRET_ENV};

/// A config under construction.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    root: Table,
}

impl ConfigBuilder {
    /// One default integration named `store` for `buckets` on the store at
    /// `endpoint`, signing with the test keys; `max_batch = 5`.
    pub fn store(endpoint: &str, buckets: &[&str]) -> Self {
        let mut keys = Table::new();
        keys.insert("access_key_id".into(), ACCESS_KEY.into());
        keys.insert("secret_access_key_env".into(), SECRET_ENV.into());
        let mut integration = Table::new();
        integration.insert("name".into(), "store".into());
        integration.insert("default".into(), true.into());
        let buckets: Vec<Value> = buckets.iter().map(|b| Value::from(*b)).collect();
        integration.insert("buckets".into(), buckets.into());
        integration.insert("endpoint_url".into(), endpoint.into());
        integration.insert("credentials".into(), keys.into());
        let mut root = Table::new();
        let mut server = Table::new();
        server.insert("max_batch".into(), 5.into());
        root.insert("server".into(), server.into());
        root.insert("integrations".into(), vec![Value::from(integration)].into());
        Self { root }
    }

    /// Sets `[section] key = value`.
    pub fn set(mut self, section: &str, key: &str, value: impl Into<Value>) -> Self {
        let table = self
            .root
            .entry(section)
            .or_insert_with(|| Table::new().into());
        table
            .as_table_mut()
            .expect("a section is a table")
            .insert(key.into(), value.into());
        self
    }

    /// Sets `key = value` on the (first) integration.
    pub fn integration(mut self, key: &str, value: impl Into<Value>) -> Self {
        let first = self.root["integrations"]
            .as_array_mut()
            .and_then(|list| list.first_mut())
            .and_then(Value::as_table_mut)
            .expect("an integration");
        first.insert(key.into(), value.into());
        self
    }

    /// Appends a `[[clients]]` entry.
    pub fn client(mut self, client: Value) -> Self {
        let clients = self
            .root
            .entry("clients")
            .or_insert_with(|| Value::Array(Vec::new()));
        clients
            .as_array_mut()
            .expect("clients is an array")
            .push(client);
        self
    }

    /// Appends an `[[integrations]]` entry.
    pub fn add_integration(mut self, integration: Value) -> Self {
        self.root["integrations"]
            .as_array_mut()
            .expect("integrations is an array")
            .push(integration);
        self
    }

    /// Serves the S3 API without client authentication.
    pub fn s3_anonymous(self) -> Self {
        self.set("s3_api", "anonymous", true)
    }

    /// The TOML text.
    pub fn build(&self) -> String {
        toml::to_string(&self.root).expect("a config renders")
    }
}

/// A table of `(key, value)` pairs, for inline tables such as `[server.tls]`.
pub fn table<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect::<Table>()
        .into()
}
