//! Helpers for the `signal_*` integration tests (Linux only).
//!
//! Every test that forks takes [`serial`] first: the checks at the end of a
//! test ("no child of ours is left, alive or zombie") are about the whole test
//! process, so two forking tests must not overlap. The test process is a child
//! subreaper ([`subreaper`]): this machine's pid 1 does not reap, so orphans
//! must come to us, and we reap them by pid (never `waitpid(-1)`).
//!
//! Trees print readiness lines on their stdout, a pipe; tests read them
//! ([`Tree::line`]) instead of sleeping. [`Tree`]'s `Drop` and [`sweep`] are
//! the safety net that kills and reaps whatever a failing test left behind.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};
use std::time::Duration;

use proctrack::signal::ProcessHandle;
use proctrack::{Pid, ProcessIdentity, State};
use rustix::io::Errno;
use rustix::process::{PidfdFlags, Signal, WaitOptions};

/// Serialises the forking tests of one test binary. Dropping the guard (also
/// when the test panics) kills and reaps every descendant left, so a failing
/// test leaks nothing.
pub fn serial() -> Serial {
    static LOCK: Mutex<()> = Mutex::new(());
    let lock = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    subreaper();
    Serial { _lock: lock }
}

/// See [`serial`].
pub struct Serial {
    _lock: MutexGuard<'static, ()>,
}

impl Drop for Serial {
    fn drop(&mut self) {
        let swept = sweep();
        if swept > 0 && !std::thread::panicking() {
            eprintln!("serial: swept {swept} leftover processes");
        }
    }
}

/// Makes the test process a child subreaper, once.
pub fn subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .expect("PR_SET_CHILD_SUBREAPER");
    });
}

/// How long a test waits for anything before it fails (and its guards
/// clean up): a hang guard, never a timing assertion.
pub const HANG_GUARD: Duration = Duration::from_secs(60);

/// The lines a child prints on a pipe, read by a thread so that waiting for
/// one can time out: a test that hangs would be killed from outside, skip its
/// `Drop`s and leak its processes; a test that panics cleans up.
pub struct Lines {
    rx: Receiver<std::io::Result<String>>,
}

impl Lines {
    pub fn new(stdout: ChildStdout) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { rx }
    }

    /// The next line; panics at end of file or after [`HANG_GUARD`].
    pub fn line(&mut self) -> String {
        match self.rx.recv_timeout(HANG_GUARD) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => panic!("reading the child's stdout: {e}"),
            Err(RecvTimeoutError::Timeout) => {
                panic!("no line from the child within {HANG_GUARD:?}")
            }
            Err(RecvTimeoutError::Disconnected) => panic!("the child closed its stdout"),
        }
    }

    /// Reads lines up to and including `want`; returns the ones before it.
    pub fn until(&mut self, want: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line();
            if line == want {
                return lines;
            }
            lines.push(line);
        }
    }
}

/// Reaps our child, failing (not hanging) if it does not exit within
/// [`HANG_GUARD`].
pub fn wait_child(child: &mut Child) -> ExitStatus {
    let handle = ProcessHandle::from_child(child).expect("pin the child");
    assert!(
        handle.wait_timeout(HANG_GUARD).expect("wait"),
        "child {} did not exit",
        handle.pid()
    );
    child.wait().expect("reap the child")
}

/// A shell tree rooted in a child of ours, in its own process group, with
/// stdin and stdout piped.
pub struct Tree {
    pub child: Option<Child>,
    pub identity: ProcessIdentity,
    lines: Lines,
    pub stdin: Option<ChildStdin>,
}

impl Tree {
    /// `sh -c script`.
    pub fn sh(script: &str) -> Tree {
        Tree::spawn(Command::new("sh").arg("-c").arg(script))
    }

    /// `sh -c script` in `dir`.
    pub fn sh_in(dir: &Path, script: &str) -> Tree {
        Tree::spawn(Command::new("sh").arg("-c").arg(script).current_dir(dir))
    }

    /// Spawns `command` with piped stdin/stdout in a new process group.
    pub fn spawn(command: &mut Command) -> Tree {
        let mut child = command
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        let identity = ProcessHandle::from_child(&child)
            .expect("pin the child")
            .identity();
        let lines = Lines::new(child.stdout.take().expect("piped stdout"));
        let stdin = child.stdin.take();
        Tree {
            child: Some(child),
            identity,
            lines,
            stdin,
        }
    }

    /// The next line the tree printed; panics at end of file.
    pub fn line(&mut self) -> String {
        self.lines.line()
    }

    /// Reads lines up to and including `want`; returns the ones before it.
    pub fn until(&mut self, want: &str) -> Vec<String> {
        self.lines.until(want)
    }

    /// Reaps the root (it must have exited or be about to).
    pub fn wait_root(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("root already reaped");
        wait_child(&mut child)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        sweep();
    }
}

fn rustix_pid(pid: Pid) -> rustix::process::Pid {
    rustix::process::Pid::from_raw(pid.as_raw()).expect("positive pid")
}

/// One scanned process.
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    pub identity: ProcessIdentity,
    pub parent: Option<Pid>,
    pub state: State,
}

/// Every process now.
pub fn scan() -> Vec<Seen> {
    proctrack::processes()
        .expect("scan /proc")
        .into_iter()
        .map(|p| Seen {
            identity: p.identity(),
            parent: p.parent(),
            state: p.state(),
        })
        .collect()
}

/// Every descendant of the test process (by ppid, edges checked by start
/// time), breadth-first.
pub fn descendants() -> Vec<Seen> {
    let all = scan();
    let me = Pid::current();
    let by_pid: HashMap<Pid, Seen> = all.iter().map(|s| (s.identity.pid(), *s)).collect();
    let mut children: HashMap<Pid, Vec<Seen>> = HashMap::new();
    for seen in &all {
        if let Some(parent) = seen.parent {
            children.entry(parent).or_default().push(*seen);
        }
    }
    let mut out = Vec::new();
    let mut queue: VecDeque<Pid> = VecDeque::from([me]);
    let mut visited = HashSet::new();
    while let Some(pid) = queue.pop_front() {
        let start = by_pid.get(&pid).map(|s| s.identity.start_time());
        for child in children.get(&pid).into_iter().flatten() {
            if start.is_some_and(|start| child.identity.start_time() >= start)
                && visited.insert(child.identity)
            {
                out.push(*child);
                queue.push_back(child.identity.pid());
            }
        }
    }
    out
}

/// Kills every descendant of the test process and reaps our children by pid,
/// until none is left; returns how many it met. The safety net: only call it
/// under [`serial`]. Never panics (it runs in `Drop`).
pub fn sweep() -> usize {
    let me = Pid::current();
    let mut total = 0;
    for _round in 0..1000 {
        let found = descendants();
        if found.is_empty() {
            return total;
        }
        total += found.len();
        for seen in &found {
            let pid = seen.identity.pid();
            if let Ok(fd) = rustix::process::pidfd_open(rustix_pid(pid), PidfdFlags::empty()) {
                let same = proctrack::process(pid).is_ok_and(|p| p.identity() == seen.identity);
                if same {
                    let _ = rustix::process::pidfd_send_signal(&fd, Signal::KILL);
                }
            }
        }
        for seen in found.iter().filter(|s| s.parent == Some(me)) {
            // Our unreaped child keeps its pid: waiting by pid cannot hit
            // another process. It was SIGKILLed, so this returns.
            let pid = Some(rustix_pid(seen.identity.pid()));
            while let Err(Errno::INTR) = rustix::process::waitpid(pid, WaitOptions::empty()) {}
        }
    }
    eprintln!("sweep: descendants still left after 1000 rounds");
    total
}

/// Identities of `members` that still exist anywhere (alive or zombie).
pub fn still_there(members: impl IntoIterator<Item = ProcessIdentity>) -> Vec<ProcessIdentity> {
    let now: HashSet<ProcessIdentity> = scan().into_iter().map(|s| s.identity).collect();
    members.into_iter().filter(|m| now.contains(m)).collect()
}

/// Processes whose environment holds `marker` (as `PROCTRACK_TEST_MARK=marker`).
/// Zombies have no environment: check those with [`descendants`].
pub fn marked(marker: &str) -> Vec<Pid> {
    let needle = format!("PROCTRACK_TEST_MARK={marker}");
    let mut out = Vec::new();
    for seen in scan() {
        let pid = seen.identity.pid();
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|entry| entry == needle.as_bytes())
        {
            out.push(pid);
        }
    }
    out
}

/// Asserts the test process has no descendant left, alive or zombie.
pub fn assert_no_descendants() {
    let left = descendants();
    if !left.is_empty() {
        let shown = format!("{left:#?}");
        sweep();
        panic!("processes left behind: {shown}");
    }
}

/// A marker unique to this test process and call.
pub fn unique_marker(name: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
