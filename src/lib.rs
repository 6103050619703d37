//! s3gate: a local, S3-compatible presigning gateway.
//!
//! A request flows through [`front::App::handle`]:
//! 1. context: request id, start time and [`front::context::Route`], decided once;
//! 2. the route's handler ([`front::json_api`] or [`front::s3_api`]) parses
//!    its query ([`front::query`]) and the locator ([`locator`]), and resolves
//!    it to an integration ([`upstream::registry`]): the bucket-scoped one
//!    first, else the default one, and only for permitted buckets and prefixes;
//! 3. the integration ([`upstream::integration`]) supplies credentials
//!    ([`credentials`]) and addresses the object ([`upstream::endpoint`]);
//!    the handler presigns ([`presign`], [`sigv4`]) or streams a signed read
//!    through [`upstream::Integration::fetch`];
//! 4. errors are [`error::Error`] values rendered in one place
//!    ([`front::response`]), and one logging step records every request.

pub mod auth;
pub mod body;
pub mod cache;
pub mod config;
pub mod credentials;
pub mod decimal;
#[cfg(feature = "embedded-store")]
pub mod demo;
pub mod error;
pub mod front;
pub mod hex;
pub mod json;
pub mod locator;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod origins;
pub mod presign;
pub mod setup;
pub mod sigv4;
pub mod upstream;
pub mod xml;
