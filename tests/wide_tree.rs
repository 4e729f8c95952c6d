//! Parents with thousands of children (issue 18): a children list longer
//! than the kernel hands out in one read (682 pids per read of
//! `task/<tid>/children`) is read whole by every reader of it: the
//! source's children lists, the tracker's subtree rescan, the tree kill.
//!
//! The children come from `support::wide` (a re-executed helper that
//! forks them). Each test checks at run time that the machine can hold
//! them (pid_max, threads-max, RLIMIT_NPROC) and skips with the reason
//! printed if not.
#![cfg(target_os = "linux")]

mod support;

use std::collections::HashSet;

use proctrack::events::{Scope, Tracker, TrackerOptions};
use proctrack::signal::{KillOptions, KillReport, kill_tree};
use proctrack::table::ProcessTable;
use proctrack::{Pid, ProcessIdentity, ProcessSource, SystemSource};
use support::wide::{WideParent, spawn_wide};
use support::{assert_no_descendants, serial, still_there};

/// Not a test on its own: the helper of `support::wide`, run as a child.
#[test]
fn wide_parent_helper() {
    support::wide::helper_main();
}

/// The bytes of every `task/<tid>/children` file of `pid`, each read to its
/// end by std (a loop until a read returns 0), per thread.
fn children_files(pid: Pid) -> Vec<(Pid, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir") {
        let entry = entry.expect("task entry");
        let tid: Pid = entry
            .file_name()
            .to_str()
            .expect("tid")
            .parse()
            .expect("tid");
        let bytes = std::fs::read(entry.path().join("children")).expect("children file");
        out.push((tid, bytes));
    }
    out
}

/// Asserts that `SystemSource::children` lists exactly `expected` for `pid`
/// (counts only in the message: the sets hold thousands).
fn assert_listed(pid: Pid, expected: &HashSet<Pid>) {
    let mut children = Vec::new();
    let mut source = SystemSource::open().expect("open /proc");
    assert!(source.children(pid, &mut children).expect("children"));
    let set: HashSet<Pid> = children.iter().copied().collect();
    println!("SystemSource::children({pid}): {} listed", children.len());
    assert_eq!(set.len(), children.len(), "a child listed twice");
    let missing = expected.difference(&set).count();
    let extra = set.difference(expected).count();
    assert!(
        missing == 0 && extra == 0,
        "{} listed, {} expected: {missing} missing, {extra} not ours",
        set.len(),
        expected.len()
    );
}

/// Kills the helper's tree and checks that every member was killed: the
/// helper and each of its children, none gone before, denied, surviving or
/// refused, and nothing left anywhere afterwards.
fn kill_whole(wide: &mut WideParent) -> KillReport {
    let root = wide.tree.root();
    let report = kill_tree(
        &mut ProcessTable::new().expect("table"),
        root,
        &KillOptions::new().reap_root(false),
    )
    .expect("kill_tree");
    wide.tree.wait_root();
    println!(
        "killed {}, already gone {}, denied {}, survived {}, refused {}, reaped {}, settled {}",
        report.killed.len(),
        report.already_gone.len(),
        report.denied.len(),
        report.survived.len(),
        report.refused.len(),
        report.reaped.len(),
        report.settled
    );
    assert!(
        report.settled && report.is_complete(),
        "settled {}",
        report.settled
    );
    assert_eq!(report.already_gone.len(), 0);
    let killed: HashSet<Pid> = report.killed.iter().map(|k| k.identity.pid()).collect();
    assert_eq!(report.killed.len(), wide.children.len() + 1);
    assert!(killed.contains(&root.pid()));
    let missed: Vec<&Pid> = wide.children.difference(&killed).collect();
    assert!(missed.is_empty(), "{} children not killed", missed.len());
    assert_eq!(still_there(report.members()), Vec::<ProcessIdentity>::new());
    report
}

/// 15 000 children of one thread: a children file of ~90 KB (5 to 6 bytes
/// a pid), over 20 reads of the kernel's page. Listed whole by
/// `SystemSource::children`, found whole by the tracker's subtree rescan,
/// killed whole by a tree kill.
#[test]
fn fifteen_thousand_children_are_listed_rescanned_and_killed() {
    let _serial = serial();
    let Some(mut wide) = spawn_wide(15_000, 1) else {
        return;
    };
    let root = wide.tree.pid();
    let files = children_files(root);
    let bytes: usize = files.iter().map(|(_, text)| text.len()).sum();
    println!(
        "children files of {root}: {bytes} bytes over {} threads",
        files.len()
    );
    assert!(bytes > 64 * 1024, "only {bytes} bytes of children lists");

    // The source's children lists.
    assert_listed(root, &wide.children);

    // The tracker's subtree rescan (its first one, at creation).
    let tracker = Tracker::with_source(
        SystemSource::open().expect("open /proc"),
        Scope::Subtree(root),
        TrackerOptions::default().polling(true),
    )
    .expect("tracker");
    let rows: HashSet<Pid> = tracker.table().iter().map(|info| info.pid()).collect();
    let missing = wide.children.difference(&rows).count();
    println!("the tracker's rescan: {} rows", rows.len());
    assert_eq!(missing, 0, "children the rescan did not find");
    assert!(rows.contains(&root));
    assert_eq!(rows.len(), wide.children.len() + 1, "rows of the subtree");
    drop(tracker);

    // The tree kill.
    kill_whole(&mut wide);
    drop(wide);
    assert_no_descendants();
}

/// A parent with 5000 children (one thread): all 5001 killed, 0 left.
#[test]
fn a_parent_with_5000_children_is_killed_whole() {
    let _serial = serial();
    let Some(mut wide) = spawn_wide(5000, 1) else {
        return;
    };
    assert_listed(wide.tree.pid(), &wide.children);
    kill_whole(&mut wide);
    drop(wide);
    assert_no_descendants();
}

/// 5000 children forked from 5 threads, 1000 each: each thread's own
/// children file lists its 1000 (past the 682 of one read), and all 5001
/// are killed, 0 left.
#[test]
fn five_thousand_children_over_five_threads_are_killed_whole() {
    let _serial = serial();
    let Some(mut wide) = spawn_wide(5000, 5) else {
        return;
    };
    let root = wide.tree.pid();
    assert_eq!(wide.threads.len(), 5);
    let files = children_files(root);
    for &(tid, count) in &wide.threads {
        assert_eq!(count, 1000);
        let (_, text) = files
            .iter()
            .find(|(t, _)| *t == tid)
            .unwrap_or_else(|| panic!("no task {tid}"));
        assert_eq!(
            text.split(|&b| b == b' ').filter(|w| !w.is_empty()).count(),
            1000
        );
    }
    assert_listed(root, &wide.children);
    kill_whole(&mut wide);
    drop(wide);
    assert_no_descendants();
}
