//! The one query-parameter parser: form-decoded pairs, each name at most
//! once on every route (stores disagree on which of several values wins, so
//! none is forwarded or acted on).

use std::collections::HashSet;

use crate::error::Error;

/// A request's query parameters, in order, names unique.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `raw` (the part after `?`); refuses a repeated name.
    pub fn parse(raw: Option<&str>) -> Result<Self, Error> {
        let pairs: Vec<(String, String)> = raw
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let mut seen = HashSet::with_capacity(pairs.len());
        if let Some((name, _)) = pairs.iter().find(|(k, _)| !seen.insert(k.as_str())) {
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
}
