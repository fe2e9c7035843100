//! Helpers shared by the examples.

pub mod server;
