//! Verification of the SigV4 signatures S3 clients send to the S3 front, in
//! both forms: the `Authorization` header and the presigned query.
//!
//! [`parse`] reads the claim a request makes (who, when, which headers) and
//! refuses a malformed one; [`Claim::verify`] rebuilds the canonical request
//! with S3's rules, signs it with the client's secret and compares the result
//! in constant time. The front serves GET and HEAD only, so the payload hash
//! is `UNSIGNED-PAYLOAD` or the SHA-256 of the empty payload.
//!
//! Error messages never contain the signature, the secret or the string to sign.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{AUTHORIZATION, DATE, HOST};
use http::{HeaderMap, Method, Uri};
use subtle::ConstantTimeEq;

use crate::error::Error;
use crate::sigv4::canonical::{self, SigningKey, ALGORITHM};
use crate::sigv4::time::AmzTime;
use crate::sigv4::{encode_path, UNSIGNED_PAYLOAD};

/// The SHA-256 of the empty payload.
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// The largest `Authorization` header parsed, in bytes.
pub const MAX_AUTHORIZATION_LEN: usize = 8 * 1024;
/// The most signed headers a claim may list.
pub const MAX_SIGNED_HEADERS: usize = 64;
/// The largest clock difference accepted, in seconds.
pub const MAX_SKEW_S: u64 = 900;
/// The longest `X-Amz-Expires` accepted, in seconds (seven days).
pub const MAX_EXPIRES_S: u64 = 604_800;

/// The only service the S3 front verifies signatures for.
const SERVICE: &str = "s3";
const X_AMZ_ALGORITHM: &str = "X-Amz-Algorithm";
const X_AMZ_CREDENTIAL: &str = "X-Amz-Credential";
const X_AMZ_DATE: &str = "X-Amz-Date";
const X_AMZ_EXPIRES: &str = "X-Amz-Expires";
const X_AMZ_SIGNED_HEADERS: &str = "X-Amz-SignedHeaders";
const X_AMZ_SIGNATURE: &str = "X-Amz-Signature";
const X_AMZ_DATE_HEADER: &str = "x-amz-date";
const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";

/// Where the signature travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `Authorization` header.
    Header,
    /// Presigned query, valid for this many seconds.
    Query { expires_s: u64 },
}

impl Form {
    /// The malformed-claim error of this form.
    fn malformed(self, reason: impl Into<String>) -> Error {
        let reason = reason.into();
        match self {
            Form::Header => Error::AuthorizationHeaderMalformed { reason },
            Form::Query { .. } => Error::AuthorizationQueryParametersError { reason },
        }
    }
}

fn header_error(reason: impl Into<String>) -> Error {
    Form::Header.malformed(reason)
}

fn query_error(reason: impl Into<String>) -> Error {
    Error::AuthorizationQueryParametersError {
        reason: reason.into(),
    }
}

/// A client's SigV4 claim as the request presents it.
#[derive(Clone)]
pub struct Claim {
    /// The access key id of the credential scope.
    pub access_key_id: String,
    form: Form,
    /// `YYYYMMDDTHHMMSSZ`, as it enters the string to sign.
    date_time: String,
    /// The same instant.
    signed_at: SystemTime,
    /// `YYYYMMDD` of the credential scope (equal to `date_time`'s date).
    scope_date: String,
    region: String,
    /// Lowercase names, in the order the claim lists them.
    signed_headers: Vec<String>,
    signature: String,
    payload_hash: &'static str,
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("access_key_id", &self.access_key_id)
            .field("form", &self.form)
            .field("date_time", &self.date_time)
            .field("region", &self.region)
            .field("signed_headers", &self.signed_headers)
            .field("signature", &"** redacted **")
            .finish_non_exhaustive()
    }
}

/// Parses the request's SigV4 credential: `Ok(None)` when it carries none at all
/// (no `Authorization` header and no `X-Amz-Algorithm`/`X-Amz-Signature`/`X-Amz-Credential`
/// query parameter).
pub fn parse(method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<Option<Claim>, Error> {
    // The method enters only the canonical request, built by `verify`.
    let _ = method;
    let pairs = raw_query_pairs(uri);
    let is_query_credential =
        |name: &str| matches!(name, X_AMZ_ALGORITHM | X_AMZ_SIGNATURE | X_AMZ_CREDENTIAL);
    let has_query_credential = pairs
        .iter()
        .any(|(name, _)| decode_query_component(name).is_ok_and(|n| is_query_credential(&n)));
    let mut authorization = headers.get_all(AUTHORIZATION).iter();
    match (authorization.next(), has_query_credential) {
        (None, false) => Ok(None),
        (Some(_), true) => Err(query_error(
            "the request carries both an Authorization header and a presigned query signature",
        )),
        (Some(value), false) => {
            if authorization.next().is_some() {
                return Err(header_error("more than one Authorization header"));
            }
            parse_header_form(value.as_bytes(), headers).map(Some)
        }
        (None, true) => parse_query_form(&pairs).map(Some),
    }
}

impl Claim {
    /// Checks time (±15 min skew for header-signed; for presigned: not before
    /// `X-Amz-Date` - 15 min, not after `X-Amz-Date` + `X-Amz-Expires`) and the
    /// signature, computed with `secret_access_key`, compared in constant time.
    pub fn verify(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        secret_access_key: &str,
        now: SystemTime,
    ) -> Result<(), Error> {
        self.check_time(now)?;
        let expected = self.expected_signature(method, uri, headers, secret_access_key)?;
        if bool::from(expected.as_bytes().ct_eq(self.signature.as_bytes())) {
            Ok(())
        } else {
            Err(Error::SignatureDoesNotMatch)
        }
    }

    /// The region of the credential scope.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Whether the signature travels in the query (a presigned URL).
    pub fn is_presigned(&self) -> bool {
        matches!(self.form, Form::Query { .. })
    }

    /// The signing time the claim states.
    pub fn signed_at(&self) -> SystemTime {
        self.signed_at
    }

    /// The names of the signed headers, lowercase, as the claim lists them.
    pub fn signed_headers(&self) -> &[String] {
        &self.signed_headers
    }

    fn check_time(&self, now: SystemTime) -> Result<(), Error> {
        let skew = Duration::from_secs(MAX_SKEW_S);
        let too_skewed = Error::RequestTimeTooSkewed {
            max_skew_s: MAX_SKEW_S,
        };
        // Not before the signing time less the skew, for either form.
        if now < self.signed_at.checked_sub(skew).unwrap_or(UNIX_EPOCH) {
            return Err(too_skewed);
        }
        match self.form {
            Form::Header => {
                if now.duration_since(self.signed_at).is_ok_and(|d| d > skew) {
                    return Err(too_skewed);
                }
            }
            Form::Query { expires_s } => {
                let until = self.signed_at.checked_add(Duration::from_secs(expires_s));
                if until.is_none_or(|until| now > until) {
                    return Err(Error::RequestExpired);
                }
            }
        }
        Ok(())
    }

    /// The hex signature the request should carry, signed with `secret_access_key`.
    fn expected_signature(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        secret_access_key: &str,
    ) -> Result<String, Error> {
        let path = canonical_path(uri.path()).map_err(|reason| self.form.malformed(reason))?;
        let query = self.canonical_query(uri)?;
        let header_values = self.canonical_header_values(uri, headers)?;
        let canonical_headers: Vec<(&str, &str)> = self
            .signed_headers
            .iter()
            .map(String::as_str)
            .zip(header_values.iter().map(String::as_str))
            .collect();
        let signed_headers = self.signed_headers.join(";");
        let request = canonical::canonical_request(
            method.as_str(),
            &path,
            &query,
            &canonical_headers,
            &signed_headers,
            self.payload_hash,
        );
        let string_to_sign =
            canonical::string_to_sign(&self.date_time, &self.region, SERVICE, &request);
        let key = SigningKey::derive(secret_access_key, &self.scope_date, &self.region, SERVICE);
        Ok(key.signature(&string_to_sign))
    }

    /// Every query parameter (but a presigned URL's `X-Amz-Signature`), decoded
    /// then re-encoded and sorted.
    fn canonical_query(&self, uri: &Uri) -> Result<String, Error> {
        let mut decoded = Vec::new();
        for (name, value) in raw_query_pairs(uri) {
            let name = decode_query_component(name).map_err(query_error)?;
            let value = decode_query_component(value).map_err(query_error)?;
            if self.is_presigned() && name == X_AMZ_SIGNATURE {
                continue;
            }
            decoded.push((name, value));
        }
        let refs: Vec<(&str, &str)> = decoded
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        Ok(canonical::query_string(&refs))
    }

    /// The canonical value of each signed header, in the claim's order.
    fn canonical_header_values(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Vec<String>, Error> {
        let mut values = Vec::with_capacity(self.signed_headers.len());
        for name in &self.signed_headers {
            let mut joined = String::new();
            let mut found = false;
            for value in headers.get_all(name.as_str()) {
                let text = std::str::from_utf8(value.as_bytes()).map_err(|_| {
                    self.form
                        .malformed(format!("signed header {name:?} is not UTF-8"))
                })?;
                if found {
                    joined.push(',');
                }
                push_trimmed(text, &mut joined);
                found = true;
            }
            if !found && name == HOST.as_str() {
                // HTTP/2 carries the host as `:authority`, in the URI only.
                if let Some(authority) = uri.authority() {
                    push_trimmed(authority.as_str(), &mut joined);
                    found = true;
                }
            }
            if !found {
                return Err(self.form.malformed(format!(
                    "signed header {name:?} is missing from the request"
                )));
            }
            values.push(joined);
        }
        Ok(values)
    }
}

/// Appends `value` trimmed of spaces, inner runs of spaces collapsed to one.
fn push_trimmed(value: &str, out: &mut String) {
    for (i, word) in value.split(' ').filter(|w| !w.is_empty()).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
}

// ---------------------------------------------------------------------------
// The two forms

fn parse_header_form(value: &[u8], headers: &HeaderMap) -> Result<Claim, Error> {
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(header_error(format!(
            "the Authorization header is over {MAX_AUTHORIZATION_LEN} bytes"
        )));
    }
    let value = std::str::from_utf8(value)
        .map_err(|_| header_error("the Authorization header is not UTF-8"))?;
    let rest = value
        .strip_prefix(ALGORITHM)
        .filter(|rest| rest.starts_with(' '))
        .ok_or_else(|| {
            header_error(format!(
                "the Authorization header must start with {ALGORITHM} and a space"
            ))
        })?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim_matches(' ');
        let (key, field_value) = part.split_once('=').ok_or_else(|| {
            header_error("the Authorization header holds a component without `=`")
        })?;
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => {
                return Err(header_error(
                    "the Authorization header holds an unknown component; expected Credential, SignedHeaders and Signature",
                ))
            }
        };
        if slot.replace(field_value).is_some() {
            return Err(header_error(format!(
                "the Authorization header gives {key} more than once"
            )));
        }
    }
    let credential =
        credential.ok_or_else(|| header_error("the Authorization header has no Credential"))?;
    let signed_headers = signed_headers
        .ok_or_else(|| header_error("the Authorization header has no SignedHeaders"))?;
    let signature =
        signature.ok_or_else(|| header_error("the Authorization header has no Signature"))?;
    let form = Form::Header;
    let scope = parse_credential(credential, form)?;
    let signed_headers = parse_signed_headers(signed_headers, form)?;
    let signature = parse_signature(signature, form)?;

    let (date_time, signed_at) = header_date(headers)?;
    check_scope_date(&scope, &date_time, form)?;
    let payload_hash = payload_hash(headers)?;
    Ok(Claim {
        access_key_id: scope.access_key_id,
        form,
        date_time,
        signed_at,
        scope_date: scope.date,
        region: scope.region,
        signed_headers,
        signature,
        payload_hash,
    })
}

fn parse_query_form(pairs: &[(&str, &str)]) -> Result<Claim, Error> {
    let get = |name: &str| -> Result<String, Error> {
        let mut found = None;
        for (raw_name, raw_value) in pairs {
            if decode_query_component(raw_name).is_ok_and(|n| n == name) {
                if found.is_some() {
                    return Err(query_error(format!("{name} is given more than once")));
                }
                found = Some(decode_query_component(raw_value).map_err(|reason| {
                    query_error(format!("{name} cannot be decoded: {reason}"))
                })?);
            }
        }
        found.ok_or_else(|| query_error(format!("{name} is missing")))
    };
    let algorithm = get(X_AMZ_ALGORITHM)?;
    if algorithm != ALGORITHM {
        return Err(query_error(format!(
            "{X_AMZ_ALGORITHM} must be {ALGORITHM}"
        )));
    }
    let credential = get(X_AMZ_CREDENTIAL)?;
    let date = get(X_AMZ_DATE)?;
    let expires = get(X_AMZ_EXPIRES)?;
    let signed_headers = get(X_AMZ_SIGNED_HEADERS)?;
    let signature = get(X_AMZ_SIGNATURE)?;

    let expires_s = parse_expires(&expires)?;
    let form = Form::Query { expires_s };
    let scope = parse_credential(&credential, form)?;
    let signed_headers = parse_signed_headers(&signed_headers, form)?;
    let signature = parse_signature(&signature, form)?;
    let signed_at = parse_amz_date(&date)
        .ok_or_else(|| query_error(format!("{X_AMZ_DATE} is not a valid YYYYMMDDTHHMMSSZ time")))?;
    check_scope_date(&scope, &date, form)?;
    Ok(Claim {
        access_key_id: scope.access_key_id,
        form,
        date_time: date,
        signed_at,
        scope_date: scope.date,
        region: scope.region,
        signed_headers,
        signature,
        payload_hash: UNSIGNED_PAYLOAD,
    })
}

fn parse_expires(value: &str) -> Result<u64, Error> {
    let out_of_range = || {
        query_error(format!(
            "{X_AMZ_EXPIRES} must be a whole number of seconds from 1 to {MAX_EXPIRES_S}"
        ))
    };
    if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(out_of_range());
    }
    match value.parse::<u64>() {
        Ok(s) if (1..=MAX_EXPIRES_S).contains(&s) => Ok(s),
        _ => Err(out_of_range()),
    }
}

// ---------------------------------------------------------------------------
// Components

/// `AKID/YYYYMMDD/REGION/s3/aws4_request`, split.
struct Scope {
    access_key_id: String,
    date: String,
    region: String,
}

fn parse_credential(value: &str, form: Form) -> Result<Scope, Error> {
    let shape =
        || form.malformed("the credential must be ACCESS_KEY_ID/YYYYMMDD/REGION/s3/aws4_request");
    let mut parts = value.split('/');
    let (Some(akid), Some(date), Some(region), Some(service), Some(terminal), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(shape());
    };
    if akid.is_empty() || region.is_empty() || terminal != "aws4_request" {
        return Err(shape());
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(form.malformed("the credential's date is not YYYYMMDD"));
    }
    if service != SERVICE {
        return Err(form.malformed(format!(
            "the credential is scoped to service {service:?}; this gateway verifies {SERVICE:?} only"
        )));
    }
    Ok(Scope {
        access_key_id: akid.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
    })
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn parse_signed_headers(value: &str, form: Form) -> Result<Vec<String>, Error> {
    let mut names: Vec<String> = Vec::new();
    for name in value.split(';') {
        if names.len() == MAX_SIGNED_HEADERS {
            return Err(form.malformed(format!("more than {MAX_SIGNED_HEADERS} signed headers")));
        }
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(form.malformed(
                "signed header names must be non-empty, lowercase and separated by `;`",
            ));
        }
        if names.iter().any(|n| n == name) {
            return Err(form.malformed(format!("signed header {name:?} is listed twice")));
        }
        names.push(name.to_owned());
    }
    if !names.iter().any(|n| n == HOST.as_str()) {
        return Err(form.malformed("the host header must be signed"));
    }
    Ok(names)
}

fn parse_signature(value: &str, form: Form) -> Result<String, Error> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(form.malformed("the signature must be hexadecimal"));
    }
    Ok(value.to_owned())
}

fn check_scope_date(scope: &Scope, date_time: &str, form: Form) -> Result<(), Error> {
    if date_time.get(..8) != Some(scope.date.as_str()) {
        return Err(form.malformed("the credential's date is not the date of the request time"));
    }
    Ok(())
}

/// The request time of a header-signed request: `x-amz-date`, else `Date`.
fn header_date(headers: &HeaderMap) -> Result<(String, SystemTime), Error> {
    if let Some(value) = single_header(headers, X_AMZ_DATE_HEADER)? {
        let t = parse_amz_date(value)
            .ok_or_else(|| header_error("x-amz-date is not a valid YYYYMMDDTHHMMSSZ time"))?;
        return Ok((value.to_owned(), t));
    }
    if let Some(value) = single_header(headers, DATE.as_str())? {
        let t = parse_http_date(value).ok_or_else(|| {
            header_error(
                "the Date header is not an IMF-fixdate (e.g. Sun, 06 Nov 1994 08:49:37 GMT)",
            )
        })?;
        return Ok((AmzTime::new(t).date_time().to_owned(), t));
    }
    Err(header_error(
        "the request has neither an x-amz-date nor a Date header",
    ))
}

/// The value of `name`, which must be given at most once and be ASCII.
fn single_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, Error> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(header_error(format!("{name} is given more than once")));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| header_error(format!("{name} is not ASCII")))
}

/// `x-amz-content-sha256`: the front reads, so the payload is empty or unsigned.
fn payload_hash(headers: &HeaderMap) -> Result<&'static str, Error> {
    match single_header(headers, X_AMZ_CONTENT_SHA256)? {
        Some(UNSIGNED_PAYLOAD) => Ok(UNSIGNED_PAYLOAD),
        Some(EMPTY_PAYLOAD_SHA256) => Ok(EMPTY_PAYLOAD_SHA256),
        Some(_) => Err(header_error(format!(
            "x-amz-content-sha256 must be {UNSIGNED_PAYLOAD} or the SHA-256 of the empty payload: this S3 front serves GET and HEAD only"
        ))),
        None => Err(header_error("the x-amz-content-sha256 header is missing")),
    }
}

// ---------------------------------------------------------------------------
// Times

/// Days from 1970-01-01 to `year-month-day` (Howard Hinnant's `days_from_civil`);
/// `None` before the epoch.
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    let y = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day.checked_sub(1)?;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

fn digits(s: &str, range: std::ops::Range<usize>) -> Option<u64> {
    let part = s.get(range)?;
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// Parses `YYYYMMDDTHHMMSSZ`; `None` unless it names a real instant (from 1970).
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let (year, month, day) = (digits(s, 0..4)?, digits(s, 4..6)?, digits(s, 6..8)?);
    let (hour, minute, second) = (digits(s, 9..11)?, digits(s, 11..13)?, digits(s, 13..15)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    let t = UNIX_EPOCH + Duration::from_secs(secs);
    // Round-tripping refuses 30 February, hour 24 and the like.
    (AmzTime::new(t).date_time() == s).then_some(t)
}

/// Parses an IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT` (the weekday is not checked).
fn parse_http_date(s: &str) -> Option<SystemTime> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = s.as_bytes();
    if b.len() != 29
        || !b[..3].iter().all(u8::is_ascii_alphabetic)
        || &b[3..5] != b", "
        || b[7] != b' '
        || b[11] != b' '
        || b[16] != b' '
        || b[19] != b':'
        || b[22] != b':'
        || &b[25..] != b" GMT"
    {
        return None;
    }
    let month = MONTHS.iter().position(|m| s.get(8..11) == Some(*m))? + 1;
    let amz = format!(
        "{}{month:02}{}T{}{}{}Z",
        s.get(12..16)?,
        s.get(5..7)?,
        s.get(17..19)?,
        s.get(20..22)?,
        s.get(23..25)?
    );
    parse_amz_date(&amz)
}

// ---------------------------------------------------------------------------
// Paths and queries

/// The path percent-decoded once and re-encoded: S3 keeps `.`, `..` and `//`.
fn canonical_path(raw: &str) -> Result<String, String> {
    let decoded = percent_decode(raw)
        .map_err(|reason| format!("the request path cannot be canonicalised: {reason}"))?;
    Ok(encode_path(&decoded))
}

/// The query's `name=value` pairs, still encoded; empty pieces (`a=1&&b=2`) skipped.
fn raw_query_pairs(uri: &Uri) -> Vec<(&str, &str)> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| piece.split_once('=').unwrap_or((piece, "")))
        .collect()
}

fn decode_query_component(raw: &str) -> Result<String, String> {
    percent_decode(raw).map_err(|reason| format!("a query parameter cannot be decoded: {reason}"))
}

/// Decodes `%XX` escapes (a `+` stays a plus); the result must be UTF-8.
fn percent_decode(raw: &str) -> Result<String, String> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    if !raw.contains('%') {
        return Ok(raw.to_owned());
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let escaped = match (bytes.get(i + 1).copied(), bytes.get(i + 2).copied()) {
                (Some(h), Some(l)) => hex(h).zip(hex(l)).map(|(h, l)| h << 4 | l),
                _ => None,
            };
            out.push(escaped.ok_or("malformed %-escape")?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "not UTF-8 once decoded".to_owned())
}
