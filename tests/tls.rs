//! TLS on both sides: the gateway serving HTTPS (rustls, HTTP/2 by ALPN), and
//! an integration reaching an HTTPS store signed by a private CA (`ca_file`).
//! Certificates are made with the `openssl` command for each run.
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

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use support::config::ConfigBuilder;
use support::*;

/// A private CA and a server certificate for 127.0.0.1, in `dir`.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_pki(dir: &Path) -> Pki {
    let ca = pki::make_ca(dir);
    let (cert, key) = pki::issue(dir, "server", "127.0.0.1", "IP:127.0.0.1");
    Pki { ca, cert, key }
}

/// A gateway serving HTTPS in this process.
async fn tls_gateway(
    config: &str,
    pki: &Pki,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let (addr, stop, _) = tls_gateway_app(config, pki).await;
    (addr, stop)
}

/// A gateway serving HTTPS in this process, and its app.
async fn tls_gateway_app(
    config: &str,
    pki: &Pki,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    Arc<s3gate::front::App>,
) {
    let config = s3gate::config::Config::parse(config).unwrap();
    let app = Arc::new(s3gate::front::App::new(config).await.unwrap());
    let tls = s3gate::front::server::tls_acceptor(&s3gate::config::TlsConfig {
        cert_file: pki.cert.clone(),
        key_file: pki.key.clone(),
    })
    .unwrap();
    let listener = loopback().await;
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(s3gate::front::server::serve(
        listener,
        app.clone(),
        Some(tls),
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
    ));
    (addr, stop, app)
}

#[tokio::test]
async fn serves_https_and_reaches_a_private_ca_store() {
    let store = FsStore::start().await;
    store.put("media", "cat.jpg", b"meow over tls");
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());

    // Front: HTTPS, serving the S3 API in front of the store.
    let front_config =
        default_integration(&store.url(), &["media"]) + "\n[s3_api]\nanonymous = true\n";
    let (front, _stop) = tls_gateway(&front_config, &pki).await;
    // curl runs as a child process while this runtime keeps serving.
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "--http2",
            "-w",
            "\n%{http_version} %{http_code}",
            "--cacert",
            pki.ca.to_str().unwrap(),
        ])
        .arg(format!("https://{front}/media/cat.jpg"))
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text,
        "meow over tls\n2 200",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let untrusted = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "-o", "/dev/null"])
        .arg(format!("https://{front}/healthz"))
        .output()
        .await
        .unwrap();
    // 60: the peer certificate cannot be authenticated with known CAs.
    assert_eq!(
        untrusted.status.code(),
        Some(60),
        "a client that does not trust the CA must fail: {}",
        String::from_utf8_lossy(&untrusted.stderr)
    );

    // Back: an integration whose store is that HTTPS endpoint, trusted through `ca_file`.
    let back_config = |ca: Option<&Path>| {
        let config = ConfigBuilder::store(&format!("https://{front}"), &["media"])
            .integration("delivery", "proxy");
        match ca {
            Some(ca) => config.integration("ca_file", ca.display().to_string()),
            None => config,
        }
        .build()
    };
    let trusted = Gateway::start(&back_config(Some(&pki.ca))).await;
    let (status, body) = fetch(&trusted.url("/v1/object?locator=s3%3A%2F%2Fmedia%2Fcat.jpg")).await;
    assert_eq!(
        (status, body.as_slice()),
        (200, b"meow over tls".as_slice())
    );

    let untrusting = Gateway::start(&back_config(None)).await;
    let response = client()
        .get(untrusting.url("/v1/object?locator=s3%3A%2F%2Fmedia%2Fcat.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("certificate"),
        "{body}"
    );
}

#[test]
fn unreadable_tls_files_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = s3gate::config::TlsConfig {
        cert_file: dir.path().join("none.pem"),
        key_file: dir.path().join("none.key"),
    };
    let error = s3gate::front::server::tls_acceptor(&missing).err().unwrap();
    assert!(error.contains("none.pem"), "{error}");
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    let empty = s3gate::config::TlsConfig {
        cert_file: dir.path().join("empty.pem"),
        key_file: dir.path().join("empty.pem"),
    };
    assert!(s3gate::front::server::tls_acceptor(&empty)
        .err()
        .unwrap()
        .contains("no certificate"));
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_closed_within_the_handshake_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    init();
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let config = ConfigBuilder::store("http://127.0.0.1:9", &["media"])
        .set("server", "handshake_timeout_s", 1)
        .build();
    let (addr, _stop) = tls_gateway(&config, &pki).await;
    // Silent, and the first bytes of a ClientHello record that never completes.
    let starts: [&[u8]; 2] = [b"", &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]];
    for start in starts {
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(start).await.unwrap();
        let begun = std::time::Instant::now();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "{start:?}: the handshake is still waiting");
        assert!(
            begun.elapsed() < Duration::from_secs(5),
            "{:?}",
            begun.elapsed()
        );
    }
}

#[tokio::test]
async fn an_idle_https_keep_alive_connection_lets_hyper_go_and_is_served_again() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let config = ConfigBuilder::store("http://127.0.0.1:9", &["media"]).build();
    let (addr, _stop, app) = tls_gateway_app(&config, &pki).await;
    let mut conn = http1_over_tls(addr, &pki).await;
    for round in 0..3 {
        // Each time, the connection is let go first: no HTTP state held.
        idle_connections_reach(&app, 1).await;
        let seen = get_healthz(&mut conn).await;
        assert!(
            seen.starts_with(b"HTTP/1.1 200"),
            "round {round}: {}",
            String::from_utf8_lossy(&seen)
        );
    }
}

#[tokio::test]
async fn a_partial_head_after_an_idle_https_connection_was_let_go_is_closed_in_time() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    init();
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let config = ConfigBuilder::store("http://127.0.0.1:9", &["media"])
        .set("server", "keepalive_timeout_s", 1)
        .build();
    let (addr, _stop, app) = tls_gateway_app(&config, &pki).await;
    let mut conn = http1_over_tls(addr, &pki).await;
    get_healthz(&mut conn).await;
    idle_connections_reach(&app, 1).await;
    conn.write_all(b"G").await.unwrap();
    idle_connections_reach(&app, 0).await;
    // Closed (EOF, or a reset) within the keep-alive time, answering nothing.
    let mut buf = [0u8; 1024];
    let start = std::time::Instant::now();
    let read = tokio::time::timeout(patience(5), conn.read(&mut buf)).await;
    let read = read.expect("a partial head held the connection open");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        start.elapsed() < patience(3),
        "closed after {:?}",
        start.elapsed()
    );
}

/// An HTTP/1.1 client connection over TLS to the gateway at `addr`,
/// trusting the test CA of `pki`.
async fn http1_over_tls(
    addr: std::net::SocketAddr,
    pki: &Pki,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let connector = tokio_rustls::TlsConnector::from(support::pki::http1_client(&pki.ca));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

/// Sends `GET /healthz` on `conn` and reads (at most 10 s) until its
/// answer's body has come; returns what came.
async fn get_healthz(conn: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !seen.ends_with(b"ok\n") {
        let n = tokio::time::timeout(patience(10), conn.read(&mut buf))
            .await
            .expect("no answer to GET /healthz")
            .unwrap();
        assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    seen
}

/// Waits (at most 10 s) until `n` connections of `app` are idle and let go.
async fn idle_connections_reach(app: &s3gate::front::App, n: i64) {
    let idle = &app.metrics().idle_connections;
    let deadline = std::time::Instant::now() + patience(10);
    while idle.get() != n {
        assert!(
            std::time::Instant::now() < deadline,
            "{} idle connections, not {n}",
            idle.get()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
