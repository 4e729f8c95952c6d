//! The tree-kill algorithm, one for Linux and macOS: freeze, complete,
//! signal, wait, reap. The steps are described in the [`tree`](super::tree)
//! module docs. The platform shows only through [`ProcessHandle`] (pidfd or
//! identity-checked `kill(2)`), the platform's [`SystemSource`] and `sys`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::guard::Protected;
use super::scan::{Node, Snapshot};
use super::sys;
use super::{Backend, Delivery, KillOptions, KillReport, ProcessHandle, Signal};
use crate::{Error, Pid, ProcessIdentity, ProcessSource, Result, State, SystemSource};

/// Tells the killer which of our children are ours by spawning (so not
/// adopted orphans). Only a [`Subreaper`](super::Subreaper) kill passes one.
pub(crate) type IsOwn<'a> = &'a dyn Fn(&ProcessIdentity) -> bool;

/// Kills the trees of `roots`.
///
/// `refused_root_is_error`: a protected root fails the whole call (a tree
/// kill) rather than being reported and skipped (a cwd kill, whose matches may
/// include the caller's own shell). `is_own`: subreaper mode; every child of
/// ours for which it answers false is an adopted orphan and part of the kill.
pub(crate) fn kill_roots(
    roots: &[ProcessIdentity],
    options: &KillOptions,
    is_own: Option<IsOwn<'_>>,
    refused_root_is_error: bool,
) -> Result<KillReport> {
    let protected = options.guard.protected()?;
    if refused_root_is_error {
        for root in roots {
            protected.check(root.pid())?;
        }
    }
    let mut killer = Killer::new(options, protected, is_own)?;
    for root in roots {
        killer.add_root(*root)?;
    }
    killer.run()
}

struct Member {
    handle: ProcessHandle,
    /// Collect its exit status at the end if it is our child then: it was not
    /// our child when first seen (so no `Child` of the caller owns it), or it
    /// is an adopted orphan, or the caller said so for the root.
    reap: bool,
    state: Fate,
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

struct Killer<'a> {
    options: &'a KillOptions,
    backend: Backend,
    protected: Protected,
    is_own: Option<IsOwn<'a>>,
    me: Pid,
    reader: SystemSource,
    snapshot: Snapshot,
    members: Vec<Member>,
    /// Every identity met, member or not, so that none is pinned twice.
    known: HashSet<ProcessIdentity>,
    /// The last signal delivered: after `SIGKILL`, an unpinned member whose
    /// exit cannot be seen is dead all the same.
    last: Signal,
    report: KillReport,
}

impl<'a> Killer<'a> {
    fn new(
        options: &'a KillOptions,
        protected: Protected,
        is_own: Option<IsOwn<'a>>,
    ) -> Result<Killer<'a>> {
        Ok(Killer {
            options,
            backend: options.backend.resolve()?,
            protected,
            is_own,
            me: Pid::current(),
            reader: crate::system::open()?,
            snapshot: Snapshot::default(),
            members: Vec::new(),
            known: HashSet::new(),
            last: options.signal,
            report: KillReport {
                confirmed: true,
                ..KillReport::default()
            },
        })
    }

    fn add_root(&mut self, root: ProcessIdentity) -> Result<()> {
        if !self.known.insert(root) {
            return Ok(());
        }
        let now = match self.reader.sample(root.pid()) {
            Ok(sample) => Some((sample.start_time, sample.parent, sample.kernel_thread)),
            Err(Error::NotFound { .. }) => None,
            Err(other) => return Err(other),
        };
        match now {
            Some((start, parent, kernel_thread)) if start == root.start_time() => {
                let ours = parent == Some(self.me);
                self.admit(root, kernel_thread, !ours || self.options.reap_root, true)
            }
            _ => {
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
            Some(super::Refusal::KernelThread)
        } else {
            self.protected.refusal(identity.pid())
        };
        if let Some(reason) = refusal {
            self.report.refused.push((identity, reason));
            return Ok(());
        }
        let pinned = match ProcessHandle::pin(identity, self.backend) {
            // Out of file descriptors (a tree larger than RLIMIT_NOFILE):
            // this member goes unpinned, identity-checked before each signal.
            Err(error) if sys::is_fd_exhaustion(&error) => {
                ProcessHandle::pin(identity, Backend::Kill)
            }
            other => other,
        };
        let handle = match pinned {
            Ok(Some(handle)) => handle,
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
        let state = match handle.send(Signal::Stop)? {
            Delivery::Delivered => Fate::Held,
            Delivery::Gone => Fate::Gone,
            Delivery::Denied => Fate::Denied,
        };
        self.members.push(Member {
            handle,
            reap,
            state,
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
                if self.members.iter().any(|m| m.state == Fate::Signalled) {
                    // Freeze what is left, find what it forked meanwhile, kill it all.
                    for member in &mut self.members {
                        if member.state == Fate::Signalled
                            && member.handle.send(Signal::Stop)? == Delivery::Gone
                        {
                            member.state = Fate::Exited;
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
        self.reap()?;
        Ok(self.finish())
    }

    /// Steps 1 and 2: rescans, pinning and stopping every new member, until
    /// a scan that began after all members were seen stopped adds nobody.
    fn settle(&mut self) -> Result<bool> {
        let deadline = Instant::now() + self.options.settle_timeout;
        let mut stopped_before = false;
        let mut rounds: u32 = 0;
        loop {
            rounds = rounds.saturating_add(1);
            self.snapshot.refresh(&mut self.reader)?;
            let added = self.discover()?;
            let stopped = self.all_stopped()?;
            if stopped_before && stopped && added == 0 {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            stopped_before = stopped;
            if !stopped {
                // SIGSTOP takes effect when the target next runs in the kernel,
                // and no event tells when a process that is not our child has
                // stopped. Give the targets the CPU; if they take long (a
                // member in uninterruptible sleep), rescan less often.
                if rounds < 100 {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    /// Admits every child (by the current snapshot) of every member, and in
    /// subreaper mode every adopted orphan. Returns how many were admitted.
    fn discover(&mut self) -> Result<usize> {
        let before = self.members.len();
        let mut found: Vec<Node> = Vec::new();
        if let Some(is_own) = self.is_own {
            if let Some(me) = self.snapshot.get(self.me).copied() {
                let boot = self.reader.boot_id();
                found.extend(self.snapshot.children_of(me.pid, me.start).filter(|child| {
                    let identity = ProcessIdentity::new(boot, child.pid, child.start);
                    !is_own(&identity) && !self.known.contains(&identity)
                }));
            }
            for orphan in found.drain(..) {
                self.admit_node(&orphan, true)?;
            }
        }
        // Breadth-first: members admitted in this pass are visited too.
        let mut next = 0;
        while next < self.members.len() {
            let parent = self.members[next].handle.identity();
            next += 1;
            found.clear();
            found.extend(
                self.snapshot
                    .children_of(parent.pid(), parent.start_time())
                    .copied(),
            );
            for child in &found {
                self.admit_node(child, false)?;
            }
        }
        Ok(self.members.len() - before)
    }

    fn admit_node(&mut self, node: &Node, adopted: bool) -> Result<()> {
        let identity = ProcessIdentity::new(self.reader.boot_id(), node.pid, node.start);
        if !self.known.insert(identity) {
            return Ok(());
        }
        let ours = node.parent == Some(self.me);
        self.admit(identity, node.kernel_thread, adopted || !ours, false)
    }

    /// True when every member that may still run is stopped (or exited) in
    /// the current snapshot: all its threads, for a multi-threaded one.
    fn all_stopped(&self) -> Result<bool> {
        for member in &self.members {
            if member.state != Fate::Held {
                continue;
            }
            let identity = member.handle.identity();
            let stopped = match self.snapshot.get(identity.pid()) {
                Some(node) if node.start == identity.start_time() => {
                    let leader = matches!(
                        node.state,
                        State::Stopped | State::TracingStop | State::Zombie | State::Dead
                    );
                    if leader && node.threads > 1 {
                        // Gone since the snapshot counts as stopped.
                        sys::all_threads_stopped(identity.pid())?.unwrap_or(true)
                    } else {
                        leader
                    }
                }
                // Reaped already.
                _ => true,
            };
            if !stopped {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Step 3: the signal to every held member, then `SIGCONT` if the signal
    /// would otherwise wait for it.
    fn deliver(&mut self, signal: Signal) -> Result<()> {
        self.last = signal;
        for member in &mut self.members {
            if member.state != Fate::Held && member.state != Fate::Signalled {
                continue;
            }
            if member.state == Fate::Held && member.handle.has_exited()? {
                member.state = Fate::Gone;
                continue;
            }
            member.state = match member.handle.send(signal)? {
                Delivery::Delivered => Fate::Signalled,
                Delivery::Gone if member.state == Fate::Signalled => Fate::Exited,
                Delivery::Gone => Fate::Gone,
                Delivery::Denied => Fate::Denied,
            };
        }
        if !signal.acts_while_stopped() {
            for member in self.members.iter().filter(|m| m.state == Fate::Signalled) {
                member.handle.send(Signal::Cont)?;
            }
        }
        Ok(())
    }

    /// Step 4: waits up to `timeout` for every signalled member to exit.
    fn wait_exits(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut waiting: Vec<usize> = Vec::new();
        let mut unpinned = false;
        for (i, member) in self.members.iter().enumerate() {
            if member.state != Fate::Signalled {
                continue;
            }
            if member.handle.exit_is_event() {
                waiting.push(i);
            } else {
                unpinned = true;
            }
        }
        let handles: Vec<&ProcessHandle> =
            waiting.iter().map(|&i| &self.members[i].handle).collect();
        let mut pending = vec![true; handles.len()];
        sys::wait_exits(&handles, &mut pending, Some(deadline))?;
        drop(handles);
        for (slot, i) in waiting.into_iter().enumerate() {
            if !pending[slot] {
                self.members[i].state = Fate::Exited;
            }
        }
        if unpinned {
            // No event tells the exit of an unpinned process; give it the
            // whole timeout once (no polling), then look.
            if self.last != Signal::Kill {
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            }
            for member in &mut self.members {
                if member.state == Fate::Signalled && !member.handle.exit_is_event() {
                    self.report.confirmed = false;
                    if member.handle.has_exited()? {
                        member.state = Fate::Exited;
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
    /// orphans are ours by now. Unpinned members (the fallback) were not seen to exit; but after
    /// `SIGKILL` a child of ours will exit, so we may block on it. Parents
    /// come before their children in `members`: once an unpinned parent that
    /// is our child has exited (and, if it is ours to reap, been reaped), its
    /// children are ours by the time we get to them.
    fn reap(&mut self) -> Result<()> {
        let killed_for_sure = self.last == Signal::Kill;
        for member in &self.members {
            let unseen = !member.handle.exit_is_event() && killed_for_sure;
            let status = match (member.state, member.reap) {
                (Fate::Exited | Fate::Gone, true) => member.handle.try_reap(),
                (Fate::Signalled, true) if unseen => member.handle.reap().map(Some),
                (Fate::Signalled, false) if unseen => {
                    // A child the caller owns: wait for its exit, not its status.
                    let identity = member.handle.identity();
                    match sys::brief(identity.pid())? {
                        Some(now)
                            if now.start == identity.start_time()
                                && now.parent == Some(self.me) =>
                        {
                            sys::wait_exit_unreaped(identity.pid())?;
                        }
                        _ => {}
                    }
                    continue;
                }
                _ => continue,
            };
            match status {
                Ok(Some(_)) => self.report.reaped.push(member.handle.identity()),
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
        for member in &self.members {
            let identity = member.handle.identity();
            let list = match member.state {
                Fate::Exited => &mut self.report.killed,
                Fate::Gone => &mut self.report.already_gone,
                Fate::Denied => &mut self.report.denied,
                // Unpinned and SIGKILLed: dead, if not seen dead.
                Fate::Signalled if !member.handle.exit_is_event() && killed_for_sure => {
                    &mut self.report.killed
                }
                Fate::Signalled | Fate::Held => &mut self.report.survived,
            };
            list.push(identity);
        }
        self.report
    }
}
