//! Port holders on live processes: IPv4, IPv6, dual-stack, SO_REUSEPORT
//! workers, an orphaned holder, a forked child sharing its parent's socket,
//! UDP, another user's port, a port nobody holds, port kills, and the whole
//! system compared with `ss -ltnup`.
//!
//! Holders are `python3` processes that bind, print `ready ...` on a pipe and
//! block reading stdin: closing it (or `Drop`) ends them. The test process is
//! a child subreaper and every test runs under `serial()`, whose `Drop`
//! kills and reaps whatever is left.
#![cfg(target_os = "linux")]

mod support;

use std::collections::{BTreeSet, HashMap};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use proctrack::ports::{PortFinder, PortKillOptions, PortReport, Protocol, Search};
use proctrack::signal::{KillOptions, Refusal};
use proctrack::table::ProcessTable;
use proctrack::{Pid, ProcessIdentity};
use support::{SpawnedTree, assert_no_descendants, serial, still_there};

/// Every holder mode. Each prints `ready <port> <fd> [pids...]` once its
/// sockets are bound (and listening), then waits for end of file on stdin.
const HOLDER: &str = r#"
import os, socket, sys
mode = sys.argv[1]
def say(*words):
    print(*words, flush=True)
def wait():
    sys.stdin.read()
    os._exit(0)
def tcp(family, addr, v6only=None, reuse=False, port=0):
    s = socket.socket(family, socket.SOCK_STREAM)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    if reuse:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind((addr, port))
    s.listen()
    return s
if mode == "v4":
    s = tcp(socket.AF_INET, "127.0.0.1")
elif mode == "v6only":
    s = tcp(socket.AF_INET6, "::1", v6only=1)
elif mode == "dual":
    s = tcp(socket.AF_INET6, "::", v6only=0)
elif mode == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
elif mode == "nobody":
    s = tcp(socket.AF_INET, "127.0.0.1")
    os.setgid(65534)
    os.setuid(65534)
elif mode == "reuseport":
    first = socket.socket()
    first.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    first.bind(("127.0.0.1", 0))
    port = first.getsockname()[1]
    r, w = os.pipe()
    workers = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            first.close()
            s = tcp(socket.AF_INET, "127.0.0.1", reuse=True, port=port)
            os.write(w, b"x")
            wait()
        workers.append(pid)
    first.close()
    got = b""
    while len(got) < 4:
        got += os.read(r, 4)
    say("ready", port, -1, *workers)
    wait()
elif mode in ("fork", "orphan"):
    s = tcp(socket.AF_INET, "127.0.0.1")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, b"x")
        wait()
    os.read(r, 1)
    say("ready", s.getsockname()[1], s.fileno(), pid)
    if mode == "orphan":
        os._exit(0)
    wait()
say("ready", s.getsockname()[1], s.fileno())
wait()
"#;

/// A running holder: its tree, its port, its socket's fd, and the pids it
/// reported (workers, a forked child).
struct Holder {
    tree: SpawnedTree,
    port: u16,
    fd: i32,
    others: Vec<Pid>,
}

fn holder(mode: &str) -> Holder {
    let mut tree = SpawnedTree::spawn(
        Command::new("/usr/bin/python3")
            .args(["-c", HOLDER, mode])
            .stdin(Stdio::piped()),
    );
    let line = tree.read_line().expect("a ready line");
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"ready"), "unexpected line {line:?}");
    let number = |word: &str| {
        word.parse::<i64>()
            .unwrap_or_else(|_| panic!("bad line {line:?}"))
    };
    Holder {
        port: number(words[1]) as u16,
        fd: number(words[2]) as i32,
        others: words[3..]
            .iter()
            .map(|w| Pid::try_from(number(w)).expect("pid"))
            .collect(),
        tree,
    }
}

fn pids(report: &PortReport) -> Vec<Pid> {
    report.holders().iter().map(|h| h.pid()).collect()
}

fn sorted(mut pids: Vec<Pid>) -> Vec<Pid> {
    pids.sort_unstable();
    pids
}

#[test]
fn ipv4_listener_and_its_holder() -> proctrack::Result<()> {
    let _serial = serial();
    let h = holder("v4");
    let mut finder = PortFinder::open()?;
    for search in [
        Search::new(),
        Search::new().exhaustive(true),
        Search::new().protocol(Protocol::Tcp),
    ] {
        let report = finder.holders(h.port, &search)?;
        assert_eq!(report.listeners.len(), 1, "{report:#?}");
        let listener = &report.listeners[0];
        assert_eq!(listener.socket.protocol, Protocol::Tcp);
        assert_eq!(
            listener.socket.local,
            format!("127.0.0.1:{}", h.port).parse().unwrap()
        );
        assert!(listener.socket.accepts_ipv4() && !listener.socket.accepts_ipv6());
        assert_eq!(listener.holders.len(), 1);
        assert_eq!(listener.holders[0].identity, h.tree.root());
        assert_eq!(listener.holders[0].fd, h.fd);
    }
    // Not a UDP port.
    assert!(
        finder
            .holders(h.port, &Search::new().protocol(Protocol::Udp))?
            .listeners
            .is_empty()
    );
    // The same through the tree the caller names, and from the holder's side.
    let table = ProcessTable::new()?;
    let root = h.tree.root().pid();
    let report = finder.holders(h.port, &Search::new().tree(&table, root))?;
    assert_eq!(pids(&report), vec![root]);
    let held = finder.ports_of_tree(&table, root)?;
    assert_eq!(held.listeners.len(), 1);
    assert_eq!(held.listeners[0].socket.local.port(), h.port);
    let all = finder.listeners()?;
    assert!(all.listeners.iter().any(|l| {
        l.socket.local.port() == h.port
            && l.holders
                .iter()
                .any(|holder| holder.identity == h.tree.root())
    }));
    drop(h);
    assert_no_descendants();
    Ok(())
}

#[test]
fn ipv6_only_and_dual_stack() -> proctrack::Result<()> {
    if let Err(why) = support::kernel::ipv6_loopback() {
        eprintln!("skipped: {why}");
        return Ok(());
    }
    let _serial = serial();
    let only6 = holder("v6only");
    let dual = holder("dual");
    let mut finder = PortFinder::open()?;

    let report = finder.holders(only6.port, &Search::new())?;
    assert_eq!(report.listeners.len(), 1, "{report:#?}");
    let socket = report.listeners[0].socket;
    assert_eq!(
        socket.local,
        format!("[::1]:{}", only6.port).parse().unwrap()
    );
    assert_eq!(socket.v6_only, Some(true));
    assert!(socket.accepts_ipv6() && !socket.accepts_ipv4());
    assert_eq!(pids(&report), vec![only6.tree.root().pid()]);

    // A socket on :: without IPV6_V6ONLY is reported for IPv4 too.
    let report = finder.holders(dual.port, &Search::new())?;
    assert_eq!(report.listeners.len(), 1, "{report:#?}");
    let socket = report.listeners[0].socket;
    assert_eq!(socket.local, format!("[::]:{}", dual.port).parse().unwrap());
    assert_eq!(socket.v6_only, Some(false));
    assert!(socket.accepts_ipv4() && socket.accepts_ipv6());
    assert_eq!(pids(&report), vec![dual.tree.root().pid()]);
    drop((only6, dual));
    assert_no_descendants();
    Ok(())
}

#[test]
fn reuseport_workers_each_hold_their_own_socket() -> proctrack::Result<()> {
    let _serial = serial();
    let h = holder("reuseport");
    assert_eq!(h.others.len(), 4);
    let report = PortFinder::open()?.holders(h.port, &Search::new())?;
    assert_eq!(report.listeners.len(), 4, "{report:#?}");
    let mut ids: Vec<u64> = report.listeners.iter().map(|l| l.socket.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 4, "four distinct sockets");
    for listener in &report.listeners {
        assert_eq!(listener.holders.len(), 1, "{listener:#?}");
    }
    assert_eq!(pids(&report), sorted(h.others.clone()));
    drop(h);
    assert_no_descendants();
    Ok(())
}

#[test]
fn forked_child_and_parent_both_hold_the_socket() -> proctrack::Result<()> {
    let _serial = serial();
    let h = holder("fork");
    let parent = h.tree.root().pid();
    let child = h.others[0];
    let mut finder = PortFinder::open()?;
    // Found from either side: no hint (newest first finds the child, the
    // family completes the parent), the parent's tree, the child alone.
    let table = ProcessTable::new()?;
    for search in [
        Search::new(),
        Search::new().tree(&table, parent),
        Search::new().pids([child]),
    ] {
        let report = finder.holders(h.port, &search)?;
        assert_eq!(report.listeners.len(), 1, "{report:#?}");
        assert_eq!(pids(&report), sorted(vec![parent, child]), "{search:?}");
        assert!(
            report.listeners[0]
                .holders
                .iter()
                .all(|holder| holder.fd == h.fd)
        );
    }
    drop(h);
    assert_no_descendants();
    Ok(())
}

#[test]
fn holder_whose_parent_exited() -> proctrack::Result<()> {
    let _serial = serial();
    let mut h = holder("orphan");
    // Keep the stdin pipe (the orphan waits on it) past reaping the root.
    let _stdin = h.tree.child().stdin.take();
    h.tree.wait_root();
    let orphan = h.others[0];
    let report = PortFinder::open()?.holders(h.port, &Search::new())?;
    assert_eq!(pids(&report), vec![orphan], "{report:#?}");
    // Adopted by us, the subreaper.
    let table = ProcessTable::new()?;
    assert_eq!(
        table.get(orphan).and_then(|p| p.parent()),
        Some(Pid::current())
    );
    drop(h);
    assert_no_descendants();
    Ok(())
}

#[test]
fn udp_socket() -> proctrack::Result<()> {
    let _serial = serial();
    let h = holder("udp");
    let mut finder = PortFinder::open()?;
    let report = finder.holders(h.port, &Search::new())?;
    assert_eq!(report.listeners.len(), 1, "{report:#?}");
    assert_eq!(report.listeners[0].socket.protocol, Protocol::Udp);
    assert_eq!(report.listeners[0].holders[0].fd, h.fd);
    assert_eq!(pids(&report), vec![h.tree.root().pid()]);
    assert!(
        finder
            .holders(h.port, &Search::new().protocol(Protocol::Tcp))?
            .listeners
            .is_empty()
    );
    drop(h);
    assert_no_descendants();
    Ok(())
}

#[test]
fn port_nobody_holds() -> proctrack::Result<()> {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = free.local_addr().expect("addr").port();
    drop(free);
    let report = PortFinder::open()?.holders(port, &Search::new())?;
    assert!(report.listeners.is_empty(), "{report:#?}");
    Ok(())
}

/// The environment variable that turns a run of this test binary into the
/// unprivileged probe of [`another_users_port`].
const PROBE: &str = "PROCTRACK_PORTS_PROBE";

/// A process that bound as root, then became `nobody`: root sees it as the
/// holder; an unprivileged caller cannot read its fds (it is not dumpable
/// after the setuid) and gets it in `not_permitted`, not silently nothing.
/// The unprivileged side runs this test binary again as `nobody`, when we
/// are root; as an ordinary user the test checks that side directly.
#[test]
fn another_users_port() -> proctrack::Result<()> {
    if let Ok(port) = std::env::var(PROBE) {
        // The probe: report what an unprivileged caller sees.
        let port: u16 = port.parse().expect("probe port");
        let report = PortFinder::open()?.holders(port, &Search::new())?;
        println!(
            "probe listeners={} holders={} not_permitted={}",
            report.listeners.len(),
            report.holders().len(),
            report
                .not_permitted
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        return Ok(());
    }
    if let Err(why) = support::kernel::may_change_uid() {
        eprintln!("skipped: a process of another user cannot be made here: {why}");
        return Ok(());
    }
    let _serial = serial();
    let h = holder("nobody");
    let pid = h.tree.root().pid();
    let root = rustix::process::geteuid().is_root();
    if root {
        let report = PortFinder::open()?.holders(h.port, &Search::new())?;
        assert_eq!(pids(&report), vec![pid], "{report:#?}");
        let output = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "another_users_port",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(PROBE, h.port.to_string())
            .uid(65534)
            .gid(65534)
            .output()
            .expect("run the probe as nobody");
        let stdout = String::from_utf8_lossy(&output.stdout);
        // The harness prints the test name on the same line, first.
        let line = stdout
            .lines()
            .find_map(|l| l.find("probe ").map(|at| &l[at..]))
            .unwrap_or_else(|| {
                panic!(
                    "no probe line: {stdout} {}",
                    String::from_utf8_lossy(&output.stderr)
                )
            });
        assert!(line.contains("listeners=1 holders=0 "), "{line}");
        let denied = line.rsplit('=').next().unwrap_or("");
        assert!(denied.split(',').any(|p| p == pid.to_string()), "{line}");
    } else {
        let report = PortFinder::open()?.holders(h.port, &Search::new())?;
        assert!(report.holders().is_empty(), "{report:#?}");
        assert!(report.not_permitted.contains(&pid), "{report:#?}");
    }
    drop(h);
    assert_no_descendants();
    Ok(())
}

#[test]
fn kill_port_stops_the_whole_tree_and_dry_run_kills_nothing() -> proctrack::Result<()> {
    let _serial = serial();
    let mut h = holder("fork");
    let parent = h.tree.root();
    let child = h.others[0];
    let mut finder = PortFinder::open()?;
    let mut table = ProcessTable::new()?;
    let child_identity = table.get(child).expect("child in table").identity();

    // Without a root: the highest holder on the line, the parent.
    let plan = finder.kill_port(&mut table, h.port, &PortKillOptions::new().dry_run(true))?;
    assert!(plan.dry_run && plan.kill.is_none());
    assert_eq!(plan.trees.len(), 1, "{plan:#?}");
    assert_eq!(plan.trees[0].root, parent);
    assert_eq!(
        sorted_ids(plan.trees[0].members.clone()),
        sorted_ids(vec![parent, child_identity])
    );
    assert_eq!(
        sorted_ids(plan.trees[0].holders.clone()),
        sorted_ids(vec![parent, child_identity])
    );
    assert_eq!(
        still_there([parent, child_identity]).len(),
        2,
        "a dry run kills nothing"
    );

    // With us as the root: our child on the holder's line, the same tree.
    // The root is our child: leave its exit status to us (the guard).
    let options = PortKillOptions::new()
        .root(Pid::current())
        .kill(KillOptions::new().reap_root(false));
    let done = finder.kill_port(&mut table, h.port, &options)?;
    assert_eq!(done.trees.len(), 1, "{done:#?}");
    assert_eq!(done.trees[0].root, parent);
    assert_eq!(done.trees.len(), 1);
    assert!(done.is_complete(), "{done:#?}");
    h.tree.wait_root();
    assert!(still_there([parent, child_identity]).is_empty());
    assert!(finder.holders(h.port, &Search::new())?.listeners.is_empty());
    drop(h);
    assert_no_descendants();
    Ok(())
}

#[test]
fn kill_port_refuses_our_own_port_and_leaves_other_roots_alone() -> proctrack::Result<()> {
    let _serial = serial();
    let ours = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = ours.local_addr().expect("addr").port();
    let mut finder = PortFinder::open()?;
    let mut table = ProcessTable::new()?;
    let plan = finder.kill_port(&mut table, port, &PortKillOptions::new())?;
    assert!(plan.trees.is_empty() && !plan.is_complete(), "{plan:#?}");
    assert_eq!(plan.refused.len(), 1, "{plan:#?}");
    assert_eq!(plan.refused[0].1, Refusal::OwnProcess);

    // A holder outside the given root (another tree of ours) is left alone.
    let h = holder("v4");
    let other = holder("udp");
    let mut table = ProcessTable::new()?;
    let elsewhere = other.tree.root().pid();
    let plan = finder.kill_port(&mut table, h.port, &PortKillOptions::new().root(elsewhere))?;
    assert!(
        plan.trees.is_empty() && plan.refused.is_empty(),
        "{plan:#?}"
    );
    assert_eq!(plan.outside_root, vec![h.tree.root()]);
    assert_eq!(still_there([h.tree.root()]).len(), 1);
    // With pid 1 as the root, the top-level child on the line is one of
    // our ancestors: refused, never killed.
    let plan = finder.kill_port(
        &mut table,
        h.port,
        &PortKillOptions::new().root(Pid::try_from(1)?),
    )?;
    assert!(plan.trees.is_empty(), "{plan:#?}");
    assert!(
        matches!(
            plan.refused[..],
            [(_, Refusal::Ancestor | Refusal::OwnProcess)]
        ),
        "{plan:#?}"
    );
    assert_eq!(still_there([h.tree.root()]).len(), 1);
    drop((h, other));
    assert_no_descendants();
    Ok(())
}

/// `ss -ltnupe` as (protocol, inode) -> holder pids.
fn ss() -> HashMap<(Protocol, u64), BTreeSet<i32>> {
    let output = Command::new("ss")
        .args(["-ltnupeH"])
        .output()
        .expect("run ss (iproute2; .ci/run installs it)");
    assert!(output.status.success(), "ss failed: {output:?}");
    let mut out = HashMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let protocol = match line.split_whitespace().next() {
            Some("tcp") => Protocol::Tcp,
            Some("udp") => Protocol::Udp,
            _ => continue,
        };
        let Some(inode) = line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("ino:"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let pids = line
            .split("pid=")
            .skip(1)
            .filter_map(|rest| {
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        out.insert((protocol, inode), pids);
    }
    out
}

/// Every listening socket `ss -ltnup` reports, we report, with the same
/// holders: both from listing everything and from the per-port search.
/// Sockets that changed between two runs of ss (others' tests come and go)
/// are left out. Our own holders make sure the interesting cases are there.
#[test]
fn agrees_with_ss() -> proctrack::Result<()> {
    let _serial = serial();
    // The dual-stack holder only where this machine has IPv6.
    let mut modes = vec!["fork", "reuseport", "udp"];
    match support::kernel::ipv6_loopback() {
        Ok(()) => modes.push("dual"),
        Err(why) => eprintln!("no dual-stack holder: {why}"),
    }
    let _ours: Vec<Holder> = modes.into_iter().map(holder).collect();
    let before = ss();
    let mut finder = PortFinder::open()?;
    let all = finder.listeners()?;
    let after = ss();
    let ours: HashMap<(Protocol, u64), BTreeSet<i32>> = all
        .listeners
        .iter()
        .map(|l| {
            let pids = l
                .holders
                .iter()
                .map(|h| h.identity.pid().as_raw())
                .collect();
            ((l.socket.protocol, l.socket.id), pids)
        })
        .collect();
    let mut compared = 0;
    // Per-port answers that differ, checked against a last run of ss: a
    // socket that closed during the searches is not a disagreement.
    let mut differing = Vec::new();
    for (key, pids) in &before {
        if after.get(key) != Some(pids) {
            continue;
        }
        compared += 1;
        assert_eq!(
            ours.get(key),
            Some(pids),
            "socket {key:?}: ss says {pids:?}"
        );
        let port = all
            .listeners
            .iter()
            .find(|l| (l.socket.protocol, l.socket.id) == *key)
            .map(|l| l.socket.local.port())
            .expect("listed");
        let search = Search::new().protocol(key.0);
        let by_port = finder.holders(port, &search)?;
        let found: Option<BTreeSet<i32>> = by_port
            .listeners
            .iter()
            .find(|l| l.socket.id == key.1)
            .map(|l| {
                l.holders
                    .iter()
                    .map(|h| h.identity.pid().as_raw())
                    .collect()
            });
        if found.as_ref() != Some(pids) {
            differing.push((port, *key, pids.clone(), found));
        }
    }
    let last = ss();
    for (port, key, pids, found) in differing {
        if last.get(&key) == Some(&pids) {
            assert_eq!(
                found.as_ref(),
                Some(&pids),
                "port {port} {key:?} searched by port"
            );
        }
    }
    assert!(compared >= 7, "only {compared} stable sockets compared");
    Ok(())
}

fn sorted_ids(mut ids: Vec<ProcessIdentity>) -> Vec<ProcessIdentity> {
    ids.sort_unstable_by_key(|id| id.pid());
    ids
}
