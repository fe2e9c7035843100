//! Helpers shared by the examples.

pub mod proxy;
pub mod server;
