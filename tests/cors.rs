//! CORS rules over plain HTTP, and cache-stable presigned URLs.
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

use support::config::ConfigBuilder;
use support::*;

const APP: &str = "https://app.example.com";

async fn gateway_with_cors(store: &FsStore) -> Gateway {
    let config = default_integration(&store.url(), &["media"])
        + &format!(
            r#"
[cors]
allowed_origins = ["{APP}", "https://*.labels.io"]
max_age_s = 900
allow_private_network = true

[[integrations]]
name = "scoped"
bucket = "scoped"
endpoint_url = "{}"
allowed_origins = ["http://localhost:5173"]
delivery = "proxy"
[integrations.credentials]
access_key_id = "{ACCESS_KEY}"
secret_access_key_env = "{SECRET_ENV}"
"#,
            store.url()
        );
    Gateway::start(&config).await
}

fn presign_path(locator: &str) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("locator", locator)
        .finish();
    format!("/v1/presign?{query}")
}

#[tokio::test]
async fn allowed_origins_get_cors_headers_on_success_and_error() {
    let store = FsStore::start().await;
    store.put("media", "a.png", b"a");
    let gateway = gateway_with_cors(&store).await;
    for (path, status) in [
        (presign_path("s3://media/a.png"), 200),
        (presign_path("s3://nope/a.png"), 403),
        ("/v1/missing".to_owned(), 404),
    ] {
        for origin in [APP, "https://team-7.labels.io"] {
            let response = client()
                .get(gateway.url(&path))
                .header("origin", origin)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), status, "{path}");
            let h = response.headers();
            assert_eq!(h["access-control-allow-origin"], origin, "{path}");
            assert!(h["vary"].to_str().unwrap().contains("Origin"));
            let exposed = h["access-control-expose-headers"].to_str().unwrap();
            for name in [
                "Content-Length",
                "Content-Range",
                "Accept-Ranges",
                "ETag",
                "Last-Modified",
                "x-amz-version-id",
            ] {
                assert!(exposed.contains(name), "{exposed} lacks {name}");
            }
        }
    }
}

#[tokio::test]
async fn disallowed_origins_get_no_cors_headers() {
    let store = FsStore::start().await;
    store.put("media", "a.png", b"a");
    let gateway = gateway_with_cors(&store).await;
    for origin in [
        "https://evil.example.com",
        "https://app.example.com:8443",
        "http://app.example.com",
        "https://app.example.com.evil.io",
        "https://a.b.labels.io",
        "null",
    ] {
        let response = client()
            .get(gateway.url(&presign_path("s3://media/a.png")))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "the request itself is served");
        assert!(
            !response
                .headers()
                .contains_key("access-control-allow-origin"),
            "{origin}"
        );
        assert!(response.headers()["vary"]
            .to_str()
            .unwrap()
            .contains("Origin"));
        let preflight = client()
            .request(reqwest::Method::OPTIONS, gateway.url("/v1/presign"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.status(), 403, "{origin}");
        assert!(!preflight
            .headers()
            .contains_key("access-control-allow-origin"));
        assert!(preflight.headers()["vary"]
            .to_str()
            .unwrap()
            .contains("Origin"));
    }
}

#[tokio::test]
async fn preflight_is_answered_without_auth_or_upstream() {
    let store = FsStore::start().await;
    let gateway = gateway_with_cors(&store).await;
    for path in [
        "/v1/object?locator=s3%3A%2F%2Fmedia%2Fa.png",
        "/v1/presign",
        "/media/a.png",
    ] {
        let response = client()
            .request(reqwest::Method::OPTIONS, gateway.url(path))
            .header("origin", APP)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "range, if-none-match")
            .header("access-control-request-private-network", "true")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "{path}");
        let h = response.headers();
        assert_eq!(h["access-control-allow-origin"], APP);
        let methods = h["access-control-allow-methods"].to_str().unwrap();
        for m in ["GET", "HEAD", "OPTIONS", "POST"] {
            assert!(methods.contains(m), "{methods}");
        }
        let headers = h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        for name in ["range", "if-none-match", "authorization", "content-type"] {
            assert!(headers.contains(name), "{headers}");
        }
        assert_eq!(h["access-control-max-age"], "900");
        assert_eq!(h["access-control-allow-private-network"], "true");
    }
    let put = client()
        .request(reqwest::Method::OPTIONS, gateway.url("/media/a.png"))
        .header("origin", APP)
        .header("access-control-request-method", "PUT")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 403, "no CORS for writes");
    assert_eq!(store.requests(), 0);
}

#[tokio::test]
async fn integration_origins_apply_to_that_integration_only() {
    let store = FsStore::start().await;
    store.put("media", "a.png", b"a");
    store.put("scoped", "b.png", b"b");
    let gateway = gateway_with_cors(&store).await;
    let local = "http://localhost:5173";
    let scoped = client()
        .get(gateway.url(&presign_path("s3://scoped/b.png")))
        .header("origin", local)
        .send()
        .await
        .unwrap();
    assert_eq!(scoped.headers()["access-control-allow-origin"], local);
    let object = client()
        .get(gateway.url("/v1/object?locator=s3%3A%2F%2Fscoped%2Fb.png"))
        .header("origin", local)
        .send()
        .await
        .unwrap();
    assert_eq!(object.status(), 200);
    assert_eq!(object.headers()["access-control-allow-origin"], local);
    let other = client()
        .get(gateway.url(&presign_path("s3://media/a.png")))
        .header("origin", local)
        .send()
        .await
        .unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    let global = client()
        .get(gateway.url(&presign_path("s3://scoped/b.png")))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(global.headers()["access-control-allow-origin"], APP);
}

#[tokio::test]
async fn wildcard_star_answers_star() {
    let store = FsStore::start().await;
    let config =
        default_integration(&store.url(), &["media"]) + "\n[cors]\nallowed_origins = [\"*\"]\n";
    let gateway = Gateway::start(&config).await;
    let response = client()
        .get(gateway.url("/healthz"))
        .header("origin", "https://anyone.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn windowed_presigned_urls_are_identical_within_a_window() {
    let store = FsStore::start().await;
    store.put("media", "a.png", b"a");
    let config = ConfigBuilder::store(&store.url(), &["media"])
        .integration("presign_window_s", 3600)
        .integration("presign_ttl_s", 600)
        .build();
    let gateway = Gateway::start(&config).await;
    let (_, first) = presign(&gateway, "s3://media/a.png", &[]).await;
    let (_, second) = presign(&gateway, "s3://media/a.png", &[]).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let window_start = now - now % 3600;
    if now % 3600 < 3599 {
        // Both calls fell in one window (all but the last second of it).
        assert_eq!(first["url"], second["url"]);
    }
    let url = first["url"].as_str().unwrap();
    let amz_date = s3gate::sigv4::time::AmzTime::new(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(window_start),
    );
    assert!(
        url.contains(&format!("X-Amz-Date={}", amz_date.date_time())),
        "{url}"
    );
    // One lifetime for the whole window: the requested 600 s from any moment in it.
    let expires: u64 = url
        .split("X-Amz-Expires=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(expires, 600 + 3600);
    assert!(window_start + expires >= now + 600);
    assert!(
        url.contains("response-cache-control=private%2C%20max-age%3D3600"),
        "{url}"
    );
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "private, max-age=3600");

    // The redirect is cacheable for what is left of the window.
    let redirect = client()
        .get(gateway.url("/v1/object?locator=s3%3A%2F%2Fmedia%2Fa.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 307);
    let cache = redirect.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    let max_age: u64 = cache
        .strip_prefix("private, max-age=")
        .unwrap()
        .parse()
        .unwrap();
    let left = window_start + 3600 - now;
    assert!(
        max_age <= left && max_age + 2 >= left,
        "{cache} vs {left} s left"
    );
}
