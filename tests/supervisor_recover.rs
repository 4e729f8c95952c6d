//! Recovery after a crash: a supervisor (this test binary, run again as a
//! child) is SIGKILLed at a random moment while its jobs fork; a new
//! supervisor of the same name recovers, and nothing of the old jobs is left
//! alive, no row stays "running" without a process.
//!
//! The child's jobs print `pid <pid>` for every process they start on the
//! pipe we read, which they all hold: end of file on it means every one of
//! them is gone. Trials alternate between job cgroups (where writable) and
//! cgroups forced off.
#![cfg(all(target_os = "linux", feature = "registry"))]

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use proctrack::Pid;
use proctrack::registry::{JobJournal, Registry};
use proctrack::signal::{ProcessHandle, Signal};
use proctrack::supervisor::cgroup::{Cgroup2, JobCgroup};
use proctrack::supervisor::{Cgroups, Supervisor, SupervisorOptions, tag};
use support::{HANG_GUARD, Lines, assert_no_descendants, serial, unique_marker, with_env};

/// Set in the child run: `<registry path>\t<supervisor name>\t<on|off>`.
const CHILD_VAR: &str = "PROCTRACK_TEST_CRASHING_SUPERVISOR";

/// Each job: 20 sleepers started one by one, a double-forked daemon, then
/// the root sleeps. Every process prints its pid first.
const JOB: &str = "\
echo pid $$
i=0; while [ $i -lt 20 ]; do sleep 600 & echo pid $!; i=$((i+1)); done
( setsid sh -c 'echo pid $$; exec sleep 600' & )
exec sleep 600";

/// How many jobs the crashing supervisor starts.
const JOBS: usize = 3;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn options(db: &Path, name: &str, cgroups: bool) -> SupervisorOptions {
    let registry = runtime()
        .block_on(Registry::open(db))
        .expect("open the registry");
    let me = proctrack::process(Pid::current()).expect("me").identity();
    SupervisorOptions::new(name)
        .cgroups(if cgroups { Cgroups::Auto } else { Cgroups::Off })
        .journal(JobJournal::new(registry, me))
}

/// The crashing supervisor: runs only as the child of
/// [`a_supervisor_killed_at_random_moments_leaves_nothing_after_recover`].
#[test]
#[ignore = "the child half of the recovery test; runs only when it starts it"]
fn crashing_supervisor() {
    let Ok(setup) = std::env::var(CHILD_VAR) else {
        return;
    };
    let mut parts = setup.split('\t');
    let (db, name, cgroups) = (
        parts.next().expect("db"),
        parts.next().expect("name"),
        parts.next() == Some("on"),
    );
    let mut supervisor =
        Supervisor::new(options(Path::new(db), name, cgroups)).expect("supervisor");
    if parts.next() == Some("keep") {
        // A clean exit that leaves one job running on purpose.
        let mut command = supervisor.command("sh");
        command.args(["-c", "echo pid $$; exec sleep 600"]);
        let id = supervisor.spawn(command).expect("spawn");
        supervisor.keep_running(&id, true).expect("keep");
        println!("job {id}");
        drop(supervisor);
        std::process::exit(0);
    }
    for _ in 0..JOBS {
        let mut command = supervisor.command("sh");
        command.args(["-c", JOB]);
        let id = supervisor.spawn(command).expect("spawn");
        println!("job {id}");
    }
    // Until the parent kills us: it never writes to our stdin.
    let _ = std::io::stdin().read(&mut [0]);
    std::process::exit(1);
}

/// A small deterministic generator for the moment of the kill.
fn moments(seed: u64) -> impl Iterator<Item = usize> {
    let mut state = seed;
    std::iter::from_fn(move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        Some(((state >> 33) % (JOBS as u64 * 23)) as usize)
    })
}

/// Pids of processes anywhere tagged by a job of supervisor `name`.
fn tagged_by(name: &str) -> Vec<Pid> {
    let prefix = format!("{name}.");
    with_env(tag::JOB_VAR, |value| value.starts_with(prefix.as_bytes()))
}

#[test]
fn a_supervisor_killed_at_random_moments_leaves_nothing_after_recover() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("jobs.db");
    let name = unique_marker("crash").replace('-', "_");
    let mut recovered_jobs = 0;
    let mut killed = 0;
    for (trial, moment) in moments(7).take(50).enumerate() {
        let cgroups = trial % 2 == 0;
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["crashing_supervisor", "--exact", "--ignored", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(
                CHILD_VAR,
                format!(
                    "{}\t{name}\t{}",
                    db.display(),
                    if cgroups { "on" } else { "off" }
                ),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the crashing supervisor");
        let supervisor = ProcessHandle::from_child(&child).expect("pin");
        let mut lines = Lines::new(child.stdout.take().expect("stdout"));
        // Our own bookkeeping: every job process seen before the kill,
        // pinned.
        let mut seen = Vec::new();
        let mut read = 0;
        while read < moment {
            let Some(line) = lines.next_line() else { break };
            if let Some(pid) = line.strip_prefix("pid ") {
                let pid: Pid = pid.parse().expect("a pid");
                if let Ok(process) = proctrack::process(pid)
                    && let Ok(handle) = ProcessHandle::open(process.identity())
                {
                    seen.push(handle);
                }
                read += 1;
            } else if line.starts_with("job ") {
                read += 1;
            }
        }
        supervisor
            .signal(Signal::Kill)
            .expect("SIGKILL the supervisor");
        child.wait().expect("reap the supervisor");

        let mut recovering =
            Supervisor::new(options(&db, &name, cgroups)).expect("a new supervisor");
        let report = recovering.recover().expect("recover");
        assert!(report.is_complete(), "trial {trial}: {report:#?}");
        recovered_jobs += report.jobs.len();
        killed += report.killed();
        drop(recovering);

        for handle in &seen {
            assert!(
                handle.wait_timeout(HANG_GUARD).expect("wait"),
                "trial {trial} (kill after {moment} lines): {} survived the recovery",
                handle.pid()
            );
        }
        // Every holder of the pipe is gone.
        while lines.next_line().is_some() {}
        let left = tagged_by(&name);
        assert!(
            left.is_empty(),
            "trial {trial}: tagged processes left: {left:?}"
        );
        let running = runtime().block_on(async {
            let registry = Registry::open(&db).await.expect("open");
            let running = registry.running().await.expect("running rows");
            registry.close().await;
            running
        });
        assert!(
            running.is_empty(),
            "trial {trial}: rows still running: {running:#?}"
        );
        assert_no_descendants();
    }
    eprintln!("50 trials: {recovered_jobs} jobs recovered, {killed} processes killed");
    assert!(recovered_jobs > 0);
}

/// A job its supervisor left running on purpose, as it exited cleanly, is
/// recorded as kept: a later recover leaves it alone.
#[test]
fn a_kept_job_survives_recover() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("jobs.db");
    let name = unique_marker("kept").replace('-', "_");
    for cgroups in [true, false] {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["crashing_supervisor", "--exact", "--ignored", "--nocapture"])
            .env(
                CHILD_VAR,
                format!(
                    "{}\t{name}\t{}\tkeep",
                    db.display(),
                    if cgroups { "on" } else { "off" }
                ),
            )
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the supervisor");
        let mut lines = Lines::new(child.stdout.take().expect("stdout"));
        // Both lines come, in either order (and libtest's among them).
        let (mut pid, mut id): (Option<Pid>, Option<String>) = (None, None);
        while pid.is_none() || id.is_none() {
            let line = lines.line();
            if let Some(text) = line.strip_prefix("pid ") {
                pid = Some(text.parse().expect("a pid"));
            } else if let Some(text) = line.strip_prefix("job ") {
                id = Some(text.to_owned());
            }
        }
        let (pid, id) = (pid.expect("pid"), id.expect("id"));
        let status = child.wait().expect("the supervisor exits");
        assert!(status.success(), "{status:?}");
        let kept = ProcessHandle::open(proctrack::process(pid).expect("kept job").identity())
            .expect("pin");

        let mut recovering = Supervisor::new(options(&db, &name, cgroups)).expect("supervisor");
        let report = recovering.recover().expect("recover");
        assert!(report.jobs.is_empty(), "{report:#?}");
        assert!(
            !kept.has_exited().expect("look"),
            "recover stopped a kept job"
        );
        drop(recovering);
        // Ours to end now (the serial guard would, too).
        kept.signal(Signal::Kill).expect("kill");
        assert!(kept.wait_timeout(HANG_GUARD).expect("wait"));
        // It reparented to us (the serial guard's subreaper): collect it,
        // and remove the cgroup it was left in.
        kept.try_reap().expect("reap");
        if cgroups && let Ok(cgroups) = Cgroup2::locate() {
            let cgroup = JobCgroup::open(cgroups.own_dir(), &id).expect("the kept job's cgroup");
            assert!(cgroup.wait_empty(HANG_GUARD).expect("wait"));
            cgroup.remove().expect("rmdir");
        }
    }
    assert_no_descendants();
}
