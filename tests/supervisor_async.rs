//! The async supervisor (feature `tokio`): a job's end as a future, a stop
//! from another task, the job event stream of a job that forks, and fork
//! lineage catching a daemon that cleared its environment, called `setsid`
//! and double-forked before any look, with no cgroup.
//!
//! Jobs print readiness lines on a pipe and wait on their stdin for the
//! test's go; every wait is on an event (a line, a pidfd, a stream item)
//! with a hang guard, never a sleep. The serial guard (a child subreaper)
//! kills and reaps whatever a failing test leaves.
#![cfg(all(target_os = "linux", feature = "tokio"))]

mod support;

use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use proctrack::signal::ProcessHandle;
use proctrack::supervisor::{
    AsyncSupervisor, Cgroups, JobEvent, JobEvents, JobId, SupervisorOptions,
};
use proctrack::{Pid, ProcessIdentity};
use support::kernel::connector_allowed;
use support::{HANG_GUARD, Lines, assert_no_descendants, serial, unique_marker};

async fn supervisor(cgroups: Cgroups) -> AsyncSupervisor {
    let name = unique_marker("async").replace('-', "_");
    AsyncSupervisor::new(SupervisorOptions::new(name).cgroups(cgroups))
        .await
        .expect("supervisor")
}

/// The next event of `events` about `job` that `want` accepts; the others
/// it passes over are returned too, in order.
async fn until(
    events: &mut JobEvents,
    job: &JobId,
    want: impl Fn(&JobEvent) -> bool,
) -> (JobEvent, Vec<JobEvent>) {
    let mut passed = Vec::new();
    tokio::time::timeout(HANG_GUARD, async {
        loop {
            let event = events
                .next()
                .await
                .expect("the stream ends only with the supervisor");
            let ours = match &event {
                JobEvent::MemberJoined { job: j, .. }
                | JobEvent::MemberLeft { job: j, .. }
                | JobEvent::Exited { job: j, .. } => j == job,
                _ => false,
            };
            if ours && want(&event) {
                return event;
            }
            if ours {
                passed.push(event);
            }
        }
    })
    .await
    .map(|event| (event, passed))
    .unwrap_or_else(|_| panic!("no such event for {job} within {HANG_GUARD:?}"))
}

/// Writes a line to job `id`'s stdin: its go.
async fn go(supervisor: &AsyncSupervisor, id: &JobId) {
    let id = id.clone();
    supervisor
        .with_supervisor(move |supervisor| {
            let stdin = supervisor
                .child_mut(&id)
                .and_then(|child| child.stdin.as_mut())
                .expect("the job's stdin");
            stdin.write_all(b"go\n").expect("write the go");
        })
        .await
        .expect("with the supervisor");
}

/// Job `id`'s stdout, read line by line.
async fn stdout(supervisor: &AsyncSupervisor, id: &JobId) -> Lines {
    let id = id.clone();
    supervisor
        .with_supervisor(move |supervisor| {
            let child = supervisor.child_mut(&id).expect("spawned here");
            Lines::new(child.stdout.take().expect("piped"))
        })
        .await
        .expect("with the supervisor")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forking_job_shows_joined_left_and_exited_and_its_end_is_a_future() {
    let _serial = serial();
    let supervisor = supervisor(Cgroups::Off).await;
    let mut events = supervisor.events();
    let mut command = supervisor.command("sh").await.expect("command");
    // After a go, a child that prints its pid and, after a second go,
    // exits; then the root exits 3. The child waits so that the tracker
    // can read it: a process that is gone before it is read has no
    // identity to tell (its children still count, by their forker).
    command
        .args(["-c", "read go; sh -c 'echo child $$; read go'; exit 3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let id = supervisor.spawn(command).await.expect("spawn");
    let mut lines = stdout(&supervisor, &id).await;
    let (joined, _) = until(&mut events, &id, |e| {
        matches!(e, JobEvent::MemberJoined { .. })
    })
    .await;
    let root = supervisor
        .job(&id)
        .await
        .expect("status")
        .expect("ours")
        .root;
    assert_eq!(
        joined,
        JobEvent::MemberJoined {
            job: id.clone(),
            process: root
        }
    );

    go(&supervisor, &id).await;
    let child: Pid = lines
        .line()
        .strip_prefix("child ")
        .expect("a pid line")
        .parse()
        .expect("pid");
    // Told by the fork event, or by the next poll where the tracker polls.
    let (child_joined, passed) = until(
        &mut events,
        &id,
        |e| matches!(e, JobEvent::MemberJoined { process, .. } if process.pid() == child),
    )
    .await;
    assert!(passed.is_empty(), "{passed:#?}");
    go(&supervisor, &id).await;
    let status = tokio::time::timeout(HANG_GUARD, supervisor.exited(&id))
        .await
        .expect("the job ends")
        .expect("exited");
    assert_eq!(status.and_then(|s| s.code()), Some(3), "{status:?}");

    let (exited, passed) = until(&mut events, &id, |e| matches!(e, JobEvent::Exited { .. })).await;
    println!(
        "events of {id}: {joined}, {child_joined}, {}, {exited}",
        passed
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let left: Vec<Pid> = passed
        .iter()
        .filter_map(|event| match event {
            JobEvent::MemberLeft { identity, .. } => Some(identity.pid()),
            _ => None,
        })
        .collect();
    assert_eq!(left, [child, root.pid()], "{passed:#?}");
    // A root we spawned is our child: its status is exact, events or not.
    assert_eq!(
        exited,
        JobEvent::Exited {
            job: id.clone(),
            code: Some(3),
            signal: None
        }
    );
    supervisor.shutdown(Duration::ZERO).await.expect("shutdown");
    drop(supervisor);
    assert_no_descendants();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_from_another_task_ends_the_job_and_wakes_exited() {
    let _serial = serial();
    let supervisor = Arc::new(supervisor(Cgroups::Auto).await);
    let mut command = supervisor.command("sh").await.expect("command");
    command
        .args(["-c", "sleep 600 & echo ready; exec sleep 600"])
        .stdout(Stdio::piped());
    let id = supervisor.spawn(command).await.expect("spawn");
    let mut lines = stdout(&supervisor, &id).await;
    assert_eq!(lines.line(), "ready");
    let members = supervisor.members(&id).await.expect("members");
    assert_eq!(members.len(), 2, "{members:#?}");
    let pinned: Vec<ProcessHandle> = members
        .iter()
        .map(|m| ProcessHandle::open(m.process.identity()).expect("pin"))
        .collect();

    let stopper = {
        let supervisor = supervisor.clone();
        let id = id.clone();
        tokio::spawn(async move { supervisor.stop(&id, Duration::from_secs(5)).await })
    };
    let status = tokio::time::timeout(HANG_GUARD, supervisor.exited(&id))
        .await
        .expect("the job ends")
        .expect("exited");
    let report = stopper.await.expect("the stopping task").expect("stop");
    println!("{report}");
    assert!(report.is_complete(), "{report:#?}");
    assert!(status.is_some_and(|s| !s.success()), "{status:?}");
    for handle in &pinned {
        assert!(handle.has_exited().expect("look"), "{} lives", handle.pid());
    }
    while lines.next_line().is_some() {}
    drop(supervisor);
    assert_no_descendants();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_catches_a_daemon_that_cleared_its_tag_and_left_the_tree() {
    let _serial = serial();
    if let Err(why) = connector_allowed() {
        eprintln!("skipped: lineage needs the kernel's fork events: {why}");
        return;
    }
    // No cgroup: the one layer that would hold it anyway.
    let supervisor = supervisor(Cgroups::Off).await;
    let mut events = supervisor.events();
    let mut command = supervisor.command("sh").await.expect("command");
    command
        .args([
            "-c",
            r#"read go; env -i setsid sh -c '(sh -c "echo daemon \$\$; exec sleep 1000" &)'; exec sleep 600"#,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let id = supervisor.spawn(command).await.expect("spawn");
    let mut lines = stdout(&supervisor, &id).await;
    go(&supervisor, &id).await;
    let daemon: Pid = lines
        .line()
        .strip_prefix("daemon ")
        .expect("a pid line")
        .parse()
        .expect("pid");
    let daemon: ProcessIdentity = proctrack::process(daemon).expect("the daemon").identity();
    let pinned = ProcessHandle::open(daemon).expect("pin");
    let (joined, _) = until(
        &mut events,
        &id,
        |e| matches!(e, JobEvent::MemberJoined { process, .. } if *process == daemon),
    )
    .await;
    println!("{joined}");

    // Neither tag, group nor tree: only lineage makes it a member.
    let mut source = proctrack::SystemSource::open().expect("/proc");
    use proctrack::ProcessSource;
    let environ = source.environ(daemon).expect("environ").expect("readable");
    assert!(proctrack::supervisor::tag::job_of(&environ).is_none());
    let members = supervisor.members(&id).await.expect("members");
    let found = members
        .iter()
        .find(|m| m.process.identity() == daemon)
        .unwrap_or_else(|| panic!("the daemon is not a member: {members:#?}"));
    println!("found by {:?}", found.found_by);
    assert!(!found.found_by.tag);

    let report = supervisor
        .stop(&id, Duration::from_secs(5))
        .await
        .expect("stop");
    println!("{report}");
    assert!(report.is_complete(), "{report:#?}");
    assert!(
        report.kill.killed.iter().any(|k| k.identity == daemon),
        "{report:#?}"
    );
    assert!(pinned.wait_timeout(HANG_GUARD).expect("wait"));
    let (exited, _) = until(&mut events, &id, |e| matches!(e, JobEvent::Exited { .. })).await;
    println!("{exited}");
    while lines.next_line().is_some() {}
    drop(supervisor);
    assert_no_descendants();
}

/// Where the tracker polls (forced here; in some containers it must), the
/// stream still tells members that live across a refresh, and the end of
/// a job we spawned with its exact code: the lineage of what forks and
/// exits between two refreshes is what polling loses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_tracker_still_tells_members_that_live_across_a_refresh() {
    let _serial = serial();
    let name = unique_marker("async_poll").replace('-', "_");
    let tracker = proctrack::events::TrackerOptions::default()
        .polling(true)
        .poll_interval(Duration::from_millis(50));
    let supervisor =
        AsyncSupervisor::with_tracker(SupervisorOptions::new(name).cgroups(Cgroups::Off), tracker)
            .await
            .expect("supervisor");
    assert_eq!(
        supervisor.probe().source(),
        proctrack::events::EventSource::Polling
    );
    let mut events = supervisor.events();
    let mut command = supervisor.command("sh").await.expect("command");
    command
        .args(["-c", "sh -c 'echo child $$; read go'; exit 4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let id = supervisor.spawn(command).await.expect("spawn");
    let mut lines = stdout(&supervisor, &id).await;
    let child: Pid = lines
        .line()
        .strip_prefix("child ")
        .expect("a pid line")
        .parse()
        .expect("pid");
    let (joined, _) = until(
        &mut events,
        &id,
        |e| matches!(e, JobEvent::MemberJoined { process, .. } if process.pid() == child),
    )
    .await;
    println!("{joined}");
    go(&supervisor, &id).await;
    let (exited, passed) = until(&mut events, &id, |e| matches!(e, JobEvent::Exited { .. })).await;
    println!("{exited}");
    assert_eq!(
        exited,
        JobEvent::Exited {
            job: id.clone(),
            code: Some(4),
            signal: None
        }
    );
    assert!(
        passed
            .iter()
            .any(|e| matches!(e, JobEvent::MemberLeft { identity, .. } if identity.pid() == child)),
        "{passed:#?}"
    );
    drop(supervisor);
    assert_no_descendants();
}
