//! Gateway-signed URLs and prefix grants: decoding any grant or signed
//! `/v1/object` query never panics and never verifies without the key;
//! what the gateway signs verifies, and any change to it does not.
//!
//! Input: NUL-separated parts: a grant text, a `/v1/object` query, then the
//! client, locator and expiry of a URL and grant to sign.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s3gate::auth::url_signature::{Grant, SignedObject, UrlKeys};
use s3gate::auth::Authenticator;
use s3gate::config::Secret;
use s3gate::front::query::Query;

const KEY: &str = "0123456789abcdef0123456789abcdef-fuzz";
/// Unix time the checks run at.
const NOW: u64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\0');
    let grant_text = parts.next().unwrap_or_default();
    let object_query = parts.next().unwrap_or_default();
    let client = parts.next().unwrap_or_default();
    let locator = parts.next().unwrap_or_default();
    let expires_at = parts.next().and_then(|e| e.parse().ok()).unwrap_or(NOW + 60);

    let auth = Authenticator::new(Vec::new(), &[Secret::new(KEY.into())], false)
        .unwrap_or_else(|e| panic!("keys: {e}"));
    let other = UrlKeys::new(&[Secret::new(format!("{KEY}-other"))])
        .unwrap_or_else(|e| panic!("keys: {e}"));

    // Any grant text: decodes only when signed with the key.
    if let Ok(grant) = Grant::decode(grant_text, &auth.url_keys, NOW) {
        assert!(grant.expires_at > NOW);
        assert!(Grant::decode(grant_text, &other, NOW).is_err());
    }
    let _ = auth.grant(grant_text, NOW);

    // Any `/v1/object` query, read as the front reads it.
    if let Ok(query) = Query::parse(Some(object_query)) {
        let url = SignedObject {
            method: "GET",
            client: query.get("client").unwrap_or_default(),
            locator: query.get("locator").unwrap_or_default(),
            expires_at: query.get("expires").and_then(|e| e.parse().ok()).unwrap_or(0),
            content_type: query.get("response-content-type"),
            content_disposition: query.get("response-content-disposition"),
            version_id: query.get("version_id"),
        };
        let (kid, sig) = (query.get("kid").unwrap_or_default(), query.get("sig").unwrap_or_default());
        if auth.signed_object(&url, kid, sig, NOW).is_ok() {
            assert!(url.verify(&other, kid, sig, NOW).is_err());
        }
    }

    // What the gateway signs verifies until it expires, and only as signed.
    let grant = Grant {
        client: client.to_owned(),
        prefix: locator.to_owned(),
        expires_at,
    };
    let encoded = grant.encode(&auth.url_keys);
    let decoded = Grant::decode(&encoded, &auth.url_keys, NOW);
    if expires_at > NOW {
        assert_eq!(decoded.as_ref().ok(), Some(&grant), "{encoded:?}");
    } else {
        assert!(decoded.is_err());
    }
    assert!(Grant::decode(&encoded, &other, NOW).is_err());
    let url = SignedObject {
        method: "GET",
        client,
        locator,
        expires_at,
        content_type: None,
        content_disposition: None,
        version_id: None,
    };
    let (kid, sig) = url.sign(&auth.url_keys);
    assert_eq!(url.verify(&auth.url_keys, kid, &sig, NOW).is_ok(), expires_at > NOW);
    let head = SignedObject { method: "HEAD", ..url };
    assert!(head.verify(&auth.url_keys, kid, &sig, NOW).is_err());
    let changed = SignedObject { locator: &format!("{locator}x"), ..url };
    assert!(changed.verify(&auth.url_keys, kid, &sig, NOW).is_err());
});
