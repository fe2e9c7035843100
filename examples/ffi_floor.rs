//! The Rust floor for the C, Go and Python benchmarks: the median time of
//! one uncontended acquire + release through the Rust API, the same cycle
//! `ffi-examples/c/bench.c`, `ffi-examples/go/cmd/bench` and
//! `ffi-examples/python/bench.py` run through the C ABI.
//!
//! ```text
//! cargo run --release --example ffi_floor -- --url redis://127.0.0.1:6379/0 [-n 2000] [--warmup 200]
//! ```
//!
//! Prints `rust_acquire_release_us <median microseconds per cycle>`.
//! `scripts/bench-ffi.sh` runs it in turn with the others against one
//! server.

use std::process::ExitCode;
use std::time::Instant;

fn usage() -> ExitCode {
    eprintln!("usage: ffi_floor --url URL [-n cycles] [--warmup cycles]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut url = None;
    let mut cycles: usize = 2000;
    let mut warmup: usize = 200;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next();
        match (flag.as_str(), value) {
            ("--url", Some(v)) => url = Some(v),
            ("-n", Some(v)) => match v.parse() {
                Ok(n) if n > 0 => cycles = n,
                _ => return usage(),
            },
            ("--warmup", Some(v)) => match v.parse() {
                Ok(n) => warmup = n,
                _ => return usage(),
            },
            _ => return usage(),
        }
    }
    let Some(url) = url else {
        return usage();
    };
    let client = match distlock::Client::open(&url) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ffi_floor: open: {e}");
            return ExitCode::FAILURE;
        }
    };
    let lock = client.lock("bench:rust");
    let cycle = || -> distlock::Result<()> { lock.acquire()?.release() };
    for _ in 0..warmup {
        if let Err(e) = cycle() {
            eprintln!("ffi_floor: warm-up: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut samples = Vec::with_capacity(cycles);
    for _ in 0..cycles {
        let start = Instant::now();
        if let Err(e) = cycle() {
            eprintln!("ffi_floor: {e}");
            return ExitCode::FAILURE;
        }
        samples.push(start.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    println!("rust_acquire_release_us {:.2}", samples[samples.len() / 2]);
    ExitCode::SUCCESS
}
