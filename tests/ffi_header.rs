//! The committed C header must be exactly what cbindgen generates from
//! `src/ffi/` now, and must declare the C API the Go and Python bindings
//! are written against.
//!
//! This test is where the header is made: it runs cbindgen (a
//! dev-dependency, so that crates depending on distlock never build it) and
//! compares the result with `include/distlock.h`. Run it with
//! `DISTLOCK_BLESS=1` to write a fresh header instead of failing on a stale
//! one, then commit the header.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// What cbindgen produces from the code now (parsed as plain source: no
/// `cargo metadata`, no network).
fn generated() -> &'static str {
    static HEADER: OnceLock<String> = OnceLock::new();
    HEADER.get_or_init(|| {
        let config = cbindgen::Config::from_file(root().join("cbindgen.toml"))
            .unwrap_or_else(|e| panic!("cannot read cbindgen.toml: {e}"));
        let bindings = cbindgen::Builder::new()
            .with_config(config)
            .with_src(root().join("src/ffi/mod.rs"))
            .generate()
            .unwrap_or_else(|e| panic!("cbindgen cannot generate the C header: {e}"));
        let mut header = Vec::new();
        bindings.write(&mut header);
        String::from_utf8(header).expect("cbindgen writes UTF-8")
    })
}

fn committed() -> String {
    let path = root().join("include/distlock.h");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The header with comments dropped and every run of whitespace made one
/// space, so declarations can be compared independently of layout.
fn normalized(header: &str) -> String {
    let mut out = String::new();
    let mut rest = header;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        rest = rest[start..]
            .find("*/")
            .map_or("", |end| &rest[start + end + 2..]);
    }
    out.push_str(rest);
    let code: Vec<&str> = out
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect();
    code.join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn committed_header_matches_cbindgen_output() {
    let committed = committed();
    let generated = generated();
    if committed != generated && std::env::var_os("DISTLOCK_BLESS").is_some() {
        let path = root().join("include/distlock.h");
        std::fs::write(&path, generated)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        eprintln!("wrote a fresh include/distlock.h: commit it");
        return;
    }
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "the length".to_string(), |i| format!("line {}", i + 1));
        panic!(
            "include/distlock.h differs from the cbindgen output (first at {line}); \
             run `DISTLOCK_BLESS=1 cargo test --test ffi_header` and commit the header"
        );
    }
}

#[test]
fn header_declares_the_agreed_c_api() {
    let h = normalized(generated());
    let expected = [
        "#ifndef DISTLOCK_H",
        "#include <stdbool.h>",
        "#include <stdint.h>",
        "#include <stddef.h>",
        "typedef enum distlock_status { DISTLOCK_OK = 0, DISTLOCK_NOT_ACQUIRED = 1, \
         DISTLOCK_TIMEOUT = 2, DISTLOCK_LOST = 3, DISTLOCK_CANCELLED = 4, \
         DISTLOCK_INVALID_ARGUMENT = 5, DISTLOCK_CONNECTION = 6, DISTLOCK_AUTH = 7, \
         DISTLOCK_REDIS = 8, DISTLOCK_INTERNAL = 9, } distlock_status;",
        "typedef struct distlock_client distlock_client;",
        "typedef struct distlock_guard distlock_guard;",
        "typedef struct distlock_cancel distlock_cancel;",
        "typedef struct distlock_options { const char *prefix; uint64_t ttl_ms; \
         uint32_t pool_size; uint64_t connect_timeout_ms; uint64_t command_timeout_ms; \
         } distlock_options;",
        "#define DISTLOCK_TOKEN_LEN 36",
        "const char *distlock_version(void);",
        "const char *distlock_status_name(int32_t status);",
        "const char *distlock_last_error(void);",
        "int32_t distlock_client_open(const char *url, const struct distlock_options *opts, \
         struct distlock_client **out);",
        "void distlock_client_close(struct distlock_client *client);",
        "int32_t distlock_acquire(struct distlock_client *client, const char *key, \
         uint64_t ttl_ms, int64_t timeout_ms, struct distlock_cancel *cancel, \
         struct distlock_guard **out);",
        "#define DISTLOCK_KIND_PLAIN 0",
        "#define DISTLOCK_KIND_READ 1",
        "#define DISTLOCK_KIND_WRITE 2",
        "#define DISTLOCK_KIND_PERMIT 3",
        "#define DISTLOCK_KIND_FAIR 4",
        "#define DISTLOCK_MAX_PERMITS 10000",
        "int32_t distlock_acquire_kind(struct distlock_client *client, const char *key, \
         uint32_t kind, uint32_t permits, uint64_t ttl_ms, int64_t timeout_ms, \
         struct distlock_cancel *cancel, struct distlock_guard **out);",
        "struct distlock_cancel *distlock_cancel_new(void);",
        "int32_t distlock_cancel_trigger(struct distlock_cancel *cancel);",
        "void distlock_cancel_free(struct distlock_cancel *cancel);",
        "int32_t distlock_guard_release(struct distlock_guard *guard);",
        "void distlock_guard_free(struct distlock_guard *guard);",
        "int32_t distlock_guard_is_held(const struct distlock_guard *guard, bool *out);",
        "int32_t distlock_guard_fence(const struct distlock_guard *guard, uint64_t *out);",
        "int32_t distlock_guard_token(const struct distlock_guard *guard, char *buf, \
         size_t buf_len);",
        "int32_t distlock_guard_remaining_ms(const struct distlock_guard *guard, \
         uint64_t *out);",
        "int32_t distlock_guard_extend(struct distlock_guard *guard);",
        "int32_t distlock_guard_wait_lost(const struct distlock_guard *guard, \
         int64_t timeout_ms);",
        "typedef struct distlock_config distlock_config;",
        "#define DISTLOCK_MAX_SERVERS 64",
        "struct distlock_config *distlock_config_new(void);",
        "void distlock_config_free(struct distlock_config *cfg);",
        "int32_t distlock_config_set_url(struct distlock_config *cfg, const char *url);",
        "int32_t distlock_config_add_node(struct distlock_config *cfg, const char *url);",
        "int32_t distlock_config_add_cluster_url(struct distlock_config *cfg, const char *url);",
        "int32_t distlock_config_set_sentinel(struct distlock_config *cfg, \
         const char *master_name);",
        "int32_t distlock_config_add_sentinel(struct distlock_config *cfg, const char *addr);",
        "int32_t distlock_config_set_replicas(struct distlock_config *cfg, uint32_t count, \
         uint64_t timeout_ms);",
        "int32_t distlock_config_set_prefix(struct distlock_config *cfg, const char *prefix);",
        "int32_t distlock_config_set_ttl_ms(struct distlock_config *cfg, uint64_t ttl_ms);",
        "int32_t distlock_config_set_pool_size(struct distlock_config *cfg, uint32_t pool_size);",
        "int32_t distlock_config_set_connect_timeout_ms(struct distlock_config *cfg, \
         uint64_t timeout_ms);",
        "int32_t distlock_config_set_command_timeout_ms(struct distlock_config *cfg, \
         uint64_t timeout_ms);",
        "int32_t distlock_config_set_max_hold_ms(struct distlock_config *cfg, uint64_t cap_ms);",
        "int32_t distlock_config_set_max_retry_interval_ms(struct distlock_config *cfg, \
         uint64_t interval_ms);",
        "int32_t distlock_config_set_fast_path(struct distlock_config *cfg, bool on);",
        "int32_t distlock_config_set_handoff_limit(struct distlock_config *cfg, \
         uint32_t handoffs);",
        "int32_t distlock_config_set_handoff_budget_ms(struct distlock_config *cfg, \
         uint64_t budget_ms);",
        "int32_t distlock_config_set_linger_ms(struct distlock_config *cfg, uint64_t linger_ms);",
        "int32_t distlock_client_open_config(const struct distlock_config *cfg, \
         struct distlock_client **out);",
        "#define DISTLOCK_MAX_PEM_LEN 1048576",
        "#define DISTLOCK_MAX_PATH_LEN 4096",
        "int32_t distlock_config_set_tls_ca_file(struct distlock_config *cfg, const char *path);",
        "int32_t distlock_config_set_tls_ca_pem(struct distlock_config *cfg, const uint8_t *pem, \
         size_t len);",
        "int32_t distlock_config_set_tls_client_cert_files(struct distlock_config *cfg, \
         const char *cert_path, const char *key_path);",
        "int32_t distlock_config_set_tls_client_cert_pem(struct distlock_config *cfg, \
         const uint8_t *cert, size_t cert_len, const uint8_t *key, size_t key_len);",
        "typedef struct distlock_lock_info { size_t struct_size; bool held; bool has_remaining; \
         bool has_fence; size_t token_len; uint64_t remaining_ms; uint64_t fence; \
         bool has_holder; uint32_t holder_pid; char holder_host[65]; char holder_label[65]; \
         uint32_t shares; uint32_t writers_waiting; } distlock_lock_info;",
        "#define DISTLOCK_MAX_HOLDER_HOST_LEN 64",
        "#define DISTLOCK_MAX_HOLDER_LABEL_LEN 64",
        "#define DISTLOCK_MAX_HOLDER_LABEL_INPUT_LEN 1024",
        "int32_t distlock_config_set_holder_label(struct distlock_config *cfg, const char *label);",
        "typedef struct distlock_held distlock_held;",
        "typedef struct distlock_held_lock { size_t struct_size; const char *name; \
         const char *token; bool has_remaining; bool has_fence; bool has_holder; \
         uint64_t remaining_ms; uint64_t fence; uint32_t holder_pid; const char *holder_host; \
         const char *holder_label; } distlock_held_lock;",
        "int32_t distlock_client_held(struct distlock_client *client, const char *pattern, \
         size_t limit, struct distlock_held **out, size_t *count, bool *more);",
        "int32_t distlock_held_get(const struct distlock_held *held, size_t index, \
         struct distlock_held_lock *out);",
        "void distlock_held_free(struct distlock_held *held);",
        "#define DISTLOCK_LOG_OFF 0",
        "#define DISTLOCK_LOG_ERROR 1",
        "#define DISTLOCK_LOG_WARN 2",
        "#define DISTLOCK_LOG_INFO 3",
        "#define DISTLOCK_LOG_DEBUG 4",
        "#define DISTLOCK_LOG_TRACE 5",
        "typedef void (*distlock_log_fn)(int32_t level, const char *target, const char *message, \
         void *user);",
        "int32_t distlock_set_log_callback(int32_t level, distlock_log_fn callback, void *user);",
        "#define DISTLOCK_MAX_TOKEN_LEN 4096",
        "int32_t distlock_client_inspect(struct distlock_client *client, const char *key, \
         char *token_buf, size_t token_buf_len, struct distlock_lock_info *out);",
        "int32_t distlock_client_release_token(struct distlock_client *client, const char *key, \
         const char *token, bool *released);",
        "typedef struct distlock_stats { size_t struct_size; uint64_t acquired; \
         uint64_t contended; uint64_t timed_out; uint64_t cancelled; uint64_t lost; \
         uint64_t renewals; uint64_t renewal_failures; uint64_t local_handoffs; \
         uint64_t feed_reconnects; uint64_t wait_p50_us; uint64_t wait_p99_us; \
         uint64_t wait_max_us; uint64_t lingered; } distlock_stats;",
        "int32_t distlock_client_stats(struct distlock_client *client, \
         struct distlock_stats *out);",
    ];
    // The version macros carry the numbers of Cargo.toml.
    let version = [
        format!(
            "#define DISTLOCK_VERSION_MAJOR {}",
            env!("CARGO_PKG_VERSION_MAJOR")
        ),
        format!(
            "#define DISTLOCK_VERSION_MINOR {}",
            env!("CARGO_PKG_VERSION_MINOR")
        ),
        format!(
            "#define DISTLOCK_VERSION_PATCH {}",
            env!("CARGO_PKG_VERSION_PATCH")
        ),
        "#define DISTLOCK_VERSION \\ DISTLOCK_VERSION_STR_(DISTLOCK_VERSION_MAJOR) \".\" \\ \
         DISTLOCK_VERSION_STR_(DISTLOCK_VERSION_MINOR) \".\" \\ \
         DISTLOCK_VERSION_STR_(DISTLOCK_VERSION_PATCH)"
            .to_string(),
    ];
    let missing: Vec<&str> = expected
        .iter()
        .copied()
        .chain(version.iter().map(String::as_str))
        .filter(|decl| !h.contains(&normalized(decl)))
        .collect();
    assert!(
        missing.is_empty(),
        "declarations missing or changed:\n{}",
        missing.join("\n")
    );
}

/// Compiles the header alone, as C and as C++, with warnings as errors,
/// when a compiler is around.
#[test]
fn header_compiles_cleanly() {
    let dir = std::env::temp_dir().join(format!("distlock-header-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a scratch dir");
    let header = root().join("include");
    for (compiler, lang, std) in [("cc", "c", "-std=c99"), ("c++", "c++", "-std=c++11")] {
        let source = dir.join(format!(
            "header_check.{}",
            if lang == "c" { "c" } else { "cc" }
        ));
        // Included twice (the guard works); DISTLOCK_VERSION must expand
        // to a string literal.
        std::fs::write(
            &source,
            "#include \"distlock.h\"\n#include \"distlock.h\"\n\
             extern const char header_version[];\n\
             const char header_version[] = DISTLOCK_VERSION;\n",
        )
        .expect("write a scratch source");
        let run = Command::new(compiler)
            .args([
                "-fsyntax-only",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                std,
                "-x",
                lang,
            ])
            .arg("-I")
            .arg(&header)
            .arg(&source)
            .output();
        match run {
            Err(e) => eprintln!("skipping the {lang} compile check: {compiler}: {e}"),
            Ok(out) => assert!(
                out.status.success(),
                "{compiler} rejects the header:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
