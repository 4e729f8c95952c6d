//! Killing a whole process tree: [`kill_tree`], its [`KillOptions`] and the
//! [`KillReport`] it returns.
//!
//! Scanning a tree and then signalling each member misses the children forked
//! in between, and a tree that keeps forking always has such children. So the
//! kill freezes the tree first:
//!
//! 1. pin every member with a [`ProcessHandle`](super::ProcessHandle) (a pid
//!    alone could be reused under us) and send it `SIGSTOP` (on macOS, where
//!    a handle is a checked pid, the start time is checked again after the
//!    stop and before every later signal: a stopped process cannot exit by
//!    itself, so the pid stays its own);
//! 2. rescan, pin and stop the members found since, until a scan that started
//!    after every member was seen stopped finds no new member: a stopped
//!    process cannot fork, so the set is complete;
//! 3. deliver the signal through the pins (`SIGCONT` after it, for signals a
//!    stopped process would otherwise leave pending);
//! 4. wait for the exits on the pidfds (kqueue on macOS); in graceful mode, stop and rescan what
//!    is left after the grace period and `SIGKILL` it;
//! 5. collect the exit status of every member that became our child on the
//!    way (a subreaper adopts the orphans of a dying tree), by its pidfd,
//!    never with a wait for "any child".
//!
//! A member that double-forks and lets the middle process exit before the
//! tree is frozen reparents out of the tree (to pid 1, or to the nearest
//! subreaper): the ppid links that tree discovery follows are gone. A
//! [`Subreaper`](super::Subreaper) keeps such orphans within reach.

use std::time::Duration;

use super::{Backend, Guard, Refusal, Signal};
use crate::{ProcessIdentity, Result};

/// How [`kill_tree`] and [`kill_cwd`](super::kill_cwd) kill.
///
/// The default, [`KillOptions::new`], sends `SIGKILL` at once under the
/// [strict guard](Guard::new). [`KillOptions::graceful`] sends `SIGTERM`
/// first and `SIGKILL` to whatever is left after a grace period.
///
/// ```
/// use std::time::Duration;
/// use proctrack::signal::{Guard, KillOptions, Signal};
///
/// let now = KillOptions::new();
/// let polite = KillOptions::graceful(Duration::from_secs(5));
/// let hangup = KillOptions::new().signal(Signal::Hup).exit_timeout(Duration::from_secs(1));
/// let loose = KillOptions::new().guard(Guard::new().allow_ancestors(true));
/// assert_eq!(polite.grace_period(), Some(Duration::from_secs(5)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KillOptions {
    pub(crate) signal: Signal,
    pub(crate) grace: Option<Duration>,
    pub(crate) exit_timeout: Duration,
    pub(crate) settle_timeout: Duration,
    pub(crate) guard: Guard,
    pub(crate) backend: Backend,
    pub(crate) reap_root: bool,
}

impl Default for KillOptions {
    fn default() -> KillOptions {
        KillOptions::new()
    }
}

impl KillOptions {
    /// `SIGKILL` at once; wait up to 10 s for the exits; strict guard;
    /// [`Backend::Auto`].
    pub fn new() -> KillOptions {
        KillOptions {
            signal: Signal::Kill,
            grace: None,
            exit_timeout: Duration::from_secs(10),
            settle_timeout: Duration::from_secs(10),
            guard: Guard::new(),
            backend: Backend::Auto,
            reap_root: false,
        }
    }

    /// `SIGTERM` (with `SIGCONT`), up to `grace` for the tree to exit, then
    /// `SIGKILL` for what is left.
    pub fn graceful(grace: Duration) -> KillOptions {
        KillOptions::new().signal(Signal::Term).grace(Some(grace))
    }

    /// The signal sent first (`SIGKILL` by default). Signals other than
    /// `SIGKILL`, `SIGSTOP` and `SIGCONT` are followed by `SIGCONT`, since the
    /// tree is stopped when they arrive.
    pub fn signal(mut self, signal: Signal) -> KillOptions {
        self.signal = signal;
        self
    }

    /// With `Some(grace)`: after the first signal, wait up to `grace` for the
    /// tree to exit, then `SIGKILL` what is left (and whatever it forked
    /// meanwhile). With `None`: only the first signal.
    pub fn grace(mut self, grace: Option<Duration>) -> KillOptions {
        self.grace = grace;
        self
    }

    /// The grace period, if any.
    pub fn grace_period(&self) -> Option<Duration> {
        self.grace
    }

    /// How long to wait for exits after the last signal (10 s by default).
    /// Members alive after it are reported as survivors.
    pub fn exit_timeout(mut self, timeout: Duration) -> KillOptions {
        self.exit_timeout = timeout;
        self
    }

    /// How long to keep rescanning for a stopped, complete tree (10 s by
    /// default). A member stuck in uninterruptible sleep never shows as
    /// stopped; after this long the signal is delivered anyway and the report
    /// says the tree had not [settled](KillReport::settled).
    pub fn settle_timeout(mut self, timeout: Duration) -> KillOptions {
        self.settle_timeout = timeout;
        self
    }

    /// Which protected processes may be signalled.
    pub fn guard(mut self, guard: Guard) -> KillOptions {
        self.guard = guard;
        self
    }

    /// How processes are pinned and signalled; [`Backend::Kill`] forces the
    /// fallback of kernels without pidfds.
    pub fn backend(mut self, backend: Backend) -> KillOptions {
        self.backend = backend;
        self
    }

    /// Also collect the root's exit status when it is our child. Off by
    /// default: a child of ours is assumed to be owned by a
    /// `std::process::Child` or `tokio::process::Child` that will wait for
    /// it. Turn it on only for a child nothing else waits for.
    pub fn reap_root(mut self, reap: bool) -> KillOptions {
        self.reap_root = reap;
        self
    }
}

/// What a tree kill did, process by process.
///
/// Each member lands in exactly one of `killed`, `already_gone`, `denied`,
/// `survived` and `refused`.
///
/// ```no_run
/// use proctrack::signal::{kill_tree, KillOptions};
/// let root = proctrack::process(proctrack::Pid::try_from(4242)?)?.identity();
/// let report = kill_tree(root, &KillOptions::new())?;
/// println!("killed {}, survivors {:?}", report.killed.len(), report.survived);
/// assert!(report.is_complete());
/// # Ok::<(), proctrack::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct KillReport {
    /// Signalled and seen to exit (with the fallback backend, which cannot
    /// see exits: signalled with `SIGKILL`; see [`confirmed`](Self::confirmed)).
    pub killed: Vec<ProcessIdentity>,
    /// Exited before a signal reached it (including a root that was gone, or
    /// whose pid now belongs to another process, when the kill began).
    pub already_gone: Vec<ProcessIdentity>,
    /// The kernel refused the signal (`EPERM`): another user's process.
    pub denied: Vec<ProcessIdentity>,
    /// Signalled, but still alive when the wait ended.
    pub survived: Vec<ProcessIdentity>,
    /// Not signalled because a guard rail protects it; its descendants were
    /// not followed through it. In JSON, `{"identity": …, "reason": "init"}`
    /// objects.
    #[cfg_attr(feature = "serde", serde(with = "crate::wire::refusals"))]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Vec<crate::wire::refusals::RefusedJson>")
    )]
    pub refused: Vec<(ProcessIdentity, Refusal)>,
    /// Members that became our children (orphans adopted by a subreaper) and
    /// whose exit status the kill collected, so they leave no zombie.
    pub reaped: Vec<ProcessIdentity>,
    /// True when the tree was complete and stopped before the signal; false
    /// when the settle timeout ran out first (see
    /// [`KillOptions::settle_timeout`]).
    pub settled: bool,
    /// True when every exit was seen as an event (a pidfd on Linux, kqueue
    /// on macOS); false when some member was signalled through the Linux
    /// fallback, which cannot wait for exits.
    pub confirmed: bool,
}

impl KillReport {
    /// True when nothing is left: no survivor, no denial, no refusal.
    pub fn is_complete(&self) -> bool {
        self.survived.is_empty() && self.denied.is_empty() && self.refused.is_empty()
    }

    /// Every process the kill dealt with, in any category.
    pub fn members(&self) -> impl Iterator<Item = ProcessIdentity> + '_ {
        self.killed
            .iter()
            .chain(&self.already_gone)
            .chain(&self.denied)
            .chain(&self.survived)
            .copied()
            .chain(self.refused.iter().map(|(identity, _)| *identity))
    }
}

/// Kills `root` and all its descendants, race-free (see the
/// [module docs](self) for how).
///
/// Returns [`Error::Refused`](crate::Error::Refused) when the guard protects
/// the root itself (killing the tree of pid 1 or of one of our ancestors
/// would take everything else with it). A root that is already gone is not an
/// error: the report lists it in [`already_gone`](KillReport::already_gone).
/// `EPERM` on a member is reported, and the kill goes on.
///
/// ```no_run
/// use std::time::Duration;
/// use proctrack::signal::{kill_tree, KillOptions, ProcessHandle};
///
/// let mut child = std::process::Command::new("sh")
///     .args(["-c", "sleep 100 & sleep 100 & wait"])
///     .spawn()?;
/// let root = ProcessHandle::from_child(&child)?.identity();
/// let report = kill_tree(root, &KillOptions::graceful(Duration::from_secs(2)))?;
/// assert!(report.is_complete());
/// child.wait()?; // the root is our child: its status is still ours to take
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn kill_tree(root: ProcessIdentity, options: &KillOptions) -> Result<KillReport> {
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    {
        super::killer::kill_roots(&[root], options, None, true)
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        let _ = (root, options);
        Err(crate::Error::Unsupported {
            what: "killing process trees on this platform",
        })
    }
}
