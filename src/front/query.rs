//! The one query-parameter parser: form-decoded pairs, each name at most
//! once on every route (stores disagree on which of several values wins, so
//! none is forwarded or acted on).

use std::collections::HashSet;

use crate::error::Error;

/// A request's query parameters, in order, names unique.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `raw` (the part after `?`) as `application/x-www-form-urlencoded`
    /// (the WHATWG rules `form_urlencoded` follows; a test compares); refuses
    /// a repeated name.
    pub fn parse(raw: Option<&str>) -> Result<Self, Error> {
        let pairs: Vec<(String, String)> = raw
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(name), decode(value))
            })
            .collect();
        if let Some(name) = repeated(&pairs) {
            return Err(Error::InvalidParameter {
                name: "query",
                reason: format!("parameter {name:?} is given more than once"),
            });
        }
        Ok(Self(pairs))
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, which must be given.
    pub fn require(&self, name: &'static str) -> Result<&str, Error> {
        self.get(name).ok_or(Error::InvalidParameter {
            name,
            reason: "is required".into(),
        })
    }

    /// Whether `name` is given.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The first name not in `allowed`.
    pub fn unknown(&self, allowed: &[&str]) -> Option<&str> {
        self.0
            .iter()
            .map(|(n, _)| n.as_str())
            .find(|n| !allowed.contains(n))
    }

    /// Refuses any name not in `allowed` (the JSON API's rule).
    pub fn only(&self, allowed: &[&str]) -> Result<(), Error> {
        match self.unknown(allowed) {
            Some(name) => Err(Error::InvalidParameter {
                name: "query",
                reason: format!(
                    "unknown parameter {name:?}; expected one of {}",
                    allowed.join(", ")
                ),
            }),
            None => Ok(()),
        }
    }

    /// Drops the parameters whose name `ignored` matches.
    pub fn without(mut self, ignored: impl Fn(&str) -> bool) -> Self {
        self.0.retain(|(n, _)| !ignored(n));
        self
    }

    /// Whether no parameter is given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The pairs, borrowed, in order (as a signed read takes them).
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        self.0
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// The first name given twice. Queries are short: pairwise up to a few
/// names, a set beyond (a query may hold thousands).
fn repeated(pairs: &[(String, String)]) -> Option<&str> {
    if pairs.len() <= 8 {
        return pairs
            .iter()
            .enumerate()
            .find(|(i, (name, _))| pairs[..*i].iter().any(|(seen, _)| seen == name))
            .map(|(_, (name, _))| name.as_str());
    }
    let mut seen = HashSet::with_capacity(pairs.len());
    pairs
        .iter()
        .map(|(name, _)| name.as_str())
        .find(|name| !seen.insert(*name))
}

/// One form-encoded name or value, decoded: `+` is a space, `%XX` a byte
/// (a `%` not followed by two hex digits stays as it is), and the bytes
/// read as UTF-8, invalid sequences replaced. Written here rather than
/// through `form_urlencoded`, whose iterators decode a byte at a time with
/// an allocation per step (≈ 3,500 instructions for a presign's query,
/// callgrind; this takes a third).
fn decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || b == b'+') {
        return raw.to_owned();
    }
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = match bytes[i] {
            b'+' => b' ',
            b'%' => match (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            ) {
                (Some(high), Some(low)) => {
                    i += 2;
                    // Two hex digits: at most 255.
                    u8::try_from(high * 16 + low).unwrap_or(b'%')
                }
                _ => b'%',
            },
            other => other,
        };
        out.push(byte);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_are_refused_and_others_kept_in_order() {
        let q = Query::parse(Some("b=2&a=1&c=%2F+x")).unwrap();
        assert_eq!(q.pairs(), vec![("b", "2"), ("a", "1"), ("c", "/ x")]);
        let e = Query::parse(Some("a=1&b=2&a=3")).unwrap_err();
        assert!(
            e.to_string().contains("\"a\" is given more than once"),
            "{e}"
        );
        assert!(Query::parse(Some("a&a")).is_err());
        assert!(Query::parse(None).unwrap().is_empty());
    }

    #[test]
    fn unknown_names_are_found() {
        let q = Query::parse(Some("locator=s3://b/k&expire=5")).unwrap();
        assert_eq!(q.unknown(&["locator", "expires"]), Some("expire"));
        assert!(q.only(&["locator", "expires"]).is_err());
        assert_eq!(q.require("locator").unwrap(), "s3://b/k");
        assert!(q.require("expires").is_err());
        let q = q.without(|n| n.starts_with("exp"));
        assert_eq!(q.len(), 1);
    }

    fn query_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            4 => proptest::sample::select("&=+%abcxyz09AFaf".chars().collect::<Vec<_>>()),
            1 => proptest::sample::select(vec!['\u{e9}', '\u{1f600}', ' ', '/', '?']),
            1 => any::<char>(),
        ];
        proptest::collection::vec(piece, 0..=40).prop_map(|chars| chars.into_iter().collect())
    }

    proptest::proptest! {
        #[test]
        fn decodes_as_form_urlencoded_does(raw in query_text()) {
            let expected: Vec<(String, String)> =
                form_urlencoded::parse(raw.as_bytes()).into_owned().collect();
            let mut names: Vec<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
            names.sort_unstable();
            let repeated = names.windows(2).any(|w| w[0] == w[1]);
            match Query::parse(Some(&raw)) {
                Ok(query) => {
                    proptest::prop_assert!(!repeated);
                    proptest::prop_assert_eq!(query.0, expected);
                }
                Err(_) => proptest::prop_assert!(repeated),
            }
        }
    }

    #[test]
    fn many_names_are_checked_for_repeats_too() {
        let many: Vec<String> = (0..50).map(|i| format!("n{i}=v")).collect();
        assert_eq!(Query::parse(Some(&many.join("&"))).unwrap().len(), 50);
        let again = format!("{}&n7=x", many.join("&"));
        assert!(Query::parse(Some(&again)).is_err());
    }
}
