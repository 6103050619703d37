//! moto (a real STS and IAM implementation) on loopback, a relay in front of
//! it that can cut STS off, and an embedded store that accepts moto's
//! temporary credentials and enforces their session tokens.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use s3gate::demo::store::{EmbeddedStore, Gate};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Result};
use tokio::net::{TcpListener, TcpStream};

use super::{loopback, venv_bin};

/// What `moto_setup.py` created.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Setup {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub stranger_access_key_id: String,
    pub stranger_secret_access_key: String,
    pub roles: std::collections::HashMap<String, String>,
}

/// One assumed role session, as moto records it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct AssumedRole {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// moto leaves the token out of some entries (it then counts as unknown).
    pub session_token: Option<String>,
    pub external_id: Option<String>,
    pub role_arn: String,
}

/// A moto server process; killed on drop.
pub struct Moto {
    child: tokio::process::Child,
    pub url: String,
    pub setup: Setup,
}

impl Moto {
    /// Starts moto on an ephemeral port (it reports the port it bound) and
    /// creates the gateway's user and one role per `(name, external_id)`;
    /// moto's auth is on when this returns. Waits without blocking the runtime.
    pub async fn start(roles: &[(&str, &str)]) -> Self {
        let mut child = tokio::process::Command::new(venv_bin("moto_server"))
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start moto_server");
        let stderr = child.stderr.take().expect("piped stderr");
        let url = tokio::time::timeout(Duration::from_secs(30), bound_url(stderr))
            .await
            .expect("moto_server reports its address within 30 s")
            .expect("moto_server reports its address");
        wait_ready(&url).await;
        let setup = {
            let (url, roles) = (url.clone(), roles_args(roles));
            tokio::task::spawn_blocking(move || run_setup(&url, &roles))
                .await
                .unwrap()
        };
        Self { child, url, setup }
    }

    /// Every role session moto has issued.
    pub async fn assumed_roles(&self) -> Vec<AssumedRole> {
        assumed_roles(&self.url).await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Reads moto's log until it names the address it listens on; keeps draining
/// the log afterwards (moto logs every request) so that it never blocks.
async fn bound_url(stderr: tokio::process::ChildStderr) -> Option<String> {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(url) = line.split("Running on ").nth(1) {
            let url = url.trim().to_owned();
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Some(url);
        }
    }
    None
}

/// Polls moto until it answers, bounded in time.
async fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let probe = format!("{url}/moto-api/");
    loop {
        let ready = super::client().get(&probe).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        assert!(Instant::now() < deadline, "moto at {url} never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn roles_args(roles: &[(&str, &str)]) -> Vec<String> {
    roles.iter().map(|(n, e)| format!("{n}={e}")).collect()
}

fn run_setup(url: &str, args: &[String]) -> Setup {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/moto_setup.py");
    let out = Command::new(venv_bin("python"))
        .arg(script)
        .arg(url)
        .args(args)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("run moto_setup.py");
    assert!(
        out.status.success(),
        "moto_setup.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("moto_setup.py output")
}

async fn assumed_roles(url: &str) -> Vec<AssumedRole> {
    let data: serde_json::Value = super::client()
        .get(format!("{url}/moto-api/data.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let roles = data["sts"]["AssumedRole"].clone();
    serde_json::from_value(roles.clone())
        .unwrap_or_else(|e| panic!("moto data.json: {e}: {roles:#}"))
}

/// A TCP relay to `target` that can be switched off: while down, every
/// connection is closed at once, as if STS were unreachable.
pub struct Relay {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
}

impl Relay {
    /// Starts relaying to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = loopback().await;
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        tokio::spawn(relay_loop(listener, target, up.clone()));
        Self { addr, up }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cuts or restores the route.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
}

async fn relay_loop(listener: TcpListener, target: SocketAddr, up: Arc<AtomicBool>) {
    while let Ok((mut inbound, _)) = listener.accept().await {
        if !up.load(Ordering::SeqCst) {
            drop(inbound);
            continue;
        }
        let up = up.clone();
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(target).await else {
                return;
            };
            // Keep-alive connections are cut too when the route goes down.
            let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
            tokio::pin!(copy);
            loop {
                tokio::select! {
                    _ = &mut copy => return,
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {
                        if !up.load(Ordering::SeqCst) { return; }
                    }
                }
            }
        });
    }
}

/// Secrets of moto's temporary credentials, looked up in moto's state.
struct MotoAuth {
    url: String,
}

#[async_trait::async_trait]
impl S3Auth for MotoAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        let roles = assumed_roles(&self.url).await;
        match roles.into_iter().find(|r| r.access_key_id == access_key) {
            Some(role) => Ok(SecretKey::from(role.secret_access_key)),
            None => Err(s3_error!(InvalidAccessKeyId)),
        }
    }
}

/// The access key and session token a request carries, from headers or query.
fn credential_and_token(parts: &http::request::Parts) -> (Option<String>, Option<String>) {
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let from_query = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let credential = from_query("X-Amz-Credential").or_else(|| {
        header("authorization").and_then(|a| {
            a.split("Credential=")
                .nth(1)
                .map(|c| c.split(',').next().unwrap_or("").to_owned())
        })
    });
    let access_key = credential.map(|c| c.split('/').next().unwrap_or("").to_owned());
    let token = from_query("X-Amz-Security-Token").or_else(|| header("x-amz-security-token"));
    (access_key, token)
}

/// An embedded store that accepts moto's temporary keys and refuses a request
/// whose session token is missing or not the one issued with its key.
pub async fn session_store(moto_url: &str, root: &std::path::Path) -> EmbeddedStore {
    let url = moto_url.to_owned();
    let gate: Gate = Arc::new(move |parts| {
        let (access_key, token) = credential_and_token(parts);
        let url = url.clone();
        Box::pin(async move {
            let access_key = access_key.ok_or("no credential")?;
            let roles = assumed_roles(&url).await;
            let role = roles
                .iter()
                .find(|r| r.access_key_id == access_key)
                .ok_or("unknown access key")?;
            match token {
                Some(t) if Some(&t) == role.session_token.as_ref() => Ok(()),
                Some(_) => Err("the session token does not match the access key".into()),
                None => Err("the session token is missing".into()),
            }
        })
    });
    let auth = MotoAuth {
        url: moto_url.to_owned(),
    };
    EmbeddedStore::start(loopback().await, root, auth, Some(gate)).expect("store starts")
}
