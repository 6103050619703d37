//! The cache's reads of a store: one slice at a time, by range, checked
//! against what the cache knows of the object before any byte is kept.

use std::time::SystemTime;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::meta::{Identity, Meta};
use crate::error::Error;
use crate::upstream::integration::Read;
use crate::upstream::stream::IdleTimeout;

/// What the first read of an object (or its revalidation) found.
#[derive(Debug)]
pub enum First {
    /// `304`: the entity tag still holds.
    NotModified,
    /// The object's metadata and slice `index`.
    Slice {
        /// Its metadata.
        meta: Meta,
        /// Which slice.
        index: u64,
        /// The slice's bytes.
        bytes: Bytes,
    },
    /// Not cacheable (too large, no entity tag, no ranges): the marker to keep.
    Bypass(Meta),
    /// The slice asked for lies past the end: the store answers the client.
    Beyond,
}

/// Reads slice `index` of the object, or with `previous` metadata asks
/// whether it still holds (`If-None-Match`) and reads the slice if not.
pub async fn first(
    identity: &Identity,
    index: u64,
    slice: u64,
    max_object: u64,
    previous: Option<&Meta>,
    now: SystemTime,
) -> Result<First, Error> {
    let start = index * slice;
    let condition = previous.map(|m| (header::IF_NONE_MATCH, m.etag.as_str()));
    let response = match get(identity, start, start + slice - 1, condition).await {
        Ok(response) => response,
        Err(Error::UpstreamStatus { status: 416, .. }) => return Ok(First::Beyond),
        Err(e) => return Err(e),
    };
    if response.status() == StatusCode::NOT_MODIFIED {
        return Ok(First::NotModified);
    }
    let (parts, body) = response.into_parts();
    let Some(etag) = parts
        .headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(First::Bypass(Meta::bypass("", 0, now)));
    };
    let (size, expected) = match parts.status {
        StatusCode::PARTIAL_CONTENT => {
            let (first, last, size) = content_range(&parts.headers)
                .ok_or_else(|| changed(identity, "a 206 without a valid Content-Range"))?;
            if first != start || last != (start + slice).min(size) - 1 {
                return Err(changed(identity, "a 206 of another range than asked"));
            }
            (size, last - first + 1)
        }
        // A store that ignores ranges, or an object that fits in the slice.
        StatusCode::OK => {
            let length = content_length(&parts.headers).unwrap_or(u64::MAX);
            if index != 0 || length > slice {
                return Ok(First::Bypass(Meta::bypass(etag, length, now)));
            }
            (length, length)
        }
        other => {
            return Err(changed(
                identity,
                &format!("status {other} to a range read"),
            ))
        }
    };
    if size > max_object {
        return Ok(First::Bypass(Meta::bypass(etag, size, now)));
    }
    let meta = Meta::of(&parts.headers, size, now)
        .ok_or_else(|| changed(identity, "an unreadable ETag"))?;
    let bytes = collect(identity, body, expected).await?;
    Ok(First::Slice { meta, index, bytes })
}

/// Reads slice `index` of the version `meta` describes; fails, and keeps
/// nothing, if the object changed (`If-Match` refused, or another entity tag,
/// size or range in the answer).
pub async fn slice(
    identity: &Identity,
    meta: &Meta,
    index: u64,
    slice: u64,
) -> Result<Bytes, Error> {
    let start = index * slice;
    let len = meta.slice_len(index, slice);
    let condition = Some((header::IF_MATCH, meta.etag.as_str()));
    let response = get(identity, start, start + len - 1, condition).await?;
    let (parts, body) = response.into_parts();
    let etag = parts
        .headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok());
    let range = content_range(&parts.headers);
    if parts.status != StatusCode::PARTIAL_CONTENT
        || etag != Some(meta.etag.as_str())
        || range != Some((start, start + len - 1, meta.size))
    {
        return Err(changed(identity, "another version in the answer"));
    }
    collect(identity, body, len).await
}

/// A signed GET of bytes `first..=last`, with an optional condition.
async fn get(
    identity: &Identity,
    first: u64,
    last: u64,
    condition: Option<(HeaderName, &str)>,
) -> Result<Response<Incoming>, Error> {
    let mut headers = HeaderMap::new();
    let range = format!("bytes={first}-{last}");
    headers.insert(header::RANGE, header_value(&range)?);
    if let Some((name, value)) = condition {
        headers.insert(name, header_value(value)?);
    }
    let query = match &identity.version_id {
        Some(version) => vec![("versionId", version.as_str())],
        None => Vec::new(),
    };
    let read = Read {
        method: Method::GET,
        address: identity.address.clone(),
        query,
        client_headers: Some(&headers),
    };
    identity.integration.read(read).await
}

/// The body, which must be exactly `len` bytes.
async fn collect(identity: &Identity, body: Incoming, len: u64) -> Result<Bytes, Error> {
    let idle = identity.integration.body_idle_timeout();
    let limit = usize::try_from(len).unwrap_or(usize::MAX).saturating_add(1);
    let collected = Limited::new(IdleTimeout::new(body, idle), limit)
        .collect()
        .await;
    let bytes = collected
        .map_err(|e| Error::UpstreamFailed {
            integration: identity.integration.name.clone(),
            reason: format!("reading a slice: {e}"),
        })?
        .to_bytes();
    if bytes.len() as u64 != len {
        return Err(changed(identity, "a body of another length than announced"));
    }
    Ok(bytes)
}

fn changed(identity: &Identity, what: &str) -> Error {
    Error::UpstreamFailed {
        integration: identity.integration.name.clone(),
        reason: format!("the store sent {what} to a cache read"),
    }
}

fn header_value(value: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(value).map_err(|_| Error::Internal("invalid header value".into()))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// `Content-Range: bytes FIRST-LAST/SIZE`.
fn content_range(headers: &HeaderMap) -> Option<(u64, u64, u64)> {
    let value = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let (range, size) = value.strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last, size) = (first.parse().ok()?, last.parse().ok()?, size.parse().ok()?);
    (first <= last && last < size).then_some((first, last, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse_only_when_consistent() {
        let range = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_RANGE, HeaderValue::from_static(v));
            content_range(&h)
        };
        assert_eq!(range("bytes 0-9/20"), Some((0, 9, 20)));
        assert_eq!(range("bytes 5-3/20"), None);
        assert_eq!(range("bytes 0-20/20"), None);
        assert_eq!(range("bytes */20"), None);
    }
}
