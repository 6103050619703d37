//! Browser origins an integration or the whole gateway allows: exact
//! origins, `scheme://*.domain` patterns, or `*`.

/// A set of allowed origins.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    any: bool,
    exact: Vec<String>,
    /// `(scheme://, .suffix)` of `scheme://*.suffix` patterns.
    wildcards: Vec<(String, String)>,
}

impl Origins {
    /// Parses `*`, exact origins (`https://app.example.com:8443`) and
    /// `https://*.example.com` patterns.
    pub fn parse(list: &[String]) -> Result<Self, String> {
        let mut origins = Origins::default();
        for entry in list {
            if entry == "*" {
                origins.any = true;
                continue;
            }
            let (scheme, host) = entry
                .split_once("://")
                .filter(|(s, _)| *s == "http" || *s == "https")
                .ok_or_else(|| format!("{entry:?} is not an origin (scheme://host[:port])"))?;
            if host.is_empty() || host.contains('/') || entry != &entry.to_ascii_lowercase() {
                return Err(format!(
                    "{entry:?} is not a lowercase origin without a path"
                ));
            }
            match host.strip_prefix('*') {
                Some(suffix)
                    if suffix.starts_with('.') && suffix.len() > 1 && !suffix.contains('*') =>
                {
                    origins
                        .wildcards
                        .push((format!("{scheme}://"), suffix.to_owned()));
                }
                Some(_) => {
                    return Err(format!("{entry:?}: a wildcard must be `scheme://*.domain`"))
                }
                None if host.contains('*') => {
                    return Err(format!("{entry:?}: a wildcard must lead the host"))
                }
                None => origins.exact.push(entry.clone()),
            }
        }
        Ok(origins)
    }

    /// The allowed origins as configured: `*`, exact origins, then patterns.
    pub fn entries(&self) -> Vec<String> {
        let any = self.any.then(|| "*".to_owned());
        let exact = self.exact.iter().cloned();
        let wildcards = self
            .wildcards
            .iter()
            .map(|(s, suffix)| format!("{s}*{suffix}"));
        any.into_iter().chain(exact).chain(wildcards).collect()
    }

    /// Whether nothing is allowed.
    pub fn is_empty(&self) -> bool {
        !self.any && self.exact.is_empty() && self.wildcards.is_empty()
    }

    /// Whether `origin` is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        self.any
            || self.exact.iter().any(|o| o == origin)
            || self.wildcards.iter().any(|(scheme, suffix)| {
                origin
                    .strip_prefix(scheme.as_str())
                    .and_then(|host| host.strip_suffix(suffix.as_str()))
                    .is_some_and(|label| !label.is_empty() && !label.contains(['/', ':', '.']))
            })
    }

    /// Whether `origin` is allowed only by `*`, not by name (then
    /// `Access-Control-Allow-Origin: *` is the answer).
    pub fn allows_only_as_any(&self, origin: &str) -> bool {
        self.any && !self.exact.iter().any(|o| o == origin)
    }
}
