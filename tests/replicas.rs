//! Scaling out: two gateways behind Debian's nginx as a round-robin load
//! balancer on loopback serve one client's mixed requests (presigned reads,
//! proxied objects, listings, the S3 front, gateway-signed URLs made by one
//! replica and served by either) with no error, and each replica assumes each
//! role once (moto), as README's "Scaling out" says.
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

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use support::moto::{session_store, Moto};
use support::*;

const TOKEN: &str = "s3gt_replicas-test-token-0123456789";

/// An nginx of its own, balancing `upstreams`, on a free loopback port.
struct Nginx {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Nginx {
    async fn start(upstreams: &[std::net::SocketAddr]) -> Self {
        let binary = std::env::var("S3GATE_NGINX").unwrap_or_else(|_| "/usr/sbin/nginx".into());
        assert!(
            std::path::Path::new(&binary).exists(),
            "{binary} is missing: run scripts/test, which installs nginx-light"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let servers: String = upstreams.iter().map(|a| format!("server {a};")).collect();
        let conf = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 256; }}\nhttp {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n fastcgi_temp_path {d}/fastcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n upstream gateways {{ {servers} keepalive 8; }}\n server {{\n  listen 127.0.0.1:{port};\n  location / {{\n   proxy_pass http://gateways;\n   proxy_http_version 1.1;\n   proxy_set_header Connection \"\";\n   proxy_set_header Host localhost;\n   proxy_buffering off;\n  }}\n }}\n}}\n",
            d = dir.path().display()
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = std::process::Command::new(&binary)
            .args([
                "-p",
                dir.path().to_str().unwrap(),
                "-c",
                conf_path.to_str().unwrap(),
                "-g",
                "daemon off;",
            ])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await; // polling the port
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    /// SIGTERM, so that the master stops its worker before it exits.
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_behind_nginx_serve_mixed_requests_assuming_each_role_once() {
    init();
    let moto = Moto::start(&[("reader", "ext-reader-1"), ("streamer", "ext-streamer-1")]).await;
    let dir = tempfile::tempdir().unwrap();
    for bucket in ["media", "videos"] {
        std::fs::create_dir_all(dir.path().join("store").join(bucket)).unwrap();
        for i in 0..4 {
            std::fs::write(
                dir.path().join(format!("store/{bucket}/k{i}.bin")),
                format!("{bucket} {i}"),
            )
            .unwrap();
        }
    }
    let store = session_store(&moto.url, &dir.path().join("store")).await;
    let secret = dir.path().join("identity");
    std::fs::write(&secret, &moto.setup.secret_access_key).unwrap();
    let keys = dir.path().join("url-keys");
    std::fs::write(&keys, "k".repeat(40)).unwrap();
    let digest = hex::encode(Sha256::digest(TOKEN.as_bytes()));
    let integration = |name: &str, bucket: &str, role: &str, external_id: &str, delivery: &str| {
        format!(
            "[[integrations]]\nname = \"{name}\"\nbucket = \"{bucket}\"\nendpoint_url = \"{}\"\nrole_arn = \"{}\"\nexternal_id = \"{external_id}\"\nsts_endpoint = \"{}\"\ndelivery = \"{delivery}\"\n",
            store.url(),
            moto.setup.roles[role],
            moto.url
        )
    };
    let config = format!(
        "[server]\nurl_signing_keys_file = \"{}\"\n\n[identity.credentials]\naccess_key_id = \"{}\"\nsecret_access_key_file = \"{}\"\n\n[s3_api]\nanonymous = true\n\n[[clients]]\nname = \"platform\"\ntoken_sha256 = [\"{digest}\"]\nintegrations = [\"*\"]\n\n{}\n{}",
        keys.display(),
        moto.setup.access_key_id,
        secret.display(),
        integration("images", "media", "reader", "ext-reader-1", "redirect"),
        integration("stream", "videos", "streamer", "ext-streamer-1", "proxy"),
    );
    let replicas = [Gateway::start(&config).await, Gateway::start(&config).await];
    let nginx = Nginx::start(&[replicas[0].addr, replicas[1].addr]).await;
    let http = client();
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{}{path}", nginx.url);
        async move {
            let response = http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.bytes().await.unwrap().to_vec())
        }
    };
    let mut served = 0;
    for round in 0..6 {
        let i = round % 4;
        // A store URL presigned by either replica.
        let (status, body) = get(format!("/v1/presign?locator=s3://media/k{i}.bin")).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let url: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let (status, bytes) = fetch(url["url"].as_str().unwrap()).await;
        assert_eq!((status, bytes), (200, format!("media {i}").into_bytes()));
        // A gateway-signed URL made by one replica, fetched (without the
        // token) through the balancer, so often from the other.
        let (status, body) = get(format!("/v1/presign?locator=s3://videos/k{i}.bin")).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let signed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let signed = signed["url"].as_str().unwrap();
        let path = &signed[signed.find("/v1/object").unwrap()..];
        for _ in 0..2 {
            let (status, bytes) = fetch(&format!("{}{path}", nginx.url)).await;
            assert_eq!((status, bytes), (200, format!("videos {i}").into_bytes()));
        }
        // Proxied with the token, a listing, and the S3 front.
        let (status, bytes) = get(format!("/v1/object?locator=s3://videos/k{i}.bin")).await;
        assert_eq!((status, bytes), (200, format!("videos {i}").into_bytes()));
        let (status, body) = get("/v1/list?locator=s3://media/".into()).await;
        assert_eq!(status, 200);
        let listing: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(listing["objects"].as_array().unwrap().len(), 4);
        let (status, bytes) = fetch(&format!("{}/videos/k{i}.bin", nginx.url)).await;
        assert_eq!((status, bytes), (200, format!("videos {i}").into_bytes()));
        served += 7;
    }
    // Both replicas took part, and each assumed each role exactly once.
    for replica in &replicas {
        let page = replica.app.metrics().render();
        assert!(
            page.contains("route=\"presign\",status=\"200\""),
            "a replica served nothing"
        );
        for integration in ["images", "stream"] {
            assert!(
                page.contains(&format!(
                    "s3gate_sts_calls_total{{integration=\"{integration}\"}} 1\n"
                )),
                "{page}"
            );
        }
    }
    let mut sessions: HashMap<String, usize> = HashMap::new();
    for session in moto.assumed_roles().await {
        *sessions.entry(session.role_arn).or_default() += 1;
    }
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert!(
        sessions.values().all(|n| *n == replicas.len()),
        "{sessions:?} for {served} requests"
    );
}
