//! `s3gate policy`: the documents a customer applies for one integration,
//! built from the typed config alone (nothing is contacted).
//!
//! - the IAM **access policy**: `s3:GetObject` and `s3:GetObjectVersion` on
//!   the objects under each permitted prefix (all keys without `prefixes`),
//!   `s3:ListBucket` on each bucket (with an `s3:prefix` condition per prefix
//!   when `prefixes` is set) and `s3:GetBucketLocation`; for an access point,
//!   its ARN and `ARN/object/…` resources;
//! - the role's **trust policy**: the gateway's identity as principal, and
//!   the integration's external ID as `sts:ExternalId` condition;
//! - the bucket **CORS** rule for the configured origins (`[cors]` and the
//!   integration's `allowed_origins`), for `redirect` delivery, where
//!   browsers fetch from the store;
//! - for a custom endpoint, the access policy as a **MinIO** policy and the
//!   `mc` commands that create and attach it.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::config::{Config, CredentialsConfig, Delivery, IntegrationConfig, Keys, Scope};

/// What the trust policy names when the gateway's ARN is not configured.
pub const PRINCIPAL_PLACEHOLDER: &str =
    "<set [identity] principal_arn: the ARN `aws sts get-caller-identity` prints for the gateway's identity>";

/// Request headers a browser may send to the store.
pub const CORS_ALLOWED_HEADERS: [&str; 5] = [
    "Range",
    "If-None-Match",
    "If-Modified-Since",
    "If-Match",
    "If-Unmodified-Since",
];

/// Response headers a page may read from the store.
pub const CORS_EXPOSE_HEADERS: [&str; 6] = [
    "ETag",
    "Content-Length",
    "Content-Range",
    "Accept-Ranges",
    "Last-Modified",
    "x-amz-version-id",
];

/// Everything the customer applies for one integration.
#[derive(Debug, Clone, PartialEq)]
pub struct Documents {
    /// The integration's name.
    pub integration: String,
    /// Who the access policy is attached to (a role ARN, or the user of an access key).
    pub attach_to: String,
    /// The IAM access policy.
    pub access_policy: Value,
    /// The role's trust policy, when the integration assumes a role.
    pub trust_policy: Option<Value>,
    /// The bucket CORS configuration (`put-bucket-cors`), when browsers fetch from the store.
    pub cors: Option<Value>,
    /// Which buckets the CORS rule goes on.
    pub cors_buckets: Vec<String>,
    /// For a custom endpoint: the MinIO policy and the `mc` commands.
    pub minio: Option<Minio>,
    /// What else the operator should know.
    pub notes: Vec<String>,
}

/// The access policy as MinIO takes it, and how to apply it.
#[derive(Debug, Clone, PartialEq)]
pub struct Minio {
    /// The policy's name in MinIO.
    pub policy_name: String,
    /// The file the commands read the policy from.
    pub policy_file: String,
    /// The policy document.
    pub policy: Value,
    /// `mc` commands, in order.
    pub commands: Vec<String>,
}

/// Why no documents could be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no integration named {name:?} (configured: {known})")]
pub struct UnknownIntegration {
    /// The name asked for.
    pub name: String,
    /// The configured names, comma-separated.
    pub known: String,
}

impl Documents {
    /// The documents of the integration `name` in `config`.
    pub fn build(config: &Config, name: &str) -> Result<Self, UnknownIntegration> {
        let integration = config
            .integrations
            .iter()
            .find(|i| i.name == name)
            .ok_or_else(|| UnknownIntegration {
                name: name.to_owned(),
                known: config
                    .integrations
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let mut notes = Vec::new();
        let trust_policy = trust_policy(config, integration, &mut notes);
        let (cors, cors_buckets) = cors(config, integration, &mut notes);
        if integration.access_point.is_some() {
            notes.push("the bucket behind the access point must delegate access control to its access points (or allow these actions itself)".into());
        }
        Ok(Self {
            integration: integration.name.clone(),
            attach_to: attach_to(config, integration),
            access_policy: access_policy(integration),
            trust_policy,
            cors,
            cors_buckets,
            minio: minio(config, integration),
            notes,
        })
    }

    /// One JSON object holding every document.
    pub fn to_json(&self) -> Value {
        json!({
            "integration": self.integration,
            "attach_to": self.attach_to,
            "access_policy": self.access_policy,
            "trust_policy": self.trust_policy,
            "cors": self.cors,
            "cors_buckets": self.cors_buckets,
            "minio": self.minio.as_ref().map(|m| json!({
                "policy_name": m.policy_name,
                "policy_file": m.policy_file,
                "policy": m.policy,
                "commands": m.commands,
            })),
            "notes": self.notes,
        })
    }

    /// The documents with a `#` heading each saying where it goes.
    pub fn to_text(&self) -> String {
        let mut out = format!("# Customer setup of integration {:?}\n", self.integration);
        let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
        let _ = write!(
            out,
            "\n# Access policy: attach to {}\n{}\n",
            self.attach_to,
            pretty(&self.access_policy)
        );
        if let Some(trust) = &self.trust_policy {
            let _ = write!(
                out,
                "\n# Trust policy of {} (IAM → Roles → Trust relationships)\n{}\n",
                self.attach_to,
                pretty(trust)
            );
        }
        if let Some(cors) = &self.cors {
            let commands: Vec<String> = self
                .cors_buckets
                .iter()
                .map(|b| format!("aws s3api put-bucket-cors --bucket {b} --cors-configuration file://cors.json"))
                .collect();
            let _ = write!(
                out,
                "\n# Bucket CORS: save as cors.json, then\n#   {}\n{}\n",
                commands.join("\n#   "),
                pretty(cors)
            );
        }
        if let Some(minio) = &self.minio {
            let _ = write!(
                out,
                "\n# MinIO policy: save as {}, then run the commands below\n{}\n",
                minio.policy_file,
                pretty(&minio.policy)
            );
            for command in &minio.commands {
                let _ = writeln!(out, "{command}");
            }
        }
        for note in &self.notes {
            let _ = write!(out, "\n# Note: {note}");
        }
        if !self.notes.is_empty() {
            out.push('\n');
        }
        out
    }
}

/// `aws`, `aws-cn` or `aws-us-gov`, from the region.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// `prefix` with IAM's wildcard characters made literal (`${*}`, `${?}`, `${$}`).
fn literal(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        match c {
            '*' | '?' | '$' => {
                let _ = write!(out, "${{{c}}}");
            }
            c => out.push(c),
        }
    }
    out
}

/// The buckets an integration reads, sorted.
fn buckets(integration: &IntegrationConfig) -> Vec<String> {
    let set: BTreeSet<String> = match &integration.scope {
        Scope::Default(buckets) => buckets.iter().cloned().collect(),
        Scope::Buckets(buckets) => buckets.iter().cloned().collect(),
    };
    set.into_iter().collect()
}

/// `prefix*` for each permitted prefix, or `*` for every key.
fn key_patterns(integration: &IntegrationConfig) -> Vec<String> {
    if integration.prefixes.is_empty() {
        return vec!["*".into()];
    }
    integration
        .prefixes
        .iter()
        .map(|p| format!("{}*", literal(p)))
        .collect()
}

/// The containers (bucket and access point ARNs), their object ARNs, and
/// the bucket ARNs alone, with bucket ARNs in partition `part`.
fn resources(
    integration: &IntegrationConfig,
    part: &str,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let patterns = key_patterns(integration);
    let mut containers = Vec::new();
    let mut objects = Vec::new();
    let mut buckets_only = Vec::new();
    for bucket in buckets(integration) {
        let arn = format!("arn:{part}:s3:::{bucket}");
        objects.extend(patterns.iter().map(|p| format!("{arn}/{p}")));
        containers.push(arn.clone());
        buckets_only.push(arn);
    }
    if let Some(ap) = &integration.access_point {
        let arn = ap.to_string();
        objects.extend(patterns.iter().map(|p| format!("{arn}/object/{p}")));
        containers.push(arn);
    }
    (containers, objects, buckets_only)
}

/// The IAM access policy: read objects under the prefixes, list, locate.
pub fn access_policy(integration: &IntegrationConfig) -> Value {
    policy_in(integration, partition(&integration.region))
}

/// The access policy with bucket ARNs in partition `part`.
fn policy_in(integration: &IntegrationConfig, part: &str) -> Value {
    let (containers, objects, buckets) = resources(integration, part);
    let mut list = json!({
        "Sid": "S3gateList",
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": containers,
    });
    if !integration.prefixes.is_empty() {
        list["Condition"] = json!({ "StringLike": { "s3:prefix": key_patterns(integration) } });
    }
    let mut statements = vec![
        json!({
            "Sid": "S3gateReadObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": objects,
        }),
        list,
    ];
    if !buckets.is_empty() {
        statements.push(json!({
            "Sid": "S3gateBucketLocation",
            "Effect": "Allow",
            "Action": "s3:GetBucketLocation",
            "Resource": buckets,
        }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The keys that sign the integration's requests or call STS for it.
fn signing_keys<'a>(config: &'a Config, integration: &'a IntegrationConfig) -> Option<&'a Keys> {
    match &integration.credentials {
        CredentialsConfig::Static(keys) => Some(keys),
        CredentialsConfig::Role(role) => role.caller.as_ref().or(config.identity.as_ref()),
    }
}

/// Who the access policy is for.
fn attach_to(config: &Config, integration: &IntegrationConfig) -> String {
    match &integration.credentials {
        CredentialsConfig::Role(role) => format!("the role {}", role.arn),
        CredentialsConfig::Static(_) => match signing_keys(config, integration) {
            Some(keys) => format!("the user whose access key is {}", keys.access_key_id),
            None => "the user whose keys the integration signs with".into(),
        },
    }
}

/// The trust policy of the integration's role: the gateway's identity may
/// assume it with the external ID.
fn trust_policy(
    config: &Config,
    integration: &IntegrationConfig,
    notes: &mut Vec<String>,
) -> Option<Value> {
    let CredentialsConfig::Role(role) = &integration.credentials else {
        return None;
    };
    let principal = match (&role.caller, &config.identity_principal_arn) {
        (Some(keys), _) => {
            notes.push(format!("the role is assumed with the integration's own key {}: replace the trust policy's principal with the ARN of its user (`aws sts get-caller-identity` with those keys prints it)", keys.access_key_id));
            format!(
                "<the ARN of the IAM user whose access key is {}>",
                keys.access_key_id
            )
        }
        (None, Some(arn)) => arn.clone(),
        (None, None) => {
            notes.push("set [identity] principal_arn to the gateway's ARN, or replace the trust policy's principal by hand".into());
            PRINCIPAL_PLACEHOLDER.to_owned()
        }
    };
    let mut statement = json!({
        "Effect": "Allow",
        "Principal": { "AWS": principal },
        "Action": "sts:AssumeRole",
    });
    match &role.external_id {
        Some(id) => {
            statement["Condition"] = json!({ "StringEquals": { "sts:ExternalId": id } });
        }
        None => notes.push("the integration has no `external_id`: anyone who can make the gateway assume this role could read through it; set one (`s3gate external-id` makes one) and demand it here".into()),
    }
    Some(json!({ "Version": "2012-10-17", "Statement": [statement] }))
}

/// Every origin allowed for the integration's objects, in config order.
fn origins(config: &Config, integration: &IntegrationConfig) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let all = config.cors.origins.entries().into_iter();
    all.chain(integration.origins.entries())
        .filter(|o| seen.insert(o.clone()))
        .collect()
}

/// The bucket CORS rule, when browsers fetch from the store and origins are set.
fn cors(
    config: &Config,
    integration: &IntegrationConfig,
    notes: &mut Vec<String>,
) -> (Option<Value>, Vec<String>) {
    if integration.delivery == Delivery::Proxy {
        notes.push("delivery = \"proxy\": browsers never fetch from the store, so the bucket needs no CORS rule".into());
        return (None, Vec::new());
    }
    let origins = origins(config, integration);
    if origins.is_empty() {
        notes.push("no browser origins are configured ([cors] allowed_origins, the integration's allowed_origins): the bucket needs no CORS rule unless pages read objects with fetch()".into());
        return (None, Vec::new());
    }
    let rule = json!({
        "CORSRules": [{
            "AllowedOrigins": origins,
            "AllowedMethods": ["GET", "HEAD"],
            "AllowedHeaders": CORS_ALLOWED_HEADERS,
            "ExposeHeaders": CORS_EXPOSE_HEADERS,
            "MaxAgeSeconds": config.cors.max_age_s,
        }]
    });
    let mut targets = buckets(integration);
    if integration.access_point.is_some() {
        targets.push("<the bucket behind the access point>".into());
    }
    (Some(rule), targets)
}

/// A name MinIO and shells take: letters, digits, `-` and `_`.
fn mc_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// For a custom endpoint: the access policy under MinIO's name for it, and
/// the `mc` commands that create it, attach it and allow the origins.
fn minio(config: &Config, integration: &IntegrationConfig) -> Option<Minio> {
    let origin = integration.endpoint.custom_origin()?;
    let name = mc_name(&integration.name);
    let alias = format!("s3gate-{name}");
    let policy_name = format!("s3gate-{name}");
    let policy_file = format!("{policy_name}.json");
    let user = signing_keys(config, integration)
        .map_or_else(|| "<MINIO_USER>".to_owned(), |k| k.access_key_id.clone());
    let mut commands = vec![
        format!(
            "mc alias set {alias} {}://{} <ADMIN_ACCESS_KEY> <ADMIN_SECRET_KEY>",
            origin.scheme, origin.authority
        ),
        format!("mc admin policy create {alias} {policy_name} {policy_file}"),
        format!("mc admin policy attach {alias} {policy_name} --user {user}"),
    ];
    let origins = origins(config, integration);
    if integration.delivery == Delivery::Redirect && !origins.is_empty() {
        commands.push(format!(
            "mc admin config set {alias} api cors_allow_origin=\"{}\"",
            origins.join(",")
        ));
    }
    // MinIO names its resources in the `aws` partition whatever the region.
    let policy = policy_in(integration, "aws");
    Some(Minio {
        policy_name,
        policy_file,
        policy,
        commands,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:iam::210987654321:role/s3gate-reader";

    fn config(text: &str) -> Config {
        Config::parse(text).unwrap()
    }

    fn role_integration(extra: &str) -> String {
        format!(
            "[identity]\nprincipal_arn = \"arn:aws:iam::123456789012:user/s3gate\"\n\n[cors]\nallowed_origins = [\"https://app.example.com\"]\nmax_age_s = 900\n\n[[integrations]]\nname = \"acme\"\nrole_arn = \"{ROLE}\"\nexternal_id = \"ext-123\"\n{extra}\n"
        )
    }

    #[test]
    fn prefixed_buckets_get_prefixed_resources_and_a_prefix_condition() {
        let c = config(&role_integration(
            "buckets = [\"pics\", \"clips\"]\nprefixes = [\"task-1/\", \"shared/\"]\nallowed_origins = [\"https://*.acme.com\"]",
        ));
        let docs = Documents::build(&c, "acme").unwrap();
        assert_eq!(
            docs.access_policy,
            json!({"Version": "2012-10-17", "Statement": [
                {"Sid": "S3gateReadObjects", "Effect": "Allow",
                 "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                 "Resource": ["arn:aws:s3:::clips/task-1/*", "arn:aws:s3:::clips/shared/*",
                              "arn:aws:s3:::pics/task-1/*", "arn:aws:s3:::pics/shared/*"]},
                {"Sid": "S3gateList", "Effect": "Allow", "Action": "s3:ListBucket",
                 "Resource": ["arn:aws:s3:::clips", "arn:aws:s3:::pics"],
                 "Condition": {"StringLike": {"s3:prefix": ["task-1/*", "shared/*"]}}},
                {"Sid": "S3gateBucketLocation", "Effect": "Allow", "Action": "s3:GetBucketLocation",
                 "Resource": ["arn:aws:s3:::clips", "arn:aws:s3:::pics"]},
            ]})
        );
        assert_eq!(docs.attach_to, format!("the role {ROLE}"));
        assert_eq!(
            docs.trust_policy,
            Some(json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:user/s3gate"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": "ext-123"}},
            }]}))
        );
        let cors = docs.cors.unwrap();
        let rule = &cors["CORSRules"][0];
        assert_eq!(
            rule["AllowedOrigins"],
            json!(["https://app.example.com", "https://*.acme.com"])
        );
        assert_eq!(rule["AllowedMethods"], json!(["GET", "HEAD"]));
        assert_eq!(rule["MaxAgeSeconds"], 900);
        assert!(rule["AllowedHeaders"]
            .as_array()
            .unwrap()
            .contains(&json!("Range")));
        assert_eq!(rule["ExposeHeaders"], json!(CORS_EXPOSE_HEADERS));
        assert_eq!(docs.cors_buckets, ["clips", "pics"]);
        assert_eq!(docs.minio, None);
        assert!(docs.notes.is_empty(), "{:?}", docs.notes);
    }

    #[test]
    fn without_prefixes_every_key_and_no_condition() {
        let c = config(&role_integration(
            "bucket = \"pics\"\nregion = \"cn-north-1\"",
        ));
        let policy = Documents::build(&c, "acme").unwrap().access_policy;
        assert_eq!(
            policy["Statement"][0]["Resource"],
            json!(["arn:aws-cn:s3:::pics/*"])
        );
        assert_eq!(policy["Statement"][1].get("Condition"), None);
        assert_eq!(
            policy["Statement"][1]["Resource"],
            json!(["arn:aws-cn:s3:::pics"])
        );
    }

    #[test]
    fn access_points_name_their_arn_and_object_resources() {
        let c = config(&role_integration(
            "region = \"us-west-2\"\naccess_point_arn = \"arn:aws:s3:us-west-2:210987654321:accesspoint/imgs\"\nprefixes = [\"a/\"]",
        ));
        let docs = Documents::build(&c, "acme").unwrap();
        let ap = "arn:aws:s3:us-west-2:210987654321:accesspoint/imgs";
        let statements = docs.access_policy["Statement"].as_array().unwrap().clone();
        assert_eq!(
            statements[0]["Resource"],
            json!([format!("{ap}/object/a/*")])
        );
        assert_eq!(statements[1]["Resource"], json!([ap]));
        assert_eq!(statements.len(), 2, "no bucket to locate");
        assert_eq!(docs.cors_buckets, ["<the bucket behind the access point>"]);
        assert!(docs.notes.iter().any(|n| n.contains("delegate")));
    }

    #[test]
    fn principal_arns_are_checked() {
        for bad in [
            "nope",
            "arn:aws:iam::123:user/x",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::123456789012:group/x",
        ] {
            let err =
                Config::parse(&format!("[identity]\nprincipal_arn = \"{bad}\"\n")).unwrap_err();
            assert!(
                err.to_string().contains("[identity]: `principal_arn`"),
                "{bad}: {err}"
            );
        }
        for good in [
            "arn:aws:iam::123456789012:root",
            "arn:aws-cn:iam::123456789012:role/gw",
        ] {
            Config::parse(&format!("[identity]\nprincipal_arn = \"{good}\"\n")).unwrap();
        }
    }

    #[test]
    fn iam_wildcards_in_prefixes_are_literal() {
        assert_eq!(literal("a*b?c$d/"), "a${*}b${?}c${$}d/");
        assert_eq!(literal("plain/"), "plain/");
    }

    #[test]
    fn the_principal_is_a_placeholder_unless_configured() {
        let text = format!(
            "[[integrations]]\nname = \"acme\"\nbucket = \"pics\"\nrole_arn = \"{ROLE}\"\n"
        );
        let docs = Documents::build(&config(&text), "acme").unwrap();
        let trust = docs.trust_policy.unwrap();
        assert_eq!(
            trust["Statement"][0]["Principal"]["AWS"],
            PRINCIPAL_PLACEHOLDER
        );
        assert_eq!(trust["Statement"][0].get("Condition"), None);
        assert!(docs.notes.iter().any(|n| n.contains("principal_arn")));
        assert!(docs.notes.iter().any(|n| n.contains("no `external_id`")));
        assert!(docs.notes.iter().any(|n| n.contains("no browser origins")));
    }

    #[test]
    fn custom_endpoints_get_a_minio_policy_and_mc_commands() {
        let text = "[cors]\nallowed_origins = [\"https://app.example.com\"]\n\n[[integrations]]\nname = \"on prem\"\nbucket = \"media\"\nendpoint_url = \"http://10.0.0.5:9000\"\n[integrations.credentials]\naccess_key_id = \"s3gate-reader\"\nsecret_access_key = \"minio-secret-123\"\n";
        let docs = Documents::build(&config(text), "on prem").unwrap();
        assert_eq!(docs.trust_policy, None);
        assert_eq!(docs.attach_to, "the user whose access key is s3gate-reader");
        let minio = docs.minio.unwrap();
        assert_eq!(minio.policy, docs.access_policy);
        assert_eq!(minio.policy_name, "s3gate-on-prem");
        assert_eq!(
            minio.commands,
            [
                "mc alias set s3gate-on-prem http://10.0.0.5:9000 <ADMIN_ACCESS_KEY> <ADMIN_SECRET_KEY>",
                "mc admin policy create s3gate-on-prem s3gate-on-prem s3gate-on-prem.json",
                "mc admin policy attach s3gate-on-prem s3gate-on-prem --user s3gate-reader",
                "mc admin config set s3gate-on-prem api cors_allow_origin=\"https://app.example.com\"",
            ]
        );
        let out = Documents::build(&config(text), "on prem")
            .unwrap()
            .to_text();
        assert!(
            out.contains("# MinIO policy: save as s3gate-on-prem.json"),
            "{out}"
        );
    }

    #[test]
    fn proxy_delivery_needs_no_bucket_cors() {
        let c = config(&role_integration("bucket = \"pics\"\ndelivery = \"proxy\""));
        let docs = Documents::build(&c, "acme").unwrap();
        assert_eq!(docs.cors, None);
        assert!(docs.notes.iter().any(|n| n.contains("proxy")));
    }

    #[test]
    fn json_holds_every_document_and_unknown_names_are_refused() {
        let c = config(&role_integration("bucket = \"pics\""));
        let docs = Documents::build(&c, "acme").unwrap();
        let v = docs.to_json();
        assert_eq!(v["access_policy"], docs.access_policy);
        assert_eq!(v["trust_policy"], docs.trust_policy.clone().unwrap());
        assert_eq!(v["cors"], docs.cors.clone().unwrap());
        assert_eq!(v["minio"], Value::Null);
        let err = Documents::build(&c, "other").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no integration named \"other\" (configured: acme)"
        );
    }
}
