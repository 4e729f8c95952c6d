//! What the tree-kill algorithm needs from the operating system, as a
//! crate-private trait: pin a process, signal it, see it exit, collect its
//! status. [`SystemSignaller`] does it with [`ProcessHandle`]s (pidfds on
//! Linux, identity-checked `kill(2)` elsewhere); the unit tests of the
//! algorithm use a fake kernel instead, the way tokio tests its reaper.

use std::process::ExitStatus;
use std::time::Instant;

use super::{Backend, Delivery, ProcessHandle, Signal, sys};
use crate::{Pid, ProcessIdentity, Result};

pub(crate) trait Signaller {
    /// What holds one member: something a signal cannot miss with.
    type Pin;

    /// Pins `identity`; `Ok(None)` when that process is gone (its pid free
    /// or another process's).
    fn pin(&mut self, identity: ProcessIdentity) -> Result<Option<Self::Pin>>;

    /// Sends `signal` through the pin.
    fn send(&mut self, pin: &Self::Pin, signal: Signal) -> Result<Delivery>;

    /// `SIGCONT` for a member left stopped by a kill that failed: best
    /// effort, since there is nothing left to do with an error here.
    fn resume(&mut self, pin: &Self::Pin);

    /// True once the pinned process has exited.
    fn has_exited(&mut self, pin: &Self::Pin) -> Result<bool>;

    /// Whether the pinned process's exit is an event [`wait_exits`](Self::wait_exits)
    /// sees; false for the unpinned fallback.
    fn exit_is_event(&self, pin: &Self::Pin) -> bool;

    /// Waits until every pin with `pending[i]` set has exited, clearing
    /// `pending[i]` for each that has, or until `deadline`. Only pins whose
    /// exit is an event are passed.
    fn wait_exits(
        &mut self,
        pins: &[&Self::Pin],
        pending: &mut [bool],
        deadline: Instant,
    ) -> Result<()>;

    /// Collects the exit status of our child; `Ok(None)` while it runs,
    /// [`Error::NotChild`] when it is not our unreaped child.
    fn try_reap(&mut self, pin: &Self::Pin) -> Result<Option<ExitStatus>>;

    /// Blocks until our child exits and collects its status.
    fn reap(&mut self, pin: &Self::Pin) -> Result<ExitStatus>;

    /// Blocks until our child exits, leaving its status to its owner; does
    /// nothing when the process is not our child any more.
    fn wait_unreaped(&mut self, pin: &Self::Pin) -> Result<()>;
}

/// The real thing: one [`ProcessHandle`] per member.
pub(crate) struct SystemSignaller {
    backend: Backend,
}

impl SystemSignaller {
    pub(crate) fn new(backend: Backend) -> Result<SystemSignaller> {
        Ok(SystemSignaller {
            backend: backend.resolve()?,
        })
    }
}

impl Signaller for SystemSignaller {
    type Pin = ProcessHandle;

    fn pin(&mut self, identity: ProcessIdentity) -> Result<Option<ProcessHandle>> {
        match ProcessHandle::pin(identity, self.backend) {
            // Out of file descriptors (a tree larger than RLIMIT_NOFILE):
            // this member goes unpinned, identity-checked before each signal.
            Err(error) if sys::is_fd_exhaustion(&error) => {
                ProcessHandle::pin(identity, Backend::CheckedPid)
            }
            other => other,
        }
    }

    fn send(&mut self, pin: &ProcessHandle, signal: Signal) -> Result<Delivery> {
        pin.send(signal)
    }

    fn resume(&mut self, pin: &ProcessHandle) {
        let _ = pin.send(Signal::Cont);
    }

    fn has_exited(&mut self, pin: &ProcessHandle) -> Result<bool> {
        pin.has_exited()
    }

    fn exit_is_event(&self, pin: &ProcessHandle) -> bool {
        pin.exit_is_event()
    }

    fn wait_exits(
        &mut self,
        pins: &[&ProcessHandle],
        pending: &mut [bool],
        deadline: Instant,
    ) -> Result<()> {
        sys::wait_exits(pins, pending, Some(deadline))
    }

    fn try_reap(&mut self, pin: &ProcessHandle) -> Result<Option<ExitStatus>> {
        pin.try_reap()
    }

    fn reap(&mut self, pin: &ProcessHandle) -> Result<ExitStatus> {
        pin.reap()
    }

    fn wait_unreaped(&mut self, pin: &ProcessHandle) -> Result<()> {
        let identity = pin.identity();
        match sys::brief(identity.pid())? {
            Some(now)
                if now.start == identity.start_time() && now.parent == Some(Pid::current()) =>
            {
                sys::wait_exit_unreaped(identity.pid())
            }
            _ => Ok(()),
        }
    }
}
