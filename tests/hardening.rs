//! Hardening against hostile pages, clients and objects, each reproduced as
//! an attack against a gateway in front of the embedded store: DNS
//! rebinding, stored XSS on the gateway's origin, oversized URIs, billed
//! LIST storms, over-long presigned lifetimes, store messages leaking to
//! clients, reserved paths reached by encoding, and non-preflight OPTIONS.
//! Every refusal is checked for its status and code, for not having reached
//! the store, and for leaving the daemon answering.
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
use support::*;

async fn send(request: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, String) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

fn json_code(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    value["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn s3_code(xml: &str) -> &str {
    xml.split("<Code>")
        .nth(1)
        .and_then(|r| r.split("</Code>").next())
        .unwrap_or("")
}

fn object_url(gateway: &Gateway, locator: &str, extra: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("locator", locator);
    for (k, v) in extra {
        query.append_pair(k, v);
    }
    gateway.url(&format!("/v1/object?{}", query.finish()))
}

async fn healthy(gateway: &Gateway) {
    let (status, _, body) = send(client().get(gateway.url("/healthz"))).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
}

#[tokio::test]
async fn a_rebound_host_name_is_misdirected_before_anything_runs() {
    let store = FsStore::start().await;
    store.put("media", "a.png", b"png bytes");
    let config = ConfigBuilder::store(&store.url(), &["media"])
        .integration("delivery", "proxy")
        .set(
            "server",
            "allowed_hosts",
            vec!["gateway.example", "*.cdn.example"],
        )
        .set("server", "public_url", "https://public.example")
        .s3_anonymous()
        .build();
    let gateway = Gateway::start(&config).await;
    let before = store.requests();
    let object = object_url(&gateway, "s3://media/a.png", &[]);
    for host in [
        "attacker.example",
        "localhost",
        "gateway.example.attacker.example",
    ] {
        let (status, _, body) = send(client().get(&object).header("host", host)).await;
        assert_eq!(
            (status, json_code(&body)),
            (421, "MisdirectedRequest".into()),
            "{host}"
        );
        let (status, _, body) = send(
            client()
                .get(gateway.url("/media/a.png"))
                .header("host", host),
        )
        .await;
        assert_eq!(
            (status, s3_code(&body)),
            (421, "MisdirectedRequest"),
            "{host}"
        );
    }
    assert_eq!(
        store.requests(),
        before,
        "a misdirected request reached the store"
    );
    // Listed names, subdomains of a listed wildcard, public_url's host and
    // IP literals pass.
    for host in [
        "gateway.example:8080",
        "a.cdn.example",
        "public.example",
        "127.0.0.1:1",
        "[::1]",
    ] {
        let (status, _, body) = send(client().get(&object).header("host", host)).await;
        assert_eq!((status, body.as_str()), (200, "png bytes"), "{host}");
    }
}

#[tokio::test]
async fn objects_never_run_as_pages_on_the_gateways_origin() {
    let store = FsStore::start().await;
    let script = b"<html><script>alert(document.domain)</script></html>";
    store.put("media", "evil.png", script);
    store.put("media", "evil.html", script);
    let config = ConfigBuilder::store(&store.url(), &["media"])
        .integration("delivery", "proxy")
        .s3_anonymous()
        .build();
    let gateway = Gateway::start(&config).await;
    let before = store.requests();
    // An active type cannot be asked for, on either proxy path.
    for content_type in [
        "text/html",
        "image/svg+xml",
        "application/xhtml+xml",
        "text/javascript",
    ] {
        let url = object_url(
            &gateway,
            "s3://media/evil.png",
            &[("response-content-type", content_type)],
        );
        let (status, _, body) = send(client().get(url)).await;
        assert_eq!(
            (status, json_code(&body)),
            (400, "InvalidArgument".into()),
            "{content_type}"
        );
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response-content-type", content_type)
            .finish();
        let (status, _, body) =
            send(client().get(gateway.url(&format!("/media/evil.png?{query}")))).await;
        assert_eq!(
            (status, s3_code(&body)),
            (400, "InvalidArgument"),
            "{content_type}"
        );
        let presign = gateway.url(&format!("/v1/presign?locator=s3://media/evil.png&{query}"));
        let (status, _, body) = send(client().get(presign)).await;
        assert_eq!(
            (status, json_code(&body)),
            (400, "InvalidArgument".into()),
            "{content_type}"
        );
    }
    assert_eq!(store.requests(), before);
    // An object stored as an active type (or without a type) is a download,
    // and every response forbids sniffing and sandboxes itself.
    for url in [
        object_url(&gateway, "s3://media/evil.html", &[]),
        gateway.url("/media/evil.html"),
        object_url(
            &gateway,
            "s3://media/evil.html",
            &[("response-content-disposition", "inline")],
        ),
    ] {
        let (status, headers, _) = send(client().get(&url)).await;
        assert_eq!(status, 200, "{url}");
        assert_eq!(headers["content-disposition"], "attachment", "{url}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(
            headers["content-security-policy"],
            "sandbox; default-src 'none'"
        );
    }
    let (_, headers, _) = send(client().get(gateway.url("/healthz"))).await;
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let (status, headers, _) = send(client().get(object_url(
        &gateway,
        "s3://media/evil.png",
        &[("response-content-type", "image/png")],
    )))
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/png");
    assert!(headers.get("content-disposition").is_none());

    // An integration that allows active content serves it inline.
    let allowed = ConfigBuilder::store(&store.url(), &["media"])
        .integration("delivery", "proxy")
        .integration("allow_active_content", true)
        .build();
    let gateway = Gateway::start(&allowed).await;
    let (status, headers, _) =
        send(client().get(object_url(&gateway, "s3://media/evil.html", &[]))).await;
    assert_eq!(status, 200);
    assert!(headers.get("content-disposition").is_none());
    assert_eq!(
        headers["content-security-policy"],
        "sandbox; default-src 'none'"
    );
}

#[tokio::test]
async fn an_oversized_uri_is_414_before_any_upstream_work() {
    let store = FsStore::start().await;
    store.put("media", "a.png", b"png bytes");
    let config = ConfigBuilder::store(&store.url(), &["media"])
        .integration("delivery", "proxy")
        .s3_anonymous()
        .build();
    let gateway = Gateway::start(&config).await;
    let before = store.requests();
    let pluses = "+".repeat(25_000);
    for (url, s3) in [
        (
            gateway.url(&format!(
                "/v1/object?locator=s3://media/a.png&response-content-type={pluses}"
            )),
            false,
        ),
        (
            gateway.url(&format!("/v1/list?locator=s3://media/&cursor={pluses}")),
            false,
        ),
        (
            gateway.url(&format!("/media/a.png?response-content-type={pluses}")),
            true,
        ),
        (
            gateway.url(&format!("/media?list-type=2&continuation-token={pluses}")),
            true,
        ),
    ] {
        let (status, _, body) = send(client().get(&url)).await;
        let code = if s3 {
            s3_code(&body).to_owned()
        } else {
            json_code(&body)
        };
        assert_eq!(
            (status, code.as_str()),
            (414, "UriTooLong"),
            "{}",
            &url[..60]
        );
        healthy(&gateway).await;
    }
    assert_eq!(store.requests(), before);
    // Just under the limit, re-encoding for the store cannot fail either.
    let many = "+".repeat(16_000);
    let url = gateway.url(&format!("/media/a.png?response-cache-control={many}"));
    let (status, _, body) = send(client().get(&url)).await;
    assert!(status < 500, "{status}: {body}");
}

#[tokio::test]
async fn a_full_listing_reads_big_pages_up_to_its_caps() {
    let store = FsStore::start().await;
    for i in 0..2_500 {
        store.put("media", &format!("k/{i:05}"), b"");
    }
    let config = ConfigBuilder::store(&store.url(), &["media"])
        .set("upstream", "list_all_max_pages", 2)
        .build();
    let gateway = Gateway::start(&config).await;
    let before = store.requests();
    let url = gateway.url("/v1/list?locator=s3://media/k/&all=true&limit=1");
    let (status, _, body) = send(client().get(&url)).await;
    assert_eq!(status, 200);
    let page: Value = serde_json::from_str(&body).unwrap();
    // Two pages of 1,000 keys, whatever `limit` says, then a cursor.
    assert_eq!(page["objects"].as_array().unwrap().len(), 2_000);
    assert!(
        page["next_cursor"].is_string(),
        "{}",
        &body[body.len() - 200..]
    );
    assert_eq!(store.requests(), before + 2, "LISTs billed for one request");
}

#[tokio::test]
async fn presign_lifetimes_stop_at_the_integrations_maximum() {
    let store = FsStore::start().await;
    store.put("media", "a.png", b"png bytes");
    let gateway = Gateway::start(
        &ConfigBuilder::store(&store.url(), &["media"])
            .integration("presign_ttl_s", 60)
            .build(),
    )
    .await;
    let (status, body) = presign(&gateway, "s3://media/a.png", &[("expires", "604800")]).await;
    assert_eq!(status, 200, "{body}");
    let url = body["url"].as_str().unwrap();
    assert!(url.contains("X-Amz-Expires=86400&"), "{url}");
    let capped = Gateway::start(
        &ConfigBuilder::store(&store.url(), &["media"])
            .integration("presign_ttl_s", 60)
            .integration("presign_max_ttl_s", 120)
            .build(),
    )
    .await;
    let (_, body) = presign(&capped, "s3://media/a.png", &[("expires", "3600")]).await;
    let url = body["url"].as_str().unwrap();
    assert!(url.contains("X-Amz-Expires=120&"), "{url}");
    // expires_at tells the truth: 120 s from the signing time.
    let signed = url.split("X-Amz-Date=").nth(1).unwrap();
    let expires_at = body["expires_at"].as_str().unwrap();
    assert_eq!(
        &expires_at[..10],
        format!("{}-{}-{}", &signed[..4], &signed[4..6], &signed[6..8])
    );
    assert_eq!(fetch(url).await.1, b"png bytes");
    let error = s3gate::config::Config::parse(
        &ConfigBuilder::store(&store.url(), &["media"])
            .integration("presign_ttl_s", 900)
            .integration("presign_max_ttl_s", 600)
            .build(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("`presign_ttl_s` = 900 is over `presign_max_ttl_s` = 600"),
        "{error}"
    );
}

#[tokio::test]
async fn store_messages_and_integration_names_stay_in_the_log() {
    let store = FsStore::start().await;
    store.put("media", "a.png", b"png bytes");
    let config = ConfigBuilder::store(&store.url(), &["media"])
        .integration("delivery", "proxy")
        .integration("prefixes", vec!["public/"])
        .s3_anonymous()
        .build();
    let gateway = Gateway::start(&config).await;
    // A store error keeps its status and code, with the gateway's own words.
    store.put("media", "public/a.png", b"png bytes");
    let (status, _, body) =
        send(client().get(object_url(&gateway, "s3://media/public/missing.png", &[]))).await;
    assert_eq!((status, json_code(&body)), (404, "NoSuchKey".into()));
    assert!(body.contains("the store answered 404 NoSuchKey"), "{body}");
    assert!(
        !body.contains("does not exist"),
        "the store's message reached the client: {body}"
    );
    // AWS's AccessDenied names the assumed role and account; a signature
    // mismatch carries the string to sign. Both stay in the log.
    const DENIED: &[u8] = b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: 237\r\n\r\n<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>User: arn:aws:sts::111122223333:assumed-role/customer-read/s3gate is not authorized to perform: s3:GetObject; StringToSign AWS4-HMAC-SHA256</Message></Error>";
    let talkative = scripted_store(DENIED).await;
    let config = ConfigBuilder::store(&talkative, &["media"])
        .integration("delivery", "proxy")
        .s3_anonymous()
        .build();
    let refused = Gateway::start(&config).await;
    for url in [
        object_url(&refused, "s3://media/a.png", &[]),
        refused.url("/media/a.png"),
    ] {
        let (status, _, body) = send(client().get(&url)).await;
        assert_eq!(status, 403, "{body}");
        assert!(
            body.contains("the store answered 403 AccessDenied"),
            "{body}"
        );
        for leak in [
            "111122223333",
            "customer-read",
            "StringToSign",
            "AWS4-HMAC-SHA256",
        ] {
            assert!(!body.contains(leak), "{leak} reached the client: {body}");
        }
    }
    // Scope errors do not name the integration (a customer).
    let (status, _, body) =
        send(client().get(object_url(&gateway, "s3://media/private/a.png", &[]))).await;
    assert_eq!(
        (status, json_code(&body)),
        (403, "PrefixNotPermitted".into())
    );
    assert!(!body.contains("store"), "{body}");
    let (status, _, body) = send(client().get(gateway.url("/media/private/a.png"))).await;
    assert_eq!((status, s3_code(&body)), (403, "AccessDenied"));
    assert!(!body.contains("\"store\""), "{body}");
}

#[tokio::test]
async fn reserved_paths_are_the_json_apis_however_encoded() {
    let store = FsStore::start().await;
    for bucket in ["healthz", "metrics", "readyz"] {
        store.put(bucket, "x", b"shadowed");
    }
    let config = ConfigBuilder::store(&store.url(), &["healthz", "metrics", "readyz"])
        .s3_anonymous()
        .build();
    let gateway = Gateway::start(&config).await;
    let before = store.requests();
    for path in [
        "/healthz/x",
        "/v1%2Fpresign?locator=s3://healthz/x",
        "/%76%31/x",
        "/metrics/x",
        "/readyz/x",
        "/HEALTHZ/x",
    ] {
        let (status, _, body) = send(client().get(gateway.url(path))).await;
        assert_eq!(
            (status, json_code(&body)),
            (404, "NoSuchRoute".into()),
            "{path}"
        );
    }
    assert_eq!(store.requests(), before);
}

#[tokio::test]
async fn options_without_origin_is_a_bad_request() {
    let store = FsStore::start().await;
    let config = ConfigBuilder::store(&store.url(), &["media"])
        .s3_anonymous()
        .build();
    let gateway = Gateway::start(&config).await;
    let options = |path: &str| client().request(reqwest::Method::OPTIONS, gateway.url(path));
    let (status, _, body) = send(options("/media/a.png")).await;
    assert_eq!((status, s3_code(&body)), (400, "BadRequest"));
    let (status, _, body) = send(options("/v1/presign")).await;
    assert_eq!((status, json_code(&body)), (400, "BadRequest".into()));
    assert_eq!(store.requests(), 0);
}
