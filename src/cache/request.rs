//! What a read asks of the cache: whether it may be answered from it, which
//! bytes, and on which conditions. Pure logic over the request's headers.

use http::{header, HeaderMap, Method};

use crate::error::Error;
use crate::upstream::integration::{Read, SIGNED_REQUEST_HEADERS};

/// A read the cache can answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// A HEAD: headers only.
    pub head: bool,
    /// The object version asked for.
    pub version_id: Option<String>,
    /// The byte range asked for.
    pub range: Option<ByteRange>,
    /// `If-None-Match`: the entity tags the client already has.
    pub if_none_match: Option<String>,
    /// `Cache-Control: no-cache` (or `Pragma: no-cache`): revalidate first.
    pub no_cache: bool,
}

/// One `Range: bytes=…` the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=FIRST-` or `bytes=FIRST-LAST`.
    From {
        /// First byte.
        first: u64,
        /// Last byte, inclusive.
        last: Option<u64>,
    },
    /// `bytes=-N`: the last N bytes.
    Suffix(u64),
}

/// The bytes a response carries: `[start, end)` of an object of `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// The object's size.
    pub size: u64,
    /// Answered as `206` with `Content-Range`.
    pub partial: bool,
}

/// Client headers whose meaning the cache does not answer for: they go to the store.
const PASSED_CONDITIONS: [header::HeaderName; 2] = [header::IF_MATCH, header::IF_UNMODIFIED_SINCE];

impl Plan {
    /// The plan for `read`, or `None` when it must go to the store as it is:
    /// query parameters beyond `versionId` (response overrides), SSE-C,
    /// checksum or requester-pays headers, `If-Match`/`If-Unmodified-Since`,
    /// `If-Modified-Since` without `If-None-Match` (beside it, RFC 9110
    /// §13.1.3 says to ignore it, as browsers' revalidations send both),
    /// several ranges or a range the cache does not parse.
    pub fn of(read: &Read<'_>) -> Option<Self> {
        if read.method != Method::GET && read.method != Method::HEAD {
            return None;
        }
        let mut version_id = None;
        for (name, value) in &read.query {
            if *name != "versionId" {
                return None;
            }
            version_id = Some((*value).to_owned());
        }
        let empty = HeaderMap::new();
        let headers = read.client_headers.unwrap_or(&empty);
        let passed = SIGNED_REQUEST_HEADERS.iter().chain(&PASSED_CONDITIONS);
        if passed.into_iter().any(|name| headers.contains_key(name)) {
            return None;
        }
        let if_none_match = text(headers, header::IF_NONE_MATCH);
        if if_none_match.is_none() && headers.contains_key(header::IF_MODIFIED_SINCE) {
            return None;
        }
        let range = match headers.get(header::RANGE) {
            Some(value) => Some(ByteRange::parse(value.to_str().ok()?)?),
            None => None,
        };
        Some(Self {
            head: read.method == Method::HEAD,
            version_id,
            range,
            if_none_match,
            no_cache: asks_no_cache(headers),
        })
    }

    /// The slice that holds the first byte asked for (the first slice when
    /// that depends on the size, unknown yet).
    pub fn first_slice(&self, slice: u64) -> u64 {
        match self.range {
            Some(ByteRange::From { first, .. }) => first / slice,
            _ => 0,
        }
    }
}

fn text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?;
    Some(value.to_owned())
}

/// Whether the client asks for an end-to-end revalidation (a forced reload).
fn asks_no_cache(headers: &HeaderMap) -> bool {
    let says = |name, directive: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|d| d.trim().eq_ignore_ascii_case(directive))
            })
        })
    };
    says(header::CACHE_CONTROL, "no-cache")
        || says(header::CACHE_CONTROL, "max-age=0")
        || says(header::PRAGMA, "no-cache")
}

impl ByteRange {
    /// Parses a single-range `bytes=` header value; `None` for anything else.
    pub fn parse(value: &str) -> Option<Self> {
        let spec = value.trim().strip_prefix("bytes=")?.trim();
        let (first, last) = spec.split_once('-')?;
        let number = |s: &str| -> Option<u64> {
            let s = s.trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        if first.trim().is_empty() {
            return Some(Self::Suffix(number(last)?));
        }
        let first = number(first)?;
        let last = if last.trim().is_empty() {
            None
        } else {
            Some(number(last)?)
        };
        if last.is_some_and(|last| last < first) {
            return None;
        }
        Some(Self::From { first, last })
    }
}

impl Span {
    /// The bytes `range` asks of an object of `size`, as S3 answers them: a
    /// range past the end is `416 InvalidRange`; a last byte past the end is
    /// cut to it.
    pub fn of(range: Option<ByteRange>, size: u64, integration: &str) -> Result<Self, Error> {
        let Some(range) = range else {
            return Ok(Self {
                start: 0,
                end: size,
                size,
                partial: false,
            });
        };
        let (start, end) = match range {
            ByteRange::From { first, last } if first < size => {
                (first, last.map_or(size, |l| l.saturating_add(1).min(size)))
            }
            ByteRange::Suffix(n) if n > 0 && size > 0 => (size - n.min(size), size),
            _ => return Err(invalid_range(size, integration)),
        };
        Ok(Self {
            start,
            end,
            size,
            partial: true,
        })
    }

    /// Bytes in the span.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether it holds no byte.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The slices it covers, of `slice` bytes each.
    pub fn slices(&self, slice: u64) -> std::ops::Range<u64> {
        if self.is_empty() {
            return 0..0;
        }
        self.start / slice..(self.end - 1) / slice + 1
    }

    /// The part of slice `index` (its `bytes`) inside the span.
    pub fn cut(&self, index: u64, slice: u64, bytes: &bytes::Bytes) -> bytes::Bytes {
        let offset = index * slice;
        let len = bytes.len();
        // Both bounds are clamped to `len`, so they fit a usize.
        let within = |at: u64| usize::try_from(at).map_or(len, |at| at.min(len));
        let from = within(self.start.saturating_sub(offset));
        let to = within(self.end.saturating_sub(offset));
        bytes.slice(from..to.max(from))
    }

    /// `Content-Range` of a partial answer.
    pub fn content_range(&self) -> String {
        format!("bytes {}-{}/{}", self.start, self.end - 1, self.size)
    }
}

/// The store's answer to a range past the end, given by the cache.
fn invalid_range(size: u64, integration: &str) -> Error {
    Error::UpstreamStatus {
        integration: integration.to_owned(),
        status: 416,
        code: "InvalidRange".into(),
        message: "The requested range is not satisfiable".into(),
        content_range: http::HeaderValue::from_str(&format!("bytes */{size}")).ok(),
        store_ids: None,
    }
}

/// Whether `If-None-Match: tags` matches the entity tag `etag` (weak comparison).
pub fn none_match_hits(tags: &str, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let etag = strip(etag);
    tags.split(',').any(|t| t.trim() == "*" || strip(t) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::endpoint::Address;
    use http::HeaderValue;

    fn read_with<'a>(headers: &'a HeaderMap, query: Vec<(&'a str, &'a str)>) -> Read<'a> {
        Read {
            method: Method::GET,
            address: Address {
                scheme: "http",
                host: "h".into(),
                path: "/b/k".into(),
            },
            query,
            client_headers: Some(headers),
        }
    }

    #[test]
    fn ranges_parse_as_s3_reads_them() {
        assert_eq!(
            ByteRange::parse("bytes=0-99"),
            Some(ByteRange::From {
                first: 0,
                last: Some(99)
            })
        );
        assert_eq!(
            ByteRange::parse("bytes=5-"),
            Some(ByteRange::From {
                first: 5,
                last: None
            })
        );
        assert_eq!(ByteRange::parse("bytes=-10"), Some(ByteRange::Suffix(10)));
        for odd in [
            "bytes=0-1,4-5",
            "bytes=9-3",
            "items=0-1",
            "bytes=a-b",
            "bytes=-",
        ] {
            assert_eq!(ByteRange::parse(odd), None, "{odd}");
        }
    }

    #[test]
    fn spans_follow_the_object_size() {
        let full = Span::of(None, 10, "i").ok();
        assert_eq!(
            full.map(|s| (s.start, s.end, s.partial)),
            Some((0, 10, false))
        );
        let cut = Span::of(ByteRange::parse("bytes=8-100"), 10, "i").ok();
        assert_eq!(
            cut.map(|s| (s.start, s.end, s.content_range())),
            Some((8, 10, "bytes 8-9/10".into()))
        );
        let suffix = Span::of(ByteRange::parse("bytes=-30"), 10, "i").ok();
        assert_eq!(suffix.map(|s| (s.start, s.end)), Some((0, 10)));
        let past = Span::of(ByteRange::parse("bytes=10-"), 10, "i");
        assert!(matches!(
            past,
            Err(Error::UpstreamStatus { status: 416, .. })
        ));
        assert!(Span::of(ByteRange::parse("bytes=-0"), 10, "i").is_err());
    }

    #[test]
    fn a_span_is_cut_from_its_slices() {
        let span = Span::of(ByteRange::parse("bytes=3-12"), 20, "i").ok();
        let span = span.expect("a span");
        assert_eq!(span.slices(5), 0..3);
        let bytes = |from: u64| {
            bytes::Bytes::from(
                (from..from + 5)
                    .map(|b| u8::try_from(b).unwrap_or(0))
                    .collect::<Vec<u8>>(),
            )
        };
        let parts: Vec<u8> = span
            .slices(5)
            .flat_map(|i| span.cut(i, 5, &bytes(i * 5)).to_vec())
            .collect();
        assert_eq!(parts, (3..13).collect::<Vec<u8>>());
        let empty = Span::of(None, 0, "i").ok();
        assert_eq!(empty.map(|s| s.slices(5)), Some(0..0));
    }

    #[test]
    fn only_plain_reads_are_planned() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=0-9"));
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=0, no-cache"),
        );
        let plan = Plan::of(&read_with(&headers, vec![("versionId", "v1")]));
        let plan = plan.map(|p| (p.first_slice(4), p.no_cache, p.version_id));
        assert_eq!(plan, Some((0, true, Some("v1".into()))));
        assert_eq!(
            Plan::of(&read_with(&headers, vec![("response-content-type", "a/b")])),
            None
        );
        for name in [
            "if-match",
            "if-modified-since",
            "x-amz-server-side-encryption-customer-key",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_static("x"));
            assert_eq!(Plan::of(&read_with(&headers, vec![])), None, "{name}");
        }
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=0-1,5-6"));
        assert_eq!(Plan::of(&read_with(&headers, vec![])), None);
    }

    #[test]
    fn a_browser_revalidation_is_answered_by_its_entity_tag() {
        let mut headers = HeaderMap::new();
        let date = HeaderValue::from_static("Fri, 04 Dec 2026 10:00:00 GMT");
        headers.insert(header::IF_MODIFIED_SINCE, date);
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"e\""));
        let plan = Plan::of(&read_with(&headers, vec![])).map(|p| p.if_none_match);
        assert_eq!(plan, Some(Some("\"e\"".into())));
    }

    #[test]
    fn if_none_match_compares_weakly() {
        assert!(none_match_hits("\"a\", W/\"b\"", "\"b\""));
        assert!(none_match_hits("*", "\"b\""));
        assert!(!none_match_hits("\"a\"", "\"b\""));
    }
}
