//! The Grafana dashboard in deploy/grafana cannot drift from the code: every
//! metric its queries use appears on `/metrics` after traffic that touches
//! each path (presigns, proxy streaming, a missing object, a role assumed
//! through STS, a role whose STS is down).
// Tests fail loudly (unwrapping is how they say what broke), may print
// timings, cast small test values, and keep their helpers undocumented.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    unreachable_pub,
    missing_docs
)]

mod support;

use std::collections::BTreeSet;

use support::config::{table, ConfigBuilder};
use support::*;

const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/s3gate.json");

/// Every PromQL string in the dashboard: panel targets and template queries.
fn queries(dashboard: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    collect(dashboard, &mut out);
    out
}

fn collect(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                    ("query", serde_json::Value::String(s)) if s.contains("s3gate_") => {
                        out.push(s.clone());
                    }
                    _ => collect(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
        _ => {}
    }
}

/// The `s3gate_*` metric names a query uses (as sample names: a histogram's
/// `_bucket`, `_sum` and `_count` stay as written).
fn metric_names(query: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = query;
    while let Some(at) = rest.find("s3gate_") {
        let preceded_by_ident = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !preceded_by_ident {
            names.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// The histogram a `_bucket`/`_sum`/`_count` sample belongs to, per the
/// page's `# TYPE` lines; other names are their own metric.
fn family<'a>(page: &str, sample: &'a str) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = sample.strip_suffix(suffix) {
            if page.contains(&format!("# TYPE {base} histogram\n")) {
                return base;
            }
        }
    }
    sample
}

/// Whether the page has a sample line of `name` (with or without labels).
fn has_sample(page: &str, name: &str) -> bool {
    page.lines().any(|line| {
        line.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
    })
}

/// An STS answering every AssumeRole with session credentials the test store
/// accepts, valid far into the future.
async fn scripted_sts() -> String {
    let body = format!(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>\
         <Credentials><AccessKeyId>{ACCESS_KEY}</AccessKeyId><SecretAccessKey>{SECRET_KEY}</SecretAccessKey>\
         <SessionToken>test-session-token</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>\
         <AssumedRoleUser><AssumedRoleId>AROATEST:s3gate</AssumedRoleId>\
         <Arn>arn:aws:sts::123456789012:assumed-role/reader/s3gate</Arn></AssumedRoleUser>\
         </AssumeRoleResult><ResponseMetadata><RequestId>test</RequestId></ResponseMetadata></AssumeRoleResponse>"
    );
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    scripted_store(Box::leak(answer.into_bytes().into_boxed_slice())).await
}

fn role_integration(name: &str, bucket: &str, store: &str, sts: &str) -> toml::Value {
    table([
        ("name", name.into()),
        ("bucket", bucket.into()),
        ("endpoint_url", store.into()),
        ("delivery", "proxy".into()),
        (
            "role_arn",
            format!("arn:aws:iam::123456789012:role/{name}").into(),
        ),
        ("external_id", "6f1c2a4e-0d3b-4c8f-9a7e-5b2d1e0c9f84".into()),
        ("sts_endpoint", sts.into()),
    ])
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_exported() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap()).unwrap();
    let queries = queries(&dashboard);
    let used: BTreeSet<String> = queries.iter().flat_map(|q| metric_names(q)).collect();
    // The panels the operator relies on are there.
    for needed in [
        "s3gate_requests_total",
        "s3gate_request_duration_seconds_bucket",
        "s3gate_response_bytes_total",
        "s3gate_upstream_requests_total",
        "s3gate_upstream_duration_seconds_bucket",
        "s3gate_sts_calls_total",
        "s3gate_sts_failures_total",
        "s3gate_credential_cache_hits_total",
        "s3gate_credential_cache_misses_total",
        "s3gate_credential_expiry_seconds",
        "s3gate_open_connections",
    ] {
        assert!(used.contains(needed), "the dashboard has no {needed} panel");
    }
    assert!(
        queries.iter().any(|q| q.contains("histogram_quantile(")),
        "no latency percentiles"
    );

    let store = FsStore::start().await;
    store.put("media", "a.bin", &[7u8; 4096]);
    store.put("assumed", "b.bin", &[9u8; 1024]);
    store.bucket("broken");
    let sts = scripted_sts().await;
    let config = ConfigBuilder::store(&store.url(), &["media"])
        .integration("delivery", "proxy")
        .set(
            "identity",
            "credentials",
            table([
                ("access_key_id", ACCESS_KEY.into()),
                ("secret_access_key_env", SECRET_ENV.into()),
            ]),
        )
        .add_integration(role_integration("assumed", "assumed", &store.url(), &sts))
        // Nothing listens on port 9: every AssumeRole of this role fails.
        .add_integration(role_integration(
            "broken",
            "broken",
            &store.url(),
            "http://127.0.0.1:9",
        ))
        .build();
    let gateway = Gateway::start(&config).await;
    let http = client();
    assert_eq!(presign(&gateway, "s3://media/a.bin", &[]).await.0, 200);
    for locator in [
        "s3://media/a.bin",
        "s3://assumed/b.bin",
        "s3://assumed/b.bin",
    ] {
        let url = gateway.url(&format!("/v1/object?locator={locator}"));
        let response = http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{locator}");
        response.bytes().await.unwrap();
    }
    let (status, _) = fetch(&gateway.url("/v1/object?locator=s3://media/missing.bin")).await;
    assert_eq!(status, 404);
    let (status, body) = fetch(&gateway.url("/v1/object?locator=s3://broken/c.bin")).await;
    assert!(status >= 500, "{status} {}", String::from_utf8_lossy(&body));

    let page = metrics(&gateway).await;
    let missing: Vec<&String> = used.iter().filter(|n| !has_sample(&page, n)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries {missing:?}, which /metrics does not export:\n{page}"
    );
    // Histogram samples belong to histograms the code declares.
    for name in &used {
        let base = family(&page, name);
        assert!(
            page.contains(&format!("# TYPE {base} ")),
            "{name}: no # TYPE {base}"
        );
    }
    eprintln!("dashboard metrics: {used:?}");
}

#[test]
fn metric_names_are_read_from_promql() {
    let names = metric_names(
        "histogram_quantile(0.95, sum by (le) (rate(s3gate_request_duration_seconds_bucket{a=\"b\"}[5m]))) / s3gate_x",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["s3gate_request_duration_seconds_bucket", "s3gate_x"]
    );
    assert!(metric_names("not_s3gate_y").is_empty());
}

const KUBERNETES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes");

fn manifest(name: &str) -> String {
    std::fs::read_to_string(format!("{KUBERNETES}/{name}")).unwrap()
}

/// The literal block `key: |` of a manifest, dedented.
fn literal_block(text: &str, key: &str) -> String {
    let mut lines = text.lines().skip_while(|l| l.trim() != format!("{key}: |"));
    let header = lines.next().unwrap_or_else(|| panic!("no {key}: |"));
    let indent = header.len() - header.trim_start().len() + 2;
    let mut out = String::new();
    for line in lines {
        if !line.trim().is_empty() && line.len() - line.trim_start().len() < indent {
            break;
        }
        out.push_str(line.get(indent..).unwrap_or(""));
        out.push('\n');
    }
    out
}

/// The `stringData` entries of the Secret manifest.
fn secret_entries(text: &str) -> Vec<(String, String)> {
    text.lines()
        .skip_while(|l| l.trim() != "stringData:")
        .skip(1)
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (key, value) = l.trim().split_once(": ").unwrap();
            (key.to_owned(), value.trim_matches('"').to_owned())
        })
        .collect()
}

/// The integer after `key: ` in a manifest.
fn field(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key}"))
        .parse()
        .unwrap()
}

/// The ConfigMap's s3gate.toml loads with the Secret mounted where the
/// Deployment mounts it, and the pod's grace period outlasts its drain.
#[tokio::test]
async fn the_kubernetes_config_loads_with_its_secret() {
    init();
    let deployment = manifest("deployment.yaml");
    assert!(deployment.contains("mountPath: /etc/s3gate/secrets"));
    assert!(deployment.contains("secretName: s3gate"));
    let secrets = tempfile::tempdir().unwrap();
    for (key, value) in secret_entries(&manifest("secret.yaml")) {
        assert!(
            value.starts_with("PLACEHOLDER"),
            "{key} is not marked as a placeholder"
        );
        std::fs::write(secrets.path().join(key), value).unwrap();
    }
    let toml = literal_block(&manifest("configmap.yaml"), "s3gate.toml");
    let local = toml.replace(
        "/etc/s3gate/secrets/",
        &format!("{}/", secrets.path().display()),
    );
    assert_ne!(local, toml, "the config reads no secret file");
    let config = s3gate::config::Config::parse(&local).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    // The App builds from it (clients, integrations, URL signing keys).
    s3gate::front::App::new(config).await.unwrap();

    let parsed: toml::Table = toml.parse().unwrap();
    let server = parsed["server"].as_table().unwrap();
    let grace = server["shutdown_grace_s"].as_integer().unwrap() as u64;
    let pause = field(&deployment, "seconds");
    let termination = field(&deployment, "terminationGracePeriodSeconds");
    assert!(
        termination > pause + grace,
        "terminationGracePeriodSeconds {termination} must exceed preStop {pause} s + shutdown_grace_s {grace}"
    );
    assert!(field(&deployment, "replicas") >= 2);
    assert!(server["url_signing_keys_file"]
        .as_str()
        .unwrap()
        .starts_with("/etc/s3gate/secrets/"));
    let hosts: Vec<&str> = server["allowed_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    assert!(hosts.contains(&"s3gate.s3gate.svc"), "{hosts:?}");
}
