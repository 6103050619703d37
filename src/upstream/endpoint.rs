//! Upstream addressing: which scheme, host and path an object request goes to.
//!
//! - AWS, virtual-hosted: `https://BUCKET.s3.REGION.amazonaws.com/KEY`
//!   (buckets with dots use path-style, as their names break TLS wildcards);
//! - AWS, path-style: `https://s3.REGION.amazonaws.com/BUCKET/KEY`;
//! - access point: `https://NAME-ACCOUNT.s3-accesspoint.REGION.amazonaws.com/KEY`;
//! - custom endpoint (MinIO, …): `SCHEME://HOST:PORT/BUCKET/KEY`, or virtual-hosted
//!   with `force_path_style = false`.
//!
//! A custom endpoint may have a public twin: the host a browser dials, which is
//! the host a presigned URL must be signed for.

use crate::locator::{dns_suffix, AccessPointArn};
use crate::sigv4::canonical::{encode_path_into, encoded_len_hint};

/// Scheme and authority of an HTTP origin; the authority omits the default port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// `host` or `host:port`, as sent in the `Host` header.
    pub authority: String,
}

impl Origin {
    /// Parses an `http(s)://host[:port]` URL (validated with the config).
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("{url:?}: {e}"))?;
        let scheme = match uri.scheme_str() {
            Some("https") => "https",
            Some("http") => "http",
            _ => return Err(format!("{url:?} is not an http(s) URL")),
        };
        let host = uri.host().ok_or_else(|| format!("{url:?} has no host"))?;
        let default_port = if scheme == "https" { 443 } else { 80 };
        let authority = match uri.port_u16() {
            Some(port) if port != default_port => format!("{host}:{port}"),
            _ => host.to_owned(),
        };
        Ok(Self {
            scheme,
            authority: authority.to_ascii_lowercase(),
        })
    }

    /// Whether the host is an IP address rather than a DNS name.
    pub fn has_ip_host(&self) -> bool {
        let host = self.authority.split(':').next().unwrap_or_default();
        self.authority.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok()
    }
}

/// Which side of a split endpoint an address is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The host the gateway dials.
    Dial,
    /// The host a browser dials (presigned URLs).
    Public,
}

/// Where an integration's objects live.
#[derive(Debug, Clone)]
pub struct Endpoint {
    kind: Kind,
    path_style: bool,
}

#[derive(Debug, Clone)]
enum Kind {
    Aws { region: String },
    AccessPoint { host: String },
    Custom { dial: Origin, public: Origin },
}

/// One upstream request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// Host header value.
    pub host: String,
    /// Path, percent-encoded once per S3 rules.
    pub path: String,
}

impl Address {
    /// The address of `/segment/segment...` on `host`, each segment
    /// percent-encoded (its own `/` kept).
    fn new(scheme: &'static str, host: String, segments: &[&str]) -> Self {
        let hint = segments.iter().map(|s| encoded_len_hint(s) + 1).sum();
        let mut path = String::with_capacity(hint);
        for segment in segments {
            path.push('/');
            encode_path_into(segment, &mut path);
        }
        Self { scheme, host, path }
    }

    /// `scheme://host/path?query` (no `?` when `query` is empty).
    pub fn url(&self, query: &str) -> String {
        let parts = [self.scheme, "://", &self.host, &self.path, "?", query];
        let parts = if query.is_empty() {
            &parts[..4]
        } else {
            &parts[..]
        };
        parts.concat()
    }
}

impl Endpoint {
    /// An AWS S3 endpoint in `region`.
    pub fn aws(region: &str, force_path_style: bool) -> Self {
        Self {
            kind: Kind::Aws {
                region: region.to_owned(),
            },
            path_style: force_path_style,
        }
    }

    /// An S3 access point.
    pub fn access_point(arn: &AccessPointArn) -> Self {
        Self {
            kind: Kind::AccessPoint { host: arn.host() },
            path_style: false,
        }
    }

    /// A custom endpoint, optionally with the public origin browsers dial.
    pub fn custom(dial: Origin, public: Option<Origin>, path_style: bool) -> Self {
        let public = public.unwrap_or_else(|| dial.clone());
        Self {
            kind: Kind::Custom { dial, public },
            path_style,
        }
    }

    /// The origin the gateway dials, for a custom endpoint (MinIO, …).
    pub fn custom_origin(&self) -> Option<&Origin> {
        match &self.kind {
            Kind::Custom { dial, .. } => Some(dial),
            _ => None,
        }
    }

    /// Whether `authority` (`host[:port]`) names this custom endpoint.
    pub fn serves_host(&self, authority: &str) -> bool {
        match &self.kind {
            Kind::Custom { dial, public } => {
                dial.authority.eq_ignore_ascii_case(authority)
                    || public.authority.eq_ignore_ascii_case(authority)
            }
            _ => false,
        }
    }

    /// Address of `key` in `bucket` (the bucket is ignored for access points);
    /// an empty key addresses the bucket itself (listing).
    pub fn object(&self, bucket: &str, key: &str, view: View) -> Address {
        let (scheme, base_host) = match &self.kind {
            Kind::Aws { region } => ("https", format!("s3.{region}.{}", dns_suffix(region))),
            Kind::AccessPoint { host } => ("https", host.clone()),
            Kind::Custom { dial, public } => {
                let origin = if view == View::Public { public } else { dial };
                (origin.scheme, origin.authority.clone())
            }
        };
        let virtual_hosted = match &self.kind {
            Kind::AccessPoint { .. } => return Address::new(scheme, base_host, &[key]),
            Kind::Aws { .. } => !self.path_style && !bucket.contains('.'),
            Kind::Custom { .. } => !self.path_style,
        };
        if virtual_hosted {
            Address::new(scheme, format!("{bucket}.{base_host}"), &[key])
        } else if key.is_empty() {
            Address::new(scheme, base_host, &[bucket])
        } else {
            Address::new(scheme, base_host, &[bucket, key])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(e: &Endpoint, bucket: &str, key: &str, view: View) -> String {
        e.object(bucket, key, view).url("")
    }

    #[test]
    fn aws_virtual_and_path_style() {
        let v = Endpoint::aws("eu-west-1", false);
        assert_eq!(
            url(&v, "pics", "a b/c+d.jpg", View::Dial),
            "https://pics.s3.eu-west-1.amazonaws.com/a%20b/c%2Bd.jpg"
        );
        assert_eq!(
            url(&v, "my.pics", "k", View::Dial),
            "https://s3.eu-west-1.amazonaws.com/my.pics/k"
        );
        let p = Endpoint::aws("us-east-1", true);
        assert_eq!(
            url(&p, "pics", "k//x/", View::Public),
            "https://s3.us-east-1.amazonaws.com/pics/k//x/"
        );
        assert_eq!(
            url(&p, "pics", "", View::Dial),
            "https://s3.us-east-1.amazonaws.com/pics"
        );
        let cn = Endpoint::aws("cn-north-1", false);
        assert_eq!(
            url(&cn, "pics", "k", View::Dial),
            "https://pics.s3.cn-north-1.amazonaws.com.cn/k"
        );
    }

    #[test]
    fn access_point_host() {
        let arn =
            AccessPointArn::parse("arn:aws:s3:us-west-2:123456789012:accesspoint/imgs").unwrap();
        let e = Endpoint::access_point(&arn);
        assert_eq!(
            url(&e, "ignored", "x/y.png", View::Public),
            "https://imgs-123456789012.s3-accesspoint.us-west-2.amazonaws.com/x/y.png"
        );
    }

    #[test]
    fn custom_endpoint_with_public_twin() {
        let dial = Origin::parse("http://10.0.0.5:9000").unwrap();
        let public = Origin::parse("https://media.example.com:443").unwrap();
        let e = Endpoint::custom(dial, Some(public), true);
        assert_eq!(
            url(&e, "media", "v.mp4", View::Dial),
            "http://10.0.0.5:9000/media/v.mp4"
        );
        assert_eq!(
            url(&e, "media", "v.mp4", View::Public),
            "https://media.example.com/media/v.mp4"
        );
        assert!(e.serves_host("media.example.com"));
        assert!(e.serves_host("10.0.0.5:9000"));
        assert!(!e.serves_host("10.0.0.5"));
        let vh = Endpoint::custom(
            Origin::parse("https://store.example.com").unwrap(),
            None,
            false,
        );
        assert_eq!(
            url(&vh, "media", "k", View::Public),
            "https://media.store.example.com/k"
        );
    }
}
