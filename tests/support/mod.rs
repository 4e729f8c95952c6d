//! Process hygiene shared by the integration tests (Linux only).
//!
//! pid 1 on the test machines does not reap orphans: a process a test leaks
//! stays a zombie forever, and enough of them exhaust `pid_max`. So every test
//! that starts processes:
//!
//! 1. starts them through a [`SpawnedTree`], which makes the test process a
//!    child subreaper ([`become_subreaper`]) and puts the tree in a process
//!    group of its own, so orphans of the tree reparent to the test process
//!    and can be told apart from other tests' children;
//! 2. waits for readiness on events, never by sleeping: the tree prints lines
//!    on its stdout (a pipe) and the test reads them ([`SpawnedTree::wait_ready`],
//!    [`SpawnedTree::read_line`]); exits are awaited on a pidfd ([`wait_for_exit`]).
//!    `Command::spawn` returning is not readiness: it returns once the exec
//!    has switched memory maps, but the kernel sets the new argument area a
//!    little later, and meanwhile `/proc/<pid>/cmdline` reads empty (measured:
//!    39% of reads right after spawning with 1 MiB of arguments). Have each
//!    process print its own line (`echo $$`) after its exec;
//! 3. ends with [`SpawnedTree::finish`] (or just drops the guard), which kills
//!    every member and reaps every one that became ours, and then may call
//!    [`assert_no_leftovers`].
//!
//! ```ignore
//! mod support;
//! let mut tree = support::SpawnedTree::shell("echo $$; echo ready; read _");
//! let lines = tree.wait_ready();
//! // ... look at the processes ...
//! let record = tree.finish();
//! support::assert_no_leftovers(&record);
//! ```
//!
//! Include it as `mod support;` from a test file that starts with
//! `#![cfg(target_os = "linux")]` (it uses rustix and pidfds).
//!
//! Reaping is by pid only, never `waitpid(-1)`: tests run in parallel threads
//! of one process, and a wait-any would steal another test's exit statuses
//! (tokio::process and std's `Child::wait` reap by pid too).
#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Once;

use proctrack::{Pid, ProcessIdentity, ProcessInfo};
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::process::{PidfdFlags, Signal, WaitOptions};

/// Makes the test process a child subreaper: orphans of its descendants
/// reparent to it instead of to pid 1. Idempotent; the flag is process-wide.
pub fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .expect("PR_SET_CHILD_SUBREAPER");
    });
}

/// rustix's pid type from ours.
pub fn rustix_pid(pid: Pid) -> rustix::process::Pid {
    rustix::process::Pid::from_raw(pid.as_raw()).expect("a Pid is always positive")
}

/// Blocks until `pid` has exited (it may still be an unreaped zombie), by
/// polling its pidfd, which becomes readable at exit. Works for any process,
/// not only children. Returns at once if the process is already gone.
///
/// The pid must be pinned (an unreaped child, say) or known alive: a pid that
/// was already reaped may name another process by now.
pub fn wait_for_exit(pid: Pid) {
    let fd = match rustix::process::pidfd_open(rustix_pid(pid), PidfdFlags::empty()) {
        Ok(fd) => fd,
        // Any of these means the process is gone already.
        Err(Errno::SRCH | Errno::INVAL | Errno::NOENT) => return,
        Err(errno) => panic!("pidfd_open({pid}): {errno}"),
    };
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    loop {
        match rustix::event::poll(&mut fds, None) {
            Ok(n) if n > 0 => return, // readable (exited), or hung up (reaped)
            Ok(_) | Err(Errno::INTR) => continue,
            Err(errno) => panic!("poll on the pidfd of {pid}: {errno}"),
        }
    }
}

/// What a finished tree leaves for [`assert_no_leftovers`] to check.
#[derive(Debug, Clone)]
pub struct TreeRecord {
    /// The root's identity (the child the test spawned).
    pub root: ProcessIdentity,
    /// The tree's process group (the root's pid).
    pub group: Pid,
    /// Every member ever seen, root included.
    pub members: Vec<ProcessIdentity>,
}

/// Owns a spawned child and, through it, the whole tree it starts.
///
/// Dropping it (or calling [`SpawnedTree::finish`]) kills every member with
/// SIGKILL and reaps top-down: first the root with `Child::wait`, then each
/// member that reparented to the test process, by pid, in breadth-first order.
/// When a process exits the kernel reparents its children to the subreaper
/// *before* notifying the parent, so once a member is reaped its children are
/// ours to reap.
///
/// Members are the root's descendants by ppid, plus children of the test
/// process that were seen as members before or that sit in the tree's process
/// group (orphans whose parent already died). A member that both leaves the
/// process group (setsid/setpgid) and loses its parent before it was ever seen
/// cannot be attributed and would leak; test trees must not do that.
pub struct SpawnedTree {
    /// `None` once the root has been reaped.
    child: Option<Child>,
    stdout: Option<BufReader<ChildStdout>>,
    root: ProcessIdentity,
    /// Every member ever seen, in first-seen order.
    seen: Vec<ProcessIdentity>,
    seen_set: HashSet<ProcessIdentity>,
    finished: bool,
}

impl SpawnedTree {
    /// Spawns `command` as the root of a tree: in a new process group, with its
    /// stdout piped to the guard (for readiness lines). Set stdin yourself; a
    /// tree whose members block on `read` wants `Stdio::piped()`.
    pub fn spawn(command: &mut Command) -> SpawnedTree {
        become_subreaper();
        let mut child = command
            .process_group(0)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        let stdout = child.stdout.take().map(BufReader::new);
        let pid = Pid::try_from(child.id()).expect("child pid");
        // The child is ours and unreaped: its pid cannot be reused yet.
        let root = match proctrack::process(pid) {
            Ok(info) => info.identity(),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("reading the child just spawned ({pid}): {e}");
            }
        };
        let mut tree = SpawnedTree {
            child: Some(child),
            stdout,
            root,
            seen: Vec::new(),
            seen_set: HashSet::new(),
            finished: false,
        };
        tree.remember(root);
        tree
    }

    /// Runs `sh -c script tree-root` with stdin and stdout piped. Members that
    /// block with `read _` stay until the guard kills them or stdin is closed.
    /// Note that a non-interactive shell gives background jobs `/dev/null` as
    /// stdin: write `exec 3<&0; cmd <&3 &` to hand them the pipe.
    pub fn shell(script: &str) -> SpawnedTree {
        SpawnedTree::spawn(
            Command::new("sh")
                .arg("-c")
                .arg(script)
                .arg("tree-root")
                .stdin(Stdio::piped()),
        )
    }

    /// The root's pid.
    pub fn pid(&self) -> Pid {
        self.root.pid()
    }

    /// The root's identity.
    pub fn root(&self) -> ProcessIdentity {
        self.root
    }

    /// The root child, until it has been reaped.
    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("the root was already reaped")
    }

    /// Closes the root's stdin (members sharing the pipe see EOF once every
    /// copy is closed).
    pub fn close_stdin(&mut self) {
        if let Some(child) = self.child.as_mut() {
            drop(child.stdin.take());
        }
    }

    /// The next line the tree printed, without its newline; `None` at EOF
    /// (every member closed stdout).
    pub fn read_line(&mut self) -> Option<String> {
        let stdout = self.stdout.as_mut()?;
        let mut line = String::new();
        match stdout.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => {
                if line.ends_with('\n') {
                    line.pop();
                }
                Some(line)
            }
            Err(e) => panic!("reading the tree's stdout: {e}"),
        }
    }

    /// Reads lines until one is exactly `ready`; returns the lines before it.
    pub fn wait_ready(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            match self.read_line() {
                Some(line) if line == "ready" => return lines,
                Some(line) => lines.push(line),
                None => panic!("the tree closed stdout before printing `ready`; got {lines:?}"),
            }
        }
    }

    /// Reads exactly `count` lines.
    pub fn read_lines(&mut self, count: usize) -> Vec<String> {
        (0..count)
            .map(|i| {
                self.read_line()
                    .unwrap_or_else(|| panic!("the tree closed stdout after {i} of {count} lines"))
            })
            .collect()
    }

    /// Blocks until the root has exited, leaving it unreaped (a zombie).
    pub fn wait_root_exit(&mut self) {
        assert!(self.child.is_some(), "the root was already reaped");
        wait_for_exit(self.pid());
    }

    /// Reaps the root (blocking until it exits on its own). Its children, if
    /// any, become the test process's and stay tracked by the guard.
    pub fn wait_root(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the root was already reaped");
        child.wait().expect("waiting for the root")
    }

    /// The tree's live members (zombies included), root first, breadth-first.
    pub fn members(&mut self) -> Vec<ProcessInfo> {
        self.scan().expect("scanning /proc")
    }

    /// Kills and reaps the whole tree; panics if anything could not be reaped.
    pub fn finish(mut self) -> TreeRecord {
        let problems = self.kill_and_reap();
        self.finished = true;
        assert!(
            problems.is_empty(),
            "cleaning up the tree of {}: {problems:?}",
            self.root
        );
        self.record()
    }

    fn record(&self) -> TreeRecord {
        TreeRecord {
            root: self.root,
            group: self.root.pid(),
            members: self.seen.clone(),
        }
    }

    fn remember(&mut self, identity: ProcessIdentity) {
        if self.seen_set.insert(identity) {
            self.seen.push(identity);
        }
    }

    /// Finds the members now: breadth-first from the root (while unreaped) and
    /// from the test process's children that belong to the tree.
    fn scan(&mut self) -> proctrack::Result<Vec<ProcessInfo>> {
        let me = Pid::current();
        let group = self.root.pid();
        let all = proctrack::processes()?;
        // While the root is unreaped its pid (the group id) cannot be reused.
        // Afterwards the group number is still ours while any process holds it
        // as group id, and pid `group` can only be handed out again once none
        // does: so if someone else now has that pid, the group is not ours.
        let group_is_ours = !all
            .iter()
            .any(|p| p.pid() == group && p.identity() != self.root);
        let mut children: HashMap<Pid, Vec<&ProcessInfo>> = HashMap::new();
        for p in &all {
            if let Some(parent) = p.parent() {
                children.entry(parent).or_default().push(p);
            }
        }
        let mut queue: VecDeque<&ProcessInfo> = VecDeque::new();
        if self.child.is_some() {
            queue.extend(all.iter().filter(|p| p.identity() == self.root));
        }
        queue.extend(all.iter().filter(|p| {
            p.parent() == Some(me)
                && p.identity() != self.root
                && (self.seen_set.contains(&p.identity())
                    || (group_is_ours && p.process_group() == Some(group)))
        }));
        let mut out = Vec::new();
        let mut visited = HashSet::new();
        while let Some(p) = queue.pop_front() {
            if !visited.insert(p.pid()) {
                continue;
            }
            out.push(p.clone());
            queue.extend(children.get(&p.pid()).into_iter().flatten().copied());
        }
        for p in &out {
            self.remember(p.identity());
        }
        Ok(out)
    }

    /// SIGKILLs every member and reaps every one that is (or becomes) ours.
    /// Returns what went wrong instead of panicking (it runs in `Drop`).
    fn kill_and_reap(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let me = Pid::current();
        if self.child.is_some() {
            // The unreaped root pins the group id: one kill reaches every
            // member still in the group, even ones forked a moment ago.
            match rustix::process::kill_process_group(rustix_pid(self.root.pid()), Signal::KILL) {
                Ok(()) | Err(Errno::SRCH) => {}
                Err(errno) => problems.push(format!("killpg: {errno}")),
            }
            // Members that left the group are found by ppid from the root.
            match self.scan() {
                Ok(members) => members.iter().for_each(kill_pinned),
                Err(e) => problems.push(format!("scan: {e}")),
            }
        }
        if let Some(mut child) = self.child.take() {
            if let Err(e) = child.wait() {
                problems.push(format!("wait for the root: {e}"));
            }
        }
        // Top-down: after the root is reaped its children are ours; after
        // each of those is reaped, theirs are; and so on. A second round
        // catches anything forked between a scan and its kill.
        for _round in 0..100 {
            let members = match self.scan() {
                Ok(members) => members,
                Err(e) => {
                    problems.push(format!("scan: {e}"));
                    return problems;
                }
            };
            if members.is_empty() {
                return problems;
            }
            members.iter().for_each(kill_pinned);
            for member in &members {
                // Re-read: the parent may have changed (to us) since the scan.
                let ours = matches!(proctrack::process(member.pid()),
                    Ok(now) if now.identity() == member.identity() && now.parent() == Some(me));
                if ours {
                    // Our unreaped child cannot change identity under us.
                    if let Err(e) = waitpid_retrying(member.pid()) {
                        problems.push(format!("waitpid({}): {e}", member.pid()));
                    }
                }
            }
        }
        problems.push("members were still left after 100 rounds of kill and reap".into());
        problems
    }
}

impl Drop for SpawnedTree {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let problems = self.kill_and_reap();
        if !problems.is_empty() {
            eprintln!("SpawnedTree {}: cleanup problems: {problems:?}", self.root);
        }
    }
}

/// SIGKILLs `member` through a pidfd, after checking that the pidfd pins the
/// process that was scanned (not a later holder of its pid).
fn kill_pinned(member: &ProcessInfo) {
    let Ok(fd) = rustix::process::pidfd_open(rustix_pid(member.pid()), PidfdFlags::empty()) else {
        return; // gone
    };
    if matches!(proctrack::process(member.pid()), Ok(now) if now.identity() == member.identity()) {
        // Signalling a zombie succeeds; a reaped one is ESRCH. Either is fine.
        let _ = rustix::process::pidfd_send_signal(&fd, Signal::KILL);
    }
}

fn waitpid_retrying(pid: Pid) -> Result<(), Errno> {
    loop {
        match rustix::process::waitpid(Some(rustix_pid(pid)), WaitOptions::empty()) {
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(errno) => return Err(errno),
        }
    }
}

/// Asserts the tree left nothing: no process with a member's identity exists
/// (alive or zombie, wherever it is), and no child of the test process — alive
/// or zombie — belongs to the tree's process group.
pub fn assert_no_leftovers(record: &TreeRecord) {
    let me = Pid::current();
    let all = proctrack::processes().expect("scanning /proc");
    let members: HashSet<ProcessIdentity> = record.members.iter().copied().collect();
    let group_is_ours = !all
        .iter()
        .any(|p| p.pid() == record.group && p.identity() != record.root);
    let leftovers: Vec<String> = all
        .iter()
        .filter(|p| {
            members.contains(&p.identity())
                || (p.parent() == Some(me)
                    && group_is_ours
                    && p.process_group() == Some(record.group))
        })
        .map(|p| {
            format!(
                "{} ppid {:?} {:?} {:?} `{}`",
                p.pid(),
                p.parent(),
                p.state(),
                p.name(),
                p.cmdline()
            )
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "the tree of {} left processes behind: {leftovers:#?}",
        record.root
    );
}
