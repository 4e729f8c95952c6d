//! Tree kills against hostile shapes, live: a chain thousands deep that
//! keeps growing at its tip, a fork storm in which every member forks as
//! fast as it can, members that answer `SIGTERM` by forking and exiting,
//! a multi-threaded forker whose threads vfork (`posix_spawn`), and a tree
//! that execs setuid helpers its (unprivileged) killer may not signal.
//! Each must end with nothing of the tree left, running or stopped (but
//! what the killer may not signal, reported `denied`), and a report that
//! claims only what it proved.
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
    spawn_script_as(marker, script, args, None)
}

/// [`spawn_script`], started as `uid` (and the same gid) when given; the
/// script's directory is then readable by everyone.
fn spawn_script_as(
    marker: &str,
    script: &str,
    args: &[&str],
    uid: Option<u32>,
) -> (SpawnedTree, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tree.sh");
    let mut file = std::fs::File::create(&path).expect("script");
    file.write_all(script.as_bytes()).expect("write script");
    drop(file);
    let mut command = Command::new("sh");
    command
        .arg(&path)
        .args(args)
        .env("PROCTRACK_TEST_MARK", marker)
        .current_dir(dir.path())
        .stdin(Stdio::null());
    if let Some(uid) = uid {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the script's directory");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .expect("chmod the script");
        // std drops root's supplementary groups when it sets the uid.
        command.uid(uid).gid(uid);
    }
    let tree = SpawnedTree::spawn(&mut command);
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

/// A multi-threaded forker: python3 with four threads forking at once, each
/// `$1` times. Two use `posix_spawn`, which glibc implements with
/// `clone(CLONE_VM | CLONE_VFORK)`: the calling thread waits in the kernel
/// until its child execs. One spawns children that exit at once and reaps
/// them (exits during the kill), one uses plain `fork` and execs a shell
/// that forks once more. Each says `ready` after ten children, and goes on.
/// (CPython holds its lock through `fork` and `posix_spawn`: the threads
/// take turns in them, each from its own kernel thread.)
///
/// Before that, the shell starts a child stuck in the vfork window: a
/// python3 whose `posix_spawn` child must open a FIFO nobody writes to
/// before it execs, so it never does, and its parent never returns from
/// the vfork wait. Once the kernel lists that child, the shell prints
/// `stuck PARENT CHILD`.
const THREADED_FORKER: &str = r#"
fifo="$(dirname "$0")/fifo"
mkfifo "$fifo"
/usr/bin/python3 -c '
import os, sys
blocked = [(os.POSIX_SPAWN_OPEN, 0, sys.argv[1], os.O_RDONLY, 0)]
os.posix_spawn("/bin/sleep", ["sleep", "1000"], os.environ, file_actions=blocked)
' "$fifo" &
stuck=$!
child=
while [ -z "$child" ]; do read -r child < /proc/$stuck/task/$stuck/children; done
echo "stuck $stuck $child"
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
    // Kill while the threads still fork: once the stuck vfork child exists
    // and each thread has made ten children.
    let stuck: Vec<proctrack::Pid> = tree
        .read_line()
        .and_then(|line| {
            let pids = line.strip_prefix("stuck ")?.split_whitespace();
            pids.map(|pid| pid.parse().ok()).collect()
        })
        .expect("stuck PARENT CHILD");
    let lines = tree.read_lines(4);
    assert!(lines.iter().all(|l| l == "ready"), "{lines:?}");
    println!("threaded forker, {per_thread} rounds a thread, stuck in vfork: {stuck:?}");
    let report = kill_and_check(&mut tree, &marker, &KillOptions::new());
    // The forker and at least ten children of each kind that stays.
    assert!(report.killed.len() > 40, "{report}");
    for pid in &stuck {
        assert!(
            report.killed.iter().any(|k| k.identity.pid() == *pid),
            "{pid}, stuck in the vfork window, was killed\n{report}"
        );
    }
    tree.finish();
    assert_no_descendants();
}

/// A tree of uid `$2` (the killer's own) that runs setuid helpers which
/// become uid `$3`: `$1` is a setuid-root copy of `setpriv`. Each member
/// prints `own PID` or `other PID` once it runs as its final user; the
/// root prints `ready` once it started them all.
const SETUID_HELPERS: &str = r#"
helper=$1 other=$3
sh -c 'echo "own $$"; exec sleep 1000' &
sh -c 'sh -c '\''echo "own $$"; exec sleep 1000'\'' & echo "own $$"; wait' &
"$helper" --reuid "$other" --regid "$other" --clear-groups sh -c 'echo "other $$"; exec sleep 1000' &
"$helper" --reuid "$other" --regid "$other" --clear-groups \
    sh -c 'sh -c '\''echo "other $$"; exec sleep 1000'\'' & echo "other $$"; wait' &
echo ready
wait
"#;

/// A tree of the killer's own uid in which setuid helpers made some members
/// another user's: the killer, not root, may not signal those. They are
/// reported `denied`, never `killed`; the report is not complete and says
/// so; everything the killer may signal is gone. Then root ends the rest.
#[test]
fn setuid_helpers_it_may_not_signal_are_denied_and_the_rest_is_killed() {
    const USER: u32 = 65533;
    const OTHER: u32 = 65534;
    if let Err(why) = support::kernel::may_change_uid() {
        eprintln!("skipped: another uid cannot be arranged here: {why}");
        return;
    }
    let helper_dir = tempfile::tempdir().expect("tempdir");
    let helper = match support::kernel::setuid_helper(helper_dir.path(), USER, OTHER) {
        Ok(helper) => helper,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let _serial = serial();
    let marker = unique_marker("setuid");
    let (mut tree, _dir) = spawn_script_as(
        &marker,
        SETUID_HELPERS,
        &[
            helper.to_str().expect("a UTF-8 path"),
            &USER.to_string(),
            &OTHER.to_string(),
        ],
        Some(USER),
    );
    // Six lines in any order: three members of each user, and ready.
    let mut own = Vec::new();
    let mut other = Vec::new();
    let mut ready = false;
    while !(ready && own.len() == 3 && other.len() == 3) {
        let line = tree.read_line().expect("the tree reports");
        let pid = |word: &str| word.parse::<proctrack::Pid>().expect("a pid");
        match line.split_once(' ') {
            Some(("own", word)) => own.push(pid(word)),
            Some(("other", word)) => other.push(pid(word)),
            _ if line == "ready" => ready = true,
            _ => panic!("unexpected line {line:?}"),
        }
    }
    other.sort_unstable();

    // The killer: a thread of this process that became uid USER for good
    // (credentials are per thread in the kernel; see signal_tree.rs), so it
    // has no CAP_KILL and may signal only its own uid's processes.
    let root = tree.root();
    let report = std::thread::spawn(move || {
        let user = rustix::process::Uid::from_raw(USER);
        rustix::thread::set_thread_res_uid(Some(user), Some(user), Some(user))
            .expect("setresuid for this thread");
        kill_tree(
            &mut ProcessTable::new().expect("table"),
            root,
            &KillOptions::new().reap_root(false),
        )
    })
    .join()
    .expect("the unprivileged killer")
    .expect("kill_tree without permission is a report, not an error");
    tree.wait_root_exit();
    let left = marked(&marker);
    print!("{report}");
    println!(
        "setuid helpers: killed {}, already gone {}, survived {}, denied {}, escaped {}, \
         settled {}; left: {} (uid {OTHER}: {other:?})",
        report.killed.len(),
        report.already_gone.len(),
        report.survived.len(),
        report.denied.len(),
        report.escaped.len(),
        report.settled,
        left.len()
    );
    let mut denied: Vec<proctrack::Pid> = report.denied.iter().map(|d| d.pid()).collect();
    denied.sort_unstable();
    assert_eq!(
        denied, other,
        "the other uid's members are denied\n{report}"
    );
    assert!(!report.is_complete(), "{report}");
    for pid in &other {
        assert!(
            !report.killed.iter().any(|k| k.identity.pid() == *pid),
            "{pid} denied, never killed\n{report}"
        );
    }
    // Display names each denied member on a `denied` line.
    let shown = report.to_string();
    for pid in &other {
        assert!(
            shown
                .lines()
                .any(|l| l.starts_with("denied")
                    && l.split_whitespace().any(|w| w == pid.to_string())),
            "{pid} on a denied line:\n{shown}"
        );
    }
    // Everything the killer may signal is gone: only the denied are left.
    let mut left = left;
    left.sort_unstable();
    assert_eq!(left, other, "only uid {OTHER}'s members are left\n{report}");
    let mut killed: Vec<proctrack::Pid> = report.killed.iter().map(|k| k.identity.pid()).collect();
    killed.sort_unstable();
    own.push(root.pid());
    own.sort_unstable();
    assert_eq!(killed, own, "the root and its own uid's members\n{report}");

    // Root ends the rest, through the same engine.
    for identity in &report.denied {
        let mut table = ProcessTable::new().expect("table");
        if table.get_identity(*identity).is_none() {
            continue; // under another denied member, already killed
        }
        let cleanup = kill_tree(&mut table, *identity, &KillOptions::new()).expect("kill_tree");
        assert!(
            cleanup.denied.is_empty() && cleanup.survived.is_empty(),
            "{cleanup}"
        );
    }
    assert_eq!(marked(&marker), Vec::<proctrack::Pid>::new());
    tree.finish();
    assert_no_descendants();
}
