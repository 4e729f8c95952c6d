//! The Linux system calls under the signal layer, each in one small function
//! that speaks proctrack's types. Nothing above this module touches rustix.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{PidfdFlags, WaitId, WaitIdOptions, WaitIdStatus};

use super::{Brief, Sent};
use crate::signal::handle::Pin;
use crate::signal::{ProcessHandle, Signal};
use crate::{Error, Pid, Result, StartTime, State};

/// Reads `/proc/<pid>/stat`; `None` when no process has the pid.
pub(crate) fn brief(pid: Pid) -> Result<Option<Brief>> {
    crate::linux::read_stat_once(pid, |stat| Brief {
        start: StartTime::from_raw(stat.starttime),
        parent: Pid::try_from(stat.ppid).ok(),
        state: State::from_letter(stat.state),
    })
}

fn is_errno(error: &std::io::Error, errno: Errno) -> bool {
    error.raw_os_error() == Some(errno.raw_os_error())
}

/// `/proc/<pid>/<leaf>`, for error messages and the fallback's reads.
pub(crate) fn proc_path(pid: Pid, leaf: &str) -> PathBuf {
    let mut path = PathBuf::from(format!("/proc/{pid}"));
    if !leaf.is_empty() {
        path.push(leaf);
    }
    path
}

pub(crate) fn rustix_pid(pid: Pid) -> rustix::process::Pid {
    // A `Pid` is in 1..=i32::MAX, which rustix accepts; the fallback is never
    // taken, and naming ourselves is harmless where it would be.
    rustix::process::Pid::from_raw(pid.as_raw()).unwrap_or_else(rustix::process::getpid)
}

/// An errno from a call about `pid`, as a proctrack error.
pub(crate) fn errno_error(errno: Errno, pid: Pid) -> Error {
    match errno {
        Errno::SRCH | Errno::NOENT => Error::NotFound { pid },
        Errno::PERM | Errno::ACCESS => Error::PermissionDenied {
            path: proc_path(pid, ""),
        },
        Errno::CHILD => Error::NotChild { pid },
        Errno::NOSYS => Error::Unsupported {
            what: "pidfd (Linux 5.3 or later)",
        },
        other => Error::Io {
            path: Some(proc_path(pid, "")),
            source: other.into(),
        },
    }
}

/// True for the errors that mean "no more file descriptors".
pub(crate) fn is_fd_exhaustion(error: &Error) -> bool {
    matches!(error, Error::Io { source, .. } if is_errno(source, Errno::MFILE) || is_errno(source, Errno::NFILE))
}

/// `pidfd_open(pid)`; `Ok(None)` when the process is gone (the kernel says
/// ESRCH, or EINVAL/ENOENT while it is being torn down, or for a thread id).
pub(crate) fn pidfd_open(pid: Pid) -> Result<Option<OwnedFd>> {
    match rustix::process::pidfd_open(rustix_pid(pid), PidfdFlags::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::SRCH | Errno::INVAL | Errno::NOENT) => Ok(None),
        Err(errno) => Err(errno_error(errno, pid)),
    }
}

pub(crate) fn pidfd_send(fd: BorrowedFd<'_>, signal: Signal, pid: Pid) -> Result<Sent> {
    sent(
        rustix::process::pidfd_send_signal(fd, signal.to_rustix()),
        pid,
    )
}

pub(crate) fn kill(pid: Pid, signal: Signal) -> Result<Sent> {
    sent(
        rustix::process::kill_process(rustix_pid(pid), signal.to_rustix()),
        pid,
    )
}

fn sent(result: rustix::io::Result<()>, pid: Pid) -> Result<Sent> {
    match result {
        Ok(()) => Ok(Sent::Delivered),
        Err(Errno::SRCH) => Ok(Sent::Gone),
        Err(Errno::PERM) => Ok(Sent::Denied),
        Err(errno) => Err(errno_error(errno, pid)),
    }
}

/// Waits until the handles in `handles` with `pending[i]` set have exited,
/// clearing `pending[i]` for each that has, or until `deadline`. Only pidfd
/// handles can be waited for: an unpinned one stays pending.
pub(crate) fn wait_exits(
    handles: &[&ProcessHandle],
    pending: &mut [bool],
    deadline: Option<Instant>,
) -> Result<()> {
    let mut index: Vec<usize> = Vec::new();
    let mut fds: Vec<BorrowedFd<'_>> = Vec::new();
    for (i, handle) in handles.iter().enumerate() {
        if let (Pin::Pidfd(fd), true) = (&handle.pin, pending[i]) {
            index.push(i);
            fds.push(fd.as_fd());
        }
    }
    let mut waiting = vec![true; fds.len()];
    wait_readable(&fds, &mut waiting, deadline)?;
    for (slot, i) in index.into_iter().enumerate() {
        if !waiting[slot] {
            pending[i] = false;
        }
    }
    Ok(())
}

/// Waits until the fds in `fds` with `pending[i]` set become readable (their
/// process exited), clearing `pending[i]` for each that does, or until
/// `deadline` (`None`: no deadline). One `poll(2)` per wake-up, on the fds
/// still pending; no sleeping.
pub(crate) fn wait_readable(
    fds: &[BorrowedFd<'_>],
    pending: &mut [bool],
    deadline: Option<Instant>,
) -> Result<()> {
    let mut polled: Vec<PollFd<'_>> = Vec::new();
    let mut index: Vec<usize> = Vec::new();
    loop {
        polled.clear();
        index.clear();
        for (i, fd) in fds.iter().enumerate() {
            if pending[i] {
                polled.push(PollFd::from_borrowed_fd(*fd, PollFlags::IN));
                index.push(i);
            }
        }
        if polled.is_empty() {
            return Ok(());
        }
        let timeout = deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
        let timespec = timeout.map(timespec);
        match rustix::event::poll(&mut polled, timespec.as_ref()) {
            Ok(_) => {}
            Err(Errno::INTR) => {}
            Err(errno) => {
                return Err(Error::Io {
                    path: None,
                    source: errno.into(),
                });
            }
        }
        for (slot, fd) in index.iter().zip(&polled) {
            // A pidfd is readable (or hung up) once its process has exited.
            if !fd.revents().is_empty() {
                pending[*slot] = false;
            }
        }
        if timeout == Some(Duration::ZERO) || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(());
        }
    }
}

fn timespec(duration: Duration) -> Timespec {
    // Durations beyond what a Timespec holds are years: wait "forever" in
    // one-year steps instead.
    Timespec::try_from(duration).unwrap_or(Timespec {
        tv_sec: 365 * 24 * 3600,
        tv_nsec: 0,
    })
}

/// True once the process behind `fd` has exited (zombie or reaped).
pub(crate) fn pidfd_exited(fd: BorrowedFd<'_>) -> Result<bool> {
    let mut pending = [true];
    wait_readable(&[fd], &mut pending, Some(Instant::now()))?;
    Ok(!pending[0])
}

/// Collects the exit status of our child behind `fd`. `block`: wait for it to
/// exit; otherwise `Ok(None)` while it runs.
pub(crate) fn waitid_pidfd(
    fd: BorrowedFd<'_>,
    pid: Pid,
    block: bool,
) -> Result<Option<ExitStatus>> {
    waitid(WaitId::PidFd(fd), pid, block)
}

/// Collects the exit status of our child `pid`, by pid: only for callers that
/// checked the pid is our unreaped child (so it cannot be reused meanwhile).
pub(crate) fn waitid_pid(pid: Pid, block: bool) -> Result<Option<ExitStatus>> {
    waitid(WaitId::Pid(rustix_pid(pid)), pid, block)
}

/// Blocks until our child `pid` has exited, leaving it unreaped (`WNOWAIT`):
/// by then the kernel has handed its children to their new parent. Same
/// precondition as [`waitid_pid`].
pub(crate) fn wait_exit_unreaped(pid: Pid) -> Result<()> {
    loop {
        match rustix::process::waitid(
            WaitId::Pid(rustix_pid(pid)),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        ) {
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(errno) => return Err(errno_error(errno, pid)),
        }
    }
}

fn waitid(id: WaitId<'_>, pid: Pid, block: bool) -> Result<Option<ExitStatus>> {
    let options = if block {
        WaitIdOptions::EXITED
    } else {
        WaitIdOptions::EXITED | WaitIdOptions::NOHANG
    };
    loop {
        match rustix::process::waitid(id.clone(), options) {
            Ok(status) => return Ok(status.map(|s| exit_status(&s))),
            Err(Errno::INTR) => continue,
            Err(errno) => return Err(errno_error(errno, pid)),
        }
    }
}

/// A `waitid` result as the `wait` status std's [`ExitStatus`] is made of.
fn exit_status(status: &WaitIdStatus) -> ExitStatus {
    let raw = if let Some(code) = status.exit_status() {
        (code & 0xff) << 8
    } else if let Some(signal) = status.terminating_signal() {
        (signal & 0x7f) | if status.dumped() { 0x80 } else { 0 }
    } else {
        0
    };
    ExitStatus::from_raw(raw)
}

/// A second fd on the same pidfd, for registering with an event loop (one fd
/// can be registered with an epoll set only once).
#[cfg(feature = "tokio")]
pub(crate) fn dup(fd: BorrowedFd<'_>, pid: Pid) -> Result<OwnedFd> {
    rustix::io::fcntl_dupfd_cloexec(fd, 0).map_err(|errno| errno_error(errno, pid))
}

/// Marks the calling process a child subreaper.
pub(crate) fn set_subreaper() -> Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .map_err(|errno| errno_error(errno, crate::Pid::current()))
}

/// Whether the calling process is a child subreaper.
pub(crate) fn is_subreaper() -> Result<bool> {
    rustix::process::child_subreaper()
        .map(|pid| pid.is_some())
        .map_err(|errno| errno_error(errno, crate::Pid::current()))
}
