//! `/metrics` after known traffic: every counter the operator watches moves
//! by exactly what the requests did, and labels name only configured things.
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

/// The value of the series `name{labels}` on a metrics page.
fn value(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{page}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn counters_move_by_exactly_the_traffic() {
    let store = FsStore::start().await;
    let object = vec![7u8; 12_345];
    store.put("media", "a.bin", &object);
    let config = ConfigBuilder::store(&store.url(), &["media", "absent"])
        .integration("delivery", "proxy")
        .build();
    let gateway = Gateway::start(&config).await;
    let http = client();
    for _ in 0..3 {
        assert_eq!(presign(&gateway, "s3://media/a.bin", &[]).await.0, 200);
    }
    let url = gateway.url("/v1/object?locator=s3://media/a.bin");
    assert_eq!(
        http.get(&url).send().await.unwrap().bytes().await.unwrap(),
        object
    );
    let missing = gateway.url("/v1/object?locator=s3://media/missing.bin");
    assert_eq!(http.get(&missing).send().await.unwrap().status(), 404);
    let refused = gateway.url("/v1/presign?locator=s3://elsewhere/x");
    assert_eq!(http.get(&refused).send().await.unwrap().status(), 403);

    let page = metrics(&gateway).await;
    let requests = |route: &str, status: &str, integration: &str| {
        let class = format!("{}xx", &status[..1]);
        value(&page, &format!("s3gate_requests_total{{class=\"{class}\",client=\"-\",integration=\"{integration}\",method=\"GET\",route=\"{route}\",status=\"{status}\"}}"))
    };
    assert_eq!(requests("presign", "200", "store"), 3.0);
    assert_eq!(requests("object", "200", "store"), 1.0);
    assert_eq!(requests("object", "404", "store"), 1.0);
    // A bucket no integration serves is never a label.
    assert_eq!(requests("presign", "403", "-"), 1.0);
    assert!(!page.contains("elsewhere"), "{page}");
    assert_eq!(
        value(
            &page,
            "s3gate_request_duration_seconds_count{route=\"presign\"}"
        ),
        4.0
    );
    assert!(page.contains("s3gate_request_duration_seconds_bucket{route=\"object\",le=\"0.5\"}"));
    assert_eq!(
        value(&page, "s3gate_response_bytes_total{integration=\"store\"}"),
        12_345.0 + missing_body_len(&http, &missing).await
    );
    assert_eq!(
        value(
            &page,
            "s3gate_upstream_requests_total{class=\"2xx\",integration=\"store\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &page,
            "s3gate_upstream_requests_total{class=\"4xx\",integration=\"store\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &page,
            "s3gate_upstream_duration_seconds_count{integration=\"store\"}"
        ),
        2.0
    );
    assert!(value(&page, "s3gate_open_connections") >= 1.0);
}

/// The length of the JSON error body `/v1/object` answers for a missing key
/// (it is streamed through the same counter).
async fn missing_body_len(http: &reqwest::Client, url: &str) -> f64 {
    http.get(url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len() as f64
}
