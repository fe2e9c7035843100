//! The `distlock` command: run a command while holding a distributed lock,
//! so that shell scripts and cron jobs on many machines share a lock the way
//! `flock(1)` lets the processes of one machine share one.
//!
//! ```text
//! distlock [OPTIONS] KEY -- COMMAND [ARGS...]
//! distlock [OPTIONS] KEY -c 'SHELL COMMAND'
//! distlock status KEY [--json]
//! distlock release KEY --token TOKEN
//! ```
//!
//! The first form takes the lock `KEY` (waiting for it, at most `-w SECS`
//! if given, not at all with `-n`), runs `COMMAND` (or `sh -c CMD`) as a
//! child with the lock held and renewed, releases the
//! lock when the child exits and exits with the child's status. The child
//! finds the lock name, fencing token and owner token in `DISTLOCK_KEY`,
//! `DISTLOCK_FENCE` and `DISTLOCK_TOKEN`. SIGINT, SIGTERM and SIGHUP are
//! forwarded to it; before it starts they abandon the wait for the lock.
//! The options that concern the lock and the command follow flock(1)'s
//! (`-w`, `-n`, `-E`, `-c`, and `-s`/`-x` for the read and write sides of
//! a read-write lock); `--permits N` takes one permit of a semaphore of N
//! instead. The server options are in [`servers`].
//!
//! # Exit status
//!
//! | code      | meaning                                                        |
//! |-----------|----------------------------------------------------------------|
//! | N         | the command's own exit status; 128+S if it died of signal S    |
//! | 1         | the lock is busy (`-n`, `-w 0`) or `-w SECS` passed; see `--conflict-exit-code` |
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
mod servers;
mod signals;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
pub use servers::ServerArgs;
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

/// What `--help` shows after the options.
const AFTER_HELP: &str = "\
Examples:
  Run a cron job on at most one machine at a time, skipping a run if busy:
    distlock -n -q nightly-report -- /usr/local/bin/report.sh

  Wait at most 30 s for the lock; keep a 60 s lease, renewed while it runs:
    distlock -w 30 --ttl 60 db-migrate -c './migrate.sh up && ./check.sh'

  Redlock over five independent servers, password from a file:
    distlock --node redis://a:6379 --node redis://b:6379 --node redis://c:6379 \\
             --node redis://d:6379 --node redis://e:6379 \\
             --password-file /etc/distlock/password backup -- ./backup.sh

  A master found through Sentinel; a TLS server with a private CA:
    distlock --sentinel 10.0.0.1:26379,10.0.0.2:26379 --master mymaster job -- ./job
    distlock --url rediss://redis.internal:6380 --tls-ca ca.pem job -- ./job

  Readers share, a writer runs alone (flock's -s and -x, across machines):
    distlock -s catalog -- ./read-catalog.sh
    distlock -x catalog -- ./rebuild-catalog.sh

  At most 4 encoders at once, fleet-wide:
    distlock --permits 4 encoders -- ./encode.sh

  Hand the fencing token to the protected storage:
    distlock deploy -c 'deploy --fence \"$DISTLOCK_FENCE\"'

  See who holds a lock; free it if that holder is known to be dead:
    distlock status nightly-report --json
    distlock release nightly-report --token 3f6c0d2e-...

Servers: one of --url, --node (Redlock, 3 or more), --cluster, or --sentinel
with --master (and --url for the master's credentials and db). Each server
option has an environment variable (DISTLOCK_URL, DISTLOCK_NODES,
DISTLOCK_CLUSTER, DISTLOCK_SENTINELS, DISTLOCK_MASTER, DISTLOCK_TLS_CA,
DISTLOCK_TLS_CERT, DISTLOCK_TLS_KEY, DISTLOCK_PASSWORD_FILE, DISTLOCK_PREFIX);
lists are separated by commas, in variables and options alike (write a
comma inside a URL as %2C). If --url, --node, --cluster, --sentinel or
--master is on the command line, the variables of those five are not read.
An empty variable counts as unset.

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
  1        lock busy with -n or -w 0, or -w SECS passed (--conflict-exit-code)
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
        KEY on the same Redis servers takes turns. The lock is renewed while the \
        command runs and released when it exits; distlock then exits with the \
        command's status.",
    after_help = AFTER_HELP,
    subcommand_negates_reqs = true,
    override_usage = "distlock [OPTIONS] <KEY> -- <COMMAND>...\n       \
        distlock [OPTIONS] <KEY> -c <CMD>\n       \
        distlock status [OPTIONS] <KEY>\n       \
        distlock release [OPTIONS] <KEY> --token <TOKEN>"
)]
pub struct Cli {
    /// Running a command (when no subcommand is given).
    #[command(flatten)]
    run: RunArgs,
    /// Server options, shared by every form.
    #[command(flatten)]
    server: ServerArgs,
    /// Operator subcommands.
    #[command(subcommand)]
    admin: Option<Admin>,
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
    /// Wait at most SECS seconds for the lock (fractions allowed; 0: do
    /// not wait, as -n), then exit with the conflict code. Without it,
    /// wait as long as it takes
    #[arg(short = 'w', long = "wait", visible_alias = "timeout", short_alias = 't',
          value_name = "SECS", value_parser = parse_wait, conflicts_with = "nonblock")]
    pub wait: Option<Duration>,
    /// Fail at once, with the conflict code, if the lock is held elsewhere
    #[arg(short = 'n', long = "nonblock", visible_alias = "nb")]
    pub nonblock: bool,
    /// Take a shared (read) lock of the read-write lock KEY, as flock -s
    /// does: `-s` runs share it with each other, never with an `-x` run
    #[arg(short = 's', long, conflicts_with_all = ["exclusive", "permits"])]
    pub shared: bool,
    /// Take the exclusive (write) lock of the read-write lock KEY, as
    /// flock -x does: alone, and ahead of `-s` runs that come after it.
    /// Without -s, -x or --permits KEY is a plain lock, which a
    /// read-write lock of the same name refuses
    #[arg(short = 'x', long, conflicts_with = "permits")]
    pub exclusive: bool,
    /// Take one permit of the semaphore KEY of N permits (1 to 10000): at
    /// most N runs at once hold one; a crashed run's permit comes back
    /// after --ttl
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(distlock::MAX_PERMITS)))]
    pub permits: Option<u32>,
    /// The old spelling of --nonblock, refused with a pointer to it.
    #[arg(long = "no-wait", hide = true)]
    pub old_no_wait: bool,
    /// Lease in seconds, renewed every third of it while the command runs;
    /// bounds how long a crashed distlock blocks others
    #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "30")]
    pub ttl: Duration,
    /// Exit status when the lock is busy (-n) or -w passes (0 to 255)
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
    /// Say nothing when the lock is busy or -w passes
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Report progress on standard error (waiting, acquired, released)
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// A label recorded with the lock, shown by `status` and `list` after
    /// this host's name and distlock's pid (default: the command's name;
    /// cut to 64 bytes; never put a secret in it)
    #[arg(long, value_name = "TEXT")]
    pub label: Option<String>,
    /// Run CMD with /bin/sh -c, as flock -c does, instead of a COMMAND
    /// after --
    #[arg(
        short = 'c',
        long = "command",
        value_name = "CMD",
        conflicts_with = "command"
    )]
    pub shell: Option<OsString>,
    /// Name of the lock
    #[arg(value_name = "KEY", required = true)]
    pub key: Option<String>,
    /// The command to run with the lock held, after `--`
    #[arg(value_name = "COMMAND", last = true, required_unless_present = "shell", num_args = 1..)]
    pub command: Vec<OsString>,
}

/// Operator subcommands.
#[derive(Subcommand, Debug)]
enum Admin {
    /// Run COMMAND with the lock held (the default; needed only for a KEY
    /// named like a subcommand)
    Run(RunArgs),
    /// Show whether KEY is held, by whom (host, pid, label) and which
    /// token, for how long, and its fencing counter (exit 0 if held, 1 if
    /// free)
    Status {
        /// Print one JSON object:
        /// {"name","key","held","token","remaining_ms","fence","holder"},
        /// holder being {"host","pid","label"} or null
        #[arg(long)]
        json: bool,
        /// Name of the lock
        #[arg(value_name = "KEY")]
        key: String,
    },
    /// List the locks held now whose names match PATTERN (a glob, default
    /// `*`), with holder, token, remaining lease and fence; uses SCAN, so it
    /// is safe on a busy server (exit 0, or 1 if none is held)
    List {
        /// Print one JSON object per line, as `status --json` does, and a
        /// last line {"truncated": bool}
        #[arg(long)]
        json: bool,
        /// Stop after this many locks (the listing then says so)
        #[arg(long, value_name = "N", default_value_t = 1000)]
        limit: usize,
        /// Glob over lock names: `*`, `?`, `[abc]`, `\\` to escape
        #[arg(value_name = "PATTERN", default_value = "*")]
        pattern: String,
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

/// What the old boolean `--wait` should become.
const OLD_WAIT: &str = "-w/--wait/--timeout now takes SECS, the longest time to wait, \
    as flock(1)'s -w does; to wait as long as it takes, leave --wait out";

/// Parses `-w SECS`, saying what changed when the value is not a number
/// (`--wait KEY` was the old boolean `--wait`).
fn parse_wait(s: &str) -> Result<Duration, String> {
    parse_secs(s).map_err(|e| {
        if s.trim().parse::<f64>().is_err() {
            format!("{e}: {OLD_WAIT}")
        } else {
            e
        }
    })
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

/// Connects to the servers that `server` names; locks it takes are
/// recorded with `label`.
pub fn connect(
    server: &ServerArgs,
    ttl: Duration,
    label: Option<&str>,
) -> Result<distlock::Client, u8> {
    let mut builder = server.builder().map_err(|msg| {
        say!("{msg}");
        EXIT_USAGE
    })?;
    if let Some(label) = label {
        builder = builder.holder_label(label);
    }
    builder.ttl(ttl).build().map_err(|e| {
        say!("{e}");
        exit_for(&e)
    })
}

/// Options of the run form, by argument id and flag.
const RUN_OPTIONS: [(&str, &str); 14] = [
    ("wait", "--wait"),
    ("nonblock", "--nonblock"),
    ("shared", "--shared"),
    ("exclusive", "--exclusive"),
    ("permits", "--permits"),
    ("ttl", "--ttl"),
    ("conflict_exit_code", "--conflict-exit-code"),
    ("on_lost", "--on-lost"),
    ("grace", "--grace"),
    ("process_group", "--process-group"),
    ("quiet", "--quiet"),
    ("verbose", "--verbose"),
    ("label", "--label"),
    ("shell", "--command"),
];

/// The refused old `--no-wait`, anywhere it can be written, with what to
/// use instead. (The old boolean `--wait` is refused by [`parse_wait`]
/// and [`bare_old_wait`].)
fn old_no_wait(matches: &clap::ArgMatches) -> Option<&'static str> {
    let given = |m: &clap::ArgMatches| m.get_flag("old_no_wait");
    let run = matches.subcommand_matches("run");
    (given(matches) || run.is_some_and(given))
        .then_some("--no-wait is now -n, --nonblock or --nb, as in flock(1)")
}

/// Whether `args` have the old boolean `--wait` where no value follows it
/// (last, or just before `--`), which clap would report only as a missing
/// value.
fn bare_old_wait(args: &[OsString]) -> bool {
    let end = args.iter().position(|a| a == "--").unwrap_or(args.len());
    args[..end]
        .iter()
        .enumerate()
        .any(|(i, a)| a == "--wait" && i + 1 == end)
}

/// Parses the command line. Run-form options written before a subcommand
/// name would otherwise be silently ignored, so they are an error.
fn parse() -> Result<Cli, clap::Error> {
    // An empty variable counts as unset. Only one thread exists yet.
    for var in servers::SERVER_ENV {
        if std::env::var_os(var).is_some_and(|v| v.is_empty()) {
            std::env::remove_var(var);
        }
    }
    let args: Vec<OsString> = std::env::args_os().collect();
    let mut cmd = Cli::command();
    if bare_old_wait(&args) {
        return Err(cmd.error(ErrorKind::InvalidValue, OLD_WAIT));
    }
    let matches = cmd.try_get_matches_from_mut(&args)?;
    if let Some(msg) = old_no_wait(&matches) {
        return Err(cmd.error(ErrorKind::UnknownArgument, msg));
    }
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
    let mut cli = Cli::from_arg_matches(&matches)?;
    cli.server
        .resolve(&matches)
        .map_err(|msg| cmd.error(ErrorKind::ArgumentConflict, msg))?;
    Ok(cli)
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
        Some(Admin::List {
            json,
            limit,
            pattern,
        }) => admin::list(server, &pattern, limit, json),
    };
    ExitCode::from(code)
}
