//! Real S3 clients against the gateway's S3 front: boto3 (through
//! `tests/clients/boto3_check.py`) and the AWS CLI, run as subprocesses from
//! the test venv, talking to an in-process gateway in front of the embedded
//! SigV4-verifying store. Everything stays on loopback: the clients are always
//! given the gateway's endpoint, and any AWS endpoint they could fall back to
//! is a closed loopback port.
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

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::*;

/// Longest a single client invocation may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(300);

/// A client command with an environment that can only reach loopback: dummy
/// keys, no config or credential files, no instance metadata, no proxies, and
/// a closed port as the fallback AWS endpoint.
fn client_command(program: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    for var in [
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_CA_BUNDLE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_S3_ADDRESSING_STYLE",
        "AWS_MAX_ATTEMPTS",
        "AWS_RETRY_MODE",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "PYTHONPATH",
        "PYTHONHOME",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_ACCESS_KEY_ID", "AKIDCLIENTDUMMY")
        .env("AWS_SECRET_ACCESS_KEY", "client-dummy-secret")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_PAGER", "")
        .env("NO_PROXY", "*")
        .env("no_proxy", "*")
        .env("PYTHONUTF8", "1")
        .env("PYTHONIOENCODING", "utf-8")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .kill_on_drop(true);
    cmd
}

/// Runs a client to completion (bounded), without blocking the runtime that
/// serves the gateway and the store.
async fn run(mut cmd: tokio::process::Command, what: &str) -> Output {
    let start = Instant::now();
    let output = tokio::time::timeout(CLIENT_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what}: no exit within {CLIENT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    eprintln!("{what}: {:?}", start.elapsed());
    output
}

/// Like [`run`], and the client must succeed.
async fn run_ok(cmd: tokio::process::Command, what: &str) -> Output {
    let output = run(cmd, what).await;
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Deterministic incompressible-looking bytes (xorshift), distinct per seed.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A gateway config: one default integration over `buckets` on `store`, in
/// `region`, with the S3 front open to unauthenticated clients.
fn config(store: &FsStore, buckets: &[&str], region: &str) -> String {
    let base = default_integration(&store.url(), buckets);
    let endpoint_line = format!("endpoint_url = \"{}\"", store.url());
    assert!(base.contains(&endpoint_line), "{base}");
    let base = base.replacen(
        &endpoint_line,
        &format!("{endpoint_line}\nregion = \"{region}\""),
        1,
    );
    format!("{base}\n[s3_api]\nanonymous = true\n")
}

/// Object keys S3 allows that clients encode in different ways; every one
/// fits a file system.
const AWKWARD_KEYS: &[&str] = &[
    "plain.txt",
    "with space.txt",
    "plus+sign.bin",
    "caf\u{e9}/\u{65e5}\u{672c}\u{8a9e}/\u{1f600} + more.txt",
    "percent%20literal.bin",
    "equals=and&ampersand",
    "question?mark",
    "hash#tag",
    "tilde~quote'bang!(paren)*star",
    "semi;colon,comma:at@dollar$",
];

/// The many-key tree the listings page through: `many/a-NNN.txt`,
/// `many/m-NN/k-NNN.bin` and `many/z-NNN.txt`, in S3 (UTF-8 byte) order.
fn many_keys() -> Vec<String> {
    let mut keys = Vec::new();
    keys.extend((0..300).map(|i| format!("many/a-{i:03}.txt")));
    for d in 0..20 {
        keys.extend((0..110).map(move |i| format!("many/m-{d:02}/k-{i:03}.bin")));
    }
    keys.extend((0..300).map(|i| format!("many/z-{i:03}.txt")));
    keys.sort();
    keys
}

/// Writes each key straight into the store's folder, with its own name as
/// content (so a listing's sizes are the keys' lengths).
fn seed_files(store: &FsStore, bucket: &str, keys: &[String]) {
    for key in keys {
        store.put(bucket, key, key.as_bytes());
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// Checks a paginated listing of objects written by [`seed_files`]: its
/// entries and their sizes, and that it took the pages it must.
fn check_pages(what: &str, got: &Value, keys: &[String], prefixes: &[String], page_size: usize) {
    assert_eq!(strings(&got["keys"]), keys, "{what}: keys");
    let sizes: Vec<usize> = keys.iter().map(String::len).collect();
    assert_eq!(got["sizes"], json!(sizes), "{what}: sizes");
    assert_eq!(
        strings(&got["prefixes"]),
        prefixes,
        "{what}: common prefixes"
    );
    let entries = keys.len() + prefixes.len();
    let pages = got["pages"].as_array().unwrap();
    assert_eq!(
        pages.len(),
        entries.div_ceil(page_size).max(1),
        "{what}: page count: {pages:?}"
    );
    for (i, page) in pages.iter().enumerate() {
        let last = i + 1 == pages.len();
        let n = page["keys"].as_u64().unwrap() + page["prefixes"].as_u64().unwrap();
        if !last {
            assert_eq!(n as usize, page_size, "{what}: page {i}: {page}");
        }
        assert_eq!(page["key_count"], json!(n), "{what}: page {i}: KeyCount");
        assert_eq!(
            page["truncated"],
            json!(!last),
            "{what}: page {i}: IsTruncated"
        );
    }
}

/// Runs `boto3_check.py MODE` against the gateway at `endpoint` with `plan`
/// (in `workdir`); it must succeed, and its JSON summary is returned.
async fn boto3_check(endpoint: &str, workdir: &Path, mode: &str, plan: &Value) -> Value {
    std::fs::write(workdir.join("plan.json"), plan.to_string()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/boto3_check.py");
    let mut cmd = client_command(&venv_bin("python"));
    cmd.arg(script).arg(mode).arg(endpoint).arg(workdir);
    let what = format!("boto3 {mode}");
    let output = run_ok(cmd, &what).await;
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{what} output: {e}: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// boto3: GetObject and HeadObject of awkward keys and an empty object;
/// ranged GetObject (`bytes=100-199`, a suffix, an unsatisfiable range);
/// response-header overrides; the ListObjectsV2 paginator over 2,800 keys with
/// and without a delimiter, from the root, with StartAfter, and V1 listing;
/// download_file of a 12 MiB object in parallel ranges (default and 1 MiB
/// parts) and download_fileobj; GetBucketLocation; HeadBucket; a missing key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn boto3_reads_ranges_listings_and_downloads() {
    let store = FsStore::start().await;
    let mut objects: Vec<(String, Vec<u8>)> = AWKWARD_KEYS
        .iter()
        .enumerate()
        .map(|(i, key)| (key.to_string(), pseudo_random(1000 + 37 * i, i as u64 + 1)))
        .collect();
    objects.push(("empty object".into(), Vec::new()));
    for (key, data) in &objects {
        store.put("media", key, data);
    }
    let big_key = "big/twelve mib \u{e9}.bin";
    let big = pseudo_random(12 * 1024 * 1024 + 123, 99);
    store.put("media", big_key, &big);
    let many = many_keys();
    seed_files(&store, "listing", &many);
    let root_objects = [
        "top level \u{e9}.txt",
        "top-2.txt",
        "dir b/x.txt",
        "caf\u{e9}/y.txt",
    ];
    seed_files(&store, "listing", &root_objects.map(String::from));

    let gateway = Gateway::start(&config(&store, &["media", "listing"], "eu-west-3")).await;
    let workdir = tempfile::tempdir().unwrap();
    let range_key = "with space.txt";
    let start_after = "many/m-05/k-050.bin";
    let (flat_page, delimited_page) = (500, 100);
    let plan = json!({
        "bucket": "media",
        "objects": objects.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        "range_key": range_key,
        "big_key": big_key,
        "fileobj_key": "caf\u{e9}/\u{65e5}\u{672c}\u{8a9e}/\u{1f600} + more.txt",
        "missing_key": "no such/key+\u{e9}",
        "listing": {
            "bucket": "listing",
            "prefix": "many/",
            "flat_page_size": flat_page,
            "delimited_page_size": delimited_page,
            "start_after": start_after,
        },
    });
    let out = boto3_check(&gateway.url(""), workdir.path(), "reads", &plan).await;

    for (key, data) in &objects {
        let got = &out["objects"][key];
        assert_eq!(got["status"], 200, "{key}: {got}");
        assert_eq!(got["sha256"], sha256_hex(data), "{key}: body");
        assert_eq!(got["length"], data.len(), "{key}: {got}");
        assert_eq!(got["content_length"], data.len(), "{key}: {got}");
        assert_eq!(
            got["etag"],
            format!("\"{}\"", got["md5"].as_str().unwrap()),
            "{key}: ETag is the MD5 of the body: {got}"
        );
        let head = &out["heads"][key];
        assert_eq!(head["status"], 200, "{key}: {head}");
        assert_eq!(head["content_length"], data.len(), "{key}: HEAD: {head}");
        assert_eq!(head["etag"], got["etag"], "{key}: HEAD ETag");
        assert_eq!(head["has_last_modified"], true, "{key}: HEAD: {head}");
    }

    let range_data = &objects.iter().find(|(k, _)| k == range_key).unwrap().1;
    let range = &out["range"];
    assert_eq!(range["status"], 206, "{range}");
    assert_eq!(range["length"], 100, "{range}");
    assert_eq!(range["content_length"], 100, "{range}");
    assert_eq!(
        range["content_range"],
        format!("bytes 100-199/{}", range_data.len()),
        "{range}"
    );
    assert_eq!(
        range["sha256"],
        sha256_hex(&range_data[100..200]),
        "{range}"
    );

    let suffix = &out["range_suffix"];
    let n = range_data.len();
    assert_eq!(suffix["status"], 206, "{suffix}");
    assert_eq!(suffix["length"], 100, "{suffix}");
    assert_eq!(
        suffix["content_range"],
        format!("bytes {}-{}/{n}", n - 100, n - 1),
        "{suffix}"
    );
    assert_eq!(
        suffix["sha256"],
        sha256_hex(&range_data[n - 100..]),
        "{suffix}"
    );
    let beyond = &out["range_beyond"];
    assert_eq!(beyond["status"], 416, "{beyond}");
    assert_eq!(beyond["code"], "InvalidRange", "{beyond}");
    let overrides = &out["overrides"];
    assert_eq!(
        overrides["content_type"], "text/plain; charset=utf-8",
        "{overrides}"
    );
    assert_eq!(
        overrides["content_disposition"], "attachment; filename=\"x y.txt\"",
        "{overrides}"
    );
    assert_eq!(overrides["cache_control"], "no-cache", "{overrides}");

    let no_prefixes: Vec<String> = Vec::new();
    check_pages(
        "flat listing",
        &out["list_flat"],
        &many,
        &no_prefixes,
        flat_page,
    );
    let level: Vec<String> = many
        .iter()
        .filter(|k| k.matches('/').count() == 1)
        .cloned()
        .collect();
    let dirs: Vec<String> = (0..20).map(|d| format!("many/m-{d:02}/")).collect();
    assert_eq!(level.len(), 600);
    check_pages(
        "delimited listing",
        &out["list_delimited"],
        &level,
        &dirs,
        delimited_page,
    );
    let mut all: Vec<String> = many.clone();
    all.extend(root_objects.map(String::from));
    all.sort();
    check_pages("whole bucket", &out["list_all"], &all, &no_prefixes, 1000);
    let mut root_keys: Vec<String> = root_objects
        .iter()
        .filter(|k| !k.contains('/'))
        .map(ToString::to_string)
        .collect();
    root_keys.sort();
    let root_prefixes: Vec<String> = ["caf\u{e9}/", "dir b/", "many/"].map(String::from).to_vec();
    check_pages(
        "root with delimiter",
        &out["list_root"],
        &root_keys,
        &root_prefixes,
        1000,
    );
    let after: Vec<String> = many
        .iter()
        .filter(|k| k.as_str() > start_after)
        .cloned()
        .collect();
    check_pages(
        "start-after",
        &out["list_start_after"],
        &after,
        &no_prefixes,
        flat_page,
    );
    assert_eq!(strings(&out["list_v1"]["keys"]), many, "V1 listing");
    assert_eq!(
        out["list_v1"]["pages"],
        many.len().div_ceil(1000),
        "V1 listing pages"
    );

    for (name, min_ranges) in [("default", 2), ("small_chunks", 12)] {
        let download = &out["download_file"][name];
        let path = workdir.path().join(format!("download-{name}.bin"));
        let got = std::fs::read(&path).unwrap();
        assert!(
            got == big,
            "download_file ({name}): {} bytes differ from the {} stored",
            got.len(),
            big.len()
        );
        let ranges = download["ranged_gets"].as_array().unwrap();
        assert!(
            ranges.len() >= min_ranges,
            "download_file ({name}) must fetch in parallel ranges: {download}"
        );
    }
    let fileobj = &objects
        .iter()
        .find(|(k, _)| k == plan["fileobj_key"].as_str().unwrap())
        .unwrap()
        .1;
    assert_eq!(out["download_fileobj"]["sha256"], sha256_hex(fileobj));

    assert_eq!(out["location"], "eu-west-3", "GetBucketLocation");
    assert_eq!(out["head_bucket"], 200, "HeadBucket");
    assert_eq!(out["missing_get"]["status"], 404, "{}", out["missing_get"]);
    assert_eq!(
        out["missing_get"]["code"], "NoSuchKey",
        "{}",
        out["missing_get"]
    );
    assert_eq!(
        out["missing_head"]["status"], 404,
        "{}",
        out["missing_head"]
    );
}

/// boto3: PutObject (small, and a 3 MiB file object sent with `Expect:
/// 100-continue`), DeleteObject, DeleteObjects, CreateMultipartUpload fail with
/// 405 MethodNotAllowed; GetObjectAcl, GetBucketAcl, ListBuckets and a bucket
/// no integration serves with 403 AccessDenied; each on the first attempt, and
/// no request reaches the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn boto3_writes_and_other_operations_are_refused_before_the_store() {
    let store = FsStore::start().await;
    let existing = pseudo_random(2000, 5);
    store.put("media", "plain.txt", &existing);
    let gateway = Gateway::start(&config(&store, &["media"], "us-east-1")).await;
    let workdir = tempfile::tempdir().unwrap();
    let plan = json!({
        "bucket": "media",
        "existing_key": "plain.txt",
        "other_bucket": "not-served",
    });
    let before = store.requests();
    let out = boto3_check(&gateway.url(""), workdir.path(), "writes", &plan).await;
    assert_eq!(
        store.requests(),
        before,
        "refused operations reached the store"
    );
    let root = store.dir.path().join("media");
    assert!(!root.join("new.txt").exists() && !root.join("new-large.bin").exists());
    assert_eq!(std::fs::read(root.join("plain.txt")).unwrap(), existing);
    // botocore sent `Expect: 100-continue` and, answered 405, never sends the
    // body: the gateway cannot keep that connection, so it must say so, or
    // botocore reuses a connection the gateway then closes under it.
    let large = &out["put_object_large"];
    assert_eq!(
        large["connection"], "close",
        "a refusal of a request whose body was not read must carry `Connection: close`: {large}"
    );
    for op in [
        "put_object",
        "put_object_large",
        "overwrite_object",
        "delete_object",
        "delete_objects",
        "create_multipart_upload",
    ] {
        assert_eq!(out[op]["status"], 405, "{op}: {}", out[op]);
        assert_eq!(out[op]["code"], "MethodNotAllowed", "{op}: {}", out[op]);
    }
    for op in [
        "get_object_acl",
        "get_bucket_acl",
        "list_buckets",
        "other_bucket_get",
        "other_bucket_list",
    ] {
        assert_eq!(out[op]["status"], 403, "{op}: {}", out[op]);
        assert_eq!(out[op]["code"], "AccessDenied", "{op}: {}", out[op]);
    }
}

/// Parses `aws s3 ls` output: (common prefixes, (key, size) of objects).
fn parse_ls(stdout: &str) -> (Vec<String>, Vec<(String, u64)>) {
    let mut prefixes = Vec::new();
    let mut objects = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(prefix) = line.trim_start().strip_prefix("PRE ") {
            prefixes.push(prefix.to_owned());
            continue;
        }
        // `YYYY-MM-DD HH:MM:SS` then the size right-aligned, then the key.
        let rest = line
            .get(19..)
            .unwrap_or_else(|| panic!("aws s3 ls line: {line:?}"))
            .trim_start();
        let (size, key) = rest
            .split_once(' ')
            .unwrap_or_else(|| panic!("aws s3 ls line: {line:?}"));
        let size = size
            .parse()
            .unwrap_or_else(|_| panic!("aws s3 ls line: {line:?}"));
        objects.push((key.to_owned(), size));
    }
    (prefixes, objects)
}

/// The AWS CLI (v1): `aws s3 ls` (one level, and recursive over 1,200 keys in
/// several pages), `aws s3 cp` of an awkward key, of a 9 MiB object (ranged
/// parallel download) and of a prefix, `aws s3api get-object --range`,
/// `get-bucket-location`; uploads and deletes fail without reaching the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aws_cli_lists_copies_and_is_refused_writes() {
    let store = FsStore::start().await;
    let small: Vec<(&str, Vec<u8>)> = [
        "top.txt",
        "top 2 \u{e9}.txt",
        "docs/with space+plus \u{e9}.txt",
        "tree/a b/c \u{e9}.txt",
        "tree/d.txt",
        "tree/sub/e f.bin",
    ]
    .iter()
    .enumerate()
    .map(|(i, key)| (*key, pseudo_random(500 + 111 * i, 1000 + i as u64)))
    .collect();
    for (key, data) in &small {
        store.put("media", key, data);
    }
    let big_key = "big/blob 9mib.bin";
    let big = pseudo_random(9 * 1024 * 1024 + 7, 7);
    store.put("media", big_key, &big);
    let logs: Vec<String> = (0..1200).map(|i| format!("logs/2024/{i:04}.log")).collect();
    seed_files(&store, "media", &logs);

    let gateway = Gateway::start(&config(&store, &["media"], "us-east-1")).await;
    let endpoint = gateway.url("");
    let workdir = tempfile::tempdir().unwrap();
    let aws = |args: &[&str]| {
        let mut cmd = client_command(&venv_bin("aws"));
        cmd.arg("--endpoint-url").arg(&endpoint).args(args);
        cmd
    };
    let data_of = |key: &str| &small.iter().find(|(k, _)| *k == key).unwrap().1;

    // One level: the prefixes and the objects at the root.
    let out = run_ok(aws(&["s3", "ls", "s3://media/"]), "aws s3 ls").await;
    let (prefixes, objects) = parse_ls(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(prefixes, ["big/", "docs/", "logs/", "tree/"]);
    let root: Vec<(String, u64)> = ["top 2 \u{e9}.txt", "top.txt"]
        .iter()
        .map(|k| (k.to_string(), data_of(k).len() as u64))
        .collect();
    assert_eq!(objects, root);

    // Recursive, 1,200 keys in pages of 250.
    let before = store.requests();
    let out = run_ok(
        aws(&[
            "s3",
            "ls",
            "s3://media/logs/",
            "--recursive",
            "--page-size",
            "250",
        ]),
        "aws s3 ls --recursive",
    )
    .await;
    let pages = store.requests() - before;
    let (prefixes, objects) = parse_ls(&String::from_utf8(out.stdout).unwrap());
    assert!(prefixes.is_empty(), "{prefixes:?}");
    let expected: Vec<(String, u64)> = logs.iter().map(|k| (k.clone(), k.len() as u64)).collect();
    assert_eq!(objects.len(), 1200);
    assert_eq!(objects, expected);
    assert_eq!(pages, 5, "1,200 keys in pages of 250");

    // Copies: an awkward key, a 9 MiB object in ranges, a whole prefix.
    let awkward = "docs/with space+plus \u{e9}.txt";
    let target = workdir.path().join("awkward.txt");
    run_ok(
        aws(&[
            "s3",
            "cp",
            &format!("s3://media/{awkward}"),
            target.to_str().unwrap(),
        ]),
        "aws s3 cp (awkward key)",
    )
    .await;
    assert_eq!(&std::fs::read(&target).unwrap(), data_of(awkward));

    let target = workdir.path().join("big.bin");
    let before = store.requests();
    run_ok(
        aws(&[
            "s3",
            "cp",
            &format!("s3://media/{big_key}"),
            target.to_str().unwrap(),
        ]),
        "aws s3 cp (9 MiB)",
    )
    .await;
    let got = std::fs::read(&target).unwrap();
    assert!(
        got == big,
        "aws s3 cp: {} bytes differ from the {} stored",
        got.len(),
        big.len()
    );
    // HeadObject, then at least two ranged GetObjects.
    assert!(
        store.requests() - before >= 3,
        "the 9 MiB copy was not split in ranges"
    );

    let tree = workdir.path().join("tree");
    run_ok(
        aws(&[
            "s3",
            "cp",
            "s3://media/tree/",
            tree.to_str().unwrap(),
            "--recursive",
        ]),
        "aws s3 cp --recursive",
    )
    .await;
    for key in ["tree/a b/c \u{e9}.txt", "tree/d.txt", "tree/sub/e f.bin"] {
        let path = workdir.path().join(key);
        assert_eq!(
            &std::fs::read(&path).unwrap_or_else(|e| panic!("{key}: {e}")),
            data_of(key),
            "{key}"
        );
    }

    // A ranged GetObject.
    let target = workdir.path().join("range.bin");
    let out = run_ok(
        aws(&[
            "s3api",
            "get-object",
            "--bucket",
            "media",
            "--key",
            big_key,
            "--range",
            "bytes=100-199",
            target.to_str().unwrap(),
        ]),
        "aws s3api get-object --range",
    )
    .await;
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(meta["ContentLength"], 100, "{meta}");
    assert_eq!(
        meta["ContentRange"],
        format!("bytes 100-199/{}", big.len()),
        "{meta}"
    );
    assert_eq!(std::fs::read(&target).unwrap(), &big[100..200]);

    let out = run_ok(
        aws(&["s3api", "get-bucket-location", "--bucket", "media"]),
        "aws s3api get-bucket-location",
    )
    .await;
    let location: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(location["LocationConstraint"], Value::Null, "{location}");

    // Writes fail in the gateway; nothing reaches the store.
    let before = store.requests();
    let source = workdir.path().join("awkward.txt");
    for (args, what) in [
        (
            vec![
                "s3",
                "cp",
                source.to_str().unwrap(),
                "s3://media/uploaded.txt",
            ],
            "aws s3 cp (upload)",
        ),
        (vec!["s3", "rm", "s3://media/top.txt"], "aws s3 rm"),
    ] {
        let out = run(aws(&args), what).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what} succeeded");
        assert!(stderr.contains("MethodNotAllowed"), "{what}: {stderr}");
    }
    assert_eq!(store.requests(), before, "refused writes reached the store");
    let bucket = store.dir.path().join("media");
    assert!(!bucket.join("uploaded.txt").exists());
    assert_eq!(
        &std::fs::read(bucket.join("top.txt")).unwrap(),
        data_of("top.txt")
    );
}

// The S3 front with client keys: `[s3_api] anonymous = false` and
// `[[clients]]` with SigV4 keys, the gateway run as the `s3gate serve`
// process so that its whole log (at debug level) can be searched.

/// The client reading `media` and `shared`.
const READER_KEY: &str = "AKIAS3GATEREADER01";
const READER_SECRET: &str = "reader-secret/With+Symbols=0123";
/// The client reading `shared/public/…` only.
const SCOPED_KEY: &str = "AKIAS3GATESCOPED02";
const SCOPED_SECRET: &str = "scoped-secret/Other+Symbols=4567";
/// A secret no client has, used with the reader's key.
const WRONG_SECRET: &str = "not-the-reader-secret/0123456789";
/// A key no client has.
const UNKNOWN_KEY: &str = "AKIAS3GATEUNKNOWN3";
const UNKNOWN_SECRET: &str = "unknown-client-secret/987654321";

/// The buckets of the keyed gateway's one integration.
const KEYED_BUCKETS: &[&str] = &["media", "private", "shared"];
/// The object most checks read: a key that must be encoded in the path.
const KEYED_OBJECT: &str = "docs/caf\u{e9} report.bin";

fn keyed_plan() -> Value {
    json!({
        "keys": {
            "reader": {"id": READER_KEY, "secret": READER_SECRET},
            "scoped": {"id": SCOPED_KEY, "secret": SCOPED_SECRET},
        },
        "wrong_secret": WRONG_SECRET,
        "unknown_key": {"id": UNKNOWN_KEY, "secret": UNKNOWN_SECRET},
        "bucket": "media",
        "key": KEYED_OBJECT,
        "range": "bytes=100-1099",
        "prefix": "docs/",
        "other_bucket": "private",
        "scoped_bucket": "shared",
        "scoped_key": "public/p.txt",
        "scoped_prefix": "public/",
        "outside_key": "secret/s.txt",
    })
}

/// The objects of the keyed store: (bucket, key, bytes).
fn keyed_objects() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        ("media", KEYED_OBJECT, pseudo_random(5000, 31)),
        ("media", "docs/b.txt", pseudo_random(300, 32)),
        ("media", "docs/sub/c.txt", pseudo_random(200, 33)),
        ("media", "top.txt", pseudo_random(100, 34)),
        ("shared", "public/p.txt", pseudo_random(400, 35)),
        ("shared", "secret/s.txt", pseudo_random(500, 36)),
        (
            "private",
            "docs/caf\u{e9} report.bin",
            pseudo_random(600, 37),
        ),
    ]
}

fn keyed_store_data(bucket: &str, key: &str) -> Vec<u8> {
    keyed_objects()
        .into_iter()
        .find(|(b, k, _)| *b == bucket && *k == key)
        .unwrap()
        .2
}

async fn keyed_store() -> FsStore {
    let store = FsStore::start().await;
    for (bucket, key, data) in keyed_objects() {
        store.put(bucket, key, &data);
    }
    store
}

/// `s3gate serve` in front of `store`, with the two clients; its stderr is
/// collected in `log`.
struct KeyedGateway {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    settled: u32,
    _dir: tempfile::TempDir,
}

impl KeyedGateway {
    async fn start(store: &FsStore) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let secret_file = |name: &str, secret: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, secret).unwrap();
            toml::Value::from(path.to_str().unwrap()).to_string()
        };
        let mut config = support::config::ConfigBuilder::store(&store.url(), KEYED_BUCKETS)
            .set("server", "listen", "127.0.0.1:0")
            .set("s3_api", "anonymous", false)
            .build();
        config.push_str(&format!(
            "\n[[clients]]\nname = \"reader\"\naccess_key_id = \"{READER_KEY}\"\nsecret_access_key_file = {}\nintegrations = [\"*\"]\nbuckets = [\"media\", \"shared\"]\n\n[[clients]]\nname = \"scoped\"\naccess_key_id = \"{SCOPED_KEY}\"\nsecret_access_key_file = {}\nintegrations = [\"store\"]\nbuckets = [\"shared\"]\nprefixes = [\"public/\"]\n",
            secret_file("reader.secret", READER_SECRET),
            secret_file("scoped.secret", SCOPED_SECRET),
        ));
        let config_path = dir.path().join("s3gate.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut child = std::process::Command::new(binary())
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env(SECRET_ENV, SECRET_KEY)
            .env("S3GATE_LOG", "debug")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if let Some(addr) = line.split("listening on http://").nth(1) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr.trim().parse::<std::net::SocketAddr>().unwrap());
                    }
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = tokio::time::timeout(Duration::from_secs(20), rx)
            .await
            .expect("the gateway reports its address within 20 s")
            .expect("the gateway starts");
        Self {
            child,
            addr,
            log,
            settled: 0,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The log once every request sent so far is in it: a marker request is
    /// sent, and the log read (bounded) until its line appears.
    async fn settled_log(&mut self) -> String {
        self.settled += 1;
        let marker = format!("/v1/log-marker-{}", self.settled);
        let (status, _) = fetch(&self.url(&marker)).await;
        assert_ne!(status, 200, "{marker}");
        let needle = format!("path={marker}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.log.lock().unwrap().clone();
            if log.contains(&needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not log {marker} within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The log holds no secret and none of `signatures`, nor anything that
    /// looks like a SigV4 signature (64 hex digits), yet shows S3 requests.
    /// The log itself is never printed: it is what is being checked for leaks.
    async fn check_log(&mut self, signatures: &[String]) {
        let log = self.settled_log().await;
        assert!(
            log.contains("via=s3-key") && log.contains("client=reader"),
            "the gateway log shows no request of the reader ({} bytes)",
            log.len()
        );
        for (what, secret) in [
            ("the reader's secret", READER_SECRET),
            ("the scoped client's secret", SCOPED_SECRET),
            ("the wrong secret", WRONG_SECRET),
            ("the unknown key's secret", UNKNOWN_SECRET),
            ("the store's secret", SECRET_KEY),
        ] {
            assert!(!log.contains(secret), "the gateway log holds {what}");
        }
        for (i, signature) in signatures.iter().enumerate() {
            assert_eq!(signature.len(), 64, "signature {i} is not SigV4");
            assert!(
                !log.contains(signature.as_str()),
                "the gateway log holds signature {i} of the clients"
            );
        }
        let hex_run = log
            .as_bytes()
            .split(|b| !b.is_ascii_hexdigit())
            .map(<[u8]>::len)
            .max()
            .unwrap_or(0);
        assert!(
            hex_run < 64,
            "the gateway log holds a run of {hex_run} hex digits (a signature?)"
        );
    }
}

impl Drop for KeyedGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signatures_of(out: &Value) -> Vec<String> {
    strings(&out["signatures"])
}

fn assert_refused(what: &str, got: &Value, status: u16, code: &str) {
    assert_eq!(got["status"], status, "{what}: {got}");
    assert_eq!(got["code"], code, "{what}: {got}");
}

/// `s3gate serve` with `[s3_api] anonymous = false` and two keyed clients.
/// boto3 with the reader's key: GetObject (byte-exact), HeadObject,
/// ListObjectsV2 with a prefix and a delimiter, a Range read; the scoped
/// client reads and lists inside its prefix; ListBuckets shows each client
/// exactly its buckets. The AWS CLI with the reader's key: `aws s3 ls
/// s3://media/`, `aws s3 cp s3://media/KEY -` byte-exact, `aws s3 ls` (the
/// reader's buckets; the scoped client's), and `aws s3 ls s3://private/`
/// refused. The gateway's log holds no secret and no signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_keys_read_list_and_see_only_their_buckets() {
    let store = keyed_store().await;
    let mut gateway = KeyedGateway::start(&store).await;
    let endpoint = gateway.url("");
    let workdir = tempfile::tempdir().unwrap();
    let out = boto3_check(&endpoint, workdir.path(), "keyed-reads", &keyed_plan()).await;
    let data = keyed_store_data("media", KEYED_OBJECT);

    let get = &out["get"];
    assert_eq!(get["status"], 200, "{get}");
    assert_eq!(get["length"], data.len(), "{get}");
    assert_eq!(get["sha256"], sha256_hex(&data), "GetObject body");
    let head = &out["head"];
    assert_eq!(head["status"], 200, "{head}");
    assert_eq!(head["content_length"], data.len(), "{head}");
    assert_eq!(
        head["etag"],
        format!("\"{}\"", get["md5"].as_str().unwrap()),
        "HeadObject ETag is the MD5 of the body: {head}"
    );
    let range = &out["range"];
    assert_eq!(range["status"], 206, "{range}");
    assert_eq!(range["length"], 1000, "{range}");
    assert_eq!(
        range["content_range"],
        format!("bytes 100-1099/{}", data.len()),
        "{range}"
    );
    assert_eq!(range["sha256"], sha256_hex(&data[100..1100]), "{range}");
    assert_eq!(
        out["list"],
        json!({"keys": ["docs/b.txt", KEYED_OBJECT], "prefixes": ["docs/sub/"]}),
        "ListObjectsV2 prefix=docs/ delimiter=/"
    );
    assert_eq!(
        out["scoped_get"]["sha256"],
        sha256_hex(&keyed_store_data("shared", "public/p.txt")),
        "the scoped client reads inside its prefix"
    );
    assert_eq!(out["scoped_list"], json!(["public/p.txt"]));
    assert_eq!(
        out["buckets"],
        json!({"reader": ["media", "shared"], "scoped": ["shared"]}),
        "ListBuckets"
    );
    let signatures = signatures_of(&out);
    // Eight requests of the reader and the scoped client, at least.
    assert!(signatures.len() >= 8, "{} signatures", signatures.len());

    let aws = |key: &str, secret: &str, args: &[&str]| {
        let mut cmd = client_command(&venv_bin("aws"));
        cmd.env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .arg("--endpoint-url")
            .arg(&endpoint)
            .args(args);
        cmd
    };
    let out = run_ok(
        aws(READER_KEY, READER_SECRET, &["s3", "ls", "s3://media/"]),
        "aws s3 ls s3://media/",
    )
    .await;
    let (prefixes, objects) = parse_ls(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(prefixes, ["docs/"]);
    assert_eq!(objects, [("top.txt".to_owned(), 100)]);

    let out = run_ok(
        aws(
            READER_KEY,
            READER_SECRET,
            &["s3", "cp", &format!("s3://media/{KEYED_OBJECT}"), "-"],
        ),
        "aws s3 cp s3://media/KEY -",
    )
    .await;
    assert!(
        out.stdout == data,
        "aws s3 cp -: {} bytes differ from the {} stored",
        out.stdout.len(),
        data.len()
    );

    let bucket_names = |stdout: Vec<u8>| -> Vec<String> {
        String::from_utf8(stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.rsplit(' ').next().unwrap().to_owned())
            .collect()
    };
    let out = run_ok(aws(READER_KEY, READER_SECRET, &["s3", "ls"]), "aws s3 ls").await;
    assert_eq!(bucket_names(out.stdout), ["media", "shared"]);
    let out = run_ok(
        aws(SCOPED_KEY, SCOPED_SECRET, &["s3", "ls"]),
        "aws s3 ls (scoped)",
    )
    .await;
    assert_eq!(bucket_names(out.stdout), ["shared"]);

    let before = store.requests();
    let out = run(
        aws(READER_KEY, READER_SECRET, &["s3", "ls", "s3://private/"]),
        "aws s3 ls s3://private/",
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "aws s3 ls s3://private/ succeeded");
    assert!(stderr.contains("AccessDenied"), "{stderr}");
    assert_eq!(
        store.requests(),
        before,
        "a refused listing reached the store"
    );

    gateway.check_log(&signatures).await;
}

/// Every refusal of the keyed S3 front, each on the first attempt, and none
/// reaches the store: a wrong secret (SignatureDoesNotMatch), an unknown key
/// (InvalidAccessKeyId), a bucket the client lacks and a key or listing
/// outside its prefixes (AccessDenied), no signature at all (AccessDenied),
/// a signature made 20 minutes ago (RequestTimeTooSkewed); all 403. The
/// gateway's log holds none of the secrets or signatures.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_key_refusals_never_reach_the_store() {
    let store = keyed_store().await;
    let mut gateway = KeyedGateway::start(&store).await;
    let workdir = tempfile::tempdir().unwrap();
    let before = store.requests();
    let out = boto3_check(
        &gateway.url(""),
        workdir.path(),
        "keyed-refusals",
        &keyed_plan(),
    )
    .await;
    assert_eq!(
        store.requests(),
        before,
        "a refused request reached the store"
    );
    for op in [
        "wrong_secret_get",
        "wrong_secret_list",
        "wrong_secret_list_buckets",
    ] {
        assert_refused(op, &out[op], 403, "SignatureDoesNotMatch");
    }
    for op in ["unknown_key_get", "unknown_key_list_buckets"] {
        assert_refused(op, &out[op], 403, "InvalidAccessKeyId");
    }
    for op in [
        "other_bucket_get",
        "other_bucket_list",
        "outside_prefix_get",
        "outside_prefix_list",
        "scoped_other_bucket_get",
        "unsigned_get",
        "unsigned_list",
        "unsigned_list_buckets",
    ] {
        assert_refused(op, &out[op], 403, "AccessDenied");
    }
    // HEAD has no body: the status is all botocore sees.
    assert_eq!(
        out["other_bucket_head"]["status"], 403,
        "{}",
        out["other_bucket_head"]
    );
    for op in ["skewed_get", "skewed_list"] {
        assert_refused(op, &out[op], 403, "RequestTimeTooSkewed");
    }
    let signatures = signatures_of(&out);
    assert!(signatures.len() >= 12, "{} signatures", signatures.len());
    gateway.check_log(&signatures).await;
}

/// The `<Code>` of an S3 XML error body.
fn s3_error_code(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.split("<Code>")
        .nth(1)
        .and_then(|rest| rest.split("</Code>").next())
        .unwrap_or_else(|| panic!("no <Code> in {text}"))
        .to_owned()
}

/// The value of query parameter `name` in `url`.
fn query_param(url: &str, name: &str) -> String {
    let query = url.split_once('?').unwrap().1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no {name} in a presigned URL"))
        .1
        .into_owned()
}

/// A boto3-presigned GetObject URL with the reader's key, fetched by a plain
/// HTTP client: 200 and the object's bytes. The same URL with one character
/// of X-Amz-Signature changed, or with another key in its path, is 403
/// SignatureDoesNotMatch; a URL valid for 1 s, once that second is past, is
/// 403. No refused URL reaches the store, and the log holds no signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presigned_urls_of_a_client_key() {
    let store = keyed_store().await;
    let mut gateway = KeyedGateway::start(&store).await;
    let workdir = tempfile::tempdir().unwrap();
    let mut plan = keyed_plan();
    plan["expires"] = json!({"valid": 300, "short": 1});
    let out = boto3_check(&gateway.url(""), workdir.path(), "keyed-presign", &plan).await;
    // The short URL was signed no later than now.
    let signed_by = std::time::SystemTime::now();
    let valid = out["valid"].as_str().unwrap().to_owned();
    let short = out["short"].as_str().unwrap().to_owned();
    let encoded_key = "/media/docs/caf%C3%A9%20report.bin";
    assert!(
        valid.starts_with(&gateway.url(encoded_key)),
        "the URL is not path-style on the gateway"
    );
    assert_eq!(query_param(&valid, "X-Amz-Expires"), "300");
    assert!(query_param(&valid, "X-Amz-Credential").starts_with(READER_KEY));

    let data = keyed_store_data("media", KEYED_OBJECT);
    let before = store.requests();
    let (status, body) = fetch(&valid).await;
    assert_eq!(status, 200, "the presigned URL: {}", s3_error_code(&body));
    assert!(body == data, "the presigned URL's body differs");
    assert!(store.requests() > before, "the object came from the store");

    let signature = query_param(&valid, "X-Amz-Signature");
    let last = signature.chars().last().unwrap();
    let flipped = format!(
        "{}{}",
        &signature[..signature.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let tampered_signature = valid.replace(&signature, &flipped);
    assert_ne!(tampered_signature, valid);
    let other_key = valid.replace(encoded_key, "/media/docs/b.txt");
    assert_ne!(other_key, valid);
    let before = store.requests();
    for (what, url) in [
        ("a changed signature", &tampered_signature),
        ("another key", &other_key),
    ] {
        let (status, body) = fetch(url).await;
        assert_eq!(status, 403, "{what}");
        assert_eq!(s3_error_code(&body), "SignatureDoesNotMatch", "{what}");
    }
    assert_eq!(store.requests(), before, "a tampered URL reached the store");

    // Wait (bounded, reading the clock only) until the 1 s URL is past.
    let past = signed_by + Duration::from_secs(2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::time::SystemTime::now() <= past {
        assert!(Instant::now() < deadline, "the clock did not advance");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = fetch(&short).await;
    assert_eq!(status, 403, "an expired URL");
    assert_eq!(s3_error_code(&body), "AccessDenied", "an expired URL");
    assert_eq!(store.requests(), before, "an expired URL reached the store");

    let signatures = vec![signature, flipped, query_param(&short, "X-Amz-Signature")];
    gateway.check_log(&signatures).await;
}

/// rclone (Debian's, which scripts/test installs): an S3 remote of provider
/// `Other` configured by environment variables alone, path style, with a
/// client's key. `rclone lsf` of a prefix and of the bucket, `rclone cat`
/// byte-exact; a bucket the client lacks and a key outside the scoped
/// client's prefix fail without reaching the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rclone_reads_with_a_client_key() {
    let rclone = Path::new("/usr/bin/rclone");
    assert!(
        rclone.exists(),
        "{} is missing: run scripts/test, which installs Debian's rclone",
        rclone.display()
    );
    let store = keyed_store().await;
    let mut gateway = KeyedGateway::start(&store).await;
    let home = tempfile::tempdir().unwrap();
    let endpoint = gateway.url("");
    let rclone_cmd = |key: &str, secret: &str, args: &[&str]| {
        let mut cmd = client_command(rclone);
        for (name, value) in [
            ("TYPE", "s3"),
            ("PROVIDER", "Other"),
            ("ACCESS_KEY_ID", key),
            ("SECRET_ACCESS_KEY", secret),
            ("ENDPOINT", endpoint.as_str()),
            ("FORCE_PATH_STYLE", "true"),
            ("REGION", "us-east-1"),
        ] {
            cmd.env(format!("RCLONE_CONFIG_GW_{name}"), value);
        }
        cmd.env("HOME", home.path())
            .env("XDG_CACHE_HOME", home.path().join("cache"))
            .env("RCLONE_CONFIG", home.path().join("rclone.conf"))
            .args(["--retries", "1", "--low-level-retries", "1"])
            .args(args);
        cmd
    };

    let out = run_ok(
        rclone_cmd(READER_KEY, READER_SECRET, &["lsf", "gw:media/docs/"]),
        "rclone lsf gw:media/docs/",
    )
    .await;
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "b.txt\ncaf\u{e9} report.bin\nsub/\n"
    );
    let out = run_ok(
        rclone_cmd(READER_KEY, READER_SECRET, &["lsf", "-R", "gw:media"]),
        "rclone lsf -R gw:media",
    )
    .await;
    // rclone prints the directories it derives after the objects.
    let mut lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "docs/",
            "docs/b.txt",
            "docs/caf\u{e9} report.bin",
            "docs/sub/",
            "docs/sub/c.txt",
            "top.txt"
        ]
    );
    let out = run_ok(
        rclone_cmd(
            READER_KEY,
            READER_SECRET,
            &["cat", &format!("gw:media/{KEYED_OBJECT}")],
        ),
        "rclone cat",
    )
    .await;
    let data = keyed_store_data("media", KEYED_OBJECT);
    assert!(
        out.stdout == data,
        "rclone cat: {} bytes differ from the {} stored",
        out.stdout.len(),
        data.len()
    );
    let out = run_ok(
        rclone_cmd(
            SCOPED_KEY,
            SCOPED_SECRET,
            &["cat", "gw:shared/public/p.txt"],
        ),
        "rclone cat (scoped)",
    )
    .await;
    assert!(out.stdout == keyed_store_data("shared", "public/p.txt"));

    let before = store.requests();
    for (key, secret, args, what) in [
        (
            READER_KEY,
            READER_SECRET,
            vec!["lsf", "gw:private/"],
            "rclone lsf of a bucket the client lacks",
        ),
        (
            SCOPED_KEY,
            SCOPED_SECRET,
            vec!["cat", "gw:shared/secret/s.txt"],
            "rclone cat outside the client's prefix",
        ),
        (
            READER_KEY,
            WRONG_SECRET,
            vec!["lsf", "gw:media/"],
            "rclone with a wrong secret",
        ),
    ] {
        let out = run(rclone_cmd(key, secret, &args), what).await;
        assert!(!out.status.success(), "{what} succeeded");
        assert!(out.stdout.is_empty(), "{what}: printed a listing or data");
    }
    assert_eq!(
        store.requests(),
        before,
        "a refused request reached the store"
    );
    gateway.check_log(&[]).await;
}
