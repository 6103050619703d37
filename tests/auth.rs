//! Client authentication on the JSON API, end to end against the embedded
//! store: bearer tokens and their scopes, gateway-signed URLs, prefix grants,
//! `/metrics` access, and the config rules that keep an anonymous gateway on
//! loopback. Every refusal is checked for its status, code and body, and for
//! not having reached the store.
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

use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::config::ConfigBuilder;
use support::*;

/// The bearer token of the client named `name` in these tests.
fn token(name: &str) -> String {
    format!("s3gt_test-token-of-{name}")
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A `[[clients]]` entry with a token, for `integrations`.
fn client_entry(name: &str, integrations: &[&str]) -> toml::Table {
    let mut client = toml::Table::new();
    client.insert("name".into(), name.into());
    client.insert("token_sha256".into(), vec![digest(&token(name))].into());
    let names: Vec<toml::Value> = integrations.iter().map(|i| (*i).into()).collect();
    client.insert("integrations".into(), names.into());
    client
}

/// A store with `media` (public/, private/, task-17/) and `other` objects.
async fn seeded_store() -> FsStore {
    let store = FsStore::start().await;
    for key in [
        "public/a.txt",
        "private/b.txt",
        "task-17/1.txt",
        "task-17/2.txt",
        "task-1/x.txt",
    ] {
        store.put("media", key, format!("bytes of {key}").as_bytes());
    }
    store.put("other", "o.txt", b"other bytes");
    store
}

/// A gateway whose clients are: `narrow` (bucket media, prefixes public/ and
/// task-17/), `wide` (every integration), `metrics` (may read /metrics).
fn clients_config(store: &FsStore) -> ConfigBuilder {
    let mut narrow = client_entry("narrow", &["store"]);
    narrow.insert("buckets".into(), vec!["media"].into());
    narrow.insert("prefixes".into(), vec!["public/", "task-17/"].into());
    let mut metrics = client_entry("metrics", &["store"]);
    metrics.insert("metrics".into(), true.into());
    ConfigBuilder::store(&store.url(), &["media", "other"])
        .integration("delivery", "proxy")
        .client(narrow.into())
        .client(client_entry("wide", &["*"]).into())
        .client(metrics.into())
}

async fn get(url: &str, bearer: Option<&str>) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = client().get(url);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

async fn post(url: &str, bearer: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = client().post(url).json(body);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

fn error_code(body: &[u8]) -> String {
    json_of(body)["error"]["code"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

fn locator_query(path: &str, locator: &str, extra: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("locator", locator);
    for (k, v) in extra {
        query.append_pair(k, v);
    }
    format!("{path}?{}", query.finish())
}

#[tokio::test]
async fn without_a_valid_token_every_v1_route_is_401_and_the_store_sees_nothing() {
    let store = seeded_store().await;
    let gateway = Gateway::start(&clients_config(&store).build()).await;
    let before = store.requests();
    let routes = [
        locator_query("/v1/presign", "s3://media/public/a.txt", &[]),
        locator_query("/v1/object", "s3://media/public/a.txt", &[]),
        locator_query("/v1/list", "s3://media/public/", &[]),
        "/metrics".to_owned(),
    ];
    for bearer in [None, Some("not-a-token"), Some("")] {
        for path in &routes {
            let (status, headers, body) = get(&gateway.url(path), bearer).await;
            assert_eq!(status, 401, "{path} with {bearer:?}");
            assert_eq!(headers["www-authenticate"], "Bearer realm=\"s3gate\"");
            assert_eq!(error_code(&body), "Unauthorized", "{path}");
        }
    }
    for path in ["/v1/presign", "/v1/grant"] {
        let body = json!({"locators": ["s3://media/public/a.txt"], "prefix": "s3://media/public/"});
        let (status, body) = post(&gateway.url(path), None, &body).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("Unauthorized")),
            "{path}"
        );
    }
    // Another scheme is not a bearer token.
    let response = client()
        .get(gateway.url(&routes[0]))
        .basic_auth("narrow", Some(token("narrow")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // The health check stays open; the store was never asked.
    assert_eq!(get(&gateway.url("/healthz"), None).await.0, 200);
    assert_eq!(store.requests(), before);
}

#[tokio::test]
async fn a_token_reads_within_its_scope_and_nothing_else() {
    let store = seeded_store().await;
    let gateway = Gateway::start(&clients_config(&store).build()).await;
    let narrow = token("narrow");
    let wide = token("wide");
    let object = |locator: &str| gateway.url(&locator_query("/v1/object", locator, &[]));

    let (status, _, body) = get(&object("s3://media/public/a.txt"), Some(&narrow)).await;
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"bytes of public/a.txt"[..])
    );
    let before = store.requests();
    for locator in [
        "s3://media/private/b.txt",
        "s3://other/o.txt",
        "s3://media/task-1/x.txt",
    ] {
        for path in ["/v1/object", "/v1/presign"] {
            let (status, _, body) = get(
                &gateway.url(&locator_query(path, locator, &[])),
                Some(&narrow),
            )
            .await;
            assert_eq!(status, 403, "{path} {locator}");
            let error = &json_of(&body)["error"];
            assert_eq!(error["code"], "ClientNotPermitted");
            assert_eq!(
                error["message"],
                format!("client \"narrow\" may not read {locator}"),
            );
        }
    }
    let (status, _, body) = get(
        &gateway.url(&locator_query("/v1/list", "s3://media/", &[])),
        Some(&narrow),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (403, "ClientNotPermitted".to_owned())
    );
    assert_eq!(store.requests(), before, "refusals reached the store");

    // A batch answers each locator on its own.
    let batch = json!({"locators": ["s3://media/public/a.txt", "s3://media/private/b.txt", "s3://other/o.txt"]});
    let (status, body) = post(&gateway.url("/v1/presign"), Some(&narrow), &batch).await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert!(results[0]["url"].is_string(), "{body}");
    for item in &results[1..] {
        assert_eq!(item["error"]["code"], "ClientNotPermitted", "{item}");
    }
    let (status, body) = post(&gateway.url("/v1/presign"), Some(&wide), &batch).await;
    assert_eq!(status, 200);
    assert!(
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["url"].is_string()),
        "{body}"
    );

    // The wide client reads everything; listings stay within scope too.
    let (status, _, body) = get(&object("s3://other/o.txt"), Some(&wide)).await;
    assert_eq!((status, body.as_slice()), (200, &b"other bytes"[..]));
    let (status, _, body) = get(
        &gateway.url(&locator_query("/v1/list", "s3://media/task-17/", &[])),
        Some(&narrow),
    )
    .await;
    assert_eq!(status, 200);
    let listing = json_of(&body);
    let keys: Vec<&str> = listing["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["task-17/1.txt", "task-17/2.txt"]);

    // Metrics name the clients, and only a metrics client reads them.
    let (status, _, body) = get(&gateway.url("/metrics"), Some(&wide)).await;
    assert_eq!(
        (status, error_code(&body)),
        (403, "ClientNotPermitted".to_owned())
    );
    let (status, _, body) = get(&gateway.url("/metrics"), Some(&token("metrics"))).await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("s3gate_requests_total{class=\"4xx\",client=\"narrow\",integration=\"store\",method=\"GET\",route=\"object\",status=\"403\"} 3"),
        "{text}"
    );
    assert!(
        text.contains(
            "client=\"wide\",integration=\"store\",method=\"GET\",route=\"object\",status=\"200\""
        ),
        "{text}"
    );
}

/// The query parameters of a URL.
fn params(url: &str) -> Vec<(String, String)> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn with_param(url: &str, name: &str, value: &str) -> String {
    let (base, _) = url.split_once('?').unwrap();
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params(url) {
        query.append_pair(&k, if k == name { value } else { &v });
    }
    format!("{base}?{}", query.finish())
}

#[tokio::test]
async fn proxy_presigns_are_gateway_signed_urls_that_need_no_token() {
    let store = seeded_store().await;
    let config = clients_config(&store)
        .integration("presign_window_s", 300)
        .build();
    let gateway = Gateway::start(&config).await;
    let narrow = token("narrow");
    let presign = |extra: &'static [(&'static str, &'static str)]| {
        let url = gateway.url(&locator_query(
            "/v1/presign",
            "s3://media/public/a.txt",
            extra,
        ));
        let narrow = narrow.clone();
        async move {
            let (status, _, body) = get(&url, Some(&narrow)).await;
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            json_of(&body)["url"].as_str().unwrap().to_owned()
        }
    };
    let url = presign(&[]).await;
    assert!(
        url.starts_with(
            &gateway.url("/v1/object?locator=s3%3A%2F%2Fmedia%2Fpublic%2Fa.txt&expires=")
        ),
        "{url}"
    );
    assert!(
        params(&url).contains(&("client".into(), "narrow".into())),
        "{url}"
    );
    // Byte-identical within the signing window, so browsers cache it.
    assert_eq!(presign(&[]).await, url);

    let before = store.requests();
    let (status, _, body) = get(&url, None).await;
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"bytes of public/a.txt"[..])
    );
    assert_eq!(store.requests(), before + 1);

    // Tampering with anything signed is refused before the store.
    let sig = params(&url)
        .into_iter()
        .find(|(k, _)| k == "sig")
        .unwrap()
        .1;
    let flipped = format!(
        "{}{}",
        if sig.starts_with('0') { "1" } else { "0" },
        &sig[1..]
    );
    let expires: u64 = params(&url)
        .into_iter()
        .find(|(k, _)| k == "expires")
        .unwrap()
        .1
        .parse()
        .unwrap();
    for tampered in [
        with_param(&url, "sig", &flipped),
        with_param(&url, "locator", "s3://media/private/b.txt"),
        with_param(&url, "expires", &(expires + 1).to_string()),
        with_param(&url, "client", "wide"),
        format!("{url}&response-content-type=text%2Fhtml"),
    ] {
        let (status, _, body) = get(&tampered, None).await;
        assert_eq!(
            (status, error_code(&body)),
            (403, "SignatureDoesNotMatch".to_owned()),
            "{tampered}"
        );
    }
    let head = client().head(&url).send().await.unwrap();
    assert_eq!(head.status(), 403, "a GET URL does not sign a HEAD");
    assert_eq!(store.requests(), before + 1);

    // Response overrides are signed into the URL and honoured.
    let url = presign(&[(
        "response-content-disposition",
        "attachment; filename=\"a.txt\"",
    )])
    .await;
    let response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"a.txt\""
    );
}

#[tokio::test]
async fn gateway_signed_urls_expire_and_use_the_public_url() {
    let store = seeded_store().await;
    let config = clients_config(&store)
        .set("server", "public_url", "https://media.example.test/")
        .build();
    let gateway = Gateway::start(&config).await;
    let query = locator_query(
        "/v1/presign",
        "s3://media/public/a.txt",
        &[("expires", "1")],
    );
    let (status, _, body) = get(&gateway.url(&query), Some(&token("narrow"))).await;
    assert_eq!(status, 200);
    let url = json_of(&body)["url"].as_str().unwrap().to_owned();
    let path = url
        .strip_prefix("https://media.example.test/v1/object?")
        .unwrap_or_else(|| panic!("{url}"));
    let local = gateway.url(&format!("/v1/object?{path}"));
    let deadline = Instant::now() + Duration::from_secs(5);
    let before = store.requests();
    let mut served = 0;
    loop {
        let (status, _, body) = get(&local, None).await;
        if status == 403 {
            assert_eq!(error_code(&body), "RequestExpired");
            break;
        }
        assert_eq!(status, 200);
        served += 1;
        assert!(Instant::now() < deadline, "the URL did not expire");
        tokio::time::sleep(Duration::from_millis(100)).await; // polling for the expiry
    }
    let (status, _, _) = get(&local, None).await;
    assert_eq!(status, 403);
    // Each read reached the store once; the expired ones never did.
    assert_eq!(store.requests(), before + served);
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn a_grant_covers_its_prefix_within_the_clients_scope() {
    let store = seeded_store().await;
    let gateway = Gateway::start(&clients_config(&store).build()).await;
    let narrow = token("narrow");
    let ask = json!({"prefix": "s3://media/task-17/", "expires": 600});
    let (status, body) = post(&gateway.url("/v1/grant"), Some(&narrow), &ask).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["prefix"], "s3://media/task-17/");
    let expires_at = body["expires_at"].as_u64().unwrap();
    assert!(
        (unix_now() + 590..=unix_now() + 600).contains(&expires_at),
        "{body}"
    );
    let grant = body["grant"].as_str().unwrap().to_owned();

    // As a query parameter and as a bearer credential.
    let object =
        |locator: &str| gateway.url(&locator_query("/v1/object", locator, &[("grant", &grant)]));
    let (status, _, bytes) = get(&object("s3://media/task-17/1.txt"), None).await;
    assert_eq!(
        (status, bytes.as_slice()),
        (200, &b"bytes of task-17/1.txt"[..])
    );
    let plain = gateway.url(&locator_query(
        "/v1/object",
        "s3://media/task-17/2.txt",
        &[],
    ));
    let (status, _, bytes) = get(&plain, Some(&grant)).await;
    assert_eq!(
        (status, bytes.as_slice()),
        (200, &b"bytes of task-17/2.txt"[..])
    );
    let list = gateway.url(&locator_query(
        "/v1/list",
        "s3://media/task-17/",
        &[("grant", &grant)],
    ));
    let (status, _, body) = get(&list, None).await;
    assert_eq!(status, 200);
    assert_eq!(json_of(&body)["objects"].as_array().unwrap().len(), 2);
    // Presigning with a grant gives URLs that end with the grant at the latest.
    let presign = gateway.url(&locator_query(
        "/v1/presign",
        "s3://media/task-17/1.txt",
        &[("grant", &grant), ("expires", "604800")],
    ));
    let (status, _, body) = get(&presign, None).await;
    assert_eq!(status, 200);
    let url = json_of(&body)["url"].as_str().unwrap().to_owned();
    assert!(
        params(&url).contains(&("expires".into(), expires_at.to_string())),
        "{url}"
    );

    // Outside the prefix (task-1 is a string prefix of task-17, not under it),
    // the bucket, or for grants of grants: refused before the store.
    let before = store.requests();
    for locator in [
        "s3://media/task-1/x.txt",
        "s3://media/public/a.txt",
        "s3://other/o.txt",
    ] {
        let (status, _, body) = get(&object(locator), None).await;
        assert_eq!(
            (status, error_code(&body)),
            (403, "ClientNotPermitted".to_owned()),
            "{locator}"
        );
    }
    let (status, _, body) = get(
        &gateway.url(&locator_query(
            "/v1/list",
            "s3://media/",
            &[("grant", &grant)],
        )),
        None,
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (403, "ClientNotPermitted".to_owned())
    );
    let (status, body) = post(&gateway.url("/v1/grant"), Some(&grant), &ask).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("ClientNotPermitted"))
    );
    // A grant cannot exceed the client's scope.
    let wider = json!({"prefix": "s3://media/", "expires": 600});
    let (status, body) = post(&gateway.url("/v1/grant"), Some(&narrow), &wider).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("ClientNotPermitted"))
    );
    let (status, body) = post(
        &gateway.url("/v1/grant"),
        Some(&narrow),
        &json!({"prefix": "s3://media/task-17/", "expires": 604_801}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("InvalidArgument"))
    );
    // Tampered grants are refused.
    let mut forged = grant.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    let (status, _, body) = get(
        &gateway.url(&locator_query(
            "/v1/object",
            "s3://media/task-17/1.txt",
            &[("grant", &forged)],
        )),
        None,
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (403, "SignatureDoesNotMatch".to_owned())
    );
    let (status, _, body) = get(
        &gateway.url(&locator_query(
            "/v1/object",
            "s3://media/task-17/1.txt",
            &[("grant", "s3g1.nonsense")],
        )),
        None,
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (400, "InvalidArgument".to_owned())
    );
    assert_eq!(store.requests(), before);
}

#[tokio::test]
async fn grants_and_urls_of_a_removed_client_stop_working() {
    let store = seeded_store().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("url-keys");
    std::fs::write(&keys, format!("{}\n{}\n", "k".repeat(40), "j".repeat(40))).unwrap();
    let keys = keys.to_str().unwrap();
    let config = clients_config(&store).set("server", "url_signing_keys_file", keys);
    let first = Gateway::start(&config.build()).await;
    let ask = json!({"prefix": "s3://media/task-17/", "expires": 600});
    let (status, body) = post(&first.url("/v1/grant"), Some(&token("narrow")), &ask).await;
    assert_eq!(status, 200);
    let grant = body["grant"].as_str().unwrap().to_owned();
    let path = locator_query(
        "/v1/object",
        "s3://media/task-17/1.txt",
        &[("grant", &grant)],
    );
    // Another replica with the same keys accepts the grant…
    let replica = Gateway::start(&config.build()).await;
    assert_eq!(get(&replica.url(&path), None).await.0, 200);
    // …one whose config no longer has the client refuses it.
    let without = ConfigBuilder::store(&store.url(), &["media"])
        .set("server", "url_signing_keys_file", keys)
        .client(client_entry("wide", &["*"]).into())
        .build();
    let revoked = Gateway::start(&without).await;
    let (status, _, body) = get(&revoked.url(&path), None).await;
    assert_eq!(
        (status, error_code(&body)),
        (401, "Unauthorized".to_owned())
    );
}

#[test]
fn config_keeps_an_anonymous_gateway_on_loopback() {
    init();
    let base = || ConfigBuilder::store("http://127.0.0.1:9", &["media"]);
    let exposed = base().set("server", "listen", "0.0.0.0:8080").build();
    let error = s3gate::config::Config::parse(&exposed)
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("[server]: `listen` is not a loopback address and no [[clients]]"),
        "{error}"
    );
    assert!(error.contains("allow_anonymous = true"), "{error}");
    let allowed =
        base()
            .set("server", "listen", "0.0.0.0:8080")
            .set("server", "allow_anonymous", true);
    assert!(s3gate::config::Config::parse(&allowed.build()).is_ok());
    let with_client = base()
        .set("server", "listen", "[::]:8080")
        .client(client_entry("c", &["store"]).into());
    assert!(s3gate::config::Config::parse(&with_client.build()).is_ok());
    let metrics_exposed = base()
        .set("server", "metrics_listen", "0.0.0.0:9100")
        .build();
    assert!(s3gate::config::Config::parse(&metrics_exposed).is_err());

    let mut raw_token = client_entry("c", &["store"]);
    raw_token.insert("token_sha256".into(), vec![token("c")].into());
    let unknown = client_entry("c", &["nope"]);
    let mut both = client_entry("c", &["store"]);
    both.insert("access_key_id".into(), "SHORT".into());
    for (client, message) in [
        (
            raw_token,
            "client \"c\": `token_sha256` must hold 64-digit hex SHA-256 digests",
        ),
        (
            unknown,
            "client \"c\": `integrations` names \"nope\", which is not a configured integration",
        ),
        (
            both,
            "client \"c\": `access_key_id` must be 16 to 128 letters and digits",
        ),
    ] {
        let error = s3gate::config::Config::parse(&base().client(client.into()).build())
            .unwrap_err()
            .to_string();
        assert!(error.starts_with(message), "{error}");
    }
    let twice = base()
        .client(client_entry("c", &["store"]).into())
        .client(client_entry("c", &["store"]).into());
    let error = s3gate::config::Config::parse(&twice.build())
        .unwrap_err()
        .to_string();
    assert!(error.contains("is used by another client"), "{error}");
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("url-keys");
    std::fs::write(&keys, format!("{},short\n", "k".repeat(40))).unwrap();
    let short = base()
        .set("server", "url_signing_keys_file", keys.to_str().unwrap())
        .build();
    let error = s3gate::config::Config::parse(&short)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("holds a key shorter than 32 characters"),
        "{error}"
    );
}

const TOOLS_KEY: &str = "S3GATECLIENT00000001";

/// A gateway whose S3 front takes the `tools` client's keys: bucket media,
/// prefix public/.
async fn s3_gateway(store: &FsStore) -> (Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("tools-secret");
    std::fs::write(&secret, "tools-secret-0123456789\n").unwrap();
    let mut tools = client_entry("tools", &["store"]);
    tools.remove("token_sha256");
    tools.insert("access_key_id".into(), TOOLS_KEY.into());
    tools.insert(
        "secret_access_key_file".into(),
        secret.to_str().unwrap().into(),
    );
    tools.insert("buckets".into(), vec!["media"].into());
    tools.insert("prefixes".into(), vec!["public/"].into());
    let config = ConfigBuilder::store(&store.url(), &["media", "other"])
        .client(tools.into())
        .client(client_entry("wide", &["*"]).into())
        .build();
    (Gateway::start(&config).await, dir)
}

/// A header-signed S3 request to the gateway, as of `time`.
async fn s3_get(
    gateway: &Gateway,
    key_id: &str,
    secret: &str,
    path: &str,
    time: SystemTime,
) -> (u16, String) {
    let creds = s3gate::sigv4::Credentials::new(key_id, secret, None, None);
    let host = gateway.addr.to_string();
    let encoded = s3gate::sigv4::encode_path(path);
    let signed = s3gate::sigv4::sign_headers(
        &creds,
        &s3gate::sigv4::SigningRequest {
            method: "GET",
            host: &host,
            path: &encoded,
            query: &[],
            region: "us-east-1",
            service: "s3",
            time,
        },
    );
    let response = client()
        .get(gateway.url(&encoded))
        .header("authorization", signed.authorization)
        .header("x-amz-date", signed.amz_date)
        .header("x-amz-content-sha256", signed.content_sha256)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn s3_code(xml: &str) -> &str {
    xml.split("<Code>")
        .nth(1)
        .and_then(|r| r.split("</Code>").next())
        .unwrap_or("")
}

#[tokio::test]
async fn the_s3_front_takes_client_signatures_within_their_scope() {
    let store = seeded_store().await;
    let (gateway, _dir) = s3_gateway(&store).await;
    let now = SystemTime::now();
    let secret = "tools-secret-0123456789";
    let (status, body) = s3_get(&gateway, TOOLS_KEY, secret, "/media/public/a.txt", now).await;
    assert_eq!((status, body.as_str()), (200, "bytes of public/a.txt"));
    // ListBuckets names the client's buckets only.
    let (status, body) = s3_get(&gateway, TOOLS_KEY, secret, "/", now).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<Name>media</Name>") && !body.contains("<Name>other</Name>"),
        "{body}"
    );

    let before = store.requests();
    let skewed = now - Duration::from_secs(20 * 60);
    for (key_id, secret, path, time, status, code) in [
        (
            TOOLS_KEY,
            "wrong-secret-0123456789",
            "/media/public/a.txt",
            now,
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "S3GATEUNKNOWN0000000",
            secret,
            "/media/public/a.txt",
            now,
            403,
            "InvalidAccessKeyId",
        ),
        (
            TOOLS_KEY,
            secret,
            "/media/public/a.txt",
            skewed,
            403,
            "RequestTimeTooSkewed",
        ),
        (
            TOOLS_KEY,
            secret,
            "/media/private/b.txt",
            now,
            403,
            "AccessDenied",
        ),
        (TOOLS_KEY, secret, "/other/o.txt", now, 403, "AccessDenied"),
    ] {
        let (got, body) = s3_get(&gateway, key_id, secret, path, time).await;
        assert_eq!((got, s3_code(&body)), (status, code), "{path}: {body}");
        assert!(!body.contains(secret), "{body}");
    }
    // Unsigned, and with a bearer token (the JSON API's credential): refused.
    let (status, _, body) = get(&gateway.url("/media/public/a.txt"), None).await;
    assert_eq!(
        (status, s3_code(&String::from_utf8(body).unwrap())),
        (403, "AccessDenied")
    );
    let (status, _, _) = get(&gateway.url("/media/public/a.txt"), Some(&token("wide"))).await;
    assert_eq!(status, 400, "a bearer header is not a SigV4 signature");
    assert_eq!(store.requests(), before, "refusals reached the store");
}

#[tokio::test]
async fn a_grant_never_mints_urls_that_outlive_it() {
    let store = seeded_store().await;
    let config = clients_config(&store)
        .integration("delivery", "redirect")
        .integration("presign_window_s", 300)
        .build();
    let gateway = Gateway::start(&config).await;
    let ask = json!({"prefix": "s3://media/task-17/", "expires": 60});
    let (status, body) = post(&gateway.url("/v1/grant"), Some(&token("wide")), &ask).await;
    assert_eq!(status, 200, "{body}");
    let grant = body["grant"].as_str().unwrap().to_owned();
    let grant_ends = body["expires_at"].as_u64().unwrap();
    // The 307 of /v1/object, even asked for a week.
    let object = locator_query(
        "/v1/object",
        "s3://media/task-17/1.txt",
        &[("grant", &grant), ("expires", "604800")],
    );
    let response = client().get(gateway.url(&object)).send().await.unwrap();
    assert_eq!(response.status(), 307);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let max_age: u64 = response.headers()["cache-control"]
        .to_str()
        .unwrap()
        .rsplit('=')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age <= 60, "{max_age}");
    let signed_at = params(&location)
        .into_iter()
        .find(|(k, _)| k == "X-Amz-Date")
        .unwrap()
        .1;
    let lifetime: u64 = params(&location)
        .into_iter()
        .find(|(k, _)| k == "X-Amz-Expires")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let signed_at = amz_date_to_unix(&signed_at);
    assert!(
        signed_at + lifetime <= grant_ends,
        "{location} outlives the grant ending at {grant_ends}"
    );
    // The same through /v1/presign.
    let presign = locator_query(
        "/v1/presign",
        "s3://media/task-17/1.txt",
        &[("grant", &grant)],
    );
    let (status, _, body) = get(&gateway.url(&presign), None).await;
    assert_eq!(status, 200);
    let url = json_of(&body)["url"].as_str().unwrap().to_owned();
    let lifetime: u64 = params(&url)
        .into_iter()
        .find(|(k, _)| k == "X-Amz-Expires")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let signed_at = amz_date_to_unix(
        &params(&url)
            .into_iter()
            .find(|(k, _)| k == "X-Amz-Date")
            .unwrap()
            .1,
    );
    assert!(signed_at + lifetime <= grant_ends, "{url}");
}

/// `YYYYMMDDTHHMMSSZ` as unix seconds.
fn amz_date_to_unix(text: &str) -> u64 {
    let n = |r: std::ops::Range<usize>| text[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(4..6), n(6..8));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + n(9..11) * 3600 + n(11..13) * 60 + n(13..15)) as u64
}

#[tokio::test]
async fn credentials_that_prove_too_little_are_refused() {
    let store = seeded_store().await;
    let mut short = client_entry("short", &["*"]);
    short.insert("token_sha256".into(), vec![digest("short-token")].into());
    let gateway = Gateway::start(&clients_config(&store).client(short.into()).build()).await;
    let path = gateway.url(&locator_query(
        "/v1/presign",
        "s3://media/public/a.txt",
        &[],
    ));
    // A token shorter than 16 characters never authenticates, even when listed.
    let (status, _, body) = get(&path, Some("short-token")).await;
    assert_eq!(
        (status, error_code(&body)),
        (401, "Unauthorized".to_owned())
    );
    // Two Authorization headers: refused, whichever is valid.
    let response = client()
        .get(&path)
        .header("authorization", format!("Bearer {}", token("wide")))
        .header("authorization", "Bearer not-a-valid-token-at-all")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // A grant of a metrics client is a browser credential: no /metrics.
    let ask = json!({"prefix": "s3://media/task-17/"});
    let (_, body) = post(&gateway.url("/v1/grant"), Some(&token("metrics")), &ask).await;
    let grant = body["grant"].as_str().unwrap().to_owned();
    for (path, bearer) in [
        (format!("/metrics?grant={grant}"), None),
        ("/metrics".to_owned(), Some(grant.as_str())),
    ] {
        let (status, _, body) = get(&gateway.url(&path), bearer).await;
        assert_eq!(
            (status, error_code(&body)),
            (403, "ClientNotPermitted".to_owned()),
            "{path}"
        );
    }
    assert_eq!(
        get(&gateway.url("/metrics"), Some(&token("metrics")))
            .await
            .0,
        200
    );
}

#[test]
fn config_refuses_blank_token_digests_and_an_exposed_anonymous_s3_front() {
    init();
    let base = || ConfigBuilder::store("http://127.0.0.1:9", &["media"]);
    for blank in ["", "\n"] {
        let mut client = client_entry("c", &["store"]);
        client.insert("token_sha256".into(), vec![digest(blank)].into());
        let error = s3gate::config::Config::parse(&base().client(client.into()).build())
            .unwrap_err()
            .to_string();
        assert!(error.contains("the digest of an empty token"), "{error}");
    }
    let exposed = base()
        .set("server", "listen", "0.0.0.0:8080")
        .client(client_entry("c", &["store"]).into())
        .s3_anonymous();
    let error = s3gate::config::Config::parse(&exposed.clone().build())
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("[s3_api]: `anonymous` = true serves every integration's objects"),
        "{error}"
    );
    assert!(
        s3gate::config::Config::parse(&exposed.set("server", "allow_anonymous", true).build())
            .is_ok()
    );
}
