//! Tree kills against hostile shapes, live: a chain thousands deep that
//! keeps growing at its tip, a fork storm in which every member forks as
//! fast as it can, members that answer `SIGTERM` by forking and exiting,
//! and a multi-threaded forker whose threads vfork (`posix_spawn`).
//! Each must end with nothing of the tree left, running or stopped, and a
//! report that claims only what it proved.
//!
//! Every process carries a marker in its environment, so that what is left
//! is found wherever it reparented; the test process is a child subreaper
//! (through `SpawnedTree`), so orphans come to it and are reaped.
#![cfg(target_os = "linux")]

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use proctrack::signal::{KillOptions, KillReport, kill_tree};
use proctrack::table::ProcessTable;
use support::{SpawnedTree, assert_no_descendants, marked, serial, unique_marker};

/// Runs `script` (a file, so that each level can run it again) under `sh`
/// with `args`, marked, its stdout piped for readiness lines.
fn spawn_script(marker: &str, script: &str, args: &[&str]) -> (SpawnedTree, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tree.sh");
    let mut file = std::fs::File::create(&path).expect("script");
    file.write_all(script.as_bytes()).expect("write script");
    drop(file);
    let tree = SpawnedTree::spawn(
        Command::new("sh")
            .arg(&path)
            .args(args)
            .env("PROCTRACK_TEST_MARK", marker)
            .stdin(Stdio::null()),
    );
    (tree, dir)
}

/// Kills the tree of `tree`'s root with `options`, then checks the report
/// and that nothing marked is left, running or stopped.
fn kill_and_check(tree: &mut SpawnedTree, marker: &str, options: &KillOptions) -> KillReport {
    let mut table = ProcessTable::new().expect("table");
    let report = kill_tree(&mut table, tree.root(), &options.clone().reap_root(false))
        .expect("the kill runs");
    tree.wait_root_exit();
    let left = marked(marker);
    println!(
        "killed {}, already gone {}, survived {}, denied {}, escaped {}, settled {}; left: {}",
        report.killed.len(),
        report.already_gone.len(),
        report.survived.len(),
        report.denied.len(),
        report.escaped.len(),
        report.settled,
        left.len()
    );
    assert!(left.is_empty(), "left running: {left:?}\n{report}");
    assert!(report.is_complete(), "{report}");
    report
}

/// How many processes fit on this machine now, with room to spare for the
/// rest of the system; the shapes below size themselves to it.
fn room(wanted: usize) -> Option<usize> {
    let pid_max = support::kernel::pid_max() as usize;
    let running = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter(|e| {
            e.as_ref().is_ok_and(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
        })
        .count();
    let free = pid_max.saturating_sub(running + 2000);
    if free < 500 {
        eprintln!("skipped: only {free} pids free (pid_max {pid_max}, {running} processes)");
        return None;
    }
    Some(wanted.min(free / 2))
}

/// A chain: each level runs the next in the background and waits; the one
/// at depth `$2` says `ready`, and the tip goes on growing the chain until
/// depth `$3`, so it is still forking when the kill comes.
const CHAIN: &str = r#"
if [ "$1" -eq "$2" ]; then echo ready; fi
if [ "$1" -lt "$3" ]; then sh "$0" $(($1 + 1)) "$2" "$3" & wait; else exec sleep 1000; fi
"#;

#[test]
fn a_chain_thousands_deep_growing_at_its_tip_is_killed_whole() {
    let _serial = serial();
    let Some(depth) = room(5000) else { return };
    let marker = unique_marker("chain");
    let cap = (depth * 2).to_string();
    let (mut tree, _dir) = spawn_script(&marker, CHAIN, &["0", &depth.to_string(), &cap]);
    tree.wait_ready();
    let report = kill_and_check(&mut tree, &marker, &KillOptions::new());
    assert!(
        report.killed.len() > depth,
        "a chain {depth} deep, {} killed",
        report.killed.len()
    );
    tree.finish();
    assert_no_descendants();
}

/// A storm: every member forks four more, down to `$1` levels, as fast as
/// it can; the leaves sleep. The first leaf says `ready`.
const STORM: &str = r#"
storm() {
    if [ "$1" -eq 0 ]; then echo ready; exec sleep 1000; fi
    for i in 1 2 3 4; do storm $(($1 - 1)) & done
    wait
}
storm "$1"
"#;

#[test]
fn a_fork_storm_is_killed_whole() {
    let _serial = serial();
    // 4^5 leaves and 341 forkers: 1365 processes at most.
    if room(1400).is_none_or(|n| n < 1400) {
        return;
    }
    let marker = unique_marker("storm");
    let (mut tree, _dir) = spawn_script(&marker, STORM, &["5"]);
    // Kill while it still forks: right after the first leaf.
    tree.read_line();
    kill_and_check(&mut tree, &marker, &KillOptions::new());
    tree.finish();
    assert_no_descendants();
}

/// Members that answer `SIGTERM` by starting a new process and exiting: a
/// graceful kill loses them as members (they are gone) and their new
/// children reparent to us. The kill must find those and end them too.
const LEAVERS: &str = r#"
leaver() {
    trap 'sleep 1000 & exit 0' TERM
    echo ready
    while :; do sleep 1000 & wait; done
}
for i in 1 2 3 4 5 6 7 8; do leaver & done
wait
"#;

#[test]
fn members_that_exit_on_sigterm_leaving_children_are_followed() {
    let _serial = serial();
    if room(100).is_none() {
        return;
    }
    let marker = unique_marker("leavers");
    let (mut tree, _dir) = spawn_script(&marker, LEAVERS, &[]);
    tree.read_lines(8);
    let report = kill_and_check(
        &mut tree,
        &marker,
        &KillOptions::graceful(Duration::from_secs(5)),
    );
    // The root, 8 leavers, their 8 sleeps and the 8 orphans they left.
    assert!(report.killed.len() >= 25, "{report}");
    tree.finish();
    assert_no_descendants();
}

/// A multi-threaded forker: python3 with four threads forking at once,
/// each `$1` times. Two use `posix_spawn`, which glibc implements with
/// `clone(CLONE_VM | CLONE_VFORK)`: the thread waits, unkillable by a stop,
/// until its child execs, while the other threads go on. One spawns
/// children that exit at once and reaps them (exits during the kill), one
/// uses plain `fork` and execs a shell that forks once more. Each thread
/// says `ready` after ten children, and goes on.
const THREADED_FORKER: &str = r#"
exec /usr/bin/python3 - "$@" <<'PY'
import os, sys, threading
per_thread = int(sys.argv[1])
env = dict(os.environ)
def spawner(how):
    for i in range(per_thread):
        if how == "posix_spawn":
            os.posix_spawn("/bin/sleep", ["sleep", "1000"], env)
        elif how == "short":
            os.waitpid(os.posix_spawn("/bin/true", ["true"], env), 0)
        else:
            if os.fork() == 0:
                os.execv("/bin/sh", ["sh", "-c", "sleep 1000 & exec sleep 1000"])
        if i == 10:
            os.write(1, b"ready\n")
hows = ("posix_spawn", "posix_spawn", "short", "fork")
threads = [threading.Thread(target=spawner, args=(how,)) for how in hows]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
threading.Event().wait()
PY
"#;

#[test]
fn a_multithreaded_forker_with_vfork_children_is_killed_whole() {
    let _serial = serial();
    // Each of the two spawning threads leaves one process per round, the
    // forking one two: 4 per round at most.
    let Some(room) = room(2000) else { return };
    let per_thread = room / 4;
    if per_thread < 50 {
        eprintln!("skipped: room for only {per_thread} rounds");
        return;
    }
    let marker = unique_marker("vfork");
    let (mut tree, _dir) = spawn_script(&marker, THREADED_FORKER, &[&per_thread.to_string()]);
    // Kill while the threads still fork: once each has made ten children.
    let lines = tree.read_lines(4);
    assert!(lines.iter().all(|l| l == "ready"), "{lines:?}");
    println!("threaded forker, {per_thread} rounds a thread:");
    let report = kill_and_check(&mut tree, &marker, &KillOptions::new());
    // The forker and at least ten children of each kind that stays.
    assert!(report.killed.len() > 40, "{report}");
    tree.finish();
    assert_no_descendants();
}
