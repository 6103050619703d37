//! Locators (`s3://`, S3 URLs, ARNs): parsing never panics, and a parsed
//! locator displays as text that parses back to the same locator.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s3gate::locator::{percent_decode, validate_bucket_name, validate_key, AccessPointArn, Locator};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = percent_decode(text);
    if let Ok(locator) = Locator::parse(text) {
        if let Some(bucket) = locator.bucket() {
            assert!(validate_bucket_name(bucket).is_ok(), "{text:?}");
        }
        assert!(validate_key(&locator.key).is_ok(), "{text:?}");
        let shown = locator.to_string();
        let again = Locator::parse(&shown)
            .unwrap_or_else(|e| panic!("{text:?} displays as {shown:?}, which fails: {e}"));
        assert_eq!(again, locator, "{text:?} displays as {shown:?}");
        assert_eq!(again.to_string(), shown);
    }
    if let Ok(ap) = AccessPointArn::parse(text) {
        assert_eq!(AccessPointArn::parse(&ap.to_string()).as_ref(), Ok(&ap));
        let _ = ap.host();
    }
});
