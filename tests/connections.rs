//! Connection hygiene on real sockets: the handshake (first request) timeout,
//! cleartext HTTP/2 only with `h2c`, HTTP/1 keep-alive and HTTP/2 idle
//! timeouts, HTTP/2 keep-alive pings, `max_connections`, and the send timeout
//! that ends a response (and its upstream request) nobody is reading.
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

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::config::ConfigBuilder;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The client half of the HTTP/2 connection preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An empty SETTINGS frame.
const SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];

/// A gateway with `[server] key = value` for each pair, no store behind it.
async fn gateway(server: &[(&str, toml::Value)]) -> Gateway {
    let mut config = ConfigBuilder::store("http://127.0.0.1:9", &["media"]);
    for (key, value) in server {
        config = config.set("server", key, value.clone());
    }
    Gateway::start(&config.build()).await
}

/// Reads until the peer closes (EOF or reset) or `limit` passes; the time it
/// took and what was read, or `None` when the connection stayed open.
async fn closed_within(conn: &mut TcpStream, limit: Duration) -> Option<(Duration, Vec<u8>)> {
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let read_all = async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    match tokio::time::timeout(limit, read_all).await {
        Ok(()) => Some((start.elapsed(), seen)),
        Err(_) => None,
    }
}

/// Sends `GET path` on a kept-alive HTTP/1.1 connection and reads the whole
/// response (headers and a `Content-Length` body): its text.
async fn get_h1(conn: &mut TcpStream, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    read_h1_response(conn).await
}

async fn read_h1_response(conn: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&seen[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if seen.len() >= end + 4 + length {
                return String::from_utf8_lossy(&seen).into_owned();
            }
        }
        let n = conn.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "closed mid-response: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
}

/// A HEADERS frame (END_STREAM | END_HEADERS) on stream 1: `GET path`,
/// HPACK-encoded with literals only.
fn h2_get(path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http
    for (index, value) in [(4u8, path), (1u8, "127.0.0.1")] {
        // Literal without indexing, indexed name (:path, :authority).
        block.push(index);
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    let len = block.len();
    let mut frame = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, 1, 0x5];
    frame.extend_from_slice(&1u32.to_be_bytes());
    frame.extend(block);
    frame
}

/// Frame types in an HTTP/2 byte stream, as far as it is whole.
fn frame_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 9 {
        let len =
            (usize::from(bytes[0]) << 16) | (usize::from(bytes[1]) << 8) | usize::from(bytes[2]);
        types.push(bytes[3]);
        bytes = &bytes[(9 + len).min(bytes.len())..];
    }
    types
}

async fn healthz_answers(gateway: &Gateway) {
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        client().get(gateway.url("/healthz")).send(),
    )
    .await
    .expect("/healthz answers within 5 s")
    .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_silent_connection_is_closed_within_the_handshake_timeout() {
    let gateway = gateway(&[("handshake_timeout_s", 1.into())]).await;
    let mut conn = TcpStream::connect(gateway.addr).await.unwrap();
    let (took, seen) = closed_within(&mut conn, Duration::from_secs(10))
        .await
        .expect("a silent connection is closed");
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    assert!(seen.is_empty(), "{seen:?}");
    healthz_answers(&gateway).await;
}

#[tokio::test]
async fn half_an_http2_preface_is_closed_within_the_handshake_timeout() {
    let whole = [PREFACE, &SETTINGS].concat();
    let cases: [(bool, &[u8]); 4] = [
        (false, &PREFACE[..12]),
        (true, &PREFACE[..12]),
        // A whole preface, with and without SETTINGS, and then no request.
        (true, PREFACE),
        (true, &whole),
    ];
    for (h2c, start) in cases {
        let gateway = gateway(&[("handshake_timeout_s", 1.into()), ("h2c", h2c.into())]).await;
        let mut conn = TcpStream::connect(gateway.addr).await.unwrap();
        conn.write_all(start).await.unwrap();
        let (took, _) = closed_within(&mut conn, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("h2c = {h2c}, {start:?}: the connection stays open"));
        assert!(
            took < Duration::from_secs(5),
            "h2c = {h2c}: closed after {took:?}"
        );
    }
}

#[tokio::test]
async fn a_started_request_head_is_bounded_by_the_handshake_timeout() {
    let gateway = gateway(&[("handshake_timeout_s", 1.into())]).await;
    let mut conn = TcpStream::connect(gateway.addr).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let (took, _) = closed_within(&mut conn, Duration::from_secs(10))
        .await
        .expect("a trickled request head is cut off");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
}

#[tokio::test]
async fn cleartext_http2_is_not_spoken_without_h2c() {
    let gateway = gateway(&[("handshake_timeout_s", 2.into())]).await;
    let mut conn = TcpStream::connect(gateway.addr).await.unwrap();
    conn.write_all(PREFACE).await.unwrap();
    conn.write_all(&SETTINGS).await.unwrap();
    let (_, seen) = closed_within(&mut conn, Duration::from_secs(10))
        .await
        .expect("the connection is closed");
    // No SETTINGS frame: an HTTP/1 error answer, or nothing at all.
    assert!(
        seen.is_empty() || seen.starts_with(b"HTTP/1.1 "),
        "the gateway spoke HTTP/2: {seen:?}"
    );
    // The same connection speaking HTTP/1 is served.
    let mut conn = TcpStream::connect(gateway.addr).await.unwrap();
    assert!(get_h1(&mut conn, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn cleartext_http2_is_spoken_with_h2c() {
    let gateway = gateway(&[("h2c", true.into())]).await;
    let tcp = TcpStream::connect(gateway.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let request = http::Request::get(gateway.url("/healthz"))
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout() {
    let gateway = gateway(&[("keepalive_timeout_s", 1.into())]).await;
    let mut conn = TcpStream::connect(gateway.addr).await.unwrap();
    // Kept alive between requests…
    assert!(get_h1(&mut conn, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    assert!(get_h1(&mut conn, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    // …and closed once idle for the keep-alive timeout.
    let (took, seen) = closed_within(&mut conn, Duration::from_secs(10))
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(seen.is_empty(), "{seen:?}");
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    let gateway = gateway(&[("h2c", true.into()), ("http2_idle_timeout_s", 1.into())]).await;
    let tcp = TcpStream::connect(gateway.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let request = http::Request::get(gateway.url("/healthz"))
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(sender.send_request(request).await.unwrap().status(), 200);
    let start = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("the gateway ends an idle HTTP/2 connection")
        .unwrap()
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn an_http2_client_that_does_not_answer_pings_is_closed() {
    let gateway = gateway(&[
        ("h2c", true.into()),
        ("http2_keepalive_interval_s", 1.into()),
        ("http2_keepalive_timeout_s", 1.into()),
    ])
    .await;
    let mut conn = TcpStream::connect(gateway.addr).await.unwrap();
    conn.write_all(PREFACE).await.unwrap();
    conn.write_all(&SETTINGS).await.unwrap();
    conn.write_all(&h2_get("/healthz")).await.unwrap();
    // The client reads but never acknowledges a PING.
    let (took, seen) = closed_within(&mut conn, Duration::from_secs(15))
        .await
        .expect("a client that does not answer pings is closed");
    let types = frame_types(&seen);
    assert!(types.contains(&6), "no PING frame was sent: {types:?}");
    assert!(took < Duration::from_secs(8), "closed after {took:?}");
}

#[tokio::test]
async fn accept_waits_at_max_connections() {
    let gateway = gateway(&[("max_connections", 2.into())]).await;
    let mut first = TcpStream::connect(gateway.addr).await.unwrap();
    let mut second = TcpStream::connect(gateway.addr).await.unwrap();
    assert!(get_h1(&mut first, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    assert!(get_h1(&mut second, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    // A third connection waits in the backlog: not refused, not served.
    let mut third = TcpStream::connect(gateway.addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(1500), third.read(&mut byte)).await;
    assert!(early.is_err(), "a third connection was served: {early:?}");
    // Once one closes, the third is served.
    drop(first);
    let answer = tokio::time::timeout(Duration::from_secs(10), read_h1_response(&mut third))
        .await
        .expect("the waiting connection is served once one closes");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(get_h1(&mut second, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
}

/// A 64 MiB object behind a [`Tap`], served by a gateway with a 1 s send timeout.
async fn slow_reader_setup() -> (FsStore, Tap, Gateway) {
    let store = FsStore::start().await;
    store.put("media", "big.bin", &vec![7u8; 64 << 20]);
    let tap = Tap::start(store.store.addr()).await;
    let config = ConfigBuilder::store(&tap.url(), &["media"])
        .integration("delivery", "proxy")
        .s3_anonymous()
        .set("server", "send_timeout_s", 1)
        .set("server", "h2c", true)
        .build();
    let gateway = Gateway::start(&config).await;
    (store, tap, gateway)
}

/// Waits (bounded) for the gateway's store connections to close, checking
/// that `/healthz` answers meanwhile.
async fn upstream_closes(tap: &Tap, gateway: &Gateway, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while tap.open.load(Ordering::SeqCst) > 0 {
        assert!(
            Instant::now() < deadline,
            "{what}: the upstream request outlived the send timeout"
        );
        healthz_answers(gateway).await;
        tokio::time::sleep(Duration::from_millis(100)).await; // polling
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_with_its_upstream_request() {
    let (_store, tap, gateway) = slow_reader_setup().await;
    let mut conn = TcpStream::connect(gateway.addr).await.unwrap();
    conn.write_all(b"GET /media/big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 64 << 10];
    let n = conn.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // The client stops reading: within the send timeout the gateway gives up
    // on it and on the store.
    upstream_closes(&tap, &gateway, "HTTP/1").await;
    let (_, seen) = closed_within(&mut conn, Duration::from_secs(10))
        .await
        .expect("the stalled connection is closed");
    let total = n + seen.len();
    assert!(total < 64 << 20, "the whole object was sent: {total}");
    healthz_answers(&gateway).await;
}

#[tokio::test]
async fn an_http2_stream_that_is_not_read_is_cut_off_with_its_upstream_request() {
    let (_store, tap, gateway) = slow_reader_setup().await;
    let mut conn = TcpStream::connect(gateway.addr).await.unwrap();
    conn.write_all(PREFACE).await.unwrap();
    conn.write_all(&SETTINGS).await.unwrap();
    conn.write_all(&h2_get("/media/big.bin")).await.unwrap();
    // The client never opens its flow-control window: the stream stalls
    // while the connection itself stays healthy.
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let deadline = Instant::now() + Duration::from_secs(15);
    while !frame_types(&seen).contains(&0) {
        assert!(Instant::now() < deadline, "no DATA frame");
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed early");
        seen.extend_from_slice(&buf[..n]);
    }
    upstream_closes(&tap, &gateway, "HTTP/2").await;
    healthz_answers(&gateway).await;
}

/// Waits (bounded) until the gateway counts `n` idle connections.
async fn idle_connections_reach(gateway: &Gateway, n: i64) {
    let idle = &gateway.app.metrics().idle_connections;
    let deadline = Instant::now() + Duration::from_secs(10);
    while idle.get() != n {
        assert!(
            Instant::now() < deadline,
            "{} idle connections, {n} expected ({} open)",
            idle.get(),
            gateway.app.metrics().open_connections.get()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_holds_no_http_state_and_is_served_again() {
    let gateway = gateway(&[]).await;
    let mut first = TcpStream::connect(gateway.addr).await.unwrap();
    let mut second = TcpStream::connect(gateway.addr).await.unwrap();
    // Connections that have sent nothing yet hold no HTTP state.
    idle_connections_reach(&gateway, 2).await;
    assert!(get_h1(&mut first, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    // A request and the start of the next one, sent together: the bytes
    // hyper read but could not parse yet survive its going.
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /readyz HTTP/1.1\r\nHo")
        .await
        .unwrap();
    assert!(read_h1_response(&mut second)
        .await
        .starts_with("HTTP/1.1 200"));
    // The first is let go; the second keeps hyper while its request is half-read.
    idle_connections_reach(&gateway, 1).await;
    second.write_all(b"st: 127.0.0.1\r\n\r\n").await.unwrap();
    let response = read_h1_response(&mut second).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ready\n"), "{response}");
    idle_connections_reach(&gateway, 2).await;
    // Both are served again, on the same connections.
    for conn in [&mut first, &mut second] {
        assert!(get_h1(conn, "/healthz").await.starts_with("HTTP/1.1 200"));
    }
    idle_connections_reach(&gateway, 2).await;
    drop(first);
    idle_connections_reach(&gateway, 1).await;
}

#[tokio::test]
async fn idle_keep_alive_connections_cost_a_few_kilobytes_each() {
    const CONNECTIONS: usize = 800;
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigBuilder::store("http://127.0.0.1:9", &["media"])
        .set("server", "listen", "127.0.0.1:0")
        .build();
    let (mut child, addr) = serve_process(dir.path(), &config).await;
    // Warm up: the runtime's and the allocator's first allocations.
    let mut warm = TcpStream::connect(addr).await.unwrap();
    assert!(get_h1(&mut warm, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    drop(warm);
    let baseline = rss_kib(child.id());
    let mut conns = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        assert!(get_h1(&mut conn, "/healthz")
            .await
            .starts_with("HTTP/1.1 200"));
        conns.push(conn);
    }
    // Once let go (after 10 ms idle), each holds its socket and little else.
    let deadline = Instant::now() + patience(10);
    let mut per_connection;
    loop {
        per_connection = (rss_kib(child.id()).saturating_sub(baseline)) * 1024 / CONNECTIONS as u64;
        if per_connection < 6 * 1024 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("{per_connection} bytes per idle connection");
    assert!(
        per_connection < 6 * 1024,
        "{per_connection} bytes per idle connection"
    );
    for mut conn in conns.drain(..10) {
        assert!(get_h1(&mut conn, "/healthz")
            .await
            .starts_with("HTTP/1.1 200"));
    }
    terminate(&mut child).await;
}

/// A connection that has been let go (its burst ended) and then receives the
/// start of a request head: hyper, taking it over, waits for the rest.
async fn released_with_a_partial_head(gateway: &Gateway) -> TcpStream {
    let mut conn = TcpStream::connect(gateway.addr).await.unwrap();
    assert!(get_h1(&mut conn, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    idle_connections_reach(gateway, 1).await;
    conn.write_all(b"G").await.unwrap();
    idle_connections_reach(gateway, 0).await;
    conn
}

#[tokio::test]
async fn a_partial_head_after_a_released_burst_is_closed_by_the_keepalive_timeout() {
    let gateway = gateway(&[("keepalive_timeout_s", 1.into())]).await;
    let mut conn = released_with_a_partial_head(&gateway).await;
    // Counted from the end of the last response, not from the stray byte.
    let closed = closed_within(&mut conn, patience(5)).await;
    let (took, sent) = closed.expect("a partial head held the connection open");
    assert!(sent.is_empty(), "{}", String::from_utf8_lossy(&sent));
    assert!(took < patience(3), "closed after {took:?}");
}

#[tokio::test]
async fn a_partial_head_after_a_released_burst_does_not_hold_up_the_drain() {
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigBuilder::store("http://127.0.0.1:9", &["media"])
        .set("server", "listen", "127.0.0.1:0")
        .set("server", "keepalive_timeout_s", 60)
        .set("server", "shutdown_grace_s", 60)
        .build();
    let (mut child, addr) = serve_process(dir.path(), &config).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    assert!(get_h1(&mut conn, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    // Seen from a second connection, which is not idle while it asks.
    let mut watcher = TcpStream::connect(addr).await.unwrap();
    let deadline = Instant::now() + patience(10);
    while idle_connections_seen(&mut watcher).await != 1 {
        assert!(Instant::now() < deadline, "the connection was never let go");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    conn.write_all(b"G").await.unwrap();
    let start = Instant::now();
    terminate(&mut child).await;
    assert!(
        start.elapsed() < patience(5),
        "the drain waited {:?} on a partial head",
        start.elapsed()
    );
}

/// `s3gate_idle_connections` as the metrics page on `conn` says it.
async fn idle_connections_seen(conn: &mut TcpStream) -> i64 {
    let page = get_h1(conn, "/metrics").await;
    page.lines()
        .find_map(|line| line.strip_prefix("s3gate_idle_connections "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no s3gate_idle_connections in {page}"))
}
