//! Tree kills on live process trees: a tree that keeps forking, graceful
//! mode, kill by working directory, guard rails, EPERM, the kill(2) fallback.
#![cfg(target_os = "linux")]

mod support;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use proctrack::signal::{Backend, Guard, KillOptions, Refusal, kill_cwd, kill_tree};
use proctrack::{Error, Pid, ProcessIdentity};
use support::{SpawnedTree, assert_no_descendants, marked, serial, still_there, unique_marker};

/// Four shells that fork `sleep`s as fast as they can (about one per
/// millisecond each), every tenth with a child of its own; each says `ready`
/// after 20 forks and stops at 300, so that a failed kill cannot exhaust
/// pid_max (32768): at most 4 * 360 + 5 processes.
const FORKER: &str = r#"
forker() {
    i=0
    while [ $i -lt 300 ]; do
        sleep 1000 >/dev/null &
        if [ $((i % 10)) -eq 0 ]; then
            ( sleep 1000 & exec sleep 1000 ) >/dev/null &
        fi
        i=$((i + 1))
        if [ $i -eq 20 ]; then echo ready; fi
    done
    wait
}
forker & forker & forker & forker &
wait
"#;

#[test]
fn a_tree_that_keeps_forking_is_completely_dead_afterwards() {
    let _serial = serial();
    for backend in [
        Backend::Pidfd,
        Backend::CheckedPid,
        Backend::Pidfd,
        Backend::CheckedPid,
    ] {
        let marker = unique_marker("forker");
        let mut tree = SpawnedTree::spawn(
            Command::new("sh")
                .arg("-c")
                .arg(FORKER)
                .env("PROCTRACK_TEST_MARK", &marker)
                .stdin(Stdio::piped()),
        );
        // The forkers are mid-loop when the kill starts.
        for _ in 0..4 {
            tree.wait_ready();
        }

        let report = kill_tree(
            &mut proctrack::table::ProcessTable::new().expect("table"),
            tree.root(),
            &KillOptions::new().reap_root(false).backend(backend),
        )
        .expect("kill_tree");
        let status = tree.wait_root();

        println!(
            "{backend:?}: killed {}, already gone {}, reaped {}, settled {}, confirmed {}",
            report.killed.len(),
            report.already_gone.len(),
            report.reaped.len(),
            report.settled,
            report.confirmed
        );
        assert!(report.settled, "{report:#?}");
        assert!(report.is_complete(), "{report:#?}");
        assert_eq!(report.confirmed, backend == Backend::Pidfd);
        assert!(report.was_killed(&tree.root()));
        assert!(
            report.killed.len() > 50,
            "only {} killed",
            report.killed.len()
        );
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        // No survivor anywhere, no zombie: nothing carries the tree's marker,
        // no member identity exists, and nothing is left under us.
        assert_eq!(marked(&marker), Vec::<Pid>::new());
        assert_eq!(still_there(report.members()), Vec::<ProcessIdentity>::new());
        assert_no_descendants();
    }
}

#[test]
fn graceful_kill_catches_what_the_tree_forks_during_the_grace_period() {
    let _serial = serial();
    // The root survives SIGTERM and forks a fresh sleep in its handler; the
    // first sleep dies of SIGTERM; the second ignores it (`trap '' TERM` in a
    // subshell is inherited by `sleep` across exec).
    let mut tree = SpawnedTree::shell(
        r#"
        sleep 1000 &
        ( trap '' TERM; exec sleep 1000 ) &
        trap 'sleep 1000 & echo forked' TERM
        echo ready
        while :; do wait; done
        "#,
    );
    tree.wait_ready();
    let report = kill_tree(
        &mut proctrack::table::ProcessTable::new().expect("table"),
        tree.root(),
        &KillOptions::graceful(Duration::from_millis(300)).reap_root(false),
    )
    .expect("kill_tree");
    tree.wait_root();
    println!("{report:#?}");
    assert!(report.is_complete(), "{report:#?}");
    // Root, two sleeps, and at least the sleep forked in the handler.
    assert!(report.killed.len() >= 4, "{report:#?}");
    assert_eq!(still_there(report.members()), Vec::<ProcessIdentity>::new());
    assert_no_descendants();
}

#[test]
fn kill_cwd_goes_by_path_components() {
    let _serial = serial();
    let base = tempfile::tempdir().expect("tempdir");
    let ab = base.path().join("ab");
    let abc = base.path().join("abc");
    let deeper = ab.join("x");
    std::fs::create_dir_all(&deeper).expect("mkdir");
    std::fs::create_dir_all(&abc).expect("mkdir");
    let script = "sleep 1000 & echo ready; wait";
    let mut inside = SpawnedTree::shell_in(&ab, script);
    let mut below = SpawnedTree::shell_in(&deeper, script);
    let mut beside = SpawnedTree::shell_in(&abc, script);
    // A process outside the directory whose child stands inside it.
    let mut parent_outside = SpawnedTree::shell_in(
        base.path(),
        "(cd ab && echo ready && exec sleep 1000) & wait",
    );
    for tree in [&mut inside, &mut below, &mut beside, &mut parent_outside] {
        tree.wait_ready();
    }

    let report = kill_cwd(
        &mut proctrack::table::ProcessTable::new().expect("table"),
        &ab,
        &KillOptions::new().reap_root(false),
    )
    .expect("kill_cwd");
    println!("{report:#?}");
    assert!(report.is_complete(), "{report:#?}");
    let killed: HashSet<ProcessIdentity> = report.killed.iter().map(|k| k.identity).collect();
    assert!(killed.contains(&inside.root()));
    assert!(killed.contains(&below.root()));
    assert!(!killed.contains(&beside.root()));
    assert!(!killed.contains(&parent_outside.root()));
    // inside + its sleep, below + its sleep, parent_outside's child.
    assert_eq!(report.killed.len(), 5, "{report:#?}");
    inside.wait_root();
    below.wait_root();

    // The others are untouched.
    assert_eq!(still_there([beside.root(), parent_outside.root()]).len(), 2);
    let rest = kill_tree(
        &mut proctrack::table::ProcessTable::new().expect("table"),
        beside.root(),
        &KillOptions::new().reap_root(false),
    )
    .expect("kill beside");
    assert!(rest.is_complete());
    beside.wait_root();
    let rest = kill_tree(
        &mut proctrack::table::ProcessTable::new().expect("table"),
        parent_outside.root(),
        &KillOptions::new().reap_root(false),
    )
    .expect("kill the last");
    assert!(rest.is_complete());
    parent_outside.wait_root();
    drop((inside, below, beside, parent_outside));
    assert_no_descendants();
}

#[test]
fn guard_rails_refuse_init_ourselves_and_our_ancestors() {
    let _serial = serial();
    let init = proctrack::process(Pid::try_from(1).expect("pid 1"))
        .expect("pid 1")
        .identity();
    let me = proctrack::process(Pid::current()).expect("us").identity();
    let parent_pid = Pid::try_from(std::os::unix::process::parent_id()).expect("parent");
    let parent = proctrack::process(parent_pid).expect("parent").identity();

    for (identity, reason) in [
        (init, Refusal::Init),
        (me, Refusal::OwnProcess),
        (parent, Refusal::Ancestor),
    ] {
        match kill_tree(
            &mut proctrack::table::ProcessTable::new().expect("table"),
            identity,
            &KillOptions::new()
                .reap_root(false)
                .signal(proctrack::signal::Signal::Winch),
        ) {
            Err(Error::Refused { pid, reason: why }) => {
                assert_eq!(pid, identity.pid());
                assert_eq!(why, reason);
            }
            other => panic!("expected a refusal for {identity}, got {other:?}"),
        }
        let handle = proctrack::signal::ProcessHandle::open(identity).expect("open");
        assert!(matches!(
            handle.signal(proctrack::signal::Signal::Winch),
            Err(Error::Refused { .. })
        ));
    }
    // Allowed explicitly: a harmless signal to ourselves goes through
    // (SIGWINCH is ignored by default).
    let handle = proctrack::signal::ProcessHandle::open(me).expect("open");
    let allowed = handle.signal_with(
        proctrack::signal::Signal::Winch,
        &Guard::new().allow_self(true),
    );
    assert_eq!(
        allowed.expect("allowed"),
        proctrack::signal::Delivery::Delivered
    );
}

#[test]
fn eperm_is_reported_per_process_and_does_not_abort_the_kill() {
    if let Err(why) = support::kernel::may_change_uid() {
        eprintln!("skipped: EPERM from another uid cannot be arranged here: {why}");
        return;
    }
    let _serial = serial();
    let mut tree = SpawnedTree::shell("sleep 1000 & sleep 1000 & echo ready; wait");
    tree.wait_ready();
    let root = tree.root();
    // Credentials are per thread in the kernel: a thread that takes the
    // effective uid `nobody` loses CAP_KILL and gets EPERM for root's
    // processes, while the rest of the test process stays root.
    let report = std::thread::spawn(move || {
        let nobody = rustix::process::Uid::from_raw(65534);
        // Real and effective uid: the kernel lets a sender through if either
        // matches the target's.
        rustix::thread::set_thread_res_uid(Some(nobody), Some(nobody), None)
            .expect("setresuid(nobody, nobody, -) for this thread");
        kill_tree(
            &mut proctrack::table::ProcessTable::new().expect("table"),
            root,
            &KillOptions::new()
                .reap_root(false)
                .exit_timeout(Duration::from_millis(100)),
        )
    })
    .join()
    .expect("the unprivileged thread");
    let report = report.expect("kill_tree without permission is a report, not an error");
    println!("{report:#?}");
    assert_eq!(report.denied.len(), 3, "{report:#?}");
    assert!(report.killed.is_empty() && report.survived.is_empty());
    assert!(!report.is_complete());
    // Still alive: kill it for real.
    let report = kill_tree(
        &mut proctrack::table::ProcessTable::new().expect("table"),
        root,
        &KillOptions::new().reap_root(false),
    )
    .expect("kill_tree");
    assert!(report.is_complete(), "{report:#?}");
    assert_eq!(report.killed.len(), 3);
    tree.wait_root();
    drop(tree);
    assert_no_descendants();
}

#[test]
fn a_root_that_is_gone_is_reported_not_killed() {
    let _serial = serial();
    let mut tree = SpawnedTree::shell("echo ready");
    tree.wait_ready();
    tree.wait_root();
    let report = kill_tree(
        &mut proctrack::table::ProcessTable::new().expect("table"),
        tree.root(),
        &KillOptions::new().reap_root(false),
    )
    .expect("kill_tree");
    assert_eq!(report.already_gone, vec![tree.root()]);
    assert!(report.killed.is_empty());
    drop(tree);
    assert_no_descendants();
}

/// Not a test on its own: run by [`a_multithreaded_forker_is_completely_dead_afterwards`]
/// as a child process (this test binary, re-executed), it forks `sleep`s from
/// four threads at once until it is killed (bounded at 4 * 200).
#[test]
fn multithreaded_forker_helper() {
    if std::env::var_os("PROCTRACK_FORKER_HELPER").is_none() {
        return;
    }
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                let mut children = Vec::new();
                for i in 0..200 {
                    children.push(Command::new("sleep").arg("1000").spawn().expect("spawn"));
                    if i == 10 {
                        // After a newline: the test harness leaves its
                        // "test ... " line open while the test runs.
                        println!("\nready");
                    }
                }
                children
            })
        })
        .collect();
    for thread in threads {
        let _children = thread.join();
    }
    println!("done");
    loop {
        std::thread::park();
    }
}

#[test]
fn a_multithreaded_forker_is_completely_dead_afterwards() {
    let _serial = serial();
    let marker = unique_marker("threads");
    let exe = std::env::current_exe().expect("this test binary");
    let mut tree = SpawnedTree::spawn(
        Command::new(exe)
            .args([
                "--exact",
                "multithreaded_forker_helper",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PROCTRACK_FORKER_HELPER", "1")
            .env("PROCTRACK_TEST_MARK", &marker)
            .stdin(Stdio::piped()),
    );
    for _ in 0..4 {
        tree.wait_ready();
    }
    let report = kill_tree(
        &mut proctrack::table::ProcessTable::new().expect("table"),
        tree.root(),
        &KillOptions::new().reap_root(false),
    )
    .expect("kill_tree");
    tree.wait_root();
    println!(
        "killed {}, already gone {}, reaped {}, settled {}",
        report.killed.len(),
        report.already_gone.len(),
        report.reaped.len(),
        report.settled
    );
    assert!(report.settled && report.is_complete(), "{report:#?}");
    assert!(report.killed.len() > 40, "{report:#?}");
    assert_eq!(marked(&marker), Vec::<Pid>::new());
    assert_eq!(still_there(report.members()), Vec::<ProcessIdentity>::new());
    assert_no_descendants();
}
