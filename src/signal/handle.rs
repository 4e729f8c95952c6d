//! [`ProcessHandle`]: one live process, pinned, that a signal cannot miss.

use std::process::Child;

use super::{Backend, Guard, Signal, sys};
use crate::{Error, Pid, ProcessIdentity, Result};

/// A handle to one particular process, made from its identity.
///
/// Opening a handle pins the process first (a pidfd) and then checks that the
/// pinned process *is* the identity: its start time, read after pinning, must
/// equal the identity's, and the identity must be of this boot. From then on
/// the kernel ties the handle to that process: if it exits and its pid is
/// reused, signals through the handle fail as [`Delivery::Gone`] instead of
/// reaching the newcomer.
///
/// On kernels without pidfds (or with [`Backend::CheckedPid`]) the handle holds no
/// pin; each signal re-checks the identity in `/proc` right before `kill(2)`.
/// See [`capabilities`](super::capabilities) for what holds where.
///
/// **On macOS** there is no pidfd: every handle is [`Backend::CheckedPid`]. It
/// holds the identity (pid, start time in microseconds since the epoch), and
/// each signal re-checks that start time through `sysctl(KERN_PROC_PID)`
/// right before `kill(2)`. A small window remains between the check and the
/// signal in which the process could exit, be reaped by its parent and its
/// pid be handed to a new process. A `SIGSTOP` that turns out, on the check
/// after it, to have reached a new holder of the pid is undone with
/// `SIGCONT` and reported [`Delivery::Gone`]. Waiting for the exit is an
/// event all the same, for any process: a kqueue `EVFILT_PROC` /
/// `NOTE_EXIT` filter, registered first and then checked against the start
/// time.
///
/// ```no_run
/// use proctrack::signal::{Delivery, ProcessHandle, Signal};
///
/// let identity = proctrack::process(proctrack::Pid::try_from(4242)?)?.identity();
/// // ... time passes; the process may exit and its pid be reused ...
/// match ProcessHandle::open(identity) {
///     Ok(handle) => match handle.signal(Signal::Term)? {
///         Delivery::Delivered => println!("sent"),
///         Delivery::Gone => println!("exited meanwhile"),
///         Delivery::Denied => println!("not ours to signal"),
///     },
///     Err(proctrack::Error::NotFound { .. }) => println!("already gone"),
///     Err(other) => return Err(other),
/// }
/// # Ok::<(), proctrack::Error>(())
/// ```
#[derive(Debug)]
pub struct ProcessHandle {
    pub(crate) identity: ProcessIdentity,
    pub(crate) pin: sys::Pin,
}

/// What became of a signal sent through a handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Delivery {
    /// The kernel accepted the signal for the process. (A process that already
    /// exited but is not reaped yet accepts signals too, and ignores them.)
    Delivered,
    /// The process is gone: the signal reached no one.
    Gone,
    /// The kernel refused (`EPERM`): the process belongs to another user.
    Denied,
}

impl ProcessHandle {
    /// Opens a handle to `identity`, or [`Error::NotFound`] if that process is
    /// gone (exited, or its pid now belongs to another process, or it belongs
    /// to another boot). Uses [`Backend::Auto`].
    ///
    /// ```no_run
    /// use proctrack::signal::ProcessHandle;
    /// let me = proctrack::process(proctrack::Pid::current())?.identity();
    /// let handle = ProcessHandle::open(me)?;
    /// assert_eq!(handle.identity(), me);
    /// # Ok::<(), proctrack::Error>(())
    /// ```
    pub fn open(identity: ProcessIdentity) -> Result<ProcessHandle> {
        ProcessHandle::open_with(identity, Backend::Auto)
    }

    /// Opens a handle with a chosen [`Backend`].
    ///
    /// [`Backend::Pidfd`] fails with [`Error::Unsupported`] on kernels
    /// without pidfds; [`Backend::CheckedPid`] forces the identity-checked fallback.
    ///
    /// ```no_run
    /// use proctrack::signal::{Backend, ProcessHandle};
    /// let me = proctrack::process(proctrack::Pid::current())?.identity();
    /// let handle = ProcessHandle::open_with(me, Backend::CheckedPid)?;
    /// assert_eq!(handle.backend(), Backend::CheckedPid);
    /// # Ok::<(), proctrack::Error>(())
    /// ```
    pub fn open_with(identity: ProcessIdentity, backend: Backend) -> Result<ProcessHandle> {
        ProcessHandle::pin(identity, backend)?.ok_or(Error::NotFound {
            pid: identity.pid(),
        })
    }

    /// Opens a handle to a child just spawned with [`std::process::Command`].
    ///
    /// Call it before anything waits for the child: an unreaped child keeps
    /// its pid, so the handle is certain to pin it. Once the child has been
    /// reaped (`wait`, `try_wait` returning `Some`), its pid may belong to
    /// another process, and a handle made from it could pin that one. Fails
    /// with [`Error::NotChild`] when the pid is not a child of ours.
    ///
    /// ```no_run
    /// use proctrack::signal::{ProcessHandle, Signal};
    ///
    /// let mut child = std::process::Command::new("sleep").arg("60").spawn()?;
    /// let handle = ProcessHandle::from_child(&child)?;
    /// handle.signal(Signal::Term)?;
    /// child.wait()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_child(child: &Child) -> Result<ProcessHandle> {
        sys::from_child(child)
    }

    /// The identity the handle was made from.
    pub fn identity(&self) -> ProcessIdentity {
        self.identity
    }

    /// The process's pid.
    pub fn pid(&self) -> Pid {
        self.identity.pid()
    }

    /// How this handle reaches its process: [`Backend::Pidfd`] or
    /// [`Backend::CheckedPid`] (never `Auto`).
    pub fn backend(&self) -> Backend {
        sys::backend(self)
    }

    /// Sends `signal`, unless the [strict guard](Guard::new) protects the
    /// process (pid 1, the calling process, its ancestors): then
    /// [`Error::Refused`].
    ///
    /// ```no_run
    /// use proctrack::signal::{Delivery, ProcessHandle, Signal};
    /// let child = std::process::Command::new("sleep").arg("60").spawn()?;
    /// let handle = ProcessHandle::from_child(&child)?;
    /// assert_eq!(handle.signal(Signal::Kill)?, Delivery::Delivered);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn signal(&self, signal: Signal) -> Result<Delivery> {
        self.signal_with(signal, &Guard::new())
    }

    /// Sends `signal` under a chosen [`Guard`].
    ///
    /// ```no_run
    /// use proctrack::signal::{Guard, ProcessHandle, Signal};
    /// let me = proctrack::process(proctrack::Pid::current())?.identity();
    /// let handle = ProcessHandle::open(me)?;
    /// assert!(handle.signal(Signal::Usr1).is_err()); // refused: it is us
    /// handle.signal_with(Signal::Winch, &Guard::new().allow_self(true))?;
    /// # Ok::<(), proctrack::Error>(())
    /// ```
    pub fn signal_with(&self, signal: Signal, guard: &Guard) -> Result<Delivery> {
        guard.protected_now()?.check(self.pid())?;
        self.send(signal)
    }

    /// Pins `identity`; `Ok(None)` when it is gone.
    pub(crate) fn pin(
        identity: ProcessIdentity,
        backend: Backend,
    ) -> Result<Option<ProcessHandle>> {
        sys::pin(identity, backend)
    }

    /// Sends without consulting a guard (the caller did).
    pub(crate) fn send(&self, signal: Signal) -> Result<Delivery> {
        sys::send(self, signal)
    }

    /// Whether this handle's exit can be awaited as an event (a pidfd on
    /// Linux, kqueue on macOS); false for an unpinned Linux handle.
    pub(crate) fn exit_is_event(&self) -> bool {
        sys::exit_is_event(self)
    }
}

/// For handles without a pidfd pin (the kill(2) fallback, and macOS):
/// whether the pid still holds our identity (alive or zombie).
impl ProcessHandle {
    pub(crate) fn still_there(&self) -> Result<bool> {
        Ok(super::sys::brief(self.pid())?
            .is_some_and(|now| now.start == self.identity.start_time()))
    }
}

impl From<super::sys::Sent> for Delivery {
    fn from(sent: super::sys::Sent) -> Delivery {
        match sent {
            super::sys::Sent::Delivered => Delivery::Delivered,
            super::sys::Sent::Gone => Delivery::Gone,
            super::sys::Sent::Denied => Delivery::Denied,
        }
    }
}
