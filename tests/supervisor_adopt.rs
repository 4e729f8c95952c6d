//! Adoption after a crash: a supervisor (this test binary, run again as a
//! grandchild) starts a job and is SIGKILLed; a new supervisor of the same
//! name adopts the job, lists its members and usage, and stops it, or
//! waits for it and reads its root's exit code.
//!
//! Between us and the crashing supervisor runs a small reaper (this binary
//! again, a child subreaper that reaps whatever reparents to it): the dead
//! supervisor's orphans go to it, not to us, so the adopted job is not our
//! child, as after a real restart, and nothing is left to pid 1.
#![cfg(all(target_os = "linux", feature = "registry"))]

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use proctrack::Pid;
use proctrack::registry::{JobJournal, Registry};
use proctrack::signal::{ProcessHandle, Signal};
use proctrack::supervisor::{
    AsyncSupervisor, Cgroups, JobEvent, JobId, Supervisor, SupervisorError, SupervisorOptions,
};
use support::kernel::{cgroup2_writable, connector_allowed};
use support::{HANG_GUARD, Lines, assert_no_descendants, serial, unique_marker};

/// Set in the supervisor run: `<registry>\t<name>\t<on|off>\t<job script>`.
const SUPERVISOR_VAR: &str = "PROCTRACK_TEST_ADOPT_SUPERVISOR";
/// Set in the reaper run (with [`SUPERVISOR_VAR`] to pass on).
const REAPER_VAR: &str = "PROCTRACK_TEST_ADOPT_REAPER";

/// A root, a background sleeper and a double-forked `setsid` daemon; each
/// prints its pid.
const FORKING_JOB: &str = r#"
echo pid $$
sleep 600 & echo pid $!
( setsid sh -c 'echo pid $$; exec sleep 600' & )
exec sleep 600"#;

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

/// The reaper: a child subreaper that starts the crashing supervisor and
/// reaps everything that reparents to it, until nothing is left.
#[test]
#[ignore = "the reaper half of the adopt tests; runs only when they start it"]
fn adopt_reaper() {
    if std::env::var_os(REAPER_VAR).is_none() {
        return;
    }
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).expect("subreaper");
    let _supervisor = Command::new(std::env::current_exe().expect("test binary"))
        .args(["crashing_supervisor", "--exact", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env_remove(REAPER_VAR)
        .stdin(Stdio::null())
        .spawn()
        .expect("start the supervisor");
    // Nothing else runs in this process: a wait for any child steals no
    // one's status.
    while let Ok(_) | Err(rustix::io::Errno::INTR) =
        rustix::process::wait(rustix::process::WaitOptions::empty())
    {}
    std::process::exit(0);
}

/// The supervisor that crashes: starts one job, prints its id and its own
/// pid, and waits for the SIGKILL.
#[test]
#[ignore = "the supervisor half of the adopt tests; runs only when they start it"]
fn crashing_supervisor() {
    let Ok(setup) = std::env::var(SUPERVISOR_VAR) else {
        return;
    };
    let mut parts = setup.splitn(4, '\t');
    let (db, name, cgroups, script) = (
        parts.next().expect("db"),
        parts.next().expect("name"),
        parts.next() == Some("on"),
        parts.next().expect("script"),
    );
    let mut supervisor =
        Supervisor::new(options(Path::new(db), name, cgroups)).expect("supervisor");
    let mut command = supervisor.command("sh");
    command.args(["-c", script]).env_remove(SUPERVISOR_VAR);
    let id = supervisor.spawn(command).expect("spawn");
    println!("job {id}");
    println!("supervisor {}", std::process::id());
    // Until the test kills us: stdin is /dev/null, so park instead.
    loop {
        std::thread::park();
    }
}

/// The reaper, the crashing supervisor under it and its job; killed and
/// reaped on drop (the serial guard's sweep is the net under it).
struct Crash {
    reaper: Child,
    lines: Lines,
    job: JobId,
    pids: BTreeSet<Pid>,
    /// The first pid printed (the root's, when it prints first).
    first: Pid,
    /// Pins of the job's processes, taken while the supervisor lived.
    pinned: Vec<ProcessHandle>,
}

impl Crash {
    /// Starts the job, reads its id and `pids` pid lines, pins them, then
    /// SIGKILLs the supervisor and waits until it is gone.
    fn start(db: &Path, name: &str, cgroups: bool, script: &str, pids: usize) -> Crash {
        let mut reaper = Command::new(std::env::current_exe().expect("test binary"))
            .args(["adopt_reaper", "--exact", "--ignored", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(REAPER_VAR, "1")
            .env(
                SUPERVISOR_VAR,
                format!(
                    "{}\t{name}\t{}\t{script}",
                    db.display(),
                    if cgroups { "on" } else { "off" }
                ),
            )
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the reaper");
        let mut lines = Lines::new(reaper.stdout.take().expect("stdout"));
        let (mut job, mut supervisor, mut found) = (None, None, BTreeSet::new());
        let mut first = None;
        while job.is_none() || supervisor.is_none() || found.len() < pids {
            let line = lines.line();
            // libtest's `test crashing_supervisor ... ` may come first.
            let line = line.rsplit(" ... ").next().unwrap_or(&line);
            if let Some(text) = line.strip_prefix("job ") {
                job = Some(text.parse::<JobId>().expect("a job id"));
            } else if let Some(text) = line.strip_prefix("supervisor ") {
                supervisor = Some(text.parse::<Pid>().expect("a pid"));
            } else if let Some(text) = line.strip_prefix("pid ") {
                let pid = text.parse::<Pid>().expect("a pid");
                first.get_or_insert(pid);
                found.insert(pid);
            }
        }
        let pinned = found
            .iter()
            .map(|&pid| {
                let identity = proctrack::process(pid).expect("a job process").identity();
                ProcessHandle::open(identity).expect("pin")
            })
            .collect();
        let supervisor = supervisor.expect("printed");
        let handle = ProcessHandle::open(proctrack::process(supervisor).expect("it").identity())
            .expect("pin the supervisor");
        handle.signal(Signal::Kill).expect("SIGKILL the supervisor");
        assert!(handle.wait_timeout(HANG_GUARD).expect("wait"), "it died");
        Crash {
            reaper,
            lines,
            job: job.expect("printed"),
            pids: found,
            first: first.expect("printed"),
            pinned,
        }
    }

    /// Waits until every job process is gone, every holder of the pipe
    /// closed it and the reaper, with nothing left to reap, exited.
    fn finish(mut self) {
        for handle in &self.pinned {
            assert!(
                handle.wait_timeout(HANG_GUARD).expect("wait"),
                "{} is still alive",
                handle.pid()
            );
        }
        while self.lines.next_line().is_some() {}
        let status = support::wait_child(&mut self.reaper);
        assert!(status.success(), "the reaper: {status:?}");
    }
}

impl Drop for Crash {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for handle in &self.pinned {
                let _ = handle.signal(Signal::Kill);
            }
            let _ = self.reaper.kill();
            let _ = self.reaper.wait();
        }
    }
}

#[test]
fn an_adopted_job_has_its_members_and_usage_and_stops_completely() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("jobs.db");
    let writable = cgroup2_writable();
    if let Err(why) = &writable {
        eprintln!("job cgroups cannot be made here ({why}): only the run without");
    }
    for cgroups in [true, false] {
        if cgroups && writable.is_err() {
            continue;
        }
        let name = unique_marker("adopt").replace('-', "_");
        let crash = Crash::start(&db, &name, cgroups, FORKING_JOB, 3);
        let id = crash.job.clone();

        let mut adopter = Supervisor::new(options(&db, &name, cgroups)).expect("supervisor");
        assert_eq!(adopter.adoptable().expect("adoptable"), vec![id.clone()]);
        let job = adopter.adopt(&id).expect("adopt");
        assert!(job.is_adopted());
        let cgroup = job.cgroup().map(Path::to_path_buf);
        assert_eq!(cgroup.is_some(), cgroups, "{}", job.containment());
        println!("adopted {id}: {}", job.containment());
        assert!(adopter.child_mut(&id).is_none());

        let members = adopter.members(&id).expect("members");
        let pids: BTreeSet<Pid> = members.iter().map(|m| m.process.pid()).collect();
        assert_eq!(pids, crash.pids, "{members:#?}");
        let usage = adopter.usage(&id).expect("usage");
        assert_eq!(usage.processes, 3, "{usage:?}");
        println!("members {pids:?}, usage {usage:?}");

        // Another supervisor of the name, while we run: the job is ours.
        let mut other = Supervisor::new(options(&db, &name, cgroups)).expect("supervisor");
        let report = other.recover().expect("recover");
        assert!(report.jobs.is_empty(), "{report:#?}");
        assert!(matches!(
            other.adopt(&id),
            Err(SupervisorError::NotAdoptable { .. })
        ));
        drop(other);
        assert_eq!(adopter.members(&id).expect("members").len(), 3);

        let report = adopter.stop(&id, Duration::from_secs(5)).expect("stop");
        println!("{report}");
        assert!(report.is_complete(), "{report:#?}");
        assert!(adopter.members(&id).expect("members").is_empty());
        if let Some(cgroup) = cgroup {
            assert!(!cgroup.exists(), "{} is left", cgroup.display());
        }
        let running = runtime().block_on(async {
            let registry = Registry::open(&db).await.expect("open");
            let running = registry.running().await.expect("rows");
            registry.close().await;
            running
        });
        assert!(running.is_empty(), "{running:#?}");
        drop(adopter);
        crash.finish();
    }
    assert_no_descendants();
}

#[test]
fn a_wait_on_an_adopted_job_gives_the_roots_exit_code_from_the_kernel() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("jobs.db");
    let fifo = dir.path().join("go");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    // The root waits for a line on the fifo, then exits 7.
    let script = format!("echo pid $$; read line < '{}'; exit 7", fifo.display());
    let name = unique_marker("adopt_wait").replace('-', "_");
    let crash = Crash::start(&db, &name, false, &script, 1);
    let id = crash.job.clone();

    let mut adopter = Supervisor::new(options(&db, &name, false)).expect("supervisor");
    adopter.adopt(&id).expect("adopt");
    assert_eq!(adopter.try_wait(&id).expect("try_wait"), None);
    std::fs::write(&fifo, "go\n").expect("write the fifo");
    let status = adopter.wait(&id, Some(HANG_GUARD)).expect("wait");
    let job = adopter.job(&id).expect("ours");
    assert!(job.is_finished());
    match connector_allowed() {
        Ok(()) => assert_eq!(status.and_then(|s| s.code()), Some(7), "{status:?}"),
        Err(why) => {
            eprintln!("not checking the exit code: {why}");
            assert_eq!(status, None);
        }
    }
    println!("adopted job {id} exited: {status:?}");
    drop(adopter);
    crash.finish();
    assert_no_descendants();
}

/// The root exits after the crash, leaving a background sleeper (in the
/// root's process group) and a `setsid` daemon: the job is adopted all the
/// same, with the daemon, which leads a process group, as its root.
#[test]
fn a_job_whose_root_is_gone_is_adopted_by_its_members() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("jobs.db");
    let fifo = dir.path().join("go");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let script = format!(
        "echo pid $$\nsleep 600 & echo pid $!\n( setsid sh -c 'echo pid $$; exec sleep 600' & )\nread line < '{}'; exit 0",
        fifo.display()
    );
    let name = unique_marker("adopt_rootless").replace('-', "_");
    let cgroups = cgroup2_writable().is_ok();
    let crash = Crash::start(&db, &name, cgroups, &script, 3);
    let id = crash.job.clone();
    let root = crash
        .pinned
        .iter()
        .find(|h| h.pid() == crash.first)
        .expect("the root's pin");
    std::fs::write(&fifo, "go\n").expect("write the fifo");
    assert!(
        root.wait_timeout(HANG_GUARD).expect("wait"),
        "the root exits"
    );
    let left: BTreeSet<Pid> = crash
        .pids
        .iter()
        .copied()
        .filter(|&p| p != crash.first)
        .collect();
    let daemon = left
        .iter()
        .map(|&pid| proctrack::process(pid).expect("a member"))
        .find(|p| p.process_group() == Some(p.pid()))
        .expect("the setsid daemon leads its group");

    let mut adopter = Supervisor::new(options(&db, &name, cgroups)).expect("supervisor");
    let job = adopter.adopt(&id).expect("adopt");
    assert_eq!(job.root(), daemon.identity(), "{}", job.containment());
    println!(
        "adopted {id} with root {}: {}",
        job.root(),
        job.containment()
    );
    let members = adopter.members(&id).expect("members");
    let pids: BTreeSet<Pid> = members.iter().map(|m| m.process.pid()).collect();
    assert_eq!(pids, left, "{members:#?}");
    let report = adopter.stop(&id, Duration::from_secs(5)).expect("stop");
    println!("{report}");
    assert!(report.is_complete(), "{report:#?}");
    drop(adopter);
    crash.finish();
    assert_no_descendants();
}

/// The async face adopts: the job's root joins the stream, and its exit
/// code 7 (from the tracker task's exit event) comes out of `exited` and
/// the stream's `Exited`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_face_adopts_streams_and_tells_the_roots_exit_code() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("jobs.db");
    let fifo = dir.path().join("go");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let script = format!("echo pid $$; read line < '{}'; exit 7", fifo.display());
    let name = unique_marker("adopt_async").replace('-', "_");
    let crash = Crash::start(&db, &name, false, &script, 1);
    let id = crash.job.clone();

    let (db2, name2) = (db.clone(), name.clone());
    let options = tokio::task::spawn_blocking(move || options(&db2, &name2, false))
        .await
        .expect("options");
    let supervisor = AsyncSupervisor::new(options).await.expect("supervisor");
    let mut events = supervisor.events();
    assert_eq!(
        supervisor.adoptable().await.expect("adoptable"),
        std::slice::from_ref(&id)
    );
    supervisor.adopt(&id).await.expect("adopt");
    let joined = next(&mut events).await;
    assert!(
        matches!(&joined, JobEvent::MemberJoined { job, process } if *job == id && process.pid() == crash.first),
        "{joined:?}"
    );
    std::fs::write(&fifo, "go\n").expect("write the fifo");
    let status = tokio::time::timeout(HANG_GUARD, supervisor.exited(&id))
        .await
        .expect("it ends")
        .expect("exited");
    let left = next(&mut events).await;
    let exited = next(&mut events).await;
    println!("{joined}\n{left}\n{exited}");
    assert!(matches!(left, JobEvent::MemberLeft { .. }), "{left:?}");
    match connector_allowed() {
        Ok(()) => {
            assert_eq!(status.and_then(|s| s.code()), Some(7), "{status:?}");
            assert_eq!(
                exited,
                JobEvent::Exited {
                    job: id.clone(),
                    code: Some(7),
                    signal: None
                }
            );
        }
        Err(why) => eprintln!("not checking the exit code: {why}"),
    }
    drop(supervisor);
    crash.finish();
    assert_no_descendants();
}

/// The next job event, within the hang guard.
async fn next(events: &mut proctrack::supervisor::JobEvents) -> JobEvent {
    tokio::time::timeout(HANG_GUARD, events.next())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
}
