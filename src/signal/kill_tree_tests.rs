//! The tree-kill algorithm on a fake kernel: processes that fork while they
//! run, stop a few steps after `SIGSTOP`, ignore `SIGTERM` or refuse signals;
//! and a failure injected at every step of a kill, after which no process may
//! be left stopped.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::process::ExitStatus;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::kill_tree::{RefusedRoot, kill_roots};
use super::signaller::Signaller;
use super::{Delivery, Guard, KillOptions, KillReport, Refusal, Signal};
use crate::table::{ProcessTable, TableOptions};
use crate::{
    BootId, Cwd, Error, Pid, ProcessIdentity, ProcessInfo, ProcessSource, Result, Sample,
    StartTime, State,
};

const INJECTED: &str = "injected failure";

#[derive(Clone, Debug)]
pub(crate) struct Proc {
    pub(crate) info: ProcessInfo,
    /// What `environ` gives (empty by default).
    pub(crate) environ: Vec<u8>,
    stopped: bool,
    /// `SIGSTOP` received, taking effect after this many more steps.
    stopping: Option<u32>,
    /// Forks a child on a step while it runs.
    forker: bool,
    ignores_term: bool,
    other_user: bool,
    /// On `SIGTERM`, forks a child (in its own group and session) and exits,
    /// leaving the child behind.
    forks_on_term: bool,
    /// `SIGSTOP` never takes effect (a thread stuck in the kernel).
    unstoppable: bool,
}

#[derive(Debug)]
pub(crate) struct Kernel {
    boot: BootId,
    pub(crate) procs: BTreeMap<Pid, Proc>,
    next_pid: i32,
    clock: u64,
    /// Operations so far, and the one to fail (1-based), if any.
    pub(crate) ops: usize,
    pub(crate) fail_at: Option<usize>,
    /// Fail after the operation took effect, rather than before.
    fail_after_effect: bool,
    /// Whether `children` lists (Linux) or the table must be refreshed.
    lists_children: bool,
    /// The most processes one kill may fork, so a test always ends.
    forks_left: u32,
    round_robin: usize,
    /// A forker's child takes over the forking (a chain growing at its
    /// tip) instead of both forking on.
    hand_over: bool,
    /// Forks happen on every this-many-th step (1: on every step).
    fork_every: usize,
    steps: usize,
}

impl Kernel {
    pub(crate) fn new() -> Kernel {
        let mut kernel = Kernel {
            boot: BootId::from_bytes([7; 16]),
            procs: BTreeMap::new(),
            next_pid: 100,
            clock: 10,
            ops: 0,
            fail_at: None,
            fail_after_effect: false,
            lists_children: true,
            forks_left: 200,
            round_robin: 0,
            hand_over: false,
            fork_every: 1,
            steps: 0,
        };
        kernel.spawn_at(1, None);
        kernel
    }

    pub(crate) fn spawn_at(&mut self, pid: i32, parent: Option<Pid>) -> ProcessIdentity {
        self.clock += 1;
        let identity = ProcessIdentity::new(
            self.boot,
            Pid::try_from(pid).expect("valid pid"),
            StartTime::from_raw(self.clock),
        );
        // A child is in its parent's process group and session; init and
        // orphans of it lead their own.
        let group = parent
            .and_then(|p| self.procs.get(&p))
            .filter(|p| p.info.pid().as_raw() != 1)
            .map_or((Some(identity.pid()), Some(identity.pid())), |p| {
                (p.info.process_group(), p.info.session())
            });
        let info = ProcessInfo::builder(identity)
            .parent(parent)
            .group_and_session(group.0, group.1)
            .name("fake")
            .cwd(Cwd::Path("/srv".into()))
            .state(State::Running)
            .build();
        self.procs.insert(
            identity.pid(),
            Proc {
                info,
                environ: Vec::new(),
                stopped: false,
                stopping: None,
                forker: false,
                ignores_term: false,
                other_user: false,
                forks_on_term: false,
                unstoppable: false,
            },
        );
        identity
    }

    pub(crate) fn spawn(&mut self, parent: ProcessIdentity) -> ProcessIdentity {
        self.next_pid += 1;
        self.spawn_at(self.next_pid, Some(parent.pid()))
    }

    pub(crate) fn get(&mut self, identity: ProcessIdentity) -> Option<&mut Proc> {
        self.procs
            .get_mut(&identity.pid())
            .filter(|p| p.info.identity() == identity)
    }

    /// Counts an operation and fails the chosen one.
    fn op(&mut self, effect_done: bool) -> Result<()> {
        if effect_done != self.fail_after_effect {
            return Ok(());
        }
        if !effect_done {
            self.ops += 1;
        }
        if Some(self.ops) == self.fail_at {
            return Err(Error::Unsupported { what: INJECTED });
        }
        self.step();
        Ok(())
    }

    /// Time passes: pending stops take effect, one running forker forks.
    fn step(&mut self) {
        for proc in self.procs.values_mut() {
            match proc.stopping {
                Some(_) if proc.unstoppable => {}
                Some(0) => {
                    proc.stopping = None;
                    proc.stopped = true;
                }
                Some(n) => proc.stopping = Some(n - 1),
                None => {}
            }
        }
        let forkers: Vec<ProcessIdentity> = self
            .procs
            .values()
            .filter(|p| p.forker && !p.stopped)
            .map(|p| p.info.identity())
            .collect();
        self.steps += 1;
        if forkers.is_empty() || self.forks_left == 0 || self.steps % self.fork_every != 0 {
            return;
        }
        self.forks_left -= 1;
        self.round_robin = (self.round_robin + 1) % forkers.len();
        let parent = forkers[self.round_robin];
        let child = self.spawn(parent);
        if let Some(proc) = self.procs.get_mut(&child.pid()) {
            proc.forker = true;
        }
        if self.hand_over
            && let Some(proc) = self.procs.get_mut(&parent.pid())
        {
            proc.forker = false;
        }
    }

    fn exit(&mut self, pid: Pid) {
        self.procs.remove(&pid);
        let init = Pid::try_from(1).ok();
        for proc in self.procs.values_mut() {
            if proc.info.parent() == Some(pid) {
                proc.info.parent = init;
            }
        }
    }

    pub(crate) fn stopped(&self) -> Vec<Pid> {
        self.procs
            .values()
            .filter(|p| p.stopped || p.stopping.is_some())
            .map(|p| p.info.pid())
            .collect()
    }

    fn descendants_alive(&self, root: Pid) -> usize {
        let mut count = 0;
        let mut frontier = vec![root];
        while let Some(pid) = frontier.pop() {
            for proc in self.procs.values() {
                if proc.info.parent() == Some(pid) {
                    count += 1;
                    frontier.push(proc.info.pid());
                }
            }
        }
        count
    }
}

pub(crate) struct FakeSource {
    kernel: Rc<RefCell<Kernel>>,
    last: Option<ProcessInfo>,
}

impl ProcessSource for FakeSource {
    fn boot_id(&self) -> BootId {
        self.kernel.borrow().boot
    }

    fn list_pids(&mut self, pids: &mut Vec<Pid>) -> Result<()> {
        let mut kernel = self.kernel.borrow_mut();
        kernel.op(false)?;
        pids.clear();
        pids.extend(kernel.procs.keys().copied());
        kernel.op(true)
    }

    fn sample(&mut self, pid: Pid) -> Result<Sample<'_>> {
        {
            let mut kernel = self.kernel.borrow_mut();
            kernel.op(false)?;
            let proc = kernel.procs.get(&pid).ok_or(Error::NotFound { pid })?;
            let mut info = proc.info.clone();
            if proc.stopped {
                info.state = State::Stopped;
            }
            self.last = Some(info);
            kernel.op(true)?;
        }
        self.last
            .as_ref()
            .map(Sample::of)
            .ok_or(Error::NotFound { pid })
    }

    fn read(&mut self, pid: Pid) -> Result<(ProcessInfo, u64)> {
        let kernel = self.kernel.borrow();
        let proc = kernel.procs.get(&pid).ok_or(Error::NotFound { pid })?;
        Ok((proc.info.clone(), 0))
    }

    fn environ(&mut self, identity: ProcessIdentity) -> Result<Option<Vec<u8>>> {
        let mut kernel = self.kernel.borrow_mut();
        let pid = identity.pid();
        let proc = kernel.get(identity).ok_or(Error::NotFound { pid })?;
        Ok(Some(proc.environ.clone()))
    }

    fn read_cwd(&mut self, identity: ProcessIdentity) -> Result<Cwd> {
        let mut kernel = self.kernel.borrow_mut();
        let pid = identity.pid();
        let proc = kernel.get(identity).ok_or(Error::NotFound { pid })?;
        Ok(proc.info.cwd().clone())
    }

    fn children(&mut self, pid: Pid, children: &mut Vec<Pid>) -> Result<bool> {
        let mut kernel = self.kernel.borrow_mut();
        children.clear();
        if !kernel.lists_children {
            return Ok(false);
        }
        kernel.op(false)?;
        if !kernel.procs.contains_key(&pid) {
            return Err(Error::NotFound { pid });
        }
        children.extend(
            kernel
                .procs
                .values()
                .filter(|p| p.info.parent() == Some(pid))
                .map(|p| p.info.pid()),
        );
        kernel.op(true)?;
        Ok(true)
    }
}

struct FakeSignaller {
    kernel: Rc<RefCell<Kernel>>,
}

impl Signaller for FakeSignaller {
    type Pin = ProcessIdentity;

    fn pin(&mut self, identity: ProcessIdentity) -> Result<Option<ProcessIdentity>> {
        let mut kernel = self.kernel.borrow_mut();
        kernel.op(false)?;
        let found = kernel.get(identity).is_some();
        kernel.op(true)?;
        Ok(found.then_some(identity))
    }

    fn send(&mut self, pin: &ProcessIdentity, signal: Signal) -> Result<Delivery> {
        let mut kernel = self.kernel.borrow_mut();
        kernel.op(false)?;
        let delivery = match kernel.get(*pin) {
            None => Delivery::Gone,
            Some(proc) if proc.other_user => Delivery::Denied,
            Some(proc) => {
                let exits = match signal {
                    Signal::Stop => {
                        if !proc.stopped {
                            proc.stopping = Some(2);
                        }
                        false
                    }
                    Signal::Cont => {
                        proc.stopped = false;
                        proc.stopping = None;
                        false
                    }
                    Signal::Kill => true,
                    Signal::Term => !proc.ignores_term,
                    _ => false,
                };
                let leaves_child = signal == Signal::Term && proc.forks_on_term;
                if leaves_child {
                    kernel.spawn(*pin);
                }
                if exits {
                    kernel.exit(pin.pid());
                }
                Delivery::Delivered
            }
        };
        kernel.op(true)?;
        Ok(delivery)
    }

    fn resume(&mut self, pin: &ProcessIdentity) {
        if let Some(proc) = self.kernel.borrow_mut().get(*pin) {
            proc.stopped = false;
            proc.stopping = None;
        }
    }

    fn has_exited(&mut self, pin: &ProcessIdentity) -> Result<bool> {
        let mut kernel = self.kernel.borrow_mut();
        kernel.op(false)?;
        let exited = kernel.get(*pin).is_none();
        kernel.op(true)?;
        Ok(exited)
    }

    fn exit_is_event(&self, _pin: &ProcessIdentity) -> bool {
        true
    }

    fn wait_exits(
        &mut self,
        pins: &[&ProcessIdentity],
        pending: &mut [bool],
        _deadline: Instant,
    ) -> Result<()> {
        let mut kernel = self.kernel.borrow_mut();
        kernel.op(false)?;
        for (pin, pending) in pins.iter().zip(pending.iter_mut()) {
            if kernel.get(**pin).is_none() {
                *pending = false;
            }
        }
        kernel.op(true)
    }

    fn try_reap(&mut self, pin: &ProcessIdentity) -> Result<Option<ExitStatus>> {
        Err(Error::NotChild { pid: pin.pid() })
    }

    fn reap(&mut self, pin: &ProcessIdentity) -> Result<ExitStatus> {
        Err(Error::NotChild { pid: pin.pid() })
    }

    fn wait_unreaped(&mut self, _pin: &ProcessIdentity) -> Result<()> {
        Ok(())
    }
}

/// A kernel with init and a tree: a forking root with `width` children,
/// each with one child of its own.
fn forking_tree(width: usize) -> (Rc<RefCell<Kernel>>, ProcessIdentity) {
    let mut kernel = Kernel::new();
    let init = kernel.spawn_at(1, None);
    let root = kernel.spawn(init);
    for _ in 0..width {
        let child = kernel.spawn(root);
        kernel.spawn(child);
    }
    for proc in kernel.procs.values_mut() {
        if proc.info.pid() != init.pid() {
            proc.forker = true;
        }
    }
    (Rc::new(RefCell::new(kernel)), root)
}

fn kill(
    kernel: &Rc<RefCell<Kernel>>,
    roots: &[ProcessIdentity],
    options: &KillOptions,
) -> Result<KillReport> {
    kill_on(kernel, roots, options, RefusedRoot::Fails, None)
}

/// `kill_roots` on the fake kernel, with a fresh table over it.
fn kill_on(
    kernel: &Rc<RefCell<Kernel>>,
    roots: &[ProcessIdentity],
    options: &KillOptions,
    refused_root: RefusedRoot,
    belonging: Option<&mut dyn super::Belonging<FakeSource>>,
) -> Result<KillReport> {
    let source = FakeSource {
        kernel: Rc::clone(kernel),
        last: None,
    };
    let mut table = ProcessTable::with_source(source, TableOptions::default())?;
    let mut signaller = FakeSignaller {
        kernel: Rc::clone(kernel),
    };
    kill_roots(
        &mut table,
        &mut signaller,
        roots,
        options,
        None,
        refused_root,
        // Reborrowed for the table's lifetime, which is shorter.
        belonging.map(|b| b as &mut dyn super::Belonging<FakeSource>),
    )
}

#[test]
fn kills_a_tree_that_forks_during_the_kill() -> Result<()> {
    for lists_children in [true, false] {
        let (kernel, root) = forking_tree(5);
        kernel.borrow_mut().lists_children = lists_children;
        let report = kill(&kernel, &[root], &KillOptions::new())?;
        let kernel = kernel.borrow();
        assert!(report.settled && report.is_complete(), "{report:?}");
        assert!(kernel.get_ro(root).is_none(), "root alive");
        assert_eq!(kernel.descendants_alive(root.pid()), 0);
        // Orphans of killed members reparent to init: none may be left.
        assert_eq!(
            kernel.procs.len(),
            1,
            "only init is left: {:?}",
            kernel.procs.keys()
        );
        assert!(
            report.killed.len() > 11,
            "forks during the kill were caught too"
        );
        assert!(report.killed.iter().all(|k| k.signal == Signal::Kill));
        assert!(kernel.stopped().is_empty());
    }
    Ok(())
}

impl Kernel {
    pub(crate) fn get_ro(&self, identity: ProcessIdentity) -> Option<&Proc> {
        self.procs
            .get(&identity.pid())
            .filter(|p| p.info.identity() == identity)
    }
}

/// A chain `depth` deep whose tip keeps forking (each new member takes
/// over): killed whole, and how many kernel operations it took.
fn kill_a_growing_chain(depth: usize) -> Result<usize> {
    let mut kernel = Kernel::new();
    let init = kernel.spawn_at(1, None);
    let root = kernel.spawn(init);
    let mut tip = root;
    for _ in 1..depth {
        tip = kernel.spawn(tip);
    }
    kernel.get(tip).expect("the tip").forker = true;
    kernel.hand_over = true;
    // A real tip forks far more slowly than a look at a process takes.
    kernel.fork_every = 10;
    kernel.forks_left = 1000;
    let kernel = Rc::new(RefCell::new(kernel));
    let report = kill(&kernel, &[root], &KillOptions::new())?;
    let kernel = kernel.borrow();
    assert!(report.settled && report.is_complete(), "{report:?}");
    assert_eq!(kernel.procs.len(), 1, "only init is left");
    assert!(
        report.killed.len() >= depth,
        "{} killed",
        report.killed.len()
    );
    assert!(kernel.stopped().is_empty());
    Ok(kernel.ops)
}

/// The cost of a kill follows the tree's size, not its depth times its
/// size: a round visits what is new or not yet seen stopped. Counted in
/// kernel operations, so the figure is exact and the same on every machine.
#[test]
fn a_chain_growing_at_its_tip_costs_in_proportion_to_its_size() -> Result<()> {
    let short = kill_a_growing_chain(100)?;
    let long = kill_a_growing_chain(400)?;
    println!("100 deep: {short} operations; 400 deep: {long}");
    // Quadratic would be ~16x; linear is ~4x.
    assert!(
        long <= 5 * short,
        "100 deep: {short} operations; 400 deep: {long}"
    );
    Ok(())
}

/// A member that answers `SIGTERM` by forking and exiting leaves an orphan
/// with init: the kill finds it there (born during the kill, in the tree's
/// group) and kills it too.
#[test]
fn an_orphan_left_by_a_member_exiting_on_sigterm_is_found_and_killed() -> Result<()> {
    let mut kernel = Kernel::new();
    let init = kernel.spawn_at(1, None);
    // An unrelated process of init's, there before the kill: left alone.
    let bystander = kernel.spawn(init);
    let root = kernel.spawn(init);
    let child = kernel.spawn(root);
    kernel.get(child).expect("child").forks_on_term = true;
    kernel.get(root).expect("root").ignores_term = true;
    let kernel = Rc::new(RefCell::new(kernel));
    let report = kill(
        &kernel,
        &[root],
        &KillOptions::graceful(Duration::from_millis(1)),
    )?;
    let kernel = kernel.borrow();
    assert!(report.is_complete(), "{report:?}");
    assert!(report.escaped.is_empty());
    assert_eq!(
        report.killed.len(),
        3,
        "root, child and the orphan: {report:?}"
    );
    assert!(kernel.get_ro(bystander).is_some(), "the bystander lives");
    assert_eq!(kernel.procs.len(), 2, "init and the bystander are left");
    Ok(())
}

/// A tree that cannot be frozen whole is never reported complete, however
/// many of its members died.
#[test]
fn a_tree_that_never_settles_is_not_reported_complete() -> Result<()> {
    let (kernel, root) = forking_tree(2);
    let stuck = kernel.borrow_mut().spawn(root);
    kernel.borrow_mut().get(stuck).expect("stuck").unstoppable = true;
    let options = KillOptions::new().settle_timeout(Duration::from_millis(20));
    let report = kill(&kernel, &[root], &options)?;
    assert!(!report.settled, "{report:?}");
    assert!(!report.is_complete());
    assert!(report.was_killed(&stuck));
    assert!(
        report.to_string().contains("not proven complete"),
        "{report}"
    );
    assert!(kernel.borrow().stopped().is_empty(), "nothing left stopped");
    Ok(())
}

#[test]
fn graceful_kill_names_the_signal_that_ended_each_member() -> Result<()> {
    let mut kernel = Kernel::new();
    let init = kernel.spawn_at(1, None);
    let root = kernel.spawn(init);
    let polite = kernel.spawn(root);
    let stubborn = kernel.spawn(root);
    if let Some(proc) = kernel.get(stubborn) {
        proc.ignores_term = true;
    }
    let kernel = Rc::new(RefCell::new(kernel));
    let report = kill(
        &kernel,
        &[root],
        &KillOptions::graceful(Duration::from_millis(1)),
    )?;
    let signal_of = |identity| {
        report
            .killed
            .iter()
            .find(|k| k.identity == identity)
            .map(|k| k.signal)
    };
    assert_eq!(signal_of(root), Some(Signal::Term));
    assert_eq!(signal_of(polite), Some(Signal::Term));
    assert_eq!(signal_of(stubborn), Some(Signal::Kill));
    assert_eq!(kernel.borrow().procs.len(), 1);
    assert!(kernel.borrow().stopped().is_empty());
    Ok(())
}

#[test]
fn guard_rails_and_other_users() -> Result<()> {
    let mut kernel = Kernel::new();
    let init = kernel.spawn_at(1, None);
    let root = kernel.spawn(init);
    let theirs = kernel.spawn(root);
    let kthread = kernel.spawn(root);
    if let Some(proc) = kernel.get(theirs) {
        proc.other_user = true;
    }
    if let Some(proc) = kernel.get(kthread) {
        proc.info.kernel_thread = true;
    }
    let kernel = Rc::new(RefCell::new(kernel));
    match kill(&kernel, &[init], &KillOptions::new()) {
        Err(Error::Refused {
            reason: Refusal::Init,
            ..
        }) => {}
        other => panic!("killing init's tree must be refused: {other:?}"),
    }
    let report = kill(&kernel, &[root], &KillOptions::new())?;
    assert_eq!(report.denied, vec![theirs]);
    assert_eq!(report.refused, vec![(kthread, Refusal::KernelThread)]);
    let loose = KillOptions::new().guard(Guard::new().allow_init(true));
    assert!(kill(&kernel, &[theirs], &loose)?.denied.contains(&theirs));
    Ok(())
}

#[test]
fn a_stale_root_is_already_gone_and_nothing_is_signalled() -> Result<()> {
    let (kernel, root) = forking_tree(2);
    let stale = ProcessIdentity::new(
        root.boot_id(),
        root.pid(),
        StartTime::from_raw(root.start_time().as_raw() + 1000),
    );
    let before = kernel.borrow().procs.len();
    let report = kill(&kernel, &[stale], &KillOptions::new())?;
    assert_eq!(report.already_gone, vec![stale]);
    assert!(report.killed.is_empty());
    let kernel = kernel.borrow();
    assert!(kernel.procs.len() >= before);
    assert!(kernel.stopped().is_empty());
    Ok(())
}

/// Every step of a kill fails once, before or after it took effect: the call
/// returns the error, and no process is left stopped.
#[test]
fn a_failure_at_any_step_leaves_no_member_stopped() -> Result<()> {
    let options = KillOptions::graceful(Duration::from_millis(1));
    // How many operations a clean kill takes (with forks bounded, the same
    // each time for the same tree).
    let (kernel, root) = forking_tree(2);
    kernel.borrow_mut().forks_left = 12;
    let base = kernel.borrow().ops;
    kill(&kernel, &[root], &options)?;
    let total = kernel.borrow().ops - base;
    assert!(
        total > 20,
        "a kill takes more than a handful of steps: {total}"
    );
    eprintln!("a clean kill took {total} steps");
    let mut failed = 0;
    for after_effect in [false, true] {
        for n in 1..=total {
            let (kernel, root) = forking_tree(2);
            {
                let mut kernel = kernel.borrow_mut();
                kernel.forks_left = 12;
                kernel.fail_at = Some(kernel.ops + n);
                kernel.fail_after_effect = after_effect;
            }
            let result = kill(&kernel, &[root], &options);
            let kernel = kernel.borrow();
            match result {
                Err(Error::Unsupported { what }) if what == INJECTED => failed += 1,
                Ok(_) => {}
                Err(other) => panic!("step {n}: unexpected error {other:?}"),
            }
            assert!(
                kernel.stopped().is_empty(),
                "step {n} (after effect: {after_effect}) left {:?} stopped",
                kernel.stopped()
            );
        }
    }
    assert!(
        failed >= total,
        "the injected failures surfaced: {failed} of {}",
        2 * total
    );
    Ok(())
}

/// The same promise on a live tree: a kill whose third signal fails
/// returns the error, and the two members it had stopped run again. Runs in
/// a child process of the test binary, which becomes a child subreaper so
/// that it can reap everything the test starts.
#[cfg(target_os = "linux")]
#[test]
fn live_a_failed_kill_resumes_the_members_it_stopped() {
    let exe = std::env::current_exe().expect("the test binary");
    let status = std::process::Command::new(exe)
        .args([
            "--exact",
            "signal::kill_tree_tests::live_resume_helper",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PROCTRACK_LIVE_RESUME", "1")
        .status()
        .expect("run the helper");
    assert!(status.success(), "the live helper failed: {status}");
}

/// Signals through the real signaller, and fails the `fail_at`-th send.
#[cfg(target_os = "linux")]
struct FailingSignaller {
    inner: super::signaller::SystemSignaller,
    sends: usize,
    fail_at: usize,
}

#[cfg(target_os = "linux")]
impl Signaller for FailingSignaller {
    type Pin = super::ProcessHandle;

    fn pin(&mut self, identity: ProcessIdentity) -> Result<Option<Self::Pin>> {
        self.inner.pin(identity)
    }

    fn send(&mut self, pin: &Self::Pin, signal: Signal) -> Result<Delivery> {
        self.sends += 1;
        if self.sends == self.fail_at {
            return Err(Error::Unsupported { what: INJECTED });
        }
        self.inner.send(pin, signal)
    }

    fn resume(&mut self, pin: &Self::Pin) {
        self.inner.resume(pin);
    }

    fn has_exited(&mut self, pin: &Self::Pin) -> Result<bool> {
        self.inner.has_exited(pin)
    }

    fn exit_is_event(&self, pin: &Self::Pin) -> bool {
        self.inner.exit_is_event(pin)
    }

    fn wait_exits(
        &mut self,
        pins: &[&Self::Pin],
        pending: &mut [bool],
        deadline: Instant,
    ) -> Result<()> {
        self.inner.wait_exits(pins, pending, deadline)
    }

    fn try_reap(&mut self, pin: &Self::Pin) -> Result<Option<ExitStatus>> {
        self.inner.try_reap(pin)
    }

    fn reap(&mut self, pin: &Self::Pin) -> Result<ExitStatus> {
        self.inner.reap(pin)
    }

    fn wait_unreaped(&mut self, pin: &Self::Pin) -> Result<()> {
        self.inner.wait_unreaped(pin)
    }
}

#[cfg(target_os = "linux")]
#[test]
#[ignore = "run by live_a_failed_kill_resumes_the_members_it_stopped, in a process of its own"]
fn live_resume_helper() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    use crate::SystemSource;

    if std::env::var_os("PROCTRACK_LIVE_RESUME").is_none() {
        return;
    }
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).expect("subreaper");
    let mut child = Command::new("sh")
        .args(["-c", "sleep 1000 & sleep 1000 & echo ready; wait"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the tree");
    let root = super::ProcessHandle::from_child(&child)
        .expect("pin")
        .identity();
    /// Kills the tree whatever happens to the test.
    struct Cleanup(ProcessIdentity);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            if let Ok(mut table) = ProcessTable::new() {
                let _ = super::kill_tree(&mut table, self.0, &KillOptions::new());
            }
        }
    }
    let cleanup = Cleanup(root);
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready");
    assert_eq!(line.trim(), "ready");

    let mut table: ProcessTable<SystemSource> = ProcessTable::new().expect("table");
    let members: Vec<Pid> = std::iter::once(root.pid())
        .chain(table.descendants(root.pid()).iter().map(|p| p.pid()))
        .collect();
    assert_eq!(members.len(), 3, "sh and two sleeps");
    let mut signaller = FailingSignaller {
        inner: super::signaller::SystemSignaller::new(super::Backend::Auto).expect("signaller"),
        sends: 0,
        fail_at: 3,
    };
    let result = kill_roots(
        &mut table,
        &mut signaller,
        &[root],
        &KillOptions::new(),
        None,
        RefusedRoot::Fails,
        None,
    );
    assert!(
        matches!(result, Err(Error::Unsupported { what }) if what == INJECTED),
        "{result:?}"
    );
    for pid in members {
        let state = crate::platform::read_stat_once(pid, |stat| State::from_letter(stat.state))
            .expect("stat")
            .expect("still alive");
        assert!(!state.is_halted(), "{pid} left {state:?}");
    }
    drop(cleanup);
    let _ = child.wait();
}

#[test]
fn a_plan_names_members_and_refusals_and_signals_nothing() -> Result<()> {
    let mut kernel = Kernel::new();
    let init = kernel.spawn_at(1, None);
    let root = kernel.spawn(init);
    let child = kernel.spawn(root);
    let grandchild = kernel.spawn(child);
    let kthread = kernel.spawn(root);
    if let Some(proc) = kernel.get(kthread) {
        proc.info.kernel_thread = true;
    }
    let kernel = Rc::new(RefCell::new(kernel));
    let source = FakeSource {
        kernel: Rc::clone(&kernel),
        last: None,
    };
    let mut table = ProcessTable::with_source(source, TableOptions::default())?;
    let before = kernel.borrow().procs.len();
    let plan = super::plan_kill(&mut table, &[root, init], &KillOptions::new())?;
    assert_eq!(plan.members, vec![root, child, grandchild]);
    assert_eq!(
        plan.refused,
        vec![(init, Refusal::Init), (kthread, Refusal::KernelThread)]
    );
    let kernel = kernel.borrow();
    assert_eq!(kernel.procs.len(), before);
    assert!(kernel.stopped().is_empty());
    Ok(())
}

/// What a job's cgroup or tag would name: fixed processes, while alive; a
/// look may be made to fail.
struct FakeBelonging {
    kernel: Rc<RefCell<Kernel>>,
    named: Vec<ProcessIdentity>,
    looks: usize,
    fail_at: Option<usize>,
}

impl super::Belonging<FakeSource> for FakeBelonging {
    fn look(&mut self, _table: &mut ProcessTable<FakeSource>) -> Result<Vec<ProcessIdentity>> {
        self.looks += 1;
        if self.fail_at == Some(self.looks) {
            return Err(Error::Unsupported { what: INJECTED });
        }
        let kernel = self.kernel.borrow();
        Ok(self
            .named
            .iter()
            .copied()
            .filter(|identity| kernel.get_ro(*identity).is_some())
            .collect())
    }
}

/// Kills `roots` with `belonging` on the fake kernel: what a supervisor's
/// stop does, for the supervisor's own unit tests.
pub(crate) fn kill_on_fake_kernel(
    kernel: &Rc<RefCell<Kernel>>,
    roots: &[ProcessIdentity],
    belonging: &mut dyn super::Belonging<FakeSource>,
) -> Result<KillReport> {
    kill_belonging_on(kernel, roots, belonging)
}

fn kill_belonging_on(
    kernel: &Rc<RefCell<Kernel>>,
    roots: &[ProcessIdentity],
    belonging: &mut dyn super::Belonging<FakeSource>,
) -> Result<KillReport> {
    kill_on(
        kernel,
        roots,
        &KillOptions::new(),
        RefusedRoot::Reported,
        Some(belonging),
    )
}

/// A tree, and an outsider under init in a session of its own (a member
/// that left the tree: a cgroup member, a tagged daemon).
fn tree_and_outsider(
    outsider_forks: bool,
) -> (Rc<RefCell<Kernel>>, ProcessIdentity, ProcessIdentity) {
    let mut kernel = Kernel::new();
    let init = kernel.spawn_at(1, None);
    let root = kernel.spawn(init);
    kernel.spawn(root);
    let outsider = kernel.spawn(init);
    if let Some(proc) = kernel.get(outsider) {
        proc.forker = outsider_forks;
    }
    (Rc::new(RefCell::new(kernel)), root, outsider)
}

#[test]
fn what_belongs_outside_the_tree_is_killed_with_its_forks() -> Result<()> {
    let (kernel, root, outsider) = tree_and_outsider(true);
    let mut belonging = FakeBelonging {
        kernel: Rc::clone(&kernel),
        named: vec![outsider],
        looks: 0,
        fail_at: None,
    };
    let report = kill_belonging_on(&kernel, &[root], &mut belonging)?;
    assert!(report.is_complete(), "{report:?}");
    assert!(report.was_killed(&outsider), "{report:?}");
    let kernel = kernel.borrow();
    assert_eq!(
        kernel.procs.len(),
        1,
        "only init is left: {:?}",
        kernel.procs.keys()
    );
    assert!(kernel.stopped().is_empty());
    Ok(())
}

#[test]
fn what_belongs_and_may_not_be_signalled_is_counted_not_claimed() -> Result<()> {
    let (kernel, root, outsider) = tree_and_outsider(false);
    if let Some(proc) = kernel.borrow_mut().get(outsider) {
        proc.other_user = true;
    }
    let mut belonging = FakeBelonging {
        kernel: Rc::clone(&kernel),
        named: vec![outsider],
        looks: 0,
        fail_at: None,
    };
    let report = kill_belonging_on(&kernel, &[root], &mut belonging)?;
    assert!(!report.is_complete(), "{report:?}");
    assert!(!report.was_killed(&outsider));
    assert!(report.denied.contains(&outsider), "{report:?}");
    assert!(report.to_string().contains("denied"), "{report}");
    assert!(kernel.borrow().stopped().is_empty());
    Ok(())
}

#[test]
fn something_that_joins_after_the_last_signal_is_killed_or_counted_escaped() -> Result<()> {
    // The look names nothing until the kill has signalled: then a newcomer
    // (a process that entered the cgroup meanwhile) appears.
    let (kernel, root, outsider) = tree_and_outsider(false);
    let mut belonging = FakeBelonging {
        kernel: Rc::clone(&kernel),
        named: Vec::new(),
        looks: 0,
        fail_at: None,
    };
    // Named from the third look on (start, settle, then the sweep).
    struct Late(FakeBelonging, ProcessIdentity);
    impl super::Belonging<FakeSource> for Late {
        fn look(&mut self, table: &mut ProcessTable<FakeSource>) -> Result<Vec<ProcessIdentity>> {
            if self.0.looks >= 2 {
                self.0.named = vec![self.1];
            }
            self.0.look(table)
        }
    }
    let mut late = Late(
        FakeBelonging {
            kernel: Rc::clone(&kernel),
            named: Vec::new(),
            looks: 0,
            fail_at: None,
        },
        outsider,
    );
    let report = kill_belonging_on(&kernel, &[root], &mut late)?;
    assert!(late.0.looks >= 3, "the sweep asked: {} looks", late.0.looks);
    assert!(report.was_killed(&outsider), "{report:?}");
    assert!(report.is_complete(), "{report:?}");
    // And one that cannot be killed is counted as escaped or denied.
    let (kernel, root, outsider) = tree_and_outsider(false);
    if let Some(proc) = kernel.borrow_mut().get(outsider) {
        proc.other_user = true;
    }
    belonging.kernel = Rc::clone(&kernel);
    belonging.named = vec![outsider];
    let report = kill_belonging_on(&kernel, &[root], &mut belonging)?;
    assert!(!report.is_complete());
    Ok(())
}

#[test]
fn a_failing_look_leaves_nothing_stopped() {
    for fail_at in 1..=4 {
        let (kernel, root, outsider) = tree_and_outsider(true);
        let mut belonging = FakeBelonging {
            kernel: Rc::clone(&kernel),
            named: vec![outsider],
            looks: 0,
            fail_at: Some(fail_at),
        };
        let result = kill_belonging_on(&kernel, &[root], &mut belonging);
        if belonging.looks >= fail_at {
            assert!(
                matches!(&result, Err(Error::Unsupported { what }) if *what == INJECTED),
                "look {fail_at}: {result:?}"
            );
        }
        let kernel = kernel.borrow();
        assert!(
            kernel.stopped().is_empty(),
            "look {fail_at} failed and left {:?} stopped",
            kernel.stopped()
        );
    }
}
