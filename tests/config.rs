//! Configuration validation: every broken config names the integration and field.
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

use s3gate::config::Config;
use s3gate::front::App;

const CREDS: &str = "[integrations.credentials]\naccess_key_id = \"AKID\"\nsecret_access_key_env = \"S3GATE_TEST_SECRET\"\n";

fn integration(body: &str) -> String {
    format!("[[integrations]]\n{body}\n{CREDS}")
}

fn error_of(text: &str) -> String {
    support::init();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let built = Config::parse(text).and_then(|c| runtime.block_on(App::new(c)).map(|_| ()));
    match built {
        Ok(()) => panic!("config should be refused:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn assert_refused(text: &str, expected: &[&str]) {
    let message = error_of(text);
    for part in expected {
        assert!(
            message.contains(part),
            "error {message:?} should mention {part:?}"
        );
    }
}

#[test]
fn example_config_is_valid() {
    support::init();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"))
        .unwrap();
    let config = Config::parse(&text).unwrap_or_else(|e| panic!("config.example.toml: {e}"));
    assert_eq!(config.integrations.len(), 2);
    assert_eq!(config.clients.len(), 2);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(App::new(config))
        .unwrap_or_else(|e| panic!("config.example.toml: {e}"));
}

#[test]
fn unknown_keys_are_rejected() {
    assert_refused(
        "[server]\nlisten = \"127.0.0.1:1\"\nlisten_port = 3\n",
        &["listen_port"],
    );
    assert_refused(
        &integration("name = \"a\"\nbucket = \"pics\"\nbukets = []"),
        &["bukets"],
    );
}

#[test]
fn duplicate_names_and_scopes() {
    let a = integration("name = \"a\"\nbucket = \"pics\"");
    assert_refused(
        &format!("{a}\n{a}"),
        &["integration \"a\"", "`name`", "another integration"],
    );
    let b = integration("name = \"b\"\nbucket = \"pics\"");
    assert_refused(
        &format!("{a}\n{b}"),
        &["integration \"b\"", "`bucket`", "\"pics\"", "\"a\""],
    );
    let d1 = integration("name = \"d1\"\ndefault = true\nbuckets = [\"x-1\"]");
    let d2 = integration("name = \"d2\"\ndefault = true\nbuckets = [\"x-2\"]");
    assert_refused(
        &format!("{d1}\n{d2}"),
        &["integration \"d2\"", "`default`", "only one default"],
    );
}

#[test]
fn invalid_fields_name_the_field() {
    let cases: &[(&str, &[&str])] = &[
        ("name = \"a\"\nbucket = \"Bad_Name\"", &["integration \"a\"", "`buckets`", "Bad_Name"]),
        ("name = \"a\"\nbuckets = [\"ok-bucket\", \"x\"]", &["`buckets`", "\"x\""]),
        ("name = \"a\"", &["`buckets`", "required"]),
        ("name = \"a\"\nbucket = \"pics\"\nendpoint_url = \"ftp://store:21\"", &["`endpoint_url`", "http"]),
        ("name = \"a\"\nbucket = \"pics\"\nendpoint_url = \"http://store:9000/path\"", &["`endpoint_url`", "path"]),
        ("name = \"a\"\nbucket = \"pics\"\npresign_ttl_s = 604801", &["`presign_ttl_s`", "7 days"]),
        ("name = \"a\"\nbucket = \"pics\"\npresign_ttl_s = 0", &["`presign_ttl_s`"]),
        ("name = \"a\"\nbucket = \"pics\"\nregion = \"US East\"", &["`region`"]),
        ("name = \"a\"\nbucket = \"pics\"\ndelivery = \"teleport\"", &["delivery", "teleport"]),
        ("name = \"a\"\nbucket = \"pics\"\nrole_arn = \"arn:aws:iam::123:role/x\"", &["`role_arn`"]),
        ("name = \"a\"\nbucket = \"pics\"\nexternal_id = \"abc\"", &["`external_id`", "role_arn"]),
        ("name = \"a\"\nbucket = \"pics\"\naccess_point_arn = \"arn:aws:s3:eu-west-1:123456789012:accesspoint/imgs\"", &["`access_point_arn`", "region"]),
        ("name = \"a\"\ndefault = true\nbucket = \"pics\"", &["`bucket`", "default"]),
        ("name = \"a\"\nbucket = \"pics\"\npublic_endpoint_url = \"https://cdn.example.com\"", &["`public_endpoint_url`", "endpoint_url"]),
        ("name = \"a\"\nbucket = \"pics\"\nprefixes = [\"\"]", &["`prefixes`"]),
        ("name = \"a\"\nbucket = \"pics\"\nendpoint_url = \"http://10.0.0.5:9000\"\nforce_path_style = false", &["`force_path_style`", "DNS name"]),
        ("name = \"a\"\nbucket = \"pics\"\nendpoint_url = \"http://[::1]:9000\"\nforce_path_style = false", &["`force_path_style`"]),
        ("name = \"a\"\nbucket = \"pics\"\nrole_arn = \"arn:aws:iam::123456789012:role/r\"\nsession_duration_s = 31", &["integration \"a\"", "`session_duration_s`", "expiry_margin_s = 30"]),
    ];
    for (body, expected) in cases {
        assert_refused(&integration(body), expected);
    }
}

#[test]
fn missing_credentials_are_refused() {
    assert_refused(
        "[[integrations]]\nname = \"a\"\nbucket = \"pics\"\n",
        &["integration \"a\"", "`credentials`", "missing"],
    );
    let unset = "[[integrations]]\nname = \"a\"\nbucket = \"pics\"\n[integrations.credentials]\naccess_key_id = \"AKID\"\nsecret_access_key_env = \"S3GATE_UNSET_VARIABLE\"\n";
    assert_refused(
        unset,
        &["integration \"a\"", "S3GATE_UNSET_VARIABLE", "not set"],
    );
    let no_file = "[[integrations]]\nname = \"a\"\nbucket = \"pics\"\n[integrations.credentials]\naccess_key_id = \"AKID\"\nsecret_access_key_file = \"/nonexistent/secret\"\n";
    assert_refused(no_file, &["integration \"a\"", "/nonexistent/secret"]);
    let two = "[[integrations]]\nname = \"a\"\nbucket = \"pics\"\n[integrations.credentials]\naccess_key_id = \"AKID\"\nsecret_access_key = \"x\"\nsecret_access_key_env = \"S3GATE_TEST_SECRET\"\n";
    assert_refused(two, &["only one"]);
}

#[test]
fn errors_never_echo_inline_secrets() {
    let with_bucket = |bucket: &str| {
        format!("[[integrations]]\nname = \"a\"\nbucket = \"{bucket}\"\n[integrations.credentials]\naccess_key_id = \"AKID\"\nsecret_access_key = \"TOP-SECRET-VALUE\"\n")
    };
    let message = error_of(&with_bucket("Bad_Name"));
    assert!(!message.contains("TOP-SECRET-VALUE"), "{message}");
    support::init();
    let config = Config::parse(&with_bucket("pics")).unwrap();
    assert!(!format!("{config:?}").contains("TOP-SECRET-VALUE"));
}

#[test]
fn server_limits_are_checked() {
    assert_refused("[server]\nmax_batch = 0\n", &["[server]", "`max_batch`"]);
    assert_refused("[server]\nlisten = \"not an address\"\n", &["listen"]);
}

#[test]
fn connection_limits_are_checked_and_default_safely() {
    for field in [
        "max_connections",
        "handshake_timeout_s",
        "keepalive_timeout_s",
        "http2_keepalive_interval_s",
        "http2_keepalive_timeout_s",
        "http2_idle_timeout_s",
        "send_timeout_s",
    ] {
        let field_named = format!("`{field}`");
        assert_refused(
            &format!("[server]\n{field} = 0\n"),
            &["[server]", &field_named],
        );
    }
    assert_refused(
        "[server]\nmax_connections = 2000000\n",
        &["`max_connections`", "1 to 1000000"],
    );
    assert_refused(
        "[server]\nsend_timeout_s = 100000\n",
        &["`send_timeout_s`", "1 to 86400 seconds"],
    );
    support::init();
    let server = Config::parse("").unwrap().server;
    assert_eq!(server.max_connections, 10_000);
    assert_eq!(server.handshake_timeout_s, 10);
    assert_eq!(server.keepalive_timeout_s, 75);
    assert_eq!(server.http2_keepalive_interval_s, 30);
    assert_eq!(server.http2_keepalive_timeout_s, 20);
    assert_eq!(server.http2_idle_timeout_s, 120);
    assert!(!server.h2c);
    assert_eq!(server.send_timeout_s, 60);
}

#[test]
fn syntax_errors_give_the_place_never_the_line() {
    let text = "[server]\nlisten = \"127.0.0.1:1\"\n\n[[integrations]]\nname = \"a\"\n[integrations.credentials]\naccess_key_id = \"AKID\"\nsecret_access_key = \"hunter2-secret\" oops\n";
    let error = Config::parse(text).unwrap_err().to_string();
    assert!(
        error.starts_with(
            "<config>: line 8, column 38, in [integrations.credentials], `secret_access_key`: "
        ),
        "{error}"
    );
    assert!(!error.contains("hunter2"), "the secret was echoed: {error}");
    assert!(!error.contains('\n'), "{error}");
}
