//! The `distlock` command: run a command while holding a distributed lock,
//! so that shell scripts and cron jobs on many machines share a lock the way
//! `flock(1)` lets the processes of one machine share one.
//!
//! ```text
//! distlock [OPTIONS] KEY -- COMMAND [ARGS...]
//! distlock status KEY [--json]
//! distlock release KEY --token TOKEN
//! ```
//!
//! The first form takes the lock `KEY` (waiting for it unless `--no-wait`),
//! runs `COMMAND` as a child with the lock held and renewed, releases the
//! lock when the child exits and exits with the child's status. The child
//! finds the lock name, fencing token and owner token in `DISTLOCK_KEY`,
//! `DISTLOCK_FENCE` and `DISTLOCK_TOKEN`. SIGINT, SIGTERM and SIGHUP are
//! forwarded to it; before it starts they abandon the wait for the lock.
//!
//! # Exit status
//!
//! | code      | meaning                                                        |
//! |-----------|----------------------------------------------------------------|
//! | N         | the command's own exit status; 128+S if it died of signal S    |
//! | 1         | the lock is busy (`--no-wait`) or `--timeout` passed; see `--conflict-exit-code` |
//! | 2         | usage or configuration error                                   |
//! | 69        | the lock server cannot be reached, refused the credentials or failed |
//! | 71        | an operating-system error (threads, signals)                   |
//! | 75        | the lock was lost while the command ran (`--on-lost term`/`kill`) |
//! | 126 / 127 | the command could not be run / was not found                   |
//! | 128+S     | `distlock` got signal S while waiting for the lock             |
//!
//! `status` exits 0 if the lock is held and 1 if it is free; `release`
//! exits 0 if it released the lock and 1 if the lock was not held with that
//! token. Both use 2 and 69 as above. Every message goes to standard error
//! and starts with `distlock: `.
#![deny(unsafe_code)]
#![deny(missing_docs, clippy::missing_docs_in_private_items)]

mod admin;
mod run;
mod signals;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

/// Exit status when the lock is busy, unless `--conflict-exit-code` says
/// otherwise (the same default as `flock(1)`).
pub const EXIT_CONFLICT: u8 = 1;
/// Exit status for a usage or configuration error.
pub const EXIT_USAGE: u8 = 2;
/// Exit status when the lock server cannot be used (sysexits' EX_UNAVAILABLE).
pub const EXIT_UNAVAILABLE: u8 = 69;
/// Exit status when the operating system refuses something (EX_OSERR).
pub const EXIT_OSERR: u8 = 71;
/// Exit status when the lock was lost while the command ran (EX_TEMPFAIL:
/// running again later may succeed).
pub const EXIT_LOST: u8 = 75;
/// Exit status when the command exists but cannot be executed.
pub const EXIT_CANNOT_EXECUTE: u8 = 126;
/// Exit status when the command is not found.
pub const EXIT_NOT_FOUND: u8 = 127;

/// The environment variable consulted when `--url` is not given.
pub const URL_ENV: &str = "DISTLOCK_URL";

/// Help for `--url`; not a doc comment, whose brackets rustdoc would take
/// for links.
const URL_HELP: &str = "Redis server URL: redis://[[user]:password@]host[:port][/db], \
    or rediss:// for TLS [env: DISTLOCK_URL] [default: redis://127.0.0.1:6379/0]";

/// What `--help` shows after the options.
const AFTER_HELP: &str = "\
Examples:
  Run a cron job on at most one machine at a time, skipping a run if busy:
    distlock --no-wait -q nightly-report -- /usr/local/bin/report.sh

  Wait at most 30 s for the lock; keep a 60 s lease, renewed while it runs:
    distlock --timeout 30 --ttl 60 db-migrate -- ./migrate.sh up

  Hand the fencing token to the protected storage:
    distlock deploy -- sh -c 'deploy --fence \"$DISTLOCK_FENCE\"'

  See who holds a lock; free it if that holder is known to be dead:
    distlock status nightly-report --json
    distlock release nightly-report --token 3f6c0d2e-...

The command gets DISTLOCK_KEY (the lock name), DISTLOCK_FENCE (a fencing
token, larger than that of every earlier holder) and DISTLOCK_TOKEN (the
owner token that `release --token` takes). SIGINT, SIGTERM and SIGHUP are
forwarded to it; while still waiting for the lock they make distlock give up.
If distlock itself is killed (kill -9), nothing renews the lock and it
expires after --ttl; on Linux the command then gets SIGTERM (--on-lost term)
or SIGKILL (--on-lost kill).

Signals reach the command's own process only, unless --process-group puts
it in a group of its own: then a shell's pipelines and background jobs get
them too. Processes that outlive the command no longer hold the lock;
distlock warns about those left in the group.

A lock named `status` or `release` needs the explicit form:
    distlock run status -- COMMAND

Exit status:
  N        the command's status (128+S if it died of signal S)
  1        lock busy with --no-wait, or --timeout passed (--conflict-exit-code)
  2        usage or configuration error
  69       the lock server cannot be reached, refused the credentials or failed
  71       operating-system error
  75       the lock was lost while the command ran (--on-lost term or kill)
  126/127  the command could not be executed / was not found
  128+S    distlock got signal S while waiting for the lock
  status: 0 held, 1 free.  release: 0 released, 1 not held with that token.";

/// Command-line arguments.
#[derive(Parser, Debug)]
#[command(
    name = "distlock",
    version,
    about = "Run a command while holding a distributed lock kept in Redis",
    long_about = "Run a command while holding a distributed lock kept in Redis.\n\n\
        Like flock(1), but across machines: every distlock that names the same \
        KEY on the same Redis server takes turns. The lock is renewed while the \
        command runs and released when it exits; distlock then exits with the \
        command's status.",
    after_help = AFTER_HELP,
    subcommand_negates_reqs = true,
    override_usage = "distlock [OPTIONS] <KEY> -- <COMMAND>...\n       \
        distlock status [OPTIONS] <KEY>\n       \
        distlock release [OPTIONS] <KEY> --token <TOKEN>"
)]
pub struct Cli {
    /// Server options, shared by every form.
    #[command(flatten)]
    server: ServerArgs,
    /// Running a command (when no subcommand is given).
    #[command(flatten)]
    run: RunArgs,
    /// Operator subcommands.
    #[command(subcommand)]
    admin: Option<Admin>,
}

/// Where the locks live.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Redis server URL (`--url`, else `$DISTLOCK_URL`, else the library's
    /// default).
    #[arg(long, value_name = "URL", global = true, help = URL_HELP)]
    pub url: Option<String>,
    /// Key prefix: lock KEY lives at PREFIX:KEY
    #[arg(long, value_name = "PREFIX", default_value = distlock::DEFAULT_PREFIX, global = true)]
    pub prefix: String,
}

impl ServerArgs {
    /// `--url`, else `$DISTLOCK_URL`, else the library's default.
    pub fn url(&self) -> String {
        self.url
            .clone()
            .or_else(|| std::env::var(URL_ENV).ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| distlock::DEFAULT_URL.to_string())
    }
}

/// What to do when the lock is lost while the command runs.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLost {
    /// Send SIGTERM, then SIGKILL after --grace; exit 75
    Term,
    /// Send SIGKILL at once; exit 75
    Kill,
    /// Only print a warning; exit with the command's status
    Ignore,
}

/// Options and arguments of running a command under the lock.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Wait until the lock is free (the default)
    #[arg(long, overrides_with = "no_wait")]
    pub wait: bool,
    /// Fail at once if the lock is held elsewhere
    #[arg(short = 'n', long, overrides_with = "wait")]
    pub no_wait: bool,
    /// Give up waiting after SECS seconds (fractions allowed)
    #[arg(short = 't', long, value_name = "SECS", value_parser = parse_secs, conflicts_with = "no_wait")]
    pub timeout: Option<Duration>,
    /// Lease in seconds, renewed every third of it while the command runs;
    /// bounds how long a crashed distlock blocks others
    #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "30")]
    pub ttl: Duration,
    /// Exit status when the lock is busy or --timeout passes
    #[arg(short = 'E', long, value_name = "N", default_value_t = EXIT_CONFLICT)]
    pub conflict_exit_code: u8,
    /// What to do if the lock is lost while the command runs
    #[arg(long, value_name = "POLICY", value_enum, default_value_t = OnLost::Term)]
    pub on_lost: OnLost,
    /// Seconds between SIGTERM and SIGKILL with --on-lost term
    #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "10")]
    pub grace: Duration,
    /// Run the command in a process group of its own, and send the
    /// forwarded signals and the --on-lost signals to the whole group, so
    /// that a shell's pipelines and background jobs stop with it (not for
    /// commands that read the terminal: they would be stopped by SIGTTIN)
    #[arg(short = 'g', long)]
    pub process_group: bool,
    /// Say nothing when the lock is busy or --timeout passes
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Report progress on standard error (waiting, acquired, released)
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Name of the lock
    #[arg(value_name = "KEY", required = true)]
    pub key: Option<String>,
    /// The command to run with the lock held, after `--`
    #[arg(value_name = "COMMAND", last = true, required = true, num_args = 1..)]
    pub command: Vec<OsString>,
}

/// Operator subcommands.
#[derive(Subcommand, Debug)]
enum Admin {
    /// Run COMMAND with the lock held (the default; needed only for a KEY
    /// named like a subcommand)
    Run(RunArgs),
    /// Show whether KEY is held, by which token, for how long, and its
    /// fencing counter (exit 0 if held, 1 if free)
    Status {
        /// Print one JSON object: {"name","key","held","token","remaining_ms","fence"}
        #[arg(long)]
        json: bool,
        /// Name of the lock
        #[arg(value_name = "KEY")]
        key: String,
    },
    /// Release KEY if it is held with TOKEN, e.g. after its holder died
    /// (exit 0 if released, 1 if not held with that token)
    Release {
        /// The holder's token, as shown by `status`
        #[arg(long, value_name = "TOKEN")]
        token: String,
        /// Name of the lock
        #[arg(value_name = "KEY")]
        key: String,
    },
}

/// Parses a non-negative number of seconds, fractions allowed.
fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("`{s}` is not a non-negative number of seconds"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}` seconds is too long"))
}

/// Prints a message to standard error with the `distlock: ` prefix.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        eprintln!("distlock: {}", format_args!($($arg)*))
    };
}

/// The exit status for a library error (other than busy or cancelled, which
/// the caller handles).
pub fn exit_for(err: &distlock::Error) -> u8 {
    match err {
        distlock::Error::InvalidArgument(_) => EXIT_USAGE,
        distlock::Error::Lost => EXIT_LOST,
        _ => EXIT_UNAVAILABLE,
    }
}

/// Connects to the server that `server` names.
pub fn connect(server: &ServerArgs, ttl: Duration) -> Result<distlock::Client, u8> {
    distlock::Client::builder()
        .url(&server.url())
        .prefix(&server.prefix)
        .ttl(ttl)
        .build()
        .map_err(|e| {
            say!("{e}");
            exit_for(&e)
        })
}

/// Options of the run form, by argument id and flag.
const RUN_OPTIONS: [(&str, &str); 10] = [
    ("wait", "--wait"),
    ("no_wait", "--no-wait"),
    ("timeout", "--timeout"),
    ("ttl", "--ttl"),
    ("conflict_exit_code", "--conflict-exit-code"),
    ("on_lost", "--on-lost"),
    ("grace", "--grace"),
    ("process_group", "--process-group"),
    ("quiet", "--quiet"),
    ("verbose", "--verbose"),
];

/// Parses the command line. Run-form options written before a subcommand
/// name would otherwise be silently ignored, so they are an error.
fn parse() -> Result<Cli, clap::Error> {
    let mut cmd = Cli::command();
    let matches = cmd.try_get_matches_from_mut(std::env::args_os())?;
    if let Some((sub, _)) = matches.subcommand() {
        let misplaced = RUN_OPTIONS
            .iter()
            .find(|(id, _)| matches.value_source(id) == Some(ValueSource::CommandLine));
        if let Some((_, flag)) = misplaced {
            let msg = if sub == "run" {
                format!("{flag} must come after `run`")
            } else {
                format!("{flag} does not apply to `{sub}`")
            };
            return Err(cmd.error(ErrorKind::ArgumentConflict, msg));
        }
    }
    Cli::from_arg_matches(&matches)
}

/// Parses the command line and runs the chosen form.
fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            eprint!("distlock: {}", e.render());
            return ExitCode::from(EXIT_USAGE);
        }
        // --help and --version.
        Err(e) => e.exit(),
    };
    let server = &cli.server;
    let code = match cli.admin {
        None => run::run(server, cli.run),
        Some(Admin::Run(args)) => run::run(server, args),
        Some(Admin::Status { json, key }) => admin::status(server, &key, json),
        Some(Admin::Release { token, key }) => admin::release(server, &key, &token),
    };
    ExitCode::from(code)
}
