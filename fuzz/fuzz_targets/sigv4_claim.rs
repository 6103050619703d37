//! The S3 front's SigV4 verifier, both forms (Authorization header and
//! presigned query): parsing and verifying any request never panics, and
//! what fails fails with a client error.
//!
//! Input: the request target on the first line (`/bucket/key?query`), then
//! one `name: value` header per line; the first input byte picks the method.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};
use libfuzzer_sys::fuzz_target;
use s3gate::auth::s3_signature;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let method = if first % 2 == 0 { Method::GET } else { Method::HEAD };
    let mut lines = text.split('\n');
    let Some(Ok(uri)) = lines.next().map(str::parse::<Uri>) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.trim_start().as_bytes()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let claim = match s3_signature::parse(&method, &uri, &headers) {
        Ok(Some(claim)) => claim,
        Ok(None) => return,
        Err(e) => {
            assert!(e.status().is_client_error(), "{text:?}: {e}");
            return;
        }
    };
    let _ = format!("{claim:?}");
    let signed_at = claim.signed_at();
    for now in [signed_at, UNIX_EPOCH, signed_at + Duration::from_secs(3600)] {
        if let Err(e) = claim.verify(&method, &uri, &headers, SECRET, now) {
            assert!(e.status().is_client_error(), "{text:?}: {e}");
        }
    }
});
