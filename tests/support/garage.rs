//! Garage, a self-hosted S3 server of the kind on-prem customers run, as a
//! single-node cluster on loopback: `garage server` with a small config in a
//! temporary folder, then its CLI lays the node out and creates a key and the
//! buckets. scripts/test installs the binary and names it in `S3GATE_GARAGE`.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime};

use tokio::process::Command;

/// Garage's region name, which its SigV4 checks demand.
pub const REGION: &str = "garage";

/// Longest Garage may take to answer its CLI once started.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest one CLI call may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times a start is retried when Garage could not bind its ports
/// (they are picked free and released just before it starts).
const START_ATTEMPTS: usize = 3;

/// A running single-node Garage; killed on drop.
pub struct Garage {
    child: Child,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT` of its S3 API.
    pub endpoint: String,
    /// The access key created for the tests (read and write on every bucket).
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
}

/// The Garage binary scripts/test installed; panics (a test never skips)
/// when it is not there.
pub fn binary() -> PathBuf {
    let path = std::env::var_os("S3GATE_GARAGE").map(PathBuf::from);
    let path = path.unwrap_or_else(|| {
        panic!("S3GATE_GARAGE is not set: run scripts/test, which installs Garage and sets it")
    });
    assert!(
        path.is_file(),
        "S3GATE_GARAGE={} does not exist: run scripts/test, which installs Garage",
        path.display()
    );
    path
}

impl Garage {
    /// Starts Garage and creates `buckets`, all readable and writable with
    /// [`Garage::access_key_id`].
    pub async fn start(buckets: &[&str]) -> Self {
        super::init();
        let binary = binary();
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            match Self::boot(&binary).await {
                Ok(mut garage) => {
                    garage.setup(buckets).await;
                    return garage;
                }
                Err(log) => last_log = log,
            }
        }
        panic!("garage did not start in {START_ATTEMPTS} attempts; its last log:\n{last_log}");
    }

    /// Writes a config with fresh free ports and starts `garage server`;
    /// `Err(log)` when it exits before its CLI answers (a port was taken).
    async fn boot(binary: &Path) -> Result<Self, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let [rpc, s3] = free_ports();
        std::fs::write(dir.path().join("garage.toml"), config(dir.path(), rpc, s3))
            .expect("write garage.toml");
        let log = std::fs::File::create(dir.path().join("garage.log")).expect("garage.log");
        let child = std::process::Command::new(binary)
            .arg("-c")
            .arg(dir.path().join("garage.toml"))
            .arg("server")
            .env("RUST_LOG", "garage=info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("garage.log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let mut garage = Self {
            child,
            dir,
            endpoint: format!("http://127.0.0.1:{s3}"),
            access_key_id: String::new(),
            secret_access_key: String::new(),
        };
        garage.wait_for_rpc().await?;
        Ok(garage)
    }

    /// Polls `garage status` until the daemon answers (bounded), or returns
    /// its log if it exited.
    async fn wait_for_rpc(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll garage") {
                return Err(format!("garage exited with {status}:\n{}", self.log()));
            }
            if self.try_cli(&["status"]).await.is_ok() {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "garage did not answer `garage status` within {BOOT_TIMEOUT:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Gives the node a role, creates the key and the buckets.
    async fn setup(&mut self, buckets: &[&str]) {
        let node = self.cli(&["node", "id", "-q"]).await;
        let node = node.trim().split('@').next().unwrap_or_default().to_owned();
        self.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node])
            .await;
        self.cli(&["layout", "apply", "--version", "1"]).await;
        let key = self.cli(&["key", "create", "s3gate-test"]).await;
        self.access_key_id = field(&key, "Key ID:");
        self.secret_access_key = field(&key, "Secret key:");
        for bucket in buckets {
            self.cli(&["bucket", "create", bucket]).await;
            self.cli(&[
                "bucket",
                "allow",
                "--read",
                "--write",
                "--owner",
                bucket,
                "--key",
                "s3gate-test",
            ])
            .await;
        }
        self.wait_for_s3(buckets.first().copied()).await;
    }

    /// Polls a signed HEAD of `bucket` until the S3 API serves it (bounded).
    async fn wait_for_s3(&self, bucket: Option<&str>) {
        let Some(bucket) = bucket else { return };
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            let status = self.signed("HEAD", bucket, "", &[]).send().await;
            match status {
                Ok(r) if r.status() == 200 => return,
                other => assert!(
                    Instant::now() < deadline,
                    "garage's S3 API did not serve {bucket} within {BOOT_TIMEOUT:?}: {other:?}\n{}",
                    self.log()
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `garage -c CONFIG ARGS…` and returns its stdout; panics on failure.
    pub async fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args).await.unwrap_or_else(|e| {
            panic!("garage {}: {e}\n{}", args.join(" "), self.log());
        })
    }

    async fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        let mut command = Command::new(binary());
        command
            .arg("-c")
            .arg(self.dir.path().join("garage.toml"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(CLI_TIMEOUT, command.output())
            .await
            .map_err(|_| format!("no answer within {CLI_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
    }

    /// A request to `/{bucket}/{key}` (`/{bucket}` for an empty key) signed
    /// in headers with the test key; `headers` are sent and signed too.
    pub fn signed(
        &self,
        method: &str,
        bucket: &str,
        key: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        self.handle().signed(method, bucket, key, headers)
    }

    /// A request to `/{bucket}?{query}` (`query` encoded as sent), signed.
    pub fn signed_query(&self, method: &str, bucket: &str, query: &str) -> reqwest::RequestBuilder {
        self.handle()
            .request(method, &format!("/{bucket}?{query}"), &[])
    }

    /// Stores an object (a signed PUT, `headers` signed too), retrying while
    /// Garage is still settling (5xx), bounded.
    pub async fn put(&self, bucket: &str, key: &str, bytes: &[u8], headers: &[(&str, &str)]) {
        self.handle().put(bucket, key, bytes, headers).await;
    }

    /// Stores many objects, `parallel` at a time.
    pub async fn put_many(&self, bucket: &str, objects: Vec<(String, Vec<u8>)>, parallel: usize) {
        let handle = std::sync::Arc::new(self.handle());
        let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(parallel));
        let mut tasks = tokio::task::JoinSet::new();
        for (key, bytes) in objects {
            let (handle, semaphore, bucket) =
                (handle.clone(), semaphore.clone(), bucket.to_owned());
            tasks.spawn(async move {
                let _permit = semaphore.acquire().await.unwrap();
                handle.put(&bucket, &key, &bytes, &[]).await;
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    }

    /// What signs requests, cloneable into tasks of their own.
    fn handle(&self) -> Handle {
        Handle {
            endpoint: self.endpoint.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
        }
    }

    /// A gateway config with one default integration, named `garage`, for
    /// `buckets` on this Garage (path-style, region `garage`, the test key
    /// read from a file in Garage's folder), S3 front anonymous.
    pub fn config(&self, buckets: &[&str]) -> super::config::ConfigBuilder {
        use super::config::table;
        let secret_file = self.dir.path().join("secret");
        std::fs::write(&secret_file, &self.secret_access_key).unwrap();
        super::config::ConfigBuilder::store(&self.endpoint, buckets)
            .integration("name", "garage")
            .integration("region", REGION)
            .integration("force_path_style", true)
            .integration(
                "credentials",
                table([
                    ("access_key_id", self.access_key_id.clone().into()),
                    (
                        "secret_access_key_file",
                        secret_file.display().to_string().into(),
                    ),
                ]),
            )
            .s3_anonymous()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What signs requests from tasks of their own.
struct Handle {
    endpoint: String,
    access_key_id: String,
    secret_access_key: String,
}

impl Handle {
    fn signed(
        &self,
        method: &str,
        bucket: &str,
        key: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        let path = if key.is_empty() {
            format!("/{bucket}")
        } else {
            s3gate::sigv4::encode_path(&format!("/{bucket}/{key}"))
        };
        self.request(method, &path, headers)
    }

    /// A request to `path_and_query` (encoded as sent), signed.
    fn request(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        let url = format!("{}{path_and_query}", self.endpoint);
        let host = self.endpoint.trim_start_matches("http://");
        let signed = sign(
            &self.access_key_id,
            &self.secret_access_key,
            method,
            &url,
            host,
            headers,
        );
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = super::client().request(method, &url);
        for (name, value) in headers.iter().copied().chain(signed.iter().map(pair)) {
            request = request.header(name, value);
        }
        request
    }

    async fn put(&self, bucket: &str, key: &str, bytes: &[u8], headers: &[(&str, &str)]) {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            let request = self.signed("PUT", bucket, key, headers);
            let response = request.body(bytes.to_vec()).send().await.unwrap();
            let status = response.status();
            if status.is_success() {
                return;
            }
            let body = response.text().await.unwrap_or_default();
            assert!(
                status.is_server_error() && Instant::now() < deadline,
                "PUT {bucket}/{key} to garage: {status}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn pair((name, value): &(String, String)) -> (&str, &str) {
    (name.as_str(), value.as_str())
}

/// Signs a request in headers with aws-sigv4 (payload unsigned), `headers`
/// included; returns the headers the signer adds.
fn sign(
    access_key_id: &str,
    secret: &str,
    method: &str,
    url: &str,
    host: &str,
    headers: &[(&str, &str)],
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{
        sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
        SignatureLocation, SigningSettings, UriPathNormalizationMode,
    };
    use aws_sigv4::sign::v4;
    let identity =
        aws_credential_types::Credentials::new(access_key_id, secret, None, None, "garage").into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.signature_location = SignatureLocation::Headers;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let all: Vec<(&str, &str)> = std::iter::once(("host", host))
        .chain(headers.iter().copied())
        .collect();
    let request =
        SignableRequest::new(method, url, all.into_iter(), SignableBody::UnsignedPayload).unwrap();
    let (instructions, _) = sign(request, &params).unwrap().into_parts();
    instructions
        .headers()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect()
}

/// Two distinct free loopback ports (bound together, then released).
fn free_ports() -> [u16; 2] {
    let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    [
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    ]
}

/// A single-node config: sqlite metadata, no replication, a random RPC
/// secret, the S3 API on loopback with region [`REGION`].
fn config(dir: &Path, rpc: u16, s3: u16) -> String {
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    format!(
        r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3}"
"#,
        dir = dir.display()
    )
}

/// The value after `label` in the CLI's `label<TAB>value` output.
fn field(output: &str, label: &str) -> String {
    output
        .lines()
        .find_map(|line| line.trim().strip_prefix(label))
        .map(|value| value.trim().to_owned())
        .unwrap_or_else(|| panic!("no {label:?} in garage's output:\n{output}"))
}
