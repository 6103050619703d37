//! The SigV4 core: percent-encoding, canonical query strings, canonical requests,
//! strings to sign, signing keys and signatures.
//!
//! [`presign`](super::presign) and [`sign_headers`](super::sign_headers) stream the same
//! canonical request and string to sign straight into SHA-256 and HMAC; the functions
//! here build them as text, for tests against AWS's published vectors.

// The canonical text is built here from ASCII (hex digits, percent escapes,
// validated header values), so converting it to `str` cannot fail, and HMAC
// takes keys of any length: those `expect`s state invariants of this module,
// checked byte for byte against aws-sigv4 by tests/sigv4.rs. Offsets are of
// one canonical request, far below 4 GiB; the byte table indexes 0..256.
#![allow(clippy::expect_used, clippy::cast_possible_truncation)]

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The only algorithm s3gate signs with.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

type HmacSha256 = Hmac<Sha256>;

// ---------------------------------------------------------------------------
// Percent-encoding

const fn byte_table(keep_slash: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || b == b'-'
            || b == b'.'
            || b == b'_'
            || b == b'~'
            || (keep_slash && b == b'/');
        i += 1;
    }
    t
}

/// Bytes kept verbatim in query names and values: RFC 3986 unreserved.
static QUERY_SAFE: [bool; 256] = byte_table(false);
/// Bytes kept verbatim in paths: unreserved and `/`.
static PATH_SAFE: [bool; 256] = byte_table(true);

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// Appends `raw` to `out`, keeping the bytes `safe` marks and writing every other
/// byte of its UTF-8 encoding as `%XX` (uppercase hex).
#[inline]
fn encode_into(raw: &str, out: &mut String, safe: &[bool; 256]) {
    let bytes = raw.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if safe[usize::from(b)] {
            continue;
        }
        // `bytes[run..i]` are safe ASCII bytes, so both ends are char boundaries.
        if run < i {
            out.push_str(&raw[run..i]);
        }
        out.push('%');
        out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
        out.push(char::from(HEX_UPPER[usize::from(b & 15)]));
        run = i + 1;
    }
    if run < bytes.len() {
        out.push_str(&raw[run..]);
    }
}

/// Appends `raw` percent-encoded for a path (unreserved characters and `/` kept).
pub(crate) fn encode_path_into(raw: &str, out: &mut String) {
    encode_into(raw, out, &PATH_SAFE);
}

/// Appends `raw` percent-encoded for a query name or value (unreserved characters kept).
pub(crate) fn encode_query_into(raw: &str, out: &mut String) {
    encode_into(raw, out, &QUERY_SAFE);
}

/// Capacity hint for the encoded length of `raw` (exact when at most an eighth of its
/// bytes need encoding; the buffer grows otherwise).
#[inline]
pub(crate) fn encoded_len_hint(raw: &str) -> usize {
    raw.len() + raw.len() / 4 + 8
}

/// Lowercase hex of a SHA-256 output, in a fixed buffer.
pub(crate) struct Hex64([u8; 64]);

impl Hex64 {
    #[inline]
    pub(crate) fn new(bytes: &[u8]) -> Self {
        debug_assert_eq!(bytes.len(), 32);
        let mut out = [0u8; 64];
        for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
            pair[0] = HEX_LOWER[usize::from(b >> 4)];
            pair[1] = HEX_LOWER[usize::from(b & 15)];
        }
        Hex64(out)
    }

    #[inline]
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex is ASCII")
    }

    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

// ---------------------------------------------------------------------------
// Canonical query strings

/// One encoded `name=value` pair: `buf[start..mid]` is the name, `buf[mid..end]` the
/// value (offsets as `u32`: query strings stay far below 4 GiB).
#[derive(Clone, Copy, Default)]
pub(crate) struct Span {
    start: u32,
    mid: u32,
    end: u32,
}

/// Spans kept on the stack; more parameters than this spill to the heap.
pub(crate) const INLINE_PARAMS: usize = 16;

/// Query parameters encoded into one buffer, then emitted sorted by encoded name and
/// value: the canonical query string.
pub(crate) struct QueryBuilder<'s> {
    buf: String,
    spans: &'s mut [Span],
    len: usize,
}

impl<'s> QueryBuilder<'s> {
    /// A builder for at most `spans.len()` parameters, with `capacity` bytes of buffer.
    pub(crate) fn new(spans: &'s mut [Span], capacity: usize) -> Self {
        QueryBuilder {
            buf: String::with_capacity(capacity),
            spans,
            len: 0,
        }
    }

    /// Adds a parameter whose name and value the closures append, already encoded.
    #[inline]
    pub(crate) fn push_with(
        &mut self,
        name: impl FnOnce(&mut String),
        value: impl FnOnce(&mut String),
    ) {
        let start = self.buf.len() as u32;
        name(&mut self.buf);
        let mid = self.buf.len() as u32;
        value(&mut self.buf);
        let end = self.buf.len() as u32;
        self.spans[self.len] = Span { start, mid, end };
        self.len += 1;
    }

    /// Adds a raw (unencoded) parameter.
    #[inline]
    pub(crate) fn push_raw(&mut self, name: &str, value: &str) {
        self.push_with(
            |b| encode_query_into(name, b),
            |b| encode_query_into(value, b),
        );
    }

    /// Number of parameters added.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes of encoded names and values.
    #[inline]
    pub(crate) fn encoded_len(&self) -> usize {
        self.buf.len()
    }

    /// Encoded name of parameter `i`.
    #[inline]
    pub(crate) fn name(&self, i: usize) -> &str {
        let s = self.spans[i];
        &self.buf[s.start as usize..s.mid as usize]
    }

    /// Appends `name=value` of parameter `i` to `out`, after a `&` unless `out` is empty.
    #[inline]
    pub(crate) fn write_pair(&self, i: usize, out: &mut String) {
        let s = self.spans[i];
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&self.buf[s.start as usize..s.mid as usize]);
        out.push('=');
        out.push_str(&self.buf[s.mid as usize..s.end as usize]);
    }

    /// Writes the (sorted) parameters as a query string into `sink`.
    pub(crate) fn write_to<S: Sink>(&self, sink: &mut S) {
        for (i, s) in self.spans[..self.len].iter().enumerate() {
            if i > 0 {
                sink.put(b"&");
            }
            sink.put(&self.buf.as_bytes()[s.start as usize..s.mid as usize]);
            sink.put(b"=");
            sink.put(&self.buf.as_bytes()[s.mid as usize..s.end as usize]);
        }
    }

    /// Sorts the parameters by encoded name, then encoded value.
    pub(crate) fn sort(&mut self) {
        let buf = self.buf.as_bytes();
        let name = |s: &Span| &buf[s.start as usize..s.mid as usize];
        let value = |s: &Span| &buf[s.mid as usize..s.end as usize];
        self.spans[..self.len]
            .sort_unstable_by(|a, b| name(a).cmp(name(b)).then_with(|| value(a).cmp(value(b))));
    }

    /// Sorts the parameters and writes the canonical query string into a new `String`
    /// with `extra` spare bytes of capacity.
    pub(crate) fn finish(mut self, extra: usize) -> String {
        self.sort();
        let mut out = String::with_capacity(self.buf.len() + 2 * self.len + extra);
        for i in 0..self.len {
            self.write_pair(i, &mut out);
        }
        out
    }
}

/// Runs `f` with `n` zeroed spans, on the stack when `n` is small.
#[inline]
pub(crate) fn with_spans<R>(n: usize, f: impl FnOnce(&mut [Span]) -> R) -> R {
    if n <= INLINE_PARAMS {
        let mut inline = [Span::default(); INLINE_PARAMS];
        f(&mut inline[..n])
    } else {
        let mut heap = vec![Span::default(); n];
        f(&mut heap)
    }
}

/// The canonical query string of `params` (raw, unencoded names and values): each name
/// and value percent-encoded, pairs sorted by encoded name then encoded value, joined
/// as `name=value` with `&`. Also the exact query string to send on the wire.
pub fn query_string(params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return String::new();
    }
    let capacity = params
        .iter()
        .map(|(n, v)| encoded_len_hint(n) + encoded_len_hint(v))
        .sum();
    with_spans(params.len(), |spans| {
        let mut q = QueryBuilder::new(spans, capacity);
        for (name, value) in params {
            q.push_raw(name, value);
        }
        q.finish(0)
    })
}

// ---------------------------------------------------------------------------
// Canonical request and string to sign

/// Where canonical text goes: a `String` (tests) or straight into a hash (hot path).
pub(crate) trait Sink {
    /// Appends `b`, which is always UTF-8 text.
    fn put(&mut self, b: &[u8]);
}

impl Sink for String {
    fn put(&mut self, b: &[u8]) {
        self.push_str(std::str::from_utf8(b).expect("canonical text is UTF-8"));
    }
}

impl Sink for Sha256 {
    #[inline]
    fn put(&mut self, b: &[u8]) {
        Digest::update(self, b);
    }
}

impl Sink for HmacSha256 {
    #[inline]
    fn put(&mut self, b: &[u8]) {
        Mac::update(self, b);
    }
}

/// A header value as SigV4 signs it: spaces trimmed at both ends and runs of
/// spaces collapsed to one (only spaces, as aws-sigv4 does for S3).
pub(crate) fn trim_all(value: &str) -> std::borrow::Cow<'_, str> {
    let value = value.trim_matches(' ');
    if !value.contains("  ") {
        return std::borrow::Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut previous_space = false;
    for c in value.chars() {
        if c == ' ' && previous_space {
            continue;
        }
        previous_space = c == ' ';
        out.push(c);
    }
    std::borrow::Cow::Owned(out)
}

/// Writes the canonical request; `write_query` writes the canonical query string.
/// `headers` are canonical already (lowercase names, trimmed values, sorted by name);
/// `signed_headers` is their names joined by `;`.
#[inline]
pub(crate) fn write_canonical_request<S: Sink>(
    sink: &mut S,
    method: &str,
    path: &str,
    write_query: impl FnOnce(&mut S),
    headers: &[(&str, &str)],
    signed_headers: &str,
    payload_hash: &str,
) {
    sink.put(method.as_bytes());
    sink.put(b"\n");
    sink.put(path.as_bytes());
    sink.put(b"\n");
    write_query(sink);
    sink.put(b"\n");
    for (name, value) in headers {
        sink.put(name.as_bytes());
        sink.put(b":");
        sink.put(value.as_bytes());
        sink.put(b"\n");
    }
    sink.put(b"\n");
    sink.put(signed_headers.as_bytes());
    sink.put(b"\n");
    sink.put(payload_hash.as_bytes());
}

/// Writes the string to sign for a canonical request whose SHA-256 is `request_hash_hex`.
#[inline]
pub(crate) fn write_string_to_sign<S: Sink>(
    sink: &mut S,
    date_time: &str,
    region: &str,
    service: &str,
    request_hash_hex: &[u8],
) {
    sink.put(ALGORITHM.as_bytes());
    sink.put(b"\n");
    sink.put(date_time.as_bytes());
    sink.put(b"\n");
    sink.put(scope_date(date_time).as_bytes());
    sink.put(b"/");
    sink.put(region.as_bytes());
    sink.put(b"/");
    sink.put(service.as_bytes());
    sink.put(b"/aws4_request\n");
    sink.put(request_hash_hex);
}

fn scope_date(date_time: &str) -> &str {
    date_time.get(..8).unwrap_or(date_time)
}

/// The canonical request:
/// `METHOD\nPATH\nQUERY\n` + one `name:value\n` per header + `\nSIGNED_HEADERS\nPAYLOAD_HASH`.
///
/// `path` and `query` are used verbatim (already canonical: see [`super::encode_path`] and
/// [`query_string`]); `headers` must be canonical (lowercase names, trimmed values, sorted
/// by name, duplicates joined with `,`) and `signed_headers` their names joined by `;`.
pub fn canonical_request(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    let mut out = String::with_capacity(512);
    write_canonical_request(
        &mut out,
        method,
        path,
        |s| s.push_str(query),
        headers,
        signed_headers,
        payload_hash,
    );
    out
}

/// Lowercase hex SHA-256 of `data` (payload hashes, canonical-request hashes).
pub fn sha256_hex(data: &[u8]) -> String {
    Hex64::new(&Sha256::digest(data)).as_str().to_owned()
}

/// The string to sign for `canonical_request`:
/// `AWS4-HMAC-SHA256\nDATE_TIME\nDATE/REGION/SERVICE/aws4_request\nHEX(SHA256(canonical_request))`,
/// where `date_time` is `YYYYMMDDTHHMMSSZ` and DATE its first eight characters.
pub fn string_to_sign(
    date_time: &str,
    region: &str,
    service: &str,
    canonical_request: &str,
) -> String {
    let hash = Hex64::new(&Sha256::digest(canonical_request.as_bytes()));
    let mut out = String::with_capacity(128);
    write_string_to_sign(&mut out, date_time, region, service, hash.as_bytes());
    out
}

// ---------------------------------------------------------------------------
// Signing keys

fn hmac(key: &[u8], data: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// A derived SigV4 signing key, `kSigning`, for one date, region and service, held as
/// a ready-keyed HMAC-SHA256 (so signing skips the two key-pad compressions). The
/// intermediate and raw derived key bytes are zeroed once it is built, but the keyed
/// HMAC state (hash midstates) is not zeroed on drop. Debug is redacted.
#[derive(Clone)]
pub struct SigningKey {
    mac: HmacSha256,
}

impl SigningKey {
    /// Derives the signing key of `secret_access_key` for `date` (`YYYYMMDD`), `region`
    /// and `service`: HMAC chain `"AWS4" + secret` → date → region → service → `aws4_request`.
    pub fn derive(secret_access_key: &str, date: &str, region: &str, service: &str) -> Self {
        let mut prefixed = Zeroizing::new(Vec::with_capacity(4 + secret_access_key.len()));
        prefixed.extend_from_slice(b"AWS4");
        prefixed.extend_from_slice(secret_access_key.as_bytes());
        Self::derive_prefixed(&prefixed, date, region, service)
    }

    /// [`derive`](Self::derive) from the bytes `"AWS4" + secret`.
    pub(crate) fn derive_prefixed(
        prefixed_secret: &[u8],
        date: &str,
        region: &str,
        service: &str,
    ) -> Self {
        let k_date = hmac(prefixed_secret, date.as_bytes());
        let k_region = hmac(&*k_date, region.as_bytes());
        let k_service = hmac(&*k_region, service.as_bytes());
        let k_signing = hmac(&*k_service, b"aws4_request");
        SigningKey {
            mac: HmacSha256::new_from_slice(&*k_signing).expect("HMAC accepts keys of any length"),
        }
    }

    /// An HMAC-SHA256 keyed with this key.
    #[inline]
    pub(crate) fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }

    /// The signature of `string_to_sign`: lowercase hex HMAC-SHA256.
    pub fn signature(&self, string_to_sign: &str) -> String {
        let mut mac = self.mac();
        mac.update(string_to_sign.as_bytes());
        Hex64::new(&mac.finalize().into_bytes()).as_str().to_owned()
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(** redacted **)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc_query(s: &str) -> String {
        let mut out = String::new();
        encode_query_into(s, &mut out);
        out
    }

    #[test]
    fn encodes_every_byte_like_rfc3986() {
        for b in 0u8..=127 {
            let s = char::from(b).to_string();
            let expected = if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                s.clone()
            } else {
                format!("%{b:02X}")
            };
            assert_eq!(enc_query(&s), expected, "byte {b}");
            let mut path = String::new();
            encode_path_into(&s, &mut path);
            if b == b'/' {
                assert_eq!(path, "/");
            } else {
                assert_eq!(path, expected);
            }
        }
        assert_eq!(enc_query("é日本😀"), "%C3%A9%E6%97%A5%E6%9C%AC%F0%9F%98%80");
        assert_eq!(enc_query("a b+c/d%2F"), "a%20b%2Bc%2Fd%252F");
    }

    #[test]
    fn query_string_sorts_encoded_pairs() {
        assert_eq!(query_string(&[]), "");
        let q = query_string(&[("b", "2"), ("a", "z"), ("a", "y"), ("A", ""), ("é", "1")]);
        assert_eq!(q, "%C3%A9=1&A=&a=y&a=z&b=2");
        let many: Vec<(String, String)> = (0..40)
            .rev()
            .map(|i| (format!("k{i:02}"), i.to_string()))
            .collect();
        let refs: Vec<(&str, &str)> = many.iter().map(|(a, b)| (&**a, &**b)).collect();
        let q = query_string(&refs);
        assert!(q.starts_with("k00=0&k01=1&"));
        assert!(q.ends_with("&k39=39"));
    }
}
