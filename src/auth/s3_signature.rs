//! Placeholder until the verifier lands.
#![allow(missing_docs, clippy::needless_pass_by_value, unused)]
use crate::error::Error;
pub struct Claim {
    pub access_key_id: String,
}
pub fn parse(
    _method: &http::Method,
    _uri: &http::Uri,
    _headers: &http::HeaderMap,
) -> Result<Option<Claim>, Error> {
    Ok(None)
}
impl Claim {
    pub fn verify(
        &self,
        _method: &http::Method,
        _uri: &http::Uri,
        _headers: &http::HeaderMap,
        _secret_access_key: &str,
        _now: std::time::SystemTime,
    ) -> Result<(), Error> {
        Err(Error::SignatureDoesNotMatch)
    }
}
