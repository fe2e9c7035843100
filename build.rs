//! Gives the shared library its soname, `libdistlock.so.<major>`, so that
//! programs linked against an installed `libdistlock.so` record the ABI
//! they were built for (see "ABI stability" in the README).
//!
//! The C header is not generated here: `tests/ffi_header.rs` runs cbindgen
//! (a dev-dependency) and fails when `include/distlock.h` is stale, and
//! rewrites it when run with `DISTLOCK_BLESS=1`. So a crate that depends on
//! distlock builds no cbindgen and never touches the header.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let major = env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    if matches!(os.as_str(), "linux" | "freebsd" | "netbsd" | "openbsd") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libdistlock.so.{major}");
    }
}
