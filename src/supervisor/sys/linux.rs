//! Linux: cgroup2 exists, and rustix makes the calls.

use std::fs::File;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::io::Errno;
use rustix::process::{WaitId, WaitIdOptions};

use crate::{Error, Pid, Result};

/// Where this process's mount table is.
pub(super) const MOUNTINFO: &str = "/proc/self/mountinfo";
/// Where this process's cgroup membership is.
pub(super) const OWN_CGROUP: &str = "/proc/self/cgroup";

/// True when the effective user is root.
pub(super) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The effective uid.
pub(super) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Waits until `file` (a cgroup interface file such as `cgroup.events`)
/// signals a change with `POLLPRI` (the kernel's cgroup-v2 notification),
/// or until `deadline`. Returns false on timeout.
pub(super) fn wait_priority(file: &File, deadline: Instant) -> Result<bool> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = Timespec::try_from(left).unwrap_or(Timespec {
            tv_sec: 365 * 24 * 3600,
            tv_nsec: 0,
        });
        let mut fds = [PollFd::new(file, PollFlags::PRI)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(Errno::INTR) => {
                if left == Duration::ZERO {
                    return Ok(false);
                }
            }
            Err(errno) => {
                return Err(Error::Io {
                    path: None,
                    source: errno.into(),
                });
            }
        }
    }
}

/// How a child we spawned first changed state.
pub(super) enum Halt {
    /// It stopped itself (the shim's "I am inside" handshake).
    Stopped,
    /// It exited (the shim could not enter the cgroup).
    Exited,
}

/// Blocks until our unreaped child `pid` stops or exits, without collecting
/// its status (`waitid(P_PID, WSTOPPED | WEXITED | WNOWAIT)`).
pub(super) fn wait_stopped_or_exited(pid: Pid) -> Result<Halt> {
    let raw = rustix::process::Pid::from_raw(pid.as_raw()).ok_or(Error::InvalidPid {
        value: i128::from(pid.as_raw()),
    })?;
    loop {
        let options = WaitIdOptions::STOPPED | WaitIdOptions::EXITED | WaitIdOptions::NOWAIT;
        match rustix::process::waitid(WaitId::Pid(raw), options) {
            Ok(Some(status)) if status.stopped() => return Ok(Halt::Stopped),
            Ok(Some(_)) => return Ok(Halt::Exited),
            Ok(None) | Err(Errno::INTR) => continue,
            Err(Errno::CHILD) => return Err(Error::NotChild { pid }),
            Err(errno) => {
                return Err(Error::Io {
                    path: None,
                    source: errno.into(),
                });
            }
        }
    }
}
