//! `distlock KEY -- COMMAND`: take the lock, run the command under it,
//! watch for loss and signals, release, and report the command's status.

use crate::signals::{self, Signals};
use crate::{
    connect, exit_for, say, OnLost, RunArgs, ServerArgs, EXIT_CANNOT_EXECUTE, EXIT_LOST,
    EXIT_NOT_FOUND, EXIT_OSERR,
};
use crossbeam_channel::{never, select, Receiver};
use distlock::{Error, Guard};
use std::ffi::OsString;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// The shell that runs `-c CMD`. flock(1) takes `$SHELL`, but that is the
/// user's interactive shell, which need not understand `sh` syntax; a
/// script run by cron or another machine should not depend on it.
const SHELL: &str = "/bin/sh";

/// Runs `args.command` under the lock `args.key` and returns the exit status.
pub fn run(server: &ServerArgs, args: RunArgs) -> u8 {
    // Before any thread exists (the client starts some), so that every
    // thread has the forwarded signals blocked.
    let signals = match Signals::start() {
        Ok(s) => s,
        Err(e) => {
            say!("cannot set up signal handling: {e}");
            return EXIT_OSERR;
        }
    };
    let key = args.key.clone().unwrap_or_default();
    let label = args.label.clone().or_else(|| command_name(&args));
    let client = match connect(server, args.ttl, label.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let lock = if args.shared {
        client.rw_lock(key.as_str()).read()
    } else if args.exclusive {
        client.rw_lock(key.as_str()).write()
    } else if let Some(permits) = args.permits {
        client.semaphore(key.as_str(), permits).as_lock().clone()
    } else {
        client.lock(key.as_str())
    }
    .ttl(args.ttl);
    if args.verbose {
        say!("waiting for {key}");
    }
    let guard = match acquire(&lock, &args, &signals) {
        Ok(g) => g,
        Err(code) => return code,
    };
    // The fence the command is given. A client's first lock of a name may
    // be granted without one: this asks for it while the lock is held,
    // and a lock lost before that does not start the command.
    let fence = match guard.try_fence() {
        Ok(f) => f,
        Err(e) => {
            say!("cannot get the fence of {key}: {e}");
            release(guard, &key, args.verbose);
            return exit_for(&e);
        }
    };
    if args.verbose {
        say!("acquired {key} (fence {fence})");
    }
    // A signal that came while the lock was being taken: do not start.
    if let Ok(sig) = signals.rx.try_recv() {
        say!("got {} before starting the command", signals::name(sig));
        release(guard, &key, args.verbose);
        return signal_status(sig);
    }
    let child = match spawn(&args, &key, &guard, fence) {
        Ok(c) => c,
        Err((code, msg)) => {
            say!("{msg}");
            release(guard, &key, args.verbose);
            return code;
        }
    };
    supervise(child, guard, &key, &args, &signals)
}

/// Takes the lock as the options say: `Err` carries the exit status.
fn acquire(lock: &distlock::Lock, args: &RunArgs, signals: &Signals) -> Result<Guard, u8> {
    let key = lock.name();
    let busy = |msg: String| {
        if !args.quiet {
            say!("{msg}");
        }
        args.conflict_exit_code
    };
    if args.nonblock || args.wait == Some(Duration::ZERO) {
        return match lock.try_acquire() {
            Ok(Some(g)) => Ok(g),
            Ok(None) => Err(busy(format!("{key} is held elsewhere"))),
            Err(e) => Err(failed(&e)),
        };
    }
    match lock.acquire_cancellable(args.wait, &signals.cancel) {
        Ok(g) => Ok(g),
        Err(Error::Timeout) => Err(busy(format!(
            "timed out after {}s waiting for {key}",
            args.wait.unwrap_or_default().as_secs_f64()
        ))),
        Err(Error::Cancelled) => {
            // The signal thread queues the number before it cancels.
            let sig = signals.rx.try_recv().unwrap_or(libc::SIGTERM);
            say!(
                "got {} while waiting for {key}; giving up",
                signals::name(sig)
            );
            Err(signal_status(sig))
        }
        Err(e) => Err(failed(&e)),
    }
}

/// Reports a library error; returns its exit status.
fn failed(e: &Error) -> u8 {
    say!("{e}");
    exit_for(e)
}

/// Starts the command with the lock's details in its environment.
/// `Err` carries the exit status and the message.
fn spawn(args: &RunArgs, key: &str, guard: &Guard, fence: u64) -> Result<Child, (u8, String)> {
    // `-c CMD` runs through the shell, as flock(1)'s does.
    let shell = args
        .shell
        .as_ref()
        .map(|c| [OsString::from(SHELL), OsString::from("-c"), c.clone()]);
    let argv = shell
        .as_ref()
        .map_or(args.command.as_slice(), |s| s.as_slice());
    let (program, rest) = argv
        .split_first()
        .ok_or((crate::EXIT_USAGE, "no command given".to_string()))?;
    let mut cmd = Command::new(program);
    cmd.args(rest)
        .env("DISTLOCK_KEY", key)
        .env("DISTLOCK_FENCE", fence.to_string())
        .env("DISTLOCK_TOKEN", guard.token());
    let on_parent_death = match args.on_lost {
        OnLost::Term => Some(libc::SIGTERM),
        OnLost::Kill => Some(libc::SIGKILL),
        OnLost::Ignore => None,
    };
    signals::prepare_child(&mut cmd, on_parent_death);
    if args.process_group {
        // The group's id is the command's pid.
        cmd.process_group(0);
    }
    cmd.spawn().map_err(|e| {
        let shown = program.to_string_lossy();
        match e.kind() {
            io::ErrorKind::NotFound => (EXIT_NOT_FOUND, format!("{shown}: command not found")),
            _ => (EXIT_CANNOT_EXECUTE, format!("cannot run {shown}: {e}")),
        }
    })
}

/// Waits for the command to exit while forwarding signals and applying the
/// `--on-lost` policy; then releases the lock and returns the exit status.
fn supervise(mut child: Child, guard: Guard, key: &str, args: &RunArgs, signals: &Signals) -> u8 {
    let pid = child.id();
    let exited = match signals::watch_exit(pid) {
        Ok(rx) => rx,
        Err(e) => {
            say!("cannot watch the command: {e}; stopping it");
            let _ = child.kill();
            let _ = child.wait();
            release(guard, key, args.verbose);
            return EXIT_OSERR;
        }
    };
    // Signals go to the command, or with --process-group to its group.
    let to = if args.process_group {
        signals::Target::Group(pid)
    } else {
        signals::Target::Process(pid)
    };
    let never_unit: Receiver<()> = never();
    let never_sig: Receiver<libc::c_int> = never();
    let lost_rx = guard.lost();
    // Turned off once handled, or if the channel ever closes.
    let mut watch_lost = true;
    let mut watch_signals = true;
    let mut lost = false;
    let mut kill_at: Option<Instant> = None;
    // Whether anything was sent to the command (its group may then be
    // still on its way out when the command is reaped).
    let mut signalled = false;
    let mut send = |sig| {
        signalled = true;
        let _ = to.send(sig);
    };
    // One pass per event; it ends when the command exits, which after a
    // loss takes at most --grace (then SIGKILL).
    loop {
        let lost_arm = if watch_lost { &lost_rx } else { &never_unit };
        let sig_arm = if watch_signals {
            &signals.rx
        } else {
            &never_sig
        };
        let deadline = kill_at.map_or_else(never, crossbeam_channel::at);
        select! {
            recv(exited) -> _ => break,
            recv(sig_arm) -> sig => match sig {
                Ok(sig) => {
                    if args.verbose {
                        say!("forwarding {} to {to}", signals::name(sig));
                    }
                    send(sig);
                }
                Err(_) => watch_signals = false,
            },
            recv(lost_arm) -> _ => {
                watch_lost = false;
                match args.on_lost {
                    OnLost::Ignore => say!(
                        "lost the lock on {key} while the command runs; \
                         letting it continue (--on-lost ignore)"
                    ),
                    OnLost::Term => {
                        lost = true;
                        say!(
                            "lost the lock on {key} while the command runs; \
                             sending SIGTERM to {to}, SIGKILL in {}s",
                            args.grace.as_secs_f64()
                        );
                        send(libc::SIGTERM);
                        // A grace too long to represent as a moment
                        // (`--grace 1e19`) never escalates.
                        kill_at = Instant::now().checked_add(args.grace);
                    }
                    OnLost::Kill => {
                        lost = true;
                        say!("lost the lock on {key} while the command runs; sending SIGKILL to {to}");
                        send(libc::SIGKILL);
                    }
                }
            },
            recv(deadline) -> _ => {
                kill_at = None;
                say!(
                    "command {to} still running {}s after SIGTERM; sending SIGKILL",
                    args.grace.as_secs_f64()
                );
                send(libc::SIGKILL);
            },
        }
    }
    let status = child.wait();
    if !signalled && to.has_others() {
        say!(
            "processes of the command's group {pid} are still running after it exited; \
             they no longer hold the lock on {key}"
        );
    }
    // Released only now, so the lock outlives the command. A loss noticed
    // only here still means the command may have overlapped another holder.
    let lost_before = !watch_lost;
    if !release_after(guard, key, args.verbose, lost_before) && args.on_lost != OnLost::Ignore {
        lost = true;
    }
    match status {
        _ if lost => EXIT_LOST,
        Ok(status) => exit_status(status),
        Err(e) => {
            say!("cannot get the command's exit status: {e}");
            EXIT_OSERR
        }
    }
}

/// Releases the lock before the command has run, reporting trouble.
fn release(guard: Guard, key: &str, verbose: bool) {
    release_after(guard, key, verbose, false);
}

/// Releases the lock, reporting trouble (but not a loss already reported,
/// `lost_before`). False if the lock turned out to be lost (it expired, or
/// someone deleted or took it).
fn release_after(guard: Guard, key: &str, verbose: bool, lost_before: bool) -> bool {
    match guard.release() {
        Ok(()) => {
            if verbose {
                say!("released {key}");
            }
            true
        }
        Err(Error::Lost) => {
            if !lost_before {
                say!("the lock on {key} was lost before the command finished");
            }
            false
        }
        Err(e) => {
            say!("cannot release {key} ({e}); it expires after its TTL");
            true
        }
    }
}

/// The exit status that reports `status`: its code, or 128 + the signal
/// that killed it.
fn exit_status(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => (code & 0xff) as u8,
        (None, Some(sig)) => signal_status(sig),
        (None, None) => EXIT_OSERR,
    }
}

/// 128 + `sig`, as shells report death by a signal.
fn signal_status(sig: libc::c_int) -> u8 {
    u8::try_from(128 + sig).unwrap_or(u8::MAX)
}

/// The default holder label: the command's file name (`sh -c` for
/// `--command`).
fn command_name(args: &RunArgs) -> Option<String> {
    if args.shell.is_some() {
        return Some("sh -c".to_string());
    }
    let first = args.command.first()?;
    let name = std::path::Path::new(first)
        .file_name()
        .unwrap_or(first.as_os_str());
    Some(name.to_string_lossy().into_owned())
}
