//! Property round trips of object keys, end to end against the in-memory
//! store (which holds keys a file system cannot, `a//b` and `dir/`): any key
//! S3 and s3gate take, presigned through the JSON API, is fetched byte for
//! byte from the store, and the same key read through the S3 front with a
//! client's SigV4 signature gives the same bytes.
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

use std::time::SystemTime;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use s3gate::demo::store::{EmbeddedStore, SimpleAuth};
use sha2::{Digest, Sha256};
use support::config::ConfigBuilder;
use support::memstore::MemStore;
use support::*;

/// Cases per property: enough variety, still a few seconds.
const CASES: u32 = 64;
/// Longest key the properties make, in bytes.
const MAX_KEY: usize = 200;
const TOKEN: &str = "s3gt_test-token-of-roundtrip";
const CLIENT_KEY_ID: &str = "S3GATEROUNDTRIP00001";

/// The store, and a gateway in front of it whose one client has a bearer
/// token and S3 keys (the test secret).
struct Rig {
    objects: MemStore,
    _store: EmbeddedStore,
    gateway: Gateway,
}

impl Rig {
    async fn start() -> Self {
        init();
        let objects = MemStore::default();
        let auth = SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY);
        let store =
            EmbeddedStore::start_backend(loopback().await, objects.clone(), auth, None).unwrap();
        let mut client = toml::Table::new();
        client.insert("name".into(), "roundtrip".into());
        let digest = hex::encode(Sha256::digest(TOKEN.as_bytes()));
        client.insert("token_sha256".into(), vec![digest].into());
        client.insert("integrations".into(), vec!["store"].into());
        client.insert("access_key_id".into(), CLIENT_KEY_ID.into());
        client.insert("secret_access_key_env".into(), SECRET_ENV.into());
        let config = ConfigBuilder::store(&store.url(), &["media"])
            .client(client.into())
            .build();
        let gateway = Gateway::start(&config).await;
        Self {
            objects,
            _store: store,
            gateway,
        }
    }

    /// Stores bytes that tell `key` apart (and hold every byte value).
    fn put(&self, key: &str) -> Vec<u8> {
        let mut bytes = format!("object {key:?}\n").into_bytes();
        bytes.extend(0..=255u8);
        self.objects.put("media", key, &bytes);
        bytes
    }

    /// `GET /v1/presign` for `s3://media/KEY` → (status, JSON).
    async fn presign(&self, key: &str) -> (u16, serde_json::Value) {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("locator", &format!("s3://media/{key}"))
            .finish();
        let response = client()
            .get(self.gateway.url(&format!("/v1/presign?{query}")))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// A header-signed S3 GET of `/media/KEY` → (status, body).
    async fn s3_get(&self, key: &str) -> (u16, Vec<u8>) {
        let creds = s3gate::sigv4::Credentials::new(CLIENT_KEY_ID, SECRET_KEY, None, None);
        let host = self.gateway.addr.to_string();
        let path = s3gate::sigv4::encode_path(&format!("/media/{key}"));
        let signed = s3gate::sigv4::sign_headers(
            &creds,
            &s3gate::sigv4::SigningRequest {
                method: "GET",
                host: &host,
                path: &path,
                query: &[],
                region: "us-east-1",
                service: "s3",
                time: SystemTime::now(),
            },
        );
        let response = client()
            .get(self.gateway.url(&path))
            .header("authorization", signed.authorization)
            .header("x-amz-date", signed.amz_date)
            .header("x-amz-content-sha256", signed.content_sha256)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.bytes().await.unwrap().to_vec(),
        )
    }

    /// Presigns `key` and fetches it from the store.
    async fn presigned_round_trip(&self, key: &str) -> Result<(), String> {
        let bytes = self.put(key);
        let (status, body) = self.presign(key).await;
        if status != 200 {
            return Err(format!("{key:?}: presign answered {status}: {body}"));
        }
        let url = body["url"].as_str().unwrap_or_default();
        let (status, got) = fetch(url).await;
        if (status, &got) != (200, &bytes) {
            let got = String::from_utf8_lossy(&got);
            return Err(format!("{key:?}: {url} answered {status}: {got}"));
        }
        Ok(())
    }

    /// Reads `key` through the S3 front.
    async fn s3_front_round_trip(&self, key: &str) -> Result<(), String> {
        let bytes = self.put(key);
        let (status, got) = self.s3_get(key).await;
        if (status, &got) != (200, &bytes) {
            let got = String::from_utf8_lossy(&got);
            return Err(format!("{key:?}: the S3 front answered {status}: {got}"));
        }
        Ok(())
    }
}

/// Characters keys are made of: S3's awkward ones often, any other now and then.
fn key_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range('a', 'z'),
        3 => proptest::sample::select(" +%?#&=~!*'(),;:@$[]\"<>\\^`{|}.-_".chars().collect::<Vec<_>>()),
        1 => proptest::sample::select(vec!['\u{e9}', '\u{65e5}', '\u{1f600}', '\u{feff}', '\u{7f}', '\t']),
        1 => any::<char>(),
    ]
}

/// A key S3 and s3gate take: slash-separated segments, any of them empty
/// (`a//b`, `/lead`, `trail/`), at most [`MAX_KEY`] bytes, no `.` or `..`
/// segment (which s3gate refuses to sign).
fn key() -> impl Strategy<Value = String> {
    let segment = proptest::collection::vec(key_char(), 0..=12)
        .prop_map(|chars| chars.into_iter().collect::<String>());
    proptest::collection::vec(segment, 1..=6)
        .prop_map(|segments| truncate(segments.join("/"), MAX_KEY))
        .prop_filter("a key s3gate signs", |k| {
            !k.is_empty() && s3gate::locator::validate_key(k).is_ok()
        })
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncate(mut text: String, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// The two ways a key travels.
#[derive(Debug, Clone, Copy)]
enum Way {
    /// Presigned through the JSON API, fetched from the store.
    Presigned,
    /// Read through the S3 front.
    S3Front,
}

impl Rig {
    async fn round_trip(&self, way: Way, key: &str) -> Result<(), String> {
        match way {
            Way::Presigned => self.presigned_round_trip(key).await,
            Way::S3Front => self.s3_front_round_trip(key).await,
        }
    }
}

/// Checks [`CASES`] keys the `way` against one rig; proptest shrinks a
/// failing key to a small one.
fn for_any_key(way: Way) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rig = runtime.block_on(Rig::start());
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    };
    let result = TestRunner::new(config).run(&key(), |key| {
        runtime
            .block_on(rig.round_trip(way, &key))
            .map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{way:?}: {e}");
    }
}

#[test]
fn any_key_presigned_through_the_json_api_is_fetched_byte_exact() {
    for_any_key(Way::Presigned);
}

#[test]
fn any_key_read_through_the_s3_front_gives_the_same_bytes() {
    for_any_key(Way::S3Front);
}

/// Keys that are easy to get wrong, every time (not left to chance).
#[tokio::test]
async fn awkward_keys_round_trip_both_ways() {
    let rig = Rig::start().await;
    for key in [
        "a//b",
        "trailing/",
        "/leading",
        "//",
        "sp ace",
        "100%",
        "%2F",
        "a+b",
        "q?x=1",
        "h#frag",
        "caf\u{e9}/\u{65e5}\u{672c}/\u{1f600}",
        "..x/y..",
    ] {
        for way in [Way::Presigned, Way::S3Front] {
            rig.round_trip(way, key).await.unwrap();
        }
    }
    for way in [Way::Presigned, Way::S3Front] {
        rig.round_trip(way, &"k".repeat(MAX_KEY)).await.unwrap();
    }
}
