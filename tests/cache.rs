//! The media cache against the embedded store, whose requests are counted:
//! one store read per slice however many readers, ranges and HEADs answered
//! from the cache, revalidation with the store's entity tag, two versions
//! never stitched, scope decided before the cache, the disk tier across a
//! restart, and a disk that fails degrading to memory.
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

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::config::{table, ConfigBuilder};
use support::*;

const MIB: usize = 1 << 20;

/// Deterministic bytes of length `len`, different for each `seed`.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 4099) as u8 ^ seed).collect()
}

/// A proxying integration over `store` with the media cache on.
fn cached(store: &FsStore, buckets: &[&str]) -> ConfigBuilder {
    ConfigBuilder::store(&store.url(), buckets)
        .integration("delivery", "proxy")
        .s3_anonymous()
        .set("cache", "memory_mb", 64)
}

struct Answer {
    status: u16,
    cache: String,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

async fn get(url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = client().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    answer(request.send().await.unwrap()).await
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let cache = headers
        .get("x-cache-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.bytes().await.unwrap().to_vec();
    Answer {
        status,
        cache,
        headers,
        body,
    }
}

fn object(gateway: &Gateway, locator: &str) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("locator", locator)
        .finish();
    gateway.url(&format!("/v1/object?{query}"))
}

fn metric(page: &str, prefix: &str) -> f64 {
    page.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn repeated_reads_cost_one_store_read_per_slice() {
    let store = FsStore::start().await;
    let small = pattern(200_000, 1);
    let large = pattern(3 * MIB + 5, 2);
    store.put("media", "small.png", &small);
    store.put("media", "large.bin", &large);
    let gateway = Gateway::start(&cached(&store, &["media"]).build()).await;

    let before = store.requests();
    let urls = [
        object(&gateway, "s3://media/small.png"),
        gateway.url("/media/small.png"),
    ];
    let mut statuses = Vec::new();
    for i in 0..6 {
        let got = get(&urls[i % 2], &[]).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body, small, "read {i} is byte-exact");
        assert_eq!(
            got.headers["content-length"],
            small.len().to_string().as_str()
        );
        assert_eq!(got.headers["accept-ranges"], "bytes");
        statuses.push(got.cache);
    }
    assert_eq!(statuses, ["MISS", "HIT", "HIT", "HIT", "HIT", "HIT"]);
    assert_eq!(store.requests() - before, 1, "six reads, one store GET");

    let before = store.requests();
    for _ in 0..3 {
        let got = get(&gateway.url("/media/large.bin"), &[]).await;
        assert_eq!(got.body, large);
    }
    assert_eq!(
        store.requests() - before,
        4,
        "one store GET per 1 MiB slice, once"
    );

    let page = metrics(&gateway).await;
    assert_eq!(
        metric(
            &page,
            "s3gate_cache_requests_total{integration=\"store\",status=\"miss\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &page,
            "s3gate_cache_requests_total{integration=\"store\",status=\"hit\"}"
        ),
        7.0
    );
    let from_cache = metric(
        &page,
        "s3gate_cache_bytes_total{integration=\"store\",source=\"cache\"}",
    );
    assert_eq!(from_cache as usize, 5 * small.len() + 2 * large.len());
    assert!(metric(&page, "s3gate_cache_memory_bytes") >= (small.len() + large.len()) as f64);
}

#[tokio::test]
async fn ranges_heads_and_conditionals_are_answered_from_the_cache() {
    let store = FsStore::start().await;
    let bytes = pattern(3 * MIB, 3);
    store.put("media", "clip.webm", &bytes);
    let gateway = Gateway::start(&cached(&store, &["media"]).build()).await;
    let url = gateway.url("/media/clip.webm");

    let cold_head = answer(client().head(&url).send().await.unwrap()).await;
    assert_eq!(
        (cold_head.status, cold_head.cache.as_str()),
        (200, "BYPASS")
    );
    let first = get(&url, &[]).await;
    assert_eq!((first.status, first.cache.as_str()), (200, "MISS"));
    let etag = first.headers["etag"].to_str().unwrap().to_owned();

    let before = store.requests();
    let across = get(&url, &[("range", "bytes=1048000-2097999")]).await;
    assert_eq!((across.status, across.cache.as_str()), (206, "HIT"));
    assert_eq!(
        across.headers["content-range"],
        format!("bytes 1048000-2097999/{}", bytes.len()).as_str()
    );
    assert_eq!(across.body, bytes[1_048_000..2_098_000]);
    let suffix = get(&url, &[("range", "bytes=-100")]).await;
    assert_eq!(suffix.status, 206);
    assert_eq!(suffix.body, bytes[bytes.len() - 100..]);
    let open = get(&url, &[("range", "bytes=3000000-")]).await;
    assert_eq!(open.body, bytes[3_000_000..]);
    let past = get(&url, &[("range", "bytes=4000000-")]).await;
    assert_eq!(past.status, 416);
    assert_eq!(
        past.headers["content-range"],
        format!("bytes */{}", bytes.len()).as_str()
    );
    assert!(String::from_utf8_lossy(&past.body).contains("<Code>InvalidRange</Code>"));
    let head = answer(client().head(&url).send().await.unwrap()).await;
    assert_eq!((head.status, head.cache.as_str()), (200, "HIT"));
    assert_eq!(
        head.headers["content-length"],
        bytes.len().to_string().as_str()
    );
    let not_modified = get(&url, &[("if-none-match", &etag)]).await;
    assert_eq!((not_modified.status, not_modified.body.len()), (304, 0));
    // A browser's revalidation sends both validators; If-None-Match decides.
    let since = ("if-modified-since", "Thu, 01 Jan 2026 00:00:00 GMT");
    let revalidated = get(&url, &[("if-none-match", &etag), since]).await;
    assert_eq!(
        (revalidated.status, revalidated.cache.as_str()),
        (304, "HIT")
    );
    assert_eq!(store.requests() - before, 0, "all from the cache");

    // What the cache does not answer for goes to the store as it is.
    let before = store.requests();
    let overridden = get(&format!("{url}?response-content-type=text/plain"), &[]).await;
    assert_eq!(
        (
            overridden.cache.as_str(),
            overridden.headers["content-type"].to_str().unwrap()
        ),
        ("BYPASS", "text/plain")
    );
    let conditional = get(&url, &[("if-match", "\"other\"")]).await;
    assert_eq!(
        conditional.cache, "BYPASS",
        "If-Match is the store's to answer"
    );
    assert_eq!(store.requests() - before, 2);
}

#[tokio::test]
async fn concurrent_cold_readers_share_one_read_per_slice() {
    let store = FsStore::start().await;
    let bytes = std::sync::Arc::new(pattern(10 * MIB, 4));
    store.put("media", "video.mp4", &bytes);
    let gateway = Gateway::start(&cached(&store, &["media"]).build()).await;
    let before = store.requests();
    let mut readers = Vec::new();
    for i in 0..32 {
        let url = gateway.url("/media/video.mp4");
        let bytes = bytes.clone();
        readers.push(tokio::spawn(async move {
            // Some readers seek, as video players do.
            let (range, expected) = if i % 4 == 3 {
                ("bytes=5000000-".to_owned(), &bytes[5_000_000..])
            } else {
                (String::new(), &bytes[..])
            };
            let headers: Vec<(&str, &str)> = if range.is_empty() {
                vec![]
            } else {
                vec![("range", &range)]
            };
            let got = get(&url, &headers).await;
            assert!(
                got.body == expected,
                "reader {i}: {} bytes, not byte-exact",
                got.body.len()
            );
        }));
    }
    for reader in readers {
        reader.await.unwrap();
    }
    let reads = store.requests() - before;
    eprintln!("32 concurrent cold readers of 10 MiB: {reads} store reads");
    assert!(reads <= 10, "{reads} store reads for 10 slices");
}

#[tokio::test]
async fn revalidation_keeps_an_unchanged_object_and_replaces_a_changed_one() {
    let store = FsStore::start().await;
    let old = pattern(2 * MIB + 10, 5);
    store.put("media", "frame.jpg", &old);
    let config = cached(&store, &["media"]).integration("cache_revalidate_after_s", 0);
    let gateway = Gateway::start(&config.build()).await;
    let url = gateway.url("/media/frame.jpg");

    assert_eq!(get(&url, &[]).await.cache, "MISS");
    let before = store.requests();
    let again = get(&url, &[]).await;
    assert_eq!(
        (again.cache.as_str(), again.body == old),
        ("REVALIDATED", true)
    );
    assert_eq!(
        store.requests() - before,
        1,
        "one conditional GET, answered 304"
    );

    let new = pattern(2 * MIB + 10, 6);
    store.put("media", "frame.jpg", &new);
    let changed = get(&url, &[]).await;
    assert_eq!(changed.cache, "MISS");
    assert!(changed.body == new, "the new version, whole");
}

#[tokio::test]
async fn a_forced_reload_revalidates_at_once() {
    let store = FsStore::start().await;
    let bytes = pattern(1000, 7);
    store.put("media", "a.png", &bytes);
    let gateway = Gateway::start(&cached(&store, &["media"]).build()).await;
    let url = object(&gateway, "s3://media/a.png");
    assert_eq!(get(&url, &[]).await.cache, "MISS");
    assert_eq!(get(&url, &[]).await.cache, "HIT");
    let reload = get(
        &url,
        &[("cache-control", "no-cache"), ("pragma", "no-cache")],
    )
    .await;
    assert_eq!(
        (reload.cache.as_str(), reload.body == bytes),
        ("REVALIDATED", true)
    );
    store.put("media", "a.png", b"replaced");
    assert_eq!(
        get(&url, &[]).await.body,
        bytes,
        "fresh for revalidate_after_s"
    );
    let reload = get(&url, &[("cache-control", "max-age=0")]).await;
    assert_eq!(
        (reload.cache.as_str(), reload.body.as_slice()),
        ("MISS", &b"replaced"[..])
    );
}

#[tokio::test]
async fn an_object_changed_mid_read_is_never_stitched() {
    let store = FsStore::start().await;
    let old = pattern(4 * MIB, 8);
    store.put("media", "long.webm", &old);
    let gateway = Gateway::start(&cached(&store, &["media"]).build()).await;
    let url = gateway.url("/media/long.webm");
    // The player reads the start: metadata and the first slice are cached.
    let start = get(&url, &[("range", "bytes=0-99")]).await;
    assert_eq!(
        (start.cache.as_str(), start.body.as_slice()),
        ("MISS", &old[..100])
    );
    // The object is replaced (same size); the cached metadata is still fresh.
    let new = pattern(4 * MIB, 9);
    store.put("media", "long.webm", &new);
    let response = client().get(&url).send().await.unwrap();
    assert_eq!(response.headers()["x-cache-status"], "HIT");
    let body = response.bytes().await;
    assert!(
        body.is_err(),
        "the read that met the new version is cut off, never completed"
    );
    let next = get(&url, &[]).await;
    assert_eq!(next.cache, "MISS");
    assert!(next.body == new, "the next read is the new version, whole");
}

#[tokio::test]
async fn scope_is_decided_before_the_cache() {
    let store = FsStore::start().await;
    store.put("media", "secret.png", &pattern(5000, 10));
    store.bucket("other");
    let client_entry = |name: &str, token_hex: &str, buckets: &[&str]| {
        table([
            ("name", name.into()),
            ("token_sha256", vec![toml::Value::from(token_hex)].into()),
            ("integrations", vec![toml::Value::from("*")].into()),
            (
                "buckets",
                buckets
                    .iter()
                    .map(|b| toml::Value::from(*b))
                    .collect::<Vec<_>>()
                    .into(),
            ),
        ])
    };
    let sha = |token: &str| {
        s3gate::hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()))
    };
    let config = ConfigBuilder::store(&store.url(), &["media", "other"])
        .integration("delivery", "proxy")
        .set("cache", "memory_mb", 64)
        .client(client_entry(
            "reader",
            &sha("s3gt_cache-test-token-of-reader"),
            &["media"],
        ))
        .client(client_entry(
            "outsider",
            &sha("s3gt_cache-test-token-of-outsider"),
            &["other"],
        ));
    let gateway = Gateway::start(&config.build()).await;
    let url = object(&gateway, "s3://media/secret.png");
    let bearer = |token: &str| format!("Bearer {token}");

    let reader = get(
        &url,
        &[("authorization", &bearer("s3gt_cache-test-token-of-reader"))],
    )
    .await;
    assert_eq!((reader.status, reader.cache.as_str()), (200, "MISS"));
    let before = store.requests();
    let outsider = get(
        &url,
        &[(
            "authorization",
            &bearer("s3gt_cache-test-token-of-outsider"),
        )],
    )
    .await;
    assert_eq!((outsider.status, outsider.cache.as_str()), (403, ""));
    assert!(String::from_utf8_lossy(&outsider.body).contains("ClientNotPermitted"));
    let anonymous = get(&url, &[]).await;
    assert_eq!((anonymous.status, anonymous.cache.as_str()), (401, ""));
    let s3_front = get(&gateway.url("/media/secret.png"), &[]).await;
    assert_eq!(s3_front.status, 403, "the S3 front wants a signature");
    assert!(String::from_utf8_lossy(&s3_front.body).contains("<Code>AccessDenied</Code>"));
    assert_eq!(store.requests() - before, 0);
}

#[tokio::test]
async fn opted_out_large_and_unconditional_reads_stream_through() {
    let store = FsStore::start().await;
    let large = pattern(3 * MIB, 11);
    store.put("media", "huge.bin", &large);
    store.put("raw", "a.bin", b"raw bytes");
    let raw = table([
        ("name", "raw".into()),
        ("bucket", "raw".into()),
        ("endpoint_url", store.url().into()),
        ("delivery", "proxy".into()),
        ("cache", false.into()),
        (
            "credentials",
            table([
                ("access_key_id", ACCESS_KEY.into()),
                ("secret_access_key_env", SECRET_ENV.into()),
            ]),
        ),
    ]);
    let config = cached(&store, &["media"])
        .set("cache", "max_object_mb", 1)
        .add_integration(raw);
    let gateway = Gateway::start(&config.build()).await;
    for _ in 0..2 {
        let huge = get(&gateway.url("/media/huge.bin"), &[]).await;
        assert_eq!((huge.cache.as_str(), huge.body == large), ("BYPASS", true));
        let raw = get(&gateway.url("/raw/a.bin"), &[]).await;
        assert_eq!(
            (raw.cache.as_str(), raw.body.as_slice()),
            ("BYPASS", &b"raw bytes"[..])
        );
    }
}

/// `s3gate serve` on `config`, and its address.
async fn serve(config: &Path) -> (Running, std::net::SocketAddr) {
    let mut child = gateway_command()
        .args(["serve", "--config", config.to_str().unwrap()])
        .env(SECRET_ENV, SECRET_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = listening_addr(child.stderr.take().unwrap()).await;
    (Running(child), addr)
}

/// The gateway process, killed if the test fails before it exits.
struct Running(Child);

impl Running {
    /// SIGTERM, then a bounded wait for a clean exit.
    async fn stop(mut self) {
        terminate(&mut self.0).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_disk_tier_serves_after_a_restart() {
    let store = FsStore::start().await;
    let bytes = pattern(2 * MIB + 3, 12);
    store.put("media", "kept.bin", &bytes);
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("s3gate.toml");
    let config = cached(&store, &["media"])
        .set("server", "listen", "127.0.0.1:0")
        .set(
            "cache",
            "disk_path",
            dir.path().join("cache").to_str().unwrap(),
        )
        .set("cache", "disk_mb", 64)
        // Served as a HIT however long the restart takes (valgrind: minutes).
        .set("cache", "revalidate_after_s", 3600);
    std::fs::write(&config_file, config.build()).unwrap();

    let (gateway, addr) = serve(&config_file).await;
    let url = format!("http://{addr}/media/kept.bin");
    assert_eq!(get(&url, &[]).await.cache, "MISS");
    gateway.stop().await;

    let (gateway, addr) = serve(&config_file).await;
    let before = store.requests();
    let url = format!("http://{addr}/media/kept.bin");
    let after_restart = get(&url, &[]).await;
    assert_eq!(after_restart.cache, "HIT");
    assert!(after_restart.body == bytes, "byte-exact from disk");
    assert_eq!(
        store.requests() - before,
        0,
        "no store request after the restart"
    );
    gateway.stop().await;
}

/// A tmpfs mounted for the test (the tests run as root), unmounted on drop.
struct Mount(tempfile::TempDir);

impl Mount {
    fn tmpfs(options: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                options,
                "tmpfs",
                dir.path().to_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mount -t tmpfs failed: these tests need root, as CI has"
        );
        Self(dir)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Lazy: the cache's runtime may still hold its files open while the
        // test's gateway shuts down.
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

async fn disk_errors(gateway: &Gateway) -> f64 {
    metric(
        &metrics(gateway).await,
        "s3gate_cache_errors_total{tier=\"disk\"}",
    )
}

#[tokio::test]
async fn a_read_only_cache_disk_degrades_to_memory() {
    let store = FsStore::start().await;
    let bytes = pattern(300_000, 13);
    store.put("media", "a.jpg", &bytes);
    let disk = Mount::tmpfs("ro,size=8m");
    let config = cached(&store, &["media"])
        .set("cache", "disk_path", disk.path().to_str().unwrap())
        .set("cache", "disk_mb", 64);
    let gateway = Gateway::start(&config.build()).await;
    assert!(
        disk_errors(&gateway).await >= 1.0,
        "the failed disk is counted"
    );
    let url = gateway.url("/media/a.jpg");
    let first = get(&url, &[]).await;
    let second = get(&url, &[]).await;
    assert_eq!(
        (first.cache.as_str(), second.cache.as_str()),
        ("MISS", "HIT")
    );
    assert!(first.body == bytes && second.body == bytes);
}

#[tokio::test]
async fn a_full_cache_disk_degrades_without_a_wrong_byte() {
    let store = FsStore::start().await;
    let objects: Vec<Vec<u8>> = (0..12).map(|i| pattern(MIB, 20 + i)).collect();
    for (i, bytes) in objects.iter().enumerate() {
        store.put("media", &format!("{i}.bin"), bytes);
    }
    let disk = Mount::tmpfs("size=4m");
    let config = cached(&store, &["media"])
        .set("cache", "memory_mb", 1)
        .set("cache", "disk_path", disk.path().to_str().unwrap())
        .set("cache", "disk_mb", 256);
    let gateway = Gateway::start(&config.build()).await;
    // More than memory and the disk hold: reads keep being byte-exact while
    // writes to the disk fail.
    for round in 0..2 {
        for (i, bytes) in objects.iter().enumerate() {
            let got = get(&gateway.url(&format!("/media/{i}.bin")), &[]).await;
            assert_eq!(got.status, 200);
            assert!(
                got.body == *bytes,
                "round {round}, object {i} is byte-exact"
            );
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while disk_errors(&gateway).await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the full disk is counted within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (i, bytes) in objects.iter().enumerate() {
        let got = get(&gateway.url(&format!("/media/{i}.bin")), &[]).await;
        assert!(
            got.body == *bytes,
            "after the disk filled, object {i} is byte-exact"
        );
    }
}
