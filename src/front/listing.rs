//! `/v1/list`: ListObjectsV2 pages as JSON, one page per call or, with
//! `all=true`, every page followed server-side and streamed.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use quick_xml::events::Event;
use serde::Serialize;
use tokio::sync::mpsc;

use super::response;
use crate::body::{Body, BoxError};
use crate::error::Error;
use crate::upstream::integration::Read;
use crate::upstream::stream::IdleTimeout;
use crate::upstream::Resolved;
use crate::xml;

/// Most keys S3 returns in one page.
pub const MAX_PAGE: u32 = 1000;

/// Largest ListObjectsV2 response read (a 1,000-key page is well under it).
const LIST_BODY_LIMIT: usize = 16 << 20;

/// One object of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Object {
    /// Full key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag, quotes included as S3 sends it.
    pub etag: String,
    /// Last-modified time, RFC 3339.
    pub last_modified: String,
}

/// One ListObjectsV2 page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Page {
    /// Common prefixes (folders) when a delimiter is given.
    pub prefixes: Vec<String>,
    /// Objects.
    pub objects: Vec<Object>,
    /// Continuation token of the next page, if any.
    pub next_cursor: Option<String>,
}

/// What one `all=true` listing may cost the store: keys and pages.
#[derive(Debug, Clone, Copy)]
pub struct ListCaps {
    /// Most keys (and prefixes) returned.
    pub max_keys: usize,
    /// Most pages read.
    pub max_pages: usize,
}

/// What one listing asks for.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    /// Delimiter, usually `/`.
    pub delimiter: Option<String>,
    /// Keys per page (1 to 1000).
    pub limit: Option<u32>,
    /// Continuation token from a previous page.
    pub cursor: Option<String>,
    /// Follow every page server-side.
    pub all: bool,
}

/// Checks a listing position given as a key (`prefix`, `start-after`,
/// `marker`) as keys are checked: no `.` or `..` segment, at most S3's
/// key length.
pub fn check_position(name: &'static str, value: &str) -> Result<(), Error> {
    crate::locator::validate_key(value).map_err(|reason| Error::InvalidParameter { name, reason })
}

/// Checks a continuation token: opaque to s3gate, but some stores make it
/// of the next key (as is, or base64-encoded), so a token that is or decodes
/// to a name with a `.` or `..` segment is refused like such a key.
pub fn check_cursor(name: &'static str, token: &str) -> Result<(), Error> {
    let refused = |what: &str| Error::InvalidParameter {
        name,
        reason: format!("{what} a `.` or `..` path segment, which s3gate does not list"),
    };
    if has_dot_segment(token) {
        return Err(refused("the token has"));
    }
    let decoded = base64_decode(token).and_then(|bytes| String::from_utf8(bytes).ok());
    if decoded.is_some_and(|text| has_dot_segment(&text)) {
        return Err(refused("the token names a key with"));
    }
    Ok(())
}

fn has_dot_segment(name: &str) -> bool {
    name.split('/')
        .any(|segment| segment == "." || segment == "..")
}

/// Base64, standard or URL-safe alphabet, padding optional; `None` when
/// `text` is not base64.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in text.bytes() {
        let value = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// Fetches one page of `resolved`'s prefix.
pub async fn page(
    resolved: &Resolved,
    request: &ListRequest,
    cursor: Option<&str>,
) -> Result<Page, Error> {
    let integration = &resolved.integration;
    // Following every page, each is as large as S3 allows: a small page
    // would multiply the LISTs billed to the customer.
    let page_size = if request.all {
        MAX_PAGE
    } else {
        request.limit.unwrap_or(MAX_PAGE)
    };
    let max_keys = page_size.to_string();
    // Keys are asked for as stored: `encoding-type=url` cannot be trusted
    // (some stores echo it without encoding), a raw listing is unambiguous.
    let mut query: Vec<(&str, &str)> = vec![
        ("list-type", "2"),
        ("max-keys", &max_keys),
        ("prefix", &resolved.key),
    ];
    if let Some(d) = &request.delimiter {
        query.push(("delimiter", d));
    }
    if let Some(c) = cursor {
        query.push(("continuation-token", c));
    }
    let read = Read {
        method: Method::GET,
        address: resolved.bucket_address(),
        query,
        client_headers: None,
    };
    let upstream = integration.read(read).await?;
    if upstream.status() != StatusCode::OK {
        return Err(Error::UpstreamFailed {
            integration: integration.name.clone(),
            reason: format!("the listing answered {}", upstream.status()),
        });
    }
    let body = IdleTimeout::new(upstream.into_body(), integration.body_idle_timeout());
    let body = http_body_util::Limited::new(body, LIST_BODY_LIMIT)
        .collect()
        .await
        .map_err(|e| Error::UpstreamFailed {
            integration: integration.name.clone(),
            reason: format!("reading the listing: {e}"),
        })?
        .to_bytes();
    parse(&body).map_err(|reason| Error::UpstreamFailed {
        integration: integration.name.clone(),
        reason: format!("unreadable listing: {reason}"),
    })
}

/// Parses a `ListBucketResult` document.
pub fn parse(xml: &[u8]) -> Result<Page, String> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut page = Page::default();
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut text = String::new();
    let mut object = Object::default();
    let mut url_encoded = false;
    let mut truncated = false;
    let mut buf = Vec::new();
    loop {
        match reader
            .read_event_into(&mut buf)
            .map_err(|e| e.to_string())?
        {
            Event::Start(e) => {
                path.push(e.name().as_ref().to_vec());
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(r) => text.push(xml::resolve_reference(&r)?),
            Event::CData(c) => {
                text.push_str(std::str::from_utf8(&c).map_err(|e| e.to_string())?);
            }
            Event::End(_) => {
                let value = std::mem::take(&mut text);
                let names: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
                match names.as_slice() {
                    [_, b"Contents"] => page.objects.push(std::mem::take(&mut object)),
                    [_, b"Contents", b"Key"] => object.key = value,
                    [_, b"Contents", b"Size"] => {
                        object.size = value.parse().map_err(|_| "bad Size")?;
                    }
                    [_, b"Contents", b"ETag"] => object.etag = value,
                    [_, b"Contents", b"LastModified"] => object.last_modified = value,
                    [_, b"CommonPrefixes", b"Prefix"] => page.prefixes.push(value),
                    [_, b"NextContinuationToken"] => page.next_cursor = Some(value),
                    [_, b"EncodingType"] => url_encoded = value == "url",
                    [_, b"IsTruncated"] => truncated = value == "true",
                    _ => {}
                }
                path.pop();
            }
            Event::Eof => {
                xml::check_ended(&path)?;
                break;
            }
            _ => {}
        }
        buf.clear();
    }
    if !truncated {
        page.next_cursor = None;
    }
    if url_encoded && looks_encoded(&page) {
        for o in &mut page.objects {
            o.key = url_decode(&o.key);
        }
        for p in &mut page.prefixes {
            *p = url_decode(p);
        }
    }
    Ok(page)
}

/// Whether a page that says `EncodingType=url` could be: no key or prefix
/// holds a byte an encoder never leaves as is (a space, a control or
/// non-ASCII character, a `%` that starts no escape). A store that echoes
/// the encoding type without encoding is caught on such a page.
fn looks_encoded(page: &Page) -> bool {
    let names = page
        .objects
        .iter()
        .map(|o| o.key.as_str())
        .chain(page.prefixes.iter().map(String::as_str));
    names.into_iter().all(|name| {
        let bytes = name.as_bytes();
        bytes.iter().enumerate().all(|(i, &b)| match b {
            b'%' => bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)),
            b'!'..=b'~' => !matches!(
                b,
                b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
            ),
            _ => false,
        })
    })
}

/// Decodes S3's `encoding-type=url` (`+` is a space); a name that does not
/// decode (`100%zz`, or not UTF-8 once decoded) stays as the store sent it.
fn url_decode(s: &str) -> String {
    crate::locator::percent_decode(&s.replace('+', "%20")).unwrap_or_else(|_| s.to_owned())
}

/// The JSON response: one page, or every page streamed.
pub async fn respond(
    resolved: Resolved,
    request: ListRequest,
    caps: ListCaps,
) -> Result<Response<Body>, Error> {
    if !request.all {
        let page = page(&resolved, &request, request.cursor.as_deref()).await?;
        let body = serde_json::to_string(&page).map_err(|e| Error::Internal(e.to_string()))?;
        return Ok(response::json(StatusCode::OK, body));
    }
    // The first page decides the status; the rest stream behind it.
    let first = page(&resolved, &request, request.cursor.as_deref()).await?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(stream_all(resolved, request, first, caps, tx));
    let mut response = response::json(StatusCode::OK, String::new());
    *response.body_mut() = ChannelBody { rx }.boxed();
    Ok(response)
}

type Chunk = Result<Frame<Bytes>, BoxError>;

/// Writes `{"objects":[…],"prefixes":[…],"next_cursor":…}` page by page.
/// Objects stream as they arrive; prefixes are gathered and written last.
async fn stream_all(
    resolved: Resolved,
    request: ListRequest,
    first: Page,
    caps: ListCaps,
    tx: mpsc::Sender<Chunk>,
) {
    let send = |s: String| {
        let tx = tx.clone();
        async move { tx.send(Ok(Frame::data(Bytes::from(s)))).await.is_ok() }
    };
    if !send("{\"objects\":[".into()).await {
        return;
    }
    let mut prefixes = Vec::new();
    let mut count = 0usize;
    let mut pages = 1usize;
    let mut page = first;
    loop {
        let mut chunk = String::new();
        for object in &page.objects {
            if count > 0 {
                chunk.push(',');
            }
            chunk.push_str(&serde_json::to_string(object).unwrap_or_default());
            count += 1;
        }
        prefixes.append(&mut page.prefixes);
        if !send(chunk).await {
            return; // the client went away
        }
        let next = match page.next_cursor.take() {
            Some(cursor) if count + prefixes.len() < caps.max_keys && pages < caps.max_pages => {
                cursor
            }
            other => {
                let prefixes = serde_json::to_string(&prefixes).unwrap_or_default();
                let cursor = serde_json::to_string(&other).unwrap_or_default();
                let _ = send(format!(
                    "],\"prefixes\":{prefixes},\"next_cursor\":{cursor}}}"
                ))
                .await;
                return;
            }
        };
        pages += 1;
        page = match self::page(&resolved, &request, Some(&next)).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "listing failed mid-stream");
                let _ = tx.send(Err(Box::new(e))).await;
                return;
            }
        };
    }
}

/// A response body fed by a channel.
struct ChannelBody {
    rx: mpsc::Receiver<Chunk>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Chunk>> {
        self.rx.poll_recv(cx)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing: a document whose root never closes is no listing.
    #[test]
    fn a_listing_that_does_not_end_is_refused() {
        for doc in [
            &b"<ListBucketResult><Contents><Key>a</Key></Contents>"[..],
            b"<ListBucketResult><Contents><Key>a</Key></Contents>,/ListBucketResult>",
            b"<ListBucketResult><IsTruncated>true",
        ] {
            let err = parse(doc).expect_err(&String::from_utf8_lossy(doc));
            assert!(err.contains("ends inside"), "{err}");
        }
    }

    #[test]
    fn a_key_in_a_cdata_section_is_read_whole() {
        // Found by the listing fuzz target: CDATA text was dropped here but
        // kept by the S3 front's encoder, so the two APIs named keys apart.
        let doc = b"<ListBucketResult><Contents><Key>a <![CDATA[<b>&]]>c</Key>\
            <Size>1</Size></Contents></ListBucketResult>";
        let page = parse(doc).unwrap();
        assert_eq!(page.objects[0].key, "a <b>&c");
        let encoded = super::super::s3_listing::encode_listing(doc).unwrap();
        assert_eq!(parse(&encoded).unwrap().objects[0].key, "a <b>&c");
    }

    #[test]
    fn parses_a_url_encoded_page() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>a%2F</Prefix>
<KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>
<Contents><Key>a/x+y%26z.png</Key><LastModified>2026-01-02T03:04:05.000Z</LastModified><ETag>&quot;abc&quot;</ETag><Size>12</Size></Contents>
<CommonPrefixes><Prefix>a/sub%2B/</Prefix></CommonPrefixes>
<NextContinuationToken>tok/en==</NextContinuationToken></ListBucketResult>"#;
        let page = parse(xml).unwrap();
        assert_eq!(page.objects.len(), 1);
        assert_eq!(page.objects[0].key, "a/x y&z.png");
        assert_eq!(page.objects[0].etag, "\"abc\"");
        assert_eq!(page.objects[0].size, 12);
        assert_eq!(page.prefixes, vec!["a/sub+/".to_owned()]);
        assert_eq!(page.next_cursor.as_deref(), Some("tok/en=="));
    }

    fn keys_of(xml: &[u8]) -> Vec<String> {
        parse(xml)
            .unwrap()
            .objects
            .into_iter()
            .map(|o| o.key)
            .collect()
    }

    #[test]
    fn pages_a_store_did_not_encode_keep_their_keys() {
        // The store echoed `url` but sent keys as stored.
        let xml = b"<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>\
<Contents><Key>a b+c</Key><Size>1</Size></Contents><Contents><Key>x+y</Key><Size>1</Size></Contents></ListBucketResult>";
        let keys = keys_of(xml);
        assert_eq!(keys, ["a b+c", "x+y"]);
        // One key that does not decode fails neither the page nor its neighbours.
        let xml = b"<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>\
<Contents><Key>100%zz.txt</Key><Size>1</Size></Contents><Contents><Key>a%20b%2Bc</Key><Size>1</Size></Contents></ListBucketResult>";
        let keys = keys_of(xml);
        assert_eq!(keys, ["100%zz.txt", "a%20b%2Bc"]);
        let xml = b"<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>\
<Contents><Key>%FF%FE.bin</Key><Size>1</Size></Contents><Contents><Key>a%20b%2Bc</Key><Size>1</Size></Contents></ListBucketResult>";
        let keys = keys_of(xml);
        assert_eq!(keys, ["%FF%FE.bin", "a b+c"]);
    }

    #[test]
    fn positions_and_cursors_are_checked_like_keys() {
        for bad in ["datasets/../private/", "..", "a/./b", "./"] {
            assert!(check_position("prefix", bad).is_err(), "{bad}");
            assert!(check_cursor("cursor", bad).is_err(), "{bad}");
        }
        for good in ["", "datasets/", "a/.hidden/", "a..b/", "datasets/..x"] {
            assert!(check_position("prefix", good).is_ok(), "{good}");
        }
        // Tokens of keys with dot segments, base64 in either alphabet.
        for token in [
            "ZGF0YXNldHMvLi4vcHJpdmF0ZS94",
            "ZGF0YXNldHMvLi4vcHJpdmF0ZS94==",
            "Li4vYQ",
        ] {
            let e = check_cursor("continuation-token", token).unwrap_err();
            assert_eq!(e.status(), 400, "{token}");
        }
        // Opaque tokens (AWS, moto's md5) and tokens of plain keys pass.
        for token in [
            "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=",
            "5d41402abc4b2a76b9719d911017c592",
            "ZGF0YXNldHMvYS5wbmc=",
        ] {
            assert!(check_cursor("continuation-token", token).is_ok(), "{token}");
        }
    }

    #[test]
    fn untruncated_pages_have_no_cursor() {
        let xml = b"<ListBucketResult><IsTruncated>false</IsTruncated><NextContinuationToken>x</NextContinuationToken></ListBucketResult>";
        assert_eq!(parse(xml).unwrap().next_cursor, None);
    }
}
