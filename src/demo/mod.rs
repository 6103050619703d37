//! `s3gate demo`: an embedded S3 store seeded with sample images, and the
//! gateway configured for it, both on loopback.

mod png;
pub mod store;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::front::{server, App};
use crate::presign::{self, PresignOptions};
use store::{EmbeddedStore, SimpleAuth};

/// The demo's bucket, delivered by redirect to cache-stable presigned URLs.
pub const BUCKET: &str = "demo";
/// The same objects, delivered by the gateway streaming them.
pub const STREAM_BUCKET: &str = "demo-stream";
/// The gallery page; `__GATEWAY__` stands for the gateway's URL.
const GALLERY: &str = include_str!("gallery.html");
/// A four-second test-pattern video (VP8/WebM, a keyframe every half second).
const CLIP: &[u8] = include_bytes!("assets/clip.webm");

/// Options of `s3gate demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Folder for the store's data and the generated config (default: a new
    /// private folder under the system temp dir, removed at exit).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Gateway address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Gallery page address (its own origin, allowed by the gateway's CORS).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub gallery_listen: SocketAddr,
}

/// Sample objects: key → bytes.
pub fn samples() -> Vec<(String, Vec<u8>)> {
    // A channel ramping from 0 to `top` (at most 255) across `span`.
    let ramp = |at: u32, top: u32, span: u32| u8::try_from(at * top / span).unwrap_or(u8::MAX);
    let gradient = |r: u32, g: u32, b: u32| {
        png::encode(160, 120, move |x, y| {
            [ramp(x, r, 160), ramp(y, g, 120), ramp(x + y, b, 280)]
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
        ("video/clip.webm".into(), CLIP.to_vec()),
        (
            "README.txt".into(),
            b"Sample objects served by s3gate demo.\n".to_vec(),
        ),
    ]
}

/// Writes the samples into both demo buckets under `root`.
pub fn seed(root: &Path) -> std::io::Result<()> {
    for (key, bytes) in samples() {
        for bucket in [BUCKET, STREAM_BUCKET] {
            let path = root.join(bucket).join(&key);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, &bytes)?;
        }
    }
    Ok(())
}

/// Runs the demo until SIGINT/SIGTERM.
pub async fn run(args: DemoArgs) -> Result<(), String> {
    let (dir, made) = match &args.dir {
        Some(dir) => (dir.clone(), false),
        None => (private_dir()?, true),
    };
    let store_root = dir.join("store");
    let (store, access_key, secret) = start_store(&store_root).await?;

    let listener = bind(args.listen).await?;
    let listen = listener.local_addr().map_err(|e| e.to_string())?;
    let gateway = format!("http://{listen}");
    let gallery_listener = bind(args.gallery_listen).await?;
    let gallery = format!(
        "http://{}",
        gallery_listener.local_addr().map_err(|e| e.to_string())?
    );
    tokio::spawn(serve_gallery(
        gallery_listener,
        GALLERY.replace("__GATEWAY__", &gateway),
    ));

    let secret_file = dir.join("demo-secret");
    write_private(&secret_file, &secret)?;
    let config_file = dir.join("s3gate.toml");
    let config_text = demo_config(listen, &gallery, &store.url(), &access_key, &secret_file);
    std::fs::write(&config_file, &config_text)
        .map_err(|e| format!("cannot write {}: {e}", config_file.display()))?;
    let config = Config::load(&config_file).map_err(|e| e.to_string())?;
    let grace = Duration::from_secs(config.server.shutdown_grace_s);
    let app = Arc::new(App::new(config).await.map_err(|e| e.to_string())?);

    let example = app
        .registry()
        .resolve_object(&format!("s3://{BUCKET}/images/gradient-red.png"))
        .map_err(|e| e.to_string())?;
    let example = presign::presign(&example, &PresignOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    print_banner(
        &gateway,
        &gallery,
        &store,
        &store_root,
        &config_file,
        &example.url,
    );

    let cache = app.cache().cloned();
    let served = server::serve(listener, app, None, server::shutdown_signal(), grace).await;
    if let Some(cache) = cache {
        cache.close().await;
    }
    drop(store);
    if made {
        let _ = std::fs::remove_dir_all(&dir);
    }
    served.map_err(|e| e.to_string())
}

/// A new folder only this user can enter, under the system temp dir. Made
/// with a random name and refused if anything is already there, so no
/// planted folder or symlink is ever followed.
fn private_dir() -> Result<PathBuf, String> {
    let name = format!(
        "s3gate-demo-{}",
        crate::auth::random_hex(8).map_err(|e| e.to_string())?
    );
    let dir = std::env::temp_dir().join(name);
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(&dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Seeds the store's folder and starts the store on it, with fresh keys.
async fn start_store(root: &Path) -> Result<(EmbeddedStore, String, String), String> {
    std::fs::create_dir_all(root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    seed(root).map_err(|e| format!("cannot seed {}: {e}", root.display()))?;
    let access_key = format!(
        "DEMO{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16].to_uppercase()
    );
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let auth = SimpleAuth::from_single(access_key.clone(), secret.clone());
    let store = EmbeddedStore::start(listener, root, auth, None)
        .map_err(|e| format!("cannot start the store: {e}"))?;
    Ok((store, access_key, secret))
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
    gallery: &str,
    store_url: &str,
    access_key: &str,
    secret_file: &Path,
) -> String {
    let credentials = format!(
        "[integrations.credentials]\naccess_key_id = \"{access_key}\"\nsecret_access_key_file = \"{}\"\n",
        secret_file.display()
    );
    format!(
        r#"# Generated by `s3gate demo`.
[server]
listen = "{listen}"

[cors]
allowed_origins = ["{gallery}"]

[s3_api]
anonymous = true

# The media cache, in memory: reload the gallery and its streamed images
# answer `x-cache-status: HIT`, with no store request.
[cache]
memory_mb = 64

# Redirect delivery: 307 to presigned URLs that stay identical for 5 minutes.
[[integrations]]
name = "demo"
default = true
buckets = ["{BUCKET}"]
region = "us-east-1"
endpoint_url = "{store_url}"
force_path_style = true
presign_ttl_s = 900
presign_window_s = 300
delivery = "redirect"
{credentials}
# Proxy delivery: the gateway streams the bytes (ranges for video seeking).
[[integrations]]
name = "demo-stream"
bucket = "{STREAM_BUCKET}"
region = "us-east-1"
endpoint_url = "{store_url}"
delivery = "proxy"
{credentials}"#
    )
}

/// Serves the gallery page at `/` on its own origin.
async fn serve_gallery(listener: tokio::net::TcpListener, page: String) {
    use http_body_util::Full;
    use hyper::service::service_fn;
    let page = bytes::Bytes::from(page);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let page = page.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let page = page.clone();
                async move {
                    let mut response = http::Response::new(Full::new(page));
                    if request.uri().path() == "/" {
                        let html = http::HeaderValue::from_static("text/html; charset=utf-8");
                        response
                            .headers_mut()
                            .insert(http::header::CONTENT_TYPE, html);
                    } else {
                        *response.status_mut() = http::StatusCode::NOT_FOUND;
                        *response.body_mut() = Full::new(bytes::Bytes::from_static(b"not found\n"));
                    }
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

fn print_banner(
    gateway: &str,
    gallery: &str,
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
  gallery  {gallery}/  (open it in a browser)

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
