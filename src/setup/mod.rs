//! Setup tooling: the customer's side of an integration, done for the operator.
//!
//! - [`external_id`]: a fresh random external ID (`s3gate external-id`);
//! - [`policy`]: the IAM access and trust policies, the bucket CORS rule and
//!   the MinIO policy and `mc` commands of one integration, built from the
//!   typed config alone (`s3gate policy`);
//! - [`probe`]: each integration tried the way the gateway uses it: assume
//!   the role, list one key, HEAD it (`s3gate check --probe`).

pub mod policy;
pub mod probe;

/// A fresh random external ID: a UUID v4, which the trust policy's
/// `sts:ExternalId` condition then demands.
pub fn external_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_ids_are_fresh_v4_uuids() {
        let a = external_id();
        let b = external_id();
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(a.len(), 36);
    }
}
