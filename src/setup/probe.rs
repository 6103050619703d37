//! `s3gate check --probe`: each integration tried the way the gateway uses
//! it. Credentials come through [`Integration::credentials`] (AssumeRole with
//! the external ID, as in serving), then one page of one key is listed in
//! each permitted bucket (or access point) and prefix, and the first key
//! found is HEADed. Each integration is `OK` or fails at one step with the
//! store's or STS's code and a hint at what to fix.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use http::Method;

use crate::config::{Config, CredentialsConfig, Scope};
use crate::error::Error;
use crate::front::listing::{self, ListRequest};
use crate::upstream::endpoint::View;
use crate::upstream::integration::Read;
use crate::upstream::{Integration, Registry, Resolved};

/// What to probe of one integration, taken from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The integration's name.
    pub integration: String,
    /// Whether it assumes a role (its credentials step is AssumeRole).
    pub assumes_role: bool,
    /// The buckets it serves (not those a scoped integration claims), sorted.
    pub buckets: Vec<String>,
    /// Whether it serves an access point.
    pub access_point: bool,
    /// Its permitted prefixes; empty for every key.
    pub prefixes: Vec<String>,
}

/// The plans of every integration, in config order.
pub fn plans(config: &Config) -> Vec<Plan> {
    let scoped: HashSet<&str> = config
        .integrations
        .iter()
        .filter_map(|i| match &i.scope {
            Scope::Buckets(buckets) => Some(buckets.iter().map(String::as_str)),
            Scope::Default(_) => None,
        })
        .flatten()
        .collect();
    config
        .integrations
        .iter()
        .map(|i| {
            let mut buckets: Vec<String> = match &i.scope {
                Scope::Buckets(buckets) => buckets.clone(),
                Scope::Default(buckets) => buckets
                    .iter()
                    .filter(|b| !scoped.contains(b.as_str()))
                    .cloned()
                    .collect(),
            };
            buckets.sort();
            Plan {
                integration: i.name.clone(),
                assumes_role: matches!(i.credentials, CredentialsConfig::Role(_)),
                buckets,
                access_point: i.access_point.is_some(),
                prefixes: i.prefixes.clone(),
            }
        })
        .collect()
}

/// How one integration's probe ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every step passed; what was done.
    Ok(Vec<String>),
    /// The first step that failed.
    Fail {
        /// `AssumeRole`, `ListObjectsV2 s3://b/p`, `HeadObject s3://b/k`.
        step: String,
        /// STS's or the store's error code.
        code: String,
        /// What to check.
        hint: String,
    },
}

/// One integration's probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The integration's name.
    pub integration: String,
    /// How it went.
    pub outcome: Outcome,
}

impl Report {
    /// Whether the integration passed.
    pub fn ok(&self) -> bool {
        matches!(self.outcome, Outcome::Ok(_))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::Ok(done) => write!(f, "{}: OK ({})", self.integration, done.join("; ")),
            Outcome::Fail { step, code, hint } => {
                write!(f, "{}: FAIL {step}: {code}: {hint}", self.integration)
            }
        }
    }
}

/// Probes every planned integration of `registry`, one after the other.
pub async fn probe(registry: &Registry, plans: &[Plan]) -> Vec<Report> {
    let mut reports = Vec::with_capacity(plans.len());
    for plan in plans {
        let outcome = match registry
            .integrations()
            .iter()
            .find(|i| i.name == plan.integration)
        {
            Some(integration) => probe_one(integration, plan).await,
            None => Outcome::Fail {
                step: "setup".into(),
                code: "NoSuchIntegration".into(),
                hint: "the integration is not in the registry".into(),
            },
        };
        reports.push(Report {
            integration: plan.integration.clone(),
            outcome,
        });
    }
    reports
}

/// Which step a store error happened in: decides its hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Credentials,
    List,
    Head,
}

/// Credentials, then each target's listing and a HEAD of what it lists.
async fn probe_one(integration: &Arc<Integration>, plan: &Plan) -> Outcome {
    let mut done = Vec::new();
    let credentials_step = if plan.assumes_role {
        "AssumeRole"
    } else {
        "credentials"
    };
    if let Err(e) = integration.credentials().await {
        return fail(credentials_step, Step::Credentials, &e);
    }
    if plan.assumes_role {
        done.push("assumed the role".to_owned());
    }
    let prefixes = if plan.prefixes.is_empty() {
        vec![String::new()]
    } else {
        plan.prefixes.clone()
    };
    let containers = plan
        .buckets
        .iter()
        .map(|b| Some(b.as_str()))
        .chain(plan.access_point.then_some(None));
    for bucket in containers {
        for prefix in &prefixes {
            let resolved = Resolved {
                integration: integration.clone(),
                bucket: bucket.unwrap_or_default().to_owned(),
                key: prefix.clone(),
                version_id: None,
            };
            match probe_target(&resolved).await {
                Ok(note) => done.push(note),
                Err(failure) => return failure,
            }
        }
    }
    Outcome::Ok(done)
}

/// `s3://bucket/key`, or `access point/key`.
fn place(resolved: &Resolved, key: &str) -> String {
    if resolved.bucket.is_empty() {
        format!("access point /{key}")
    } else {
        format!("s3://{}/{key}", resolved.bucket)
    }
}

/// Lists one key under `resolved`'s prefix and HEADs it.
async fn probe_target(resolved: &Resolved) -> Result<String, Outcome> {
    let where_ = place(resolved, &resolved.key);
    let request = ListRequest {
        limit: Some(1),
        ..ListRequest::default()
    };
    let page = listing::page(resolved, &request, None)
        .await
        .map_err(|e| fail(&format!("ListObjectsV2 {where_}"), Step::List, &e))?;
    let Some(object) = page.objects.first() else {
        return Ok(format!("listed {where_}: empty"));
    };
    let key = place(resolved, &object.key);
    let read = Read {
        method: Method::HEAD,
        address: resolved
            .integration
            .endpoint
            .object(&resolved.bucket, &object.key, View::Dial),
        query: Vec::new(),
        client_headers: None,
    };
    resolved
        .integration
        .read(read)
        .await
        .map_err(|e| fail(&format!("HeadObject {key}"), Step::Head, &e))?;
    Ok(format!("listed {where_}, HEAD {key}"))
}

fn fail(step: &str, kind: Step, error: &Error) -> Outcome {
    let (code, hint) = code_and_hint(kind, error);
    Outcome::Fail {
        step: step.to_owned(),
        code,
        hint,
    }
}

/// The error's code and what to check, reusing the hints the error carries.
fn code_and_hint(step: Step, error: &Error) -> (String, String) {
    match error {
        Error::UpstreamAuthFailed { code, hint, .. } => (code.clone(), hint.clone()),
        Error::CredentialsUnavailable { reason, .. } => (
            "CredentialsUnavailable".into(),
            format!("{reason}; check `sts_endpoint` and that STS is reachable"),
        ),
        Error::UpstreamStatus { code, .. } => (code.clone(), store_hint(step, code).into()),
        Error::UpstreamRedirect { code, hint, .. } => {
            (code.clone(), hint.trim_start_matches("; ").to_owned())
        }
        Error::UpstreamTimeout { seconds, .. } => (
            "Timeout".into(),
            format!(
                "the store did not answer within {seconds} s: check `endpoint_url` and the network"
            ),
        ),
        Error::UpstreamFailed { reason, .. } => ("Unreachable".into(), reason.clone()),
        other => (other.code().to_owned(), other.to_string()),
    }
}

/// What to check when the store answers `code` at `step`.
fn store_hint(step: Step, code: &str) -> &'static str {
    match (step, code) {
        (_, "NoSuchBucket") => "the bucket does not exist at this endpoint: check the integration's buckets, `region` and `endpoint_url`",
        (Step::List, "AccessDenied" | "Forbidden") => "the access policy does not allow s3:ListBucket on this bucket for this prefix: compare it with `s3gate policy`",
        (Step::Head, "AccessDenied" | "Forbidden") => "the access policy does not allow s3:GetObject on this key: compare it with `s3gate policy`",
        (_, "InvalidAccessKeyId") => "the store does not know the access key: check the integration's credentials",
        (_, "SignatureDoesNotMatch") => "the store refuses the signature: check the secret and `region`",
        (_, "AuthorizationHeaderMalformed") => "check `region`: it must be the bucket's",
        (_, "InvalidToken" | "ExpiredToken") => "the store refuses the session token: does it trust sessions from this `sts_endpoint`?",
        (Step::Head, "NotFound" | "NoSuchKey") => "the key listed a moment ago is gone: run the probe again",
        _ => "compare the store's policy with `s3gate policy`",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_leave_claimed_buckets_to_their_scoped_integration() {
        let keys = "[integrations.credentials]\naccess_key_id = \"AKIDPROBE\"\nsecret_access_key = \"probe-secret-12345\"\n";
        let text = format!(
            "[[integrations]]\nname = \"all\"\ndefault = true\nbuckets = [\"bbb\", \"aaa\", \"claimed\"]\n{keys}\n[[integrations]]\nname = \"one\"\nbucket = \"claimed\"\nprefixes = [\"p/\"]\nrole_arn = \"arn:aws:iam::123456789012:role/r\"\n"
        );
        let config = Config::parse(&text).unwrap();
        assert_eq!(
            plans(&config),
            [
                Plan {
                    integration: "all".into(),
                    assumes_role: false,
                    buckets: vec!["aaa".into(), "bbb".into()],
                    access_point: false,
                    prefixes: vec![],
                },
                Plan {
                    integration: "one".into(),
                    assumes_role: true,
                    buckets: vec!["claimed".into()],
                    access_point: false,
                    prefixes: vec!["p/".into()],
                },
            ]
        );
    }

    #[test]
    fn reports_read_ok_or_fail_with_step_code_and_hint() {
        let failed = Report {
            integration: "acme".into(),
            outcome: fail(
                "ListObjectsV2 s3://gone/",
                Step::List,
                &Error::UpstreamStatus {
                    integration: "acme".into(),
                    status: 404,
                    code: "NoSuchBucket".into(),
                    message: String::new(),
                    content_range: None,
                    store_ids: None,
                },
            ),
        };
        assert!(!failed.ok());
        assert_eq!(
            failed.to_string(),
            "acme: FAIL ListObjectsV2 s3://gone/: NoSuchBucket: the bucket does not exist at this endpoint: check the integration's buckets, `region` and `endpoint_url`"
        );
        let ok = Report {
            integration: "acme".into(),
            outcome: Outcome::Ok(vec![
                "assumed the role".into(),
                "listed s3://b/: empty".into(),
            ]),
        };
        assert!(ok.ok());
        assert_eq!(
            ok.to_string(),
            "acme: OK (assumed the role; listed s3://b/: empty)"
        );
    }
}
