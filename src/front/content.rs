//! Content safety: the gateway streams customers' objects on its own origin,
//! so none of them may run as a page there. Every response says
//! `nosniff` and sandboxes itself; active types (HTML, XML, SVG, script)
//! cannot be asked for as an override, and objects stored as one are
//! served as downloads unless the integration allows active content.

use http::{header, HeaderMap, HeaderValue};

use crate::error::Error;

/// `Content-Security-Policy` of every response: no script, no subresource,
/// a unique origin even when a browser renders it.
const CSP: &str = "sandbox; default-src 'none'";

/// Whether a content type can run as a page or script in a browser.
pub fn is_active(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence.is_empty()
        || essence.contains("html")
        || essence.contains("xml")
        || essence.contains("javascript")
        || essence.contains("ecmascript")
        || essence.contains("svg")
        || essence.starts_with("multipart/")
        || essence == "text/xsl"
}

/// Refuses a `response-content-type` override to an active type.
pub fn check_override(content_type: Option<&str>) -> Result<(), Error> {
    match content_type {
        Some(value) if is_active(value) => Err(Error::InvalidParameter {
            name: "response-content-type",
            reason: format!("{value:?} could run as a page on the gateway's origin: only passive types may be asked for"),
        }),
        _ => Ok(()),
    }
}

/// Headers every response carries.
pub fn harden(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
}

/// An object stored as an active type (or with none) is a download, unless
/// its integration allows active content.
pub fn guard_object(headers: &mut HeaderMap, allow_active: bool) {
    if allow_active {
        return;
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map_or("", |v| v.to_str().unwrap_or("text/html"));
    let attached = headers
        .get(header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("attachment")
        });
    if is_active(content_type) && !attached {
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_types_are_told_from_passive_ones() {
        for active in [
            "text/html",
            "TEXT/HTML; charset=utf-8",
            "application/xhtml+xml",
            "image/svg+xml",
            "text/xml",
            "application/xml",
            "application/javascript",
            "text/javascript",
            "multipart/x-mixed-replace; boundary=x",
            "",
            " ; x",
        ] {
            assert!(is_active(active), "{active:?}");
            assert!(check_override(Some(active)).is_err(), "{active:?}");
        }
        for passive in [
            "image/png",
            "image/jpeg",
            "video/mp4",
            "application/octet-stream",
            "text/plain",
            "application/json",
            "binary/octet-stream",
        ] {
            assert!(!is_active(passive), "{passive:?}");
        }
        assert!(check_override(None).is_ok());
    }

    #[test]
    fn active_objects_become_downloads_unless_allowed() {
        for (stored, allow, attachment) in [
            (Some("text/html"), false, true),
            (None, false, true),
            (Some("image/svg+xml"), false, true),
            (Some("image/png"), false, false),
            (Some("text/html"), true, false),
        ] {
            let mut headers = HeaderMap::new();
            if let Some(t) = stored {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(t));
            }
            headers.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("inline"),
            );
            guard_object(&mut headers, allow);
            let expected = if attachment { "attachment" } else { "inline" };
            assert_eq!(
                headers[header::CONTENT_DISPOSITION],
                expected,
                "{stored:?} {allow}"
            );
        }
    }
}
