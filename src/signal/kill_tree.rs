//! The tree-kill algorithm: [`kill_tree`], [`kill_cwd`] and the crate's `kill_roots`.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use super::escape::{Group, Reapers};
use super::guard::Protected;
use super::signaller::{Signaller, SystemSignaller};
use super::{Delivery, KillOptions, KillReport, Killed, Refusal, Signal};
use crate::table::ProcessTable;
use crate::{Error, Pid, ProcessIdentity, ProcessSource, Result, StartTime, State};

/// Kills `root` and all its descendants, race-free.
///
/// Scanning a tree and then signalling each member misses the children forked
/// in between, and a tree that keeps forking always has such children. So the
/// kill freezes the tree first:
///
/// 1. pin every member with a [`ProcessHandle`](super::ProcessHandle) (a pid
///    alone could be reused under us) and send it `SIGSTOP` (on macOS, where
///    a handle is a checked pid, the start time is checked again after the
///    stop and before every later signal: a stopped process cannot exit by
///    itself, so the pid stays its own);
/// 2. list the children of every member, pin and stop the new ones, and
///    repeat until a round that started after every member was seen stopped
///    finds no new member: a stopped process cannot fork, so the set is
///    complete. On Linux the children come from
///    `/proc/<pid>/task/<tid>/children`, exact while the member is stopped,
///    so a round costs in proportion to the tree, not to the system; where
///    the platform has no such list, each round refreshes the table;
/// 3. deliver the signal through the pins (`SIGCONT` after it, for signals a
///    stopped process would otherwise leave pending);
/// 4. wait for the exits on the pidfds (kqueue on macOS); in graceful mode,
///    stop what is left after the grace period, find what it forked
///    meanwhile, and `SIGKILL` it all;
/// 5. collect the exit status of every member that became our child on the
///    way (a subreaper adopts the orphans of a dying tree), by its pidfd,
///    never with a wait for "any child".
///
/// Whatever goes wrong after the first `SIGSTOP` (an error, a panic), every
/// member still stopped is sent `SIGCONT` before the call returns: a failed
/// kill never leaves a frozen tree behind.
///
/// A member that double-forks and lets the middle process exit before the
/// tree is frozen reparents out of the tree (to pid 1, or to the nearest
/// subreaper): the parent links that discovery follows are gone. A
/// [`Subreaper`](super::Subreaper) keeps such orphans within reach.
///
/// `table` is the caller's view of the processes: its source reads the
/// tree's members, and where the platform cannot list one process's children
/// (macOS), each discovery round refreshes it. Keep one table and pass it to
/// every kill.
///
/// Returns [`Error::Refused`](crate::Error::Refused) when the guard protects
/// the root itself (killing the tree of pid 1 or of one of our ancestors
/// would take everything else with it). A root that is already gone is not an
/// error: the report lists it in [`already_gone`](KillReport::already_gone).
/// `EPERM` on a member is reported, and the kill goes on. A root that is our
/// own child is reaped (see [`KillOptions::reap_root`]).
///
/// ```no_run
/// use std::time::Duration;
/// use proctrack::signal::{kill_tree, KillOptions, ProcessHandle};
/// use proctrack::table::ProcessTable;
///
/// let child = std::process::Command::new("sh")
///     .args(["-c", "sleep 100 & sleep 100 & wait"])
///     .spawn()?;
/// let root = ProcessHandle::from_child(&child)?.identity();
/// let mut table = ProcessTable::new()?;
/// let report = kill_tree(&mut table, root, &KillOptions::graceful(Duration::from_secs(2)))?;
/// assert!(report.is_complete());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn kill_tree<S: ProcessSource>(
    table: &mut ProcessTable<S>,
    root: ProcessIdentity,
    options: &KillOptions,
) -> Result<KillReport> {
    let mut signaller = SystemSignaller::new(options.backend)?;
    kill_roots(
        table,
        &mut signaller,
        &[root],
        options,
        None,
        RefusedRoot::Fails,
        None,
    )
}

/// Kills several trees at once, the way [`kill_tree`] kills one: every
/// root and its descendants are found, stopped together and signalled
/// together, so a member of one tree that forks into another is caught.
/// For processes that belong together without one common ancestor: a
/// job's tree and the daemons that left it.
///
/// Roots that are gone are reported in [`KillReport::already_gone`]; roots
/// the guard protects are not signalled and are listed in
/// [`KillReport::refused`] (the call does not fail, unlike [`kill_tree`]).
///
/// ```no_run
/// use proctrack::signal::{kill_trees, KillOptions};
/// use proctrack::table::ProcessTable;
///
/// let mut table = ProcessTable::new()?;
/// let roots: Vec<_> = table.find_by_name("node").iter().map(|p| p.identity()).collect();
/// let report = kill_trees(&mut table, &roots, &KillOptions::new())?;
/// println!("{report}");
/// # Ok::<(), proctrack::Error>(())
/// ```
pub fn kill_trees<S: ProcessSource>(
    table: &mut ProcessTable<S>,
    roots: &[ProcessIdentity],
    options: &KillOptions,
) -> Result<KillReport> {
    let mut signaller = SystemSignaller::new(options.backend)?;
    kill_roots(
        table,
        &mut signaller,
        roots,
        options,
        None,
        RefusedRoot::Reported,
        None,
    )
}

/// Kills every process whose working directory is `dir` or lies below it,
/// together with each one's tree, the way [`kill_tree`] does.
///
/// The match is [`ProcessTable::find_by_cwd_prefix`]'s, after a refresh that
/// re-reads every process's working directory: by path components, `dir`
/// resolved as the kernel reports paths. A process whose directory was
/// deleted matches by the path it had.
///
/// Matching processes that the guard protects (the caller, when it stands in
/// `dir` itself, or its shell) are not signalled and are listed in
/// [`KillReport::refused`]; their descendants are killed only if they match
/// on their own. Processes of other users whose directory we may not read
/// are not matched. The match is taken once, at the start: a process that
/// enters `dir` later is killed only if it belongs to a matched tree.
///
/// ```no_run
/// use proctrack::signal::{kill_cwd, KillOptions};
/// use proctrack::table::ProcessTable;
///
/// let mut table = ProcessTable::new()?;
/// let report = kill_cwd(&mut table, "/srv/worktrees/feature-x", &KillOptions::new())?;
/// for (identity, reason) in &report.refused {
///     eprintln!("left {identity} alone: {reason}");
/// }
/// # Ok::<(), proctrack::Error>(())
/// ```
pub fn kill_cwd<S: ProcessSource>(
    table: &mut ProcessTable<S>,
    dir: impl AsRef<Path>,
    options: &KillOptions,
) -> Result<KillReport> {
    table.refresh()?;
    table.reread_cwds();
    let roots: Vec<ProcessIdentity> = table
        .find_by_cwd_prefix(dir)
        .into_iter()
        .filter(|process| !process.is_kernel_thread())
        .map(|process| process.identity())
        .collect();
    let mut signaller = SystemSignaller::new(options.backend)?;
    kill_roots(
        table,
        &mut signaller,
        &roots,
        options,
        None,
        RefusedRoot::Reported,
        None,
    )
}

/// Tells the killer which of our children are ours by spawning (so not
/// adopted orphans). Only a [`Subreaper`](super::Subreaper) kill passes one.
pub(crate) type IsOwn<'a> = &'a dyn Fn(&ProcessIdentity) -> bool;

/// What belongs to a kill besides the roots' trees: a job's cgroup, the
/// processes carrying its tag, the orphans it left with us. The killer asks
/// when the trees look settled (what it adds must settle too) and after the
/// last signal (what it names then is killed, or counted escaped). A look
/// names live processes only; those the kill already holds are skipped.
pub(crate) trait Belonging<S: ProcessSource> {
    /// The processes that belong to the kill now.
    fn look(&mut self, table: &mut ProcessTable<S>) -> Result<Vec<ProcessIdentity>>;
}

/// Kills the trees of `roots` and everything `belonging` names, through
/// the one engine: the supervisor's stop and recover.
pub(crate) fn kill_belonging<S: ProcessSource>(
    table: &mut ProcessTable<S>,
    roots: &[ProcessIdentity],
    options: &KillOptions,
    belonging: &mut dyn Belonging<S>,
) -> Result<KillReport> {
    let mut signaller = SystemSignaller::new(options.backend)?;
    kill_roots(
        table,
        &mut signaller,
        roots,
        options,
        None,
        RefusedRoot::Reported,
        Some(belonging),
    )
}

/// What a protected root does to the call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum RefusedRoot {
    /// The whole call fails ([`Error::Refused`]): a tree kill of the wrong root.
    Fails,
    /// The root is reported and skipped: a cwd kill, whose matches may
    /// include the caller's own shell.
    Reported,
}

/// Kills the trees of `roots`. `is_own`: subreaper mode; every child of ours
/// for which it answers false is an adopted orphan and part of the kill.
pub(crate) fn kill_roots<'a, S: ProcessSource, G: Signaller>(
    table: &'a mut ProcessTable<S>,
    signaller: &'a mut G,
    roots: &[ProcessIdentity],
    options: &'a KillOptions,
    is_own: Option<IsOwn<'a>>,
    refused_root: RefusedRoot,
    mut belonging: Option<&'a mut dyn Belonging<S>>,
) -> Result<KillReport> {
    let protected = options.guard.protected(table.source_mut())?;
    if refused_root == RefusedRoot::Fails {
        for root in roots {
            protected.check(root.pid())?;
        }
    }
    let mut roots = roots.to_vec();
    if let Some(belonging) = belonging.as_mut() {
        for identity in belonging.look(table)? {
            if !roots.contains(&identity) {
                roots.push(identity);
            }
        }
    }
    let roots = roots.as_slice();
    let reapers = Reapers::record(table, roots)?;
    let mut killer = Killer {
        reapers,
        groups: HashSet::new(),
        born_after: roots
            .iter()
            .map(|r| r.start_time())
            .min()
            .unwrap_or(StartTime::from_raw(0)),
        table,
        signaller,
        options,
        protected,
        is_own,
        belonging,
        me: Pid::current(),
        members: Vec::new(),
        known: HashSet::new(),
        children: Vec::new(),
        states: Vec::new(),
        scanned: false,
        last: options.signal,
        report: KillReport {
            confirmed: true,
            ..KillReport::default()
        },
    };
    for root in roots {
        killer.add_root(*root)?;
    }
    killer.run()
    // On an early return, dropping `killer` resumes every member it stopped.
}

struct Member<P> {
    pin: P,
    identity: ProcessIdentity,
    /// Collect its exit status at the end if it is our child then: it was not
    /// our child when first seen (so no `Child` of the caller owns it), or it
    /// is an adopted orphan, or the caller said so for the root.
    reap: bool,
    fate: Fate,
    /// We stopped it and have not continued it yet.
    stopped: bool,
    /// The last signal delivered to it.
    signal: Option<Signal>,
    /// The last look at it (taken right after its children were listed)
    /// found it unable to fork: stopped, or gone.
    frozen: bool,
    /// Its children were listed while it was already known to be frozen:
    /// that list is final, and discovery need not visit it again.
    complete: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fate {
    /// Pinned and (being) stopped; not signalled yet.
    Held,
    /// `EPERM`: we may not signal it.
    Denied,
    /// Exited before the signal reached it.
    Gone,
    /// Signalled; its exit not seen yet.
    Signalled,
    /// Signalled and seen to exit.
    Exited,
}

struct Killer<'a, S: ProcessSource, G: Signaller> {
    /// The roots' ancestors, where what escapes the kill turns up.
    reapers: Reapers,
    /// The process groups and sessions of the members.
    groups: HashSet<Group>,
    /// No member is older than this (the oldest root's start).
    born_after: StartTime,
    table: &'a mut ProcessTable<S>,
    signaller: &'a mut G,
    options: &'a KillOptions,
    protected: Protected,
    is_own: Option<IsOwn<'a>>,
    belonging: Option<&'a mut dyn Belonging<S>>,
    me: Pid,
    members: Vec<Member<G::Pin>>,
    /// Every identity met, member or not, so that none is pinned twice.
    known: HashSet<ProcessIdentity>,
    /// Reused for each children listing.
    children: Vec<Pid>,
    /// Reused for each look at a member's threads.
    states: Vec<State>,
    /// Whether the table was refreshed in this discovery round (platforms
    /// without a children list).
    scanned: bool,
    /// The last signal delivered: after `SIGKILL`, an unpinned member whose
    /// exit cannot be seen is dead all the same.
    last: Signal,
    report: KillReport,
}

impl<S: ProcessSource, G: Signaller> Drop for Killer<'_, S, G> {
    fn drop(&mut self) {
        for member in &self.members {
            if member.stopped {
                self.signaller.resume(&member.pin);
            }
        }
    }
}

/// A child found by discovery, whether it is a kernel thread, and its group.
type Child = (ProcessIdentity, bool, Group);

/// A process's scheduler state and thread count, as one look saw them.
type Look = (State, u32);

/// Whether a thread in `state`, of a process that was sent `SIGSTOP`, can
/// still create a child: not when it is stopped or dead, and not in
/// uninterruptible sleep either. Such a thread is inside the kernel; it
/// stops before it returns to user space, and a `fork` it is in the middle
/// of fails and is restarted after the stop: the kernel aborts a fork that
/// finds a signal pending before it links the child in (`copy_process`), and
/// it checks under the same lock the signal is queued with. Counting it as
/// frozen matters for a thread in `vfork`: it waits, uninterruptibly, for a
/// child that we hold stopped, and would never stop itself.
fn cannot_fork(state: State) -> bool {
    state.is_halted() || state == State::DiskSleep
}

impl<S: ProcessSource, G: Signaller> Killer<'_, S, G> {
    fn add_root(&mut self, root: ProcessIdentity) -> Result<()> {
        if !self.known.insert(root) {
            return Ok(());
        }
        let source = self.table.source_mut();
        let now = if root.boot_id() == source.boot_id() {
            match source.sample(root.pid()) {
                Ok(sample) if sample.start_time == root.start_time() => {
                    self.groups.insert((sample.process_group, sample.session));
                    Some((sample.parent, sample.kernel_thread))
                }
                Ok(_) | Err(Error::NotFound { .. }) => None,
                Err(other) => return Err(other),
            }
        } else {
            None
        };
        match now {
            Some((parent, kernel_thread)) => {
                let ours = parent == Some(self.me);
                self.admit(root, kernel_thread, !ours || self.options.reap_root, true)
            }
            None => {
                self.report.already_gone.push(root);
                Ok(())
            }
        }
    }

    /// Guard check, pin, `SIGSTOP`. `root`: a root that is gone on pinning is
    /// reported; a descendant that is gone simply was never a member.
    fn admit(
        &mut self,
        identity: ProcessIdentity,
        kernel_thread: bool,
        reap: bool,
        root: bool,
    ) -> Result<()> {
        let refusal = if kernel_thread {
            Some(Refusal::KernelThread)
        } else {
            self.protected.refusal(identity.pid())
        };
        if let Some(reason) = refusal {
            self.report.refused.push((identity, reason));
            return Ok(());
        }
        let pin = match self.signaller.pin(identity) {
            Ok(Some(pin)) => pin,
            Ok(None) => {
                if root {
                    self.report.already_gone.push(identity);
                }
                return Ok(());
            }
            Err(Error::PermissionDenied { .. }) => {
                self.report.denied.push(identity);
                return Ok(());
            }
            Err(other) => return Err(other),
        };
        let fate = match self.signaller.send(&pin, Signal::Stop) {
            Ok(Delivery::Delivered) => Fate::Held,
            Ok(Delivery::Gone) => Fate::Gone,
            Ok(Delivery::Denied) => Fate::Denied,
            Err(error) => {
                // It may have stopped all the same: count it as held, so
                // that the way out continues it.
                self.members.push(Member {
                    pin,
                    identity,
                    reap,
                    fate: Fate::Held,
                    stopped: true,
                    signal: None,
                    frozen: false,
                    complete: false,
                });
                return Err(error);
            }
        };
        self.members.push(Member {
            pin,
            identity,
            reap,
            fate,
            stopped: fate == Fate::Held,
            signal: None,
            frozen: false,
            complete: false,
        });
        Ok(())
    }

    fn run(mut self) -> Result<KillReport> {
        let first = self.options.signal;
        self.report.settled = self.settle()?;
        self.deliver(first)?;
        match self.options.grace {
            Some(grace) if first != Signal::Kill => {
                self.wait_exits(grace)?;
                if self.members.iter().any(|m| m.fate == Fate::Signalled) {
                    // Freeze what is left, find what it forked meanwhile, kill it all.
                    for i in 0..self.members.len() {
                        if self.members[i].fate != Fate::Signalled {
                            continue;
                        }
                        // Counted as stopped before the call: an error in it
                        // must still lead to a SIGCONT on the way out.
                        self.members[i].stopped = true;
                        if self.signaller.send(&self.members[i].pin, Signal::Stop)?
                            == Delivery::Gone
                        {
                            self.members[i].fate = Fate::Exited;
                            self.members[i].stopped = false;
                        }
                    }
                    let settled = self.settle()?;
                    self.report.settled &= settled;
                    self.deliver(Signal::Kill)?;
                    self.wait_exits(self.options.exit_timeout)?;
                }
            }
            _ => self.wait_exits(self.options.exit_timeout)?,
        }
        // Nothing escapes a kill that froze the whole tree and then sent
        // SIGKILL. Otherwise a member may have forked after its last look
        // (the tree never settled) or exited by the first signal leaving
        // children (a graceful kill): look for them where orphans go, and
        // in what else belongs to the kill (a cgroup is cheap to ask).
        if !self.report.settled || first != Signal::Kill || self.belonging.is_some() {
            self.sweep()?;
        }
        self.reap()?;
        Ok(self.finish())
    }

    /// Kills what escaped the tree, in a few rounds (each of which may find
    /// what the last one's escapees forked), then counts in
    /// [`KillReport::escaped`] whatever of the tree is still found.
    fn sweep(&mut self) -> Result<()> {
        const ROUNDS: usize = 3;
        for _ in 0..ROUNDS {
            let found = self.got_away()?;
            if found.is_empty() {
                return Ok(());
            }
            for identity in found {
                if self.known.insert(identity) {
                    self.admit(identity, false, true, false)?;
                }
            }
            // They and what they forked, frozen and killed like the tree.
            let settled = self.settle()?;
            self.report.settled &= settled;
            self.deliver(Signal::Kill)?;
            self.wait_exits(self.options.exit_timeout)?;
        }
        let left = self.got_away()?;
        self.report.escaped.extend(left);
        Ok(())
    }

    /// What belongs to the kill and is not held by it: escapees found where
    /// orphans go, and what `belonging` names that is new.
    fn got_away(&mut self) -> Result<Vec<ProcessIdentity>> {
        let mut found =
            self.reapers
                .escapees(self.table, &self.known, &self.groups, self.born_after)?;
        for identity in self.belongs()? {
            if !found.contains(&identity) {
                found.push(identity);
            }
        }
        Ok(found)
    }

    /// What `belonging` names now that the kill does not know yet.
    fn belongs(&mut self) -> Result<Vec<ProcessIdentity>> {
        let Some(belonging) = self.belonging.as_mut() else {
            return Ok(Vec::new());
        };
        let mut named = belonging.look(self.table)?;
        named.retain(|identity| !self.known.contains(identity));
        Ok(named)
    }

    /// Steps 1 and 2: rounds of discovery, pinning and stopping every new
    /// member, until every member's children were listed while it was
    /// frozen and one more pass over all of them, begun after that, adds
    /// nobody and finds every member still frozen.
    ///
    /// A round visits only what is new or not yet complete, so a tree that
    /// grows at one tip (a chain thousands deep whose newest member forks
    /// again) costs in proportion to its size, not its depth times its size.
    fn settle(&mut self) -> Result<bool> {
        let deadline = Instant::now() + self.options.settle_timeout;
        for member in &mut self.members {
            // A second settle (after a grace period): the members ran again.
            member.complete = false;
            member.frozen = false;
        }
        let mut rounds: u32 = 0;
        loop {
            rounds = rounds.saturating_add(1);
            self.scanned = false;
            let added = self.discover(false)?;
            let waiting = self.members.iter().any(|m| m.stopped && !m.complete);
            if !waiting && added == 0 {
                // Everything looked final: check it all once more, from a
                // pass that began after every member was seen frozen.
                let added = self.discover(true)?;
                let frozen = self.members.iter().all(|m| !m.stopped || m.frozen);
                if added == 0 && frozen {
                    // Settled, unless something else of the kill's is new:
                    // then that and its tree must settle too.
                    let named = self.belongs()?;
                    if named.is_empty() {
                        return Ok(true);
                    }
                    for identity in named {
                        self.add_root(identity)?;
                    }
                }
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            if self.members.iter().any(|m| m.stopped && !m.frozen) {
                // SIGSTOP takes effect when the target next runs in the kernel,
                // and no event tells when a process that is not our child has
                // stopped. Give the targets the CPU; if they take long (a
                // member in uninterruptible sleep), look less often.
                if rounds < 100 {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    /// Admits every child of every member visited, and in subreaper mode
    /// every adopted orphan. Visits the members not yet complete, or with
    /// `all`, every member that may still run (a complete one found no
    /// longer frozen is complete no more). Returns how many were admitted.
    fn discover(&mut self, all: bool) -> Result<usize> {
        let before = self.members.len();
        if let Some(is_own) = self.is_own {
            let source = self.table.source_mut();
            let boot = source.boot_id();
            let me = source.sample(self.me)?.identity(boot);
            for (child, kernel_thread, group) in self.children_of(me)?.0 {
                if !is_own(&child) && self.known.insert(child) {
                    self.groups.insert(group);
                    self.admit(child, kernel_thread, true, false)?;
                }
            }
        }
        // Breadth-first: members admitted in this pass are visited too.
        let mut next = 0;
        while next < self.members.len() {
            let member = &self.members[next];
            next += 1;
            if matches!(member.fate, Fate::Gone | Fate::Exited) || (member.complete && !all) {
                continue;
            }
            let (parent, was_frozen) = (member.identity, member.frozen);
            let (children, now) = self.children_of(parent)?;
            let frozen = self.cannot_fork_now(parent, now)?;
            let member = &mut self.members[next - 1];
            member.frozen = frozen;
            // Listed while known frozen: final, as long as it stays frozen.
            member.complete = frozen && was_frozen;
            for (child, kernel_thread, group) in children {
                if self.known.insert(child) {
                    self.groups.insert(group);
                    // A child of ours that is not the root belongs to no
                    // `Child` of the caller's: ours to reap.
                    self.admit(child, kernel_thread, true, false)?;
                }
            }
        }
        Ok(self.members.len() - before)
    }

    /// The children of `parent` now, with whether each is a kernel thread,
    /// and `parent`'s state and thread count read after them; no children
    /// and `None` when `parent` is gone. A child that started before its
    /// parent sits on a reused pid (a real parent is never younger than its
    /// child, even after reparenting), so that edge is not followed.
    fn children_of(&mut self, parent: ProcessIdentity) -> Result<(Vec<Child>, Option<Look>)> {
        let mut found = Vec::new();
        let mut pids = std::mem::take(&mut self.children);
        let listed = match self.table.source_mut().children(parent.pid(), &mut pids) {
            Ok(listed) => listed,
            Err(Error::NotFound { .. }) => {
                self.children = pids;
                return Ok((found, None));
            }
            Err(other) => {
                self.children = pids;
                return Err(other);
            }
        };
        if !listed {
            if !self.scanned {
                self.table.refresh()?;
                self.scanned = true;
            }
            if self.table.get_identity(parent).is_some() {
                pids.extend(self.table.children(parent.pid()).iter().map(|c| c.pid()));
            }
        }
        let source = self.table.source_mut();
        let boot = source.boot_id();
        let mut result = Ok(());
        for &pid in &pids {
            match source.sample(pid) {
                Ok(sample)
                    if sample.parent == Some(parent.pid())
                        && sample.start_time >= parent.start_time() =>
                {
                    found.push((
                        sample.identity(boot),
                        sample.kernel_thread,
                        (sample.process_group, sample.session),
                    ));
                }
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(other) => {
                    result = Err(other);
                    break;
                }
            }
        }
        // The list was read by pid: it is `parent`'s only if `parent` still
        // holds the pid now, after the read.
        let mut now = None;
        if result.is_ok() {
            match source.sample(parent.pid()) {
                Ok(sample) if sample.start_time == parent.start_time() => {
                    now = Some((sample.state, sample.threads));
                }
                Ok(_) | Err(Error::NotFound { .. }) => found.clear(),
                Err(other) => result = Err(other),
            }
        }
        pids.clear();
        self.children = pids;
        result.map(|()| (found, now))
    }

    /// Whether `member`, as one look saw it (`None`: gone), cannot fork any
    /// more: every thread of it [`cannot_fork`].
    fn cannot_fork_now(&mut self, member: ProcessIdentity, now: Option<Look>) -> Result<bool> {
        let Some((state, threads)) = now else {
            // Reaped already.
            return Ok(true);
        };
        if !cannot_fork(state) || threads <= 1 {
            return Ok(cannot_fork(state));
        }
        let mut states = std::mem::take(&mut self.states);
        let frozen = match self
            .table
            .source_mut()
            .thread_states(member.pid(), &mut states)
        {
            Ok(()) => Ok(states.iter().all(|state| cannot_fork(*state))),
            // Gone since the sample counts as frozen.
            Err(Error::NotFound { .. }) => Ok(true),
            Err(other) => Err(other),
        };
        states.clear();
        self.states = states;
        frozen
    }

    /// Step 3: the signal to every held member, then `SIGCONT` if the signal
    /// would otherwise wait for it.
    fn deliver(&mut self, signal: Signal) -> Result<()> {
        self.last = signal;
        for member in &mut self.members {
            if member.fate != Fate::Held && member.fate != Fate::Signalled {
                continue;
            }
            if member.fate == Fate::Held && self.signaller.has_exited(&member.pin)? {
                member.fate = Fate::Gone;
                member.stopped = false;
                continue;
            }
            member.fate = match self.signaller.send(&member.pin, signal)? {
                Delivery::Delivered => {
                    member.signal = Some(signal);
                    Fate::Signalled
                }
                Delivery::Gone if member.fate == Fate::Signalled => Fate::Exited,
                Delivery::Gone => Fate::Gone,
                Delivery::Denied => Fate::Denied,
            };
            if member.fate != Fate::Signalled {
                member.stopped = false;
            }
        }
        for member in &mut self.members {
            if member.fate != Fate::Signalled || !member.stopped {
                continue;
            }
            // SIGKILL ends a stopped process, SIGCONT continues it, and a
            // SIGSTOP the caller asked for is theirs to undo; any other
            // signal waits for SIGCONT.
            if !signal.acts_while_stopped() {
                self.signaller.send(&member.pin, Signal::Cont)?;
            }
            member.stopped = false;
        }
        Ok(())
    }

    /// Step 4: waits up to `timeout` for every signalled member to exit.
    fn wait_exits(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut waiting: Vec<usize> = Vec::new();
        let mut unpinned = false;
        for (i, member) in self.members.iter().enumerate() {
            if member.fate != Fate::Signalled {
                continue;
            }
            if self.signaller.exit_is_event(&member.pin) {
                waiting.push(i);
            } else {
                unpinned = true;
            }
        }
        let pins: Vec<&G::Pin> = waiting.iter().map(|&i| &self.members[i].pin).collect();
        let mut pending = vec![true; pins.len()];
        self.signaller.wait_exits(&pins, &mut pending, deadline)?;
        drop(pins);
        for (slot, i) in waiting.into_iter().enumerate() {
            if !pending[slot] {
                self.members[i].fate = Fate::Exited;
            }
        }
        if unpinned {
            // No event tells the exit of an unpinned process; give it the
            // whole timeout once (no polling), then look.
            if self.last != Signal::Kill {
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            }
            for member in &mut self.members {
                if member.fate == Fate::Signalled && !self.signaller.exit_is_event(&member.pin) {
                    self.report.confirmed = false;
                    if self.signaller.has_exited(&member.pin)? {
                        member.fate = Fate::Exited;
                    }
                }
            }
        }
        Ok(())
    }

    /// Step 5: collects the exit status of every exited member that is our
    /// child now and that no `Child` of the caller owns.
    ///
    /// With pidfds (or kqueue on macOS) every exit was seen, and the kernel
    /// reparents a process's children before its exit is told, so the
    /// orphans are ours by now. Unpinned members (the fallback) were not seen
    /// to exit; but after `SIGKILL` a child of ours will exit, so we may
    /// block on it. Parents come before their children in `members`: once an
    /// unpinned parent that is our child has exited (and, if it is ours to
    /// reap, been reaped), its children are ours by the time we get to them.
    fn reap(&mut self) -> Result<()> {
        let killed_for_sure = self.last == Signal::Kill;
        for member in &self.members {
            let unseen = !self.signaller.exit_is_event(&member.pin) && killed_for_sure;
            let status = match (member.fate, member.reap) {
                (Fate::Exited | Fate::Gone, true) => self.signaller.try_reap(&member.pin),
                (Fate::Signalled, true) if unseen => self.signaller.reap(&member.pin).map(Some),
                (Fate::Signalled, false) if unseen => {
                    // A child the caller owns: wait for its exit, not its status.
                    self.signaller.wait_unreaped(&member.pin)?;
                    continue;
                }
                _ => continue,
            };
            match status {
                Ok(Some(_)) => self.report.reaped.push(member.identity),
                // Still running (cannot be for an exited member), or not our
                // child: its own parent will collect it.
                Ok(None) | Err(Error::NotChild { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }

    fn finish(mut self) -> KillReport {
        let killed_for_sure = self.last == Signal::Kill;
        let members = std::mem::take(&mut self.members);
        let mut report = std::mem::take(&mut self.report);
        for member in members {
            let identity = member.identity;
            match member.fate {
                Fate::Exited => report.killed.push(Killed {
                    identity,
                    signal: member.signal.unwrap_or(self.last),
                }),
                Fate::Gone => report.already_gone.push(identity),
                Fate::Denied => report.denied.push(identity),
                // Unpinned and SIGKILLed: dead, if not seen dead.
                Fate::Signalled
                    if !self.signaller.exit_is_event(&member.pin) && killed_for_sure =>
                {
                    report.killed.push(Killed {
                        identity,
                        signal: Signal::Kill,
                    });
                }
                Fate::Signalled | Fate::Held => report.survived.push(identity),
            }
        }
        report
    }
}
