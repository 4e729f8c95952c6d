//! The macOS system calls under the signal layer: `kill(2)`, `waitpid(2)` and
//! kqueue, through `crate::ffi` (the one module with `unsafe`). There is no
//! pidfd: a process is named by its pid and checked by its start time
//! (`sysctl(KERN_PROC_PID)`, the same read `SystemSource` makes).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Instant;

use libc::c_int;
#[cfg(feature = "tokio")]
use tokio::io::Interest;
#[cfg(feature = "tokio")]
use tokio::io::unix::AsyncFd;

use super::{Brief, Sent};
use crate::ffi;
use crate::signal::{ProcessHandle, Signal};
use crate::{Error, Pid, Result};

/// Reads the start time, parent and state of whoever holds `pid`; `None`
/// when no process has it.
pub(crate) fn brief(pid: Pid) -> Result<Option<Brief>> {
    Ok(
        crate::platform::brief(pid)?.map(|(start, parent, state)| Brief {
            start,
            parent,
            state,
        }),
    )
}

/// What error messages name for `pid`: the `sysctl` the identity is read from.
fn pid_path(pid: Pid) -> PathBuf {
    PathBuf::from(format!("kern.proc.pid.{pid}"))
}

/// An errno from a call about `pid`, as a proctrack error.
pub(crate) fn errno_error(error: io::Error, pid: Pid) -> Error {
    match error.raw_os_error() {
        Some(libc::ESRCH) => Error::NotFound { pid },
        Some(libc::EPERM | libc::EACCES) => Error::PermissionDenied {
            path: pid_path(pid),
        },
        Some(libc::ECHILD) => Error::NotChild { pid },
        _ => Error::Io {
            path: Some(pid_path(pid)),
            source: error,
        },
    }
}

/// True for the errors that mean "no more file descriptors". A macOS handle
/// holds none, so only a kqueue can run out.
pub(crate) fn is_fd_exhaustion(error: &Error) -> bool {
    matches!(error, Error::Io { source, .. }
        if matches!(source.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)))
}

/// `kill(2)`: the caller checked the identity right before.
pub(crate) fn kill(pid: Pid, signal: Signal) -> Result<Sent> {
    match ffi::kill(pid.as_raw(), signal.number()) {
        Ok(()) => Ok(Sent::Delivered),
        Err(error) => match error.raw_os_error() {
            Some(libc::ESRCH) => Ok(Sent::Gone),
            Some(libc::EPERM) => Ok(Sent::Denied),
            _ => Err(errno_error(error, pid)),
        },
    }
}

/// A kqueue that watches for the exits of `handles` (those with `pending[i]`
/// set), and which watched pid is which handle. A handle found gone on the
/// way has `pending[i]` cleared.
///
/// Each watch is registered first and checked after: if the pid still holds
/// the handle's start time once the filter is in place, the filter is on that
/// process (it was there before, when the handle was made, and is there
/// after, so it held the pid throughout). ESRCH on registering, or another
/// start time after, means the process has exited.
fn watch(
    handles: &[&ProcessHandle],
    pending: &mut [bool],
) -> Result<(OwnedFd, HashMap<c_int, usize>)> {
    let kq = ffi::kqueue().map_err(|source| Error::Io { path: None, source })?;
    let mut watched = HashMap::new();
    for (i, handle) in handles.iter().enumerate() {
        if !pending[i] {
            continue;
        }
        let pid = handle.pid();
        match ffi::watch_exit(kq.as_fd(), pid.as_raw()) {
            Ok(()) => {}
            Err(error) if error.raw_os_error() == Some(libc::ESRCH) => {
                pending[i] = false;
                continue;
            }
            Err(error) => return Err(errno_error(error, pid)),
        }
        match brief(pid)? {
            Some(now) if now.start == handle.identity().start_time() && !now.state.has_exited() => {
                watched.insert(pid.as_raw(), i);
            }
            _ => pending[i] = false,
        }
    }
    Ok((kq, watched))
}

/// Waits until the handles in `handles` with `pending[i]` set have exited,
/// clearing `pending[i]` for each that has, or until `deadline` (`None`: no
/// deadline). One kqueue for all of them; no polling.
pub(crate) fn wait_exits(
    handles: &[&ProcessHandle],
    pending: &mut [bool],
    deadline: Option<Instant>,
) -> Result<()> {
    let (kq, mut watched) = watch(handles, pending)?;
    let mut exited = Vec::new();
    while !watched.is_empty() {
        let timeout = deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
        exited.clear();
        ffi::wait_exits(kq.as_fd(), &mut exited, timeout)
            .map_err(|source| Error::Io { path: None, source })?;
        for pid in &exited {
            if let Some(i) = watched.remove(pid) {
                pending[i] = false;
            }
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            break;
        }
    }
    Ok(())
}

/// Completes when `handle`'s process exits: its own kqueue, registered with
/// the tokio reactor (a kqueue's fd is readable while it holds an event).
#[cfg(feature = "tokio")]
pub(crate) async fn wait_async(handle: &ProcessHandle) -> Result<()> {
    let mut pending = [true];
    let (kq, watched) = watch(&[handle], &mut pending)?;
    if watched.is_empty() {
        return Ok(());
    }
    let io_error = |source| Error::Io { path: None, source };
    // As on Linux: `with_interest` is deprecated because an arbitrary
    // `AsRawFd` may change or close its fd while registered. An `OwnedFd`
    // cannot: it owns the fd, unchanged, until the `AsyncFd` drops it.
    #[allow(deprecated)]
    let registered = AsyncFd::with_interest(kq, Interest::READABLE).map_err(io_error)?;
    let mut exited = Vec::new();
    loop {
        let mut ready = registered.readable().await.map_err(io_error)?;
        exited.clear();
        ffi::wait_exits(
            registered.get_ref().as_fd(),
            &mut exited,
            Some(std::time::Duration::ZERO),
        )
        .map_err(io_error)?;
        if !exited.is_empty() {
            return Ok(());
        }
        ready.clear_ready();
    }
}

/// Collects the exit status of our child `pid`, by pid: only for callers that
/// checked the pid is our unreaped child (so it cannot be reused meanwhile).
pub(crate) fn waitid_pid(pid: Pid, block: bool) -> Result<Option<ExitStatus>> {
    ffi::waitpid(pid.as_raw(), block)
        .map(|status| status.map(ExitStatus::from_raw))
        .map_err(|error| errno_error(error, pid))
}

/// Blocks until our child `pid` has exited, leaving it unreaped: a kqueue
/// `NOTE_EXIT`, which fires after the kernel has handed its children to their
/// new parent. Same precondition as [`waitid_pid`].
pub(crate) fn wait_exit_unreaped(pid: Pid) -> Result<()> {
    let kq = ffi::kqueue().map_err(|source| Error::Io { path: None, source })?;
    match ffi::watch_exit(kq.as_fd(), pid.as_raw()) {
        Ok(()) => {}
        // Exited already (a zombie is refused too).
        Err(error) if error.raw_os_error() == Some(libc::ESRCH) => return Ok(()),
        Err(error) => return Err(errno_error(error, pid)),
    }
    let mut exited = Vec::new();
    while exited.is_empty() {
        ffi::wait_exits(kq.as_fd(), &mut exited, None)
            .map_err(|source| Error::Io { path: None, source })?;
    }
    Ok(())
}

const NO_SUBREAPER: Error = Error::Unsupported {
    what: "child subreapers on macOS (no PR_SET_CHILD_SUBREAPER)",
};

/// macOS has no child subreaper: orphans always go to launchd.
pub(crate) fn set_subreaper() -> Result<()> {
    Err(NO_SUBREAPER)
}

/// Never: see [`set_subreaper`].
pub(crate) fn is_subreaper() -> Result<bool> {
    Err(NO_SUBREAPER)
}

/// How a handle holds its process: on macOS, it cannot.
#[derive(Debug)]
pub(crate) enum Pin {
    /// Nothing: the start time is re-checked before each `kill(2)`.
    Checked,
}

/// What a [`ProcessHandle`](crate::signal::ProcessHandle) does here: pin, send.
mod handle_ops {
    use std::process::Child;

    use super::super::Pin;
    use crate::signal::sys::{self, Sent};
    use crate::signal::{Backend, Signal};
    use crate::signal::{Delivery, ProcessHandle};
    use crate::{Error, Pid, ProcessIdentity, Result};

    pub(crate) fn pin(
        identity: ProcessIdentity,
        backend: Backend,
    ) -> Result<Option<ProcessHandle>> {
        backend.resolve()?;
        if identity.boot_id() != sys::boot_id()? {
            return Ok(None);
        }
        let handle = ProcessHandle {
            identity,
            pin: Pin::Checked,
        };
        Ok(handle.still_there()?.then_some(handle))
    }

    pub(crate) fn from_child(child: &Child) -> Result<ProcessHandle> {
        let pid = Pid::try_from(child.id())?;
        // An unreaped child keeps its pid: the start time read now is its own.
        match sys::brief(pid)? {
            Some(now) if now.parent == Some(Pid::current()) => {
                let identity = ProcessIdentity::new(sys::boot_id()?, pid, now.start);
                Ok(ProcessHandle {
                    identity,
                    pin: Pin::Checked,
                })
            }
            _ => Err(Error::NotChild { pid }),
        }
    }

    pub(crate) fn backend(handle: &ProcessHandle) -> Backend {
        match handle.pin {
            Pin::Checked => Backend::CheckedPid,
        }
    }

    pub(crate) fn exit_is_event(handle: &ProcessHandle) -> bool {
        match handle.pin {
            // kqueue's NOTE_EXIT tells the exit of any process.
            Pin::Checked => true,
        }
    }

    pub(crate) fn send(handle: &ProcessHandle, signal: Signal) -> Result<Delivery> {
        let pid = handle.pid();
        if !handle.still_there()? {
            return Ok(Delivery::Gone);
        }
        // The window no pidfd closes: between the check above and this call
        // the process could exit, be reaped, and its pid be handed to another.
        let sent = sys::kill(pid, signal)?;
        if signal == Signal::Stop && matches!(sent, Sent::Delivered) && !handle.still_there()? {
            // It did: the stop reached the pid's new holder. Undo it. (A tree
            // kill stops each member first for this reason: a stopped process
            // cannot exit by itself, so the check before the real signal
            // holds until the signal.)
            let _ = sys::kill(pid, Signal::Cont)?;
            return Ok(Delivery::Gone);
        }
        Ok(sent.into())
    }
}
pub(crate) use handle_ops::*;

/// Waiting for a handle's exit and collecting its status here.
mod wait_ops {
    use std::process::ExitStatus;
    use std::time::Instant;

    use crate::signal::{ProcessHandle, sys};
    use crate::{Error, Pid, Result};

    pub(crate) fn has_exited(handle: &ProcessHandle) -> Result<bool> {
        Ok(match sys::brief(handle.pid())? {
            Some(now) if now.start == handle.identity.start_time() => now.state.has_exited(),
            _ => true,
        })
    }

    pub(crate) fn wait_until(handle: &ProcessHandle, deadline: Option<Instant>) -> Result<bool> {
        let mut pending = [true];
        sys::wait_exits(&[handle], &mut pending, deadline)?;
        Ok(!pending[0])
    }

    pub(crate) fn reap(handle: &ProcessHandle, block: bool) -> Result<Option<ExitStatus>> {
        // No pin: go by pid, after checking it is still our unreaped child
        // with this identity. Only we can reap our child, so the pid cannot
        // change hands between the check and the wait (unless the caller broke
        // the ownership rule and reaps it elsewhere too).
        let pid = handle.pid();
        match sys::brief(pid)? {
            Some(now)
                if now.start == handle.identity.start_time()
                    && now.parent == Some(Pid::current()) =>
            {
                sys::waitid_pid(pid, block)
            }
            _ => Err(Error::NotChild { pid }),
        }
    }
}
pub(crate) use wait_ops::*;

/// macOS: no pidfd, no subreaper; kqueue's `EVFILT_PROC` has been there
/// since 10.0.
/// What this kernel offers the signal layer, probed once by `capabilities()`.
pub(crate) fn probe() -> crate::signal::Capabilities {
    crate::signal::Capabilities {
        pidfd: false,
        pidfd_wait: false,
        waitid_pidfd: false,
        child_subreaper: false,
        exit_events: true,
    }
}

/// The BSD numbering, shared with the other platform files that use it.
#[path = "bsd_numbers.rs"]
mod bsd_numbers;
pub(crate) use bsd_numbers::signal_number;
