//! Streaming delivery: `/v1/object` in proxy and redirect modes, the S3 front's
//! passthrough semantics (ranges, conditionals, statuses, headers), `/v1/list`
//! pagination, and bounded memory under a slow reader.
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

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use support::config::ConfigBuilder;
use support::memstore::MemStore;
use support::*;

/// A config whose default integration streams (`delivery = "proxy"`) and serves the S3 API.
fn proxy_config(endpoint: &str, buckets: &[&str]) -> String {
    proxy_builder(endpoint, buckets).build()
}

fn proxy_builder(endpoint: &str, buckets: &[&str]) -> ConfigBuilder {
    ConfigBuilder::store(endpoint, buckets)
        .integration("delivery", "proxy")
        .s3_anonymous()
}

fn object_url(gateway: &Gateway, locator: &str) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("locator", locator)
        .finish();
    gateway.url(&format!("/v1/object?{query}"))
}

/// Deterministic bytes of length `len`.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 4099) as u8).collect()
}

#[tokio::test]
async fn proxy_streams_objects_byte_for_byte() {
    let store = FsStore::start().await;
    let sizes = [0usize, 1, 5 << 20, 64 << 20];
    for size in sizes {
        store.put("media", &format!("size/{size}.bin"), &pattern(size));
    }
    let gateway = Gateway::start(&proxy_config(&store.url(), &["media"])).await;
    for size in sizes {
        let expected = Sha256::digest(pattern(size));
        for url in [
            object_url(&gateway, &format!("s3://media/size/{size}.bin")),
            gateway.url(&format!("/media/size/{size}.bin")),
        ] {
            let response = client().get(&url).send().await.unwrap();
            assert_eq!(response.status(), 200, "{url}");
            assert_eq!(
                response.headers()["content-length"],
                size.to_string().as_str()
            );
            assert!(response.headers().contains_key("etag"));
            assert!(response.headers().contains_key("last-modified"));
            let body = response.bytes().await.unwrap();
            assert_eq!(
                Sha256::digest(&body),
                expected,
                "{url}: {} bytes",
                body.len()
            );
        }
        let head = client()
            .head(gateway.url(&format!("/media/size/{size}.bin")))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers()["content-length"], size.to_string().as_str());
    }
}

#[tokio::test]
async fn proxy_round_trips_awkward_keys() {
    init();
    let backend = MemStore::default();
    let keys = [
        "with space.jpg",
        "plus+sign",
        "percent%2F",
        "caf\u{e9}/\u{65e5}\u{672c}.png",
        "a//double",
        "dir/",
        "q?h#t&e=1",
    ];
    for key in keys {
        backend.put("media", key, key.as_bytes());
    }
    let auth = s3gate::demo::store::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY);
    let store =
        s3gate::demo::store::EmbeddedStore::start_backend(loopback().await, backend, auth, None)
            .unwrap();
    let gateway = Gateway::start(&proxy_config(&store.url(), &["media"])).await;
    for key in keys {
        let (status, body) = fetch(&object_url(&gateway, &format!("s3://media/{key}"))).await;
        assert_eq!(
            (status, body.as_slice()),
            (200, key.as_bytes()),
            "/v1/object {key}"
        );
        let path = format!("/media/{}", s3gate::sigv4::encode_path(key));
        let (status, body) = fetch(&gateway.url(&path)).await;
        assert_eq!(
            (status, body.as_slice()),
            (200, key.as_bytes()),
            "S3 front {key}"
        );
    }
}

#[tokio::test]
async fn ranges_pass_through() {
    let store = FsStore::start().await;
    let data = pattern(1000);
    store.put("media", "clip.mp4", &data);
    let gateway = Gateway::start(&proxy_config(&store.url(), &["media"])).await;
    for url in [
        object_url(&gateway, "s3://media/clip.mp4"),
        gateway.url("/media/clip.mp4"),
    ] {
        let cases: [(&str, u16, &[u8], Option<&str>); 3] = [
            ("bytes=0-", 206, &data[..], Some("bytes 0-999/1000")),
            (
                "bytes=100-199",
                206,
                &data[100..200],
                Some("bytes 100-199/1000"),
            ),
            ("bytes=-100", 206, &data[900..], Some("bytes 900-999/1000")),
        ];
        for (range, status, body, content_range) in cases {
            let response = client()
                .get(&url)
                .header("range", range)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), status, "{url} {range}");
            assert_eq!(
                response
                    .headers()
                    .get("content-range")
                    .map(|v| v.to_str().unwrap()),
                content_range
            );
            assert_eq!(
                response.headers()["content-length"],
                body.len().to_string().as_str()
            );
            assert_eq!(response.bytes().await.unwrap().as_ref(), body, "{range}");
        }
        let beyond = client()
            .get(&url)
            .header("range", "bytes=5000-6000")
            .send()
            .await
            .unwrap();
        assert_eq!(beyond.status(), 416, "{url}");
    }
}

#[tokio::test]
async fn response_overrides_and_hop_by_hop_headers() {
    let store = FsStore::start().await;
    store.put("media", "doc.bin", b"data");
    let gateway = Gateway::start(&proxy_config(&store.url(), &["media"])).await;
    let response = client()
        .get(gateway.url("/media/doc.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    for hop in ["keep-alive", "proxy-connection", "te", "trailer", "upgrade"] {
        assert!(!response.headers().contains_key(hop), "{hop} leaked");
    }
    let query = "locator=s3%3A%2F%2Fmedia%2Fdoc.bin&response-content-disposition=attachment%3B%20filename%3D%22d.bin%22";
    let response = client()
        .get(gateway.url(&format!("/v1/object?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"data");
}

#[tokio::test]
async fn redirect_delivery_answers_307_to_a_working_url() {
    let store = FsStore::start().await;
    store.put("media", "cat.png", b"png bytes");
    let gateway = Gateway::start(&default_integration(&store.url(), &["media"])).await;
    let response = client()
        .get(object_url(&gateway, "s3://media/cat.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 307);
    let cache = response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cache.starts_with("private, max-age="), "{cache}");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&store.url()), "{location}");
    assert_eq!(fetch(&location).await, (200, b"png bytes".to_vec()));
    let head = client()
        .head(object_url(&gateway, "s3://media/cat.png"))
        .send()
        .await
        .unwrap();
    let location = head.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        client().head(&location).send().await.unwrap().status(),
        200,
        "a HEAD redirect is signed for HEAD"
    );
}

#[tokio::test]
async fn writes_and_other_operations_are_refused_without_upstream_requests() {
    let store = FsStore::start().await;
    store.put("media", "k", b"v");
    let gateway = Gateway::start(&proxy_config(&store.url(), &["media"])).await;
    let http = client();
    for method in ["PUT", "POST", "DELETE", "PATCH"] {
        let response = http
            .request(method.parse().unwrap(), gateway.url("/media/k"))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method}");
        assert_eq!(response.headers()["content-type"], "application/xml");
        let body = response.text().await.unwrap();
        assert!(body.contains("<Code>MethodNotAllowed</Code>"), "{body}");
    }
    for query in ["acl", "uploads", "tagging", "versions", "policy"] {
        let response = http
            .get(gateway.url(&format!("/media?{query}")))
            .send()
            .await
            .unwrap();
        assert!(matches!(response.status().as_u16(), 400 | 403), "?{query}");
    }
    let response = http.get(gateway.url("/media/k?acl")).send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("<Code>AccessDenied</Code>"));
    let response = http
        .get(gateway.url("/other-bucket/k"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(
        store.requests(),
        0,
        "refused operations must not reach the store"
    );

    // Without `[s3_api] anonymous = true` the S3 front is closed.
    let closed = Gateway::start(&default_integration(&store.url(), &["media"])).await;
    let response = http.get(closed.url("/media/k")).send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("anonymous"));
    assert_eq!(store.requests(), 0);
}

#[tokio::test]
async fn listing_pages_through_thousands_of_keys() {
    let store = FsStore::start().await;
    let mut expected = Vec::new();
    for dir in 0..5 {
        for i in 0..500 {
            let key = format!("set/d{dir}/img-{i:04}.png");
            store.put("media", &key, b"x");
            expected.push(key);
        }
    }
    expected.sort();
    let gateway = Gateway::start(&proxy_config(&store.url(), &["media"])).await;
    let list = |extra: String| {
        let url = gateway.url(&format!(
            "/v1/list?locator=s3%3A%2F%2Fmedia%2Fset%2F{extra}"
        ));
        async move {
            let response = client().get(url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<serde_json::Value>().await.unwrap()
        }
    };
    // Page by page with the cursor.
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let extra = match &cursor {
            Some(c) => format!(
                "&limit=700&cursor={}",
                form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>()
            ),
            None => "&limit=700".to_owned(),
        };
        let page = list(extra).await;
        pages += 1;
        assert!(pages <= 10, "pagination does not end");
        for object in page["objects"].as_array().unwrap() {
            keys.push(object["key"].as_str().unwrap().to_owned());
            assert_eq!(object["size"], 1);
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(keys, expected);

    // All at once, streamed.
    let all = list("&all=true&limit=300".into()).await;
    let all_keys: Vec<&str> = all["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(all_keys, expected);
    assert!(all["next_cursor"].is_null());

    // With a delimiter: folders.
    let folders = list("&delimiter=%2F".into()).await;
    assert_eq!(
        folders["prefixes"],
        serde_json::json!(["set/d0/", "set/d1/", "set/d2/", "set/d3/", "set/d4/"])
    );
    assert_eq!(folders["objects"].as_array().unwrap().len(), 0);

    // The S3 front passes ListObjectsV2 through.
    let xml = client()
        .get(gateway.url("/media?list-type=2&prefix=set%2Fd3%2F&max-keys=1000"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(xml.matches("<Key>").count(), 500);
}

#[tokio::test]
async fn listing_stays_inside_permitted_prefixes() {
    let store = FsStore::start().await;
    store.put("media", "public/a.png", b"a");
    store.put("media", "private/b.png", b"b");
    let config = proxy_builder(&store.url(), &["media"])
        .integration("prefixes", vec!["public/"])
        .build();
    let gateway = Gateway::start(&config).await;
    let ok = client()
        .get(gateway.url("/v1/list?locator=s3%3A%2F%2Fmedia%2Fpublic%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    for locator in ["s3%3A%2F%2Fmedia%2F", "s3%3A%2F%2Fmedia%2Fprivate%2F"] {
        let refused = client()
            .get(gateway.url(&format!("/v1/list?locator={locator}")))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);
        assert_eq!(
            refused.json::<serde_json::Value>().await.unwrap()["error"]["code"],
            "PrefixNotPermitted"
        );
    }
    let s3 = client()
        .get(gateway.url("/media?list-type=2&prefix=private%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(s3.status(), 403);
    let s3 = client()
        .get(gateway.url("/media/private/b.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(s3.status(), 403);
    assert_eq!(store.requests(), 1);
}

#[tokio::test]
async fn unreachable_store_is_a_502() {
    init();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gateway = Gateway::start(&proxy_config(&format!("http://{closed}"), &["media"])).await;
    assert_fails_on_both_apis(&gateway, 502, "UpstreamFailed", "BadGateway").await;
}

/// Asserts that `s3://media/x` fails with `status` through `/v1/object` (JSON
/// `json_code`) and through the S3 API (XML `s3_code`).
async fn assert_fails_on_both_apis(gateway: &Gateway, status: u16, json_code: &str, s3_code: &str) {
    let response = client()
        .get(object_url(gateway, "s3://media/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), status);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], json_code, "{body}");
    let response = client().get(gateway.url("/media/x")).send().await.unwrap();
    assert_eq!(response.status(), status);
    let xml = response.text().await.unwrap();
    assert!(xml.contains(&format!("<Code>{s3_code}</Code>")), "{xml}");
}

#[tokio::test]
async fn a_slow_reader_keeps_gateway_memory_bounded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let store = FsStore::start().await;
    let size = 96 << 20;
    store.put("media", "big.bin", &pattern(size));
    let dir = tempfile::tempdir().unwrap();
    let config = proxy_builder(&store.url(), &["media"])
        .set("server", "listen", "127.0.0.1:0")
        .build();
    let (mut child, addr) = serve_process(dir.path(), &config).await;
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let baseline = rss_kib(child.id());
    conn.write_all(b"GET /media/big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    // Read the headers and 1 MiB of body, then stop reading: the gateway must
    // stop pulling from the store.
    let mut buf = vec![0u8; 64 * 1024];
    let mut head = Vec::new();
    let header_end = loop {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed");
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head[..header_end])
    );
    let mut hasher = Sha256::new();
    hasher.update(&head[header_end..]);
    let mut body_read = head.len() - header_end;
    while body_read < (1 << 20) {
        let n = conn.read(&mut buf).await.unwrap();
        hasher.update(&buf[..n]);
        body_read += n;
    }
    let mut peak = 0;
    for _ in 0..20 {
        peak = peak.max(rss_kib(child.id()));
        tokio::time::sleep(Duration::from_millis(50)).await; // sampling interval
    }
    let growth_mib = peak.saturating_sub(baseline) / 1024;
    assert!(
        growth_mib < 24,
        "gateway grew {growth_mib} MiB while a reader stalled on a {} MiB object",
        size >> 20
    );
    // Then read the rest: the whole object arrives intact.
    while body_read < size {
        let n = tokio::time::timeout(Duration::from_secs(30), conn.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "body ended at {body_read} of {size}");
        hasher.update(&buf[..n]);
        body_read += n;
    }
    assert_eq!(body_read, size);
    assert_eq!(hasher.finalize(), Sha256::digest(pattern(size)));
    drop(conn);
    terminate(&mut child).await;
}

/// A gateway in proxy delivery for bucket `media` at `store`, with short timeouts.
async fn impatient_gateway(store: &str) -> Gateway {
    let config = proxy_config(store, &["media"])
        + "\n[upstream]\nheader_timeout_s = 1\nbody_idle_timeout_s = 1\n";
    Gateway::start(&config).await
}

#[tokio::test]
async fn a_silent_store_is_a_504() {
    init();
    let gateway = impatient_gateway(&scripted_store(b"").await).await;
    assert_fails_on_both_apis(&gateway, 504, "UpstreamTimeout", "GatewayTimeout").await;
}

#[tokio::test]
async fn a_store_silent_mid_body_is_cut_off() {
    init();
    // 10 bytes of a promised 100, then silence.
    let stalled = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789";
    let gateway = impatient_gateway(&scripted_store(stalled).await).await;
    for url in [
        object_url(&gateway, "s3://media/x"),
        gateway.url("/media/x"),
    ] {
        let response = client().get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        // The gateway ends the response (a second of silence), well before this bound.
        let body = tokio::time::timeout(Duration::from_secs(15), response.bytes()).await;
        let error = body.expect("the gateway cut the response off").unwrap_err();
        assert!(error.is_body() || error.is_decode(), "{url}: {error}");
    }
    // An error whose body stalls is still answered, with the store's status.
    let stalled_error = b"HTTP/1.1 503 Slow Down\r\nContent-Length: 100\r\n\r\n<Error><Co";
    let gateway = impatient_gateway(&scripted_store(stalled_error).await).await;
    let response = client()
        .get(object_url(&gateway, "s3://media/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ServiceUnavailable");
}

#[tokio::test]
async fn store_redirects_are_errors_that_name_the_region() {
    init();
    let moved = b"HTTP/1.1 301 Moved Permanently\r\nx-amz-bucket-region: eu-west-1\r\nLocation: https://elsewhere.example/\r\nContent-Type: application/xml\r\nContent-Length: 55\r\n\r\n<Error><Code>PermanentRedirect</Code><Message/></Error>";
    let gateway = impatient_gateway(&scripted_store(moved).await).await;
    let response = client()
        .get(object_url(&gateway, "s3://media/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert!(response.headers().get("location").is_none());
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UpstreamRedirect");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("PermanentRedirect") && message.contains("region eu-west-1"),
        "{message}"
    );
    for path in ["/media/x", "/media?list-type=2"] {
        let response = client().get(gateway.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 502, "{path}");
        assert!(response.headers().get("location").is_none());
        let xml = response.text().await.unwrap();
        assert!(xml.contains("region eu-west-1"), "{xml}");
    }
    let response = client()
        .get(gateway.url("/v1/list?locator=s3%3A%2F%2Fmedia%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
}

#[tokio::test]
async fn a_trickling_request_body_is_a_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let store = FsStore::start().await;
    let config = ConfigBuilder::store(&store.url(), &["media"])
        .set("server", "body_timeout_s", 1)
        .build();
    let gateway = Gateway::start(&config).await;
    let mut conn = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    conn.write_all(b"POST /v1/presign HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut answer));
    read.await.expect("the gateway answers and closes").unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"RequestTimeout\""), "{answer}");
    assert!(
        answer.to_lowercase().contains("connection: close"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let store = FsStore::start().await;
    let size = 64u64 << 20;
    store.put("media", "big.bin", &pattern(size as usize));
    let tap = Tap::start(store.store.addr()).await;
    let gateway = Gateway::start(&proxy_config(&tap.url(), &["media"])).await;
    for path in [
        "/media/big.bin".to_owned(),
        object_url(&gateway, "s3://media/big.bin").replace(&gateway.url(""), ""),
    ] {
        let mut conn = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 256 << 10];
        let n = conn.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{path}");
        drop(conn);
        // The gateway drops its upstream connection rather than draining it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while tap.open.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            assert!(
                Instant::now() < deadline,
                "{path}: the upstream request outlived its client"
            );
            tokio::time::sleep(Duration::from_millis(20)).await; // polling
        }
        let down = tap.bytes_down.swap(0, std::sync::atomic::Ordering::SeqCst);
        assert!(
            down < size / 2,
            "{path}: {down} of {size} bytes were pulled for a client that left"
        );
    }
}

#[tokio::test]
async fn a_request_abandoned_by_its_client_is_still_logged() {
    init();
    let silent = scripted_store(b"").await;
    let gateway = Gateway::start(&proxy_config(&silent, &["media"])).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let error = impatient
        .get(object_url(&gateway, "s3://media/x"))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let line = "s3gate_requests_total{class=\"4xx\",client=\"-\",integration=\"store\",method=\"GET\",route=\"object\",status=\"499\"} 1\n";
    while !metrics(&gateway).await.contains(line) {
        assert!(Instant::now() < deadline, "no 499 recorded");
        tokio::time::sleep(Duration::from_millis(50)).await; // polling
    }
}
