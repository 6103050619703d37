//! `/v1/presign` end to end: the gateway presigns, a real HTTP client fetches
//! from a real SigV4-verifying S3 store (s3s), and the bytes are compared.
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

use support::memstore::MemStore;
use support::*;

#[tokio::test]
async fn presigned_urls_fetch_awkward_keys_byte_for_byte() {
    let store = FsStore::start().await;
    for (i, key) in AWKWARD_KEYS.iter().enumerate() {
        store.put("media", key, format!("object {i}: {key}").as_bytes());
    }
    let gateway = Gateway::start(&default_integration(&store.url(), &["media"])).await;
    for (i, key) in AWKWARD_KEYS.iter().enumerate() {
        let (status, body) = presign(&gateway, &format!("s3://media/{key}"), &[]).await;
        assert_eq!(status, 200, "{key}: {body}");
        assert_eq!(body["integration"], "store");
        let url = body["url"].as_str().unwrap();
        assert!(url.starts_with(&format!("{}/media/", store.url())), "{url}");
        let (status, bytes) = fetch(url).await;
        assert_eq!(status, 200, "{key}: {}", String::from_utf8_lossy(&bytes));
        assert_eq!(bytes, format!("object {i}: {key}").as_bytes(), "{key}");
    }
}

#[tokio::test]
async fn keys_a_file_system_cannot_hold_round_trip() {
    init();
    let backend = MemStore::default();
    let keys = [
        "a//double//slash",
        "dir/",
        "/leading",
        "trailing//",
        "sp ace/+/%/~/",
    ];
    for key in keys {
        backend.put("media", key, key.as_bytes());
    }
    let auth = s3gate::demo::store::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY);
    let store =
        s3gate::demo::store::EmbeddedStore::start_backend(loopback().await, backend, auth, None)
            .unwrap();
    let gateway = Gateway::start(&default_integration(&store.url(), &["media"])).await;
    for key in keys {
        let (status, body) = presign(&gateway, &format!("s3://media/{key}"), &[]).await;
        assert_eq!(status, 200, "{key}: {body}");
        let (status, bytes) = fetch(body["url"].as_str().unwrap()).await;
        assert_eq!((status, bytes.as_slice()), (200, key.as_bytes()), "{key}");
    }
}

#[tokio::test]
async fn tampered_and_expired_urls_are_refused_by_the_store() {
    let store = FsStore::start().await;
    store.put("media", "a.txt", b"a");
    store.put("media", "b.txt", b"b");
    let gateway = Gateway::start(&default_integration(&store.url(), &["media"])).await;
    let (_, body) = presign(&gateway, "s3://media/a.txt", &[]).await;
    let url = body["url"].as_str().unwrap().to_owned();
    assert_eq!(fetch(&url).await, (200, b"a".to_vec()));

    let other_key = url.replace("/a.txt?", "/b.txt?");
    assert_eq!(
        fetch(&other_key).await.0,
        403,
        "a signature must not open another key"
    );
    let sig_at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut flipped = url.clone();
    let c = if &url[sig_at..sig_at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    flipped.replace_range(sig_at..sig_at + 1, c);
    assert_eq!(
        fetch(&flipped).await.0,
        403,
        "a changed signature is refused"
    );
    let longer = url.replace("X-Amz-Expires=900", "X-Amz-Expires=901");
    assert_ne!(longer, url);
    assert_eq!(
        fetch(&longer).await.0,
        403,
        "a stretched lifetime is refused"
    );
}

#[tokio::test]
async fn options_are_signed_into_the_url() {
    let store = FsStore::start().await;
    store.put("media", "doc.bin", b"data");
    let gateway = Gateway::start(&default_integration(&store.url(), &["media"])).await;
    let before = std::time::SystemTime::now();
    let (status, body) = presign(
        &gateway,
        "s3://media/doc.bin",
        &[
            ("expires", "60"),
            ("response-content-type", "image/png"),
            (
                "response-content-disposition",
                "attachment; filename=\"a b.png\"",
            ),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let url = body["url"].as_str().unwrap();
    assert!(url.contains("X-Amz-Expires=60"), "{url}");
    assert!(url.contains("response-content-type=image%2Fpng"), "{url}");
    assert!(
        url.contains("response-content-disposition=attachment%3B%20filename%3D%22a%20b.png%22"),
        "{url}"
    );
    let expires_at = body["expires_at"].as_str().unwrap();
    let expected = s3gate::sigv4::rfc3339(before + std::time::Duration::from_secs(60));
    let later = s3gate::sigv4::rfc3339(before + std::time::Duration::from_secs(62));
    assert!(
        expected.as_str() <= expires_at && expires_at <= later.as_str(),
        "{expires_at}"
    );
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"data");

    let (status, body) = presign(&gateway, "s3://media/doc.bin", &[("method", "HEAD")]).await;
    assert_eq!(status, 200, "{body}");
    let head = client()
        .head(body["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "4");
}

/// Extra query parameters of a presign call.
type Params<'a> = &'a [(&'a str, &'a str)];

#[tokio::test]
async fn refused_locators_never_reach_the_store() {
    let store = FsStore::start().await;
    store.put("media", "a.txt", b"a");
    let gateway = Gateway::start(&default_integration(&store.url(), &["media"])).await;
    let cases: &[(&str, Params, u16, &str)] = &[
        ("s3://other-bucket/a.txt", &[], 403, "BucketNotPermitted"),
        ("s3://Bad_Bucket/a.txt", &[], 400, "InvalidLocator"),
        ("gs://media/a.txt", &[], 400, "InvalidLocator"),
        ("s3://media", &[], 400, "InvalidLocator"),
        (
            "s3://media/a.txt",
            &[("expires", "604801")],
            400,
            "InvalidArgument",
        ),
        (
            "s3://media/a.txt",
            &[("expires", "0")],
            400,
            "InvalidArgument",
        ),
        (
            "s3://media/a.txt",
            &[("expires", "soon")],
            400,
            "InvalidArgument",
        ),
        (
            "s3://media/a.txt",
            &[("method", "PUT")],
            400,
            "InvalidArgument",
        ),
        (
            "s3://media/a.txt",
            &[("colour", "red")],
            400,
            "InvalidArgument",
        ),
    ];
    for (locator, extra, status, code) in cases {
        let (got, body) = presign(&gateway, locator, extra).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (*status, Some(*code)),
            "{locator} {extra:?}: {body}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().len() > 10,
            "{body}"
        );
    }
    let (status, body) = presign(&gateway, "s3://other-bucket/a.txt", &[]).await;
    assert_eq!(status, 403);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("other-bucket"),
        "{body}"
    );
    assert_eq!(
        store.requests(),
        0,
        "refused requests must not reach the store"
    );
}

#[tokio::test]
async fn routes_and_methods_have_precise_errors() {
    let store = FsStore::start().await;
    let gateway = Gateway::start(&default_integration(&store.url(), &["media"])).await;
    let http = client();
    let missing = http.get(gateway.url("/v1/presign")).send().await.unwrap();
    assert_eq!(missing.status(), 400);
    let unknown = http.get(gateway.url("/v1/nope")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "NoSuchRoute"
    );
    let delete = http
        .delete(gateway.url("/v1/presign"))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 405);
    assert_eq!(delete.headers()["allow"], "GET, POST");
    let health = http.get(gateway.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn batch_keeps_order_and_isolates_bad_locators() {
    let store = FsStore::start().await;
    store.put("media", "one.txt", b"1");
    store.put("media", "two words.txt", b"2");
    let gateway = Gateway::start(&default_integration(&store.url(), &["media"])).await;
    let locators = [
        "s3://media/one.txt",
        "s3://secret/x",
        "not a locator",
        "s3://media/two words.txt",
    ];
    let response = client()
        .post(gateway.url("/v1/presign"))
        .json(&serde_json::json!({ "locators": locators, "expires": 120 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    for (result, locator) in results.iter().zip(locators) {
        assert_eq!(result["locator"], locator);
    }
    assert_eq!(results[1]["error"]["code"], "BucketNotPermitted");
    assert_eq!(results[2]["error"]["code"], "InvalidLocator");
    for (i, expected) in [(0, b"1"), (3, b"2")] {
        let url = results[i]["url"].as_str().unwrap();
        assert!(url.contains("X-Amz-Expires=120"));
        assert_eq!(fetch(url).await, (200, expected.to_vec()));
    }
}

#[tokio::test]
async fn batch_limits_and_malformed_bodies() {
    let store = FsStore::start().await;
    let gateway = Gateway::start(&default_integration(&store.url(), &["media"])).await;
    let http = client();
    let six: Vec<String> = (0..6).map(|i| format!("s3://media/{i}")).collect();
    let over = http
        .post(gateway.url("/v1/presign"))
        .json(&serde_json::json!({ "locators": six }))
        .send()
        .await
        .unwrap();
    assert_eq!(over.status(), 413);
    assert_eq!(
        over.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "BatchTooLarge"
    );

    let huge = format!("{{\"locators\":[\"{}\"]}}", "x".repeat(2 << 20));
    let too_big = http
        .post(gateway.url("/v1/presign"))
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), 413);

    for bad in [
        "{",
        "[]",
        "{\"locators\":\"s3://media/a\"}",
        "{\"locators\":[],\"extra\":1}",
    ] {
        let response = http
            .post(gateway.url("/v1/presign"))
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(
            response.json::<serde_json::Value>().await.unwrap()["error"]["code"],
            "MalformedBody"
        );
    }

    // Options shared by the batch are checked once, for the whole batch.
    for expires in [0, 604_801] {
        let response = http
            .post(gateway.url("/v1/presign"))
            .json(&serde_json::json!({ "locators": ["s3://media/a"], "expires": expires }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{expires}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "InvalidArgument", "{body}");
    }
}
