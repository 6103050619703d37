//! Who may ask: the credentials a request presents and the caller they prove.
//!
//! - JSON API: `Authorization: Bearer TOKEN` (a client's token, checked by
//!   its SHA-256 in constant time), a prefix grant (`Bearer s3g1.…` or
//!   `grant=`), or, on `/v1/object`, a gateway-signed URL;
//! - S3 front: the client's SigV4 signature, in the header or the query.
//!
//! What a proven caller may read is decided where a locator is resolved
//! ([`crate::front::state::State::resolve`]).

pub mod clients;
pub mod s3_signature;
pub mod url_signature;

use std::fmt;
use std::sync::Arc;

use std::time::SystemTime;

use http::{header, HeaderMap, Method, Uri};

pub use clients::{Client, Clients};
use url_signature::{Grant, SignedObject, UrlKeys, GRANT_PREFIX};

use crate::config::{ClientConfig, Secret};
use crate::error::Error;

/// How a caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// Nothing: the gateway (or this route) is anonymous.
    Anonymous,
    /// A bearer token.
    Token,
    /// A SigV4 signature with the client's S3 keys.
    S3Key,
    /// A gateway-signed URL.
    SignedUrl,
    /// A prefix grant: everything is also limited to its prefix.
    Grant(Grant),
}

/// Who sent a request, once authenticated.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The client, unless the request is anonymous.
    pub client: Option<Arc<Client>>,
    /// How it authenticated.
    pub via: Via,
}

impl Caller {
    /// A caller with no credential.
    pub fn anonymous() -> Self {
        Self {
            client: None,
            via: Via::Anonymous,
        }
    }

    /// The client's name for signing URLs and grants: empty when anonymous.
    pub fn signing_name(&self) -> &str {
        self.client.as_ref().map_or("", |c| c.name.as_str())
    }

    /// The grant the caller presented, if any.
    pub fn grant(&self) -> Option<&Grant> {
        match &self.via {
            Via::Grant(grant) => Some(grant),
            _ => None,
        }
    }

    /// How the caller authenticated, for the access log.
    pub fn via_label(&self) -> &'static str {
        match self.via {
            Via::Anonymous => "-",
            Via::Token => "token",
            Via::S3Key => "s3-key",
            Via::SignedUrl => "signed-url",
            Via::Grant(_) => "grant",
        }
    }
}

impl Caller {
    /// The client's name, or `-` when anonymous (logs and metric labels).
    pub fn name(&self) -> &str {
        self.client.as_ref().map_or("-", |c| c.name.as_str())
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Shortest bearer token accepted: `s3gate token` makes 69 characters; an
/// empty or short one (an unset variable) never authenticates.
pub const MIN_TOKEN_LEN: usize = 16;

/// The clients and the URL signing keys: turns presented credentials into callers.
#[derive(Debug)]
pub struct Authenticator {
    /// The configured clients.
    pub clients: Clients,
    /// Keys of gateway-signed URLs and grants.
    pub url_keys: UrlKeys,
    /// Serve the S3 front to unsigned requests.
    pub s3_anonymous: bool,
}

impl Authenticator {
    /// Builds the authenticator; with no URL signing keys configured, a random one.
    pub fn new(
        clients: Vec<ClientConfig>,
        url_signing_keys: &[Secret],
        s3_anonymous: bool,
    ) -> Result<Self, Error> {
        Ok(Self {
            clients: Clients::new(clients),
            url_keys: UrlKeys::new(url_signing_keys)?,
            s3_anonymous,
        })
    }

    /// Whether the JSON API is open to requests without a credential.
    pub fn json_anonymous(&self) -> bool {
        self.clients.is_empty()
    }

    /// The caller an `Authorization: Bearer` header proves; `None` without one.
    pub fn bearer(&self, headers: &HeaderMap, now: u64) -> Result<Option<Caller>, Error> {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(Error::Unauthorized {
                reason: "more than one Authorization header",
            });
        }
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(Error::Unauthorized {
                reason: "the Authorization header must be `Bearer TOKEN`",
            })?;
        if token.len() < MIN_TOKEN_LEN {
            return Err(Error::Unauthorized {
                reason: "the bearer token is not valid",
            });
        }
        if token.starts_with(GRANT_PREFIX) {
            return self.grant(token, now).map(Some);
        }
        if self.json_anonymous() {
            return Ok(None);
        }
        let client = self.clients.by_token(token).ok_or(Error::Unauthorized {
            reason: "the bearer token is not valid",
        })?;
        Ok(Some(Caller {
            client: Some(client),
            via: Via::Token,
        }))
    }

    /// The caller a grant proves, valid at unix time `now`.
    pub fn grant(&self, text: &str, now: u64) -> Result<Caller, Error> {
        let grant = Grant::decode(text, &self.url_keys, now)?;
        Ok(Caller {
            client: self.issued_to(&grant.client)?,
            via: Via::Grant(grant),
        })
    }

    /// The caller of a gateway-signed object URL, valid at unix time `now`.
    pub fn signed_object(
        &self,
        url: &SignedObject<'_>,
        kid: &str,
        sig: &str,
        now: u64,
    ) -> Result<Caller, Error> {
        url.verify(&self.url_keys, kid, sig, now)?;
        Ok(Caller {
            client: self.issued_to(url.client)?,
            via: Via::SignedUrl,
        })
    }

    /// The caller of an S3-front request: a client whose SigV4 signature
    /// verifies, or anonymous where `[s3_api] anonymous` allows (then a
    /// signature with an unknown key is not checked, as before clients).
    pub fn s3(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Result<Caller, Error> {
        let Some(claim) = s3_signature::parse(method, uri, headers)? else {
            return if self.s3_anonymous {
                Ok(Caller::anonymous())
            } else {
                Err(Error::Unauthenticated)
            };
        };
        let client = self.clients.by_access_key(&claim.access_key_id);
        let keys = client.and_then(|c| c.keys.as_ref());
        let (Some(client), Some(keys)) = (client, keys) else {
            return if self.s3_anonymous {
                Ok(Caller::anonymous())
            } else {
                Err(Error::InvalidAccessKeyId)
            };
        };
        claim.verify(method, uri, headers, keys.secret.expose(), now)?;
        Ok(Caller {
            client: Some(client.clone()),
            via: Via::S3Key,
        })
    }

    /// The client a URL or grant was issued to, if it still exists.
    fn issued_to(&self, name: &str) -> Result<Option<Arc<Client>>, Error> {
        match (name, self.clients.by_name(name)) {
            ("", _) if self.json_anonymous() => Ok(None),
            (_, Some(client)) => Ok(Some(client.clone())),
            _ => Err(Error::Unauthorized {
                reason: "the grant or URL was issued to a client that is not configured",
            }),
        }
    }
}

/// `bytes` random bytes from the operating system, as hex.
pub fn random_hex(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(crate::hex::encode(&buf))
}

/// A fresh bearer token and the `token_sha256` line that admits it.
pub fn new_token() -> Result<(String, String), Error> {
    use sha2::{Digest, Sha256};
    let token = format!("s3gt_{}", random_hex(32)?);
    let digest = crate::hex::encode(&Sha256::digest(token.as_bytes()));
    Ok((token, format!("token_sha256 = [\"{digest}\"]")))
}
