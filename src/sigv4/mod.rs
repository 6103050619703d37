//! AWS Signature Version 4 for S3, on the hot path.
//!
//! S3 rules: every path segment is percent-encoded once (no double encoding),
//! the path is never normalised, and payloads are `UNSIGNED-PAYLOAD`.
//! Derived signing keys are cached per credentials, date, region and service,
//! so a signature costs one canonical-request hash and one HMAC.

use std::sync::{PoisonError, RwLock};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use zeroize::Zeroize;

pub mod canonical;
pub mod time;

use canonical::{Hex64, QueryBuilder, SigningKey};
pub use time::rfc3339;
use time::AmzTime;

/// Payload hash used for every request s3gate signs: bodies stream unhashed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Derived keys cached per [`Credentials`]: one per (date, region, service) in use.
const KEY_CACHE_SLOTS: usize = 4;

/// `"AWS4" + secret access key`, the key of the first HMAC of the derivation.
/// Zeroed on drop, never printed.
struct Secret(Box<[u8]>);

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("** redacted **")
    }
}

struct CachedKey {
    date: u32,
    region: Box<str>,
    service: Box<str>,
    key: SigningKey,
}

/// A few derived signing keys, replaced oldest first.
struct KeyCache {
    slots: Vec<CachedKey>,
    /// Index of the oldest slot once `slots` is full.
    oldest: usize,
}

impl KeyCache {
    #[inline]
    fn get(&self, date: u32, region: &str, service: &str) -> Option<&SigningKey> {
        self.slots
            .iter()
            .find(|s| s.date == date && &*s.region == region && &*s.service == service)
            .map(|s| &s.key)
    }

    fn insert(&mut self, entry: CachedKey) {
        if self.slots.len() < KEY_CACHE_SLOTS {
            self.slots.push(entry);
        } else {
            self.slots[self.oldest] = entry;
            self.oldest = (self.oldest + 1) % KEY_CACHE_SLOTS;
        }
    }
}

/// Signing credentials: an access key, its secret and an optional session token.
/// Debug output redacts the secret and the token; the secret is zeroed on drop.
///
/// Also caches the derived signing keys in use (a few (date, region, service)
/// combinations, oldest replaced first), so share one `Arc<Credentials>` between tasks.
pub struct Credentials {
    access_key_id: String,
    secret: Secret,
    session_token: Option<String>,
    /// The session token percent-encoded for the query, once.
    session_token_query: Option<Box<str>>,
    expires_at: Option<SystemTime>,
    keys: RwLock<KeyCache>,
}

impl Credentials {
    /// Credentials that sign with `secret_access_key`, optionally with a session token
    /// and an expiry (session credentials from STS).
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
        expires_at: Option<SystemTime>,
    ) -> Self {
        let mut secret_access_key = secret_access_key.into();
        let mut prefixed = Vec::with_capacity(4 + secret_access_key.len());
        prefixed.extend_from_slice(b"AWS4");
        prefixed.extend_from_slice(secret_access_key.as_bytes());
        secret_access_key.zeroize();
        let session_token_query = session_token.as_deref().map(|token| {
            let mut encoded = String::with_capacity(canonical::encoded_len_hint(token));
            encode_query_component(token, &mut encoded);
            encoded.into_boxed_str()
        });
        Credentials {
            access_key_id: access_key_id.into(),
            secret: Secret(prefixed.into_boxed_slice()),
            session_token,
            session_token_query,
            expires_at,
            keys: RwLock::new(KeyCache {
                slots: Vec::with_capacity(KEY_CACHE_SLOTS),
                oldest: 0,
            }),
        }
    }
    /// The access key id.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }
    /// The session token, for session credentials.
    pub fn session_token(&self) -> Option<&str> {
        self.session_token.as_deref()
    }
    /// When the credentials expire, for session credentials.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// The signing key for `time`'s date, `region` and `service`: from the cache, or
    /// derived and cached.
    fn signing_key(&self, time: &AmzTime, region: &str, service: &str) -> SigningKey {
        let date = time.date_number();
        {
            let cache = self.keys.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(key) = cache.get(date, region, service) {
                return key.clone();
            }
        }
        let key = SigningKey::derive_prefixed(&self.secret.0, time.date(), region, service);
        let mut cache = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        if cache.get(date, region, service).is_none() {
            cache.insert(CachedKey {
                date,
                region: region.into(),
                service: service.into(),
                key: key.clone(),
            });
        }
        key
    }
}

impl Drop for Credentials {
    fn drop(&mut self) {
        if let Some(token) = &mut self.session_token {
            token.zeroize();
        }
        if let Some(token) = &mut self.session_token_query {
            token.zeroize();
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("expires_at", &self.expires_at.map(rfc3339))
            .finish_non_exhaustive()
    }
}

impl From<&aws_credential_types::Credentials> for Credentials {
    /// Copies AWS SDK credentials (access key, secret, session token and expiry).
    fn from(c: &aws_credential_types::Credentials) -> Self {
        Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            c.session_token().map(str::to_owned),
            c.expiry(),
        )
    }
}

/// One S3 request to sign.
pub struct SigningRequest<'a> {
    /// `GET` or `HEAD`.
    pub method: &'a str,
    /// Host (with `:port` when not the scheme's default), exactly as the client will send it.
    pub host: &'a str,
    /// Path as sent on the wire, already percent-encoded by [`encode_path`]; used verbatim as the canonical URI.
    pub path: &'a str,
    /// Query parameters, not encoded (the signer encodes and sorts them).
    pub query: &'a [(&'a str, &'a str)],
    /// Signing region, e.g. `us-east-1`.
    pub region: &'a str,
    /// Signing service, `s3`.
    pub service: &'a str,
    /// Signing time.
    pub time: SystemTime,
}

/// Percent-encodes an S3 object path (`/bucket/key` or `/key`) once, keeping `/`.
pub fn encode_path(raw: &str) -> String {
    let mut out = String::with_capacity(canonical::encoded_len_hint(raw));
    canonical::encode_path_into(raw, &mut out);
    out
}

/// Percent-encodes a query name or value per SigV4 (unreserved characters kept, `/` encoded).
pub fn encode_query_component(raw: &str, out: &mut String) {
    canonical::encode_query_into(raw, out);
}

/// Hashes the canonical request of `req` (the canonical query written by `write_query`,
/// canonical `headers`) and returns the hex signature of its string to sign.
#[inline]
fn sign(
    key: &SigningKey,
    req: &SigningRequest<'_>,
    date_time: &str,
    write_query: impl FnOnce(&mut Sha256),
    headers: &[(&str, &str)],
    signed_headers: &str,
) -> Hex64 {
    let mut hasher = Sha256::new();
    canonical::write_canonical_request(
        &mut hasher,
        req.method,
        req.path,
        write_query,
        headers,
        signed_headers,
        UNSIGNED_PAYLOAD,
    );
    let request_hash = Hex64::new(&hasher.finalize());
    let mut mac = key.mac();
    canonical::write_string_to_sign(
        &mut mac,
        date_time,
        req.region,
        req.service,
        request_hash.as_bytes(),
    );
    Hex64::new(&hmac::Mac::finalize(mac).into_bytes())
}

/// Names of the presigning parameters, in canonical (sorted) order.
const PRESIGN_PARAMS: [&str; 6] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-Security-Token",
    "X-Amz-SignedHeaders",
];
const SECURITY_TOKEN: usize = 4;

/// Writes the encoded value of presigning parameter `PRESIGN_PARAMS[which]`.
#[inline]
fn write_presign_value(
    out: &mut String,
    which: usize,
    creds: &Credentials,
    req: &SigningRequest<'_>,
    date_time: &str,
    expires_in: u64,
) {
    match which {
        0 => out.push_str(canonical::ALGORITHM),
        1 => {
            encode_query_component(&creds.access_key_id, out);
            out.push_str("%2F");
            out.push_str(&date_time[..8]);
            out.push_str("%2F");
            encode_query_component(req.region, out);
            out.push_str("%2F");
            encode_query_component(req.service, out);
            out.push_str("%2Faws4_request");
        }
        2 => out.push_str(date_time),
        3 => crate::decimal::push(out, expires_in),
        SECURITY_TOKEN => out.push_str(creds.session_token_query.as_deref().unwrap_or_default()),
        _ => out.push_str("host"),
    }
}

/// Presigns `req` with query authentication valid for `expires_in` seconds.
/// Returns the whole query string (no leading `?`): the caller's parameters and the
/// `X-Amz-*` ones, encoded and sorted, ending with `X-Amz-Signature`.
// Longer than 60 lines on purpose: the hot path writes the canonical query
// and the URL's query in one pass into buffers sized up front; split up, a
// dozen locals would travel through helpers. tests/sigv4.rs pins it byte for
// byte against aws-sigv4.
pub fn presign(creds: &Credentials, req: &SigningRequest<'_>, expires_in: u64) -> String {
    let time = AmzTime::new(req.time);
    let date_time = time.date_time();
    let key = creds.signing_key(&time, req.region, req.service);
    let has_token = creds.session_token_query.is_some();
    let wanted = |i: usize| i != SECURITY_TOKEN || has_token;

    // A caller parameter named like a presigning one (never sensible, but signed
    // like aws-sigv4 does) takes the general path: everything encoded, then sorted.
    let clash = req
        .query
        .iter()
        .any(|(name, _)| PRESIGN_PARAMS.contains(name));
    let caller_len: usize = req
        .query
        .iter()
        .map(|(k, v)| canonical::encoded_len_hint(k) + canonical::encoded_len_hint(v))
        .sum();
    let presign_len = 240
        + creds.access_key_id.len()
        + req.region.len()
        + req.service.len()
        + creds.session_token_query.as_deref().map_or(0, str::len);
    let signature_len = "&X-Amz-Signature=".len() + 64;

    let n = req.query.len() + if clash { PRESIGN_PARAMS.len() } else { 0 };
    let mut out = canonical::with_spans(n, |spans| {
        let capacity = if clash {
            caller_len + presign_len
        } else {
            caller_len
        };
        let mut q = QueryBuilder::new(spans, capacity);
        for (name, value) in req.query {
            q.push_raw(name, value);
        }
        if clash {
            for (i, name) in PRESIGN_PARAMS
                .iter()
                .enumerate()
                .filter(|(i, _)| wanted(*i))
            {
                q.push_with(
                    |b| b.push_str(name),
                    |b| write_presign_value(b, i, creds, req, date_time, expires_in),
                );
            }
            return q.finish(signature_len);
        }
        // Usual path: merge the sorted caller parameters with the presigning ones,
        // which are sorted already and written straight into the output.
        q.sort();
        let mut out =
            String::with_capacity(q.encoded_len() + 2 * q.len() + presign_len + signature_len);
        let mut next = 0;
        for (i, name) in PRESIGN_PARAMS
            .iter()
            .enumerate()
            .filter(|(i, _)| wanted(*i))
        {
            while next < q.len() && q.name(next) < *name {
                q.write_pair(next, &mut out);
                next += 1;
            }
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(name);
            out.push('=');
            write_presign_value(&mut out, i, creds, req, date_time, expires_in);
        }
        while next < q.len() {
            q.write_pair(next, &mut out);
            next += 1;
        }
        out
    });

    let signature = sign(
        &key,
        req,
        date_time,
        |h| h.update(out.as_bytes()),
        &[("host", req.host)],
        "host",
    );
    out.push_str("&X-Amz-Signature=");
    out.push_str(signature.as_str());
    out
}

/// Headers that authenticate a request signed in the `Authorization` header.
#[derive(Debug, Clone)]
pub struct SignedHeaders {
    /// `Authorization` header value.
    pub authorization: String,
    /// `x-amz-date` header value.
    pub amz_date: String,
    /// `x-amz-content-sha256` header value (always [`UNSIGNED_PAYLOAD`]).
    pub content_sha256: &'static str,
    /// `x-amz-security-token` header value, for session credentials.
    pub security_token: Option<String>,
}

/// Signs `req` in headers: signs `host`, `x-amz-content-sha256`, `x-amz-date` and,
/// with session credentials, `x-amz-security-token`.
pub fn sign_headers(creds: &Credentials, req: &SigningRequest<'_>) -> SignedHeaders {
    sign_headers_with(creds, req, &[])
}

/// Signs `req` in headers like [`sign_headers`], and also the `extra` headers
/// the request will carry (lowercase names, each at most once, none of the four
/// the signer adds; values as sent, trimmed and with runs of spaces collapsed
/// in the signature as aws-sigv4 does).
// Longer than 60 lines for the reason `presign` is: one pass, no
// intermediate allocations without extra headers, pinned byte for byte
// against aws-sigv4.
pub fn sign_headers_with(
    creds: &Credentials,
    req: &SigningRequest<'_>,
    extra: &[(&str, &str)],
) -> SignedHeaders {
    let time = AmzTime::new(req.time);
    let date_time = time.date_time();
    let key = creds.signing_key(&time, req.region, req.service);
    let token = creds.session_token();

    let fixed = [
        ("host", req.host),
        ("x-amz-content-sha256", UNSIGNED_PAYLOAD),
        ("x-amz-date", date_time),
        ("x-amz-security-token", token.unwrap_or_default()),
    ];
    let fixed = if token.is_some() {
        &fixed[..]
    } else {
        &fixed[..3]
    };
    let trimmed: Vec<(&str, std::borrow::Cow<'_, str>)> = extra
        .iter()
        .map(|(name, value)| (*name, canonical::trim_all(value)))
        .collect();
    let mut all: Vec<(&str, &str)>;
    let joined: String;
    let (headers, signed_headers): (&[(&str, &str)], &str) = if extra.is_empty() {
        let names = if token.is_some() {
            "host;x-amz-content-sha256;x-amz-date;x-amz-security-token"
        } else {
            "host;x-amz-content-sha256;x-amz-date"
        };
        (fixed, names)
    } else {
        all = fixed.to_vec();
        all.extend(trimmed.iter().map(|(name, value)| (*name, value.as_ref())));
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        joined = all
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(";");
        (&all, &joined)
    };
    // The canonical query goes straight into the hash: the caller sends the same
    // string, built by `canonical::query_string`.
    let signature = canonical::with_spans(req.query.len(), |spans| {
        let capacity = req
            .query
            .iter()
            .map(|(k, v)| canonical::encoded_len_hint(k) + canonical::encoded_len_hint(v))
            .sum();
        let mut q = QueryBuilder::new(spans, capacity);
        for (name, value) in req.query {
            q.push_raw(name, value);
        }
        q.sort();
        sign(
            &key,
            req,
            date_time,
            |h| q.write_to(h),
            headers,
            signed_headers,
        )
    });

    let mut authorization = String::with_capacity(
        256 + creds.access_key_id.len() + req.region.len() + req.service.len(),
    );
    for part in [
        canonical::ALGORITHM,
        " Credential=",
        &creds.access_key_id,
        "/",
        &date_time[..8],
        "/",
        req.region,
        "/",
        req.service,
        "/aws4_request, SignedHeaders=",
        signed_headers,
        ", Signature=",
        signature.as_str(),
    ] {
        authorization.push_str(part);
    }

    SignedHeaders {
        authorization,
        amz_date: date_time.to_owned(),
        content_sha256: UNSIGNED_PAYLOAD,
        security_token: token.map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn credentials_are_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Credentials>();
    }

    #[test]
    fn key_cache_is_bounded_and_replaces_oldest() {
        let creds = Credentials::new("AKID", "secret", None, None);
        let day = |d: u64| AmzTime::new(UNIX_EPOCH + Duration::from_secs(d * 86_400));
        for d in 0..(KEY_CACHE_SLOTS as u64 + 2) {
            let key = creds.signing_key(&day(d), "us-east-1", "s3");
            let fresh = SigningKey::derive("secret", day(d).date(), "us-east-1", "s3");
            assert_eq!(key.signature("x"), fresh.signature("x"));
        }
        let cache = creds.keys.read().unwrap();
        assert_eq!(cache.slots.len(), KEY_CACHE_SLOTS);
        // Days 0 and 1 were evicted, the most recent ones are kept.
        assert!(cache.get(day(0).date_number(), "us-east-1", "s3").is_none());
        assert!(cache.get(day(1).date_number(), "us-east-1", "s3").is_none());
        for d in 2..(KEY_CACHE_SLOTS as u64 + 2) {
            assert!(cache.get(day(d).date_number(), "us-east-1", "s3").is_some());
        }
        assert!(cache.get(day(2).date_number(), "us-west-2", "s3").is_none());
        assert!(cache
            .get(day(2).date_number(), "us-east-1", "s3x")
            .is_none());
    }

    #[test]
    fn from_sdk_credentials() {
        let sdk = aws_credential_types::Credentials::new(
            "AKID",
            "SECRET",
            Some("TOKEN".into()),
            Some(UNIX_EPOCH + Duration::from_secs(1_369_353_600)),
            "test",
        );
        let creds = Credentials::from(&sdk);
        assert_eq!(creds.access_key_id(), "AKID");
        assert_eq!(creds.session_token(), Some("TOKEN"));
        assert_eq!(&*creds.secret.0, b"AWS4SECRET");
        let debug = format!("{creds:?}");
        assert!(debug.contains("2013-05-24T00:00:00Z"), "{debug}");
        assert!(
            !debug.contains("SECRET") && !debug.contains("TOKEN"),
            "{debug}"
        );
    }
}
