//! Generates the C header `include/distlock.h` from `src/ffi/` with
//! cbindgen. The header is written only when its content changes; a copy
//! always goes to `$OUT_DIR/distlock.h` for `tests/ffi_header.rs`.
//!
//! With `DISTLOCK_HEADER_CHECK` set, the committed header is left alone, so
//! that `cargo test --test ffi_header` fails if it is stale.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=include/distlock.h");
    println!("cargo:rerun-if-env-changed=DISTLOCK_HEADER_CHECK");

    let root = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml"))
        .unwrap_or_else(|e| panic!("cannot read cbindgen.toml: {e}"));
    // Parsing the module's files directly needs neither `cargo metadata` nor
    // the network.
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/ffi/mod.rs"))
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen cannot generate the C header: {e}"));
    let mut header = Vec::new();
    bindings.write(&mut header);

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    write_if_changed(&out_dir.join("distlock.h"), &header);
    if env::var_os("DISTLOCK_HEADER_CHECK").is_none()
        && write_if_changed(&root.join("include/distlock.h"), &header)
    {
        println!("cargo:warning=include/distlock.h was regenerated; commit it");
    }
}

/// Writes `content` to `path` unless it already holds exactly that; true if
/// it wrote.
fn write_if_changed(path: &Path, content: &[u8]) -> bool {
    if fs::read(path).is_ok_and(|old| old == content) {
        return false;
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    }
    fs::write(path, content).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    true
}
