//! Supervisor jobs on the live system, each test twice: with a cgroup per
//! job (skipped, saying why, where cgroup2 is not writable) and with cgroups
//! forced off (process group, subreaper and tag only).
//!
//! Every test holds [`serial`] (the supervisor counts every child of the
//! test process it did not spawn as an adopted orphan), and the guard kills
//! and reaps whatever a failing test left.
#![cfg(target_os = "linux")]

mod support;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use proctrack::Pid;
use proctrack::signal::ProcessHandle;
use proctrack::supervisor::{Cgroups, JobId, Supervisor, SupervisorOptions, tag};
use support::{HANG_GUARD, Lines, assert_no_descendants, serial, unique_marker, with_env};

/// A supervisor with job cgroups (`None`, and why on stderr, where they
/// cannot be made) or without.
fn supervisor(cgroups: bool) -> Option<Supervisor> {
    let name = unique_marker("jobs").replace('-', "_");
    let mode = if cgroups { Cgroups::Auto } else { Cgroups::Off };
    let supervisor =
        Supervisor::new(SupervisorOptions::new(name).cgroups(mode)).expect("supervisor");
    if cgroups {
        // The kernel decides whether job cgroups can be made here; the
        // supervisor must agree with it.
        let oracle = support::kernel::cgroup2_writable();
        assert_eq!(
            supervisor.cgroups().is_ok(),
            oracle.is_ok(),
            "the supervisor ({:?}) disagrees with the kernel ({oracle:?})",
            supervisor.cgroups().map(|_| ())
        );
        if let Err(why) = supervisor.cgroups() {
            eprintln!("skipped: {why}");
            return None;
        }
    }
    Some(supervisor)
}

/// Starts `script` under `sh -c` as a job whose stdout we read.
fn start(supervisor: &mut Supervisor, script: &str) -> (JobId, Lines) {
    let mut command = supervisor.command("sh");
    command.args(["-c", script]).stdout(Stdio::piped());
    let id = supervisor.spawn(command).expect("spawn the job");
    let stdout = supervisor
        .child_mut(&id)
        .and_then(|child| child.stdout.take())
        .expect("the job's stdout");
    (id, Lines::new(stdout))
}

/// Pids of processes anywhere that carry `id`'s tag.
fn tagged(id: &JobId) -> Vec<Pid> {
    with_env(tag::JOB_VAR, |value| value == id.as_str().as_bytes())
}

/// Three escapes: a double-forked `setsid` daemon, one that closes its fds
/// and goes to `/`, one that clears its environment. Each prints
/// `<what> <pid>` before it settles.
const ESCAPES: &str = "\
( setsid sh -c 'echo daemon $$; exec sleep 600' & )
( sh -c 'echo closer $$; cd /; exec sleep 600 <&- >&- 2>&-' & )
( env -i /bin/sh -c 'echo bare $$; exec /bin/sleep 600' & )
";

/// With a cgroup, a fourth that does all at once (clears its environment,
/// `setsid`, double fork before anyone looked): only the cgroup holds it.
const HERMIT: &str =
    "( setsid env -i /bin/sh -c 'echo hermit $$; exec /bin/sleep 600 <&- >&- 2>&-' & )\n";

fn escapes_are_members_and_stop_leaves_none(cgroups: bool) {
    let _serial = serial();
    let Some(mut supervisor) = supervisor(cgroups) else {
        return;
    };
    let script = if cgroups {
        format!("{ESCAPES}{HERMIT}exec sleep 600")
    } else {
        format!("{ESCAPES}exec sleep 600")
    };
    let (id, mut lines) = start(&mut supervisor, &script);
    let containment = supervisor.job(&id).expect("job").containment().clone();
    assert_eq!(containment.cgroup.is_some(), cgroups, "{containment}");
    assert!(containment.subreaper, "{containment}");
    let mut escapes = Vec::new();
    for _ in 0..if cgroups { 4 } else { 3 } {
        let line = lines.line();
        let (what, pid) = line.split_once(' ').expect("<what> <pid>");
        let pid: Pid = pid.parse().expect("a pid");
        escapes.push((what.to_owned(), pid));
    }
    // Pinned now, to see each exit later.
    let handles: Vec<ProcessHandle> = escapes
        .iter()
        .map(|(_, pid)| {
            let identity = proctrack::process(*pid).expect("running").identity();
            ProcessHandle::open(identity).expect("pin")
        })
        .collect();

    let members = supervisor.members(&id).expect("members");
    let pids: HashSet<Pid> = members.iter().map(|m| m.process.pid()).collect();
    for (what, pid) in &escapes {
        assert!(
            pids.contains(pid),
            "{what} {pid} is not a member: {members:#?}"
        );
    }
    assert!(pids.contains(&supervisor.job(&id).expect("job").root().pid()));
    let usage = supervisor.usage(&id).expect("usage");
    assert!(usage.processes >= 4, "{usage:?}");
    assert!(usage.rss_bytes > 0, "{usage:?}");

    let report = supervisor.stop(&id, Duration::from_secs(5)).expect("stop");
    assert!(report.is_complete(), "{report:#?}");
    // Every escape was a member the stop proved it ended.
    for handle in &handles {
        assert!(
            report.kill.was_killed(&handle.identity()),
            "{} is not among the killed: {report}",
            handle.pid()
        );
    }
    assert!(report.exit.is_some(), "the root's status: {report:#?}");
    for (handle, (what, _)) in handles.iter().zip(&escapes) {
        assert!(
            handle.wait_timeout(HANG_GUARD).expect("wait"),
            "{what} survived"
        );
    }
    assert!(tagged(&id).is_empty());
    assert!(supervisor.job(&id).expect("job").is_finished());
    if let Some(cgroup) = &containment.cgroup {
        assert!(!cgroup.exists(), "{} was not removed", cgroup.display());
    }
    // Every writer of the pipe is gone: nothing held it past the stop.
    assert_eq!(lines.next_line(), None);
    assert_no_descendants();
}

#[test]
fn escapes_are_caught_with_a_cgroup() {
    escapes_are_members_and_stop_leaves_none(true);
}

#[test]
fn escapes_are_caught_without_cgroups() {
    escapes_are_members_and_stop_leaves_none(false);
}

/// 500 sleepers, then a loop that keeps forking (short-lived children and
/// orphaned sleepers) while the stop runs.
const FORKING: &str = "\
i=0; while [ $i -lt 500 ]; do sleep 600 & i=$((i+1)); done
echo ready
while :; do /bin/true; ( sleep 600 & ); done";

fn a_big_forking_job_stops_with_no_survivor(cgroups: bool) {
    let _serial = serial();
    let Some(mut supervisor) = supervisor(cgroups) else {
        return;
    };
    let (id, mut lines) = start(&mut supervisor, FORKING);
    lines.until("ready");
    let report = supervisor.stop(&id, Duration::ZERO).expect("stop");
    eprintln!("{report}");
    assert!(report.is_complete(), "{report}");
    assert!(
        report.kill.killed.len() >= 500,
        "{report}: fewer than 500 killed"
    );
    assert!(supervisor.members(&id).expect("members").is_empty());
    assert!(tagged(&id).is_empty());
    assert_eq!(lines.next_line(), None);
    assert_no_descendants();
}

#[test]
fn a_job_of_500_forking_processes_stops_with_a_cgroup() {
    a_big_forking_job_stops_with_no_survivor(true);
}

#[test]
fn a_job_of_500_forking_processes_stops_without_cgroups() {
    a_big_forking_job_stops_with_no_survivor(false);
}

fn wait_returns_the_status_once_every_member_is_gone(cgroups: bool) {
    let _serial = serial();
    let Some(mut supervisor) = supervisor(cgroups) else {
        return;
    };
    // The root exits 3 at once; its child lingers until we close its stdin.
    let mut command = supervisor.command("sh");
    command
        // An asynchronous list reads /dev/null unless told otherwise: fd 3.
        .args(["-c", "exec 3<&0; ( read _ <&3; echo done ) & exit 3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let id = supervisor.spawn(command).expect("spawn");
    let child = supervisor.child_mut(&id).expect("child");
    let stdin = child.stdin.take().expect("stdin");
    let mut lines = Lines::new(child.stdout.take().expect("stdout"));
    assert_eq!(
        supervisor.wait(&id, Some(Duration::ZERO)).expect("try"),
        None,
        "a member still runs"
    );
    drop(stdin);
    assert_eq!(lines.line(), "done");
    let status = supervisor
        .wait(&id, Some(HANG_GUARD))
        .expect("wait")
        .expect("every member is gone");
    assert_eq!(status.code(), Some(3));
    assert!(supervisor.job(&id).expect("job").is_finished());
    assert_no_descendants();
}

#[test]
fn wait_with_a_cgroup() {
    wait_returns_the_status_once_every_member_is_gone(true);
}

#[test]
fn wait_without_cgroups() {
    wait_returns_the_status_once_every_member_is_gone(false);
}

/// Dropping the supervisor stops its jobs, but not one kept running.
#[test]
fn drop_stops_every_job_but_a_kept_one() {
    let _serial = serial();
    let Some(mut supervisor) = supervisor(false) else {
        return;
    };
    let (stopped, mut stopped_lines) = start(&mut supervisor, "echo up; exec sleep 600");
    let (kept, mut kept_lines) = start(&mut supervisor, "echo up; exec sleep 600");
    assert_eq!(stopped_lines.line(), "up");
    assert_eq!(kept_lines.line(), "up");
    supervisor.keep_running(&kept, true).expect("keep");
    let kept_root = supervisor.job(&kept).expect("job").root();
    let stopped_root = supervisor.job(&stopped).expect("job").root();
    let kept_handle = ProcessHandle::open(kept_root).expect("pin");
    drop(supervisor);
    assert!(
        ProcessHandle::open(stopped_root).is_err(),
        "the stopped job's root runs"
    );
    assert!(
        !kept_handle.has_exited().expect("look"),
        "the kept job was stopped"
    );
    assert_eq!(stopped_lines.next_line(), None);
    // The kept job is ours to end: the serial guard kills and reaps it.
}
