//! What the cache knows of one object: its entity tag, size and the headers
//! a response about it carries, and the keys its entries are stored under.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::upstream::endpoint::Address;
use crate::upstream::Integration;

/// One object's metadata, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The store's `ETag`, quotes included.
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
    /// The object's own response headers ([`KEPT_HEADERS`] and families).
    pub headers: Vec<(String, Vec<u8>)>,
    /// When the store last confirmed the entity tag (seconds since the epoch).
    pub validated_at: u64,
    /// Too large or not cacheable (no entity tag, no ranges): stream it through.
    pub bypass: bool,
    /// `headers` and the entity tag as a response carries them, parsed once
    /// (when read or decoded) rather than on every hit.
    #[serde(skip)]
    response_headers: HeaderMap,
}

/// Response headers of an object kept with it (the per-response ones — length,
/// range, request ids, whole-object checksums — are not).
const KEPT_HEADERS: [HeaderName; 9] = [
    header::CONTENT_TYPE,
    header::LAST_MODIFIED,
    header::CACHE_CONTROL,
    header::CONTENT_DISPOSITION,
    header::CONTENT_ENCODING,
    header::CONTENT_LANGUAGE,
    header::EXPIRES,
    HeaderName::from_static("x-amz-version-id"),
    HeaderName::from_static("x-amz-storage-class"),
];

/// Families of response headers kept by prefix: user metadata and which
/// server-side encryption (never key material).
const KEPT_PREFIXES: [&str; 2] = ["x-amz-meta-", "x-amz-server-side-encryption"];

fn is_kept(name: &HeaderName) -> bool {
    KEPT_HEADERS.contains(name) || KEPT_PREFIXES.iter().any(|p| name.as_str().starts_with(p))
}

/// Seconds since the epoch of `time`.
pub fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Meta {
    /// The metadata of an object of `size` whose response carried `headers`,
    /// confirmed at `now`; `None` without an entity tag.
    pub fn of(headers: &HeaderMap, size: u64, now: SystemTime) -> Option<Self> {
        let etag = headers.get(header::ETAG)?.to_str().ok()?.to_owned();
        let kept = headers
            .iter()
            .filter(|(name, _)| is_kept(name))
            .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
            .collect();
        Some(
            Self {
                etag,
                size,
                headers: kept,
                validated_at: unix(now),
                bypass: false,
                response_headers: HeaderMap::new(),
            }
            .prepared(),
        )
    }

    /// A marker that the object streams through uncached, for `size` bytes
    /// under `etag`.
    pub fn bypass(etag: &str, size: u64, now: SystemTime) -> Self {
        Self {
            etag: etag.to_owned(),
            size,
            headers: Vec::new(),
            validated_at: unix(now),
            bypass: true,
            response_headers: HeaderMap::new(),
        }
        .prepared()
    }

    /// Whether the store confirmed it less than `after` ago.
    pub fn is_fresh(&self, now: SystemTime, after: Duration) -> bool {
        unix(now).saturating_sub(self.validated_at) < after.as_secs()
    }

    /// The same metadata, confirmed again at `now`.
    pub fn confirmed(&self, now: SystemTime) -> Self {
        Self {
            validated_at: unix(now),
            ..self.clone()
        }
    }

    /// Length of slice `index` of `slice` bytes.
    pub fn slice_len(&self, index: u64, slice: u64) -> u64 {
        let start = index * slice;
        self.size.saturating_sub(start).min(slice)
    }

    /// Adds its headers and its entity tag to `headers`.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        let prepared = self.response_headers.iter();
        headers.extend(prepared.map(|(name, value)| (name.clone(), value.clone())));
    }

    /// With [`response_headers`](Self::response_headers) parsed from the stored form.
    fn prepared(mut self) -> Self {
        let mut parsed = HeaderMap::with_capacity(self.headers.len() + 1);
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) {
                parsed.append(name, value);
            }
        }
        if let Ok(etag) = HeaderValue::from_str(&self.etag) {
            parsed.insert(header::ETAG, etag);
        }
        self.response_headers = parsed;
        self
    }

    /// Bytes it occupies in memory, about.
    pub fn weight(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| 2 * (n.len() + v.len()))
            .sum();
        std::mem::size_of::<Self>() + 2 * self.etag.len() + headers
    }

    /// As stored.
    pub fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// From what was stored; `None` if it does not decode.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(bytes)
            .ok()
            .map(Self::prepared)
    }
}

/// Which object: integration, store host and path, and version. Entries of
/// two integrations never meet, even on one store.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The integration that reads it.
    pub integration: Arc<Integration>,
    /// Where it is read from.
    pub address: Address,
    /// The version asked for.
    pub version_id: Option<String>,
    /// `m|` and the identity's parts: the key of its metadata, and after
    /// the prefix the start of its slices' keys.
    meta_key: String,
}

impl Identity {
    /// The object at `address` of `integration`, in `version_id`.
    pub fn new(
        integration: Arc<Integration>,
        address: Address,
        version_id: Option<String>,
    ) -> Self {
        use std::fmt::Write;
        let parts = [
            integration.name.as_str(),
            address.host.as_str(),
            address.path.as_str(),
            version_id.as_deref().unwrap_or(""),
        ];
        // Length-prefixed parts: no part can run into the next.
        let mut key = String::with_capacity(parts.iter().map(|p| p.len() + 8).sum::<usize>() + 2);
        key.push_str("m|");
        for part in parts {
            let _ = write!(key, "{}:{part}|", part.len());
        }
        Self {
            integration,
            address,
            version_id,
            meta_key: key,
        }
    }

    /// Key of its metadata.
    pub fn meta_key(&self) -> &str {
        &self.meta_key
    }

    /// Key of slice `index` of its version `etag`.
    pub fn slice_key(&self, etag: &str, index: u64) -> String {
        use std::fmt::Write;
        let parts = self.meta_key.get(2..).unwrap_or_default();
        let mut key = String::with_capacity(parts.len() + etag.len() + 32);
        key.push_str("s|");
        key.push_str(parts);
        let _ = write!(key, "{}:{etag}|{index}", etag.len());
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn keeps_the_objects_headers_not_the_responses() {
        let from_store = headers(&[
            ("etag", "\"abc\""),
            ("content-type", "image/png"),
            ("content-length", "5"),
            ("content-range", "bytes 0-4/9"),
            ("x-amz-meta-camera", "x100"),
            ("x-amz-request-id", "r1"),
            ("x-amz-checksum-crc32", "AAAA"),
        ]);
        let now = SystemTime::now();
        let meta = Meta::of(&from_store, 9, now).unwrap();
        let mut out = HeaderMap::new();
        meta.write_headers(&mut out);
        assert_eq!(
            out,
            headers(&[
                ("content-type", "image/png"),
                ("x-amz-meta-camera", "x100"),
                ("etag", "\"abc\"")
            ])
        );
        assert_eq!(Meta::decode(&meta.encode()).as_ref(), Some(&meta));
        assert_eq!(Meta::of(&headers(&[("content-type", "a/b")]), 1, now), None);
    }

    #[test]
    fn freshness_counts_from_the_last_confirmation() {
        let then = UNIX_EPOCH + Duration::from_secs(1_000);
        let meta = Meta::bypass("\"e\"", 1, then);
        let after = Duration::from_secs(60);
        assert!(meta.is_fresh(then + Duration::from_secs(59), after));
        assert!(!meta.is_fresh(then + Duration::from_secs(60), after));
        let later = then + Duration::from_secs(120);
        assert!(meta.confirmed(later).is_fresh(later, after));
    }

    #[test]
    fn slices_cover_the_object() {
        let meta = Meta::bypass("\"e\"", 10, SystemTime::now());
        assert_eq!(
            (0..4).map(|i| meta.slice_len(i, 4)).collect::<Vec<_>>(),
            [4, 4, 2, 0]
        );
    }
}
