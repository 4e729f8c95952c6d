//! [`KillOptions`]: how a tree kill kills.

use std::time::Duration;

use super::{Backend, Guard, Signal};

/// How [`kill_tree`](super::kill_tree) and [`kill_cwd`](super::kill_cwd) kill.
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
            reap_root: true,
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
    /// says the tree had not [settled](super::KillReport::settled).
    pub fn settle_timeout(mut self, timeout: Duration) -> KillOptions {
        self.settle_timeout = timeout;
        self
    }

    /// Which protected processes may be signalled.
    pub fn guard(mut self, guard: Guard) -> KillOptions {
        self.guard = guard;
        self
    }

    /// How processes are pinned and signalled; [`Backend::CheckedPid`] forces the
    /// fallback of kernels without pidfds.
    pub fn backend(mut self, backend: Backend) -> KillOptions {
        self.backend = backend;
        self
    }

    /// Whether to collect the root's exit status when it is our child. On by
    /// default, so that killing a child of ours leaves no zombie. Turn it off
    /// when a `std::process::Child` or `tokio::process::Child` will wait for
    /// the root: once reaped here, its `wait` fails (the status is gone).
    pub fn reap_root(mut self, reap: bool) -> KillOptions {
        self.reap_root = reap;
        self
    }
}
