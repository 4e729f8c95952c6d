//! Platforms proctrack cannot signal on yet: every call is
//! [`Error::Unsupported`](crate::Error::Unsupported), and no handle exists.

use std::time::Instant;

use super::{Brief, Sent};
use crate::signal::{ProcessHandle, Signal};
use crate::{Error, Pid, Result};

const UNSUPPORTED: Error = Error::Unsupported {
    what: "signals on this platform",
};

pub(crate) fn brief(_pid: Pid) -> Result<Option<Brief>> {
    Err(UNSUPPORTED)
}

pub(crate) fn kill(_pid: Pid, _signal: Signal) -> Result<Sent> {
    Err(UNSUPPORTED)
}

pub(crate) fn is_fd_exhaustion(_error: &Error) -> bool {
    false
}

pub(crate) fn wait_exits(
    _handles: &[&ProcessHandle],
    _pending: &mut [bool],
    _deadline: Option<Instant>,
) -> Result<()> {
    Err(UNSUPPORTED)
}

pub(crate) fn wait_exit_unreaped(_pid: Pid) -> Result<()> {
    Err(UNSUPPORTED)
}

pub(crate) fn set_subreaper() -> Result<()> {
    Err(UNSUPPORTED)
}

pub(crate) fn is_subreaper() -> Result<bool> {
    Err(UNSUPPORTED)
}

/// No platform but Linux and macOS can make a handle yet.
#[derive(Debug)]
pub(crate) enum Pin {}

/// No handle can be made here.
mod handle_ops {
    use std::process::Child;

    use crate::signal::{Backend, Signal};
    use crate::signal::{Delivery, ProcessHandle};
    use crate::{Error, ProcessIdentity, Result};

    pub(crate) const UNSUPPORTED: Error = Error::Unsupported {
        what: "process handles on this platform",
    };

    pub(crate) fn pin(
        _identity: ProcessIdentity,
        _backend: Backend,
    ) -> Result<Option<ProcessHandle>> {
        Err(UNSUPPORTED)
    }

    pub(crate) fn from_child(_child: &Child) -> Result<ProcessHandle> {
        Err(UNSUPPORTED)
    }

    pub(crate) fn backend(handle: &ProcessHandle) -> Backend {
        match handle.pin {}
    }

    pub(crate) fn send(handle: &ProcessHandle, _signal: Signal) -> Result<Delivery> {
        match handle.pin {}
    }

    pub(crate) fn exit_is_event(handle: &ProcessHandle) -> bool {
        match handle.pin {}
    }
}
pub(crate) use handle_ops::*;

/// No handle exists here to wait for.
mod wait_ops {
    use std::process::ExitStatus;
    use std::time::Instant;

    use crate::Result;
    use crate::signal::ProcessHandle;

    pub(crate) fn has_exited(handle: &ProcessHandle) -> Result<bool> {
        match handle.pin {}
    }

    pub(crate) fn wait_until(handle: &ProcessHandle, _deadline: Option<Instant>) -> Result<bool> {
        match handle.pin {}
    }

    #[cfg(feature = "tokio")]
    pub(crate) async fn wait_async(handle: &ProcessHandle) -> Result<()> {
        match handle.pin {}
    }

    pub(crate) fn reap(handle: &ProcessHandle, _block: bool) -> Result<Option<ExitStatus>> {
        match handle.pin {}
    }
}
pub(crate) use wait_ops::*;

/// What this kernel offers the signal layer, probed once by `capabilities()`.
pub(crate) fn probe() -> crate::signal::Capabilities {
    crate::signal::Capabilities {
        pidfd: false,
        pidfd_wait: false,
        waitid_pidfd: false,
        child_subreaper: false,
        exit_events: false,
    }
}

/// The BSD numbering, shared with the other platform files that use it.
#[path = "bsd_numbers.rs"]
mod bsd_numbers;
pub(crate) use bsd_numbers::signal_number;
