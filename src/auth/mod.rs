//! Who may ask: client tokens, client SigV4 keys for the S3 front,
//! gateway-signed URLs and prefix grants.

pub mod s3_signature;
