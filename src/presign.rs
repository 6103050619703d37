//! Presigning: a locator and options in, a URL the store accepts out.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::MAX_PRESIGN_TTL_S;
use crate::error::Error;
use crate::sigv4::{self, Credentials, SigningRequest};
use crate::upstream::endpoint::View;
use crate::upstream::{Integration, Resolved};

/// The method a presigned URL is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PresignMethod {
    /// Download the object.
    #[default]
    Get,
    /// Read the object's metadata.
    Head,
}

impl PresignMethod {
    /// Parses `GET` or `HEAD` (any case).
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s.to_ascii_uppercase().as_str() {
            "GET" => Ok(Self::Get),
            "HEAD" => Ok(Self::Head),
            _ => Err(Error::InvalidParameter {
                name: "method",
                reason: format!("{s:?} cannot be presigned: only GET and HEAD (read-only)"),
            }),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
        }
    }
}

/// Options of one presign request, beside the locator.
#[derive(Debug, Clone, Default)]
pub struct PresignOptions {
    /// Requested lifetime in seconds; the integration's `presign_ttl_s` by default.
    pub expires_s: Option<u64>,
    /// Method to presign.
    pub method: PresignMethod,
    /// `response-content-type` override.
    pub response_content_type: Option<String>,
    /// `response-content-disposition` override.
    pub response_content_disposition: Option<String>,
    /// Object version.
    pub version_id: Option<String>,
    /// Unix time the URL must not outlive (a grant's expiry), window included.
    pub not_after: Option<u64>,
}

/// A presigned URL and when it stops working.
#[derive(Debug, Clone, Serialize)]
pub struct Presigned {
    /// The URL.
    pub url: String,
    /// RFC 3339 time after which the store refuses it.
    pub expires_at: String,
    /// The integration that signed it.
    pub integration: String,
    /// Seconds the URL stays valid from now.
    #[serde(skip)]
    pub expires_in: u64,
    /// Seconds until the signing window ends and the URL changes (windowed integrations).
    #[serde(skip)]
    pub window_left: Option<u64>,
}

impl Presigned {
    /// `{"url":…,"expires_at":…,"integration":…}`, as serde_json writes it
    /// (a test compares), into a buffer sized once: serde_json's writer
    /// grows its buffer and escapes byte by byte, ≈ 5 % of a presign's
    /// instructions (callgrind).
    pub fn to_json(&self) -> String {
        let fields = [
            ("url", &self.url),
            ("expires_at", &self.expires_at),
            ("integration", &self.integration),
        ];
        let length: usize = fields.iter().map(|(k, v)| k.len() + v.len() + 8).sum();
        let mut out = String::with_capacity(length + 2);
        let mut separator = '{';
        for (name, value) in fields {
            out.push(separator);
            separator = ',';
            crate::json::push_string(&mut out, name);
            out.push(':');
            crate::json::push_string(&mut out, value);
        }
        out.push('}');
        out
    }
}

impl PresignOptions {
    /// The S3 query parameters these options add to a read of `resolved`.
    pub fn s3_query<'a>(&'a self, resolved: &'a Resolved) -> Vec<(&'a str, &'a str)> {
        let mut query = Vec::with_capacity(3);
        if let Some(v) = &self.response_content_type {
            query.push(("response-content-type", v.as_str()));
        }
        if let Some(v) = &self.response_content_disposition {
            query.push(("response-content-disposition", v.as_str()));
        }
        if let Some(v) = self
            .version_id
            .as_deref()
            .or(resolved.version_id.as_deref())
        {
            query.push(("versionId", v));
        }
        query
    }
}

/// Fetches the integration's credentials and presigns `resolved` as of the
/// moment they are in hand (an STS call may come first).
pub async fn presign(resolved: &Resolved, options: &PresignOptions) -> Result<Presigned, Error> {
    let credentials = resolved.integration.credentials().await?;
    sign(resolved, &credentials, options, SystemTime::now())
}

/// Presigns an already resolved object with `credentials`.
pub fn sign(
    resolved: &Resolved,
    credentials: &Arc<Credentials>,
    options: &PresignOptions,
    now: SystemTime,
) -> Result<Presigned, Error> {
    let integration = &resolved.integration;
    let requested = integration.lifetime(options.expires_s)?;
    let window = signing_window(integration.presign_window_s, now);
    let mut expires_s = lifetime(
        requested + window.length,
        credentials,
        &window,
        now,
        integration,
    )?;
    if let Some(not_after) = options.not_after {
        let start = window
            .start
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        expires_s = expires_s.min(not_after.saturating_sub(start));
    }
    let address = resolved.address(View::Public);
    let mut query = options.s3_query(resolved);
    if let Some(cache_control) = &window.cache_control {
        query.push(("response-cache-control", cache_control));
    }
    let request = SigningRequest {
        method: options.method.as_str(),
        host: &address.host,
        path: &address.path,
        query: &query,
        region: &integration.region,
        service: "s3",
        time: window.start,
    };
    let query = sigv4::presign(credentials, &request, expires_s);
    Ok(Presigned {
        url: address.url(&query),
        expires_at: sigv4::rfc3339(window.start + Duration::from_secs(expires_s)),
        integration: integration.name.clone(),
        expires_in: expires_s.saturating_sub(window.elapsed),
        window_left: window.left,
    })
}

/// A signing time rounded down to a window, and what follows from it.
pub(crate) struct Window {
    /// Its start, to the second.
    pub(crate) start: SystemTime,
    /// Seconds since `start`.
    pub(crate) elapsed: u64,
    /// The window's length: URLs signed in it live this much longer than
    /// asked, so that one URL serves the whole window and stays valid for
    /// the requested time from any moment in it.
    pub(crate) length: u64,
    /// Seconds left in the window, for windowed integrations.
    pub(crate) left: Option<u64>,
    cache_control: Option<String>,
}

/// The window `now` falls in; without a window, `now` to the second.
pub(crate) fn signing_window(window_s: Option<u64>, now: SystemTime) -> Window {
    // Whole seconds, as X-Amz-Date carries them: a URL then expires exactly
    // at `start + lifetime`, which is what `expires_at` reports.
    let since_epoch = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let Some(w) = window_s else {
        return Window {
            start: SystemTime::UNIX_EPOCH + Duration::from_secs(since_epoch),
            elapsed: 0,
            length: 0,
            left: None,
            cache_control: None,
        };
    };
    let elapsed = since_epoch % w;
    Window {
        start: SystemTime::UNIX_EPOCH + Duration::from_secs(since_epoch - elapsed),
        elapsed,
        length: w,
        left: Some(w - elapsed),
        // Browsers may keep the object for a window without asking again.
        cache_control: Some(format!("private, max-age={w}")),
    }
}

/// Checks a requested lifetime: 1 s to 7 days.
pub fn check_requested(requested: u64) -> Result<(), Error> {
    if requested == 0 || requested > MAX_PRESIGN_TTL_S {
        return Err(Error::InvalidParameter {
            name: "expires",
            reason: format!("must be 1 to {MAX_PRESIGN_TTL_S} seconds, got {requested}"),
        });
    }
    Ok(())
}

/// Caps a lifetime counted from the window's start at 7 days and at what the
/// credentials have left; fails when they have nothing left to sign with.
fn lifetime(
    wanted: u64,
    credentials: &Credentials,
    window: &Window,
    now: SystemTime,
    integration: &Integration,
) -> Result<u64, Error> {
    let wanted = wanted.min(MAX_PRESIGN_TTL_S);
    let Some(expiry) = credentials.expires_at() else {
        return Ok(wanted);
    };
    let usable_until = expiry
        .checked_sub(integration.expiry_margin())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    if usable_until < now + Duration::from_secs(1) {
        return Err(Error::CredentialsUnavailable {
            integration: integration.name.clone(),
            reason: "the session credentials expire too soon to sign with".into(),
        });
    }
    let usable = usable_until
        .duration_since(window.start)
        .unwrap_or_default()
        .as_secs();
    Ok(wanted.min(usable))
}

/// Parses an `expires` parameter.
pub fn parse_expires(s: &str) -> Result<u64, Error> {
    s.parse().map_err(|_| Error::InvalidParameter {
        name: "expires",
        reason: format!("{s:?} is not a whole number of seconds"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_json_is_what_serde_json_writes() {
        let presigned = Presigned {
            url: "https://s/b/k?X-Amz-Signature=ab&q=\"x\"".into(),
            expires_at: "2026-12-05T00:00:00Z".into(),
            integration: "media\n".into(),
            expires_in: 1,
            window_left: Some(2),
        };
        assert_eq!(
            presigned.to_json(),
            serde_json::to_string(&presigned).unwrap()
        );
    }

    async fn resolved(extra: &str) -> Resolved {
        let config = Config::parse(&format!(
            "[[integrations]]\nname = \"i\"\ndefault = true\nbuckets = [\"media\"]\n{extra}\n\
             [integrations.credentials]\naccess_key_id = \"AKID\"\nsecret_access_key = \"s\"\n"
        ))
        .unwrap();
        let app = crate::front::App::new(config).await.unwrap();
        app.registry().resolve_object("s3://media/k").unwrap()
    }

    fn expiring_at(expiry: SystemTime) -> Arc<Credentials> {
        Arc::new(Credentials::new(
            "ASIA",
            "s",
            Some("t".into()),
            Some(expiry),
        ))
    }

    fn at(secs: u64, millis: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    #[tokio::test]
    async fn a_capped_url_lives_exactly_until_the_session_stops_being_used() {
        let resolved = resolved("").await;
        let margin = resolved.integration.expiry_margin().as_secs();
        let expiry = 1_800_000_000;
        let credentials = expiring_at(at(expiry, 0));
        // Any moment within a second signs the same lifetime and expiry.
        for millis in [0, 500, 999] {
            let now = at(expiry - margin - 100, millis);
            let signed = sign(&resolved, &credentials, &PresignOptions::default(), now).unwrap();
            assert_eq!(signed.expires_at, sigv4::rfc3339(at(expiry - margin, 0)));
            assert!(signed.url.contains("X-Amz-Expires=100&"), "{}", signed.url);
            assert_eq!(signed.expires_in, 100);
        }
    }

    #[tokio::test]
    async fn credentials_about_to_expire_sign_nothing() {
        let resolved = resolved("").await;
        let margin = resolved.integration.expiry_margin().as_secs();
        let credentials = expiring_at(at(1_800_000_000, 0));
        let now = at(1_800_000_000 - margin, 0);
        let error = sign(&resolved, &credentials, &PresignOptions::default(), now).unwrap_err();
        assert_eq!(error.code(), "CredentialsUnavailable");
    }

    #[tokio::test]
    async fn a_window_signs_from_its_start_and_lives_one_window_longer() {
        let resolved = resolved("presign_window_s = 300\npresign_ttl_s = 600").await;
        let credentials = Arc::new(Credentials::new("AKID", "s", None, None));
        let start = 1_800_000_100 - 1_800_000_100 % 300;
        let first = sign(
            &resolved,
            &credentials,
            &PresignOptions::default(),
            at(start, 0),
        );
        let last = sign(
            &resolved,
            &credentials,
            &PresignOptions::default(),
            at(start + 299, 999),
        );
        let (first, last) = (first.unwrap(), last.unwrap());
        assert_eq!(first.url, last.url);
        assert!(first.url.contains("X-Amz-Expires=900&"), "{}", first.url);
        assert_eq!((first.expires_in, last.expires_in), (900, 601));
        assert_eq!((first.window_left, last.window_left), (Some(300), Some(1)));
    }
}
