//! s3gate's SigV4 signer against `aws-sigv4`, on the requests s3gate signs:
//! a presigned GET URL with session credentials, and a header-signed ListObjectsV2.
//!
//! Run with `cargo bench --bench sigv4`. After criterion's measurements, a final
//! interleaved timing loop prints `ours`, `aws-sigv4` and the ratio for both.
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

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SessionTokenMode, SignableBody,
    SignableRequest, SignatureLocation, SigningSettings, UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use criterion::{criterion_group, criterion_main, Criterion};
use s3gate::sigv4::{self, Credentials, SigningRequest};

const AKID: &str = "ASIAEXAMPLEKEYID1234";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TOKEN: &str =
    "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD6kz9vW0cJ5Xn0Jt2hQ+example\
session/token/of+realistic/length0hKzAiEA8n3vXxu4sM0JxbQn2Kk9wYvXn5Bz1qP8r6mLw2f3QkUqmgIIFBAAGgw\
xMjM0NTY3ODkwMTIiDKx5r8pQ2uTn6vW3ZCr3AeG9mK2Zr/8nJ4xq9vTnPp5wQ==";
const HOST: &str = "customer-bucket.s3.eu-west-3.amazonaws.com";
const REGION: &str = "eu-west-3";
const LIST_QUERY: &[(&str, &str)] = &[
    ("list-type", "2"),
    ("prefix", "photos/2024/"),
    ("delimiter", "/"),
];

struct Setup {
    ours: Credentials,
    path: String,
    time: SystemTime,
}

/// aws-sigv4's identity type lives in aws-smithy-runtime-api, not a dependency here:
/// keep it inside closures, where its type is inferred.
fn aws_credentials() -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new(AKID, SECRET, Some(TOKEN.to_owned()), None, "bench")
}

fn setup() -> Setup {
    let time = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let ours = Credentials::new(AKID, SECRET, Some(TOKEN.to_owned()), None);
    let path = sigv4::encode_path("/photos/2024/IMG 0001 (édité).jpg");
    Setup { ours, path, time }
}

/// Checks both implementations sign alike (and warms our signing-key cache).
fn check(
    s: &Setup,
    aws_presign: &dyn Fn(&Setup) -> String,
    aws_headers: &dyn Fn(&Setup) -> Vec<(String, String)>,
) {
    let ours = ours_presign(s);
    let theirs = aws_presign(s);
    let signature = |q: &str| {
        let at = q.find("X-Amz-Signature=").expect("signature") + "X-Amz-Signature=".len();
        q[at..at + 64].to_owned()
    };
    assert_eq!(signature(&ours), signature(&theirs));
    let theirs = aws_headers(s);
    let authorization = theirs.iter().find(|(k, _)| k == "authorization").unwrap();
    assert_eq!(ours_headers(s).authorization, authorization.1);
}

fn ours_presign(s: &Setup) -> String {
    let req = SigningRequest {
        method: "GET",
        host: HOST,
        path: &s.path,
        query: &[],
        region: REGION,
        service: "s3",
        time: s.time,
    };
    sigv4::presign(&s.ours, &req, 3600)
}

fn ours_headers(s: &Setup) -> sigv4::SignedHeaders {
    let req = SigningRequest {
        method: "GET",
        host: HOST,
        path: "/",
        query: LIST_QUERY,
        region: REGION,
        service: "s3",
        time: s.time,
    };
    sigv4::sign_headers(&s.ours, &req)
}

fn aws_settings(location: SignatureLocation) -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.session_token_mode = SessionTokenMode::Include;
    settings.signature_location = location;
    match location {
        SignatureLocation::QueryParams => {
            settings.expires_in = Some(Duration::from_secs(3600));
            settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
        }
        _ => settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256,
    }
    settings
}

/// aws-sigv4 presigning as a caller would: build the request and parameters, sign,
/// and write the resulting query string.
fn aws_presigner() -> impl Fn(&Setup) -> String {
    let identity = aws_credentials().into();
    move |s: &Setup| {
        let uri = format!("https://{HOST}{}", s.path);
        let request = SignableRequest::new(
            "GET",
            uri.as_str(),
            std::iter::empty(),
            SignableBody::UnsignedPayload,
        )
        .unwrap();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name("s3")
            .time(s.time)
            .settings(aws_settings(SignatureLocation::QueryParams))
            .build()
            .unwrap()
            .into();
        let (instructions, _signature) = sign(request, &params).unwrap().into_parts();
        let mut query = String::with_capacity(1024);
        for (i, (name, value)) in instructions.params().iter().enumerate() {
            if i > 0 {
                query.push('&');
            }
            query.push_str(name);
            query.push('=');
            sigv4::encode_query_component(value, &mut query);
        }
        query
    }
}

/// aws-sigv4 header signing of the ListObjectsV2 request; returns the headers to add.
fn aws_header_signer() -> impl Fn(&Setup) -> Vec<(String, String)> {
    let identity = aws_credentials().into();
    move |s: &Setup| {
        let uri = format!(
            "https://{HOST}/?{}",
            sigv4::canonical::query_string(LIST_QUERY)
        );
        let request = SignableRequest::new(
            "GET",
            uri.as_str(),
            std::iter::empty(),
            SignableBody::UnsignedPayload,
        )
        .unwrap();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name("s3")
            .time(s.time)
            .settings(aws_settings(SignatureLocation::Headers))
            .build()
            .unwrap()
            .into();
        let (instructions, _signature) = sign(request, &params).unwrap().into_parts();
        instructions
            .headers()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .collect()
    }
}

fn criterion_benches(c: &mut Criterion) {
    let s = setup();
    let (aws_presign, aws_headers) = (aws_presigner(), aws_header_signer());
    check(&s, &aws_presign, &aws_headers);
    let mut g = c.benchmark_group("presign GET, session token");
    g.bench_function("s3gate", |b| {
        b.iter(|| black_box(ours_presign(black_box(&s))));
    });
    g.bench_function("aws-sigv4", |b| {
        b.iter(|| black_box(aws_presign(black_box(&s))));
    });
    g.finish();
    let mut g = c.benchmark_group("sign headers ListObjectsV2, session token");
    g.bench_function("s3gate", |b| {
        b.iter(|| black_box(ours_headers(black_box(&s))));
    });
    g.bench_function("aws-sigv4", |b| {
        b.iter(|| black_box(aws_headers(black_box(&s))));
    });
    g.finish();
}

const ROUNDS: u32 = 40;
const PER_ROUND: u32 = 5_000;

/// Nanoseconds per call of `f`, over `PER_ROUND` calls.
fn time_round<R>(f: &mut impl FnMut() -> R) -> f64 {
    let start = Instant::now();
    for _ in 0..PER_ROUND {
        black_box(f());
    }
    start.elapsed().as_nanos() as f64 / f64::from(PER_ROUND)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times `ours` and `theirs` in alternating rounds and prints the medians and ratio.
fn compare<R1, R2>(name: &str, mut ours: impl FnMut() -> R1, mut theirs: impl FnMut() -> R2) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        a.push(time_round(&mut ours));
        b.push(time_round(&mut theirs));
    }
    let (ours_ns, aws_ns) = (median(a), median(b));
    println!(
        "{name}: ours {ours_ns:.0} ns, aws-sigv4 {aws_ns:.0} ns, ratio {:.2}x \
         ({} calls each, interleaved, median of {ROUNDS} rounds)",
        aws_ns / ours_ns,
        ROUNDS * PER_ROUND,
    );
}

/// 200k calls of each implementation, interleaved in 40 rounds of 5k; prints medians
/// and the ratio aws-sigv4 / ours.
///
/// Runs after criterion when no filter is given (`cargo bench --bench sigv4`) or the
/// filter is `ratios` (`cargo bench --bench sigv4 -- ratios`).
fn ratios() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filtered = args.iter().any(|a| !a.starts_with('-'));
    if filtered && !args.iter().any(|a| a == "ratios") {
        return;
    }
    let s = setup();
    let (aws_presign, aws_headers) = (aws_presigner(), aws_header_signer());
    check(&s, &aws_presign, &aws_headers);
    println!();
    compare(
        "presign",
        || ours_presign(black_box(&s)),
        || aws_presign(black_box(&s)),
    );
    compare(
        "sign_headers",
        || ours_headers(black_box(&s)),
        || aws_headers(black_box(&s)),
    );
}

criterion_group!(benches, criterion_benches);
criterion_main!(benches, ratios);
