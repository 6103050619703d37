//! Locators: the ways a client names an object or a listing prefix.
//!
//! - `s3://bucket/key`: the key is taken verbatim (no percent-decoding), so any
//!   key S3 allows round-trips, `?`, `#` and `%` included;
//! - S3 URLs, virtual-hosted (`https://bucket.s3.REGION.amazonaws.com/key`) or
//!   path-style (`https://s3.REGION.amazonaws.com/bucket/key`, or any other host
//!   as `http(s)://HOST/bucket/key`): the path is percent-decoded and the query
//!   may carry `versionId`;
//! - ARNs: `arn:aws:s3:::bucket/key` and access point objects
//!   `arn:aws:s3:REGION:ACCOUNT:accesspoint/NAME/object/KEY`.

use std::fmt;

/// Maximum length of an S3 key in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// A parsed locator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locator {
    /// The bucket or access point holding the object.
    pub target: Target,
    /// The object key, or a listing prefix; may be empty.
    pub key: String,
    /// An object version named in an S3 URL's `versionId`.
    pub version_id: Option<String>,
    /// The host of an S3 URL that is not an AWS host (a custom endpoint).
    pub custom_host: Option<String>,
}

/// Where the object lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A bucket by name.
    Bucket(String),
    /// An S3 access point.
    AccessPoint(AccessPointArn),
}

/// An S3 access point ARN, `arn:PARTITION:s3:REGION:ACCOUNT:accesspoint/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccessPointArn {
    /// `aws`, `aws-cn`, `aws-us-gov`.
    pub partition: String,
    /// The access point's region.
    pub region: String,
    /// The owning account id (12 digits).
    pub account: String,
    /// The access point name.
    pub name: String,
}

impl AccessPointArn {
    /// Parses `arn:PARTITION:s3:REGION:ACCOUNT:accesspoint/NAME`.
    pub fn parse(arn: &str) -> Result<Self, String> {
        let (ap, rest) = parse_access_point_prefix(arn)?;
        if !rest.is_empty() {
            return Err("an access point ARN ends after the access point name".into());
        }
        Ok(ap)
    }

    /// Host of the access point's S3 endpoint.
    pub fn host(&self) -> String {
        format!(
            "{}-{}.s3-accesspoint.{}.{}",
            self.name,
            self.account,
            self.region,
            dns_suffix(&self.region)
        )
    }
}

impl fmt::Display for AccessPointArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:s3:{}:{}:accesspoint/{}",
            self.partition, self.region, self.account, self.name
        )
    }
}

impl fmt::Display for Locator {
    /// The locator as [`Locator::parse`] reads it back: `s3://bucket/key`,
    /// an access point object ARN, or, with a version or a custom host, a
    /// path-style S3 URL with the key percent-encoded.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bucket = match &self.target {
            Target::AccessPoint(ap) => return write!(f, "{ap}/object/{}", self.key),
            Target::Bucket(bucket) => bucket,
        };
        if self.version_id.is_none() && self.custom_host.is_none() {
            return write!(f, "s3://{bucket}/{}", self.key);
        }
        let host = self.custom_host.as_deref().unwrap_or("s3.amazonaws.com");
        let key = crate::sigv4::encode_path(&self.key);
        write!(f, "https://{host}/{bucket}/{key}")?;
        if let Some(version) = &self.version_id {
            let version: String = form_urlencoded::byte_serialize(version.as_bytes()).collect();
            write!(f, "?versionId={version}")?;
        }
        Ok(())
    }
}

/// DNS suffix of AWS endpoints in `region`.
pub fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

impl Locator {
    /// Parses any supported locator form.
    pub fn parse(input: &str) -> Result<Self, String> {
        if let Some(rest) = input.strip_prefix("s3://") {
            parse_s3_uri(rest)
        } else if input.starts_with("arn:") {
            parse_arn(input)
        } else if input.starts_with("https://") || input.starts_with("http://") {
            parse_url(input)
        } else {
            Err("expected s3://bucket/key, an S3 URL or an S3 ARN".into())
        }
    }

    /// `key` in `bucket` (both already validated).
    pub fn in_bucket(bucket: String, key: String) -> Self {
        Self {
            target: Target::Bucket(bucket),
            key,
            version_id: None,
            custom_host: None,
        }
    }

    /// The bucket name, when the target is a bucket.
    pub fn bucket(&self) -> Option<&str> {
        match &self.target {
            Target::Bucket(b) => Some(b),
            Target::AccessPoint(_) => None,
        }
    }
}

fn parse_s3_uri(rest: &str) -> Result<Locator, String> {
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    bucket_locator(bucket, key.to_owned(), None, None)
}

fn bucket_locator(
    bucket: &str,
    key: String,
    version_id: Option<String>,
    custom_host: Option<String>,
) -> Result<Locator, String> {
    validate_bucket_name(bucket)?;
    validate_key(&key)?;
    Ok(Locator {
        target: Target::Bucket(bucket.to_owned()),
        key,
        version_id,
        custom_host,
    })
}

fn parse_arn(input: &str) -> Result<Locator, String> {
    if let Some(object) = strip_s3_object_arn(input) {
        return parse_s3_uri(object);
    }
    let (ap, rest) = parse_access_point_prefix(input)?;
    let key = rest
        .strip_prefix("/object/")
        .ok_or("an access point object ARN continues with /object/KEY")?;
    validate_key(key)?;
    Ok(Locator {
        target: Target::AccessPoint(ap),
        key: key.to_owned(),
        version_id: None,
        custom_host: None,
    })
}

/// `arn:PARTITION:s3:::bucket/key` → `bucket/key`.
fn strip_s3_object_arn(input: &str) -> Option<&str> {
    let rest = input.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    valid_partition(partition).then_some(())?;
    rest.strip_prefix("s3:::")
}

fn valid_partition(p: &str) -> bool {
    matches!(p, "aws" | "aws-cn" | "aws-us-gov")
}

/// Parses `arn:P:s3:R:A:accesspoint/NAME` and returns what follows the name.
fn parse_access_point_prefix(arn: &str) -> Result<(AccessPointArn, &str), String> {
    let mut parts = arn.splitn(6, ':');
    let fields: Vec<&str> = parts.by_ref().collect();
    let [arn_lit, partition, service, region, account, resource] = fields[..] else {
        return Err("an access point ARN has six ':'-separated fields".into());
    };
    if arn_lit != "arn" || service != "s3" {
        return Err("not an S3 ARN".into());
    }
    if !valid_partition(partition) {
        return Err(format!("unknown partition {partition:?}"));
    }
    if !valid_region(region) {
        return Err(format!("invalid region {region:?}"));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid account id {account:?}"));
    }
    let name_and_rest = resource
        .strip_prefix("accesspoint/")
        .ok_or("the resource of an access point ARN starts with accesspoint/")?;
    let (name, rest) = match name_and_rest.find('/') {
        Some(i) => name_and_rest.split_at(i),
        None => (name_and_rest, ""),
    };
    validate_access_point_name(name)?;
    let ap = AccessPointArn {
        partition: partition.to_owned(),
        region: region.to_owned(),
        account: account.to_owned(),
        name: name.to_owned(),
    };
    Ok((ap, rest))
}

fn parse_url(input: &str) -> Result<Locator, String> {
    let uri: http::Uri = input.parse().map_err(|e| format!("invalid URL: {e}"))?;
    let authority = uri.authority().ok_or("URL has no host")?;
    if authority.as_str().contains('@') {
        return Err("URL has user information, which a locator does not take".into());
    }
    check_url_host(authority.host())?;
    let port = url_port(authority)?;
    let host = authority.host().to_ascii_lowercase();
    let path = percent_decode(uri.path())?;
    let mut versions = uri
        .query()
        .into_iter()
        .flat_map(|q| form_urlencoded::parse(q.as_bytes()).filter(|(k, _)| k == "versionId"));
    let version_id = versions.next().map(|(_, v)| v.into_owned());
    if versions.next().is_some() {
        return Err("versionId is given more than once".into());
    }
    let path = path.strip_prefix('/').unwrap_or(&path);
    if let Some(bucket) = aws_virtual_host_bucket(&host) {
        return bucket_locator(bucket, path.to_owned(), version_id, None);
    }
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    let custom_host = (!is_aws_s3_host(&host)).then(|| match port {
        Some(port) => format!("{host}:{port}"),
        None => host.clone(),
    });
    bucket_locator(bucket, key.to_owned(), version_id, custom_host)
}

/// Checks a URL's host: a name of letters, digits, `-`, `_` and `.`, or an
/// IPv6 address in brackets (the URL parser takes far more).
fn check_url_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("URL has no host".into());
    }
    let name = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    let ipv6 = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok());
    if ipv6 || host.bytes().all(name) {
        Ok(())
    } else {
        Err(format!(
            "URL host {host:?} is not a host name or an IPv6 address in brackets"
        ))
    }
}

/// The port after the host of a URL's authority, if any: 1 to 65535 in
/// decimal digits (the URL parser takes any text there).
fn url_port(authority: &http::uri::Authority) -> Result<Option<u16>, String> {
    let Some(port) = authority.as_str().get(authority.host().len()..) else {
        return Err("URL has an unreadable host".into());
    };
    let Some(port) = port.strip_prefix(':') else {
        return Ok(None);
    };
    let number = port
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| port.parse::<u16>().ok())
        .flatten()
        .filter(|&p| p != 0);
    number
        .map(Some)
        .ok_or_else(|| format!("URL port {port:?} is not a number from 1 to 65535"))
}

/// The bucket of a virtual-hosted AWS S3 host (`bucket.s3[.-]REGION.amazonaws.com`).
fn aws_virtual_host_bucket(host: &str) -> Option<&str> {
    let i = host.find(".s3.").or_else(|| host.find(".s3-"))?;
    is_aws_s3_host(&host[i + 1..]).then(|| &host[..i])
}

fn is_aws_s3_host(host: &str) -> bool {
    let Some(first) = host.split('.').next() else {
        return false;
    };
    let aws = host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn");
    aws && (first == "s3" || first.starts_with("s3-"))
}

/// Decodes `%XX` escapes; the result must be UTF-8.
pub fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or("truncated %-escape")?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err("invalid %-escape".into());
            }
            let hex = std::str::from_utf8(hex).map_err(|_| "invalid %-escape")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "invalid %-escape")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "path is not UTF-8 once decoded".into())
}

/// Checks a key: at most S3's 1,024 bytes, and no `.` or `..` path segment.
///
/// S3 itself keeps such segments literally, but browsers, HTTP libraries and
/// some stores and proxies resolve them, so a signed path holding one could
/// reach another object (or bucket) than the one that was checked.
pub fn validate_key(key: &str) -> Result<(), String> {
    if key.len() > MAX_KEY_BYTES {
        return Err(format!(
            "key is {} bytes, over S3's {MAX_KEY_BYTES}",
            key.len()
        ));
    }
    if key
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err("key has a `.` or `..` path segment, which s3gate does not sign".into());
    }
    Ok(())
}

/// Checks S3's bucket naming rules (general purpose buckets).
pub fn validate_bucket_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("bucket name is empty".into());
    }
    if !(3..=63).contains(&name.len()) {
        return Err(format!("bucket name {name:?} is not 3 to 63 characters"));
    }
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-';
    if !name.bytes().all(allowed) {
        return Err(format!(
            "bucket name {name:?} may hold only lowercase letters, digits, '.' and '-'"
        ));
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(name.as_bytes()[0]) || !alnum(name.as_bytes()[name.len() - 1]) {
        return Err(format!(
            "bucket name {name:?} must start and end with a letter or digit"
        ));
    }
    if name.contains("..") {
        return Err(format!("bucket name {name:?} has two adjacent periods"));
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(format!(
            "bucket name {name:?} is formatted as an IP address"
        ));
    }
    Ok(())
}

fn validate_access_point_name(name: &str) -> Result<(), String> {
    let ok = (3..=50).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    ok.then_some(())
        .ok_or_else(|| format!("invalid access point name {name:?}"))
}

/// Checks the shape of an AWS region name (`us-east-1`, `eu-central-2`, …).
pub fn valid_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket_key(input: &str) -> (String, String) {
        let l = Locator::parse(input).unwrap();
        (l.bucket().unwrap().to_owned(), l.key)
    }

    #[test]
    fn percent_decoding_takes_two_hex_digits_only() {
        assert_eq!(percent_decode("a%20b%2fc%C3%A9").unwrap(), "a b/cé");
        for bad in ["%+1", "%-1", "% 1", "%1", "%", "%zz", "%C3"] {
            assert!(percent_decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn s3_uri_keeps_key_verbatim() {
        for key in [
            "a b+c%20d~e=f&g?h#i",
            "日本語/é.jpg",
            "dir//double",
            "trailing/",
            "",
            "%2F",
            ".hidden/..x/y..",
        ] {
            assert_eq!(
                bucket_key(&format!("s3://my-bucket/{key}")),
                ("my-bucket".into(), key.into())
            );
        }
        assert_eq!(
            bucket_key("s3://my-bucket"),
            ("my-bucket".into(), "".into())
        );
    }

    #[test]
    fn rejects_bad_buckets_and_schemes() {
        for bad in [
            "s3://",
            "s3://UPPER/k",
            "s3://ab/k",
            "s3://a..b/k",
            "s3://-ab/k",
            "s3://192.168.1.1/k",
            "s3://under_score/k",
            "gs://bucket/k",
            "bucket/key",
            "s3://bucket/../other/k",
            "s3://bucket/a/./k",
            "s3://bucket/a/..",
            "https://bucket.s3.amazonaws.com/%2e%2e/k",
            "arn:aws:s3:::bucket/../k",
        ] {
            assert!(Locator::parse(bad).is_err(), "{bad} should be rejected");
        }
        let long = format!("s3://bucket/{}", "k".repeat(1025));
        assert!(Locator::parse(&long).is_err());
    }

    #[test]
    fn s3_urls_are_decoded() {
        assert_eq!(
            bucket_key("https://my-bucket.s3.eu-west-1.amazonaws.com/a%20b/%E6%97%A5.jpg"),
            ("my-bucket".into(), "a b/日.jpg".into())
        );
        assert_eq!(
            bucket_key("https://my-bucket.s3.amazonaws.com/k"),
            ("my-bucket".into(), "k".into())
        );
        assert_eq!(
            bucket_key("https://s3.us-west-2.amazonaws.com/my-bucket/x/y%2Bz"),
            ("my-bucket".into(), "x/y+z".into())
        );
        assert!(Locator::parse("https://b.s3.amazonaws.com/k?versionId=1&versionId=2").is_err());
        let l = Locator::parse("https://b.c.s3-us-west-2.amazonaws.com/k?versionId=v1").unwrap();
        assert_eq!(l.bucket(), Some("b.c"));
        assert_eq!(l.version_id.as_deref(), Some("v1"));
        assert_eq!(l.custom_host, None);
    }

    #[test]
    fn custom_host_urls_are_path_style() {
        let l = Locator::parse("http://minio.local:9000/media/v/clip.mp4").unwrap();
        assert_eq!(l.bucket(), Some("media"));
        assert_eq!(l.key, "v/clip.mp4");
        assert_eq!(l.custom_host.as_deref(), Some("minio.local:9000"));
    }

    #[test]
    fn arns() {
        let l = Locator::parse("arn:aws:s3:::my-bucket/a?b").unwrap();
        assert_eq!((l.bucket(), l.key.as_str()), (Some("my-bucket"), "a?b"));
        let l = Locator::parse(
            "arn:aws:s3:us-west-2:123456789012:accesspoint/my-ap/object/dir/a b.png",
        )
        .unwrap();
        let Target::AccessPoint(ap) = &l.target else {
            panic!("not an access point")
        };
        assert_eq!(
            ap.host(),
            "my-ap-123456789012.s3-accesspoint.us-west-2.amazonaws.com"
        );
        assert_eq!(l.key, "dir/a b.png");
        assert_eq!(
            ap.to_string(),
            "arn:aws:s3:us-west-2:123456789012:accesspoint/my-ap"
        );
        for bad in [
            "arn:aws:s3:us-west-2:12345:accesspoint/my-ap/object/k",
            "arn:aws:s3:us-west-2:123456789012:accesspoint/my-ap/k",
            "arn:aws:iam::123456789012:role/x",
            "arn:aws:s3:us-west-2:123456789012:bucket/x",
        ] {
            assert!(Locator::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    /// Found by fuzzing: an authority with no host and a port that is not a
    /// number parsed as a custom host of `""`, which displays as a URL that
    /// does not parse back.
    #[test]
    fn url_with_an_empty_host_is_refused() {
        for bad in [
            "https://:my-buq/est-0.amazonaus.c3qm/a%191",
            "https://:9000/bucket/key",
            "http://:/bucket/key",
        ] {
            let err = Locator::parse(bad).expect_err(bad);
            assert!(err.contains("no host"), "{bad}: {err}");
        }
    }

    /// Found by fuzzing: `l04[@]0` parsed as the custom host `]0`, which
    /// displays as a URL that does not parse back.
    #[test]
    fn url_with_user_information_or_a_malformed_host_is_refused() {
        for bad in [
            "http://l04[@]0/medi",
            "https://user:secret@minio.local/bucket/key",
            "https://@minio.local/bucket/key",
        ] {
            let err = Locator::parse(bad).expect_err(bad);
            assert!(err.contains("user information"), "{bad}: {err}");
        }
        for bad in [
            "http://a]b/bucket/key",
            "http://[::1/bucket/key",
            "http://[not-v6]/bucket/key",
            "http://a%41b/bucket/key",
        ] {
            let err = Locator::parse(bad).expect_err(bad);
            assert!(
                err.contains("host") || err.contains("invalid URL"),
                "{bad}: {err}"
            );
        }
        let l = Locator::parse("http://[::1]:9000/media/k").unwrap();
        assert_eq!(l.custom_host.as_deref(), Some("[::1]:9000"));
        let l = Locator::parse("http://My_Minio-1.local/media/k").unwrap();
        assert_eq!(l.custom_host.as_deref(), Some("my_minio-1.local"));
    }

    #[test]
    fn url_with_a_port_that_is_not_a_number_is_refused() {
        for bad in [
            "https://minio.local:my-buq/bucket/key",
            "http://minio.local:/bucket/key",
            "http://minio.local:99999/bucket/key",
        ] {
            let err = Locator::parse(bad).expect_err(bad);
            assert!(err.contains("port"), "{bad}: {err}");
        }
    }

    /// Characters keys are made of: S3's awkward ones often, any other now and then.
    fn key_char() -> impl proptest::strategy::Strategy<Value = char> {
        use proptest::prelude::*;
        prop_oneof![
            3 => proptest::sample::select(" +%?#/&=~!*'(),;:@$[]\"<>\\^`{|}.-_".chars().collect::<Vec<_>>()),
            3 => proptest::char::range('a', 'z'),
            1 => any::<char>(),
            1 => proptest::sample::select(vec!['\u{e9}', '\u{65e5}', '\u{1f600}', '\u{feff}']),
        ]
    }

    fn key() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        proptest::collection::vec(key_char(), 0..=64)
            .prop_map(|chars| chars.into_iter().collect::<String>())
            .prop_filter("a key S3 and s3gate take", |k| validate_key(k).is_ok())
    }

    fn locator() -> impl proptest::strategy::Strategy<Value = Locator> {
        use proptest::prelude::*;
        let bucket = "[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]"
            .prop_filter("a bucket name", |b| validate_bucket_name(b).is_ok());
        let host = (
            "[a-z][a-z0-9-]{0,12}(\\.[a-z][a-z0-9-]{0,8}){0,2}",
            proptest::option::of(1..=u16::MAX),
        )
            .prop_map(|(host, port)| port.map_or(host.clone(), |p| format!("{host}:{p}")));
        let in_bucket = (
            bucket,
            key(),
            proptest::option::of(".{0,12}"),
            proptest::option::of(host),
        )
            .prop_map(|(bucket, key, version_id, custom_host)| Locator {
                target: Target::Bucket(bucket),
                key,
                version_id,
                custom_host,
            });
        let access_point = (
            "[a-z0-9]{3,12}",
            "(us|eu|cn)-[a-z]{4}-[1-9]",
            "[0-9]{12}",
            key(),
        )
            .prop_map(|(name, region, account, key)| Locator {
                target: Target::AccessPoint(AccessPointArn {
                    partition: "aws".into(),
                    region,
                    account,
                    name,
                }),
                key,
                version_id: None,
                custom_host: None,
            });
        prop_oneof![in_bucket, access_point]
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(256))]

        #[test]
        fn any_locator_displays_as_text_that_parses_back(locator in locator()) {
            let shown = locator.to_string();
            let again = Locator::parse(&shown);
            proptest::prop_assert_eq!(again.as_ref(), Ok(&locator), "{}", shown);
            proptest::prop_assert_eq!(again.unwrap().to_string(), shown);
        }

        #[test]
        fn any_parsed_text_is_stable_through_display(
            scheme in proptest::sample::select(vec!["s3://", "https://", "http://", "arn:aws:s3:::"]),
            rest in "[a-z0-9.:/?#%=&+ -]{0,40}",
        ) {
            let text = format!("{scheme}{rest}");
            if let Ok(locator) = Locator::parse(&text) {
                let shown = locator.to_string();
                proptest::prop_assert_eq!(Locator::parse(&shown), Ok(locator), "{} → {}", text, shown);
            }
        }
    }
}
