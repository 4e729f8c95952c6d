//! Process events on this machine: exit codes of processes that are not our
//! children, and which source the probe picks for an unprivileged user.
#![cfg(target_os = "linux")]

mod support;

use std::collections::HashSet;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proctrack::events::{
    DEFAULT_ACK_TIMEOUT, EventKind, EventSource, Exit, Origin, ProbeReason, RefusedAt, Scope,
    Tracker, TrackerOptions,
};
use proctrack::{
    BootId, Cwd, Pid, ProcessIdentity, ProcessInfo, ProcessSource, Sample, SystemSource,
};
use support::kernel::ConnectorAnswer;
use support::{HANG_GUARD, SpawnedTree};

/// A tracker of the test process's subtree, on the proc connector; `None`
/// (and why, on stderr) where the kernel does not let us listen, as the
/// oracle found.
fn tracker() -> Option<Tracker<SystemSource>> {
    if let Err(why) = support::kernel::connector_allowed() {
        eprintln!("skipped: {why}");
        return None;
    }
    let source = SystemSource::open().expect("open /proc");
    let tracker = Tracker::with_source(
        source,
        Scope::Subtree(Pid::current()),
        TrackerOptions::default(),
    )
    .expect("tracker");
    assert_eq!(
        tracker.source(),
        EventSource::Connector,
        "{}",
        tracker.probe()
    );
    Some(tracker)
}

/// Waits for the exit event of `pid` and returns how it ended.
fn exit_of(tracker: &mut Tracker<SystemSource>, pid: Pid) -> (Exit, Origin) {
    loop {
        let event = tracker
            .wait_event(Some(HANG_GUARD))
            .expect("events")
            .unwrap_or_else(|| panic!("no exit event for {pid}"));
        if let EventKind::Exited {
            pid: exited, exit, ..
        } = event.kind
            && exited == pid
        {
            return (exit, event.origin);
        }
    }
}

/// A grandchild (a child of `sh`, not ours) that prints its pid and waits
/// for our stdin to close, then runs `tail`.
fn grandchild(tail: &str) -> (SpawnedTree, Pid) {
    let script = format!("exec 3<&0; sh -c 'echo $$; read _ <&3; {tail}' & wait");
    let mut tree = SpawnedTree::shell(&script);
    let line = tree.read_line().expect("the grandchild's pid");
    let pid: Pid = line.parse().expect("a pid");
    (tree, pid)
}

#[test]
fn a_grandchild_that_exits_3_is_reported_with_code_3() {
    let _serial = support::serial();
    let Some(mut tracker) = tracker() else {
        return;
    };
    let (mut tree, pid) = grandchild("exit 3");
    assert_ne!(
        proctrack::process(pid).expect("the grandchild").parent(),
        Some(Pid::current()),
        "not our child"
    );
    tree.close_stdin();
    assert_eq!(exit_of(&mut tracker, pid), (Exit::Code(3), Origin::Kernel));
    tree.finish();
}

#[test]
fn a_grandchild_killed_by_sigkill_is_reported_as_signal_9() {
    let _serial = support::serial();
    let Some(mut tracker) = tracker() else {
        return;
    };
    let (tree, pid) = grandchild("true");
    // Blocked in `read` until stdin closes: alive, so its pid is its own.
    rustix::process::kill_process(support::rustix_pid(pid), rustix::process::Signal::KILL)
        .expect("kill the grandchild");
    assert_eq!(
        exit_of(&mut tracker, pid),
        (Exit::Signal(9), Origin::Kernel)
    );
    tree.finish();
}

#[test]
fn spawn_exec_and_exit_of_a_grandchild_are_seen_with_its_command_line() {
    let _serial = support::serial();
    let Some(mut tracker) = tracker() else {
        return;
    };
    let mut tree = SpawnedTree::shell(
        "exec 3<&0; sh -c 'echo $$; read _ <&3; exec sh -c \"echo renamed-by-exec; read _ <&3 || exit 4\"' & wait",
    );
    let pid: Pid = tree.read_line().expect("pid").parse().expect("a pid");
    let mut seen_spawn = false;
    while !seen_spawn {
        let event = tracker
            .wait_event(Some(HANG_GUARD))
            .expect("events")
            .expect("an event");
        seen_spawn =
            matches!(event.kind, EventKind::Spawned { process, .. } if process.pid() == pid);
    }
    assert!(
        tracker.table().get(pid).is_some(),
        "the spawned process is in the table"
    );
    // One line in: the grandchild execs and prints, then waits again.
    let stdin = tree.child().stdin.as_mut().expect("stdin");
    std::io::Write::write_all(stdin, b"go\n").expect("write");
    assert_eq!(tree.read_line().as_deref(), Some("renamed-by-exec"));
    loop {
        let event = tracker
            .wait_event(Some(HANG_GUARD))
            .expect("events")
            .expect("an event");
        if matches!(event.kind, EventKind::Exec { process } if process.pid() == pid) {
            break;
        }
    }
    let cmdline = tracker.table().get(pid).expect("row").cmdline().to_string();
    assert!(
        cmdline.contains("renamed-by-exec"),
        "re-read after exec: {cmdline}"
    );
    tree.close_stdin();
    // `read` at end of file fails: the exec'd program exits 4.
    assert_eq!(exit_of(&mut tracker, pid).0, Exit::Code(4));
    assert!(tracker.table().get(pid).is_none(), "the row left at exit");
    tree.finish();
}

/// A `/proc` reader that counts what it is asked.
#[derive(Debug)]
struct Counting {
    inner: SystemSource,
    calls: Arc<AtomicUsize>,
    /// Every pid the source was asked about.
    asked: Arc<Mutex<HashSet<Pid>>>,
}

impl Counting {
    fn new() -> Counting {
        Counting {
            inner: SystemSource::open().expect("open /proc"),
            calls: Arc::default(),
            asked: Arc::default(),
        }
    }

    fn ask(&self, pid: Pid) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.asked.lock().expect("lock").insert(pid);
    }
}

impl ProcessSource for Counting {
    fn boot_id(&self) -> BootId {
        self.inner.boot_id()
    }
    fn list_pids(&mut self, pids: &mut Vec<Pid>) -> proctrack::Result<()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        ProcessSource::list_pids(&mut self.inner, pids)
    }
    fn sample(&mut self, pid: Pid) -> proctrack::Result<Sample<'_>> {
        self.ask(pid);
        ProcessSource::sample(&mut self.inner, pid)
    }
    fn read(&mut self, pid: Pid) -> proctrack::Result<(ProcessInfo, u64)> {
        self.ask(pid);
        ProcessSource::read(&mut self.inner, pid)
    }
    fn read_cwd(&mut self, identity: ProcessIdentity) -> proctrack::Result<Cwd> {
        self.ask(identity.pid());
        ProcessSource::read_cwd(&mut self.inner, identity)
    }
    fn children(&mut self, pid: Pid, children: &mut Vec<Pid>) -> proctrack::Result<bool> {
        self.ask(pid);
        ProcessSource::children(&mut self.inner, pid, children)
    }
}

#[test]
fn a_sync_with_nothing_new_in_the_subtree_reads_nothing() {
    let _serial = support::serial();
    let source = Counting::new();
    let calls = Arc::clone(&source.calls);
    let mut tracker = Tracker::with_source(
        source,
        Scope::Subtree(Pid::current()),
        TrackerOptions::default(),
    )
    .expect("tracker");
    assert!(calls.load(Ordering::Relaxed) > 0, "the first scan reads");
    let before = calls.load(Ordering::Relaxed);
    // Whatever else runs on the host reaches the socket; none of it is ours.
    assert_eq!(tracker.sync().expect("sync"), 0);
    assert_eq!(
        calls.load(Ordering::Relaxed),
        before,
        "no read for other processes"
    );
    // One process of ours: a handful of reads, not a scan.
    let mut tree = SpawnedTree::shell("echo ready; read _");
    tree.wait_ready();
    tracker.sync().expect("sync");
    let for_one = calls.load(Ordering::Relaxed) - before;
    assert!(
        (1..=4).contains(&for_one),
        "{for_one} reads for one new process"
    );
    tree.finish();
}

#[test]
fn following_a_subtree_reads_nothing_outside_it() {
    let _serial = support::serial();
    let churn = "for i in 1 2 3 4 5; do sh -c 'exit 0'; ( sh -c 'exit 0' & ); done";
    // Two trees under the test process; the tracker follows only the first,
    // which churns once told to, then exits.
    let mut followed = SpawnedTree::shell(&format!("echo ready; read _; {churn}"));
    followed.wait_ready();
    let source = Counting::new();
    let asked = Arc::clone(&source.asked);
    let mut tracker = Tracker::with_source(
        source,
        Scope::Subtree(followed.pid()),
        TrackerOptions::default(),
    )
    .expect("tracker");
    let mut sibling = SpawnedTree::shell(&format!("{churn}; echo ready; read _"));
    sibling.wait_ready();
    let stdin = followed.child().stdin.as_mut().expect("stdin");
    std::io::Write::write_all(stdin, b"go\n").expect("write");
    let mut members: HashSet<Pid> = HashSet::from([followed.pid()]);
    // The root exits after its read: wait for that exit event.
    loop {
        let event = tracker
            .wait_event(Some(HANG_GUARD))
            .expect("events")
            .expect("an event");
        match event.kind {
            EventKind::Spawned { process, .. } => {
                members.insert(process.pid());
            }
            EventKind::Exited { pid, .. } if pid == followed.pid() => break,
            EventKind::Exited { pid, .. } => {
                members.insert(pid);
            }
            _ => {}
        }
    }
    assert!(members.len() > 10, "the followed tree churned: {members:?}");
    let asked = asked.lock().expect("lock").clone();
    let outside: Vec<_> = asked.difference(&members).collect();
    assert!(outside.is_empty(), "read outside the subtree: {outside:?}");
    assert!(!asked.contains(&sibling.pid()), "the sibling tree was read");
    sibling.finish();
    followed.finish();
}

#[test]
fn polling_reports_the_same_kinds_of_events_without_exit_codes() {
    let _serial = support::serial();
    let source = SystemSource::open().expect("open /proc");
    let mut tracker = Tracker::with_source(
        source,
        Scope::Subtree(Pid::current()),
        TrackerOptions::default()
            .polling(true)
            .poll_interval(Duration::from_millis(20)),
    )
    .expect("tracker");
    assert_eq!(tracker.probe().reason, ProbeReason::Requested);
    let (mut tree, pid) = grandchild("exit 3");
    let mut spawned = false;
    while !spawned {
        let event = tracker
            .wait_event(Some(HANG_GUARD))
            .expect("events")
            .expect("an event");
        assert_eq!(event.origin, Origin::Poll);
        spawned = matches!(event.kind, EventKind::Spawned { process, .. } if process.pid() == pid);
    }
    tree.close_stdin();
    assert_eq!(exit_of(&mut tracker, pid), (Exit::Unknown, Origin::Poll));
    tree.finish();
}

/// What the library's probe must say, given what the kernel answered the
/// oracle in the same process.
fn expected_reason(answer: ConnectorAnswer, privileged: bool) -> ProbeReason {
    match answer {
        ConnectorAnswer::BindRefused(errno @ (1 | 13)) => ProbeReason::NotPermitted {
            at: RefusedAt::Bind,
            errno,
        },
        ConnectorAnswer::BindRefused(errno) => ProbeReason::SocketFailed(errno),
        ConnectorAnswer::AckRefused(errno) => ProbeReason::NotPermitted {
            at: RefusedAt::Ack,
            errno,
        },
        ConnectorAnswer::Acked if privileged => ProbeReason::Privileged,
        ConnectorAnswer::Acked => ProbeReason::UnprivilegedListen,
        ConnectorAnswer::Silent => ProbeReason::NoAnswer {
            waited: DEFAULT_ACK_TIMEOUT,
        },
    }
}

/// Asks the kernel (the oracle) and the library's probe in this process,
/// checks that they agree and returns both, side by side, for the log.
fn oracle_and_probe() -> String {
    let answer = support::kernel::connector_answer();
    let privileged = rustix::process::geteuid().is_root() || support::kernel::has_net_admin();
    let probe = proctrack::events::probe();
    let line = format!(
        "uid {} in {}: kernel answered {answer:?}; probe: {probe}",
        rustix::process::geteuid().as_raw(),
        namespaces()
    );
    assert_eq!(
        probe.reason,
        expected_reason(answer, privileged),
        "the probe disagrees with the kernel: {line}"
    );
    line
}

/// Our user and pid namespaces, as their links read.
fn namespaces() -> String {
    ["user", "pid"]
        .map(|ns| {
            std::fs::read_link(format!("/proc/self/ns/{ns}"))
                .map_or_else(|e| format!("{ns}:? ({e})"), |l| l.display().to_string())
        })
        .join(" ")
}

/// Run by the probe tests in a child under the conditions they cover.
#[test]
#[ignore = "helper: runs only inside the probe tests' children"]
fn probe_helper() {
    if std::env::var_os("PROCTRACK_EVENTS_PROBE_HELPER").is_none() {
        return;
    }
    println!("probe-result {}", oracle_and_probe());
}

/// Runs `probe_helper` through `command` (which must end by running the
/// test binary's remaining arguments) and returns its line, or `None` (and
/// why, on stderr) when `command` itself could not run here (no user
/// namespaces allowed, say).
fn probe_through(mut command: Command) -> Option<String> {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = command
        .arg(exe)
        .args([
            "--exact",
            "probe_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PROCTRACK_EVENTS_PROBE_HELPER", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the probe helper");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let status = support::wait_child(&mut child);
    let (mut output, mut errors) = (String::new(), String::new());
    std::io::Read::read_to_string(&mut stdout, &mut output).expect("read");
    std::io::Read::read_to_string(&mut stderr, &mut errors).expect("read");
    // The test harness prints its own words around the helper's line.
    let Some(line) = output
        .split_once("probe-result ")
        .and_then(|(_, rest)| rest.lines().next())
    else {
        // The helper never ran: the wrapper could not set up its condition.
        assert!(
            !output.contains("running 1 test"),
            "the helper ran but printed no result: {output}{errors}"
        );
        eprintln!("skipped: {command:?} could not run here: {}", errors.trim());
        return None;
    };
    assert!(status.success(), "helper failed: {output}{errors}");
    println!("{line}");
    Some(line.to_owned())
}

/// As whatever user runs the suite: the probe says what the kernel
/// answered the oracle.
#[test]
fn probe_agrees_with_the_kernel() {
    println!("{}", oracle_and_probe());
}

/// As uid 65534: whether this kernel lets an unprivileged user listen
/// differs between builds; the probe must report what this one did.
#[test]
fn probe_as_nobody_agrees_with_the_kernel() {
    // Serial: other tests' guards sweep every descendant when they end.
    let _serial = support::serial();
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: becoming uid 65534 needs root");
        return;
    }
    // `env` runs the test binary; the uid and gid change on the way.
    let mut command = Command::new("env");
    command.uid(65534).gid(65534);
    probe_through(command);
}

/// In a new user namespace, and in a new pid namespace: the probe must
/// report what the kernel did there (on the kernels seen so far: silence,
/// or a refused bind).
#[test]
fn probe_in_new_namespaces_agrees_with_the_kernel() {
    let _serial = support::serial();
    let conditions: [&[&str]; 2] = [
        &["--user", "--map-root-user", "--fork"],
        &["--pid", "--fork"],
    ];
    for args in conditions {
        let mut command = Command::new("unshare");
        command.args(args);
        probe_through(command);
    }
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn next_async_reports_an_exit_code() {
    let _serial = support::serial();
    let Some(mut tracker) = tracker() else {
        return;
    };
    let (mut tree, pid) = grandchild("exit 5");
    tree.close_stdin();
    let found = tokio::time::timeout(HANG_GUARD, async {
        loop {
            let event = tracker.next_async().await.expect("event");
            if let EventKind::Exited {
                pid: exited, exit, ..
            } = event.kind
                && exited == pid
            {
                return exit;
            }
        }
    })
    .await
    .expect("the exit within the hang guard");
    assert_eq!(found, Exit::Code(5));
    tree.finish();
}
