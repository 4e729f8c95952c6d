//! The process table on live trees this test spawns: descendants, a
//! double-forked daemon found by its working directory, and reparenting when a
//! middle process dies.
#![cfg(target_os = "linux")]

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use proctrack::table::ProcessTable;
use proctrack::{Pid, ProcessInfo};
use rustix::process::{Signal, WaitOptions};
use support::SpawnedTree;

/// Writes `name` into `dir`: a shell script that prints `<tag> <pid>` once it
/// runs and then blocks reading fd 3 (the test's pipe) until it is killed.
fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, body).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A `middle.sh` in `dir` that starts two `leaf.sh` children, each printing
/// `leaf <pid>`, prints `middle <pid>`, and blocks; returns its path.
fn middle_script(dir: &Path) -> String {
    let leaf = script(dir, "leaf.sh", "echo leaf $$\nread _ <&3\n");
    script(
        dir,
        "middle.sh",
        &format!("sh {leaf} <&3 &\nsh {leaf} <&3 &\necho middle $$\nread _ <&3\n"),
    )
}

fn pids_of(lines: &[String], tag: &str) -> BTreeSet<Pid> {
    lines
        .iter()
        .filter_map(|line| line.strip_prefix(tag)?.trim().parse().ok())
        .collect()
}

fn pid_set<'a>(infos: impl IntoIterator<Item = &'a ProcessInfo>) -> BTreeSet<Pid> {
    infos.into_iter().map(ProcessInfo::pid).collect()
}

#[test]
fn a_spawned_tree_is_found_by_descendants() {
    let dir = tempfile::tempdir().unwrap();
    let middle = middle_script(dir.path());
    let mut tree = SpawnedTree::shell(&format!(
        "exec 3<&0\nsh {middle} <&3 &\nsh {middle} <&3 &\necho root $$\nread _ <&3\n"
    ));
    let lines = tree.read_lines(7);
    let (root, middles, leaves) = (
        pids_of(&lines, "root"),
        pids_of(&lines, "middle"),
        pids_of(&lines, "leaf"),
    );
    assert_eq!(
        (root.len(), middles.len(), leaves.len()),
        (1, 2, 4),
        "{lines:?}"
    );
    let root = tree.pid();

    let table = ProcessTable::new().unwrap();
    let descendants = pid_set(table.descendants(root));
    assert_eq!(descendants, middles.union(&leaves).copied().collect());
    assert_eq!(pid_set(table.children(root)), middles);
    // Parents come before their children.
    let order: Vec<Pid> = table.descendants(root).iter().map(|p| p.pid()).collect();
    for leaf in &leaves {
        let parent = table.get(*leaf).and_then(ProcessInfo::parent).unwrap();
        let at = |pid: &Pid| order.iter().position(|p| p == pid).unwrap();
        assert!(at(&parent) < at(leaf));
    }

    let shape = table.tree(root).unwrap();
    assert_eq!(shape.len(), 7);
    assert_eq!(shape.children.len(), 2);
    assert!(
        shape
            .children
            .iter()
            .all(|middle| middle.children.len() == 2)
    );

    let leaf = *leaves.first().unwrap();
    let up: Vec<Pid> = table.ancestors(leaf).iter().map(|p| p.pid()).collect();
    assert!(middles.contains(&up[0]));
    assert_eq!(up[1], root);
    assert_eq!(up[2], Pid::current());
    assert_eq!(up.last().map(|p| p.as_raw()), Some(1));

    support::assert_no_leftovers(&tree.finish());
}

#[test]
fn a_double_forked_daemon_is_found_by_cwd_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("wt/ab");
    let sibling = dir.path().join("wt/abc");
    fs::create_dir_all(work.join("x")).unwrap();
    fs::create_dir_all(&sibling).unwrap();
    let daemon = script(
        dir.path(),
        "daemon.sh",
        "cd x\necho daemon $$\nread _ <&3\n",
    );
    let other = script(dir.path(), "other.sh", "echo other $$\nread _ <&3\n");
    // `starter` forks the daemon into a session of its own and exits at once:
    // the daemon is orphaned and reparented to us, the subreaper.
    let starter = script(
        dir.path(),
        "starter.sh",
        &format!(
            "cd {}\nsetsid sh {daemon} <&3 &\necho starter $$\n",
            work.display()
        ),
    );
    let mut tree = SpawnedTree::shell(&format!(
        "exec 3<&0\nsh {starter} <&3 &\ncd {sibling}\nsh {other} <&3 &\necho root $$\nread _ <&3\n",
        sibling = sibling.display(),
    ));
    let lines = tree.read_lines(4);
    let daemon_pid = *pids_of(&lines, "daemon").first().unwrap();
    let other_pid = *pids_of(&lines, "other").first().unwrap();
    let root_pid = tree.pid();
    // The starter stays an unreaped child of the root shell, so its pidfd
    // tells when it has exited; the kernel moved the daemon to us by then.
    support::wait_for_exit(*pids_of(&lines, "starter").first().unwrap());

    let table = ProcessTable::new().unwrap();
    assert_eq!(
        table.get(daemon_pid).and_then(ProcessInfo::parent),
        Some(Pid::current())
    );
    assert_eq!(
        pid_set(table.find_by_cwd_prefix(&work)),
        BTreeSet::from([daemon_pid]),
        "{lines:?}"
    );
    assert!(!pid_set(table.descendants(root_pid)).contains(&daemon_pid));
    // `/wt/ab` is not a prefix of `/wt/abc`, and vice versa.
    assert_eq!(
        pid_set(table.find_by_cwd_prefix(&sibling)),
        BTreeSet::from([root_pid, other_pid])
    );
    let both = pid_set(table.find_by_cwd_prefix(dir.path().join("wt")));
    assert_eq!(both, BTreeSet::from([root_pid, other_pid, daemon_pid]));

    // The daemon left the tree's process group: the guard cannot see it, so
    // this test kills and reaps it (it is our child now).
    let pid = support::rustix_pid(daemon_pid);
    rustix::process::kill_process(pid, Signal::KILL).unwrap();
    rustix::process::waitpid(Some(pid), WaitOptions::empty()).unwrap();
    support::assert_no_leftovers(&tree.finish());
}

#[test]
fn children_of_a_dead_middle_process_move_to_the_subreaper() {
    let dir = tempfile::tempdir().unwrap();
    let middle = middle_script(dir.path());
    let mut tree = SpawnedTree::shell(&format!(
        "exec 3<&0\nsh {middle} <&3 &\necho root $$\nread _ <&3\n"
    ));
    let lines = tree.read_lines(4);
    let middle = *pids_of(&lines, "middle").first().unwrap();
    let leaves = pids_of(&lines, "leaf");
    let mut table = ProcessTable::new().unwrap();
    assert_eq!(pid_set(table.children(middle)), leaves);

    // The middle process is an unreaped child of the root shell: its pid is
    // pinned until the guard reaps it, so killing it by pid is safe here.
    rustix::process::kill_process(support::rustix_pid(middle), Signal::KILL).unwrap();
    // The kernel moves the children before the exit becomes visible.
    support::wait_for_exit(middle);

    let diff = table.refresh().unwrap();
    for leaf in &leaves {
        assert_eq!(
            table.parent(*leaf).map(ProcessInfo::pid),
            Some(Pid::current())
        );
        let moved = diff
            .reparented
            .iter()
            .find(|r| r.identity.pid() == *leaf)
            .unwrap();
        assert_eq!((moved.from, moved.to), (Some(middle), Some(Pid::current())));
    }
    assert!(pid_set(table.children(Pid::current())).is_superset(&leaves));
    assert!(pid_set(table.descendants(tree.pid())).is_disjoint(&leaves));
    support::assert_no_leftovers(&tree.finish());
}

/// CPU% is part of what the table returns: none after one sample, a value
/// once the table sampled a process twice.
#[test]
fn cpu_percent_comes_with_each_process_after_two_samples() {
    let mut table = ProcessTable::new().unwrap();
    let me = |table: &ProcessTable| table.get(Pid::current()).map(ProcessInfo::cpu_percent);
    assert_eq!(me(&table), Some(None));
    table.refresh().unwrap();
    let cpu = me(&table).flatten().expect("sampled twice");
    assert!(cpu >= 0.0 && cpu.is_finite(), "{cpu}");
}
