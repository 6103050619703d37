//! s3gate in front of Garage, a self-hosted S3 server of the kind on-prem
//! customers run (single node on loopback, path-style, region `garage`,
//! static keys): presigned URLs and proxy delivery for awkward keys, ranges
//! and conditionals, listings past 1,000 keys with delimiters and
//! `encoding-type=url` on both APIs, error codes and checksums.
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

use std::time::Duration;

use serde_json::Value;
use support::garage::Garage;
use support::*;

/// Keys a file system cannot hold but Garage can, beside [`AWKWARD_KEYS`].
const STORE_ONLY_KEYS: &[&str] = &["a//double//slash", "dir/", "trailing//", "sp ace/+/%/~/"];

/// Longest a Python client run may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

fn locator_query(path: &str, locator: &str, extra: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("locator", locator);
    for (k, v) in extra {
        query.append_pair(k, v);
    }
    format!("{path}?{}", query.finish())
}

/// The S3 front's path of `bucket/key`.
fn s3_path(bucket: &str, key: &str) -> String {
    s3gate::sigv4::encode_path(&format!("/{bucket}/{key}"))
}

fn body_of(i: usize, key: &str) -> Vec<u8> {
    format!("object {i}: {key}").into_bytes()
}

#[tokio::test]
async fn awkward_keys_round_trip_through_every_delivery() {
    let garage = Garage::start(&["media"]).await;
    let keys: Vec<&str> = AWKWARD_KEYS
        .iter()
        .chain(STORE_ONLY_KEYS)
        .copied()
        .collect();
    for (i, key) in keys.iter().enumerate() {
        garage.put("media", key, &body_of(i, key), &[]).await;
    }
    let redirect = Gateway::start(&garage.config(&["media"]).build()).await;
    let proxy = Gateway::start(
        &garage
            .config(&["media"])
            .integration("delivery", "proxy")
            .build(),
    )
    .await;
    for (i, key) in keys.iter().enumerate() {
        let expected = body_of(i, key);
        let locator = format!("s3://media/{key}");
        // A presigned Garage URL, fetched from Garage itself.
        let (status, body) = presign(&redirect, &locator, &[]).await;
        assert_eq!(status, 200, "{key}: {body}");
        assert_eq!(body["integration"], "garage");
        let url = body["url"].as_str().unwrap();
        assert!(
            url.starts_with(&format!("{}/media/", garage.endpoint)),
            "{url}"
        );
        assert_eq!(fetch(url).await, (200, expected.clone()), "presigned {key}");
        // The 307 of redirect delivery leads to the same bytes.
        let response = client()
            .get(redirect.url(&locator_query("/v1/object", &locator, &[])))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 307, "{key}");
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(
            fetch(&location).await,
            (200, expected.clone()),
            "redirected {key}"
        );
        // Proxy delivery and the S3 front stream them through s3gate.
        let proxied = proxy.url(&locator_query("/v1/object", &locator, &[]));
        assert_eq!(
            fetch(&proxied).await,
            (200, expected.clone()),
            "proxied {key}"
        );
        let (status, bytes) = fetch(&proxy.url(&s3_path("media", key))).await;
        assert_eq!(
            (status, bytes.as_slice()),
            (200, expected.as_slice()),
            "S3 front {key}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

#[tokio::test]
async fn ranges_conditionals_and_errors_keep_their_meaning() {
    let garage = Garage::start(&["media"]).await;
    let bytes: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    garage
        .put(
            "media",
            "clip/vid eo+1.mp4",
            &bytes,
            &[
                ("content-type", "video/mp4"),
                ("x-amz-meta-origin", "garage-test"),
            ],
        )
        .await;
    // `ghost` is permitted by the config but Garage has no such bucket.
    let gateway = Gateway::start(
        &garage
            .config(&["media", "ghost"])
            .integration("delivery", "proxy")
            .build(),
    )
    .await;
    let http = client();
    let object = gateway.url(&locator_query(
        "/v1/object",
        "s3://media/clip/vid eo+1.mp4",
        &[],
    ));
    let front = gateway.url(&s3_path("media", "clip/vid eo+1.mp4"));
    for url in [&object, &front] {
        let first = http.get(url).send().await.unwrap();
        assert_eq!(first.status(), 200, "{url}");
        assert_eq!(first.headers()["content-type"], "video/mp4", "{url}");
        assert_eq!(first.headers()["x-amz-meta-origin"], "garage-test", "{url}");
        assert_eq!(first.headers()["accept-ranges"], "bytes", "{url}");
        let etag = first.headers()["etag"].to_str().unwrap().to_owned();
        let modified = first.headers()["last-modified"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(first.bytes().await.unwrap().as_ref(), bytes.as_slice());

        let ranges = [
            ("bytes=2-5", "bytes 2-5/10000", &bytes[2..=5]),
            ("bytes=-4", "bytes 9996-9999/10000", &bytes[9996..]),
            ("bytes=9000-", "bytes 9000-9999/10000", &bytes[9000..]),
        ];
        for (range, content_range, part) in ranges {
            let response = http.get(url).header("range", range).send().await.unwrap();
            assert_eq!(response.status(), 206, "{url} {range}");
            assert_eq!(
                response.headers()["content-range"],
                content_range,
                "{url} {range}"
            );
            assert_eq!(
                response.bytes().await.unwrap().as_ref(),
                part,
                "{url} {range}"
            );
        }
        let beyond = http
            .get(url)
            .header("range", "bytes=20000-")
            .send()
            .await
            .unwrap();
        assert_eq!(beyond.status(), 416, "{url}");
        assert!(
            beyond.text().await.unwrap().contains("InvalidRange"),
            "{url}"
        );

        let cases = [
            ("if-none-match", etag.as_str(), 304),
            ("if-none-match", "\"other\"", 200),
            ("if-match", etag.as_str(), 200),
            ("if-match", "\"other\"", 412),
            ("if-modified-since", modified.as_str(), 304),
            ("if-unmodified-since", "Mon, 01 Jan 2001 00:00:00 GMT", 412),
        ];
        for (header, value, status) in cases {
            let response = http.get(url).header(header, value).send().await.unwrap();
            assert_eq!(response.status(), status, "{url} {header}: {value}");
            if status == 304 {
                assert_eq!(response.headers()["etag"], etag.as_str(), "{url}");
            }
            if status == 412 {
                let body = response.text().await.unwrap();
                assert!(body.contains("PreconditionFailed"), "{url}: {body}");
            }
        }
    }
    // A missing key is 404 NoSuchKey on both APIs (JSON and S3 XML), and so
    // is a presigned URL of one, straight from Garage.
    let missing = http
        .get(gateway.url(&locator_query(
            "/v1/object",
            "s3://media/clip/none.mp4",
            &[],
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "NoSuchKey", "{body}");
    let missing = http
        .get(gateway.url("/media/clip/none.mp4"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body = missing.text().await.unwrap();
    assert!(body.contains("<Code>NoSuchKey</Code>"), "{body}");
    let head = http
        .head(gateway.url("/media/clip/none.mp4"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 404);
    let redirect = Gateway::start(&garage.config(&["media"]).build()).await;
    let (status, body) = presign(&redirect, "s3://media/clip/none.mp4", &[]).await;
    assert_eq!(status, 200, "{body}");
    let (status, bytes) = fetch(body["url"].as_str().unwrap()).await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&bytes).contains("NoSuchKey"));
    // A permitted bucket the store does not have is the store's NoSuchBucket.
    let ghost = http.get(gateway.url("/ghost/a.txt")).send().await.unwrap();
    assert_eq!(ghost.status(), 404);
    let body = ghost.text().await.unwrap();
    assert!(body.contains("<Code>NoSuchBucket</Code>"), "{body}");
    let ghost = http
        .get(gateway.url(&locator_query("/v1/object", "s3://ghost/a.txt", &[])))
        .send()
        .await
        .unwrap();
    assert_eq!(ghost.status(), 404);
    let body: Value = ghost.json().await.unwrap();
    assert_eq!(body["error"]["code"], "NoSuchBucket", "{body}");
    assert_eq!(fetch(&gateway.url("/healthz")).await.0, 200);
}

/// 1,100 keys under `big/`, three "folders" and a few loose keys, with
/// characters `encoding-type=url` must carry: space, `+`, `%`, `&`, unicode.
fn listing_keys() -> Vec<String> {
    let mut keys: Vec<String> = (0..1_100)
        .map(|i| format!("big/d{}/{i:04} a+b%c&\u{fc}.txt", i % 3))
        .collect();
    keys.extend(
        [
            "big/loose 1.txt",
            "big/loose+2.txt",
            "big/100%zz.txt",
            "big/\u{65e5}.txt",
        ]
        .map(String::from),
    );
    keys.sort();
    keys
}

#[tokio::test]
async fn listings_past_a_thousand_keys_on_both_apis() {
    let garage = Garage::start(&["media"]).await;
    let keys = listing_keys();
    let objects = keys.iter().map(|k| (k.clone(), b"x".to_vec())).collect();
    garage.put_many("media", objects, 16).await;
    let gateway = Gateway::start(&garage.config(&["media"]).build()).await;

    // `/v1/list?all=true` follows Garage's pages server-side.
    let url = gateway.url(&locator_query(
        "/v1/list",
        "s3://media/big/",
        &[("all", "true")],
    ));
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    let listed: Vec<&str> = page["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), keys.len());
    assert_eq!(listed, keys, "every key, decoded, in order");
    assert!(page["next_cursor"].is_null(), "{}", page["next_cursor"]);

    // Page by page with the cursor, a delimiter folding the folders.
    let url = gateway.url(&locator_query(
        "/v1/list",
        "s3://media/big/",
        &[("delimiter", "/")],
    ));
    let page: Value = client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        page["prefixes"],
        serde_json::json!(["big/d0/", "big/d1/", "big/d2/"])
    );
    let loose: Vec<&str> = page["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = keys
        .iter()
        .map(String::as_str)
        .filter(|k| !k.starts_with("big/d"))
        .collect();
    assert_eq!(loose, expected);
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let mut extra = vec![("limit", "1000")];
        if let Some(c) = &cursor {
            extra.push(("cursor", c));
        }
        let url = gateway.url(&locator_query("/v1/list", "s3://media/big/", &extra));
        let page: Value = client()
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for object in page["objects"].as_array().unwrap() {
            paged.push(object["key"].as_str().unwrap().to_owned());
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert!(cursor.is_none(), "pagination does not end");
    assert_eq!(paged, keys);

    // The S3 front, raw: the same query to Garage (signed) and through
    // s3gate gives the same listing. Keys, prefixes and the delimiter are
    // compared decoded (stores differ in whether they escape `/`), and the
    // keys must come encoded: `%` travels as `%25`.
    let query = "list-type=2&prefix=big%2F&encoding-type=url&delimiter=%2F&max-keys=2";
    let direct = garage
        .signed_query("GET", "media", query)
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 200);
    let direct = direct.text().await.unwrap();
    let through = client()
        .get(gateway.url(&format!("/media?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(through.status(), 200);
    let through = through.text().await.unwrap();
    for tag in ["Key", "Prefix", "Delimiter"] {
        assert_eq!(
            decoded(&through, tag),
            decoded(&direct, tag),
            "<{tag}>: {through}"
        );
    }
    for tag in [
        "IsTruncated",
        "KeyCount",
        "EncodingType",
        "MaxKeys",
        "NextContinuationToken",
        "Size",
        "ETag",
    ] {
        assert_eq!(
            elements(&through, tag),
            elements(&direct, tag),
            "<{tag}>: {through}"
        );
    }
    assert_eq!(elements(&through, "EncodingType"), ["url"]);
    assert_eq!(decoded(&through, "Key"), ["big/100%zz.txt"]);
    assert!(elements(&through, "Key")[0].contains("%25zz"), "{through}");

    // boto3's paginator (which asks for encoding-type=url and decodes).
    let listed = boto3_list(&gateway, "media", "big/", "").await;
    assert_eq!(listed["keys"], serde_json::json!(keys));
    assert!(listed["pages"].as_u64().unwrap() >= 2, "{listed}");
    let folded = boto3_list(&gateway, "media", "big/", "/").await;
    assert_eq!(
        folded["prefixes"],
        serde_json::json!(["big/d0/", "big/d1/", "big/d2/"])
    );
    assert_eq!(folded["keys"], serde_json::json!(expected));
}

/// The text of every `<tag>` element, in order.
fn elements(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split(&close).next())
        .map(str::to_owned)
        .collect()
}

/// Every `<tag>` element, decoded from `encoding-type=url` (`+` is a space).
fn decoded(xml: &str, tag: &str) -> Vec<String> {
    elements(xml, tag)
        .iter()
        .map(|v| {
            let pair = format!("v={v}");
            form_urlencoded::parse(pair.as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .collect()
}

/// Lists `bucket/prefix` with boto3's paginator against the gateway's S3
/// front → `{"keys", "prefixes", "pages"}`.
async fn boto3_list(gateway: &Gateway, bucket: &str, prefix: &str, delimiter: &str) -> Value {
    const SCRIPT: &str = r#"
import json, sys, boto3
from botocore.config import Config
endpoint, bucket, prefix, delimiter = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="garage",
                  aws_access_key_id="AKIDCLIENTDUMMY", aws_secret_access_key="client-dummy-secret",
                  config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                                retries={"max_attempts": 1}))
keys, prefixes, pages = [], [], 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter=delimiter):
    pages += 1
    keys += [o["Key"] for o in page.get("Contents", [])]
    prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
print(json.dumps({"keys": keys, "prefixes": prefixes, "pages": pages}))
"#;
    python(SCRIPT, &[&gateway.url(""), bucket, prefix, delimiter]).await
}

/// Runs a Python script from the test venv (boto3) with `args`, in an
/// environment that can only reach loopback, and parses its JSON output.
async fn python(script: &str, args: &[&str]) -> Value {
    let mut command = tokio::process::Command::new(venv_bin("python"));
    command
        .arg("-c")
        .arg(script)
        .args(args)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("NO_PROXY", "*")
        .env("PYTHONUTF8", "1")
        .kill_on_drop(true);
    let output = tokio::time::timeout(CLIENT_TIMEOUT, command.output())
        .await
        .expect("python finishes in time")
        .expect("run python");
    assert!(
        output.status.success(),
        "python: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Standard base64 with padding, for `x-amz-checksum-*` values.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn checksums_come_back_when_asked() {
    use sha2::{Digest, Sha256};
    let garage = Garage::start(&["media"]).await;
    let bytes = b"checksummed bytes".repeat(100);
    let checksum = base64(&Sha256::digest(&bytes));
    garage
        .put(
            "media",
            "sum/a b.bin",
            &bytes,
            &[("x-amz-checksum-sha256", &checksum)],
        )
        .await;
    // Garage keeps the checksum and returns it when asked (the header must
    // be signed: Garage refuses an unsigned x-amz-* header).
    let direct = garage
        .signed(
            "GET",
            "media",
            "sum/a b.bin",
            &[("x-amz-checksum-mode", "ENABLED")],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 200);
    assert_eq!(direct.headers()["x-amz-checksum-sha256"], checksum.as_str());

    // The S3 front forwards the client's checksum mode (signed) and passes
    // the checksum back, as SDKs validate it.
    let gateway = Gateway::start(&garage.config(&["media"]).build()).await;
    let response = client()
        .get(gateway.url(&s3_path("media", "sum/a b.bin")))
        .header("x-amz-checksum-mode", "ENABLED")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("x-amz-checksum-sha256")
            .map(|v| v.to_str().unwrap()),
        Some(checksum.as_str()),
        "{:?}",
        response.headers()
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), bytes.as_slice());
}

#[tokio::test]
async fn sse_c_objects_are_read_with_their_key_through_the_s3_front() {
    // boto3 stores an object encrypted with a customer key in Garage, then
    // reads it through the S3 front with and without that key: Garage
    // demands the key headers, signed, on every read.
    const SCRIPT: &str = r#"
import json, sys, boto3
from botocore.config import Config
from botocore.exceptions import ClientError
garage, key_id, secret, gateway = sys.argv[1:5]
config = Config(s3={"addressing_style": "path"}, signature_version="s3v4", retries={"max_attempts": 1})
direct = boto3.client("s3", endpoint_url=garage, region_name="garage", aws_access_key_id=key_id,
                      aws_secret_access_key=secret, config=config)
front = boto3.client("s3", endpoint_url=gateway, region_name="garage", aws_access_key_id="AKIDCLIENTDUMMY",
                     aws_secret_access_key="client-dummy-secret", config=config)
sse = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": "k" * 32}
body = b"secret bytes " * 1000
direct.put_object(Bucket="media", Key="sse/c b.bin", Body=body, **sse)
out = {}
got = front.get_object(Bucket="media", Key="sse/c b.bin", **sse)
out["same_bytes"] = got["Body"].read() == body
out["algorithm"] = got.get("SSECustomerAlgorithm")
part = front.get_object(Bucket="media", Key="sse/c b.bin", Range="bytes=0-5", **sse)
out["range"] = part["Body"].read().decode()
out["head_length"] = front.head_object(Bucket="media", Key="sse/c b.bin", **sse)["ContentLength"]
try:
    front.get_object(Bucket="media", Key="sse/c b.bin")
    out["without_key"] = "200"
except ClientError as e:
    out["without_key"] = str(e.response["ResponseMetadata"]["HTTPStatusCode"])
print(json.dumps(out))
"#;
    let garage = Garage::start(&["media"]).await;
    let gateway = Gateway::start(&garage.config(&["media"]).build()).await;
    let out = python(
        SCRIPT,
        &[
            &garage.endpoint,
            &garage.access_key_id,
            &garage.secret_access_key,
            &gateway.url(""),
        ],
    )
    .await;
    assert_eq!(out["same_bytes"], true, "{out}");
    assert_eq!(out["algorithm"], "AES256", "{out}");
    assert_eq!(out["range"], "secret", "{out}");
    assert_eq!(out["head_length"], 13_000, "{out}");
    assert_eq!(out["without_key"], "400", "{out}");
}
