//! Subreaper mode: a double-forked, `setsid` daemon started by a tracked
//! child reparents to us, and dies (and is reaped) with the tracked tree.
//!
//! A process with a [`Subreaper`] takes every child it did not spawn through
//! it for an adopted orphan, so this binary spawns only through the subreaper
//! (or registers what it spawns), and its tests run one at a time.
#![cfg(target_os = "linux")]

mod support;

use std::process::{Command, Stdio};

use proctrack::signal::{KillOptions, Subreaper};
use proctrack::{Pid, ProcessIdentity};
use support::{Lines, assert_no_descendants, serial, still_there, wait_child};

#[test]
fn a_double_forked_setsid_daemon_dies_with_the_tree_that_started_it() {
    let _serial = serial();
    let subreaper = Subreaper::install().expect("install");

    // The tracked child starts a daemon the classic way: `setsid` runs a shell
    // in a new session (the first fork is the tracked shell's), which forks
    // the daemon (the second fork), prints both pids and exits. The tracked
    // shell prints `ready` once the middle process is gone, so the daemon has
    // been reparented by then; then it blocks on its stdin.
    let script = r#"
        setsid sh -c 'sleep 1000 </dev/null >/dev/null 2>&1 & echo $!; echo $$'
        echo ready
        read _
    "#;
    let mut spawned = subreaper
        .spawn(
            Command::new("sh")
                .arg("-c")
                .arg(script)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped()),
        )
        .expect("spawn");
    let mut out = Lines::new(spawned.child.stdout.take().expect("stdout"));
    let daemon: Pid = out.line().parse().expect("daemon pid");
    let _middle: Pid = out.line().parse().expect("middle pid");
    assert_eq!(out.line(), "ready");

    let root = spawned.handle.identity();
    let daemon_info = proctrack::process(daemon).expect("the daemon");
    let daemon_id = daemon_info.identity();
    // It left the tree: our child now, in a session of its own.
    assert_eq!(daemon_info.parent(), Some(Pid::current()));
    assert_ne!(
        daemon_info.session(),
        proctrack::process(root.pid()).expect("root").session()
    );
    assert_eq!(
        subreaper
            .adopted(&mut proctrack::table::ProcessTable::new().expect("table"))
            .expect("adopted"),
        vec![daemon_id]
    );

    // Another child of ours, spawned through the subreaper: not an orphan, so
    // not part of the kill.
    let mut bystander = subreaper
        .spawn(Command::new("sleep").arg("1000"))
        .expect("spawn");

    let report = subreaper
        .kill_tree(
            &mut proctrack::table::ProcessTable::new().expect("table"),
            root,
            &KillOptions::new().reap_root(false),
        )
        .expect("kill_tree");
    println!("{report:#?}");
    assert!(report.is_complete(), "{report:#?}");
    assert!(report.was_killed(&root));
    assert!(report.was_killed(&daemon_id));
    assert!(!report.was_killed(&bystander.handle.identity()));
    // The orphan was reaped by the kill; the root is left to its Child.
    assert_eq!(report.reaped, vec![daemon_id]);
    assert_eq!(still_there([daemon_id]), Vec::<ProcessIdentity>::new());
    wait_child(&mut spawned.child);

    assert!(!bystander.handle.has_exited().expect("alive"));
    let report = proctrack::signal::kill_tree(
        &mut proctrack::table::ProcessTable::new().expect("table"),
        bystander.handle.identity(),
        &KillOptions::new().reap_root(false),
    )
    .expect("kill");
    assert!(report.is_complete());
    wait_child(&mut bystander.child);
    assert_eq!(
        subreaper
            .adopted(&mut proctrack::table::ProcessTable::new().expect("table"))
            .expect("adopted"),
        Vec::<ProcessIdentity>::new()
    );
    assert_no_descendants();
}

#[test]
fn adopted_orphans_are_killed_and_reaped_on_their_own() {
    let _serial = serial();
    let subreaper = Subreaper::install().expect("install");
    // The root exits at once, leaving two orphans (one with a child).
    let mut spawned = subreaper
        .spawn(
            Command::new("sh")
                .arg("-c")
                .arg("sleep 1000 & (sleep 1000 & echo inner; exec sleep 1000) & echo ready")
                .stdout(Stdio::piped()),
        )
        .expect("spawn");
    let mut out = Lines::new(spawned.child.stdout.take().expect("stdout"));
    let mut lines = vec![out.line(), out.line()];
    lines.sort();
    assert_eq!(lines, ["inner", "ready"]);
    wait_child(&mut spawned.child);
    let adopted = subreaper
        .adopted(&mut proctrack::table::ProcessTable::new().expect("table"))
        .expect("adopted");
    assert_eq!(adopted.len(), 2, "{adopted:?}");

    let report = subreaper
        .kill_adopted(
            &mut proctrack::table::ProcessTable::new().expect("table"),
            &KillOptions::new().reap_root(false),
        )
        .expect("kill_adopted");
    println!("{report:#?}");
    assert!(report.is_complete(), "{report:#?}");
    assert_eq!(report.killed.len(), 3);
    // All three end up ours (the grandchild once its parent dies) and reaped.
    assert_eq!(report.reaped.len(), 3);
    assert!(
        subreaper
            .reap_adopted(&mut proctrack::table::ProcessTable::new().expect("table"))
            .expect("reap")
            .is_empty()
    );
    assert_no_descendants();
}
