//! Network faults between real hosts: the store runs in a network namespace of
//! the test's own, reached over a veth pair (and, where a test says so,
//! through a fault-injecting relay), so links go down, SYNs go unanswered and
//! bytes trickle as they do between machines; STS (moto) sits behind the
//! same relay to be slow or down. Each test's namespace is its
//! own and is deleted when the test ends; creating one needs root (CI runs
//! the suite as root), and a test that cannot create it fails.
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

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::config::ConfigBuilder;
use support::moto::{session_store, Moto};
use support::netns::{connections_to, Netns};
use support::relay::{FaultRelay, Faults};
use support::*;

/// A store serving bucket `media` inside a namespace of its own.
struct RemoteStore {
    netns: Netns,
    store: FsStore,
}

impl RemoteStore {
    async fn start() -> Self {
        let netns = Netns::create().await;
        let store = FsStore::start_on(netns.listen());
        store.bucket("media");
        Self { netns, store }
    }
}

/// Deterministic, non-repeating bytes, so that a misplaced chunk shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// A gateway config streaming the store at `endpoint` on both proxy paths.
fn proxy_config(endpoint: &str) -> ConfigBuilder {
    ConfigBuilder::store(endpoint, &["media"])
        .integration("delivery", "proxy")
        .s3_anonymous()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::test]
async fn a_slow_throttled_link_delivers_byte_exact_responses() {
    let remote = RemoteStore::start().await;
    let sizes = [1usize, 10_000, 100_000, 300_000];
    for (i, size) in sizes.iter().enumerate() {
        remote
            .store
            .put("media", &format!("obj-{i}"), &pattern(*size, i as u8));
    }
    let relay = FaultRelay::start(remote.store.store.addr()).await;
    relay.set(Faults {
        delay_per_chunk: Duration::from_millis(100),
        bytes_per_s: Some(1_000_000),
        ..Faults::default()
    });
    let gateway = Arc::new(Gateway::start(&proxy_config(&relay.url()).build()).await);

    let mut latencies = Vec::new();
    for round in 0..4 {
        let mut tasks = Vec::new();
        for (i, size) in sizes.iter().enumerate() {
            // Both proxy paths: the S3 front and /v1/object.
            let path = if (round + i) % 2 == 0 {
                format!("/media/obj-{i}")
            } else {
                format!("/v1/object?locator=s3%3A%2F%2Fmedia%2Fobj-{i}")
            };
            let (gateway, expected) = (gateway.clone(), pattern(*size, i as u8));
            tasks.push(tokio::spawn(async move {
                let started = Instant::now();
                let response = client().get(gateway.url(&path)).send().await.unwrap();
                assert_eq!(response.status(), 200, "{path}");
                let length = response.content_length();
                let body = response.bytes().await.unwrap();
                assert_eq!(length, Some(expected.len() as u64), "{path}");
                assert!(body[..] == expected[..], "{path}: body differs");
                started.elapsed()
            }));
        }
        for task in tasks {
            latencies.push(
                tokio::time::timeout(Duration::from_secs(30), task)
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
    }
    latencies.sort();
    eprintln!(
        "faults: slow link (100 ms/chunk, 1 MB/s): {} responses byte-exact, p50 {:?}, p99 {:?}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    // The slowest object (300 kB) takes at least its throttled time.
    assert!(percentile(&latencies, 0.99) >= Duration::from_millis(300));
}

#[tokio::test]
async fn the_store_link_going_down_mid_body_aborts_the_response() {
    let remote = RemoteStore::start().await;
    const BIG: usize = 64 << 20;
    remote.store.put("media", "big.bin", &pattern(BIG, 7));
    remote.store.put("media", "small.txt", b"still here");
    let config = proxy_config(&remote.store.url()).set("upstream", "body_idle_timeout_s", 1);
    let gateway = Gateway::start(&config.build()).await;
    let store_addr = remote.store.store.addr();

    // A warm connection in the gateway's pool is the baseline.
    assert_eq!(
        fetch(&gateway.url("/media/small.txt")).await,
        (200, b"still here".to_vec())
    );
    let baseline = connections_to(store_addr);

    let mut response = client()
        .get(gateway.url("/media/big.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let length = response.content_length();
    let mut received = 0usize;
    while received < 1 << 20 {
        received += response.chunk().await.unwrap().unwrap().len();
    }
    let cut = Instant::now();
    remote.netns.set_link(false).await;
    let ending = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => received += chunk.len(),
                Ok(None) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .expect("the response ends within 15 s of the link going down");
    let aborted_after = cut.elapsed();
    assert!(
        ending.is_err(),
        "a cut-off body must not end cleanly: {received} of {length:?} bytes"
    );
    assert!(received < BIG, "{received} bytes");
    assert_eq!(
        length,
        Some(BIG as u64),
        "the response announced its length"
    );

    // The gateway lets the dead connection go.
    let deadline = Instant::now() + Duration::from_secs(10);
    while connections_to(store_addr) > baseline {
        assert!(
            Instant::now() < deadline,
            "{} connections to the store, baseline {baseline}",
            connections_to(store_addr)
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // polling interval
    }
    let after = connections_to(store_addr);

    remote.netns.set_link(true).await;
    assert_eq!(
        fetch(&gateway.url("/media/small.txt")).await,
        (200, b"still here".to_vec()),
        "the first request after the link is back"
    );
    eprintln!(
        "faults: link down mid-body: aborted after {received} of {BIG} bytes, {aborted_after:?} after the cut; connections to the store {baseline} before, {after} after"
    );
}

#[tokio::test]
async fn a_store_connection_reset_mid_body_aborts_the_response() {
    let remote = RemoteStore::start().await;
    const SIZE: usize = 4 << 20;
    remote.store.put("media", "video.bin", &pattern(SIZE, 3));
    let relay = FaultRelay::start(remote.store.store.addr()).await;
    relay.set(Faults {
        reset_after: Some(1 << 20),
        ..Faults::default()
    });
    let gateway = Gateway::start(&proxy_config(&relay.url()).build()).await;
    for path in [
        "/media/video.bin",
        "/v1/object?locator=s3%3A%2F%2Fmedia%2Fvideo.bin",
    ] {
        let mut response = client().get(gateway.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let mut received = 0usize;
        let ending = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match response.chunk().await {
                    Ok(Some(chunk)) => received += chunk.len(),
                    Ok(None) => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        })
        .await
        .expect("the response ends within 10 s of the reset");
        assert!(
            ending.is_err(),
            "{path}: a reset body ended cleanly after {received} bytes"
        );
        assert!(received < 1 << 20, "{path}: {received} bytes");
        eprintln!(
            "faults: store reset after 1 MiB: {path} aborted after {received} of {SIZE} bytes"
        );
    }
    relay.set(Faults::default());
    let (status, body) = fetch(&gateway.url("/media/video.bin")).await;
    assert_eq!(status, 200);
    assert!(
        body == pattern(SIZE, 3),
        "byte-exact once the store behaves"
    );
}

/// `GET url` → (status, S3 error code, elapsed).
async fn timed_get(url: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let response = client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    let code = body
        .split("<Code>")
        .nth(1)
        .and_then(|rest| rest.split("</Code>").next())
        .unwrap_or("")
        .to_owned();
    (status, code, started.elapsed())
}

/// While `requests` run, `/healthz` is timed; returns the requests' results
/// and the slowest `/healthz`.
async fn with_health_probes(
    gateway: &Arc<Gateway>,
    path: &str,
    requests: usize,
) -> (Vec<(u16, String, Duration)>, Duration) {
    let tasks: Vec<_> = (0..requests)
        .map(|_| {
            let url = gateway.url(path);
            tokio::spawn(async move { timed_get(&url).await })
        })
        .collect();
    let mut slowest_health = Duration::ZERO;
    while !tasks.iter().all(tokio::task::JoinHandle::is_finished) {
        let started = Instant::now();
        assert_eq!(fetch(&gateway.url("/healthz")).await.0, 200);
        slowest_health = slowest_health.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await; // probe interval
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    (results, slowest_health)
}

#[tokio::test]
async fn unanswered_syns_fail_within_the_connect_timeout() {
    let remote = RemoteStore::start().await;
    remote.store.put("media", "small.txt", b"hello");
    const CONNECT_MS: i64 = 300;
    let config = proxy_config(&remote.store.url())
        .set("upstream", "connect_timeout_ms", CONNECT_MS)
        .set("upstream", "header_timeout_s", 2);
    let gateway = Arc::new(Gateway::start(&config.build()).await);
    remote.netns.set_link(false).await;

    let (results, slowest_health) = with_health_probes(&gateway, "/media/small.txt", 20).await;
    let limit = Duration::from_millis(CONNECT_MS as u64) + Duration::from_millis(700);
    let slowest = results.iter().map(|r| r.2).max().unwrap();
    for (status, code, elapsed) in &results {
        assert!(
            matches!(status, 502 | 504),
            "status {status} {code} after {elapsed:?}"
        );
        assert!(
            *elapsed <= limit,
            "{elapsed:?} > {limit:?} ({status} {code})"
        );
    }
    assert!(
        slowest_health < Duration::from_millis(250),
        "/healthz took {slowest_health:?}"
    );
    eprintln!(
        "faults: SYNs unanswered (connect timeout {CONNECT_MS} ms): {} requests → {} {}, slowest {slowest:?}; slowest /healthz {slowest_health:?}",
        results.len(),
        results[0].0,
        results[0].1
    );

    // Once the link is back (and ARP, which gave up while it was down,
    // resolves again), the store serves again.
    remote.netns.set_link(true).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = fetch(&gateway.url("/media/small.txt")).await;
        if status == 200 {
            assert_eq!(body, b"hello");
            break;
        }
        assert!(matches!(status, 502 | 504), "{status}");
        assert!(Instant::now() < deadline, "the store never came back");
        tokio::time::sleep(Duration::from_millis(50)).await; // retry interval
    }
}

#[tokio::test]
async fn a_store_that_never_answers_is_a_504_within_the_header_timeout() {
    let remote = RemoteStore::start().await;
    remote.store.put("media", "small.txt", b"hello");
    let relay = FaultRelay::start(remote.store.store.addr()).await;
    relay.set(Faults {
        stall: true,
        ..Faults::default()
    });
    let config = proxy_config(&relay.url()).set("upstream", "header_timeout_s", 1);
    let gateway = Arc::new(Gateway::start(&config.build()).await);

    let (results, slowest_health) = with_health_probes(&gateway, "/media/small.txt", 20).await;
    let (floor, limit) = (Duration::from_secs(1), Duration::from_millis(1700));
    for (status, code, elapsed) in &results {
        assert_eq!((*status, code.as_str()), (504, "GatewayTimeout"));
        assert!(
            *elapsed >= floor && *elapsed <= limit,
            "{elapsed:?} outside [{floor:?}, {limit:?}]"
        );
    }
    assert!(
        slowest_health < Duration::from_millis(250),
        "/healthz took {slowest_health:?}"
    );
    let slowest = results.iter().map(|r| r.2).max().unwrap();
    eprintln!(
        "faults: store silent (header timeout 1 s): {} requests → 504, slowest {slowest:?}; slowest /healthz {slowest_health:?}",
        results.len()
    );

    // The stalled connections are given up, and a healthy store serves again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while relay.open() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} relay connections still open",
            relay.open()
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // polling interval
    }
    relay.set(Faults::default());
    assert_eq!(
        fetch(&gateway.url("/media/small.txt")).await,
        (200, b"hello".to_vec())
    );
}

/// One request of a load run: when it ended (since the run's origin), how it
/// went and how long it took.
#[derive(Debug, Clone)]
struct Sample {
    ended: Duration,
    status: u16,
    code: String,
    latency: Duration,
}

/// `workers` clients presigning in a loop for `length`; every result.
async fn load(
    gateway: &Arc<Gateway>,
    origin: Instant,
    workers: usize,
    length: Duration,
) -> Vec<Sample> {
    let client = client();
    let url = gateway.url("/v1/presign?locator=s3%3A%2F%2Fmedia%2Fcat.jpg");
    let end = Instant::now() + length;
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while Instant::now() < end {
                    let started = Instant::now();
                    let response = client.get(&url).send().await.unwrap();
                    let status = response.status().as_u16();
                    let body: serde_json::Value = response.json().await.unwrap();
                    let code = body["error"]["code"].as_str().unwrap_or("").to_owned();
                    samples.push(Sample {
                        ended: origin.elapsed(),
                        status,
                        code,
                        latency: started.elapsed(),
                    });
                }
                samples
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort_by_key(|s| s.ended);
    all
}

fn p99_latency(samples: &[&Sample]) -> Duration {
    let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    latencies.sort();
    if latencies.is_empty() {
        return Duration::ZERO;
    }
    percentile(&latencies, 0.99)
}

#[tokio::test]
async fn sts_slow_then_down_under_load_keeps_valid_sessions_and_fails_fast() {
    const EXTERNAL_ID: &str = "s3gate-faults-ext";
    const WORKERS: usize = 200;
    // An answer this fast did not wait for STS (whose timeout is 5 s); under
    // this load a request takes up to about a second on 2 cores.
    const FAST: Duration = Duration::from_millis(2500);
    let moto = Moto::start(&[("reader", EXTERNAL_ID)]).await;
    let relay = FaultRelay::start(moto.url.trim_start_matches("http://").parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("store/media")).unwrap();
    std::fs::write(dir.path().join("store/media/cat.jpg"), b"meow").unwrap();
    let store = session_store(&moto.url, &dir.path().join("store")).await;
    let secret_file = dir.path().join("identity-secret");
    std::fs::write(&secret_file, &moto.setup.secret_access_key).unwrap();
    // 8 s sessions: refreshed from 4 s before expiry, unusable 2 s before it;
    // a refresh that STS leaves unanswered outlives the session.
    let config = format!(
        "[identity.credentials]\naccess_key_id = \"{}\"\nsecret_access_key_file = \"{}\"\n\n\
         [sts]\nrefresh_margin_ratio = 0.5\nexpiry_margin_s = 1\nretry_base_ms = 100\nretry_max_ms = 400\ntimeout_s = 5\n\n\
         [[integrations]]\nname = \"acme\"\ndefault = true\nbuckets = [\"media\"]\nendpoint_url = \"{}\"\n\
         role_arn = \"{}\"\nexternal_id = \"{EXTERNAL_ID}\"\nsts_endpoint = \"{}\"\nsession_duration_s = 8\n",
        moto.setup.access_key_id,
        secret_file.display(),
        store.url(),
        moto.setup.roles["reader"],
        relay.url(),
    );
    let gateway = Arc::new(Gateway::start(&config).await);
    let (status, body) = presign(&gateway, "s3://media/cat.jpg", &[]).await;
    let origin = Instant::now();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        fetch(body["url"].as_str().unwrap()).await,
        (200, b"meow".to_vec())
    );
    assert_eq!(relay.accepted(), 1);

    // STS slow: it answers after the gateway's STS timeout.
    relay.set(Faults {
        delay_per_chunk: Duration::from_secs(8),
        ..Faults::default()
    });
    relay.reset_peaks();
    let slow = load(&gateway, origin, WORKERS, Duration::from_secs(10)).await;
    let slow_in_flight = relay.max_in_flight();
    let served: Vec<&Sample> = slow.iter().filter(|s| s.status == 200).collect();
    let failed: Vec<&Sample> = slow.iter().filter(|s| s.status != 200).collect();
    let last_served = served.last().map(|s| s.ended).unwrap_or_default();
    let first_failed = failed.first().map(|s| s.ended).unwrap_or_default();
    eprintln!(
        "faults: STS slow, {WORKERS} concurrent: {} served (p99 {:?}, last at {last_served:?}), then {} failed (p99 {:?}, first at {first_failed:?}); STS connections {}, most calls in flight {slow_in_flight}",
        served.len(),
        p99_latency(&served),
        failed.len(),
        p99_latency(&failed),
        relay.accepted(),
    );
    // The valid session serves until its last usable second, while its
    // refresh is failing.
    assert!(
        last_served >= Duration::from_millis(4500),
        "served until {last_served:?}"
    );
    assert!(
        served.iter().all(|s| s.latency < FAST),
        "a request holding a valid session waited: p99 {:?}",
        p99_latency(&served)
    );
    // Then every request fails, at once, with the precise code.
    assert!(!failed.is_empty(), "the session never expired");
    assert!(first_failed > last_served - Duration::from_millis(100));
    for s in &failed {
        assert_eq!(
            (s.status, s.code.as_str()),
            (503, "CredentialsUnavailable"),
            "{s:?}"
        );
        assert!(s.latency < FAST, "a failure waited for STS: {s:?}");
    }
    assert!(
        slow_in_flight <= 1,
        "{slow_in_flight} STS calls in flight at once"
    );

    // STS down: every connection refused.
    relay.set(Faults {
        down: true,
        ..Faults::default()
    });
    relay.reset_peaks();
    let calls_before = relay.accepted();
    let down = load(&gateway, origin, WORKERS, Duration::from_secs(2)).await;
    let down_calls = relay.accepted() - calls_before;
    let all: Vec<&Sample> = down.iter().collect();
    eprintln!(
        "faults: STS down, {WORKERS} concurrent: {} requests failed (p99 {:?}); STS connections {down_calls}, most open at once {}",
        down.len(),
        p99_latency(&all),
        relay.max_open()
    );
    for s in &down {
        assert_eq!(
            (s.status, s.code.as_str()),
            (503, "CredentialsUnavailable"),
            "{s:?}"
        );
        assert!(s.latency < FAST, "a failure waited for STS: {s:?}");
    }
    // Retries follow the backoff (100–400 ms, two attempts each), whatever the load.
    assert!(down_calls <= 30, "{down_calls} STS connections in 2 s");
    assert!(
        relay.max_open() <= 1,
        "{} STS connections at once",
        relay.max_open()
    );

    // STS back: sessions are fetched again and every request is served.
    relay.set(Faults::default());
    relay.reset_peaks();
    let returned = origin.elapsed();
    let back = load(&gateway, origin, WORKERS, Duration::from_secs(6)).await;
    let first_served = back
        .iter()
        .find(|s| s.status == 200)
        .map(|s| s.ended)
        .expect("served again once STS is back");
    assert!(
        relay.max_in_flight() <= 1,
        "{} STS calls in flight at once",
        relay.max_in_flight()
    );
    let after: Vec<&Sample> = back
        .iter()
        .filter(|s| s.ended > first_served + Duration::from_millis(200))
        .collect();
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|s| s.status == 200),
        "failures after recovery"
    );
    eprintln!(
        "faults: STS back: served again {:?} after it returned; {} requests since, p99 {:?}",
        first_served.saturating_sub(returned),
        after.len(),
        p99_latency(&after)
    );
}
