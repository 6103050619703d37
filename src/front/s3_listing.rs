//! The S3 front's listings, and `encoding-type=url` done by the gateway.
//!
//! SDKs (boto3, the AWS CLI) ask for `encoding-type=url` and decode what they
//! get. Stores do not all honour it: some echo `<EncodingType>url` but send
//! keys as stored (`a b+c` then decodes to `a b c`, and `100%zz.txt` does not
//! decode at all). So the store is asked for raw keys, which are unambiguous,
//! and the gateway encodes the names itself before answering.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use quick_xml::events::{BytesText, Event};

use crate::body::Body;
use crate::error::Error;
use crate::upstream::integration::{Integration, Read};
use crate::upstream::stream::{self, IdleTimeout};
use crate::xml;

/// Largest listing read to encode (a 1,000-key page is well under it).
const LIST_BODY_LIMIT: usize = 16 << 20;

/// Elements whose text is a key or part of one, by their path under the root.
const ENCODED: &[&[&[u8]]] = &[
    &[b"Prefix"],
    &[b"Delimiter"],
    &[b"StartAfter"],
    &[b"Marker"],
    &[b"NextMarker"],
    &[b"Contents", b"Key"],
    &[b"CommonPrefixes", b"Prefix"],
];

/// Lists through `integration`; with `encode`, the store's raw listing is
/// URL-encoded by the gateway (`read` must not ask the store to encode).
pub async fn fetch(
    integration: &Integration,
    read: Read<'_>,
    encode: bool,
) -> Result<Response<Body>, Error> {
    if !encode {
        return integration.fetch(read).await;
    }
    let upstream = integration.read(read).await?;
    let (parts, body) = upstream.into_parts();
    let unreadable = |reason: String| Error::UpstreamFailed {
        integration: integration.name.clone(),
        reason: format!("reading the listing: {reason}"),
    };
    let body = IdleTimeout::new(body, integration.body_idle_timeout());
    let body = http_body_util::Limited::new(body, LIST_BODY_LIMIT)
        .collect()
        .await
        .map_err(|e| unreadable(e.to_string()))?
        .to_bytes();
    if parts.status != StatusCode::OK {
        return Ok(stream::with_body(&parts, body));
    }
    let encoded = encode_listing(&body).map_err(unreadable)?;
    Ok(stream::with_body(&parts, Bytes::from(encoded)))
}

/// A `ListBucketResult` with every key, prefix, delimiter and marker
/// URL-encoded and `<EncodingType>url</EncodingType>` added. A document that
/// says it is encoded already is kept as it is.
pub fn encode_listing(document: &[u8]) -> Result<Vec<u8>, String> {
    if xml::field(document, "EncodingType").is_some() {
        return Ok(document.to_vec());
    }
    let mut reader = quick_xml::Reader::from_reader(document);
    let mut writer = quick_xml::Writer::new(Vec::with_capacity(document.len() + 64));
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut text: Option<String> = None;
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| e.to_string())?;
        match event {
            Event::Eof => {
                xml::check_ended(&path)?;
                break;
            }
            Event::Start(_) | Event::Empty(_) if text.is_some() => {
                return Err(format!("<{}> holds an element", open_name(&path)));
            }
            Event::Start(ref e) => {
                path.push(e.name().as_ref().to_vec());
                if is_encoded(&path) {
                    text = Some(String::new());
                }
            }
            Event::Text(ref t) if text.is_some() => {
                let decoded = t.decode().map_err(|e| e.to_string())?;
                text.get_or_insert_with(String::new).push_str(&decoded);
                continue;
            }
            Event::GeneralRef(ref r) if text.is_some() => {
                let c = xml::resolve_reference(r)?;
                text.get_or_insert_with(String::new).push(c);
                continue;
            }
            Event::CData(ref c) if text.is_some() => {
                let decoded = String::from_utf8(c.to_vec()).map_err(|e| e.to_string())?;
                text.get_or_insert_with(String::new).push_str(&decoded);
                continue;
            }
            Event::End(_) => {
                if let Some(raw) = text.take() {
                    let encoded = crate::sigv4::encode_path(&raw);
                    write(&mut writer, Event::Text(BytesText::from_escaped(encoded)))?;
                }
                if path.len() == 1 {
                    write(&mut writer, encoding_type_element())?;
                }
                path.pop();
            }
            _ => {}
        }
        write(&mut writer, event)?;
        buf.clear();
    }
    Ok(writer.into_inner())
}

/// The innermost open element's name.
fn open_name(path: &[Vec<u8>]) -> String {
    path.last()
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .unwrap_or_default()
}

fn is_encoded(path: &[Vec<u8>]) -> bool {
    let Some((_, under_root)) = path.split_first() else {
        return false;
    };
    ENCODED.iter().any(|wanted| {
        wanted.len() == under_root.len()
            && wanted
                .iter()
                .zip(under_root)
                .all(|(a, b)| *a == b.as_slice())
    })
}

fn encoding_type_element() -> Event<'static> {
    Event::Text(BytesText::from_escaped("<EncodingType>url</EncodingType>"))
}

fn write(writer: &mut quick_xml::Writer<Vec<u8>>, event: Event<'_>) -> Result<(), String> {
    writer.write_event(event).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_and_the_rest_kept() {
        let raw = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>a b/</Prefix><Delimiter>/</Delimiter><StartAfter>a b/0</StartAfter>
<Contents><Key>a b/x+y&amp;z 100%zz.png</Key><ETag>&quot;abc&quot;</ETag><Size>12</Size></Contents>
<CommonPrefixes><Prefix>a b/日本/</Prefix></CommonPrefixes><Prefix/><IsTruncated>false</IsTruncated></ListBucketResult>"#;
        let encoded = String::from_utf8(encode_listing(raw.as_bytes()).unwrap()).unwrap();
        for part in [
            "<Prefix>a%20b/</Prefix>",
            "<Delimiter>/</Delimiter>",
            "<StartAfter>a%20b/0</StartAfter>",
            "<Key>a%20b/x%2By%26z%20100%25zz.png</Key>",
            "<ETag>&quot;abc&quot;</ETag>",
            "<Prefix>a%20b/%E6%97%A5%E6%9C%AC/</Prefix>",
            "<EncodingType>url</EncodingType></ListBucketResult>",
            "<Name>b</Name>",
        ] {
            assert!(encoded.contains(part), "{part} in {encoded}");
        }
        // What the gateway writes, its own listing parser reads back.
        let page = super::super::listing::parse(encoded.as_bytes()).unwrap();
        assert_eq!(page.objects[0].key, "a b/x+y&z 100%zz.png");
        assert_eq!(page.prefixes, vec!["a b/日本/".to_owned()]);
    }

    #[test]
    fn an_encoded_document_is_kept() {
        let doc = b"<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>a%20b</Key></Contents></ListBucketResult>";
        assert_eq!(encode_listing(doc).unwrap(), doc.to_vec());
    }

    /// Found by fuzzing: a document whose root never closes was encoded
    /// without `<EncodingType>url</EncodingType>`, so a client would take
    /// the encoded names for the keys.
    #[test]
    fn a_listing_that_does_not_end_is_refused() {
        for doc in [
            &b"<ListBucketResult><Contents><Key>a b</Key></Contents>"[..],
            b"<ListBucketResult><Contents><Key>a b</Key></Contents>,/ListBucketResult>",
            b"<ListBucketResult><Contents><Key>a b",
        ] {
            let err = encode_listing(doc).expect_err(&String::from_utf8_lossy(doc));
            assert!(err.contains("ends inside"), "{err}");
        }
    }

    /// Found by fuzzing: an element inside a key ended the key's encoding
    /// there, and the rest of the key went out as the store sent it.
    #[test]
    fn a_key_holding_an_element_is_refused() {
        for doc in [
            &b"<ListBucketResult><Contents><Key><IsTruncated>false</IsTruncated>a b</Key></Contents></ListBucketResult>"[..],
            b"<ListBucketResult><Contents><Key>a<x/>b</Key></Contents></ListBucketResult>",
            b"<ListBucketResult><Prefix>p<Prefix>q</Prefix></Prefix></ListBucketResult>",
        ] {
            let err = encode_listing(doc).expect_err(&String::from_utf8_lossy(doc));
            assert!(err.contains("holds an element"), "{err}");
        }
    }
}
