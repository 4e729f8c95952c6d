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
use crate::signal::{ProcessHandle, Signal};
use crate::{Error, Pid, Result, StartTime, State};

/// Reads `/proc/<pid>/stat`; `None` when no process has the pid.
pub(crate) fn brief(pid: Pid) -> Result<Option<Brief>> {
    crate::platform::read_stat_once(pid, |stat| Brief {
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
        rustix::process::pidfd_send_signal(fd, rustix_signal(signal)),
        pid,
    )
}

pub(crate) fn kill(pid: Pid, signal: Signal) -> Result<Sent> {
    sent(
        rustix::process::kill_process(rustix_pid(pid), rustix_signal(signal)),
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

/// How a handle holds its process.
#[derive(Debug)]
pub(crate) enum Pin {
    /// A pidfd: the kernel's reference to exactly this process.
    Pidfd(std::os::fd::OwnedFd),
    /// Nothing: the identity is re-checked in `/proc` before each `kill(2)`.
    Checked,
}

/// What a [`ProcessHandle`](crate::signal::ProcessHandle) does here: pin, send.
mod handle_ops {
    use std::os::fd::AsFd;
    use std::process::Child;

    use super::super::Pin;
    use crate::signal::sys;
    use crate::signal::{Backend, Signal};
    use crate::signal::{Delivery, ProcessHandle};
    use crate::{Error, Pid, ProcessIdentity, Result};

    pub(crate) fn pin(
        identity: ProcessIdentity,
        backend: Backend,
    ) -> Result<Option<ProcessHandle>> {
        let backend = backend.resolve()?;
        if identity.boot_id() != sys::boot_id()? {
            return Ok(None);
        }
        let pid = identity.pid();
        let pin = match backend {
            Backend::CheckedPid => Pin::Checked,
            _ => match sys::pidfd_open(pid)? {
                Some(fd) => Pin::Pidfd(fd),
                None => return Ok(None),
            },
        };
        // Read after pinning: if the pid holds our start time now, the pin
        // (taken earlier, while the identity was known to exist) is on it.
        match sys::brief(pid)? {
            Some(now) if now.start == identity.start_time() => {
                Ok(Some(ProcessHandle { identity, pin }))
            }
            _ => Ok(None),
        }
    }

    pub(crate) fn from_child(child: &Child) -> Result<ProcessHandle> {
        let pid = Pid::try_from(child.id())?;
        let pin = match Backend::Auto.resolve()? {
            Backend::CheckedPid => Pin::Checked,
            _ => Pin::Pidfd(sys::pidfd_open(pid)?.ok_or(Error::NotChild { pid })?),
        };
        match sys::brief(pid)? {
            Some(now) if now.parent == Some(Pid::current()) => {
                let identity = ProcessIdentity::new(sys::boot_id()?, pid, now.start);
                Ok(ProcessHandle { identity, pin })
            }
            _ => Err(Error::NotChild { pid }),
        }
    }

    pub(crate) fn backend(handle: &ProcessHandle) -> Backend {
        match handle.pin {
            Pin::Pidfd(_) => Backend::Pidfd,
            Pin::Checked => Backend::CheckedPid,
        }
    }

    pub(crate) fn exit_is_event(handle: &ProcessHandle) -> bool {
        matches!(handle.pin, Pin::Pidfd(_))
    }

    pub(crate) fn send(handle: &ProcessHandle, signal: Signal) -> Result<Delivery> {
        let pid = handle.pid();
        let sent = match &handle.pin {
            Pin::Pidfd(fd) => sys::pidfd_send(fd.as_fd(), signal, pid)?,
            Pin::Checked => {
                if !handle.still_there()? {
                    return Ok(Delivery::Gone);
                }
                // The window the fallback cannot close: between the check above
                // and this call the process could exit, be reaped, and its pid
                // be handed to another process.
                sys::kill(pid, signal)?
            }
        };
        Ok(sent.into())
    }
}
pub(crate) use handle_ops::*;

/// Waiting for a handle's exit and collecting its status here.
mod wait_ops {
    use std::os::fd::AsFd;
    use std::process::ExitStatus;
    use std::time::Instant;

    #[cfg(feature = "tokio")]
    use tokio::io::Interest;
    #[cfg(feature = "tokio")]
    use tokio::io::unix::AsyncFd;

    use super::super::Pin;
    use crate::signal::{ProcessHandle, capabilities, sys};
    use crate::{Error, Pid, Result};

    const NO_PIDFD_WAIT: Error = Error::Unsupported {
        what: "waiting for a process's exit without a pidfd (Linux 5.3 or later)",
    };

    pub(crate) fn has_exited(handle: &ProcessHandle) -> Result<bool> {
        match &handle.pin {
            Pin::Pidfd(fd) => sys::pidfd_exited(fd.as_fd()),
            Pin::Checked => Ok(match sys::brief(handle.pid())? {
                Some(now) if now.start == handle.identity.start_time() => now.state.has_exited(),
                _ => true,
            }),
        }
    }

    pub(crate) fn wait_until(handle: &ProcessHandle, deadline: Option<Instant>) -> Result<bool> {
        match &handle.pin {
            Pin::Pidfd(fd) => {
                let mut pending = [true];
                sys::wait_readable(&[fd.as_fd()], &mut pending, deadline)?;
                Ok(!pending[0])
            }
            Pin::Checked => Err(NO_PIDFD_WAIT),
        }
    }

    #[cfg(feature = "tokio")]
    pub(crate) async fn wait_async(handle: &ProcessHandle) -> Result<()> {
        let Pin::Pidfd(fd) = &handle.pin else {
            return Err(NO_PIDFD_WAIT);
        };
        let pid = handle.pid();
        let fd = sys::dup(fd.as_fd(), pid)?;
        let io_error = |source| Error::Io {
            path: Some(sys::proc_path(pid, "")),
            source,
        };
        // `with_interest` is deprecated because an arbitrary `AsRawFd` may
        // change or close its fd while registered, which `register_with_interest`
        // makes the caller promise against with `unsafe`. An `OwnedFd` cannot:
        // it owns the fd, unchanged, until the `AsyncFd` drops it. So the safe
        // constructor is sound here, and this crate stays `forbid(unsafe_code)`.
        #[allow(deprecated)]
        let registered = AsyncFd::with_interest(fd, Interest::READABLE).map_err(io_error)?;
        // A pidfd, once readable, stays readable: no need to clear readiness.
        let _ready = registered.readable().await.map_err(io_error)?;
        Ok(())
    }

    pub(crate) fn reap(handle: &ProcessHandle, block: bool) -> Result<Option<ExitStatus>> {
        let pid = handle.pid();
        match &handle.pin {
            Pin::Pidfd(fd) if capabilities().waitid_pidfd => {
                sys::waitid_pidfd(fd.as_fd(), pid, block)
            }
            // Linux 5.3 has pidfds but not waitid(P_PIDFD), and the fallback has
            // no pin: go by pid, after checking it is still our unreaped child
            // with this identity. Only we can reap our child, so the pid cannot
            // change hands between the check and the wait (unless the caller
            // broke the ownership rule and reaps it elsewhere too).
            _ => match sys::brief(pid)? {
                Some(now)
                    if now.start == handle.identity.start_time()
                        && now.parent == Some(Pid::current()) =>
                {
                    sys::waitid_pid(pid, block)
                }
                _ => Err(Error::NotChild { pid }),
            },
        }
    }
}
pub(crate) use wait_ops::*;

/// What this kernel offers the signal layer, probed once by `capabilities()`.
pub(crate) fn probe() -> crate::signal::Capabilities {
    use rustix::io::Errno;
    use rustix::process::{PidfdFlags, WaitId, WaitIdOptions};

    let me = rustix::process::getpid();
    // Our own pid always exists, so any failure means the call is missing
    // (ENOSYS) or filtered (EPERM from seccomp): either way, not usable.
    let pidfd = rustix::process::pidfd_open(me, PidfdFlags::empty()).ok();
    // We are not our own child: a kernel that knows P_PIDFD answers ECHILD, an
    // older one EINVAL for the unknown id type.
    let waitid_pidfd = pidfd.as_ref().is_some_and(|fd| {
        let probe = rustix::process::waitid(
            WaitId::PidFd(std::os::fd::AsFd::as_fd(fd)),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
        );
        matches!(probe, Err(Errno::CHILD))
    });
    crate::signal::Capabilities {
        pidfd: pidfd.is_some(),
        // Poll support on pidfds came in the same release as pidfd_open.
        pidfd_wait: pidfd.is_some(),
        waitid_pidfd,
        child_subreaper: rustix::process::child_subreaper().is_ok(),
        exit_events: pidfd.is_some(),
    }
}

/// rustix's value for the signal. Every name here has a fixed constant, so
/// no unchecked conversion from a number is needed.
pub(crate) fn rustix_signal(signal: Signal) -> rustix::process::Signal {
    use rustix::process::Signal as S;
    match signal {
        Signal::Hup => S::HUP,
        Signal::Int => S::INT,
        Signal::Quit => S::QUIT,
        Signal::Abrt => S::ABORT,
        Signal::Kill => S::KILL,
        Signal::Usr1 => S::USR1,
        Signal::Usr2 => S::USR2,
        Signal::Pipe => S::PIPE,
        Signal::Alrm => S::ALARM,
        Signal::Term => S::TERM,
        Signal::Cont => S::CONT,
        Signal::Stop => S::STOP,
        Signal::Tstp => S::TSTP,
        Signal::Ttin => S::TTIN,
        Signal::Ttou => S::TTOU,
        Signal::Winch => S::WINCH,
    }
}

/// Linux's number for `signal`.
pub(crate) fn signal_number(signal: Signal) -> i32 {
    rustix_signal(signal).as_raw()
}
