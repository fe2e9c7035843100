//! The oracle we did not write: each round's register history, as JSON
//! lines, checked for linearizability by porcupine (`tests/oracle`, a Go
//! module with its own go.mod and go.sum, built here with `go build`).
//! Its module doc states the model; in short, a hold nobody told of a loss
//! must be one atomic increment of the fenced register, and only a hold
//! both told and excused (a fault no lease can foresee) may be split into
//! a read and a write that other holds interleave with.

use crate::register::Visit;
use distlock_testkit::checker::Hold;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The environment variable that hands the built oracle to child
/// processes (the mutation rounds), so that it is built once.
const ORACLE_VAR: &str = "DISTLOCK_SAFETY_ORACLE";

/// How long porcupine may take on one round before the verdict is
/// "unknown" (a failure: no verdict is no proof).
const TIMEOUT: &str = "60s";

/// Porcupine's verdict on one round's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Linearizable; the oracle's summary line.
    Linearizable(String),
    /// Not linearizable; what the oracle printed.
    Not(String),
    /// Not decided in time.
    Unknown(String),
}

impl Verdict {
    /// Whether the history was linearizable.
    pub fn passed(&self) -> bool {
        matches!(self, Verdict::Linearizable(_))
    }

    /// Whether the oracle proved the history not linearizable.
    pub fn failed(&self) -> bool {
        matches!(self, Verdict::Not(_))
    }

    /// What the oracle said.
    pub fn text(&self) -> &str {
        match self {
            Verdict::Linearizable(t) | Verdict::Not(t) | Verdict::Unknown(t) => t,
        }
    }
}

/// One hold as the oracle sees it.
pub struct Entry<'a> {
    /// The hold as the overlap checker sees it.
    pub hold: &'a Hold,
    /// What it did to the register.
    pub visit: &'a Visit,
    /// The worker process.
    pub pid: u32,
    /// Whether a fault no lease can foresee excuses it.
    pub excused: bool,
}

/// The built oracle and where histories go.
pub struct Oracle {
    bin: PathBuf,
    dir: PathBuf,
}

impl Oracle {
    /// Builds the oracle (`go build`, next to this example's binary), or
    /// takes the one a parent process built.
    pub fn build() -> Result<Oracle, String> {
        let dir = std::env::temp_dir().join(format!("distlock-safety-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if let Some(bin) = std::env::var_os(ORACLE_VAR) {
            return Ok(Oracle {
                bin: bin.into(),
                dir,
            });
        }
        let module = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle");
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let bin = exe
            .parent()
            .ok_or("no directory for the oracle")?
            .join("safety-oracle");
        let out = Command::new("go")
            .args(["build", "-buildvcs=false", "-o"])
            .arg(&bin)
            .arg(".")
            .current_dir(&module)
            .output()
            .map_err(|e| {
                format!(
                    "cannot run go to build the oracle in {}: {e} (install Go 1.21 or later)",
                    module.display()
                )
            })?;
        if !out.status.success() {
            return Err(format!(
                "go build of the oracle in {} failed: {}",
                module.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        std::env::set_var(ORACLE_VAR, &bin);
        Ok(Oracle { bin, dir })
    }

    /// Writes round `name`'s history and checks it. The history file is
    /// kept (and, for a history expected linearizable, porcupine's
    /// visualisation of the failing piece written beside it) only if the
    /// verdict is not the `expected` one; never without an expectation.
    pub fn check(
        &self,
        name: &str,
        entries: &[Entry],
        expected: Option<bool>,
    ) -> Result<Verdict, String> {
        let file: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let path = self.dir.join(format!("{file}.jsonl"));
        write_history(&path, entries).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut cmd = Command::new(&self.bin);
        cmd.args(["-timeout", TIMEOUT]);
        if expected == Some(true) {
            cmd.arg("-html").arg(&self.dir);
        }
        let out = cmd
            .arg(&path)
            .output()
            .map_err(|e| format!("cannot run the oracle {}: {e}", self.bin.display()))?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let verdict = match out.status.code() {
            Some(0) => Verdict::Linearizable(text),
            Some(1) => Verdict::Not(text),
            Some(3) => Verdict::Unknown(text),
            _ => {
                return Err(format!(
                    "the oracle failed on {}: {}",
                    path.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        match expected {
            Some(e) if verdict.passed() != e => {
                println!("  history kept in {}", path.display());
            }
            _ => {
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(verdict)
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        // Only empty: kept histories stay for inspection.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn write_history(path: &Path, entries: &[Entry]) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    for e in entries {
        let (h, v) = (e.hold, e.visit);
        let line = serde_json::json!({
            "key": "safety",
            "pid": e.pid,
            "thread": v.thread,
            "fence": h.fence,
            "start": h.start as u64,
            "read_ret": v.read_ret as u64,
            "read_ok": v.read.is_some(),
            "value": v.read.unwrap_or(0),
            "write_call": v.write_call as u64,
            "end": h.end as u64,
            "write_ok": v.written,
            "told": h.lost,
            "excused": e.excused,
        });
        writeln!(w, "{line}")?;
    }
    w.flush()
}
