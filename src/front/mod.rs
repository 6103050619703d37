//! The HTTP front: connections, the request lifecycle, and the two APIs
//! (JSON under `/v1/`, the S3-compatible one everywhere else).

pub mod access_log;
pub mod app;
pub mod authenticate;
pub mod connection;
pub mod content;
pub mod context;
pub mod cors;
pub mod gateway_url;
pub mod hosts;
pub mod http;
pub mod json_api;
pub mod listing;
pub mod live;
pub mod query;
pub mod readiness;
pub mod response;
pub mod s3_api;
pub mod s3_listing;
pub mod send_timeout;
pub mod server;
pub mod state;
pub mod transport;

pub use app::App;
