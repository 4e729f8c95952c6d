#![cfg(target_os = "macos")]
//! The macOS reader against live processes. Compiled (type-checked) on Linux
//! with `--target x86_64-apple-darwin`; it runs only on a Mac.
//!
//! Every child a test starts is killed and waited for before the test ends
//! (the [`Child`] guard below does it on every path, panics included).

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proctrack::signal::ProcessHandle;
use proctrack::table::ProcessTable;
use proctrack::{Cwd, Error, Liveness, Pid, ProcessSource, State, SystemSource};

/// A non-UTF-8 argument.
const NOT_UTF8: &[u8] = b"\xffproctrack\xfe arg";
/// Prints one line once the shell runs (so its arguments are in place), then
/// blocks on stdin. `/bin/bash` rather than `/bin/sh`, which on macOS is a
/// shim that execs the shell `/private/var/select/sh` names.
const SCRIPT: &str = "echo ready; read _";
const SHELL: &str = "/bin/bash";

/// A started shell, killed and reaped on drop.
struct Child {
    child: std::process::Child,
    /// Kept open for the child's life.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Child {
    fn start(args: &[&OsStr], cwd: &Path) -> Child {
        let mut child = Command::new(SHELL)
            .arg("-c")
            .arg(SCRIPT)
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the shell");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the ready line");
        assert_eq!(line, "ready\n");
        Child {
            child,
            _stdout: stdout,
        }
    }

    fn pid(&self) -> Pid {
        Pid::try_from(self.child.id()).expect("a child pid is valid")
    }

    /// SIGKILL without reaping: the child stays a zombie until `reap`.
    fn kill(&mut self) {
        self.child.kill().expect("kill the child");
    }

    fn reap(&mut self) {
        self.child.wait().expect("reap the child");
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn canonical(path: &Path) -> PathBuf {
    // /var is a symlink to /private/var; the kernel reports the real path.
    path.canonicalize().expect("canonicalize")
}

#[test]
fn reads_itself() {
    let mut reader = SystemSource::open().expect("open");
    assert_ne!(reader.boot_id().as_bytes(), &[0; 16]);
    let me = reader.process(Pid::current()).expect("read self");
    assert_eq!(me.pid(), Pid::current());
    assert_eq!(
        me.parent().map(Pid::as_u32),
        Some(std::os::unix::process::parent_id())
    );
    assert!(!me.name().is_empty());
    assert!(matches!(me.state(), State::Running | State::Sleeping));
    assert!(me.rss_bytes() > 0);
    assert!(me.threads() >= 1);
    assert!(!me.is_kernel_thread());
    let args: Vec<OsString> = std::env::args_os().collect();
    assert_eq!(me.cmdline().to_vec(), args);
    let cwd = canonical(&std::env::current_dir().expect("cwd"));
    assert_eq!(me.cwd(), &Cwd::Path(cwd));
    // The start time is the same on every read, whichever call made it.
    let again = reader.process(Pid::current()).expect("read self again");
    assert_eq!(again.identity(), me.identity());
    let sample = ProcessSource::sample(&mut reader, Pid::current()).expect("sample");
    assert_eq!(sample.start_time, me.start_time());
    // Microseconds since the epoch, and not in the future.
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_micros();
    assert!(u128::from(me.start_time().as_raw()) <= now_us);
    assert!(u128::from(me.start_time().as_raw()) > now_us - 24 * 3600 * 1_000_000);
}

#[test]
fn cpu_time_is_in_nanoseconds() {
    // On Apple Silicon the kernel counts in 1/24 MHz ticks: unconverted, a
    // quarter second of work would read as 6 ms.
    let mut reader = SystemSource::open().expect("open");
    let before = reader.process(Pid::current()).expect("read").cpu_time();
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < Duration::from_millis(250) {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    let used = reader.process(Pid::current()).expect("read").cpu_time() - before;
    assert!(used >= Duration::from_millis(150), "{used:?}");
    assert!(used <= Duration::from_secs(5), "{used:?}");
}

#[test]
fn reads_a_child_until_it_is_reaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = [
        OsStr::new("proctrack-mac"),
        OsStr::new("a b"),
        OsStr::from_bytes(NOT_UTF8),
        OsStr::new(""),
    ];
    let mut child = Child::start(&args, dir.path());
    let pid = child.pid();
    let mut reader = SystemSource::open().expect("open");

    let mut pids = Vec::new();
    reader.list_pids(&mut pids).expect("list");
    assert!(pids.contains(&pid) && pids.contains(&Pid::current()));
    assert!(pids.is_sorted());

    let info = reader.process(pid).expect("read the child");
    let mut want = vec![OsString::from(SHELL), "-c".into(), SCRIPT.into()];
    want.extend(args.iter().map(|a| a.to_os_string()));
    assert_eq!(info.cmdline().to_vec(), want);
    assert_eq!(info.cwd(), &Cwd::Path(canonical(dir.path())));
    assert_eq!(info.parent(), Some(Pid::current()));
    assert_eq!(info.name(), "bash");
    assert_eq!(reader.exists(pid).expect("exists"), Liveness::Alive);
    assert_eq!(
        reader.read_cwd(info.identity()).expect("cwd by identity"),
        Cwd::Path(canonical(dir.path()))
    );

    // The exit is an event (kqueue NOTE_EXIT through the handle): no polling.
    let handle = ProcessHandle::from_child(&child.child).expect("handle on the child");
    child.kill();
    assert!(
        handle
            .wait_timeout(Duration::from_secs(10))
            .expect("wait for the exit"),
        "the child did not exit after SIGKILL"
    );
    assert_eq!(reader.exists(pid).expect("exists"), Liveness::Zombie);
    let zombie = reader.process(pid).expect("read the zombie");
    assert_eq!(zombie.identity(), info.identity());
    assert_eq!(zombie.state(), State::Zombie);
    assert!(zombie.cmdline().is_empty());

    child.reap();
    assert_eq!(reader.exists(pid).expect("exists"), Liveness::Gone);
    assert!(matches!(reader.process(pid), Err(Error::NotFound { .. })));
    assert!(matches!(
        reader.read_cwd(info.identity()),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn the_table_sees_a_child_come_and_go() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut table: ProcessTable<SystemSource> = ProcessTable::new().expect("table");
    assert!(table.get(Pid::current()).is_some());
    let mut child = Child::start(&[OsStr::new("proctrack-table")], dir.path());
    let diff = table.refresh().expect("refresh");
    let identity = table.get(child.pid()).expect("the child is in").identity();
    assert!(diff.spawned.contains(&identity));
    assert!(
        table
            .children(Pid::current())
            .iter()
            .any(|c| c.pid() == child.pid())
    );
    assert_eq!(
        table.find_by_cwd_prefix(canonical(dir.path())).len(),
        1,
        "only the child stands in its directory"
    );
    child.kill();
    child.reap();
    let diff = table.refresh().expect("refresh");
    assert!(diff.exited.contains(&identity));
    assert!(table.get(child.pid()).is_none());
}

#[test]
fn free_functions_and_other_users_processes() {
    assert_eq!(
        proctrack::exists(Pid::current()).expect("exists"),
        Liveness::Alive
    );
    let all = proctrack::SystemSource::open()
        .and_then(|mut source| source.processes())
        .expect("processes");
    assert!(all.iter().any(|p| p.pid() == Pid::current()));
    assert!(all.iter().all(|p| p.pid().as_raw() > 0));

    // launchd: pid 1, root's, no parent.
    let launchd = proctrack::process(Pid::try_from(1).expect("pid 1")).expect("read launchd");
    assert_eq!(launchd.name(), "launchd");
    assert_eq!(launchd.parent(), None);
    // A new directory is owned by our effective uid.
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::fs::metadata(dir.path()).expect("stat").uid() == 0;
    if !root {
        // Refused to other users: an empty command line, no cwd, no task data.
        assert!(launchd.cmdline().is_empty());
        assert_eq!(launchd.cwd(), &Cwd::NotPermitted);
        assert_eq!(launchd.rss_bytes(), 0);
    }
}

/// Awaiting an exit needs the `tokio` feature.
#[cfg(feature = "tokio")]
mod exited {
    use super::*;
    use proctrack::ProcessIdentity;
    use proctrack::signal::{Backend, KillOptions, Subreaper, capabilities, kill_tree};

    /// A shell with two background `sleep`s (its children, our grandchildren),
    /// printing once it has forked both.
    const TREE: &str = "sleep 100 & sleep 100 & echo ready; wait";

    /// Kills the tree of `root` and reaps `child` on drop, so a failing test
    /// leaves no process behind.
    struct Tree {
        child: std::process::Child,
        root: Option<ProcessIdentity>,
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            if let Some(root) = self.root {
                if let Ok(mut table) = ProcessTable::new() {
                    let _ = kill_tree(&mut table, root, &KillOptions::new().reap_root(false));
                }
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill_tree_and_a_non_childs_exit() {
        let caps = capabilities();
        assert!(
            !caps.pidfd && !caps.child_subreaper && caps.exit_events,
            "{caps:?}"
        );
        assert!(matches!(
            Subreaper::install(),
            Err(Error::Unsupported { .. })
        ));

        let mut child = Command::new(SHELL)
            .arg("-c")
            .arg(TREE)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the shell");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut tree = Tree { child, root: None };
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the ready line");
        assert_eq!(line, "ready\n");

        let root_handle = ProcessHandle::from_child(&tree.child).expect("handle on the child");
        assert_eq!(root_handle.backend(), Backend::CheckedPid);
        let root = root_handle.identity();
        tree.root = Some(root);

        // The shell's children: not ours, so only kqueue can tell their exits.
        let sleeps: Vec<ProcessIdentity> = proctrack::SystemSource::open()
            .and_then(|mut source| source.processes())
            .expect("processes")
            .into_iter()
            .filter(|p| p.parent() == Some(root.pid()))
            .map(|p| p.identity())
            .collect();
        assert_eq!(sleeps.len(), 2, "{sleeps:?}");
        let first = ProcessHandle::open(sleeps[0]).expect("handle on a grandchild");
        let second = ProcessHandle::open(sleeps[1]).expect("handle on a grandchild");
        assert!(!first.has_exited().expect("has_exited"));
        // Nothing has happened yet: the timeout passes (kevent's own timeout).
        assert!(
            !second
                .wait_timeout(Duration::from_millis(20))
                .expect("wait")
        );

        // Awaits the exit of a process that is not our child, in tokio.
        let waiter = tokio::spawn(async move { first.wait_async().await });

        let report = tokio::task::spawn_blocking(move || {
            kill_tree(
                &mut ProcessTable::new()?,
                root,
                &KillOptions::new().reap_root(false),
            )
        })
        .await
        .expect("join the kill")
        .expect("kill the tree");
        assert!(report.is_complete(), "{report:#?}");
        assert!(report.settled && report.confirmed, "{report:#?}");
        for member in std::iter::once(root).chain(sleeps.iter().copied()) {
            assert!(report.was_killed(&member), "{member} in {report:#?}");
        }

        tokio::time::timeout(Duration::from_secs(30), waiter)
            .await
            .expect("the exit event came")
            .expect("join the waiter")
            .expect("exited");
        assert!(second.wait_timeout(Duration::from_secs(30)).expect("wait"));
        assert!(second.has_exited().expect("has_exited"));
        assert!(root_handle.has_exited().expect("has_exited"));

        // The root is our child and still unreaped: its status is ours.
        tree.root = None;
        let status = tree.child.wait().expect("reap the shell");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9));
    }
}
