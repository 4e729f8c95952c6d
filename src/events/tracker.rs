//! The table kept current by events: [`Tracker`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::connector::Connector;
use super::decode::{KernelEvent, Message};
use super::event::{Event, EventKind, Exit, Origin};
use super::probe::{DEFAULT_ACK_TIMEOUT, EventSource, Probe, ProbeReason};
use crate::table::{ProcessTable, RefreshDiff, TableOptions};
use crate::{Error, Pid, ProcessIdentity, ProcessSource, Result, SystemSource};

/// How many times a subtree rescan that events will follow walks the
/// children lists at most, looking for a walk that finds nothing new. A
/// polling rescan walks once: the next poll finds what this one missed.
const MAX_WALKS: usize = 4;

/// How many processes gone before they could be read the tracker keeps, to
/// tell their children's forkers.
const MAX_DROPPED: usize = 4096;

/// Which processes a [`Tracker`] follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every process on the system.
    All,
    /// One process and everything under it. Nothing outside it is read, so
    /// the cost does not grow with the host. A process that leaves the
    /// subtree by being reparented outside it (its parent died and no
    /// subreaper inside holds it) leaves the table too.
    Subtree(Pid),
}

/// How a [`Tracker`] gets its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrackerOptions {
    /// How the table refreshes.
    pub table: TableOptions,
    /// The netlink socket's receive buffer (`SO_RCVBUF`), bytes; `None`
    /// keeps the system's default. A small one loses events under load
    /// (each loss costs a resync).
    pub receive_buffer: Option<usize>,
    /// How long to wait for the kernel's answer to the listen request.
    pub ack_timeout: Duration,
    /// The interval between refreshes when polling.
    pub poll_interval: Duration,
    /// Poll even where the proc connector works.
    pub polling: bool,
}

impl Default for TrackerOptions {
    fn default() -> Self {
        TrackerOptions {
            table: TableOptions::default(),
            receive_buffer: Some(4 << 20),
            ack_timeout: DEFAULT_ACK_TIMEOUT,
            poll_interval: Duration::from_secs(1),
            polling: false,
        }
    }
}

impl TrackerOptions {
    /// Sets [`receive_buffer`](Self::receive_buffer).
    pub fn receive_buffer(mut self, bytes: Option<usize>) -> Self {
        self.receive_buffer = bytes;
        self
    }

    /// Sets [`poll_interval`](Self::poll_interval).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets [`polling`](Self::polling).
    pub fn polling(mut self, polling: bool) -> Self {
        self.polling = polling;
        self
    }

    /// Sets [`table`](Self::table).
    pub fn table(mut self, table: TableOptions) -> Self {
        self.table = table;
        self
    }
}

/// A [`ProcessTable`] kept current by process events, and the events.
///
/// With the proc connector, the table changes only when the kernel reports
/// something: a new process is read once (pinned, through the table's
/// source) when the batch of events that announced it has been applied, so
/// its exec in the same batch costs nothing more; an exit removes its row
/// without reading anything (its children, reparented, are sampled once);
/// a later exec re-reads the process. [`sync`](Self::sync) with nothing new
/// costs no `/proc` read at all.
///
/// Events come in the kernel's order. Known limits: a thread-group leader
/// that ends with `pthread_exit` while other threads run is reported as
/// exited (the kernel reports its exit); the (pid, start time) identity
/// cannot tell apart two processes that held one pid within one clock
/// tick. Without the connector (see [`probe`](super::probe))
/// the tracker refreshes the table at an interval and reports the same
/// events, found by difference; callers never branch.
///
/// Lost kernel events (a per-CPU sequence gap, `ENOBUFS`) are never silent:
/// the tracker resyncs with one refresh and reports what it found with
/// [`Origin::Resync`].
///
/// Rows leave the table when their process exits, not when it is reaped:
/// zombies are not kept.
///
/// ```no_run
/// use proctrack::events::Tracker;
///
/// let mut tracker = Tracker::all()?;
/// println!("events from: {}", tracker.probe());
/// for event in &mut tracker {
///     println!("{}", event?);
/// }
/// # Ok::<(), proctrack::Error>(())
/// ```
#[derive(Debug)]
pub struct Tracker<S: ProcessSource = SystemSource> {
    table: ProcessTable<S>,
    scope: Scope,
    /// Subtree scope: the pids the events put in the subtree, read or not (a
    /// short-lived member may vanish before it is read, and its children
    /// still belong).
    members: HashSet<Pid>,
    /// Subtree scope: members a resync found gone. Events queued behind the
    /// resync may still name them: a fork by one of them is inside (its
    /// child is reparented by now, but its fork event says who forked it),
    /// and its exit moves children that rows may still list under it. Their
    /// exit is not reported again; a fork that reuses the pid ends it.
    departed: HashSet<Pid>,
    /// Rows a re-read found gone before the kernel's exit event came: the
    /// event still reports the identity.
    awaiting_exit: HashMap<Pid, ProcessIdentity>,
    /// Exited but unreaped processes the last rescan found and dropped: the
    /// next rescan meets them again and must not call them new.
    zombies: HashSet<ProcessIdentity>,
    connector: Option<Connector>,
    probe: Probe,
    poll_interval: Duration,
    next_poll: Instant,
    last_seq: HashMap<u32, u32>,
    messages: Vec<Message>,
    /// The events of the batch being applied, in the kernel's order.
    batch: Vec<Slot>,
    /// New processes of this batch not read yet: read once at the end of
    /// the batch, so a fork and its exec cost one read, not two.
    unread: HashSet<Pid>,
    pending: VecDeque<Event>,
    /// Who forked each new process not resolved yet (kernel fork events).
    forkers: HashMap<Pid, Pid>,
    /// Processes gone before they could be read, and who forked them: a
    /// child of one is told as forked by that one's forker.
    dropped: HashMap<Pid, Pid>,
    resyncs: u64,
    #[cfg(feature = "tokio")]
    async_fd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
}

impl Tracker<SystemSource> {
    /// Follows every process on this system.
    pub fn all() -> Result<Tracker<SystemSource>> {
        Tracker::with_source(SystemSource::open()?, Scope::All, TrackerOptions::default())
    }

    /// Follows `root` and everything under it, reading nothing else.
    pub fn track(root: Pid) -> Result<Tracker<SystemSource>> {
        Tracker::with_source(
            SystemSource::open()?,
            Scope::Subtree(root),
            TrackerOptions::default(),
        )
    }
}

impl<S: ProcessSource> Tracker<S> {
    /// A tracker over any source. The proc connector reports this system's
    /// processes: for another source (a fixture, a `MemorySource`) set
    /// [`TrackerOptions::polling`].
    ///
    /// Subscribes before the first scan, so nothing that happens during the
    /// scan is missed. [`Error::NotFound`] when a subtree's root is gone.
    pub fn with_source(source: S, scope: Scope, options: TrackerOptions) -> Result<Tracker<S>> {
        let (connector, probe) = if options.polling {
            (None, Probe::polling(ProbeReason::Requested))
        } else {
            match Connector::open(options.receive_buffer, options.ack_timeout) {
                Ok((connector, probe)) => (Some(connector), probe),
                Err(reason) => (None, Probe::polling(reason)),
            }
        };
        let mut tracker = Tracker {
            table: ProcessTable::empty(source, options.table),
            scope,
            members: HashSet::new(),
            departed: HashSet::new(),
            awaiting_exit: HashMap::new(),
            zombies: HashSet::new(),
            connector,
            probe,
            poll_interval: options.poll_interval,
            next_poll: Instant::now() + options.poll_interval,
            last_seq: HashMap::new(),
            messages: Vec::new(),
            batch: Vec::new(),
            unread: HashSet::new(),
            pending: VecDeque::new(),
            forkers: HashMap::new(),
            dropped: HashMap::new(),
            resyncs: 0,
            #[cfg(feature = "tokio")]
            async_fd: None,
        };
        let walks = if tracker.connector.is_some() {
            MAX_WALKS
        } else {
            1
        };
        tracker.rescan(walks)?;
        if let Scope::Subtree(root) = scope
            && tracker.table.get(root).is_none()
        {
            return Err(Error::NotFound { pid: root });
        }
        Ok(tracker)
    }

    /// The table, current as of the last event handled.
    pub fn table(&self) -> &ProcessTable<S> {
        &self.table
    }

    /// Which source runs, and why.
    pub fn probe(&self) -> Probe {
        self.probe
    }

    /// What the tracker follows.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// How many times lost kernel events made the tracker resync.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// Applies every event waiting, without blocking, and returns how many
    /// events are ready to take. With the proc connector and nothing new this
    /// reads nothing from `/proc`. When polling, this refreshes now.
    pub fn sync(&mut self) -> Result<usize> {
        if self.connector.is_some() {
            self.drain()?;
        } else {
            self.poll_now()?;
        }
        Ok(self.pending.len())
    }

    /// Takes a new sample (CPU time, memory, state) of every process in
    /// the table: events say when processes start, run a program and
    /// exit, not how much they run. One cheap read per process. A process
    /// found gone leaves the table now; its exit is reported when the
    /// kernel's event comes (when polling, at once). For the whole-system
    /// scope (the HTTP API's).
    #[cfg(feature = "http")]
    pub(crate) fn resample(&mut self) {
        let pids: Vec<Pid> = self.table.iter().map(|p| p.pid()).collect();
        let mut diff = self.table.refresh_pids(&pids);
        // Exits wait for the kernel's own event (with the exit code) where
        // there is a connector. A pid reused, or a program run, since the
        // last event is told now (the kernel's own event follows and is
        // told as well).
        let exited = std::mem::take(&mut diff.exited);
        self.push_exits(exited, self.connector.is_some(), Origin::Poll);
        self.push_diff(diff, Origin::Poll);
    }

    /// The next event, waiting at most `timeout` (forever with `None`);
    /// `Ok(None)` when the time ran out first. A zero timeout still takes
    /// what the kernel has sent.
    pub fn wait_event(&mut self, timeout: Option<Duration>) -> Result<Option<Event>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match &self.connector {
                Some(connector) => {
                    if connector.wait(left).map_err(io_error)? {
                        self.drain()?;
                        continue;
                    }
                }
                None => {
                    let until_poll = self.next_poll.saturating_duration_since(Instant::now());
                    match left {
                        Some(left) if left < until_poll => std::thread::sleep(left),
                        _ => {
                            std::thread::sleep(until_poll);
                            self.poll_now()?;
                            continue;
                        }
                    }
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
        }
    }

    /// The next event; async, on tokio's reactor (the netlink socket is
    /// waited on with `AsyncFd`). Reading a new process's `/proc` files is
    /// done inline: a few microseconds each.
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn next_async(&mut self) -> Result<Event> {
        use tokio::io::Interest;
        use tokio::io::unix::AsyncFd;
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            let Some(connector) = &self.connector else {
                tokio::time::sleep_until(self.next_poll.into()).await;
                self.poll_now()?;
                continue;
            };
            if self.async_fd.is_none() {
                let fd = connector.fd().try_clone_to_owned().map_err(|e| Error::Io {
                    path: None,
                    source: e,
                })?;
                // Deprecated because an arbitrary `AsRawFd` could change or
                // close its fd while registered; an `OwnedFd` cannot, so the
                // safe constructor is sound (as in `signal/wait.rs`).
                #[allow(deprecated)]
                let async_fd =
                    AsyncFd::with_interest(fd, Interest::READABLE).map_err(|e| Error::Io {
                        path: None,
                        source: e,
                    })?;
                self.async_fd = Some(async_fd);
            }
            let Some(async_fd) = &self.async_fd else {
                continue;
            };
            let mut guard = async_fd.readable().await.map_err(|e| Error::Io {
                path: None,
                source: e,
            })?;
            // The drain reads until EAGAIN, so the readiness is spent.
            guard.clear_ready();
            self.drain()?;
        }
    }

    fn poll_now(&mut self) -> Result<()> {
        self.next_poll = Instant::now() + self.poll_interval;
        let diff = self.rescan(1)?;
        // No kernel events will name them.
        self.departed.clear();
        self.push_diff(diff, Origin::Poll);
        Ok(())
    }

    /// Reads the socket dry and applies what it held; resyncs after a loss.
    fn drain(&mut self) -> Result<()> {
        let Some(connector) = &mut self.connector else {
            return Ok(());
        };
        let mut messages = std::mem::take(&mut self.messages);
        messages.clear();
        let drained = connector.drain(&mut messages).map_err(io_error)?;
        let mut lost = drained.lost;
        for message in messages.drain(..) {
            let (cpu, seq, event) = match message {
                Message::Event { cpu, seq, event } => (cpu, seq, Some(event)),
                Message::Ack { cpu, seq, .. } => (cpu, seq, None),
                _ => continue,
            };
            if let Some(last) = self.last_seq.insert(cpu, seq)
                && seq != last.wrapping_add(1)
            {
                lost = true;
            }
            if let Some(event) = event {
                self.apply(event);
            }
        }
        self.messages = messages;
        self.finish_batch();
        if lost {
            self.resync()?;
        }
        Ok(())
    }

    /// After lost events: one rescan, reported as [`Origin::Resync`]. The
    /// events queued behind it are applied afterwards, as usual.
    fn resync(&mut self) -> Result<()> {
        self.resyncs += 1;
        self.awaiting_exit.clear();
        let diff = self.rescan(MAX_WALKS)?;
        self.push_diff(diff, Origin::Resync);
        Ok(())
    }

    /// One kernel event into the table, and out as events.
    fn apply(&mut self, event: KernelEvent) {
        match event {
            KernelEvent::Fork {
                parent_tgid,
                child_pid,
                child_tgid,
                ..
            } if child_pid == child_tgid => {
                let Ok(child) = Pid::try_from(child_tgid) else {
                    return;
                };
                if let Scope::Subtree(_) = self.scope {
                    // A new process on this pid: whoever had it is gone.
                    self.departed.remove(&child);
                    match Pid::try_from(parent_tgid) {
                        Ok(parent)
                            if self.members.contains(&parent)
                                || self.departed.contains(&parent) => {}
                        _ => return,
                    }
                    self.members.insert(child);
                }
                self.awaiting_exit.remove(&child);
                if self.table.get(child).is_some() {
                    // A row left on this pid (its exit was lost): re-read now.
                    let diff = self.table.refresh_pids(&[child]);
                    self.push_diff(diff, Origin::Kernel);
                    return;
                }
                if let Ok(parent) = Pid::try_from(parent_tgid) {
                    self.forkers.insert(child, parent);
                }
                self.unread.insert(child);
                self.batch.push(Slot::Spawned(child));
            }
            KernelEvent::Exec { tgid, .. } => {
                let Some(pid) = self.member(tgid) else { return };
                if self.unread.contains(&pid) {
                    // Its read at the end of the batch shows the new program.
                    self.batch.push(Slot::Later(pid, Later::Exec));
                    return;
                }
                let diff = self.table.refresh_exec(pid);
                let already = diff.execed.iter().any(|p| p.pid() == pid)
                    || diff.spawned.iter().any(|p| p.pid() == pid);
                self.push_diff(diff, Origin::Kernel);
                if !already && let Some(info) = self.table.get(pid) {
                    self.push(EventKind::Exec {
                        process: info.identity(),
                    });
                }
            }
            KernelEvent::Exit {
                pid,
                tgid,
                exit_code,
                ..
            } if pid == tgid => {
                let Some(pid) = self.member(tgid) else {
                    // Reported gone by a resync already: only its orphans.
                    if let Ok(pid) = Pid::try_from(tgid)
                        && self.departed.remove(&pid)
                    {
                        self.reread_orphans(pid);
                    }
                    return;
                };
                if self.unread.remove(&pid) {
                    // Read it before its row goes: an unreaped process still
                    // tells its identity.
                    let _ = self.table.refresh_pids(&[pid]);
                    self.resolve(pid);
                }
                let process = self
                    .table
                    .remove_pid(pid)
                    .or_else(|| self.awaiting_exit.remove(&pid));
                if let Scope::Subtree(_) = self.scope {
                    self.members.remove(&pid);
                }
                self.push(EventKind::Exited {
                    pid,
                    process,
                    exit: Exit::from_wait_status(exit_code),
                });
                self.reread_orphans(pid);
            }
            KernelEvent::Comm { pid, tgid, .. } if pid == tgid => {
                self.reread_and_report(tgid, Later::Renamed);
            }
            KernelEvent::Sid { tgid, .. } => {
                self.reread_and_report(tgid, Later::NewSession);
            }
            _ => {}
        }
    }

    /// The kernel reparents an exiting process's children before it reports
    /// the exit: re-reads the rows that still name `parent`, to learn their
    /// new parent. By the recorded parent, not by the parent's row, which
    /// may be gone already (a re-read found it gone, or a resync did).
    fn reread_orphans(&mut self, parent: Pid) {
        let orphans = self.table.children_named(parent);
        if !orphans.is_empty() {
            let diff = self.table.refresh_pids(&orphans);
            self.push_diff(diff, Origin::Kernel);
            self.prune(&orphans);
        }
    }

    fn reread_and_report(&mut self, tgid: i32, later: Later) {
        let Some(pid) = self.member(tgid) else { return };
        if self.unread.contains(&pid) {
            self.batch.push(Slot::Later(pid, later));
            return;
        }
        let diff = self.table.refresh_pids(&[pid]);
        self.push_diff(diff, Origin::Kernel);
        if let Some(info) = self.table.get(pid) {
            self.push(later.kind(info.identity()));
        }
    }

    /// Reads the batch's new processes, once each, and hands the batch's
    /// events on in the kernel's order.
    fn finish_batch(&mut self) {
        let unread: Vec<Pid> = self
            .batch
            .iter()
            .filter_map(|slot| match *slot {
                Slot::Spawned(pid) if self.unread.contains(&pid) => Some(pid),
                _ => None,
            })
            .collect();
        self.unread.clear();
        if !unread.is_empty() {
            let diff = self.table.refresh_pids(&unread);
            for &pid in &unread {
                self.resolve(pid);
            }
            // Spawns are in the batch already; the rest (none, normally).
            let rest = RefreshDiff {
                spawned: Vec::new(),
                ..diff
            };
            self.push_diff(rest, Origin::Kernel);
            // Read after their parent exited: maybe outside the subtree.
            self.prune(&unread);
        }
        let batch = std::mem::take(&mut self.batch);
        for slot in batch {
            if let Slot::Ready(event) = slot {
                self.pending.push_back(event);
            }
        }
    }

    /// Turns the batch's open slots for `pid` into events, from its row
    /// (or into nothing, when it could not be read).
    fn resolve(&mut self, pid: Pid) {
        let found = self
            .table
            .get(pid)
            .map(|info| (info.identity(), info.parent()));
        let forker = self.forkers.remove(&pid);
        if found.is_none()
            && let Some(forker) = forker
        {
            // Bounded: a long-gone process forks nothing more.
            if self.dropped.len() >= MAX_DROPPED {
                self.dropped.clear();
            }
            self.dropped.insert(pid, forker);
        }
        let forked_by = forker.map(|mut forker| {
            // Past forkers that were never reported (a loop of reused pids
            // ends at the bound).
            for _ in 0..MAX_DROPPED {
                match self.dropped.get(&forker) {
                    Some(&up) if up != forker => forker = up,
                    _ => break,
                }
            }
            forker
        });
        for slot in &mut self.batch {
            let kind = match *slot {
                Slot::Spawned(p) if p == pid => found.map(|(process, parent)| EventKind::Spawned {
                    process,
                    parent,
                    forked_by,
                }),
                Slot::Later(p, later) if p == pid => found.map(|(process, _)| later.kind(process)),
                _ => continue,
            };
            *slot = match kind {
                Some(kind) => Slot::Ready(Event {
                    kind,
                    origin: Origin::Kernel,
                }),
                None => Slot::Dropped,
            };
        }
    }

    /// The pid of a process the tracker follows, if `tgid` is one.
    fn member(&self, tgid: i32) -> Option<Pid> {
        let pid = Pid::try_from(tgid).ok()?;
        match self.scope {
            Scope::All => Some(pid),
            Scope::Subtree(_) => self.members.contains(&pid).then_some(pid),
        }
    }

    /// Subtree scope: drops `moved` processes (and what is under them) whose
    /// parent is no longer in the subtree. No event: they did not exit.
    fn prune(&mut self, moved: &[Pid]) {
        let Scope::Subtree(root) = self.scope else {
            return;
        };
        for &pid in moved {
            let Some(info) = self.table.get(pid) else {
                continue;
            };
            let inside = pid == root
                || info
                    .parent()
                    .is_some_and(|parent| self.members.contains(&parent));
            if inside {
                continue;
            }
            let mut gone: Vec<Pid> = self
                .table
                .descendants(pid)
                .iter()
                .map(|d| d.pid())
                .collect();
            gone.push(pid);
            for pid in gone {
                self.table.remove_pid(pid);
                self.members.remove(&pid);
            }
        }
    }

    /// Brings the table up to date by reading: every process (all), or the
    /// subtree found through the source's children lists (subtree).
    fn rescan(&mut self, walks: usize) -> Result<RefreshDiff> {
        let mut diff = match self.scope {
            Scope::All => self.table.refresh()?,
            Scope::Subtree(root) => self.rescan_subtree(root, walks)?,
        };
        self.drop_zombies(&mut diff);
        Ok(diff)
    }

    /// A refresh reads exited, unreaped processes too; the kernel's exit
    /// event removes a row at exit. Rows from a rescan follow the events'
    /// rule, so that polling and the connector report the same things.
    fn drop_zombies(&mut self, diff: &mut RefreshDiff) {
        let found: HashSet<ProcessIdentity> = self
            .table
            .iter()
            .filter(|info| info.state().has_exited())
            .map(|info| info.identity())
            .collect();
        for zombie in &found {
            self.table.remove_pid(zombie.pid());
            if self.members.remove(&zombie.pid()) {
                // Its exit event may still be queued: see `departed`.
                self.departed.insert(zombie.pid());
            }
            let new = diff.spawned.contains(zombie);
            if new && self.zombies.contains(zombie) {
                // Dropped last time already: neither new nor exited.
                diff.spawned.retain(|p| p != zombie);
            } else if !diff.exited.contains(zombie) {
                diff.exited.push(*zombie);
            }
        }
        self.zombies = found;
    }

    /// The subtree as the source's children lists show it, while it keeps
    /// changing: a child can move from a parent not walked yet to one walked
    /// already (its parent exited and it was reparented up), and a list read
    /// while siblings exit can skip one. So the walk is repeated until one
    /// finds nothing new (at most `walks` times), and a row whose
    /// recorded parent is not the one listing it is re-read.
    fn rescan_subtree(&mut self, root: Pid, walks: usize) -> Result<RefreshDiff> {
        let before = std::mem::take(&mut self.members);
        let known: Vec<Pid> = self.table.iter().map(|info| info.pid()).collect();
        let mut diff = self.table.refresh_pids(&known);
        if self.table.get(root).is_none() {
            merge(&mut diff, self.table.refresh_pids(&[root]));
        }
        let mut found = HashSet::new();
        let mut children = Vec::new();
        'walks: for _ in 0..walks {
            let mut news = false;
            let mut queue = vec![root];
            while let Some(pid) = queue.pop() {
                match self.table.source_mut().children(pid, &mut children) {
                    Ok(true) => {}
                    Ok(false) => {
                        // No per-process children lists here: one full refresh.
                        merge(&mut diff, self.table.refresh()?);
                        break 'walks;
                    }
                    Err(Error::NotFound { .. }) => continue,
                    Err(other) => {
                        diff.errors.push(other);
                        continue;
                    }
                }
                let stale: Vec<Pid> = children
                    .iter()
                    .copied()
                    .filter(|&child| {
                        self.table
                            .get(child)
                            .is_none_or(|info| info.parent() != Some(pid))
                    })
                    .collect();
                merge(&mut diff, self.table.refresh_pids(&stale));
                for &child in &children {
                    news |= found.insert(child);
                }
                queue.extend_from_slice(&children);
            }
            if !news {
                break;
            }
        }
        // A row whose parent has no row any more was moved when that parent
        // exited, perhaps while the walk ran: read where it went.
        let dangling: Vec<Pid> = self
            .table
            .iter()
            .filter(|info| {
                info.pid() != root
                    && info
                        .parent()
                        .is_some_and(|parent| self.table.get(parent).is_none())
            })
            .map(|info| info.pid())
            .collect();
        merge(&mut diff, self.table.refresh_pids(&dangling));
        // Keep the subtree; everything else leaves without an event.
        let mut inside: HashSet<Pid> = self
            .table
            .descendants(root)
            .iter()
            .map(|d| d.pid())
            .collect();
        if self.table.get(root).is_some() {
            inside.insert(root);
        }
        let outside: HashSet<Pid> = self
            .table
            .iter()
            .map(|info| info.pid())
            .filter(|pid| !inside.contains(pid))
            .collect();
        for &pid in &outside {
            self.table.remove_pid(pid);
        }
        // Members not found alive (gone, or never read) may still be named by
        // the events queued behind this rescan.
        self.departed.extend(
            before
                .iter()
                .copied()
                .filter(|pid| !inside.contains(pid) && !outside.contains(pid)),
        );
        self.departed.retain(|pid| !inside.contains(pid));
        diff.spawned.retain(|p| inside.contains(&p.pid()));
        diff.execed.retain(|p| inside.contains(&p.pid()));
        diff.exited.retain(|p| before.contains(&p.pid()));
        diff.reparented
            .retain(|r| inside.contains(&r.identity.pid()));
        self.members = inside;
        Ok(diff)
    }

    fn push(&mut self, kind: EventKind) {
        self.push_with(kind, Origin::Kernel);
    }

    /// Kernel events wait in the batch, in order; refreshes' go out at once.
    fn push_with(&mut self, kind: EventKind, origin: Origin) {
        let event = Event { kind, origin };
        match origin {
            Origin::Kernel => self.batch.push(Slot::Ready(event)),
            Origin::Resync | Origin::Poll => self.pending.push_back(event),
        }
    }

    /// A refresh's findings as events. Exits found by a re-read the kernel
    /// will report itself (with the exit code) wait for that report.
    fn push_diff(&mut self, diff: RefreshDiff, origin: Origin) {
        for process in diff.spawned {
            let parent = self
                .table
                .get_identity(process)
                .and_then(|info| info.parent());
            self.push_with(
                EventKind::Spawned {
                    process,
                    parent,
                    forked_by: None,
                },
                origin,
            );
        }
        for process in diff.execed {
            self.push_with(EventKind::Exec { process }, origin);
        }
        self.push_exits(diff.exited, origin == Origin::Kernel, origin);
    }

    /// Exits a refresh found: held until the kernel tells them (with the
    /// exit code) when `kernel_tells`, else told now with `origin`.
    fn push_exits(&mut self, exited: Vec<ProcessIdentity>, kernel_tells: bool, origin: Origin) {
        for process in exited {
            if kernel_tells {
                self.awaiting_exit.insert(process.pid(), process);
            } else {
                self.push_with(
                    EventKind::Exited {
                        pid: process.pid(),
                        process: Some(process),
                        exit: Exit::Unknown,
                    },
                    origin,
                );
            }
        }
    }

    /// Whether events come from the kernel or from polling.
    pub fn source(&self) -> EventSource {
        self.probe.source()
    }
}

/// Blocks for each next event; never ends (errors are items).
impl<S: ProcessSource> Iterator for Tracker<S> {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Result<Event>> {
        self.wait_event(None).transpose()
    }
}

fn merge(into: &mut RefreshDiff, from: RefreshDiff) {
    into.spawned.extend(from.spawned);
    into.exited.extend(from.exited);
    into.execed.extend(from.execed);
    into.reparented.extend(from.reparented);
    into.errors.extend(from.errors);
}

fn io_error(source: std::io::Error) -> Error {
    Error::io(None, source)
}

/// An event of the batch being applied.
#[derive(Debug)]
enum Slot {
    Ready(Event),
    /// A new process, read at its exit or at the end of the batch.
    Spawned(Pid),
    /// News of a process not read yet.
    Later(Pid, Later),
    /// A process gone before it could be read: nothing to report.
    Dropped,
}

/// What a [`Slot::Later`] reports once its process is read.
#[derive(Debug, Clone, Copy)]
enum Later {
    Exec,
    Renamed,
    NewSession,
}

impl Later {
    fn kind(self, process: ProcessIdentity) -> EventKind {
        match self {
            Later::Exec => EventKind::Exec { process },
            Later::Renamed => EventKind::Renamed { process },
            Later::NewSession => EventKind::NewSession { process },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BootId, MemorySource, ProcessInfo, StartTime, State};

    const BOOT: BootId = BootId::from_bytes([7; 16]);

    fn pid(raw: u32) -> Pid {
        Pid::try_from(raw).expect("a pid")
    }

    fn process(raw: u32, parent: u32, state: State) -> ProcessInfo {
        let identity = ProcessIdentity::new(BOOT, pid(raw), StartTime::from_raw(u64::from(raw)));
        ProcessInfo::builder(identity)
            .parent(Pid::try_from(parent).ok())
            .name("p")
            .state(state)
            .build()
    }

    fn kinds(tracker: &mut Tracker<MemorySource>) -> Vec<(&'static str, u32)> {
        tracker.sync().expect("sync");
        let mut out = Vec::new();
        while let Some(event) = tracker.wait_event(Some(Duration::ZERO)).expect("event") {
            assert_eq!(event.origin, Origin::Poll);
            out.push(match event.kind {
                EventKind::Spawned { process, .. } => ("spawned", process.pid().as_u32()),
                EventKind::Exec { process } => ("exec", process.pid().as_u32()),
                EventKind::Exited { pid, .. } => ("exited", pid.as_u32()),
                EventKind::Renamed { process } => ("renamed", process.pid().as_u32()),
                EventKind::NewSession { process } => ("session", process.pid().as_u32()),
            });
        }
        out.sort_unstable();
        out
    }

    fn pids(tracker: &Tracker<MemorySource>) -> Vec<u32> {
        let mut pids: Vec<u32> = tracker.table().iter().map(|p| p.pid().as_u32()).collect();
        pids.sort_unstable();
        pids
    }

    /// A source that cannot list one process's children (macOS, here a
    /// `MemorySource`): a subtree is found by a full refresh, then pruned.
    #[test]
    fn a_polled_subtree_reports_only_its_own_changes_and_zombies_once() {
        let mut source = MemorySource::new(BOOT);
        for (raw, parent) in [(1, 0), (10, 1), (11, 10), (20, 1)] {
            source.insert(process(raw, parent, State::Sleeping));
        }
        let options = TrackerOptions::default().polling(true);
        let mut tracker =
            Tracker::with_source(source, Scope::Subtree(pid(10)), options).expect("tracker");
        assert_eq!(pids(&tracker), [10, 11]);

        // 11 exits; its child 12 went to pid 1, outside; 13 is new inside;
        // 21 is new outside.
        let memory = tracker.table.source_mut();
        memory.remove(pid(11));
        memory.insert(process(12, 1, State::Sleeping));
        memory.insert(process(13, 10, State::Sleeping));
        memory.insert(process(21, 20, State::Sleeping));
        assert_eq!(kinds(&mut tracker), [("exited", 11), ("spawned", 13)]);
        assert_eq!(pids(&tracker), [10, 13]);

        // 13 exits but is not reaped: one exit, then nothing.
        tracker
            .table
            .source_mut()
            .insert(process(13, 10, State::Zombie));
        assert_eq!(kinds(&mut tracker), [("exited", 13)]);
        assert_eq!(kinds(&mut tracker), []);
        assert_eq!(pids(&tracker), [10]);

        // Reaped: still nothing. Then the root exits.
        tracker.table.source_mut().remove(pid(13));
        assert_eq!(kinds(&mut tracker), []);
        tracker.table.source_mut().remove(pid(10));
        assert_eq!(kinds(&mut tracker), [("exited", 10)]);
        assert!(pids(&tracker).is_empty());
    }
}

/// The tracker's rules for events that race with exits and with a resync,
/// on synthetic events over a source whose processes change at chosen
/// moments of a read.
#[cfg(test)]
mod race_tests {
    use super::*;
    use crate::{BootId, Cwd, MemorySource, ProcessInfo, Sample, StartTime, State};

    const BOOT: BootId = BootId::from_bytes([9; 16]);

    fn pid(raw: u32) -> Pid {
        Pid::try_from(raw).expect("a pid")
    }

    fn process(raw: u32, parent: u32) -> ProcessInfo {
        let identity = ProcessIdentity::new(BOOT, pid(raw), StartTime::from_raw(u64::from(raw)));
        ProcessInfo::builder(identity)
            .parent(Pid::try_from(parent).ok())
            .name("p")
            .state(State::Sleeping)
            .build()
    }

    type Change = Box<dyn FnOnce(&mut MemorySource)>;

    /// A `MemorySource` where the system changes in the middle of a read:
    /// `on_sample` answers with the process as it was, then applies the
    /// change; `on_children` applies it before answering. `hidden` is left
    /// out of every children list (the kernel's list can skip a child while
    /// its siblings exit).
    struct Staged {
        memory: MemorySource,
        on_sample: Option<(Pid, Change)>,
        on_children: Option<(Pid, Change)>,
        hidden: Option<Pid>,
        held: Option<ProcessInfo>,
    }

    impl std::fmt::Debug for Staged {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Staged")
                .field("memory", &self.memory)
                .finish()
        }
    }

    impl Staged {
        fn new(processes: &[(u32, u32)]) -> Staged {
            let mut memory = MemorySource::new(BOOT);
            for &(raw, parent) in processes {
                memory.insert(process(raw, parent));
            }
            Staged {
                memory,
                on_sample: None,
                on_children: None,
                hidden: None,
                held: None,
            }
        }
    }

    impl ProcessSource for Staged {
        fn boot_id(&self) -> BootId {
            BOOT
        }

        fn list_pids(&mut self, pids: &mut Vec<Pid>) -> Result<()> {
            self.memory.list_pids(pids)
        }

        fn sample(&mut self, pid: Pid) -> Result<Sample<'_>> {
            if self.on_sample.as_ref().is_none_or(|(at, _)| *at != pid) {
                return self.memory.sample(pid);
            }
            if let Some((_, change)) = self.on_sample.take() {
                self.held = self.memory.get(pid).cloned();
                change(&mut self.memory);
            }
            self.held
                .as_ref()
                .map(Sample::of)
                .ok_or(Error::NotFound { pid })
        }

        fn read(&mut self, pid: Pid) -> Result<(ProcessInfo, u64)> {
            self.memory.read(pid)
        }

        fn read_cwd(&mut self, identity: ProcessIdentity) -> Result<Cwd> {
            self.memory.read_cwd(identity)
        }

        fn children(&mut self, pid: Pid, children: &mut Vec<Pid>) -> Result<bool> {
            if self.on_children.as_ref().is_some_and(|(at, _)| *at == pid)
                && let Some((_, change)) = self.on_children.take()
            {
                change(&mut self.memory);
            }
            let listed = self.memory.children(pid, children)?;
            children.retain(|&child| Some(child) != self.hidden);
            Ok(listed)
        }
    }

    fn tracker(source: Staged, root: u32) -> Tracker<Staged> {
        // Polling only keeps the connector away: the test applies the
        // kernel's events itself, in the kernel's order.
        let options = TrackerOptions::default().polling(true);
        Tracker::with_source(source, Scope::Subtree(pid(root)), options).expect("tracker")
    }

    fn fork(parent: u32, child: u32) -> KernelEvent {
        KernelEvent::Fork {
            parent_pid: parent as i32,
            parent_tgid: parent as i32,
            child_pid: child as i32,
            child_tgid: child as i32,
        }
    }

    fn exit(raw: u32) -> KernelEvent {
        KernelEvent::Exit {
            pid: raw as i32,
            tgid: raw as i32,
            exit_code: 0,
            exit_signal: 17,
            parent_pid: 0,
            parent_tgid: 0,
        }
    }

    /// One batch of events, as `drain` applies it.
    fn batch(tracker: &mut Tracker<Staged>, events: &[KernelEvent]) {
        for &event in events {
            tracker.apply(event);
        }
        tracker.finish_batch();
    }

    /// The subtree as the table shows it: (pid, parent) by trusted edges
    /// from the root, ascending.
    fn subtree(tracker: &Tracker<Staged>, root: u32) -> Vec<(u32, u32)> {
        let table = tracker.table();
        let mut out: Vec<(u32, u32)> = table
            .descendants(pid(root))
            .iter()
            .map(|p| {
                let parent = p.parent().map_or(0, Pid::as_u32);
                (p.pid().as_u32(), parent)
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// A re-read (here for a rename) finds 20 gone before its exit event
    /// is applied: its row goes, and its exit must still move the child
    /// whose row names it.
    #[test]
    fn an_exit_moves_the_children_of_a_parent_whose_row_is_gone() {
        let source = Staged::new(&[(1, 0), (10, 1), (20, 10), (30, 20)]);
        let mut tracker = tracker(source, 1);
        assert_eq!(subtree(&tracker, 1), [(10, 1), (20, 10), (30, 20)]);

        // 20 exits and is reaped; the kernel moves 30 to the subreaper 1.
        let memory = &mut tracker.table.source_mut().memory;
        memory.remove(pid(20));
        memory.insert(process(30, 1));
        let rename = KernelEvent::Comm {
            pid: 20,
            tgid: 20,
            comm: [0; 16],
        };
        batch(&mut tracker, &[rename, exit(20)]);
        assert_eq!(subtree(&tracker, 1), [(10, 1), (30, 1)]);
    }

    /// During a resync 30 is sampled under its parent 20; then 20 exits
    /// (30 moves to 1) and is sampled gone. The walk lists 30 under 1: its
    /// row must be re-read, not dropped as outside the subtree.
    #[test]
    fn a_resync_rereads_a_child_whose_parent_exits_during_it() {
        let source = Staged::new(&[(1, 0), (10, 1), (20, 10), (30, 20)]);
        let mut tracker = tracker(source, 1);
        // Rows in the order 1, 10, 30, 20 (20 read again, as after a pid
        // reuse), so the resync samples 30 before 20.
        tracker.table.remove_pid(pid(20));
        let _ = tracker.table.refresh_pids(&[pid(20)]);
        tracker.table.source_mut().on_sample = Some((
            pid(30),
            Box::new(|memory: &mut MemorySource| {
                memory.remove(pid(20));
                memory.insert(process(30, 1));
            }),
        ));
        tracker.resync().expect("resync");
        // The exit event queued behind the resync.
        batch(&mut tracker, &[exit(20)]);
        assert_eq!(subtree(&tracker, 1), [(10, 1), (30, 1)]);
    }

    /// Lost events hid 30 and its child 40. The walk reads 30's children
    /// just after 30 exited and 40 moved up to 1, past the point where the
    /// walk had listed 1: a second walk finds 40.
    #[test]
    fn a_resync_walks_again_until_nothing_new_is_found() {
        let source = Staged::new(&[(1, 0), (10, 1)]);
        let mut tracker = tracker(source, 1);
        let staged = tracker.table.source_mut();
        staged.memory.insert(process(30, 1));
        staged.memory.insert(process(40, 30));
        staged.on_children = Some((
            pid(30),
            Box::new(|memory: &mut MemorySource| {
                memory.remove(pid(30));
                memory.insert(process(40, 1));
            }),
        ));
        tracker.resync().expect("resync");
        batch(&mut tracker, &[exit(30)]);
        assert_eq!(subtree(&tracker, 1), [(10, 1), (40, 1)]);
    }

    /// 10 forks 20, which forks 30 and exits before it could be read (the
    /// double fork of a daemon): 30 is told as forked by 10, so lineage
    /// holds although 30's parent is 1 by the time it is read.
    #[test]
    fn a_child_of_a_forker_gone_unread_is_told_as_forked_by_the_one_above() {
        let source = Staged::new(&[(1, 0), (10, 1)]);
        let mut tracker = tracker(source, 1);
        tracker.table.source_mut().memory.insert(process(30, 1));
        batch(&mut tracker, &[fork(10, 20), fork(20, 30), exit(20)]);
        let spawned: Vec<(u32, Option<u32>)> = tracker
            .pending
            .iter()
            .filter_map(|event| match event.kind {
                EventKind::Spawned {
                    process, forked_by, ..
                } => Some((process.pid().as_u32(), forked_by.map(Pid::as_u32))),
                _ => None,
            })
            .collect();
        assert_eq!(spawned, [(30, Some(10))]);
        assert!(tracker.forkers.is_empty());
    }

    /// 20 forked 30 and exited before a resync, which found 20 gone and
    /// missed 30 (hidden from the children lists). The fork event queued
    /// behind the resync still puts 30 in the subtree.
    #[test]
    fn a_fork_queued_behind_a_resync_counts_for_a_parent_it_found_gone() {
        let source = Staged::new(&[(1, 0), (10, 1), (20, 10)]);
        let mut tracker = tracker(source, 1);
        let staged = tracker.table.source_mut();
        staged.memory.remove(pid(20));
        staged.memory.insert(process(30, 1));
        staged.hidden = Some(pid(30));
        tracker.resync().expect("resync");
        assert_eq!(subtree(&tracker, 1), [(10, 1)]);
        batch(&mut tracker, &[fork(20, 30), exit(20)]);
        assert_eq!(subtree(&tracker, 1), [(10, 1), (30, 1)]);
        assert!(tracker.departed.is_empty(), "its exit ends its stay");
    }
}
