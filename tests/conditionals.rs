//! Conditional requests and statuses through the gateway against moto's S3,
//! which honours ETags and dates as AWS does: `If-None-Match` → 304,
//! `If-Match` → 412, and the store's statuses kept on both APIs.
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

use support::moto::Moto;
use support::*;

fn object_url(gateway: &Gateway, locator: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("locator", locator)
        .finish();
    gateway.url(&format!("/v1/object?{query}"))
}

#[tokio::test]
async fn conditionals_and_statuses_keep_their_meaning() {
    init();
    let moto = Moto::start(&[("s3:cond/photo.jpg", "original bytes")]).await;
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret_file.path(), &moto.setup.secret_access_key).unwrap();
    let config = format!(
        "[[integrations]]\nname = \"moto\"\ndefault = true\ndelivery = \"proxy\"\nbuckets = [\"cond\"]\nendpoint_url = \"{}\"\n[integrations.credentials]\naccess_key_id = \"{}\"\nsecret_access_key_file = \"{}\"\n\n[s3_api]\nanonymous = true\n",
        moto.url,
        moto.setup.access_key_id,
        secret_file.path().display()
    );
    let gateway = Gateway::start(&config).await;
    for url in [
        object_url(&gateway, "s3://cond/photo.jpg"),
        gateway.url("/cond/photo.jpg"),
    ] {
        let first = client().get(&url).send().await.unwrap();
        assert_eq!(first.status(), 200, "{url}");
        // User metadata and encryption headers reach S3 clients.
        assert_eq!(first.headers()["x-amz-meta-origin"], "s3gate-test", "{url}");
        assert_eq!(first.headers()["x-amz-server-side-encryption"], "AES256");
        let etag = first.headers()["etag"].to_str().unwrap().to_owned();
        let modified = first.headers()["last-modified"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(first.bytes().await.unwrap().as_ref(), b"original bytes");

        let cases = [
            ("if-none-match", etag.as_str(), 304),
            ("if-none-match", "\"other\"", 200),
            ("if-match", etag.as_str(), 200),
            ("if-match", "\"other\"", 412),
            ("if-modified-since", modified.as_str(), 304),
            ("if-unmodified-since", "Mon, 01 Jan 2001 00:00:00 GMT", 412),
        ];
        for (header, value, status) in cases {
            let response = client()
                .get(&url)
                .header(header, value)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), status, "{url} {header}: {value}");
            if status == 304 {
                assert_eq!(response.headers()["etag"], etag.as_str());
            }
        }
        let beyond = client()
            .get(&url)
            .header("range", "bytes=5000-")
            .send()
            .await
            .unwrap();
        assert_eq!(beyond.status(), 416, "{url}");
        assert!(beyond.text().await.unwrap().contains("InvalidRange"));
        let missing = url.replace("photo.jpg", "missing.jpg");
        let response = client().get(&missing).send().await.unwrap();
        assert_eq!(response.status(), 404, "{missing}");
        let body = response.text().await.unwrap();
        assert!(body.contains("NoSuchKey"), "{body}");
    }
}
