//! S3-front fidelity against the embedded store (strict SigV4, and a store
//! that echoes `encoding-type=url` without encoding): listing positions
//! checked like keys, listings that keep every key, signed forwarding of
//! checksum-mode, SSE-C and requester-pays headers, and GetBucketLocation
//! asked of the store.
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

use std::sync::{Arc, Mutex};

use s3gate::demo::store::{EmbeddedStore, Gate, SimpleAuth};
use support::config::ConfigBuilder;
use support::*;

fn proxy_config(endpoint: &str, buckets: &[&str]) -> String {
    ConfigBuilder::store(endpoint, buckets)
        .integration("delivery", "proxy")
        .s3_anonymous()
        .build()
}

fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// `(status, S3 code or JSON code, body)` of a GET.
async fn get(url: &str) -> (u16, String) {
    let response = client().get(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The text of every `<name>` element under `<parent>` (document order).
fn texts(xml: &str, parent: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for chunk in xml.split(&format!("<{parent}>")).skip(1) {
        let chunk = chunk.split(&format!("</{parent}>")).next().unwrap();
        if let Some(value) = chunk.split(&format!("<{name}>")).nth(1) {
            out.push(
                value
                    .split(&format!("</{name}>"))
                    .next()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    out
}

/// How SDKs decode `encoding-type=url` (botocore: `unquote_plus`).
fn unquote_plus(value: &str) -> String {
    form_urlencoded::parse(format!("k={value}").as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned()
}

#[tokio::test]
async fn listing_positions_with_dot_segments_are_refused_before_the_store() {
    let store = FsStore::start().await;
    store.put("media", "datasets/a.png", b"a");
    store.put("media", "private/b.png", b"b");
    let gateway = Gateway::start(&proxy_config(&store.url(), &["media"])).await;
    let dotted_token = "ZGF0YXNldHMvLi4vcHJpdmF0ZS94"; // base64("datasets/../private/x")
    let refused = [
        format!(
            "/media?list-type=2&prefix={}",
            encode("datasets/../private/")
        ),
        format!("/media?list-type=2&prefix={}", encode("datasets/..")),
        format!(
            "/media?list-type=2&prefix=datasets%2F&start-after={}",
            encode("datasets/../private/")
        ),
        format!("/media?prefix=datasets%2F&marker={}", encode("./x")),
        format!("/media?list-type=2&prefix=datasets%2F&continuation-token={dotted_token}"),
        format!(
            "/media?list-type=2&prefix=datasets%2F&continuation-token={}",
            encode("datasets/../private/x")
        ),
        "/media?list-type=2&encoding-type=base64".to_owned(),
        format!(
            "/v1/list?locator={}&cursor={dotted_token}",
            encode("s3://media/datasets/")
        ),
        format!(
            "/v1/list?locator={}&cursor={}",
            encode("s3://media/datasets/"),
            encode("datasets/../private/x")
        ),
    ];
    for path in &refused {
        let (status, body) = get(&gateway.url(path)).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("InvalidArgument"), "{path}: {body}");
    }
    assert_eq!(store.requests(), 0, "no refused listing reached the store");
    // Dots inside a segment are ordinary.
    let (status, body) = get(&gateway.url("/media?list-type=2&prefix=datasets%2F..x")).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = get(&gateway.url("/healthz")).await;
    assert_eq!(status, 200);
}

/// Keys the embedded store (which does not encode) returns as stored.
const AWKWARD: [&str; 4] = ["k/a b+c.txt", "k/100%zz.txt", "k/x+y.txt", "k/日本 語.txt"];

#[tokio::test]
async fn listings_keep_every_key_of_a_store_that_does_not_encode() {
    let store = FsStore::start().await;
    for key in AWKWARD {
        store.put("media", key, b"x");
    }
    store.put("media", "k/sub dir+/inner.txt", b"x");
    let gateway = Gateway::start(&proxy_config(&store.url(), &["media"])).await;
    let mut expected: Vec<String> = AWKWARD.iter().map(|k| (*k).to_owned()).collect();
    expected.sort();

    // /v1/list: one page, and every page.
    for extra in ["", "&all=true", "&limit=1&all=true"] {
        let url = gateway.url(&format!(
            "/v1/list?locator={}&delimiter=%2F{extra}",
            encode("s3://media/k/")
        ));
        let response = client().get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let page: serde_json::Value = response.json().await.unwrap();
        let mut keys: Vec<String> = page["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["key"].as_str().unwrap().to_owned())
            .collect();
        keys.sort();
        assert_eq!(keys, expected, "{url}");
        assert_eq!(
            page["prefixes"],
            serde_json::json!(["k/sub dir+/"]),
            "{url}"
        );
    }

    // The S3 front, as SDKs ask (encoding-type=url) and raw.
    let url = gateway.url("/media?list-type=2&prefix=k%2F&delimiter=%2F&encoding-type=url");
    let (status, xml) = get(&url).await;
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<EncodingType>url</EncodingType>"), "{xml}");
    let mut keys: Vec<String> = texts(&xml, "Contents", "Key")
        .iter()
        .map(|k| unquote_plus(k))
        .collect();
    keys.sort();
    assert_eq!(keys, expected, "{xml}");
    let prefixes: Vec<String> = texts(&xml, "CommonPrefixes", "Prefix")
        .iter()
        .map(|p| unquote_plus(p))
        .collect();
    assert_eq!(prefixes, ["k/sub dir+/"], "{xml}");

    let (status, xml) = get(&gateway.url("/media?list-type=2&prefix=k%2F&delimiter=%2F")).await;
    assert_eq!(status, 200, "{xml}");
    assert!(!xml.contains("EncodingType"), "{xml}");
    let mut keys = texts(&xml, "Contents", "Key");
    keys.sort();
    assert_eq!(keys, expected, "{xml}");
}

/// An embedded store that records every request's headers before verifying it.
async fn recording_store() -> (
    EmbeddedStore,
    tempfile::TempDir,
    Arc<Mutex<Vec<http::HeaderMap>>>,
) {
    init();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("media")).unwrap();
    std::fs::write(dir.path().join("media/photo.jpg"), b"photo bytes").unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let gate: Gate = Arc::new(move |parts| {
        record.lock().unwrap().push(parts.headers.clone());
        Box::pin(async { Ok(()) })
    });
    let auth = SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY);
    let store = EmbeddedStore::start(loopback().await, dir.path(), auth, Some(gate)).unwrap();
    (store, dir, seen)
}

const SSE_C: [(&str, &str); 3] = [
    ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
    (
        "x-amz-server-side-encryption-customer-key",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    ),
    (
        "x-amz-server-side-encryption-customer-key-md5",
        "zZ5FnqcIqUjVwvWmyog4zw==",
    ),
];

#[tokio::test]
async fn checksum_mode_sse_c_and_requester_pays_are_forwarded_and_signed() {
    let (store, _dir, seen) = recording_store().await;
    let gateway = Gateway::start(&proxy_config(&store.url(), &["media"])).await;
    let mut sent: Vec<(&str, &str)> = SSE_C.to_vec();
    sent.push(("x-amz-checksum-mode", "ENABLED"));
    sent.push(("x-amz-request-payer", "requester"));
    let object = format!("/v1/object?locator={}", encode("s3://media/photo.jpg"));
    for path in ["/media/photo.jpg", object.as_str()] {
        seen.lock().unwrap().clear();
        let mut request = client().get(gateway.url(path));
        for (name, value) in &sent {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        // The store verified the signature over every header it received.
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.bytes().await.unwrap().as_ref(), b"photo bytes");
        let seen = seen.lock().unwrap();
        let headers = seen.last().expect("the store was asked");
        let authorization = headers["authorization"].to_str().unwrap();
        let signed = authorization
            .split("SignedHeaders=")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        for (name, value) in &sent {
            assert_eq!(headers[*name], *value, "{path}: {name} reaches the store");
            assert!(
                signed.split(';').any(|n| n == *name),
                "{path}: {name} in {signed}"
            );
        }
    }
    // Listings and HeadBucket forward requester pays (and only that).
    for (method, path) in [
        (reqwest::Method::GET, "/media?list-type=2&encoding-type=url"),
        (reqwest::Method::HEAD, "/media"),
    ] {
        seen.lock().unwrap().clear();
        let response = client()
            .request(method.clone(), gateway.url(path))
            .header("x-amz-request-payer", "requester")
            .header(SSE_C[0].0, SSE_C[0].1)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{method} {path}");
        let seen = seen.lock().unwrap();
        let headers = seen.last().expect("the store was asked");
        assert_eq!(headers["x-amz-request-payer"], "requester", "{path}");
        assert!(!headers.contains_key(SSE_C[0].0), "{path}");
    }
    // A value that cannot be signed is a 400, not a panic or a 500.
    let response = client()
        .get(gateway.url("/media/photo.jpg"))
        .header(
            "x-amz-checksum-mode",
            http::HeaderValue::from_bytes(b"\xffbad").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn bucket_location_asks_the_store() {
    let store = FsStore::start().await;
    store.put("media", "a.png", b"a");
    let gateway = Gateway::start(&proxy_config(&store.url(), &["media", "ghost"])).await;
    let (status, body) = get(&gateway.url("/ghost?location")).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("<Code>NoSuchBucket</Code>"), "{body}");
    let before = store.requests();
    let (status, body) = get(&gateway.url("/media?location")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("LocationConstraint"), "{body}");
    assert!(store.requests() > before, "the store was asked");
}
