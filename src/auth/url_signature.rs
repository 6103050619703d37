//! Gateway-signed URLs and prefix grants: HMAC-SHA256 with the URL signing
//! keys, so the gateway can check them without state and without a token.
//!
//! Every signed message starts with a purpose tag and holds its fields
//! length-prefixed, so no two different field lists sign the same bytes.
//! A key is named by its `kid`, the first 8 hex digits of its SHA-256; the
//! first key signs and every key verifies, which lets keys rotate.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::error::Error;
use crate::hex;

type HmacSha256 = Hmac<Sha256>;

/// Prefix of every grant string.
pub const GRANT_PREFIX: &str = "s3g1.";

/// One URL signing key.
struct UrlKey {
    kid: String,
    mac: HmacSha256,
}

/// The URL signing keys: the first signs, all verify.
pub struct UrlKeys {
    keys: Vec<UrlKey>,
    ephemeral: bool,
}

impl std::fmt::Debug for UrlKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("UrlKeys").field("kids", &kids).finish()
    }
}

impl UrlKeys {
    /// The configured keys, or with none a random key that lives as long as
    /// the process.
    pub fn new(secrets: &[Secret]) -> Result<Self, Error> {
        if secrets.is_empty() {
            let random = super::random_hex(32)?;
            return Ok(Self {
                keys: vec![UrlKey::new(random.as_bytes())?],
                ephemeral: true,
            });
        }
        let keys = secrets
            .iter()
            .map(|s| UrlKey::new(s.expose().as_bytes()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            keys,
            ephemeral: false,
        })
    }

    /// Whether the key was made at start (URLs die with the process).
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    /// The signing key's id and the signature of `fields` for `purpose`.
    pub fn sign(&self, purpose: &str, fields: &[&str]) -> (&str, String) {
        let key = &self.keys[0];
        (&key.kid, hex::encode(&key.tag(purpose, fields)))
    }

    /// Checks `signature` (hex) of `fields` under key `kid`, in constant time.
    pub fn verify(
        &self,
        kid: &str,
        purpose: &str,
        fields: &[&str],
        signature: &str,
    ) -> Result<(), Error> {
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(Error::SignatureDoesNotMatch)?;
        let expected = hex::encode(&key.tag(purpose, fields));
        if expected.as_bytes().ct_eq(signature.as_bytes()).into() {
            Ok(())
        } else {
            Err(Error::SignatureDoesNotMatch)
        }
    }
}

impl UrlKey {
    fn new(secret: &[u8]) -> Result<Self, Error> {
        let digest = Sha256::digest(secret);
        let mac = HmacSha256::new_from_slice(secret)
            .map_err(|e| Error::Internal(format!("URL signing key: {e}")))?;
        Ok(Self {
            kid: hex::encode(&digest[..4]),
            mac,
        })
    }

    fn tag(&self, purpose: &str, fields: &[&str]) -> Vec<u8> {
        let mut mac = self.mac.clone();
        mac.update(purpose.as_bytes());
        for field in fields {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        mac.finalize().into_bytes().to_vec()
    }
}

/// A prefix grant: read-only access for `client` to everything under
/// `prefix` (a locator) until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The client it was issued to (empty on an anonymous gateway).
    pub client: String,
    /// The locator of the prefix it covers.
    pub prefix: String,
    /// Unix time it expires at.
    pub expires_at: u64,
}

/// Purpose tag of grants.
const GRANT: &str = "s3gate-grant-v1";

impl Grant {
    /// The grant as a string: `s3g1.EXPIRES.KID.HEX(client).HEX(prefix).SIG`.
    pub fn encode(&self, keys: &UrlKeys) -> String {
        let expires = self.expires_at.to_string();
        let (kid, sig) = keys.sign(GRANT, &[&self.client, &self.prefix, &expires]);
        format!(
            "{GRANT_PREFIX}{expires}.{kid}.{}.{}.{sig}",
            hex::encode(self.client.as_bytes()),
            hex::encode(self.prefix.as_bytes())
        )
    }

    /// Parses and verifies a grant string, valid at unix time `now`.
    pub fn decode(text: &str, keys: &UrlKeys, now: u64) -> Result<Self, Error> {
        let malformed = || Error::InvalidParameter {
            name: "grant",
            reason: "is not a grant made by this gateway".into(),
        };
        let body = text.strip_prefix(GRANT_PREFIX).ok_or_else(malformed)?;
        let parts: Vec<&str> = body.split('.').collect();
        let [expires, kid, client, prefix, sig] = parts[..] else {
            return Err(malformed());
        };
        let text_of = |h: &str| hex::decode(h).and_then(|b| String::from_utf8(b).ok());
        let (Some(client), Some(prefix)) = (text_of(client), text_of(prefix)) else {
            return Err(malformed());
        };
        let expires_at: u64 = expires.parse().map_err(|_| malformed())?;
        keys.verify(kid, GRANT, &[&client, &prefix, expires], sig)?;
        if now >= expires_at {
            return Err(Error::RequestExpired);
        }
        Ok(Self {
            client,
            prefix,
            expires_at,
        })
    }
}

/// Purpose tag of gateway-signed object URLs.
const OBJECT: &str = "s3gate-object-v1";

/// What a gateway-signed `/v1/object` URL grants: one method on one
/// locator, with its response overrides, until `expires_at`.
#[derive(Debug, Clone, Copy)]
pub struct SignedObject<'a> {
    /// `GET` or `HEAD`.
    pub method: &'a str,
    /// The client it was signed for (empty on an anonymous gateway).
    pub client: &'a str,
    /// The locator, as given.
    pub locator: &'a str,
    /// Unix time it expires at.
    pub expires_at: u64,
    /// `response-content-type`.
    pub content_type: Option<&'a str>,
    /// `response-content-disposition`.
    pub content_disposition: Option<&'a str>,
    /// `version_id`.
    pub version_id: Option<&'a str>,
}

impl SignedObject<'_> {
    /// The signing key's id and the URL's signature.
    pub fn sign<'k>(&self, keys: &'k UrlKeys) -> (&'k str, String) {
        let expires = self.expires_at.to_string();
        keys.sign(OBJECT, &self.fields(&expires))
    }

    /// Checks the URL's signature, then its expiry at unix time `now`.
    pub fn verify(&self, keys: &UrlKeys, kid: &str, sig: &str, now: u64) -> Result<(), Error> {
        let expires = self.expires_at.to_string();
        keys.verify(kid, OBJECT, &self.fields(&expires), sig)?;
        if now >= self.expires_at {
            return Err(Error::RequestExpired);
        }
        Ok(())
    }

    /// The signed fields; an absent option and an empty one differ.
    fn fields<'s>(&'s self, expires: &'s str) -> [&'s str; 7] {
        let opt = |v: Option<&'s str>| v.map_or("\0", |v| v);
        [
            self.method,
            self.client,
            self.locator,
            expires,
            opt(self.content_type),
            opt(self.content_disposition),
            opt(self.version_id),
        ]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn keys(secrets: &[&str]) -> UrlKeys {
        let secrets: Vec<Secret> = secrets.iter().map(|s| Secret::new((*s).into())).collect();
        UrlKeys::new(&secrets).unwrap()
    }

    const A: &str = "0123456789abcdef0123456789abcdef-a";
    const B: &str = "0123456789abcdef0123456789abcdef-b";

    #[test]
    fn signatures_bind_every_field_and_its_boundaries() {
        let k = keys(&[A]);
        let (kid, sig) = k.sign("p", &["ab", "c"]);
        let kid = kid.to_owned();
        assert!(k.verify(&kid, "p", &["ab", "c"], &sig).is_ok());
        for (purpose, fields) in [
            ("p", &["a", "bc"][..]),
            ("p", &["ab", "d"]),
            ("q", &["ab", "c"]),
            ("p", &["ab"]),
        ] {
            assert!(k.verify(&kid, purpose, fields, &sig).is_err(), "{fields:?}");
        }
        assert!(k.verify("00000000", "p", &["ab", "c"], &sig).is_err());
        assert!(k.verify(&kid, "p", &["ab", "c"], &sig[1..]).is_err());
    }

    #[test]
    fn the_first_key_signs_and_every_key_verifies() {
        let old = keys(&[A]);
        let rotated = keys(&[B, A]);
        let (kid, sig) = old.sign("p", &["x"]);
        assert!(rotated.verify(kid, "p", &["x"], &sig).is_ok());
        let (new_kid, _) = rotated.sign("p", &["x"]);
        assert_ne!(new_kid, kid);
        assert!(keys(&[B]).verify(kid, "p", &["x"], &sig).is_err());
        assert!(UrlKeys::new(&[]).unwrap().is_ephemeral());
        assert!(!old.is_ephemeral());
    }

    #[test]
    fn object_urls_bind_method_locator_expiry_and_overrides() {
        let k = keys(&[A]);
        let url = SignedObject {
            method: "GET",
            client: "c",
            locator: "s3://media/a.png",
            expires_at: 100,
            content_type: None,
            content_disposition: None,
            version_id: None,
        };
        let (kid, sig) = url.sign(&k);
        let kid = kid.to_owned();
        assert!(url.verify(&k, &kid, &sig, 99).is_ok());
        assert_eq!(
            url.verify(&k, &kid, &sig, 100).unwrap_err().code(),
            "RequestExpired"
        );
        for changed in [
            SignedObject {
                method: "HEAD",
                ..url
            },
            SignedObject { client: "d", ..url },
            SignedObject {
                locator: "s3://media/b.png",
                ..url
            },
            SignedObject {
                expires_at: 101,
                ..url
            },
            SignedObject {
                content_type: Some("text/html"),
                ..url
            },
            SignedObject {
                content_type: Some(""),
                ..url
            },
            SignedObject {
                content_disposition: Some("attachment"),
                ..url
            },
            SignedObject {
                version_id: Some("v"),
                ..url
            },
        ] {
            assert_eq!(
                changed.verify(&k, &kid, &sig, 1).unwrap_err().code(),
                "SignatureDoesNotMatch",
                "{changed:?}"
            );
        }
    }

    #[test]
    fn grants_round_trip_and_refuse_tampering_and_expiry() {
        let k = keys(&[A]);
        let grant = Grant {
            client: "annotator".into(),
            prefix: "s3://media/task-17/".into(),
            expires_at: 2_000,
        };
        let text = grant.encode(&k);
        assert!(text.starts_with(GRANT_PREFIX));
        assert_eq!(Grant::decode(&text, &k, 1_999).unwrap(), grant);
        assert_eq!(
            Grant::decode(&text, &k, 2_000).unwrap_err().code(),
            "RequestExpired"
        );
        let wider = Grant {
            prefix: "s3://media/".into(),
            ..grant.clone()
        }
        .encode(&keys(&[B]));
        let forged = format!(
            "{}{}",
            &wider[..wider.rfind('.').unwrap()],
            &text[text.rfind('.').unwrap()..]
        );
        assert_eq!(
            Grant::decode(&forged, &k, 1).unwrap_err().code(),
            "SignatureDoesNotMatch"
        );
        let later = text.replacen("2000", "9000", 1);
        assert_eq!(
            Grant::decode(&later, &k, 1).unwrap_err().code(),
            "SignatureDoesNotMatch"
        );
        for bad in ["", "s3g1.", "s3g1.1.2.3", "token", "s3g1.x.kid.zz.zz.sig"] {
            assert_eq!(
                Grant::decode(bad, &k, 1).unwrap_err().code(),
                "InvalidArgument",
                "{bad}"
            );
        }
    }
}
