//! Differential S3 fidelity: the same boto3 reads sent to moto's S3 directly
//! and through s3gate's S3 front in front of that moto must see the same
//! statuses, error codes, parsed bodies and the headers SDKs read
//! (tests/clients/fidelity_check.py); and `/v1/list` keeps every key of a
//! store that encodes listings (moto) as of one that does not (tests/s3_front.rs).
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

use serde_json::Value;
use support::config::ConfigBuilder;
use support::moto::Moto;
use support::*;

/// Objects seeded in moto (with a SHA-256 checksum, metadata and SSE).
const OBJECTS: [(&str, &str); 7] = [
    ("fid/photo.jpg", "0123456789abcdefghij"),
    ("fid/dir/a b+c.txt", "spaces and plus"),
    ("fid/dir/100%zz.txt", "a percent that starts no escape"),
    ("fid/dir/x+y.txt", "plus"),
    ("fid/dir/日本 語.txt", "unicode"),
    ("fid/dir/sub/inner.txt", "inner"),
    ("fid/dir/b&c<d>.txt", "xml specials"),
];

async fn moto_with_objects() -> Moto {
    let args: Vec<String> = OBJECTS
        .iter()
        .map(|(path, text)| format!("s3:{path}={text}"))
        .collect();
    let args: Vec<(&str, &str)> = args.iter().map(|a| a.split_once('=').unwrap()).collect();
    Moto::start(&args).await
}

/// A gateway whose S3 front (anonymous) reads moto with the gateway user's keys;
/// `ghost` is permitted but does not exist in moto.
async fn gateway_for(moto: &Moto, secret_file: &std::path::Path) -> Gateway {
    let keys = support::config::table([
        ("access_key_id", moto.setup.access_key_id.as_str().into()),
        (
            "secret_access_key_file",
            secret_file.display().to_string().into(),
        ),
    ]);
    let config = ConfigBuilder::store(&moto.url, &["fid", "ghost"])
        .integration("delivery", "proxy")
        .integration("credentials", keys)
        .s3_anonymous()
        .build();
    Gateway::start(&config).await
}

async fn fidelity_check(moto: &Moto, gateway: &Gateway) -> Value {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/fidelity_check.py"
    );
    let out = tokio::process::Command::new(venv_bin("python"))
        .arg(script)
        .arg(&moto.url)
        .arg(gateway.url(""))
        .arg(&moto.setup.access_key_id)
        .arg(&moto.setup.secret_access_key)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_ENDPOINT_URL")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), out)
        .await
        .expect("fidelity_check.py finishes within 120 s")
        .unwrap();
    assert!(
        out.status.success(),
        "fidelity_check.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn boto3_reads_through_the_s3_front_match_moto_directly() {
    init();
    let moto = moto_with_objects().await;
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret_file.path(), &moto.setup.secret_access_key).unwrap();
    let gateway = gateway_for(&moto, secret_file.path()).await;
    let seen = fidelity_check(&moto, &gateway).await;
    let diffs = seen["diffs"].as_array().unwrap();
    assert!(
        diffs.is_empty(),
        "the S3 front differs from moto:\n{}",
        serde_json::to_string_pretty(diffs).unwrap()
    );
    // The comparisons are about something: each case saw what it tests.
    let case = |name: &str| seen["cases"][name]["gateway"].clone();
    let header = |name: &str, header: &str| case(name)["headers"][header].clone();
    assert_eq!(case("get")["bytes"], "0123456789abcdefghij");
    assert!(header("get-checksum", "x-amz-checksum-sha256").is_string());
    assert!(header("head-checksum", "x-amz-checksum-sha256").is_string());
    assert_eq!(header("range", "content-range"), "bytes 2-5/20");
    assert_eq!(case("range")["bytes"], "2345");
    assert_eq!(case("suffix-range")["bytes"], "hij");
    for (name, status, code) in [
        ("range-beyond", 416, "InvalidRange"),
        ("if-none-match", 304, "304"),
        ("if-match-other", 412, "PreconditionFailed"),
        ("if-unmodified-old", 412, "PreconditionFailed"),
        ("missing-key", 404, "NoSuchKey"),
        ("missing-key-head", 404, "404"),
        ("missing-bucket", 404, "NoSuchBucket"),
        ("list-missing-bucket", 404, "NoSuchBucket"),
        ("head-missing-bucket", 404, "404"),
        ("location-missing-bucket", 404, "NoSuchBucket"),
    ] {
        assert_eq!(case(name)["status"], status, "{name}: {}", case(name));
        assert_eq!(case(name)["code"], code, "{name}: {}", case(name));
    }
    assert_eq!(header("head-bucket", "x-amz-bucket-region"), "us-east-1");
    // Store errors report the store's request id (moto's, in its body), not the gateway's.
    for name in ["missing-key", "missing-bucket", "location-missing-bucket"] {
        assert_eq!(case(name)["request_id"], true, "{name}: {}", case(name));
    }
    let all = case("list-all");
    let keys: Vec<&str> = all["body"]["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Key"].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = OBJECTS.iter().map(|(p, _)| &p[4..]).collect();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(
        case("list-delimiter")["body"]["CommonPrefixes"],
        serde_json::json!([{"Prefix": "dir/sub/"}])
    );
}

#[tokio::test]
async fn v1_list_keeps_every_key_of_a_store_that_encodes() {
    init();
    let moto = moto_with_objects().await;
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret_file.path(), &moto.setup.secret_access_key).unwrap();
    let gateway = gateway_for(&moto, secret_file.path()).await;
    let mut expected: Vec<&str> = OBJECTS
        .iter()
        .map(|(p, _)| &p[4..])
        .filter(|k| k.starts_with("dir/") && !k.starts_with("dir/sub/"))
        .collect();
    expected.sort_unstable();
    for extra in ["", "&all=true", "&limit=1&all=true"] {
        let locator: String = form_urlencoded::byte_serialize(b"s3://fid/dir/").collect();
        let url = gateway.url(&format!("/v1/list?locator={locator}&delimiter=%2F{extra}"));
        let response = client().get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let page: Value = response.json().await.unwrap();
        let keys: Vec<&str> = page["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, expected, "{url}");
        assert_eq!(page["prefixes"], serde_json::json!(["dir/sub/"]), "{url}");
    }
}
