//! ListObjectsV2 XML from a store: parsing any document never panics, a
//! parsed page serialises as JSON, and a listing the gateway URL-encodes
//! (the S3 front's `encoding-type=url`) parses back to the same names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s3gate::front::{listing, s3_listing};

fuzz_target!(|data: &[u8]| {
    let Ok(page) = listing::parse(data) else {
        return;
    };
    let json = serde_json::to_string(&page).unwrap_or_else(|e| panic!("JSON: {e}"));
    assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok());
    if s3gate::xml::field(data, "EncodingType").is_some() {
        return;
    }
    let Ok(encoded) = s3_listing::encode_listing(data) else {
        return;
    };
    let again = listing::parse(&encoded)
        .unwrap_or_else(|e| panic!("the encoded listing does not parse: {e}"));
    let keys = |p: &listing::Page| p.objects.iter().map(|o| o.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&again), keys(&page));
    assert_eq!(again.prefixes, page.prefixes);
});
