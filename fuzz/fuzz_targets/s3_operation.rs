//! The S3 front's operation parser (method, path, query): never panics,
//! refuses with a client error, and what it accepts holds only valid names.
#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;
use s3gate::front::query::Query;
use s3gate::front::s3_api::Operation;
use s3gate::locator::{validate_bucket_name, validate_key};

const METHODS: [Method; 4] = [Method::GET, Method::HEAD, Method::PUT, Method::POST];

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Ok(target) = std::str::from_utf8(rest) else {
        return;
    };
    let method = &METHODS[usize::from(first) % METHODS.len()];
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let _ = Query::parse(query);
    match Operation::parse(method, path, query) {
        Ok(Operation::Object { bucket, key, query }) => {
            assert!(validate_bucket_name(&bucket).is_ok(), "{target:?}");
            assert!(!key.is_empty() && validate_key(&key).is_ok(), "{target:?}");
            assert!(query.pairs().iter().all(|(name, _)| !name.starts_with("X-Amz-")));
        }
        Ok(Operation::List { bucket, query }) => {
            assert!(validate_bucket_name(&bucket).is_ok(), "{target:?}");
            assert_ne!(query.get("delimiter"), Some(""), "{target:?}");
        }
        Ok(Operation::HeadBucket { bucket } | Operation::Location { bucket }) => {
            assert!(validate_bucket_name(&bucket).is_ok(), "{target:?}");
        }
        Ok(Operation::ListBuckets) => assert_eq!(*method, Method::GET),
        Err(e) => {
            assert!(e.status().is_client_error(), "{target:?}: {e}");
            let _ = (e.to_string(), e.s3_code());
        }
    }
});
