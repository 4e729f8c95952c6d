use std::time::{Duration, Instant};

use super::RefreshDiff;
use super::diff::Reparented;
use super::pid_hash::PidMap;
use super::rows::Rows;
use crate::CommandLine;
use crate::{
    BootId, Cwd, Error, Pid, ProcessIdentity, ProcessInfo, ProcessSource, Result, Sample,
    SystemSource,
};

/// When the table re-reads a process's working directory.
///
/// `chdir` leaves no trace in the cheap sample, so the table cannot notice it
/// by itself; choose the cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CwdRefresh {
    /// Read when the process is first seen and when it runs a new program.
    /// Cheap; a process that changes directory later keeps its old cwd here.
    #[default]
    OnSpawnAndExec,
    /// Also re-read on every refresh: one more system call per process.
    EveryRefresh,
}

/// How a [`ProcessTable`] refreshes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableOptions {
    /// When to re-read working directories.
    pub cwd_refresh: CwdRefresh,
}

impl TableOptions {
    /// Sets [`cwd_refresh`](Self::cwd_refresh).
    pub fn cwd_refresh(mut self, cwd_refresh: CwdRefresh) -> TableOptions {
        self.cwd_refresh = cwd_refresh;
        self
    }
}

/// One process in the table.
#[derive(Debug, Clone)]
pub(super) struct Row {
    pub(super) info: ProcessInfo,
    exec_marker: u64,
    /// When the CPU time in `info` was sampled, in nanoseconds of the table's clock.
    sampled_at: u64,
    /// The last full refresh that saw this process.
    seen: u32,
    /// An empty command line of a live process was read again once. A process
    /// caught mid-`execve` has none yet; one whose arguments we may not read
    /// (another user's, on macOS) never will, and is not re-read forever.
    empty_cmdline_rechecked: bool,
    /// A hash of `info.name`: a refresh compares names without reading the
    /// name's heap bytes, one cache miss per process less.
    name_hash: u64,
}

/// Every process on the system, its parent index, refreshed in place.
///
/// See the [module documentation](crate::table) for the model.
///
/// ```no_run
/// use proctrack::table::ProcessTable;
///
/// let mut table = ProcessTable::new()?;
/// loop {
///     let diff = table.refresh()?;
///     for exited in &diff.exited {
///         println!("exited: {exited}");
///     }
///     std::thread::sleep(std::time::Duration::from_secs(1));
/// }
/// # Ok::<(), proctrack::Error>(())
/// ```
#[derive(Debug)]
pub struct ProcessTable<S: ProcessSource = SystemSource> {
    source: S,
    options: TableOptions,
    boot_id: BootId,
    pub(super) rows: Rows<Row>,
    /// Parent pid to child pids, as the children report it. Whether an edge is
    /// trusted is decided when it is followed (see `trusted_parent`).
    pub(super) children: PidMap<Vec<Pid>>,
    /// Reused between refreshes: the pid listing and the pids found gone.
    pids: Vec<Pid>,
    gone: Vec<Pid>,
    epoch: u32,
    clock: Instant,
}

impl ProcessTable<SystemSource> {
    /// Reads every process of this system into a new table.
    pub fn new() -> Result<ProcessTable<SystemSource>> {
        ProcessTable::with_source(crate::SystemSource::open()?, TableOptions::default())
    }
}

impl<S: ProcessSource> ProcessTable<S> {
    /// Builds a table over any source (a `SystemSource` on a
    /// fixture directory, say) and fills it.
    pub fn with_source(source: S, options: TableOptions) -> Result<ProcessTable<S>> {
        let mut table = ProcessTable::empty(source, options);
        table.refresh()?;
        Ok(table)
    }

    /// A table with no rows yet: for the event tracker, which fills it with
    /// one subtree instead of every process.
    pub(crate) fn empty(source: S, options: TableOptions) -> ProcessTable<S> {
        ProcessTable {
            boot_id: source.boot_id(),
            source,
            options,
            rows: Rows::default(),
            children: PidMap::default(),
            pids: Vec::new(),
            gone: Vec::new(),
            epoch: 0,
            clock: Instant::now(),
        }
    }

    /// Removes the row of `pid` without reading anything, and returns the
    /// identity it had: for callers told by the kernel that the process
    /// exited (or that it left the part of the tree they follow).
    pub(crate) fn remove_pid(&mut self, pid: Pid) -> Option<ProcessIdentity> {
        let mut diff = RefreshDiff::default();
        self.remove(pid, &mut diff);
        diff.exited.pop()
    }

    /// A copy of the rows and the parent index that answers every query
    /// as this table does now, and never changes: for readers that share
    /// one view (the HTTP API). Its source is empty, so it is not to be
    /// refreshed.
    #[cfg(feature = "http")]
    pub(crate) fn frozen(&self) -> ProcessTable<crate::MemorySource> {
        ProcessTable {
            source: crate::MemorySource::new(self.boot_id),
            options: self.options,
            boot_id: self.boot_id,
            rows: self.rows.clone(),
            children: self.children.clone(),
            pids: Vec::new(),
            gone: Vec::new(),
            epoch: self.epoch,
            clock: self.clock,
        }
    }

    /// The options the table was built with.
    pub fn options(&self) -> TableOptions {
        self.options
    }

    /// Re-reads every process and returns what changed.
    ///
    /// Known processes cost one sample each; new and exec'd ones a full read.
    /// A process that cannot be read for a reason other than being gone keeps
    /// its row and is reported in [`RefreshDiff::errors`]. Fails only when the
    /// process list itself cannot be read.
    pub fn refresh(&mut self) -> Result<RefreshDiff> {
        let mut pids = std::mem::take(&mut self.pids);
        let listed = self.source.list_pids(&mut pids);
        let mut diff = RefreshDiff::default();
        if listed.is_ok() {
            self.epoch = self.epoch.wrapping_add(1);
            let now = self.now();
            for &pid in &pids {
                self.refresh_one(pid, now, &mut diff);
            }
            self.drop_unseen(&mut diff);
        }
        self.pids = pids;
        listed.map(|()| diff)
    }

    /// Re-reads the given processes only: for callers fed by process events
    /// (fork, exec, exit notifications) between full refreshes. A pid that is
    /// gone has its row removed; a pid not in the table is added.
    pub fn refresh_pids(&mut self, pids: &[Pid]) -> RefreshDiff {
        let mut diff = RefreshDiff::default();
        let now = self.now();
        for &pid in pids {
            self.refresh_one(pid, now, &mut diff);
        }
        diff
    }

    /// Re-reads `pid` in full, as after an exec, whatever its cheap sample
    /// shows: for callers the kernel told that it ran a new program. (A row
    /// read in the middle of that exec may already hold the new program's
    /// markers with the old command line.)
    pub(crate) fn refresh_exec(&mut self, pid: Pid) -> RefreshDiff {
        let mut diff = RefreshDiff::default();
        let now = self.now();
        if self.rows.get(pid).is_some() {
            self.reread_after_exec(pid, now, Exec::Yes, &mut diff);
        } else {
            self.insert_new(pid, now, &mut diff);
        }
        diff
    }

    fn now(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn refresh_one(&mut self, pid: Pid, now: u64, diff: &mut RefreshDiff) {
        let Some(row) = self.rows.get_mut(pid) else {
            self.insert_new(pid, now, diff);
            return;
        };
        let sample = match self.source.sample(pid) {
            Ok(sample) => sample,
            Err(Error::NotFound { .. }) => {
                self.remove(pid, diff);
                return;
            }
            Err(other) => {
                row.seen = self.epoch;
                diff.errors.push(other);
                return;
            }
        };
        if sample.start_time != row.info.start_time() {
            // Another process on the same pid: the old one exited.
            self.remove(pid, diff);
            self.insert_new(pid, now, diff);
            return;
        }
        row.seen = self.epoch;
        let sampled_name_hash = name_hash(sample.name);
        let name_changed = sampled_name_hash != row.name_hash;
        let execed = is_exec(row, &sample, name_changed);
        let (old_parent, new_parent) = (row.info.parent, sample.parent);
        if sample.state.has_exited() && !row.info.state.has_exited() {
            // An exited process has no arguments or cwd left: what a fresh read
            // of a zombie shows.
            row.info.cmdline = CommandLine::default();
            row.info.cwd = Cwd::Unknown;
        }
        update_cpu(row, &sample, now);
        row.info.apply_sample(&sample, name_changed);
        row.name_hash = sampled_name_hash;
        if new_parent != old_parent {
            let identity = row.info.identity();
            diff.reparented.push(Reparented {
                identity,
                from: old_parent,
                to: new_parent,
            });
            self.move_edge(pid, old_parent, new_parent);
        }
        if execed != Exec::No {
            self.reread_after_exec(pid, now, execed, diff);
        } else if self.options.cwd_refresh == CwdRefresh::EveryRefresh {
            self.reread_cwd(pid, diff);
        }
    }

    /// Reads a process not in the table and inserts it.
    fn insert_new(&mut self, pid: Pid, now: u64, diff: &mut RefreshDiff) {
        match self.source.read(pid) {
            Ok((info, exec_marker)) => {
                let identity = info.identity();
                if let Some(parent) = info.parent {
                    self.children.entry(parent).or_default().push(pid);
                }
                let row = Row {
                    exec_marker,
                    sampled_at: now,
                    seen: self.epoch,
                    empty_cmdline_rechecked: false,
                    name_hash: name_hash(info.name().as_encoded_bytes()),
                    info,
                };
                self.rows.insert(pid, row);
                diff.spawned.push(identity);
            }
            Err(Error::NotFound { .. }) => {}
            Err(other) => diff.errors.push(other),
        }
    }

    /// A new program: take the command line, name and cwd from a full read, if
    /// that read is still of the same process. A `Maybe` is an exec only if the
    /// command line changed; otherwise the process just renamed itself.
    fn reread_after_exec(&mut self, pid: Pid, now: u64, exec: Exec, diff: &mut RefreshDiff) {
        match self.source.read(pid) {
            Ok((fresh, exec_marker)) => {
                let Some(row) = self.rows.get_mut(pid) else {
                    return;
                };
                if fresh.identity() != row.info.identity() {
                    self.remove(pid, diff);
                    self.insert_new(pid, now, diff);
                    return;
                }
                if exec == Exec::Yes || fresh.cmdline != row.info.cmdline {
                    diff.execed.push(row.info.identity());
                }
                row.empty_cmdline_rechecked = exec == Exec::Unfinished && fresh.cmdline.is_empty();
                row.exec_marker = exec_marker;
                row.name_hash = name_hash(fresh.name().as_encoded_bytes());
                row.info.name = fresh.name;
                row.info.cmdline = fresh.cmdline;
                row.info.cwd = fresh.cwd;
            }
            Err(Error::NotFound { .. }) => self.remove(pid, diff),
            Err(other) => diff.errors.push(other),
        }
    }

    /// The source the table reads through, for the layers built on the
    /// table (a tree kill reads its members through it).
    pub(crate) fn source_mut(&mut self) -> &mut S {
        &mut self.source
    }

    /// Re-reads the working directory of every process, whatever the
    /// [`CwdRefresh`] policy: for a search by directory that must not miss a
    /// process that changed directory since it was first seen.
    pub(crate) fn reread_cwds(&mut self) -> RefreshDiff {
        let mut diff = RefreshDiff::default();
        let pids: Vec<Pid> = self.rows.iter().map(|row| row.info.pid()).collect();
        for pid in pids {
            self.reread_cwd(pid, &mut diff);
        }
        diff
    }

    fn reread_cwd(&mut self, pid: Pid, diff: &mut RefreshDiff) {
        let Some(identity) = self.rows.get(pid).map(|row| row.info.identity()) else {
            return;
        };
        match self.source.read_cwd(identity) {
            Ok(cwd) => {
                if let Some(row) = self.rows.get_mut(pid) {
                    row.info.cwd = cwd;
                }
            }
            Err(Error::NotFound { .. }) => self.remove(pid, diff),
            Err(other) => diff.errors.push(other),
        }
    }

    /// Removes every row the last full refresh did not see.
    fn drop_unseen(&mut self, diff: &mut RefreshDiff) {
        let epoch = self.epoch;
        self.gone.extend(
            self.rows
                .iter()
                .filter(|row| row.seen != epoch)
                .map(|row| row.info.pid()),
        );
        self.gone.sort_unstable();
        let mut gone = std::mem::take(&mut self.gone);
        for pid in gone.drain(..) {
            self.remove(pid, diff);
        }
        self.gone = gone;
    }

    fn remove(&mut self, pid: Pid, diff: &mut RefreshDiff) {
        if let Some(row) = self.rows.remove(pid, |row| row.info.pid()) {
            self.source.forget(row.info.identity());
            self.move_edge(pid, row.info.parent, None);
            diff.exited.push(row.info.identity());
        }
    }

    fn move_edge(&mut self, pid: Pid, from: Option<Pid>, to: Option<Pid>) {
        if let Some(from) = from
            && let Some(siblings) = self.children.get_mut(&from)
        {
            if let Some(at) = siblings.iter().position(|&p| p == pid) {
                siblings.swap_remove(at);
            }
            if siblings.is_empty() {
                self.children.remove(&from);
            }
        }
        if let Some(to) = to {
            self.children.entry(to).or_default().push(pid);
        }
    }

    /// The boot the table's processes belong to.
    pub fn boot_id(&self) -> BootId {
        self.boot_id
    }
}

/// Whether a sample shows a new program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exec {
    No,
    /// The exec marker changed.
    Yes,
    /// The marker is unknown and the name changed: an exec or a rename.
    Maybe,
    /// A live process showed no arguments: perhaps caught mid-`execve`.
    Unfinished,
}

/// A new program, told by the exec marker where the source knows it and by the
/// name where it does not. Kernel threads rename themselves but never exec.
///
/// A process caught in the middle of `execve` shows its new name with no
/// arguments and no text segment yet; the marker appearing, or arguments still
/// missing from a live process, send it back for a full read.
fn is_exec(row: &Row, sample: &Sample<'_>, name_changed: bool) -> Exec {
    let marker_known = sample.exec_marker != 0 && row.exec_marker != 0;
    if sample.kernel_thread {
        Exec::No
    } else if marker_known && sample.exec_marker != row.exec_marker {
        Exec::Yes
    } else if !marker_known && (sample.exec_marker != row.exec_marker || name_changed) {
        Exec::Maybe
    } else if row.info.cmdline.is_empty()
        && !sample.state.has_exited()
        && !row.empty_cmdline_rechecked
    {
        Exec::Unfinished
    } else {
        Exec::No
    }
}

/// CPU percent of one CPU over the time since the row's last sample, as psutil
/// computes it. Unknown (None) until there are two samples.
fn update_cpu(row: &mut Row, sample: &Sample<'_>, now: u64) {
    let elapsed = now.saturating_sub(row.sampled_at);
    let before = row.info.cpu_time();
    let after = sample.user_time.saturating_add(sample.system_time);
    row.info.cpu_centi_percent = (elapsed > 0)
        .then(|| {
            let used = after.saturating_sub(before);
            (used.as_secs_f64() / Duration::from_nanos(elapsed).as_secs_f64() * 100.0) as f32
        })
        .and_then(crate::process::centi_percent);
    row.sampled_at = now;
}

/// FNV-1a over a process name (at most a few dozen bytes). A collision only
/// means a rename goes unseen until the next exec or full read.
fn name_hash(name: &[u8]) -> u64 {
    name.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
