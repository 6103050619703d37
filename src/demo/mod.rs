//! `s3gate demo`: an embedded S3 store seeded with sample images, and the
//! gateway configured for it, both on loopback.

mod png;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::app::App;
use crate::config::Config;
use crate::presign::{self, PresignOptions};
use crate::server;
use crate::store::{EmbeddedStore, SimpleAuth};

/// The demo's bucket.
pub const BUCKET: &str = "demo";

/// Options of `s3gate demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Folder for the store's data and the generated config (default: a folder under the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Gateway address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
}

/// Sample objects: key → bytes.
pub fn samples() -> Vec<(String, Vec<u8>)> {
    let gradient = |r: u32, g: u32, b: u32| {
        png::encode(160, 120, move |x, y| {
            [
                (x * r / 160) as u8,
                (y * g / 120) as u8,
                ((x + y) * b / 280) as u8,
            ]
        })
    };
    let checker = png::encode(160, 120, |x, y| {
        if (x / 20 + y / 20) % 2 == 0 {
            [240, 240, 240]
        } else {
            [40, 90, 160]
        }
    });
    vec![
        ("images/gradient-red.png".into(), gradient(255, 60, 40)),
        ("images/gradient-green.png".into(), gradient(40, 255, 90)),
        ("images/gradient-blue.png".into(), gradient(60, 90, 255)),
        ("images/checker board (1).png".into(), checker),
        (
            "README.txt".into(),
            b"Sample objects served by s3gate demo.\n".to_vec(),
        ),
    ]
}

/// Writes the samples into `root/BUCKET/`.
pub fn seed(root: &Path) -> std::io::Result<()> {
    for (key, bytes) in samples() {
        let path = root.join(BUCKET).join(&key);
        std::fs::create_dir_all(path.parent().expect("keys have a parent"))?;
        std::fs::write(path, bytes)?;
    }
    Ok(())
}

/// Runs the demo until SIGINT/SIGTERM.
pub async fn run(args: DemoArgs) -> Result<(), String> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("s3gate-demo"));
    let store_root = dir.join("store");
    std::fs::create_dir_all(&store_root)
        .map_err(|e| format!("cannot create {}: {e}", store_root.display()))?;
    seed(&store_root).map_err(|e| format!("cannot seed {}: {e}", store_root.display()))?;

    let access_key = format!(
        "DEMO{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16].to_uppercase()
    );
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let store_listener = bind("127.0.0.1:0".parse().expect("literal address")).await?;
    let store = EmbeddedStore::start(
        store_listener,
        &store_root,
        SimpleAuth::from_single(access_key.clone(), secret.clone()),
        None,
    )
    .map_err(|e| format!("cannot start the store: {e}"))?;

    let secret_file = dir.join("demo-secret");
    write_private(&secret_file, &secret)?;
    let config_file = dir.join("s3gate.toml");
    let config_text = demo_config(args.listen, &store.url(), &access_key, &secret_file);
    std::fs::write(&config_file, &config_text)
        .map_err(|e| format!("cannot write {}: {e}", config_file.display()))?;
    let config = Config::load(&config_file).map_err(|e| e.to_string())?;
    let app = Arc::new(App::new(&config).await.map_err(|e| e.to_string())?);
    let listener = bind(args.listen).await?;
    let gateway = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );

    let example = presign::presign(
        app.registry(),
        &format!("s3://{BUCKET}/images/gradient-red.png"),
        &PresignOptions::default(),
        SystemTime::now(),
    )
    .await
    .map_err(|e| e.to_string())?;
    print_banner(&gateway, &store, &store_root, &config_file, &example.url);

    let grace = Duration::from_secs(config.server.shutdown_grace_s);
    server::serve(listener, app, None, server::shutdown_signal(), grace)
        .await
        .map_err(|e| e.to_string())
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}

fn write_private(path: &Path, contents: &str) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn demo_config(
    listen: SocketAddr,
    store_url: &str,
    access_key: &str,
    secret_file: &Path,
) -> String {
    format!(
        r#"# Generated by `s3gate demo`.
[server]
listen = "{listen}"

[[integrations]]
name = "demo"
default = true
buckets = ["{BUCKET}"]
region = "us-east-1"
endpoint_url = "{store_url}"
force_path_style = true
presign_ttl_s = 900

[integrations.credentials]
access_key_id = "{access_key}"
secret_access_key_file = "{}"
"#,
        secret_file.display()
    )
}

fn print_banner(
    gateway: &str,
    store: &EmbeddedStore,
    root: &Path,
    config: &Path,
    example_url: &str,
) {
    let locator = format!("s3://{BUCKET}/images/gradient-red.png");
    println!(
        r#"s3gate demo
  store    {store_url}  (folder {root}, SigV4 verified)
  gateway  {gateway}  (config {config})

Presign one object (JSON):
  curl -s '{gateway}/v1/presign?locator={locator}'
Presign a key with spaces (let curl encode the locator):
  curl -s -G '{gateway}/v1/presign' --data-urlencode 'locator=s3://{BUCKET}/images/checker board (1).png'
Presign a batch (a refused bucket fails alone):
  curl -s -X POST '{gateway}/v1/presign' -H 'content-type: application/json' -d '{{"locators":["{locator}","s3://not-permitted/x.png"]}}'
Download through a presigned URL:
  curl -s -o gradient-red.png '{example_url}'

Ctrl-C stops."#,
        store_url = store.url(),
        root = root.display(),
        config = config.display(),
    );
}
