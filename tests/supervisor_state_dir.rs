//! The state directory as a journal, seen from another supervisor: a job
//! whose supervisor instance is gone is listed as orphaned with every
//! process, found by tag and tree, and `recover_matching` stops exactly it.
//!
//! The dead instance is real: a child process that has exited and been
//! reaped, whose pid and start time name the job. The job itself is a
//! tagged shell with two sleepers that we start here.
#![cfg(target_os = "linux")]

mod support;

use std::process::{Child, Command, Stdio};

use proctrack::signal::ProcessHandle;
use proctrack::supervisor::{
    Cgroups, JobId, JobRecord, Journal, RecoverFilter, StateDir, Supervisor, SupervisorOptions,
    journaled_jobs, tag,
};
use proctrack::table::ProcessTable;
use proctrack::{Pid, ProcessIdentity};
use support::{HANG_GUARD, Lines, become_subreaper, serial};

/// The processes a test started, killed and reaped even when it fails.
struct Started {
    child: Child,
    pins: Vec<ProcessHandle>,
}

impl Drop for Started {
    fn drop(&mut self) {
        for pin in &self.pins {
            let _ = pin.signal(proctrack::signal::Signal::Kill);
            let _ = pin.wait_timeout(HANG_GUARD);
            let _ = pin.try_reap();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A job id whose supervisor instance has exited: a child's identity,
/// taken while it lived, then reaped.
fn dead_instance_id(name: &str) -> JobId {
    let mut child = Command::new("true").spawn().expect("spawn");
    let instance = proctrack::process(Pid::try_from(child.id()).expect("pid"))
        .expect("a zombie at worst")
        .identity();
    child.wait().expect("reap");
    format!(
        "{name}.{}-{}.1",
        instance.pid(),
        instance.start_time().as_raw()
    )
    .parse()
    .expect("a job id")
}

/// A job of three processes (a shell and two sleepers) carrying `id`'s
/// tag, written down in `state` as if its supervisor had started it.
fn orphan(state: &mut StateDir, id: &JobId) -> (Started, ProcessIdentity) {
    let mut command = Command::new("sh");
    command
        .args(["-c", "sleep 1000 & sleep 1000 & echo ready; wait"])
        .stdout(Stdio::piped());
    tag::set(&mut command, id.as_str());
    let mut child = command.spawn().expect("spawn the job");
    let mut lines = Lines::new(child.stdout.take().expect("piped"));
    let root = proctrack::process(Pid::try_from(child.id()).expect("pid"))
        .expect("running")
        .identity();
    let mut started = Started {
        child,
        pins: Vec::new(),
    };
    assert_eq!(lines.line(), "ready");
    let table = ProcessTable::new().expect("table");
    started.pins = table
        .descendants(root.pid())
        .iter()
        .map(|p| ProcessHandle::open(p.identity()).expect("pin"))
        .collect();
    assert_eq!(started.pins.len(), 2, "two sleepers");
    let record = JobRecord::new(
        id.clone(),
        root,
        root.pid(),
        None,
        vec!["sh".into(), "-c".into(), "sleep 1000 & ...".into()],
    );
    state.started(&record).expect("write the job down");
    (started, root)
}

#[test]
fn an_orphaned_job_is_listed_whole_and_stopped_alone() {
    let _serial = serial();
    become_subreaper();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut state = StateDir::new(dir.path());
    let name = format!("statedir_{}", std::process::id());
    let id = dead_instance_id(&name);
    let (mut started, root) = orphan(&mut state, &id);
    // A second orphan of the same name that the filter leaves alone.
    let other = dead_instance_id(&name);
    let (mut spared, _) = orphan(&mut state, &other);

    let mut table = ProcessTable::new().expect("table");
    let jobs = journaled_jobs(&mut table, state.scan().expect("scan").records);
    let job = jobs.iter().find(|j| j.record.id == id).expect("listed");
    assert!(job.is_orphaned() && job.this_boot, "{job:#?}");
    assert_eq!(job.members.len(), 3, "{:#?}", job.members);
    assert_eq!(job.usage.processes, 3);
    assert!(job.members.iter().all(|m| m.found_by.tag), "{job:#?}");
    assert!(job.members.iter().any(|m| m.process.identity() == root));

    let mut supervisor = Supervisor::new(
        SupervisorOptions::new(name.as_str())
            .cgroups(Cgroups::Off)
            .journal(state.clone()),
    )
    .expect("supervisor");
    let report = supervisor
        .recover_matching(&RecoverFilter::jobs([id.clone()]))
        .expect("recover");
    assert_eq!(report.jobs.len(), 1, "{report:#?}");
    assert_eq!(report.jobs[0].id, id);
    assert_eq!(report.killed(), 3, "{report:#?}");
    assert!(report.is_complete(), "{report:#?}");
    for pin in &started.pins {
        assert!(pin.has_exited().expect("look"), "{} survived", pin.pid());
    }
    let _ = started.child.wait();
    // Its file is gone; the other job's is not, and it still runs.
    let left = state.scan().expect("scan").records;
    assert_eq!(left.iter().map(|r| &r.id).collect::<Vec<_>>(), vec![&other]);
    assert!(spared.pins.iter().all(|p| !p.has_exited().expect("look")));

    // A job whose instance still runs (a sleeper of ours stands in for a
    // live `proctrack run`) is listed as such, and left alone by recover,
    // which stops the other orphan.
    let instance = Started {
        child: Command::new("sleep").arg("1000").spawn().expect("spawn"),
        pins: Vec::new(),
    };
    let me = proctrack::process(Pid::try_from(instance.child.id()).expect("pid"))
        .expect("running")
        .identity();
    let live: JobId = format!("{name}.{}-{}.1", me.pid(), me.start_time().as_raw())
        .parse()
        .expect("a job id");
    let (running, _) = orphan(&mut state, &live);
    table.refresh().expect("refresh");
    let jobs = journaled_jobs(&mut table, state.scan().expect("scan").records);
    let job = jobs.iter().find(|j| j.record.id == live).expect("listed");
    assert!(job.supervisor_alive && !job.is_orphaned(), "{job:#?}");
    let report = supervisor.recover().expect("recover the rest");
    assert_eq!(report.jobs.len(), 1, "{report:#?}");
    assert_eq!(report.jobs[0].id, other);
    assert_eq!(report.killed(), 3, "{report:#?}");
    let _ = spared.child.wait();
    assert!(running.pins.iter().all(|p| !p.has_exited().expect("look")));

    // Named, it is still its running supervisor's.
    let report = supervisor
        .recover_matching(&RecoverFilter::jobs([live.clone()]))
        .expect("recover names a live instance's job");
    assert!(report.jobs.is_empty(), "{report:#?}");
    drop(instance);
    drop(running);
}
