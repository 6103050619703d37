//! Gateway-signed URLs: what `/v1/presign` returns for an integration with
//! proxy delivery — a `/v1/object` URL on the gateway itself, signed with the
//! URL signing key, that a browser can use without a token and cache.

use std::time::{Duration, SystemTime};

use http::{header, HeaderMap, Uri};

use super::authenticate::unix;
use super::context::RequestContext;
use super::state::State;
use crate::auth::url_signature::SignedObject;
use crate::config::MAX_PRESIGN_TTL_S;
use crate::error::Error;
use crate::presign::{self, PresignMethod, PresignOptions, Presigned};
use crate::sigv4;
use crate::upstream::Resolved;

/// The gateway's URL as the client reached it: `[server] public_url`, or the
/// listener's scheme and the request's host.
pub fn base_url(state: &State, uri: &Uri, headers: &HeaderMap) -> Result<String, Error> {
    if let Some(url) = &state.public_url {
        return Ok(url.clone());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(http::uri::Authority::as_str));
    let invalid = || Error::InvalidParameter {
        name: "Host",
        reason: "the request's host cannot base a URL; set [server] public_url".into(),
    };
    let host = host.ok_or_else(invalid)?;
    let authority: http::uri::Authority = host.parse().map_err(|_| invalid())?;
    if authority.as_str().contains('@') {
        return Err(invalid());
    }
    let scheme = if state.tls { "https" } else { "http" };
    Ok(format!("{scheme}://{authority}"))
}

/// Signs a `/v1/object` URL under `base` for `locator` (resolved to
/// `resolved`) as the request's caller. Within a signing window the URL is
/// the same bytes; a grant's URLs expire with the grant.
pub fn sign(
    state: &State,
    ctx: &RequestContext,
    base: &str,
    locator: &str,
    resolved: &Resolved,
    options: &PresignOptions,
    now: SystemTime,
) -> Result<Presigned, Error> {
    let integration = &resolved.integration;
    let requested = integration.lifetime(options.expires_s)?;
    let window = presign::signing_window(integration.presign_window_s, now);
    let start = unix(window.start);
    let mut expires_at = (start + window.length + requested).min(unix(now) + MAX_PRESIGN_TTL_S);
    if let Some(not_after) = options.not_after {
        expires_at = expires_at.min(not_after);
    }
    let method = match options.method {
        PresignMethod::Get => "GET",
        PresignMethod::Head => "HEAD",
    };
    let url = SignedObject {
        method,
        client: ctx.caller.signing_name(),
        locator,
        expires_at,
        content_type: options.response_content_type.as_deref(),
        content_disposition: options.response_content_disposition.as_deref(),
        version_id: options.version_id.as_deref(),
    };
    let (kid, sig) = url.sign(&state.auth.url_keys);
    let mut query = form_urlencoded::Serializer::new(String::with_capacity(256));
    query.append_pair("locator", locator);
    query.append_pair("expires", &expires_at.to_string());
    if !url.client.is_empty() {
        query.append_pair("client", url.client);
    }
    for (name, value) in [
        ("response-content-type", url.content_type),
        ("response-content-disposition", url.content_disposition),
        ("version_id", url.version_id),
    ] {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    query.append_pair("kid", kid);
    query.append_pair("sig", &sig);
    Ok(Presigned {
        url: format!("{base}/v1/object?{}", query.finish()),
        expires_at: sigv4::rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(expires_at)),
        integration: integration.name.clone(),
        expires_in: expires_at.saturating_sub(unix(now)),
        window_left: window.left,
    })
}
