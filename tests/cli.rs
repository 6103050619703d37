//! The `s3gate` binary: `check` exit codes, `presign`, `serve` with a graceful
//! drain on SIGTERM, and `demo`.
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
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::config::{table, ConfigBuilder};
use support::*;

fn write_config(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("s3gate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn s3gate(args: &[&str]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .env(SECRET_ENV, SECRET_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    cmd
}

/// Waits (bounded) for the child to exit.
fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "process did not exit within {limit:?}"
        );
        #[allow(clippy::disallowed_methods)] // a bounded exit poll of a child process
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child's output, line by line, read on its own thread so that waits are
/// bounded in time even if the child hangs without printing.
struct Lines(std::sync::mpsc::Receiver<String>);

impl Lines {
    fn of(output: impl std::io::Read + Send + 'static) -> Self {
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
}

/// Reads lines until one contains `needle`, for at most 20 s.
fn wait_for_line(lines: &mut Lines, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.0.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("{needle:?} not printed within 20 s")
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                panic!("output ended before {needle:?}")
            }
        }
    }
}

#[test]
fn check_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_config(
        dir.path(),
        &default_integration("http://127.0.0.1:9000", &["media"]),
    );
    let out = s3gate(&["check", "--config", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 integrations, 0 clients)"));

    let bad = write_config(
        dir.path(),
        &default_integration("ftp://127.0.0.1:9000", &["media"]),
    );
    let out = s3gate(&["check", "--config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("integration \"store\"") && stderr.contains("`endpoint_url`"),
        "{stderr}"
    );

    let out = s3gate(&["check", "--config", "/nonexistent/s3gate.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/s3gate.toml"));

    let syntax = write_config(dir.path(), "[server\nlisten = 1");
    let out = s3gate(&["check", "--config", syntax.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `check` loads the TLS files `serve` would.
    let tls = write_config(
        dir.path(),
        &ConfigBuilder::store("http://127.0.0.1:9000", &["media"])
            .set(
                "server",
                "tls",
                table([
                    ("cert_file", "/nonexistent/cert.pem".into()),
                    ("key_file", "/nonexistent/key.pem".into()),
                ]),
            )
            .build(),
    );
    let out = s3gate(&["check", "--config", tls.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[server.tls]") && stderr.contains("/nonexistent/cert.pem"),
        "{stderr}"
    );
}

#[tokio::test]
async fn presign_command_prints_a_working_url() {
    let store = FsStore::start().await;
    store.put("media", "clip one.mp4", b"frames");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &default_integration(&store.url(), &["media"]));
    let out = s3gate(&[
        "presign",
        "--config",
        config.to_str().unwrap(),
        "s3://media/clip one.mp4",
        "--expires",
        "30",
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(url.contains("X-Amz-Expires=30"));
    assert_eq!(fetch(&url).await, (200, b"frames".to_vec()));

    let out = s3gate(&[
        "presign",
        "--config",
        config.to_str().unwrap(),
        "s3://elsewhere/x",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not permitted"));
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let text = ConfigBuilder::store("http://127.0.0.1:9000", &["media"])
        .set("server", "listen", "127.0.0.1:0")
        .set("server", "shutdown_grace_s", 20)
        .build();
    let config = write_config(dir.path(), &text);
    let mut child = s3gate(&["serve", "--config", config.to_str().unwrap()])
        .env("S3GATE_LOG", "info,s3gate::front::app=debug")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = Lines::of(child.stderr.take().unwrap());
    // The gateway binds an ephemeral port and says which.
    let listening = wait_for_line(&mut stderr, "listening on http://");
    let addr: std::net::SocketAddr = listening
        .split("listening on http://")
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    // A request in flight: a first request proves the connection is being
    // served, then a second one sends its headers and only part of its body.
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = conn.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("ok"));
    let body = br#"{"locators":["s3://media/a.txt"]}"#;
    write!(conn, "POST /v1/presign HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).unwrap();
    conn.write_all(&body[..5]).unwrap();
    conn.flush().unwrap();
    wait_for_line(&mut stderr, "path=/v1/presign");

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    wait_for_line(&mut stderr, "draining connections");
    assert!(
        child.try_wait().unwrap().is_none(),
        "must wait for the in-flight request"
    );
    assert!(
        TcpStream::connect(addr).is_err(),
        "no new connections while draining"
    );

    conn.write_all(&body[5..]).unwrap();
    let mut response = String::new();
    while !response.contains("\"results\"") {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed before the response: {response}");
        response.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    drop(conn);
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn demo_serves_a_presigned_url_that_curl_downloads() {
    let dir = tempfile::tempdir().unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = s3gate(&[
        "demo",
        "--dir",
        dir.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ])
    .env("S3GATE_LOG", "info")
    .stdout(Stdio::piped())
    .stderr(log.reopen().unwrap())
    .spawn()
    .unwrap();
    let mut stdout = Lines::of(child.stdout.take().unwrap());
    let line = wait_for_line(&mut stdout, "gateway");
    let gateway = line.split_whitespace().nth(1).unwrap().to_owned();
    assert!(gateway.starts_with("http://127.0.0.1:"), "{line}");

    let json = Command::new("curl")
        .args([
            "-sfG",
            &format!("{gateway}/v1/presign"),
            "--data-urlencode",
            "locator=s3://demo/images/checker board (1).png",
        ])
        .output()
        .unwrap();
    assert!(json.status.success());
    let body: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let png = Command::new("curl")
        .args(["-sf", body["url"].as_str().unwrap()])
        .output()
        .unwrap();
    assert!(png.status.success());
    let expected = s3gate::demo::samples()
        .into_iter()
        .find(|(k, _)| k == "images/checker board (1).png")
        .unwrap()
        .1;
    assert_eq!(png.stdout, expected);
    assert_eq!(&png.stdout[1..4], b"PNG");

    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(15)).code(),
        Some(0)
    );
    // One access-log line for the presign, naming the integration that served it.
    let log = std::fs::read_to_string(log.path()).unwrap();
    let access: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("s3gate::access") && l.contains("path=/v1/presign"))
        .collect();
    assert_eq!(access.len(), 1, "{log}");
    assert!(
        access[0].contains("status=200") && access[0].contains("integration=demo "),
        "{}",
        access[0]
    );
}

#[test]
fn token_prints_a_fresh_token_and_the_line_that_admits_it() {
    let run = || {
        let out = s3gate(&["token"]).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let token = text
            .lines()
            .find_map(|l| l.strip_prefix("token: "))
            .unwrap()
            .to_owned();
        let line = text
            .lines()
            .find(|l| l.starts_with("token_sha256 = "))
            .unwrap()
            .to_owned();
        (token, line)
    };
    let (token, line) = run();
    assert!(
        token.starts_with("s3gt_") && token.len() == 5 + 64,
        "{token}"
    );
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()));
    assert_eq!(line, format!("token_sha256 = [\"{digest}\"]"));
    assert_ne!(run().0, token, "every token is fresh");

    // The line is config: `check` accepts it and says what the URL key means.
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[[clients]]\nname = \"backend\"\nintegrations = [\"*\"]\n{line}\n",
        default_integration("http://127.0.0.1:9000", &["media"])
    );
    let config = write_config(dir.path(), &text);
    let out = s3gate(&["check", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ok (1 integrations, 1 clients)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("warning: no [server] url_signing_keys_env or url_signing_keys_file"),
        "{stdout}"
    );
    assert!(!stdout.contains(&token));
}

/// Every line the child prints until it exits (bounded).
fn drain(lines: &mut Lines) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut all = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.0.recv_timeout(left) {
            Ok(line) => all.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return all,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("output did not end"),
        }
    }
}

fn addr_after(line: &str, marker: &str) -> std::net::SocketAddr {
    line.split(marker).nth(1).unwrap().trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_clients_names_them_in_the_log_never_their_secrets() {
    let store = FsStore::start().await;
    store.put("media", "task/a.png", b"image bytes");
    let token = "s3gt_cli-test-token-0123456789";
    let client_secret = "client-secret-never-logged-0123";
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()));
    let dir = tempfile::tempdir().unwrap();
    let text = ConfigBuilder::store(&store.url(), &["media"])
        .integration("delivery", "proxy")
        .set("server", "listen", "127.0.0.1:0")
        .set("server", "metrics_listen", "127.0.0.1:0")
        .client(table([
            ("name", "backend".into()),
            ("token_sha256", vec![digest].into()),
            ("access_key_id", "S3GATECLIENT00000001".into()),
            ("secret_access_key_env", "S3GATE_CLIENT_SECRET".into()),
            ("integrations", vec!["*"].into()),
        ]))
        .build();
    let config = write_config(dir.path(), &text);
    let mut child = s3gate(&["serve", "--config", config.to_str().unwrap()])
        .env("S3GATE_LOG", "debug")
        .env("S3GATE_CLIENT_SECRET", client_secret)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = Lines::of(child.stderr.take().unwrap());
    let main = addr_after(
        &wait_for_line(&mut stderr, "listening on http://"),
        "listening on http://",
    );
    let metrics = addr_after(
        &wait_for_line(&mut stderr, "metrics listening on http://"),
        "metrics listening on http://",
    );

    let http = client();
    let presign = format!("http://{main}/v1/presign?locator=s3://media/task/a.png");
    let body: serde_json::Value = http
        .get(&presign)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = body["url"].as_str().unwrap().to_owned();
    let sig = url.rsplit("sig=").next().unwrap().to_owned();
    assert_eq!(
        http.get(&url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        b"image bytes"
    );
    let grant: serde_json::Value = http
        .post(format!("http://{main}/v1/grant"))
        .bearer_auth(token)
        .json(&serde_json::json!({"prefix": "s3://media/task/"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let grant = grant["grant"].as_str().unwrap().to_owned();
    let by_grant = format!("http://{main}/v1/object?locator=s3://media/task/a.png&grant={grant}");
    assert_eq!(http.get(&by_grant).send().await.unwrap().status(), 200);
    let wrong = http
        .get(&presign)
        .bearer_auth(format!("{token}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    // /metrics: on its own listener without a token, not on the main one.
    let page = http
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("client=\"backend\",integration=\"store\",method=\"GET\",route=\"presign\",status=\"200\"} 1"),
        "{page}"
    );
    assert_eq!(
        http.get(format!("http://{main}/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let elsewhere = http
        .get(format!(
            "http://{metrics}/v1/presign?locator=s3://media/task/a.png"
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404);

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let log = drain(&mut stderr).join("\n");
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(15)).code(),
        Some(0)
    );
    assert!(log.contains("client=backend via=token"), "{log}");
    assert!(log.contains("client=backend via=signed-url"), "{log}");
    assert!(log.contains("client=backend via=grant"), "{log}");
    for secret in [token, client_secret, &sig, &grant, SECRET_KEY] {
        assert!(!log.contains(secret), "the log holds a secret: {secret}");
    }
}

#[test]
fn check_warns_about_prefixes_that_admit_more_than_they_say() {
    let dir = tempfile::tempdir().unwrap();
    let text = ConfigBuilder::store("http://127.0.0.1:9000", &["media"])
        .integration("prefixes", vec!["task-1"])
        .client(table([
            ("name", "c".into()),
            ("token_sha256", vec!["ab".repeat(32)].into()),
            ("integrations", vec!["*"].into()),
            ("buckets", vec!["media-typo"].into()),
            ("prefixes", vec!["task-1/", "task-2"].into()),
        ]))
        .build();
    let config = write_config(dir.path(), &text);
    let out = s3gate(&["check", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    for warning in [
        "warning: integration \"store\": prefix \"task-1\" has no trailing `/`",
        "warning: client \"c\": prefix \"task-2\" has no trailing `/`",
        "warning: client \"c\": bucket \"media-typo\" is served by none of its integrations",
    ] {
        assert!(stdout.contains(warning), "{warning:?} not in {stdout}");
    }
    assert!(!stdout.contains("prefix \"task-1/\""), "{stdout}");
}

#[tokio::test]
async fn demo_keeps_to_a_private_folder_and_its_store_logs_no_signatures() {
    let tmp = tempfile::tempdir().unwrap();
    // A folder planted where a fixed demo path would be is never used.
    let planted = tmp.path().join("planted");
    std::fs::create_dir(&planted).unwrap();
    std::os::unix::fs::symlink(&planted, tmp.path().join("s3gate-demo")).unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = s3gate(&[
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--gallery-listen",
        "127.0.0.1:0",
    ])
    .env("TMPDIR", tmp.path())
    .env("S3GATE_LOG", "debug")
    .stdout(Stdio::piped())
    .stderr(log.reopen().unwrap())
    .spawn()
    .unwrap();
    let mut stdout = Lines::of(child.stdout.take().unwrap());
    let line = wait_for_line(&mut stdout, "gateway");
    let gateway = line.split_whitespace().nth(1).unwrap().to_owned();
    let config = line
        .split("(config ")
        .nth(1)
        .unwrap()
        .trim_end_matches(')')
        .to_owned();
    let folder = std::path::Path::new(&config).parent().unwrap().to_owned();
    assert!(
        folder.starts_with(tmp.path()) && folder != tmp.path().join("s3gate-demo"),
        "{config}"
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&folder).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700, "{}", folder.display());
    assert_eq!(
        std::fs::read_dir(&planted).unwrap().count(),
        0,
        "the planted folder was written"
    );

    // A presigned read and a proxied one reach the store, signed.
    let http = client();
    for (locator, path) in [
        ("s3://demo/README.txt", "presign"),
        ("s3://demo-stream/README.txt", "object"),
    ] {
        let url = format!("{gateway}/v1/{path}?locator={locator}");
        let response = http.get(&url).send().await.unwrap();
        let response = if path == "presign" {
            let body: serde_json::Value = response.json().await.unwrap();
            http.get(body["url"].as_str().unwrap())
                .send()
                .await
                .unwrap()
        } else {
            response
        };
        assert_eq!(response.status(), 200, "{locator}");
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(15)).code(),
        Some(0)
    );
    let log = std::fs::read_to_string(log.path()).unwrap();
    assert!(log.contains("s3gate::access"), "the debug log is there");
    for secret in [
        "AWS4-HMAC-SHA256 Credential=",
        "X-Amz-Signature=",
        "Signature=",
    ] {
        assert!(!log.contains(secret), "the log holds {secret:?}");
    }
    assert!(!folder.exists(), "the demo's folder is removed at exit");
}

#[test]
fn external_id_prints_a_fresh_uuid_v4() {
    let run = || {
        let out = s3gate(&["external-id"]).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let (a, b) = (run(), run());
    assert_ne!(a, b, "each run makes a new one");
    for id in [&a, &b] {
        let groups: Vec<&str> = id.split('-').collect();
        let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        assert_eq!(lengths, [8, 4, 4, 4, 12], "{id}");
        assert!(
            id.bytes()
                .all(|c| c == b'-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{id}"
        );
        assert!(groups[2].starts_with('4'), "version 4: {id}");
        assert!(
            matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "RFC 4122 variant: {id}"
        );
    }
}

#[test]
fn policy_prints_the_documents_and_refuses_an_unknown_integration() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[cors]\nallowed_origins = [\"https://app.example.com\"]\n\n[[integrations]]\nname = \"acme\"\nbucket = \"acme-images\"\nprefixes = [\"datasets/\"]\nrole_arn = \"arn:aws:iam::210987654321:role/s3gate-reader\"\nexternal_id = \"ext-0123\"\n";
    let path = write_config(dir.path(), text);
    let out = s3gate(&["policy", "--config", path.to_str().unwrap(), "acme"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    for part in [
        "# Access policy: attach to the role arn:aws:iam::210987654321:role/s3gate-reader",
        "\"arn:aws:s3:::acme-images/datasets/*\"",
        "\"s3:prefix\"",
        "# Trust policy",
        "\"sts:ExternalId\": \"ext-0123\"",
        "set [identity] principal_arn",
        "aws s3api put-bucket-cors --bucket acme-images",
        "\"https://app.example.com\"",
    ] {
        assert!(stdout.contains(part), "{part:?} missing from:\n{stdout}");
    }
    let json = s3gate(&[
        "policy",
        "--config",
        path.to_str().unwrap(),
        "acme",
        "--format",
        "json",
    ])
    .output()
    .unwrap();
    let docs: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(docs["integration"], "acme");
    for document in ["access_policy", "trust_policy", "cors"] {
        assert!(docs[document].is_object(), "{document}: {docs:#}");
    }
    let out = s3gate(&["policy", "--config", path.to_str().unwrap(), "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("no integration named \"nope\" (configured: acme)"));
}

#[test]
fn logs_can_be_json_lines_from_the_flag_or_the_config() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, log_table) in [(true, false), (false, true)] {
        let mut builder = ConfigBuilder::store("http://127.0.0.1:9", &["media"]).set(
            "server",
            "listen",
            "127.0.0.1:0",
        );
        if log_table {
            builder = builder.set("log", "format", "json");
        }
        let config = write_config(dir.path(), &builder.build());
        let mut args = vec!["serve", "--config", config.to_str().unwrap()];
        if flag {
            args.extend(["--log-format", "json"]);
        }
        let mut child = s3gate(&args).stderr(Stdio::piped()).spawn().unwrap();
        let mut stderr = Lines::of(child.stderr.take().unwrap());
        let line = wait_for_line(&mut stderr, "listening on http://");
        let started: serde_json::Value = serde_json::from_str(&line).unwrap();
        let addr = started["message"]
            .as_str()
            .unwrap()
            .trim_start_matches("listening on http://");
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let access = wait_for_line(&mut stderr, "s3gate::access");
        let access: serde_json::Value = serde_json::from_str(&access).unwrap();
        assert_eq!(access["target"], "s3gate::access");
        assert_eq!(access["status"], 200);
        assert_eq!(access["path"], "/healthz");
        assert_eq!(access["client"], "-");
        assert_eq!(access["bytes"], 3, "\"ok\\n\" was sent");
        assert_eq!(access["complete"], true);
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert_eq!(
            wait_exit(&mut child, Duration::from_secs(15)).code(),
            Some(0)
        );
    }
}
