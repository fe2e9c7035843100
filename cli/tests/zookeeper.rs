//! The `distlock` command on the ZooKeeper backend: the same options with a
//! `zk://` URL, against the real ZooKeeper shared by this test binary.

mod common;

use common::{run, Proc};
use distlock::Client;
use distlock_testkit::ZkServer;

#[test]
fn a_command_runs_under_a_zookeeper_lock_that_status_and_a_second_run_see() {
    let server = ZkServer::start();
    let url = server.url();
    let c = Client::open(&url).unwrap();
    let script = "echo \"$DISTLOCK_FENCE|$DISTLOCK_TOKEN\"; read _; exit 5";
    let mut p = Proc::spawn(&["--url", &url, "jobs:z", "--", "sh", "-c", script]);
    let line = p.stdout_line(|l| l.contains('|'));
    let (fence, token) = line.split_once('|').expect("fence|token");
    let fence: u64 = fence.parse().expect("numeric fence");
    // While the command runs, its ephemeral node holds the command's
    // token, and the fence is the node's zxid times 64.
    let info = c.inspect("jobs:z").unwrap();
    assert_eq!(info.key, "distlock:jobs:z");
    assert_eq!(info.token.as_deref(), Some(token));
    assert_eq!(info.fence, Some(fence));
    assert_eq!(fence % 64, 0, "{fence}");
    let (code, out, err) = run(&["--url", &url, "status", "jobs:z"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("held:      yes"), "{out}");
    assert!(out.contains(token), "{out}");
    // A second run does not get in.
    let (code, _, err) = run(&["--url", &url, "-n", "jobs:z", "--", "true"]);
    assert_eq!(code, 1, "{err}");
    // The command's status passes through, and the lock is given back.
    drop(p.stdin.take());
    assert_eq!(p.code(), 5, "{}", p.stderr());
    assert_eq!(c.inspect("jobs:z").unwrap().token, None);
    let (code, _, err) = run(&["--url", &url, "-n", "jobs:z", "--", "true"]);
    assert_eq!(code, 0, "{err}");
}
