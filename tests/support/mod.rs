//! Test support: real servers on loopback (the embedded s3s store, an in-memory
//! s3s backend for keys a file system cannot hold, the gateway itself) and an
//! HTTP client.
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
#![allow(dead_code)]

pub mod config;
pub mod garage;
pub mod memstore;
pub mod moto;
pub mod netns;
pub mod pki;
pub mod relay;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Once};
use std::time::Duration;

use s3gate::config::Config;
use s3gate::demo::store::{EmbeddedStore, SimpleAuth};
use s3gate::front::App;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Access key the test stores accept.
pub const ACCESS_KEY: &str = "AKIDS3GATETEST";
/// Its secret.
pub const SECRET_KEY: &str = "s3gate-test-secret/with+symbols=";
/// Environment variable the test configs read the secret from.
pub const SECRET_ENV: &str = "S3GATE_TEST_SECRET";

/// Keys S3 allows that are easy to get wrong; all of them fit a file system.
pub const AWKWARD_KEYS: &[&str] = &[
    "plain.txt",
    "with space.jpg",
    "plus+sign.png",
    "percent%20literal.bin",
    "percent%2Fslash",
    "tilde~name",
    "equals=and&ampersand",
    "question?mark",
    "hash#tag",
    "quote'bang!star*(paren)",
    "caf\u{e9}/\u{65e5}\u{672c}\u{8a9e}/\u{1f600}.png",
    "deep/nested/dir/file.txt",
];

/// Sets the environment every test runs in: no instance metadata, every AWS
/// endpoint pointed at a closed loopback port, the test secret available.
pub fn init() {
    static ONCE: Once = Once::new();
    // The one place tests change the environment: once, before any test
    // thread reads it.
    #[allow(clippy::disallowed_methods)]
    ONCE.call_once(|| {
        // SAFETY-free on edition 2021; done once, before any test thread reads them.
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::set_var("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
        std::env::set_var(SECRET_ENV, SECRET_KEY);
        // config.example.toml reads its MinIO and client secrets from here.
        std::env::set_var("MINIO_SECRET_KEY", "example-secret");
        std::env::set_var("S3GATE_TOOLS_SECRET", "example-client-secret");
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("S3GATE_TEST_LOG"))
            .with_test_writer()
            .try_init();
    });
}

/// A listener on an ephemeral loopback port.
pub async fn loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback")
}

/// The embedded file-system store on a temporary folder.
pub struct FsStore {
    pub store: EmbeddedStore,
    pub dir: tempfile::TempDir,
}

impl FsStore {
    /// Starts an empty store accepting [`ACCESS_KEY`].
    pub async fn start() -> Self {
        Self::start_on(loopback().await)
    }

    /// Starts an empty store accepting [`ACCESS_KEY`] on `listener`.
    pub fn start_on(listener: TcpListener) -> Self {
        init();
        let dir = tempfile::tempdir().expect("tempdir");
        let auth = SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY);
        let store = EmbeddedStore::start(listener, dir.path(), auth, None).expect("store starts");
        Self { store, dir }
    }

    /// Creates `bucket` (a folder).
    pub fn bucket(&self, bucket: &str) {
        std::fs::create_dir_all(self.dir.path().join(bucket)).unwrap();
    }

    /// Writes an object.
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let path = self.dir.path().join(bucket).join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        self.store.url()
    }

    /// Requests the store has received.
    pub fn requests(&self) -> u64 {
        self.store.requests()
    }
}

/// A gateway serving in this process.
pub struct Gateway {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
}

impl Gateway {
    /// Starts a gateway on an ephemeral port with `config` (TOML).
    pub async fn start(config: &str) -> Self {
        init();
        let config = Config::parse(config).unwrap_or_else(|e| panic!("test config: {e}"));
        let app = App::new(config).await;
        let app = Arc::new(app.unwrap_or_else(|e| panic!("test config: {e}")));
        let listener = loopback().await;
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        tokio::spawn(s3gate::front::server::serve(
            listener,
            app.clone(),
            None,
            shutdown,
            Duration::from_secs(5),
        ));
        Self {
            addr,
            app,
            stop: Some(stop),
        }
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A tool from the test venv that scripts/test creates; panics when it is
/// missing (a test never skips).
pub fn venv_bin(tool: &str) -> std::path::PathBuf {
    let venv = std::env::var_os("S3GATE_TEST_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let path = venv.join("bin").join(tool);
    assert!(
        path.exists(),
        "{} is missing: run scripts/test, which installs the test components",
        path.display()
    );
    path
}

/// The gateway's Prometheus page.
pub async fn metrics(gateway: &Gateway) -> String {
    let response = client().get(gateway.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// A config with one default integration for `buckets` on a store at `endpoint`.
pub fn default_integration(endpoint: &str, buckets: &[&str]) -> String {
    config::ConfigBuilder::store(endpoint, buckets).build()
}

/// An HTTP client that neither follows redirects nor uses a proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

/// `GET /v1/presign?locator=…&extra` → (status, JSON).
pub async fn presign(
    gateway: &Gateway,
    locator: &str,
    extra: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let query = {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("locator", locator);
        for (k, v) in extra {
            query.append_pair(k, v);
        }
        query.finish()
    };
    let url = gateway.url(&format!("/v1/presign?{query}"));
    let response = client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Fetches `url` → (status, body).
pub async fn fetch(url: &str) -> (u16, Vec<u8>) {
    let response = client().get(url).send().await.unwrap();
    (
        response.status().as_u16(),
        response.bytes().await.unwrap().to_vec(),
    )
}

/// The address a gateway process reports in its `listening on` log line
/// (bounded wait); its log keeps being drained afterwards.
pub async fn listening_addr(stderr: std::process::ChildStderr) -> SocketAddr {
    use std::io::BufRead;
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if let Some(addr) = line.split("listening on http://").nth(1) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(addr.trim().parse::<SocketAddr>().unwrap());
                }
            }
        }
    });
    tokio::time::timeout(patience(20), rx)
        .await
        .expect("the gateway reports its address in time")
        .expect("the gateway reports its address")
}

/// Path of the built `s3gate` binary.
pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_s3gate"))
}

/// A command that runs the built `s3gate` binary, under the command line in
/// `S3GATE_TEST_WRAPPER` when it is set (scripts/leakcheck sets valgrind).
pub fn gateway_command() -> std::process::Command {
    let wrapper = std::env::var("S3GATE_TEST_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    match words.next() {
        Some(program) => {
            let mut command = std::process::Command::new(program);
            command.args(words).arg(binary());
            command
        }
        None => std::process::Command::new(binary()),
    }
}

/// `s3gate serve` on `config` (written into `dir`), logging at
/// `warn,s3gate=info`: the process and the address it listens on.
pub async fn serve_process(dir: &Path, config: &str) -> (std::process::Child, SocketAddr) {
    let path = dir.join("serve.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = gateway_command()
        .args(["serve", "--config", path.to_str().unwrap()])
        .env(SECRET_ENV, SECRET_KEY)
        .env("S3GATE_LOG", "warn,s3gate=info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr = listening_addr(child.stderr.take().unwrap()).await;
    (child, addr)
}

/// RSS of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Stops a gateway process as its service manager would: SIGTERM, then a
/// bounded wait for a clean exit (a wrapper such as valgrind reports then).
pub async fn terminate(child: &mut std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + patience(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "clean exit: {status}");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit in {:?}",
            patience(20)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `seconds`, times `S3GATE_TEST_TIME_SCALE` (a whole number, default 1): the
/// bounded waits on a gateway process, longer when it runs under a wrapper.
pub fn patience(seconds: u64) -> Duration {
    let scale = std::env::var("S3GATE_TEST_TIME_SCALE")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1)
        .max(1);
    Duration::from_secs(seconds * scale)
}

/// A TCP relay in front of a server that counts what flows through it: the
/// bytes the server sent and the connections still open.
pub struct Tap {
    pub addr: SocketAddr,
    /// Bytes relayed from the server to its clients.
    pub bytes_down: Arc<std::sync::atomic::AtomicU64>,
    /// Connections whose either side is still open.
    pub open: Arc<std::sync::atomic::AtomicU64>,
}

impl Tap {
    /// Starts relaying to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = loopback().await;
        let tap = Self {
            addr: listener.local_addr().unwrap(),
            bytes_down: Default::default(),
            open: Default::default(),
        };
        let (bytes_down, open) = (tap.bytes_down.clone(), tap.open.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                    continue;
                };
                let (bytes_down, open) = (bytes_down.clone(), open.clone());
                open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    relay(inbound, outbound, &bytes_down).await;
                    open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
        });
        tap
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Copies both ways until either side closes, counting the server's bytes.
async fn relay(
    inbound: tokio::net::TcpStream,
    outbound: tokio::net::TcpStream,
    bytes_down: &std::sync::atomic::AtomicU64,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = inbound.into_split();
    let (mut server_read, mut server_write) = outbound.into_split();
    let up = tokio::io::copy(&mut client_read, &mut server_write);
    let down = async {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    bytes_down.fetch_add(n as u64, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// A misbehaving store for failure modes no real store shows on demand: it
/// answers each request (read up to the end of its headers) with `answer`,
/// and sends nothing else; a connection stays open until the gateway closes it.
pub async fn scripted_store(answer: &'static [u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = loopback().await;
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    let mut head = Vec::new();
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    if conn.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}
