//! A spawned tree of processes that cleans up after itself.

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

use proctrack::{Pid, ProcessIdentity, ProcessInfo};
use rustix::io::Errno;
use rustix::process::{PidfdFlags, Signal, WaitOptions};

use super::{Lines, become_subreaper, rustix_pid, wait_child, wait_for_exit};

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
    stdout: Option<Lines>,
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
        let stdout = child.stdout.take().map(Lines::new);
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

    /// [`SpawnedTree::shell`] with `dir` as the working directory.
    pub fn shell_in(dir: &Path, script: &str) -> SpawnedTree {
        SpawnedTree::spawn(
            Command::new("sh")
                .arg("-c")
                .arg(script)
                .arg("tree-root")
                .stdin(Stdio::piped())
                .current_dir(dir),
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
    /// (every member closed stdout). Panics after [`HANG_GUARD`](super::HANG_GUARD).
    pub fn read_line(&mut self) -> Option<String> {
        self.stdout.as_mut()?.next_line()
    }

    /// Reads lines until one is exactly `ready`; returns the lines before it.
    pub fn wait_ready(&mut self) -> Vec<String> {
        match self.stdout.as_mut() {
            Some(lines) => lines.until("ready"),
            None => panic!("the tree's stdout is not piped"),
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

    /// Reaps the root (blocking until it exits on its own, at most
    /// [`HANG_GUARD`](super::HANG_GUARD)). Its children, if any, become the
    /// test process's and stay tracked by the guard.
    pub fn wait_root(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the root was already reaped");
        wait_child(&mut child)
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
        let all = proctrack::SystemSource::open().and_then(|mut source| source.processes())?;
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
    let all = proctrack::SystemSource::open()
        .and_then(|mut source| source.processes())
        .expect("scanning /proc");
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
