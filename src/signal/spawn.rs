//! Starting trees we will want to kill: [`spawn_group`] and [`Subreaper`].
//!
//! A tree we spawn ourselves can be set up to be easier to kill:
//!
//! - **its own process group** ([`spawn_group`]): the child's process group id
//!   is its pid, so job-control signals from our terminal do not reach it, and
//!   its members can be told apart from our other children;
//! - **a child subreaper** ([`Subreaper`]): a member that double-forks (the
//!   classic daemon: fork, `setsid`, fork, let the middle exit) would
//!   otherwise reparent to pid 1 and out of any tree we can find. With
//!   `PR_SET_CHILD_SUBREAPER` it reparents to us instead, and a
//!   [`Subreaper::kill_tree`] kills it with the tree.
//!
//! A new *session* (`setsid`) for the child is not offered: the standard
//! library can only do it from `pre_exec` (unsafe) or the unstable
//! `CommandExt::setsid`, and this crate forbids unsafe code.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::kill_tree::{RefusedRoot, kill_roots};
use super::signaller::SystemSignaller;
use super::{KillOptions, KillReport, ProcessHandle, sys};
use crate::table::ProcessTable;
use crate::{Error, Pid, ProcessIdentity, ProcessSource, Result};

/// A child just spawned, with a handle pinned before anything could reap it.
///
/// `child` is the standard library's handle (stdio pipes, `wait`); `handle`
/// is proctrack's (race-free signals, exit events, tree kills by identity).
#[derive(Debug)]
pub struct Spawned {
    /// The child, to wait for as usual.
    pub child: Child,
    /// The pinned handle to the same process.
    pub handle: ProcessHandle,
}

/// Spawns `command` in a new process group of its own (its pgid is its pid)
/// and pins it.
///
/// ```no_run
/// use std::process::Command;
/// use proctrack::signal::{kill_tree, spawn_group, KillOptions};
/// use proctrack::table::ProcessTable;
///
/// let spawned = spawn_group(Command::new("sh").args(["-c", "sleep 60 & wait"]))?;
/// let mut table = ProcessTable::new()?;
/// let report = kill_tree(&mut table, spawned.handle.identity(), &KillOptions::new())?;
/// assert!(report.is_complete()); // and the shell was reaped
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn spawn_group(command: &mut Command) -> Result<Spawned> {
    command.process_group(0);
    let mut child = command.spawn().map_err(|source| Error::Io {
        path: Some(PathBuf::from(command.get_program())),
        source,
    })?;
    match ProcessHandle::from_child(&child) {
        Ok(handle) => Ok(Spawned { child, handle }),
        Err(error) => {
            // Without a handle the caller could not kill it safely: undo.
            let _ = child.kill();
            let _ = child.wait();
            Err(error)
        }
    }
}

/// The children this process spawned on purpose (through [`Subreaper::spawn`]
/// or [`Subreaper::register`]); every other child of ours is an adopted orphan.
static OWN: Mutex<Vec<ProcessIdentity>> = Mutex::new(Vec::new());

fn own() -> MutexGuard<'static, Vec<ProcessIdentity>> {
    // The list stays consistent whatever panicked while holding it.
    OWN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This process as a child subreaper: orphans of our descendants reparent to
/// us, and we kill and reap them.
///
/// The kernel does not remember where an orphan came from, so the subreaper
/// tells adopted orphans from its own children by bookkeeping: a child spawned
/// through [`Subreaper::spawn`] (or [`register`](Subreaper::register)ed) is
/// ours; **every other child of this process counts as an adopted orphan**,
/// is killed with any [`Subreaper::kill_tree`] and reaped. In a process that
/// installs a subreaper, start children through it, or register them at once.
/// Since the orphans' origin is lost, an orphan goes down with whichever tree
/// the subreaper kills next, not necessarily the one it came from.
///
/// The subreaper attribute is process-wide; every `Subreaper` value shares
/// the same bookkeeping. Exit statuses are collected by pidfd, never with a
/// wait for "any child", so `std` and `tokio` children keep theirs.
///
/// ```no_run
/// use std::process::Command;
/// use proctrack::signal::{KillOptions, Subreaper};
///
/// let subreaper = Subreaper::install()?;
/// let mut spawned = subreaper.spawn(Command::new("sh").args(["-c", "setsid sleep 60 &"]))?;
/// spawned.child.wait()?; // the shell exits; `sleep` is now our adopted child
/// let mut table = proctrack::table::ProcessTable::new()?;
/// let report = subreaper.kill_tree(&mut table, spawned.handle.identity(), &KillOptions::new())?;
/// assert_eq!(report.killed.len(), 1); // the orphan (the root was gone already)
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Subreaper {
    _private: (),
}

impl Subreaper {
    /// Makes this process a child subreaper (`PR_SET_CHILD_SUBREAPER`).
    /// Idempotent. [`Error::Unsupported`] on other platforms, macOS included:
    /// it has no such attribute, and orphans always reparent to launchd
    /// (pid 1). There, kill a tree before its middle processes exit, or keep
    /// the tree in its own process group ([`spawn_group`]).
    pub fn install() -> Result<Subreaper> {
        if !sys::is_subreaper()? {
            sys::set_subreaper()?;
        }
        Ok(Subreaper { _private: () })
    }

    /// Spawns `command` like [`spawn_group`] and records it as our own child.
    pub fn spawn(&self, command: &mut Command) -> Result<Spawned> {
        // Held across the spawn: a concurrent kill must not see the new child
        // before it is recorded, or it would take it for an orphan.
        let mut own = own();
        let spawned = spawn_group(command)?;
        own.push(spawned.handle.identity());
        Ok(spawned)
    }

    /// Records a child spawned some other way (tokio, plain `std`) as ours,
    /// so that it is not taken for an adopted orphan. Register it right after
    /// spawning.
    ///
    /// ```no_run
    /// use proctrack::signal::{ProcessHandle, Subreaper};
    /// let subreaper = Subreaper::install()?;
    /// let child = std::process::Command::new("sleep").arg("60").spawn()?;
    /// subreaper.register(ProcessHandle::from_child(&child)?.identity());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register(&self, identity: ProcessIdentity) {
        own().push(identity);
    }

    /// Our children that we did not spawn: orphans adopted from our trees.
    ///
    /// ```no_run
    /// let subreaper = proctrack::signal::Subreaper::install()?;
    /// let mut table = proctrack::table::ProcessTable::new()?;
    /// for orphan in subreaper.adopted(&mut table)? {
    ///     println!("adopted {orphan}");
    /// }
    /// # Ok::<(), proctrack::Error>(())
    /// ```
    pub fn adopted<S: ProcessSource>(
        &self,
        table: &mut ProcessTable<S>,
    ) -> Result<Vec<ProcessIdentity>> {
        forget_gone()?;
        let source = table.source_mut();
        let boot = source.boot_id();
        let me = Pid::current();
        let mut pids = Vec::new();
        if !source.children(me, &mut pids)? {
            table.refresh()?;
            pids.extend(table.children(me).iter().map(|child| child.pid()));
        }
        let source = table.source_mut();
        let mut out = Vec::new();
        for pid in pids {
            let Ok(sample) = source.sample(pid) else {
                continue;
            };
            let identity = sample.identity(boot);
            if sample.parent == Some(me) && !is_own(&identity) {
                out.push(identity);
            }
        }
        Ok(out)
    }

    /// Kills the tree of `root` like [`kill_tree`](super::kill_tree), and with
    /// it every adopted orphan and the orphans' trees; collects the exit
    /// statuses of the orphans. `root` itself, if we spawned it, is left for
    /// its `Child` to reap (unless [`KillOptions::reap_root`]).
    pub fn kill_tree<S: ProcessSource>(
        &self,
        table: &mut ProcessTable<S>,
        root: ProcessIdentity,
        options: &KillOptions,
    ) -> Result<KillReport> {
        self.kill(table, &[root], options)
    }

    /// Kills only the adopted orphans and their trees, and reaps them.
    ///
    /// ```no_run
    /// use proctrack::signal::{KillOptions, Subreaper};
    /// let mut table = proctrack::table::ProcessTable::new()?;
    /// let report = Subreaper::install()?.kill_adopted(&mut table, &KillOptions::new())?;
    /// # Ok::<(), proctrack::Error>(())
    /// ```
    pub fn kill_adopted<S: ProcessSource>(
        &self,
        table: &mut ProcessTable<S>,
        options: &KillOptions,
    ) -> Result<KillReport> {
        self.kill(table, &[], options)
    }

    fn kill<S: ProcessSource>(
        &self,
        table: &mut ProcessTable<S>,
        roots: &[ProcessIdentity],
        options: &KillOptions,
    ) -> Result<KillReport> {
        forget_gone()?;
        let mut signaller = SystemSignaller::new(options.backend)?;
        kill_roots(
            table,
            &mut signaller,
            roots,
            options,
            Some(&is_own),
            RefusedRoot::Fails,
            None,
        )
    }

    /// Collects the exit status of every adopted orphan that has exited, so
    /// none stays a zombie. Does not wait.
    ///
    /// ```no_run
    /// let subreaper = proctrack::signal::Subreaper::install()?;
    /// let mut table = proctrack::table::ProcessTable::new()?;
    /// for (orphan, status) in subreaper.reap_adopted(&mut table)? {
    ///     println!("{orphan} exited: {status}");
    /// }
    /// # Ok::<(), proctrack::Error>(())
    /// ```
    pub fn reap_adopted<S: ProcessSource>(
        &self,
        table: &mut ProcessTable<S>,
    ) -> Result<Vec<(ProcessIdentity, ExitStatus)>> {
        let mut out = Vec::new();
        for orphan in self.adopted(table)? {
            let Ok(handle) = ProcessHandle::open(orphan) else {
                continue;
            };
            match handle.try_reap() {
                Ok(Some(status)) => out.push((orphan, status)),
                Ok(None) | Err(Error::NotChild { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(out)
    }
}

/// True when `identity` is one of our own children (not an orphan).
fn is_own(identity: &ProcessIdentity) -> bool {
    own().contains(identity)
}

/// Drops the records of own children that no longer exist (reaped; their
/// pid may be some orphan's by now, under another start time).
fn forget_gone() -> Result<()> {
    let mut own = own();
    let mut keep = Vec::with_capacity(own.len());
    for identity in own.drain(..) {
        if sys::brief(identity.pid())?.is_some_and(|now| now.start == identity.start_time()) {
            keep.push(identity);
        }
    }
    *own = keep;
    Ok(())
}
