//! AssumeRole with an external ID against a real STS (moto): session
//! credentials cached per role, refreshed ahead of expiry, coalesced on a cold
//! cache, served through an STS outage while valid, and never used expired;
//! gateway-signed URLs of a proxy integration, which name no session, keep
//! serving across session refreshes.
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

use std::time::{Duration, Instant};

use support::moto::{session_store, Moto, Relay};
use support::*;

const EXTERNAL_ID: &str = "s3gate-ext-7f3a9c";

/// moto, a relay in front of it, a session-token-enforcing store and a folder.
struct World {
    moto: Moto,
    relay: Relay,
    store: s3gate::demo::store::EmbeddedStore,
    dir: tempfile::TempDir,
}

impl World {
    async fn start() -> Self {
        init();
        let moto = Moto::start(&[("reader", EXTERNAL_ID)]).await;
        let relay = Relay::start(moto.url.trim_start_matches("http://").parse().unwrap()).await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("store/media")).unwrap();
        std::fs::write(dir.path().join("store/media/cat.jpg"), b"meow").unwrap();
        let store = session_store(&moto.url, &dir.path().join("store")).await;
        Self {
            moto,
            relay,
            store,
            dir,
        }
    }

    fn role_arn(&self) -> &str {
        &self.moto.setup.roles["reader"]
    }

    /// A config whose identity is `(key, secret)` and whose integrations are `integrations`.
    fn config(&self, identity: (&str, &str), sts: &str, integrations: &str) -> String {
        let secret_file = self.dir.path().join(format!("identity-{}", identity.0));
        std::fs::write(&secret_file, identity.1).unwrap();
        format!(
            "[identity.credentials]\naccess_key_id = \"{}\"\nsecret_access_key_file = \"{}\"\n\n[sts]\n{sts}\n\n{integrations}",
            identity.0,
            secret_file.display()
        )
    }

    /// One default integration for `media` assuming the reader role.
    fn integration(&self, name: &str, external_id: &str, extra: &str) -> String {
        self.role_integration(
            name,
            "default = true\nbuckets = [\"media\"]",
            external_id,
            extra,
        )
    }

    /// An integration with `scope` (its bucket lines) assuming the reader role.
    fn role_integration(&self, name: &str, scope: &str, external_id: &str, extra: &str) -> String {
        format!(
            "[[integrations]]\nname = \"{name}\"\n{scope}\nendpoint_url = \"{}\"\nrole_arn = \"{}\"\nexternal_id = \"{external_id}\"\nsts_endpoint = \"{}\"\n{extra}\n",
            self.store.url(),
            self.role_arn(),
            self.relay.url()
        )
    }

    fn gateway_identity(&self) -> (&str, &str) {
        (
            &self.moto.setup.access_key_id,
            &self.moto.setup.secret_access_key,
        )
    }
}

fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
}

#[tokio::test]
async fn presigns_with_the_role_session_and_its_token() {
    let world = World::start().await;
    let config = world.config(
        world.gateway_identity(),
        "",
        &world.integration("acme", EXTERNAL_ID, ""),
    );
    let gateway = Gateway::start(&config).await;
    let (status, body) = presign(&gateway, "s3://media/cat.jpg", &[]).await;
    assert_eq!(status, 200, "{body}");
    let url = body["url"].as_str().unwrap();

    let sessions = world.moto.assumed_roles().await;
    assert_eq!(sessions.len(), 1);
    let session = &sessions[0];
    assert_eq!(session.external_id.as_deref(), Some(EXTERNAL_ID));
    assert_eq!(session.role_arn, world.role_arn());
    let credential = query_param(url, "X-Amz-Credential").unwrap();
    assert!(
        credential.starts_with(&format!("{}%2F", session.access_key_id)),
        "{credential}"
    );
    assert!(query_param(url, "X-Amz-Security-Token").is_some());
    assert_eq!(fetch(url).await, (200, b"meow".to_vec()));

    // The store enforces the token: without it the same URL is refused.
    let token = query_param(url, "X-Amz-Security-Token").unwrap();
    let stripped = url.replace(&format!("&X-Amz-Security-Token={token}"), "");
    assert_ne!(stripped, url);
    assert_eq!(fetch(&stripped).await.0, 403);
}

#[tokio::test]
async fn a_refused_role_is_a_clear_502_and_never_reaches_the_store() {
    let world = World::start().await;
    let wrong_id = world.integration("wrong-id", "not-the-external-id", "");
    let config = world.config(world.gateway_identity(), "", &wrong_id);
    let gateway = Gateway::start(&config).await;
    let (status, body) = presign(&gateway, "s3://media/cat.jpg", &[]).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "UpstreamAuthFailed");
    let message = body["error"]["message"].as_str().unwrap();
    for part in [
        "\"wrong-id\"",
        "AccessDenied",
        "trust policy",
        "external_id",
    ] {
        assert!(message.contains(part), "{message:?} should mention {part}");
    }
    assert!(!message.contains(&world.moto.setup.secret_access_key));
    // STS's own message names principals and roles: it goes to the log only.
    assert!(!message.contains("arn:aws:"), "{message}");

    // An identity the trust policy does not name.
    let stranger = (
        world.moto.setup.stranger_access_key_id.as_str(),
        world.moto.setup.stranger_secret_access_key.as_str(),
    );
    let config = world.config(
        stranger,
        "",
        &world.integration("stranger", EXTERNAL_ID, ""),
    );
    let gateway = Gateway::start(&config).await;
    let (status, body) = presign(&gateway, "s3://media/cat.jpg", &[]).await;
    assert_eq!(status, 502, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("AccessDenied"));
    assert!(!body.to_string().contains(stranger.1));

    assert!(world.moto.assumed_roles().await.is_empty());
    assert_eq!(world.store.requests(), 0);
}

#[tokio::test]
async fn concurrent_cold_requests_make_one_assume_role_call() {
    let world = World::start().await;
    // Two integrations sharing the role and external ID share one session.
    let shared = format!(
        "{}\n{}",
        world.integration("first", EXTERNAL_ID, ""),
        world.role_integration("second", "bucket = \"media-two\"", EXTERNAL_ID, "")
    );
    let config = world.config(world.gateway_identity(), "", &shared);
    let gateway = std::sync::Arc::new(Gateway::start(&config).await);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let gateway = gateway.clone();
        let bucket = if i % 2 == 0 { "media" } else { "media-two" };
        tasks.push(tokio::spawn(async move {
            presign(&gateway, &format!("s3://{bucket}/cat.jpg"), &[]).await
        }));
    }
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        world.moto.assumed_roles().await.len(),
        1,
        "exactly one AssumeRole"
    );
    let metrics = metrics(&gateway).await;
    // Labelled by the first integration using the role, never by its ARN.
    assert!(
        metrics.contains("s3gate_sts_calls_total{integration=\"first\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains(world.role_arn()), "{metrics}");
    assert!(
        metrics.contains("s3gate_credential_expiry_seconds{integration=\"first\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn short_sessions_are_refreshed_before_they_expire() {
    // 8 s sessions, refreshed with half their life left, never used in their last second.
    serve_across_session_boundaries(
        "refresh_margin_ratio = 0.5\nexpiry_margin_s = 1\nretry_base_ms = 50\nretry_max_ms = 200",
    )
    .await;
}

/// Requests presigned URLs through 8 s role sessions (with `sts` tuning)
/// across a session boundary: every request succeeds, each session is
/// fetched once, and only the very first request waits for STS. The timing
/// rules themselves are unit tests of the session cache (src/credentials.rs).
async fn serve_across_session_boundaries(sts: &str) {
    let world = World::start().await;
    let config = world.config(
        world.gateway_identity(),
        sts,
        &world.integration("acme", EXTERNAL_ID, "session_duration_s = 8"),
    );
    let gateway = Gateway::start(&config).await;
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut served = 0;
    let mut keys = std::collections::HashSet::new();
    // Keep requesting across a session boundary; every request must succeed.
    while keys.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "sessions were not refreshed: {} keys in {served} requests",
            keys.len()
        );
        let (status, body) = presign(&gateway, "s3://media/cat.jpg", &[("expires", "60")]).await;
        assert_eq!(status, 200, "request {served} failed: {body}");
        let url = body["url"].as_str().unwrap();
        assert_eq!(
            fetch(url).await,
            (200, b"meow".to_vec()),
            "request {served}"
        );
        let expires: u64 = query_param(url, "X-Amz-Expires").unwrap().parse().unwrap();
        assert!(
            (1..=7).contains(&expires),
            "capped at the session's usable life, got {expires}"
        );
        keys.insert(
            query_param(url, "X-Amz-Credential")
                .unwrap()
                .split("%2F")
                .next()
                .unwrap()
                .to_owned(),
        );
        served += 1;
        tokio::time::sleep(Duration::from_millis(100)).await; // pacing of the request stream
    }
    // Refreshed ahead: about one session per 4 s, not one per request.
    let sessions = world.moto.assumed_roles().await.len();
    assert!(
        (2..=3).contains(&sessions),
        "{sessions} sessions for {served} requests"
    );
    // And in the background: only the very first request waited for STS.
    let metrics = metrics(&gateway).await;
    assert!(
        metrics.contains("s3gate_credential_cache_misses_total{integration=\"acme\"} 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn serves_through_an_sts_outage_until_expiry_then_recovers() {
    let world = World::start().await;
    let sts =
        "refresh_margin_ratio = 0.5\nexpiry_margin_s = 1\nretry_base_ms = 50\nretry_max_ms = 200";
    let config = world.config(
        world.gateway_identity(),
        sts,
        &world.integration("acme", EXTERNAL_ID, "session_duration_s = 6"),
    );
    let gateway = Gateway::start(&config).await;
    let (status, body) = presign(&gateway, "s3://media/cat.jpg", &[]).await;
    assert_eq!(status, 200, "{body}");
    let first_expiry = body["expires_at"].as_str().unwrap().to_owned();

    world.relay.set_up(false);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut served_during_outage = 0;
    let failure = loop {
        assert!(Instant::now() < deadline, "credentials never expired");
        let (status, body) = presign(&gateway, "s3://media/cat.jpg", &[]).await;
        match status {
            200 => {
                // Still the first session: its URLs never outlive it.
                assert!(
                    body["expires_at"].as_str().unwrap() <= first_expiry.as_str(),
                    "{body}"
                );
                assert_eq!(fetch(body["url"].as_str().unwrap()).await.0, 200);
                served_during_outage += 1;
            }
            _ => break (status, body),
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // pacing
    };
    assert!(
        served_during_outage > 0,
        "valid credentials must keep serving while STS is down"
    );
    let (status, body) = failure;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "CredentialsUnavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"acme\"") && message.contains("DispatchFailure"),
        "{message}"
    );

    world.relay.set_up(true);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "did not recover after STS came back"
        );
        let (status, body) = presign(&gateway, "s3://media/cat.jpg", &[]).await;
        if status == 200 {
            assert_eq!(
                fetch(body["url"].as_str().unwrap()).await,
                (200, b"meow".to_vec())
            );
            break;
        }
        assert_eq!(status, 503, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await; // pacing
    }
}

#[tokio::test]
async fn presign_lifetime_is_capped_at_the_session() {
    let world = World::start().await;
    let config = world.config(
        world.gateway_identity(),
        "expiry_margin_s = 30",
        &world.integration("acme", EXTERNAL_ID, "session_duration_s = 120"),
    );
    let gateway = Gateway::start(&config).await;
    let before = std::time::SystemTime::now();
    let (status, body) = presign(&gateway, "s3://media/cat.jpg", &[("expires", "3600")]).await;
    assert_eq!(status, 200, "{body}");
    let url = body["url"].as_str().unwrap();
    let expires: u64 = query_param(url, "X-Amz-Expires").unwrap().parse().unwrap();
    assert!(
        (85..=90).contains(&expires),
        "120 s session - 30 s margin, got {expires}"
    );
    let expires_at = body["expires_at"].as_str().unwrap();
    let bound = s3gate::sigv4::rfc3339(before + Duration::from_secs(92));
    assert!(expires_at <= bound.as_str(), "{expires_at} > {bound}");
    assert_eq!(fetch(url).await, (200, b"meow".to_vec()));
}

/// `GET url` with `Authorization: Bearer token` → (status, body).
async fn get_with_token(url: &str, token: &str) -> (u16, String) {
    let response = client().get(url).bearer_auth(token).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// `GET /v1/presign?locator=…&expires=…` as the client holding `token` → (status, JSON).
async fn presign_as(
    gateway: &Gateway,
    token: &str,
    locator: &str,
    expires: u64,
) -> (u16, serde_json::Value) {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("locator", locator)
        .append_pair("expires", &expires.to_string())
        .finish();
    let (status, body) = get_with_token(&gateway.url(&format!("/v1/presign?{query}")), token).await;
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, json)
}

/// The error code of a JSON error body.
fn error_code(body: &[u8]) -> String {
    let json: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)));
    json["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `s3gate_sts_calls_total` of `integration` on a metrics page.
fn sts_calls(metrics: &str, integration: &str) -> u64 {
    let series = format!("s3gate_sts_calls_total{{integration=\"{integration}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series:?} in\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn gateway_signed_urls_outlive_role_sessions_and_are_stable_in_a_window() {
    const WINDOW_S: u64 = 5;
    let world = World::start().await;
    let (token, token_line) = s3gate::auth::new_token().unwrap();
    // 8 s sessions refreshed with half their life left; 5 s signing windows.
    let sts =
        "refresh_margin_ratio = 0.5\nexpiry_margin_s = 1\nretry_base_ms = 50\nretry_max_ms = 200";
    let integration = world.integration(
        "acme",
        EXTERNAL_ID,
        &format!("session_duration_s = 8\ndelivery = \"proxy\"\npresign_window_s = {WINDOW_S}"),
    );
    let clients = format!(
        "[[clients]]\nname = \"backend\"\n{token_line}\nintegrations = [\"acme\"]\nmetrics = true\n"
    );
    let config = world.config(
        world.gateway_identity(),
        sts,
        &format!("{integration}\n{clients}"),
    );
    let gateway = Gateway::start(&config).await;
    let locator = "s3://media/cat.jpg";

    // Presigning needs the token.
    let (status, body) = presign(&gateway, locator, &[]).await;
    assert_eq!(status, 401, "{body}");

    // Two presigns in one signing window: the same bytes, a gateway URL.
    let mut attempts = 0;
    let url = loop {
        attempts += 1;
        assert!(
            attempts <= 5,
            "never two presigns in one {WINDOW_S} s window"
        );
        let before = unix_now();
        let (status, first) = presign_as(&gateway, &token, locator, 60).await;
        assert_eq!(status, 200, "{first}");
        let (status, second) = presign_as(&gateway, &token, locator, 60).await;
        assert_eq!(status, 200, "{second}");
        let after = unix_now();
        if before / WINDOW_S != after / WINDOW_S {
            continue; // the calls straddled a window boundary
        }
        let (a, b) = (
            first["url"].as_str().unwrap(),
            second["url"].as_str().unwrap(),
        );
        assert_eq!(a, b, "two presigns in one window");
        assert_eq!(first, second, "two presigns in one window");
        let window_end = before - before % WINDOW_S + WINDOW_S;
        let expires = (window_end + 60).to_string();
        assert_eq!(query_param(a, "expires"), Some(expires.as_str()), "{a}");
        break a.to_owned();
    };
    assert!(
        url.starts_with(&gateway.url("/v1/object?locator=s3%3A%2F%2Fmedia%2Fcat.jpg&")),
        "{url}"
    );
    assert_eq!(query_param(&url, "client"), Some("backend"), "{url}");
    assert!(query_param(&url, "kid").is_some(), "{url}");
    let sig = query_param(&url, "sig").expect("a sig").to_owned();
    assert!(!url.contains(&token), "the URL holds the token");
    assert!(
        query_param(&url, "X-Amz-Credential").is_none() && !url.contains("Security-Token"),
        "a gateway URL names no store credential: {url}"
    );

    // The same URL, without a token, across role sessions: every fetch is
    // the object, while the gateway assumes the role again behind it.
    assert!(
        world.moto.assumed_roles().await.is_empty(),
        "signing a gateway URL needs no role session"
    );
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut fetches = 0;
    let mut after_rotation = 0;
    while after_rotation < 3 {
        assert!(
            Instant::now() < deadline,
            "no new role session in 40 s ({fetches} fetches, {} sessions)",
            world.moto.assumed_roles().await.len()
        );
        assert_eq!(
            fetch(&url).await,
            (200, b"meow".to_vec()),
            "fetch {fetches}"
        );
        fetches += 1;
        if world.moto.assumed_roles().await.len() >= 2 {
            after_rotation += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // pacing of the request stream
    }
    let sessions = world.moto.assumed_roles().await.len() as u64;
    assert!(sessions >= 2, "{sessions} sessions");
    let (status, page) = get_with_token(&gateway.url("/metrics"), &token).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        sts_calls(&page, "acme"),
        sessions,
        "the gateway's count of AssumeRole calls and moto's"
    );
    assert!(
        page.contains("s3gate_credential_cache_misses_total{integration=\"acme\"} 1\n"),
        "only the first fetch waited for STS:\n{page}"
    );

    // A tampered signature is refused.
    let last = sig.chars().last().unwrap();
    let flipped = if last == '0' { '1' } else { '0' };
    let tampered = url.replace(
        &format!("sig={sig}"),
        &format!("sig={}{flipped}", &sig[..sig.len() - 1]),
    );
    assert_ne!(tampered, url);
    let (status, body) = fetch(&tampered).await;
    assert_eq!(
        (status, error_code(&body)),
        (403, "SignatureDoesNotMatch".to_owned())
    );

    // A URL presigned for 1 s expires with its window: 200 until then, then
    // 403 RequestExpired.
    let (status, short) = presign_as(&gateway, &token, locator, 1).await;
    assert_eq!(status, 200, "{short}");
    let short = short["url"].as_str().unwrap().to_owned();
    let expires_at: u64 = query_param(&short, "expires").unwrap().parse().unwrap();
    assert!(
        expires_at <= unix_now() + WINDOW_S + 1,
        "a 1 s URL lives at most a window longer: {short}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        assert!(Instant::now() < deadline, "the 1 s URL never expired");
        let checked_at = unix_now();
        let (status, body) = fetch(&short).await;
        if status != 200 {
            assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
            assert!(unix_now() >= expires_at, "refused before it expired");
            break body;
        }
        assert!(checked_at < expires_at, "served after it expired");
        assert_eq!(body, b"meow");
        tokio::time::sleep(Duration::from_millis(200)).await; // pacing of the poll
    };
    assert_eq!(error_code(&body), "RequestExpired");
}
