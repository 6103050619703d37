//! The running binary under SIGHUP and SIGTERM: a reload serves the new
//! integrations, keeps the old config when the file is broken (and says why
//! without its secrets), lets requests in flight finish on the config they
//! started with and re-reads the TLS certificate; systemd hears READY,
//! RELOADING, READY and STOPPING on `$NOTIFY_SOCKET`; `/readyz` answers 200
//! while serving and 503 while draining.
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

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use support::config::{table, ConfigBuilder};
use support::*;

/// A child's output, line by line, read on its own thread so that waits are
/// bounded in time even if the child hangs without printing.
struct Lines(std::sync::mpsc::Receiver<String>);

impl Lines {
    fn of(output: impl Read + Send + 'static) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(output).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self(rx)
    }

    /// Reads lines until one contains `needle`, for at most 20 s; returns it
    /// and every line before it.
    fn until(&mut self, needle: &str) -> (String, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.0.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return (line, before),
                Ok(line) => before.push(line),
                Err(e) => panic!("{needle:?} not printed within 20 s ({e}); saw {before:#?}"),
            }
        }
    }
}

fn s3gate(config: &Path, notify: &Path) -> (Child, Lines) {
    let mut child = Command::new(binary())
        .args(["serve", "--config", config.to_str().unwrap()])
        .env(SECRET_ENV, SECRET_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("NOTIFY_SOCKET", notify)
        .env("S3GATE_LOG", "info,s3gate::front::app=debug")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::of(child.stderr.take().unwrap());
    (child, lines)
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits (bounded) for the child to exit.
fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "no exit within {limit:?}");
        #[allow(clippy::disallowed_methods)] // a bounded exit poll of a child process
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The test's end of `$NOTIFY_SOCKET`.
fn notify_socket(dir: &Path) -> (UnixDatagram, std::path::PathBuf) {
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    (socket, path)
}

/// The next datagram systemd would have received.
fn notified(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("a notification within 20 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn addr_after(line: &str, marker: &str) -> SocketAddr {
    line.split(marker).nth(1).unwrap().trim().parse().unwrap()
}

/// One request on its own connection: status and body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn presign_status(addr: SocketAddr, locator: &str) -> u16 {
    get(addr, &format!("/v1/presign?locator={locator}")).0
}

/// A batch presign whose body is held back after its first bytes: in flight
/// until [`InFlight::finish`].
struct InFlight {
    conn: TcpStream,
    body: Vec<u8>,
}

impl InFlight {
    fn start(addr: SocketAddr, lines: &mut Lines, locator: &str) -> Self {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let body = format!(r#"{{"locators":["{locator}"]}}"#).into_bytes();
        write!(conn, "POST /v1/presign HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).unwrap();
        conn.write_all(&body[..5]).unwrap();
        conn.flush().unwrap();
        // The arrival of this very request: access lines of earlier ones,
        // written when their bodies end, may still come before it.
        while !lines
            .until("method=POST path=/v1/presign")
            .0
            .contains("request received")
        {}
        Self { conn, body }
    }

    fn finish(mut self) -> String {
        self.conn.write_all(&self.body[5..]).unwrap();
        let mut buf = [0u8; 4096];
        let mut response = String::new();
        while !response.contains("\"results\"") {
            let n = self.conn.read(&mut buf).unwrap();
            assert!(n > 0, "closed before the response: {response}");
            response.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        response
    }
}

fn config_for(buckets: &[&str]) -> String {
    config_listening(buckets, "127.0.0.1:0")
}

fn config_listening(buckets: &[&str], listen: &str) -> String {
    ConfigBuilder::store("http://127.0.0.1:9000", buckets)
        .set("server", "listen", listen)
        .set("server", "metrics_listen", "127.0.0.1:0")
        .set("server", "shutdown_grace_s", 20)
        .build()
}

const BROKEN_SECRET: &str = "broken-file-secret-4Kq9Zr";

#[test]
fn sighup_reloads_keeps_the_old_config_on_error_and_tells_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("s3gate.toml");
    std::fs::write(&config, config_for(&["media"])).unwrap();
    let (notify, notify_path) = notify_socket(dir.path());
    let (mut child, mut lines) = s3gate(&config, &notify_path);
    let (line, _) = lines.until("listening on http://");
    let addr = addr_after(&line, "listening on http://");
    let (line, _) = lines.until("metrics listening on http://");
    let metrics = addr_after(&line, "metrics listening on http://");
    assert_eq!(
        notified(&notify),
        "READY=1",
        "READY once the listeners are bound"
    );

    for listener in [addr, metrics] {
        assert_eq!(get(listener, "/readyz"), (200, "ready\n".into()));
    }
    assert_eq!(presign_status(addr, "s3://media/a.txt"), 200);
    assert_eq!(presign_status(addr, "s3://fresh/a.txt"), 403);

    // A request in flight across the reload finishes on the config it
    // started with, which still serves `media`.
    let in_flight = InFlight::start(addr, &mut lines, "s3://media/a.txt");
    std::fs::write(&config, config_for(&["fresh"])).unwrap();
    signal(&child, "HUP");
    lines.until("reloaded");
    assert_eq!(notified(&notify), "RELOADING=1");
    assert_eq!(notified(&notify), "READY=1");
    let response = in_flight.finish();
    assert!(response.contains("\"url\""), "{response}");
    assert!(!response.contains("BucketNotPermitted"), "{response}");
    assert_eq!(
        presign_status(addr, "s3://fresh/a.txt"),
        200,
        "a new bucket is served"
    );
    assert_eq!(
        presign_status(addr, "s3://media/a.txt"),
        403,
        "a removed one refused"
    );

    // A broken file: the running config stays, the log says why, never the
    // file's secret.
    let broken = format!(
        "{}\n[identity]\naccess_key_id = \"AKIDBROKEN\"\nsecret_access_key = \"{BROKEN_SECRET}\n",
        config_for(&["other"])
    );
    std::fs::write(&config, broken).unwrap();
    signal(&child, "HUP");
    let (failed, before) = lines.until("reload failed");
    assert!(
        failed.contains("still serving the previous config"),
        "{failed}"
    );
    assert!(failed.contains("line"), "the error says where: {failed}");
    for line in before.iter().chain([&failed]) {
        assert!(!line.contains(BROKEN_SECRET), "secret logged: {line}");
    }
    assert_eq!(notified(&notify), "RELOADING=1");
    let ready = notified(&notify);
    assert!(
        ready.starts_with("READY=1\nSTATUS=reload failed"),
        "{ready}"
    );
    assert!(!ready.contains(BROKEN_SECRET), "{ready}");
    assert_eq!(
        presign_status(addr, "s3://fresh/a.txt"),
        200,
        "still the last good config"
    );
    assert_eq!(presign_status(addr, "s3://other/a.txt"), 403);

    // A listener change needs a restart: logged, the old listener kept.
    std::fs::write(&config, config_listening(&["fresh"], "127.0.0.1:1")).unwrap();
    signal(&child, "HUP");
    let (_, before) = lines.until("reloaded");
    assert!(
        before
            .iter()
            .any(|l| l.contains("[server] listen changed: it takes effect on a restart")),
        "{before:#?}"
    );
    assert_eq!(notified(&notify), "RELOADING=1");
    assert_eq!(notified(&notify), "READY=1");
    assert_eq!(get(addr, "/readyz").0, 200, "the old listener serves");

    // SIGTERM with a request in flight: STOPPING, /readyz 503 while the
    // drain lasts, the request completes, exit 0.
    let in_flight = InFlight::start(addr, &mut lines, "s3://fresh/a.txt");
    signal(&child, "TERM");
    lines.until("draining connections");
    assert_eq!(notified(&notify), "STOPPING=1");
    let (status, body) = get(metrics, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"Draining\""), "{body}");
    assert!(child.try_wait().unwrap().is_none(), "waits for the request");
    assert!(in_flight.finish().contains("\"url\""));
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(15)).code(),
        Some(0)
    );
}

fn der(cert: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(cert).unwrap()
}

/// The gateway process, killed if the test fails before it exits, so that
/// it does not outlive the run holding the test's output pipes.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A new HTTP/1.1 TLS connection to `localhost` at `addr`, trusting only `ca`.
fn tls_connect(addr: SocketAddr, ca: &Path) -> Tls {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(support::pki::http1_client(ca), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls
}

/// The leaf certificate the gateway presented on `tls`.
fn leaf(tls: &Tls) -> CertificateDer<'static> {
    tls.conn.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// `GET /readyz` on a kept-alive connection: status and body.
fn readyz(tls: &mut Tls) -> (u16, String) {
    write!(tls, "GET /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    tls.flush().unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&response).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .unwrap_or_else(|| panic!("no Content-Length: {head}"));
            if body.len() >= length {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                return (status, body.to_owned());
            }
        }
        let n = tls.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the response: {text:?}");
        response.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn sighup_rereads_the_tls_certificate_and_keeps_it_when_the_new_one_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::make_ca(dir.path());
    let (cert_a, key_a) = pki::issue(dir.path(), "a", "localhost", "DNS:localhost");
    let (cert_b, key_b) = pki::issue(dir.path(), "b", "localhost", "DNS:localhost");
    let (a, b) = (der(&cert_a), der(&cert_b));
    assert_ne!(a, b);
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    std::fs::copy(&cert_a, &cert).unwrap();
    std::fs::copy(&key_a, &key).unwrap();

    let tls = table([
        ("cert_file", cert.display().to_string().into()),
        ("key_file", key.display().to_string().into()),
    ]);
    let config = dir.path().join("s3gate.toml");
    let text = ConfigBuilder::store("http://127.0.0.1:9000", &["media"])
        .set("server", "listen", "127.0.0.1:0")
        .set("server", "tls", tls)
        .build();
    std::fs::write(&config, text).unwrap();
    let (_notify, notify_path) = notify_socket(dir.path());
    let (child, mut lines) = s3gate(&config, &notify_path);
    let mut child = Running(child);
    let (line, _) = lines.until("listening on https://");
    let addr = addr_after(&line, "listening on https://");

    let mut before_reload = tls_connect(addr, &ca);
    assert!(leaf(&before_reload) == a, "serves certificate A");
    assert_eq!(readyz(&mut before_reload), (200, "ready\n".into()));

    // The same paths, new contents: a SIGHUP re-reads them for new
    // connections; the connection made on A keeps serving.
    std::fs::copy(&cert_b, &cert).unwrap();
    std::fs::copy(&key_b, &key).unwrap();
    signal(&child.0, "HUP");
    lines.until("reloaded");
    let mut after_reload = tls_connect(addr, &ca);
    assert!(leaf(&after_reload) == b, "a new connection gets B");
    assert_eq!(readyz(&mut after_reload), (200, "ready\n".into()));
    assert_eq!(readyz(&mut before_reload), (200, "ready\n".into()));
    assert!(leaf(&before_reload) == a);

    // A key that is not a key: the reload fails, says so, and B stays.
    std::fs::write(&key, "not a private key\n").unwrap();
    signal(&child.0, "HUP");
    let (failed, _) = lines.until("reload failed");
    assert!(
        failed.contains("still serving the previous config"),
        "{failed}"
    );
    assert!(failed.contains("[server.tls]"), "{failed}");
    assert!(
        failed.contains("server.key"),
        "the error names the file: {failed}"
    );
    let mut after_failure = tls_connect(addr, &ca);
    assert!(leaf(&after_failure) == b, "a new connection still gets B");
    assert_eq!(readyz(&mut after_failure), (200, "ready\n".into()));
    assert_eq!(readyz(&mut after_reload), (200, "ready\n".into()));

    signal(&child.0, "TERM");
    assert_eq!(
        wait_exit(&mut child.0, Duration::from_secs(15)).code(),
        Some(0)
    );
}
