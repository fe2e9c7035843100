//! Helpers shared by the examples.

pub mod checker;
pub mod proxy;
pub mod server;
