//! A reload against a real STS (moto, auth on): a role whose key is
//! unchanged keeps its cached session (no new AssumeRole), a changed role is
//! assumed anew with the new settings.
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

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use s3gate::config::Config;
use s3gate::front::App;
use support::moto::Moto;
use support::*;

const READER_ID: &str = "s3gate-ext-reader-51c2";
const AUDIT_ID: &str = "s3gate-ext-audit-9d04";

fn config(moto: &Moto, dir: &std::path::Path, audit_session: &str) -> Config {
    let secret = dir.join("identity");
    std::fs::write(&secret, &moto.setup.secret_access_key).unwrap();
    let integration = |name: &str, scope: &str, role: &str, external_id: &str, extra: &str| {
        format!(
            "[[integrations]]\nname = \"{name}\"\n{scope}\nendpoint_url = \"http://127.0.0.1:9000\"\nrole_arn = \"{}\"\nexternal_id = \"{external_id}\"\nsts_endpoint = \"{}\"\n{extra}\n",
            moto.setup.roles[role], moto.url
        )
    };
    let text =
        format!(
        "[identity.credentials]\naccess_key_id = \"{}\"\nsecret_access_key_file = \"{}\"\n\n{}\n{}",
        moto.setup.access_key_id,
        secret.display(),
        integration("acme", "default = true\nbuckets = [\"media\"]", "reader", READER_ID, ""),
        integration(
            "audit",
            "buckets = [\"logs\"]",
            "audit",
            AUDIT_ID,
            &format!("session_name = \"{audit_session}\""),
        ),
    );
    Config::parse(&text).unwrap()
}

/// Presigns `locator` on `app`: the status, and the session's access key.
async fn presign(app: &App, locator: &str) -> (u16, String) {
    let request = http::Request::get(format!("/v1/presign?locator={locator}"))
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = app.handle(request).await;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let url = body["url"].as_str().unwrap_or_else(|| panic!("{body}"));
    let credential = url
        .split("X-Amz-Credential=")
        .nth(1)
        .and_then(|c| c.split("%2F").next())
        .unwrap();
    (status, credential.to_owned())
}

#[tokio::test]
async fn a_reload_assumes_changed_roles_only() {
    init();
    let moto = Moto::start(&[("reader", READER_ID), ("audit", AUDIT_ID)]).await;
    let dir = tempfile::tempdir().unwrap();
    let first = App::new(config(&moto, dir.path(), "s3gate")).await.unwrap();
    let (status, reader_key) = presign(&first, "s3://media/cat.jpg").await;
    assert_eq!(status, 200);
    let (_, audit_key) = presign(&first, "s3://logs/day.log").await;
    assert_eq!(moto.assumed_roles().await.len(), 2);

    // The reader role is unchanged; the audit role's session name changed.
    let second = App::reload(config(&moto, dir.path(), "s3gate-rotated"), &first)
        .await
        .unwrap();
    assert_eq!(
        presign(&second, "s3://media/cat.jpg").await,
        (200, reader_key),
        "the unchanged role's session is kept"
    );
    assert_eq!(moto.assumed_roles().await.len(), 2, "no AssumeRole for it");
    let (status, rotated) = presign(&second, "s3://logs/day.log").await;
    assert_eq!(status, 200);
    assert_ne!(rotated, audit_key, "the changed role has a new session");
    let sessions = moto.assumed_roles().await;
    assert_eq!(sessions.len(), 3, "one AssumeRole for the changed role");
    assert_eq!(sessions[2].role_arn, moto.setup.roles["audit"]);
    assert_eq!(sessions[2].access_key_id, rotated);
    // The old gateway, still serving requests in flight, keeps its sessions.
    assert_eq!(presign(&first, "s3://logs/day.log").await, (200, audit_key));
    assert_eq!(moto.assumed_roles().await.len(), 3);
}
