//! The demo gallery in a real browser: `s3gate demo` driven by Debian's
//! Chromium through playwright-core (tests/browser/gallery.mjs).
//!
//! Checks, on what the browser saw and on the gateway's and the store's logs:
//! 1. every image shows, through redirect and through proxy delivery;
//! 2. a Range fetch from the gallery's origin gets 206 with a readable
//!    `Content-Range` and the right 100 bytes;
//! 3. the video seeks (its bytes come by Range requests, 206);
//! 4. the same fetches from a disallowed origin fail with a CORS TypeError,
//!    and the gateway logs the denial;
//! 5. a second load within the signing window takes the redirect images from
//!    the browser's cache: no request reaches the store for them, and the
//!    gateway sees no new redirect (the 307 is cached); the proxied images
//!    are read from the store once, on the first load, and the media cache
//!    answers the second (`x-cache-status` HIT or REVALIDATED);
//! 6. a screenshot of the gallery lands in tests/artifacts/gallery.png.
//!
//! A second test, `a_prefix_grant_serves_a_page_of_another_origin`, has a
//! platform backend mint a prefix grant with its bearer token and hand it to
//! a page of another origin (tests/browser/grant.mjs loads it): the page's
//! images and CORS listing under the prefix work with the grant alone, an
//! image outside it is refused, and the token never reaches the browser.
//!
//! Needs Chromium, Node.js and `npm ci --prefix tests/browser`, which
//! scripts/test installs; without them the test fails, it never skips.
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

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;

/// How long the demo may take to print its banner.
const BANNER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the browser script may run (it may wait up to 30 s for a
/// fresh signing window, and has its own watchdog at 150 s).
const NODE_TIMEOUT: Duration = Duration::from_secs(200);
/// The access-log paths the script requests to split the log into phases.
const MARK_SECOND: &str = "path=/v1/browser-test-mark-2 ";
const MARK_THIRD: &str = "path=/v1/browser-test-mark-3 ";

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A child process killed (and reaped) when dropped, on success and panic alike.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads a pipe to its end on a thread.
fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        text.push_str(&String::from_utf8_lossy(&bytes));
        text
    })
}

/// What the browser test needs, or a panic that says how to get it.
fn prerequisites() -> PathBuf {
    const HOW: &str = "scripts/test installs it";
    let chromium = std::env::var_os("S3GATE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.is_file(),
        "Chromium not found at {} (set S3GATE_CHROMIUM, or `apt-get install chromium`; {HOW})",
        chromium.display()
    );
    let node = Command::new("node")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run `node` ({e}): install Node.js 20+ and npm (scripts/test checks for them)"));
    let version = String::from_utf8_lossy(&node.stdout).trim().to_owned();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        node.status.success() && major >= 20,
        "Node.js 20+ is needed, `node --version` said {version:?}"
    );
    let browser = manifest_dir().join("tests/browser");
    let installed = browser.join("node_modules/playwright-core/package.json");
    let installed: Value = std::fs::read_to_string(&installed)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_else(|| {
            panic!(
                "{} is missing: run `npm ci --prefix tests/browser` ({HOW})",
                installed.display()
            )
        });
    let lock: Value = serde_json::from_str(
        &std::fs::read_to_string(browser.join("package-lock.json")).expect("package-lock.json"),
    )
    .expect("package-lock.json is JSON");
    let locked = &lock["packages"]["node_modules/playwright-core"]["version"];
    assert_eq!(
        &installed["version"], locked,
        "tests/browser/node_modules holds another playwright-core than package-lock.json: run `npm ci --prefix tests/browser`"
    );
    chromium
}

/// A running `s3gate demo` and the addresses its banner printed.
struct Demo {
    guard: Guard,
    stderr: JoinHandle<String>,
    store: String,
    gateway: String,
    gallery: String,
    config: PathBuf,
}

impl Demo {
    fn start(dir: &Path) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_s3gate"))
            .args(["demo", "--dir"])
            .arg(dir)
            .args(["--listen", "127.0.0.1:0", "--gallery-listen", "127.0.0.1:0"])
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // The access log, and the store's (s3s) routing of each request:
            // the store's own count of the objects the browser fetched.
            .env("S3GATE_LOG", "info,s3s::ops=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start `s3gate demo`");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = drain(child.stderr.take().expect("piped stderr"));
        let guard = Guard(child);
        let (lines, banner) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Keep draining after the banner, even with no one listening.
                let _ = lines.send(line);
            }
        });
        let deadline = Instant::now() + BANNER_TIMEOUT;
        let (mut store, mut gateway, mut gallery) = (None, None, None);
        while store.is_none() || gateway.is_none() || gallery.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match banner.recv_timeout(left) {
                Ok(line) => line,
                Err(e) => {
                    drop(guard);
                    let log = stderr.join().unwrap_or_default();
                    panic!("no complete banner from `s3gate demo` ({e:?}); stderr:\n{log}");
                }
            };
            // `  gateway  http://127.0.0.1:PORT  (config …)`
            let words: Vec<&str> = line.split_whitespace().collect();
            let url = words.get(1).map(|u| u.trim_end_matches('/').to_owned());
            match words.first() {
                Some(&"store") => store = url,
                Some(&"gateway") => gateway = url,
                Some(&"gallery") => gallery = url,
                _ => {}
            }
        }
        Demo {
            guard,
            stderr,
            store: store.unwrap(),
            gateway: gateway.unwrap(),
            gallery: gallery.unwrap(),
            config: dir.join("s3gate.toml"),
        }
    }

    /// Stops the demo; its stderr, whole.
    fn stop(self) -> Vec<String> {
        drop(self.guard);
        let text = self.stderr.join().expect("stderr reader");
        text.lines().map(str::to_owned).collect()
    }
}

/// The signing window of the redirect integration, from the demo's config.
fn presign_window_s(config: &Path) -> u64 {
    let text = std::fs::read_to_string(config).expect("the demo's config");
    let value: toml::Value = toml::from_str(&text).expect("the demo's config is TOML");
    value["integrations"]
        .as_array()
        .and_then(|list| list.iter().find(|i| i["name"].as_str() == Some("demo")))
        .and_then(|i| i.get("presign_window_s"))
        .and_then(toml::Value::as_integer)
        .expect("integration demo has presign_window_s") as u64
}

/// Runs the browser script (bounded); its JSON verdict, or a panic with its stderr.
fn run_browser(chromium: &Path, demo: &Demo, window_s: u64, artifacts: &Path) -> Value {
    let script = manifest_dir().join("tests/browser/gallery.mjs");
    let mut child = Command::new("node")
        .arg(&script)
        .args([&demo.gallery, &demo.gateway, &demo.store])
        .arg(artifacts)
        .current_dir(manifest_dir())
        .env("S3GATE_CHROMIUM", chromium)
        .env("S3GATE_PRESIGN_WINDOW_S", window_s.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let mut guard = Guard(child);
    let deadline = Instant::now() + NODE_TIMEOUT;
    let status = loop {
        if let Some(status) = guard.0.try_wait().expect("poll node") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        #[allow(clippy::disallowed_methods)] // a bounded exit poll of a child process
        thread::sleep(Duration::from_millis(100));
    };
    drop(guard);
    let (out, err) = (stdout.join().unwrap(), stderr.join().unwrap());
    let Some(status) = status else {
        panic!("gallery.mjs still running after {NODE_TIMEOUT:?}; stderr:\n{err}");
    };
    assert!(status.success(), "gallery.mjs failed ({status}):\n{err}");
    let last = out.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("gallery.mjs printed no JSON ({e}): {out}\nstderr:\n{err}"))
}

/// One access-log line: `(path, status)`.
fn access(line: &str) -> Option<(&str, u16)> {
    if !line.contains("s3gate::access") {
        return None;
    }
    let field = |name: &str| line.split_whitespace().find_map(|w| w.strip_prefix(name));
    let path = field("path=")?;
    let status = field("status=")?.parse().ok()?;
    Some((path, status))
}

/// `/v1/object` answers with `status` among `lines`.
fn object_answers(lines: &[String], status: u16) -> usize {
    lines
        .iter()
        .filter_map(|l| access(l))
        .filter(|&(path, s)| path == "/v1/object" && s == status)
        .count()
}

/// GETs the store routed to bucket `demo` (only browsers fetch from it: the
/// gateway redirects there and never reads its objects itself).
fn store_gets_of_demo(lines: &[String]) -> usize {
    lines
        .iter()
        .filter(|l| {
            l.contains("resolved route op=GetObject")
                && l.contains(r#"s3_path=Object { bucket: "demo", "#)
        })
        .count()
}

/// GETs the store served of the proxied gallery images (bucket
/// `demo-stream`, keys under `images/`): the gateway's own reads.
fn store_gets_of_proxied_images(lines: &[String]) -> usize {
    lines
        .iter()
        .filter(|l| {
            l.contains("resolved route op=GetObject")
                && l.contains(r#"s3_path=Object { bucket: "demo-stream", key: "images/"#)
        })
        .count()
}

/// The media cache's answers (`cache=` of the access line) to whole-object
/// reads of the proxy integration (the images; the video is read in ranges).
fn cache_answers_of_proxied_images(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| {
            access(l).is_some_and(|(path, s)| path == "/v1/object" && (s == 200 || s == 304))
                && l.contains(" integration=demo-stream ")
        })
        .filter_map(|l| {
            let word = l.split_whitespace().find_map(|w| w.strip_prefix("cache="));
            word.map(str::to_owned)
        })
        .collect()
}

fn position(lines: &[String], needle: &str) -> usize {
    lines
        .iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} line in the gateway's log"))
}

fn count(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{value} is not a count"))
}

#[test]
fn gallery_in_chromium() {
    let chromium = prerequisites();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path());
    let window_s = presign_window_s(&demo.config);
    let artifacts = manifest_dir().join("tests/artifacts");
    let screenshot = artifacts.join("gallery.png");
    let _ = std::fs::remove_file(&screenshot);
    let result = run_browser(&chromium, &demo, window_s, &artifacts);
    let (gallery_origin, gateway) = (demo.gallery.clone(), demo.gateway.clone());
    let log = demo.stop();
    eprintln!(
        "browser run took {:?} (waited {}s for a fresh signing window); Chromium {}",
        started.elapsed(),
        result["waitedForWindowS"],
        result["browserVersion"]
    );
    let log_tail = || log[log.len().saturating_sub(60)..].join("\n");

    let samples = s3gate::demo::samples();
    let images: Vec<&str> = samples
        .iter()
        .map(|(key, _)| key.as_str())
        .filter(|key| key.starts_with("images/"))
        .collect();
    let clip = &samples
        .iter()
        .find(|(key, _)| key == "video/clip.webm")
        .expect("the demo has a clip")
        .1;

    // 1. Every image shows, through both deliveries, on both loads.
    for load in ["first", "second"] {
        let page = &result[load];
        let expected = serde_json::json!({
            "objects": images.len(), "shown": 2 * images.len(), "total": 2 * images.len()
        });
        assert_eq!(
            page["gallery"], expected,
            "{load} load: window.gallery ({})",
            page["status"]
        );
        let shown = page["images"].as_array().expect("images");
        for (grid, bucket) in [("redirect", "demo"), ("proxy", "demo-stream")] {
            let in_grid: Vec<&Value> = shown.iter().filter(|i| i["grid"] == grid).collect();
            assert_eq!(
                in_grid.len(),
                images.len(),
                "{load} load, {grid}: {shown:?}"
            );
            for img in in_grid {
                let src = img["src"].as_str().unwrap_or("");
                assert!(
                    src.starts_with(&format!(
                        "{}/v1/object?locator=s3%3A%2F%2F{bucket}%2F",
                        gateway
                    )),
                    "{load} load, {grid}: {src}"
                );
                assert!(
                    img["naturalWidth"] == 160 && img["naturalHeight"] == 120,
                    "{load} load, {grid}: not shown: {img}"
                );
            }
        }
    }

    // 2. A Range fetch from the allowed origin: 206, Content-Range exposed.
    let range = &result["range"];
    assert_eq!(range["status"], 206, "range fetch: {range}");
    assert_eq!(
        range["contentRange"].as_str(),
        Some(format!("bytes 0-99/{}", clip.len()).as_str()),
        "Content-Range as script reads it (exposed by CORS) must be the clip's first 100 bytes"
    );
    assert_eq!(range["length"], 100);
    let body: Vec<u8> = range["bytes"]
        .as_array()
        .expect("bytes")
        .iter()
        .map(|b| b.as_u64().expect("a byte") as u8)
        .collect();
    assert_eq!(body, clip[..100], "the range's bytes");

    // 3. The video seeks; its bytes came by Range requests answered 206.
    let seek = &result["seek"];
    assert_eq!(seek["seeked"], true, "no `seeked` event in time: {seek}");
    assert!(seek["error"].is_null(), "media error: {seek}");
    let at = seek["currentTime"].as_f64().unwrap_or(-1.0);
    assert!((at - 3.0).abs() < 0.1, "currentTime after seeking: {seek}");
    let duration = seek["duration"].as_f64().unwrap_or(0.0);
    assert!((duration - 4.0).abs() < 0.5, "duration: {seek}");
    assert!(
        seek["readyState"].as_u64().unwrap_or(0) >= 2,
        "no frame at the new position: {seek}"
    );
    let media = result["first"]["network"]["clipMedia"]
        .as_array()
        .expect("clipMedia");
    assert!(
        media.iter().any(|m| m["status"] == 206
            && m["fromCache"] == false
            && m["range"].as_str().is_some_and(|r| r.starts_with("bytes="))),
        "the video element made no Range request answered 206: {media:?}"
    );
    let second = position(&log, MARK_SECOND);
    let third = position(&log, MARK_THIRD);
    assert!(second < third, "markers out of order");
    assert!(
        object_answers(&log[..second], 206) >= 1,
        "the gateway answered no Range request of the video with 206:\n{}",
        log_tail()
    );
    assert!(
        object_answers(&log[third..], 206) >= 1,
        "the gateway answered the Range fetch with no 206:\n{}",
        log_tail()
    );

    // 4. A disallowed origin: the list fetch fails with a CORS TypeError.
    let denied = &result["disallowed"];
    let origin = result["disallowedOrigin"]
        .as_str()
        .expect("disallowedOrigin");
    assert_eq!(denied["origin"], origin);
    assert_ne!(
        origin, gallery_origin,
        "the probe must run on another origin"
    );
    for probe in ["list", "range"] {
        assert_eq!(
            (&denied[probe]["ok"], &denied[probe]["name"]),
            (&Value::Bool(false), &Value::from("TypeError")),
            "{probe} fetch from the disallowed origin {origin}: {denied}"
        );
    }
    let denials: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("CORS origin not allowed"))
        .collect();
    assert!(
        denials
            .iter()
            .any(|l| l.contains(&format!("origin=\"{origin}\"")) && l.contains("path=/v1/list")),
        "the gateway did not log the denial of {origin}:\n{}",
        log_tail()
    );
    assert!(
        denials.iter().all(|l| !l.contains(&gallery_origin)),
        "the gallery's own origin was denied: {denials:?}"
    );

    // 5. The second load takes the redirect images from the browser's cache.
    let first_net = &result["first"]["network"];
    let second_net = &result["second"]["network"];
    let n = images.len() as u64;
    // The counters see the first load's fetches: they would see a second.
    assert_eq!(
        count(&first_net["store"]["network"]),
        n,
        "first load: store requests from the browser: {first_net}"
    );
    assert_eq!(
        object_answers(&log[..second], 307),
        n as usize,
        "first load: 307s"
    );
    assert_eq!(
        store_gets_of_demo(&log[..second]),
        n as usize,
        "first load: store GETs"
    );
    let elapsed = result["second"]["secondsAfterFirst"]
        .as_f64()
        .unwrap_or(0.0);
    let why = format!(
        "second load {elapsed:.1}s after the first (signing window {window_s}s, waited {}s for a fresh one)",
        result["waitedForWindowS"]
    );
    assert!(
        log[second..third]
            .iter()
            .any(|l| l.contains("path=/v1/list ")),
        "the second load did not reach the gateway between the markers"
    );
    assert_eq!(
        count(&second_net["store"]["network"]),
        0,
        "second load: the browser went to the store again ({why}): {second_net}"
    );
    assert_eq!(
        count(&second_net["store"]["cached"]),
        n,
        "second load: the redirect images did not come from the cache ({why}): {second_net}"
    );
    assert_eq!(
        count(&second_net["redirectObjects"]["network"]),
        0,
        "second load: the cached 307s were asked for again ({why}): {second_net}"
    );
    assert_eq!(
        object_answers(&log[second..third], 307),
        0,
        "second load: the gateway redirected again ({why}):\n{}",
        log[second..=third].join("\n")
    );
    assert_eq!(
        store_gets_of_demo(&log[second..third]),
        0,
        "second load: the store served bucket demo again ({why})"
    );

    // The proxied images: read from the store once, on the first load; the
    // second load's requests (the browser revalidates them, or takes them
    // from its own cache) are answered by the media cache.
    assert_eq!(
        store_gets_of_proxied_images(&log[..second]),
        n as usize,
        "first load: the store's reads of the proxied images"
    );
    assert_eq!(
        store_gets_of_proxied_images(&log[second..third]),
        0,
        "second load: the proxied images were read from the store again"
    );
    let answers = cache_answers_of_proxied_images(&log[second..third]);
    assert!(
        answers.iter().all(|a| a == "HIT" || a == "REVALIDATED"),
        "second load: the media cache's answers to the proxied images: {answers:?}"
    );

    // 6. The screenshot.
    let png = std::fs::read(&screenshot)
        .unwrap_or_else(|e| panic!("no screenshot at {}: {e}", screenshot.display()));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert!(
        width >= 800 && height >= 600 && png.len() > 20_000,
        "screenshot {width}x{height}, {} bytes",
        png.len()
    );
}

/// The page of another origin the grant test serves: it reads the gateway,
/// the bucket, the keys and the grant from its URL fragment (which the browser
/// never sends to the page's server), loads one `<img>` per key with the
/// grant, fetches the task's listing with CORS, then sets `window.result`.
const GRANT_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>task 17</title></head>
<body><div id="shots"></div>
<script>
(async () => {
  const params = new URLSearchParams(location.hash.slice(1));
  const gateway = params.get("gateway"), bucket = params.get("bucket"), grant = params.get("grant");
  const url = (path, locator) =>
    `${gateway}${path}?locator=${encodeURIComponent(locator)}&grant=${encodeURIComponent(grant)}`;
  const load = (key) => new Promise((resolve) => {
    const img = new Image();
    const done = (loaded) => () =>
      resolve({ key, loaded, naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight });
    img.onload = done(true);
    img.onerror = done(false);
    img.src = url("/v1/object", `s3://${bucket}/${key}`);
    document.getElementById("shots").appendChild(img);
  });
  const images = await Promise.all(params.getAll("key").map(load));
  let list;
  try {
    const response = await fetch(url("/v1/list", `s3://${bucket}/task-17/`), { mode: "cors" });
    list = { ok: response.ok, status: response.status, body: await response.json() };
  } catch (e) {
    list = { ok: false, error: `${e.name}: ${e.message}` };
  }
  window.result = { images, list };
})();
</script></body></html>
"#;

/// A loopback HTTP server answering `/` with [`GRANT_PAGE`] (404 otherwise);
/// it records the head of every request it receives.
async fn serve_grant_page() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = support::loopback().await;
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 << 10 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let root = head.starts_with("GET / ");
                record.lock().unwrap().push(head);
                let (status, body) = if root {
                    ("200 OK", GRANT_PAGE)
                } else {
                    ("404 Not Found", "not found\n")
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (origin, seen)
}

/// A `s3gate serve` process: its address, and its stderr read to the end on a thread.
struct Served {
    guard: Guard,
    addr: String,
    log: JoinHandle<Vec<String>>,
}

impl Served {
    fn start(config: &Path) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_s3gate"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env(support::SECRET_ENV, support::SECRET_KEY)
            // The access log, and why each refused request was refused.
            .env("S3GATE_LOG", "info,s3gate::front::app=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start `s3gate serve`");
        let stderr = child.stderr.take().expect("piped stderr");
        let guard = Guard(child);
        let (tx, rx) = mpsc::channel();
        let log = thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let _ = tx.send(addr.trim().to_owned());
                }
                lines.push(line);
            }
            lines
        });
        let Ok(addr) = rx.recv_timeout(BANNER_TIMEOUT) else {
            drop(guard);
            panic!(
                "`s3gate serve` did not report its address:\n{}",
                log.join().unwrap_or_default().join("\n")
            );
        };
        Served { guard, addr, log }
    }

    /// Stops the gateway; its log, whole.
    fn stop(self) -> Vec<String> {
        drop(self.guard);
        self.log.join().expect("log reader")
    }
}

/// A field `name=value` (or `name="value"`) of a log line.
fn log_field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
        .map(|v| v.trim_matches('"'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_grant_serves_a_page_of_another_origin() {
    let chromium = prerequisites();
    let bucket = "shots";
    let store = support::FsStore::start().await;
    store.bucket(bucket);
    let images: Vec<Vec<u8>> = s3gate::demo::samples()
        .into_iter()
        .filter(|(key, _)| key.starts_with("images/"))
        .map(|(_, bytes)| bytes)
        .collect();
    let task_keys = ["task-17/1.png", "task-17/2.png", "task-17/3.png"];
    for (key, bytes) in task_keys.iter().zip(&images) {
        store.put(bucket, key, bytes);
    }
    store.put(bucket, "other/x.png", &images[3]);

    let (page_origin, page_requests) = serve_grant_page().await;
    let (token, token_line) = s3gate::auth::new_token().unwrap();
    let config = support::config::ConfigBuilder::store(&store.url(), &[bucket])
        .integration("delivery", "proxy")
        .set("server", "listen", "127.0.0.1:0")
        .set("cors", "allowed_origins", vec![page_origin.clone()])
        .build();
    let config = format!(
        "{config}\n[[clients]]\nname = \"platform\"\n{token_line}\nintegrations = [\"*\"]\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("s3gate.toml");
    std::fs::write(&config_path, config).unwrap();
    let gateway = Served::start(&config_path);
    let base = gateway.addr.clone();

    // The platform's backend mints the grant with its token.
    let prefix = format!("s3://{bucket}/task-17/");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let response = support::client()
        .post(format!("{base}/v1/grant"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "prefix": prefix, "expires": 600 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let granted: Value = response.json().await.unwrap();
    let grant = granted["grant"].as_str().expect("a grant").to_owned();
    assert!(grant.starts_with("s3g1."), "{granted}");
    assert!(!grant.contains(&token), "the grant holds the token");
    assert_eq!(granted["prefix"], prefix.as_str());
    let expires_at = granted["expires_at"].as_u64().expect("expires_at");
    assert!(
        (before + 600..=before + 602).contains(&expires_at),
        "expires_at {expires_at}, asked 600 s at {before}"
    );

    // The browser gets the page with the grant in its fragment.
    let mut fragment = form_urlencoded::Serializer::new(String::new());
    fragment.append_pair("gateway", &base);
    fragment.append_pair("bucket", bucket);
    fragment.append_pair("grant", &grant);
    for key in task_keys.iter().chain(&["other/x.png"]) {
        fragment.append_pair("key", key);
    }
    let page_url = format!("{page_origin}/#{}", fragment.finish());
    let script = manifest_dir().join("tests/browser/grant.mjs");
    let run = tokio::process::Command::new("node")
        .arg(&script)
        .arg(&page_url)
        .current_dir(manifest_dir())
        .env("S3GATE_CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("grant.mjs finishes within 90 s")
        .expect("run node");
    let log = gateway.stop();
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    let log_tail = || log[log.len().saturating_sub(40)..].join("\n");
    assert!(
        output.status.success(),
        "grant.mjs failed ({}):\n{err}\ngateway log:\n{}",
        output.status,
        log_tail()
    );
    let seen: Value = out
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("grant.mjs printed no JSON: {out}\nstderr:\n{err}"));
    let result = &seen["result"];
    eprintln!("Chromium {}", seen["browserVersion"]);

    // Every task image shows; the one outside the prefix does not.
    let shown = result["images"].as_array().expect("images");
    assert_eq!(shown.len(), task_keys.len() + 1, "{result}");
    for image in shown {
        let key = image["key"].as_str().unwrap();
        if key.starts_with("task-17/") {
            assert!(
                image["loaded"] == true
                    && image["naturalWidth"] == 160
                    && image["naturalHeight"] == 120,
                "{key} did not show: {image}\ngateway log:\n{}",
                log_tail()
            );
        } else {
            assert_eq!(key, "other/x.png");
            assert!(
                image["loaded"] == false && image["naturalWidth"] == 0,
                "{key} showed with a grant for {prefix}: {image}"
            );
        }
    }

    // The CORS listing returns the task's keys, and only those.
    let list = &result["list"];
    assert_eq!(
        (&list["ok"], &list["status"]),
        (&Value::Bool(true), &Value::from(200)),
        "list fetch from {page_origin}: {list}"
    );
    let mut listed: Vec<&str> = list["body"]["objects"]
        .as_array()
        .unwrap_or_else(|| panic!("no objects in {list}"))
        .iter()
        .map(|o| o["key"].as_str().expect("a key"))
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, task_keys, "{list}");

    // The access log: the granted reads under the client's name, the other
    // image refused as ClientNotPermitted.
    let accesses: Vec<&str> = log
        .iter()
        .map(String::as_str)
        .filter(|l| l.contains("s3gate::access"))
        .collect();
    let objects: Vec<&str> = accesses
        .iter()
        .copied()
        .filter(|l| log_field(l, "path") == Some("/v1/object"))
        .collect();
    let granted_reads = objects
        .iter()
        .filter(|l| {
            log_field(l, "status") == Some("200")
                && log_field(l, "client") == Some("platform")
                && log_field(l, "via") == Some("grant")
        })
        .count();
    assert_eq!(
        granted_reads,
        task_keys.len(),
        "granted object reads in the access log:\n{}",
        log_tail()
    );
    let refused: Vec<&str> = objects
        .iter()
        .copied()
        .filter(|l| log_field(l, "status") == Some("403"))
        .collect();
    assert_eq!(refused.len(), 1, "refused object reads:\n{}", log_tail());
    let id = log_field(refused[0], "id").expect("an id");
    assert_eq!(
        log_field(refused[0], "client"),
        Some("platform"),
        "{}",
        refused[0]
    );
    let why = log
        .iter()
        .find(|l| l.contains("request refused") && log_field(l, "id") == Some(id))
        .unwrap_or_else(|| panic!("no reason logged for request {id}:\n{}", log_tail()));
    assert!(
        why.contains("ClientNotPermitted") && why.contains(&format!("s3://{bucket}/other/x.png")),
        "{why}"
    );
    assert!(
        accesses
            .iter()
            .any(|l| log_field(l, "path") == Some("/v1/list")
                && log_field(l, "status") == Some("200")
                && log_field(l, "client") == Some("platform")
                && log_field(l, "via") == Some("grant")),
        "no granted listing in the access log:\n{}",
        log_tail()
    );
    assert!(
        accesses
            .iter()
            .any(|l| log_field(l, "path") == Some("/v1/grant")
                && log_field(l, "status") == Some("200")
                && log_field(l, "via") == Some("token")),
        "no grant minted with the token in the access log:\n{}",
        log_tail()
    );

    // The token stayed with the backend: not in the log, nor anywhere the
    // browser saw or sent; the page's server never saw the grant either.
    assert!(
        log.iter().all(|l| !l.contains(&token)),
        "the token is in the gateway's log"
    );
    for (what, text) in [
        ("page", seen["html"].to_string()),
        ("storage", seen["storage"].to_string()),
        ("requests", seen["requests"].to_string()),
        ("console", seen["console"].to_string()),
        ("result", result.to_string()),
    ] {
        assert!(
            !text.contains(&token),
            "the token is in the browser's {what}"
        );
    }
    let requests = seen["requests"].as_array().expect("requests");
    assert!(
        requests.iter().all(|r| r["headers"]
            .as_object()
            .is_some_and(|h| !h.contains_key("authorization"))),
        "the browser sent an Authorization header: {requests:?}"
    );
    let to_gateway = requests
        .iter()
        .filter(|r| r["url"].as_str().is_some_and(|u| u.starts_with(&base)))
        .count();
    assert_eq!(to_gateway, task_keys.len() + 2, "{requests:?}");
    let page_heads = page_requests.lock().unwrap().clone();
    assert!(!page_heads.is_empty(), "the page was never requested");
    assert!(
        page_heads
            .iter()
            .all(|h| !h.contains(&token) && !h.contains(&grant)),
        "the page's server saw a credential: {page_heads:?}"
    );
}
