//! The upstream side: integrations, their stores' addresses, the pooled
//! client that reaches them, and signed reads streamed back.

pub mod client;
pub mod endpoint;
pub mod integration;
pub mod registry;
pub mod stream;

pub use integration::Integration;
pub use registry::{Registry, Resolved};
