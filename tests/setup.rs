//! Setup tooling against moto with IAM auth on: the documents `s3gate
//! policy` prints create a role the gateway assumes and reads through (the
//! policy is proven, not just well-formed), the access policy refuses keys
//! and buckets outside it, and `s3gate check --probe` reports a good
//! integration OK and each broken one with its step, code and hint.
//!
//! moto 5 evaluates actions, resources, principals and `StringEquals`
//! conditions (so the object ARNs, the bucket ARNs and `sts:ExternalId` are
//! proven here), but it skips `StringLike`: the ListBucket `s3:prefix`
//! condition is checked by the unit tests' exact documents only.
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

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::moto::Moto;
use support::*;

/// The account moto_setup.py creates its users in.
const ACCOUNT: &str = "123456789012";

/// Creates role `name` in moto from a trust and an access policy, with
/// moto's auth off for the two IAM calls and on again afterwards.
const CREATE_ROLE: &str = r#"
import json, sys, urllib.request
import boto3
url, name, trust, access = sys.argv[1:5]
def auth(count):
    request = urllib.request.Request(url + "/moto-api/reset-auth", data=count.encode(),
                                     headers={"Content-Type": "text/plain"}, method="POST")
    urllib.request.urlopen(request).read()
auth("1000000")
try:
    iam = boto3.session.Session(aws_access_key_id="setup", aws_secret_access_key="setup",
                                region_name="us-east-1").client("iam", endpoint_url=url)
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=open(trust).read())
    iam.put_role_policy(RoleName=name, PolicyName="s3gate-read", PolicyDocument=open(access).read())
    print(role["Role"]["Arn"])
finally:
    auth("0")
"#;

/// moto with objects inside and outside the prefix, and a second bucket.
async fn moto() -> Moto {
    init();
    Moto::start(&[
        ("s3:photos/task-1/a.jpg", "in task 1"),
        ("s3:photos/task-2/b.jpg", "in task 2"),
        ("s3:other/c.jpg", "another bucket"),
    ])
    .await
}

fn s3gate(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh external ID from `s3gate external-id`.
fn external_id() -> String {
    let out = s3gate(&["external-id"]);
    assert!(out.status.success());
    stdout(&out).trim().to_owned()
}

/// Config text: the gateway's identity is moto's `s3gate` user, named by
/// `[identity] principal_arn`, followed by `integrations`.
fn config(moto: &Moto, dir: &Path, integrations: &str) -> String {
    let secret = dir.join("identity-secret");
    std::fs::write(&secret, &moto.setup.secret_access_key).unwrap();
    format!(
        "[identity]\nprincipal_arn = \"arn:aws:iam::{ACCOUNT}:user/s3gate\"\n\n[identity.credentials]\naccess_key_id = \"{}\"\nsecret_access_key_file = \"{}\"\n\n[cors]\nallowed_origins = [\"https://app.example.com\"]\n\n{integrations}",
        moto.setup.access_key_id,
        secret.display()
    )
}

/// An integration assuming `role` with `external_id`, scoped by `scope`.
fn role_integration(moto: &Moto, name: &str, scope: &str, role: &str, external_id: &str) -> String {
    format!(
        "[[integrations]]\nname = \"{name}\"\n{scope}\ndelivery = \"proxy\"\nendpoint_url = \"{0}\"\nsts_endpoint = \"{0}\"\nrole_arn = \"{role}\"\nexternal_id = \"{external_id}\"\n\n",
        moto.url
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `s3gate policy --format json` for `name`.
fn policy_json(config: &Path, name: &str) -> serde_json::Value {
    let out = s3gate(&[
        "policy",
        "--config",
        config.to_str().unwrap(),
        name,
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Creates role `role_name` in moto from the documents printed for `name`.
fn create_role(moto: &Moto, dir: &Path, config: &Path, name: &str, role_name: &str) -> String {
    let docs = policy_json(config, name);
    let trust = write(dir, "trust.json", &docs["trust_policy"].to_string());
    let access = write(dir, "access.json", &docs["access_policy"].to_string());
    let out = Command::new(venv_bin("python"))
        .args(["-c", CREATE_ROLE, &moto.url, role_name])
        .arg(&trust)
        .arg(&access)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "create the role: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out).trim().to_owned()
}

/// The prefixed integration `acme`, its role created from its own printed
/// documents: (dir, config path, role ARN, external ID).
fn acme(moto: &Moto) -> (tempfile::TempDir, PathBuf, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let role = format!("arn:aws:iam::{ACCOUNT}:role/acme-reader");
    let external_id = external_id();
    let acme = role_integration(
        moto,
        "acme",
        "bucket = \"photos\"\nprefixes = [\"task-1/\"]",
        &role,
        &external_id,
    );
    let path = write(dir.path(), "acme.toml", &config(moto, dir.path(), &acme));
    let created = create_role(moto, dir.path(), &path, "acme", "acme-reader");
    assert_eq!(created, role);
    (dir, path, role, external_id)
}

async fn get(gateway: &Gateway, locator: &str) -> (u16, String) {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("locator", locator)
        .finish();
    let response = client()
        .get(gateway.url(&format!("/v1/object?{query}")))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn the_printed_policies_make_a_role_the_gateway_assumes_and_reads_through() {
    let moto = moto().await;
    let (dir, path, role, external_id) = acme(&moto);
    let docs = policy_json(&path, "acme");
    assert_eq!(
        docs["trust_policy"]["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
        external_id.as_str()
    );
    assert_eq!(
        docs["cors"],
        serde_json::Value::Null,
        "proxy delivery needs no bucket CORS"
    );

    // The gateway assumes the role through the printed trust policy and
    // reads (and lists) through the printed access policy.
    let gateway = Gateway::start(&std::fs::read_to_string(&path).unwrap()).await;
    assert_eq!(
        get(&gateway, "s3://photos/task-1/a.jpg").await,
        (200, "in task 1".into())
    );
    let list = client()
        .get(gateway.url("/v1/list?locator=s3://photos/task-1/"))
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    assert!(list.text().await.unwrap().contains("task-1/a.jpg"));
    let sessions = moto.assumed_roles().await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].role_arn, role);
    assert_eq!(
        sessions[0].external_id.as_deref(),
        Some(external_id.as_str())
    );

    // The same role without the gateway's own prefix check: moto refuses
    // what the access policy leaves out, a key outside the prefix and a
    // bucket it does not name.
    let wide = role_integration(
        &moto,
        "wide",
        "default = true\nbuckets = [\"photos\", \"other\"]",
        &role,
        &external_id,
    );
    let gateway = Gateway::start(&config(&moto, dir.path(), &wide)).await;
    assert_eq!(
        get(&gateway, "s3://photos/task-1/a.jpg").await,
        (200, "in task 1".into())
    );
    let (status, body) = get(&gateway, "s3://photos/task-2/b.jpg").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("AccessDenied"), "{body}");
    assert_eq!(get(&gateway, "s3://other/c.jpg").await.0, 403);
}

#[tokio::test]
async fn probe_says_ok_for_a_good_integration_and_why_each_broken_one_fails() {
    let moto = moto().await;
    let (dir, path, role, external_id) = acme(&moto);

    let out = s3gate(&["check", "--config", path.to_str().unwrap(), "--probe"]);
    assert!(
        out.status.success(),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains(
            "acme: OK (assumed the role; listed s3://photos/task-1/, HEAD s3://photos/task-1/a.jpg)"
        ),
        "{}",
        stdout(&out)
    );

    let secret = dir.path().join("identity-secret");
    let broken = [
        role_integration(
            &moto,
            "wrong-id",
            "bucket = \"photos-too\"",
            &role,
            "not-the-external-id",
        ),
        role_integration(&moto, "outside", "bucket = \"other\"", &role, &external_id),
        format!(
            "[[integrations]]\nname = \"no-bucket\"\nbucket = \"no-such-bucket\"\nendpoint_url = \"{}\"\n[integrations.credentials]\naccess_key_id = \"{}\"\nsecret_access_key_file = \"{}\"\n\n",
            moto.url,
            moto.setup.access_key_id,
            secret.display()
        ),
    ]
    .concat();
    let good = std::fs::read_to_string(&path).unwrap();
    let path = write(dir.path(), "broken.toml", &format!("{good}{broken}"));
    let out = s3gate(&["check", "--config", path.to_str().unwrap(), "--probe"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("3 of 4 integrations failed the probe"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no line for {name}: {text}"))
            .to_owned()
    };
    assert!(line("acme").starts_with("acme: OK"), "{text}");
    let wrong_id = line("wrong-id");
    assert!(
        wrong_id.starts_with("wrong-id: FAIL AssumeRole: AccessDenied: ")
            && wrong_id.contains("sts:ExternalId"),
        "{wrong_id}"
    );
    assert!(
        line("outside").starts_with("outside: FAIL ListObjectsV2 s3://other/: AccessDenied: the access policy does not allow s3:ListBucket"),
        "{text}"
    );
    assert!(
        line("no-bucket").starts_with(
            "no-bucket: FAIL ListObjectsV2 s3://no-such-bucket/: NoSuchBucket: the bucket does not exist"
        ),
        "{text}"
    );
    // Secrets never reach the output.
    assert!(!text.contains(&moto.setup.secret_access_key));
}
