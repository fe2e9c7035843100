//! The library version as compile-time constants, so that C code can check
//! at build time which API it is compiled against (`distlock_version()`
//! tells which library it runs with).
//!
//! cbindgen turns these into `#define`s; it cannot evaluate `env!`, so they
//! are literals, and the tests below fail when they drift from the version
//! in `Cargo.toml`. `cbindgen.toml` adds `DISTLOCK_VERSION`, the same
//! numbers as a string literal, built from these three.

/// Major version of the library the header belongs to. Within one major
/// version (the shared library's soname, `libdistlock.so.<major>`) the C
/// API only grows.
pub const DISTLOCK_VERSION_MAJOR: u32 = 0;
/// Minor version of the library the header belongs to.
pub const DISTLOCK_VERSION_MINOR: u32 = 1;
/// Patch version of the library the header belongs to.
pub const DISTLOCK_VERSION_PATCH: u32 = 0;

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn cargo(part: &str, value: &str) -> u32 {
        value
            .parse()
            .unwrap_or_else(|e| panic!("CARGO_PKG_VERSION_{part} {value:?}: {e}"))
    }

    #[test]
    fn constants_match_cargo_toml() {
        let bump = "update src/ffi/version.rs after a version bump, then run \
                    `DISTLOCK_BLESS=1 cargo test --test ffi_header`";
        assert_eq!(
            DISTLOCK_VERSION_MAJOR,
            cargo("MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
            "{bump}"
        );
        assert_eq!(
            DISTLOCK_VERSION_MINOR,
            cargo("MINOR", env!("CARGO_PKG_VERSION_MINOR")),
            "{bump}"
        );
        assert_eq!(
            DISTLOCK_VERSION_PATCH,
            cargo("PATCH", env!("CARGO_PKG_VERSION_PATCH")),
            "{bump}"
        );
        // DISTLOCK_VERSION in the header is "MAJOR.MINOR.PATCH": it would be
        // wrong for a pre-release or build-metadata version.
        assert_eq!(
            format!("{DISTLOCK_VERSION_MAJOR}.{DISTLOCK_VERSION_MINOR}.{DISTLOCK_VERSION_PATCH}"),
            env!("CARGO_PKG_VERSION"),
            "the header's DISTLOCK_VERSION is MAJOR.MINOR.PATCH only"
        );
    }

    #[test]
    fn constants_match_distlock_version() {
        // SAFETY: distlock_version returns a static NUL-terminated string.
        let runtime = unsafe { CStr::from_ptr(super::super::distlock_version()) };
        assert_eq!(
            runtime.to_str().expect("UTF-8"),
            format!("{DISTLOCK_VERSION_MAJOR}.{DISTLOCK_VERSION_MINOR}.{DISTLOCK_VERSION_PATCH}")
        );
    }
}
