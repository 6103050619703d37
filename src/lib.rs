//! s3gate: a local, S3-compatible presigning gateway.
//!
//! A request flows through [`app::App::handle`]:
//! 1. context (request id, start time);
//! 2. route (`/v1/presign`, `/healthz`);
//! 3. parse the locator ([`locator`]) and resolve it to an integration
//!    ([`integrations`]): the bucket-scoped integration first, else the default
//!    one, and only for permitted buckets and prefixes;
//! 4. fetch the integration's credentials ([`credentials`]);
//! 5. address the object ([`endpoint`]) and sign ([`sigv4`], [`presign`]);
//! 6. respond, and log once ([`app`]); errors are [`error::Error`] values
//!    mapped to responses in [`response`].

pub mod api;
pub mod app;
pub mod config;
pub mod cors;
pub mod credentials;
#[cfg(feature = "embedded-store")]
pub mod demo;
pub mod endpoint;
pub mod error;
pub mod integrations;
pub mod listing;
pub mod locator;
pub mod metrics;
pub mod presign;
pub mod proxy;
pub mod response;
pub mod s3api;
pub mod server;
pub mod sigv4;
#[cfg(feature = "embedded-store")]
pub mod store;
pub mod upstream;
