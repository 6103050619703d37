//! The `Host` allow-list: a page that rebinds its own DNS name to the
//! gateway's address becomes same-origin with it; answering only the names
//! the operator lists (IP literals always pass) keeps such pages out.

use std::net::IpAddr;

use http::{header, HeaderMap, Uri};

use crate::error::Error;

/// The host names a gateway answers to.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    names: Vec<String>,
    suffixes: Vec<String>,
    any: bool,
}

impl AllowedHosts {
    /// From `[server] allowed_hosts`: exact names, `*.example.com` for any
    /// subdomain, or `*` for every host (behind a proxy that checks it).
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Self {
        let mut hosts = Self::default();
        for pattern in patterns {
            let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
            if pattern == "*" {
                hosts.any = true;
            } else if let Some(domain) = pattern.strip_prefix("*.") {
                hosts.suffixes.push(format!(".{domain}"));
            } else {
                hosts.names.push(pattern);
            }
        }
        hosts
    }

    /// Refuses a request whose host (the `Host` header, or the URI's
    /// authority on HTTP/2) is a name not on the list. A request without
    /// any host is let through: no browser sends one.
    pub fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Error> {
        let host = match headers.get(header::HOST) {
            Some(value) => value.to_str().map_err(|_| misdirected("?"))?,
            None => match uri.authority() {
                Some(authority) => authority.as_str(),
                None => return Ok(()),
            },
        };
        if self.admits(host) {
            Ok(())
        } else {
            Err(misdirected(host))
        }
    }

    /// Whether `host` (`name[:port]`, an IP literal, `[v6]:port`) is served.
    pub fn admits(&self, host: &str) -> bool {
        if self.any || host.starts_with('[') {
            return true;
        }
        let name = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        if name.parse::<IpAddr>().is_ok() {
            return true;
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.names.contains(&name) || self.suffixes.iter().any(|s| name.ends_with(s.as_str()))
    }
}

fn misdirected(host: &str) -> Error {
    let host: String = host.chars().take(255).collect();
    Error::MisdirectedRequest { host }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_on_the_list_and_ip_literals_pass() {
        let hosts = AllowedHosts::new(["localhost", "Media.Example.com", "*.cdn.example"]);
        for host in [
            "localhost",
            "localhost:8080",
            "media.example.com",
            "MEDIA.example.com.:443",
            "a.cdn.example",
            "x.y.cdn.example:1",
            "127.0.0.1",
            "10.0.0.7:8080",
            "[::1]:8080",
        ] {
            assert!(hosts.admits(host), "{host}");
        }
        for host in [
            "attacker.example",
            "cdn.example",
            "localhost.attacker.example",
            "example.com",
            "",
            "media.example.com:x",
        ] {
            assert!(!hosts.admits(host), "{host}");
        }
        assert!(AllowedHosts::new(["*"]).admits("anything.example"));
    }
}
