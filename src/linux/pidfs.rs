//! The pidfs inode of a process: a 64-bit number the kernel never hands to
//! another process within a boot (Linux 6.9 and later).
//!
//! A pidfd opened on such a kernel lives on the `pidfs` file system, and
//! `fstat(pidfd).st_ino` is the process's inode there. Unlike a start time
//! (10 ms clock ticks, so two processes on the same pid can share one) the
//! inode tells every process of a boot apart. Before 6.9 a pidfd is an
//! anonymous inode shared by all pidfds: no use, so no answer.

use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::process::PidfdFlags;

use super::SystemSource;
use crate::{Error, ProcessIdentity, Result};

/// `PIDFS_MAGIC` from `include/uapi/linux/magic.h`: "PIDF".
const PIDFS_MAGIC: i64 = 0x5049_4446;

/// The pidfs inode of the process `identity`, if it exists now (alive or an
/// unreaped zombie) and the kernel has pidfs; `None` otherwise, also when the
/// identity belongs to another boot or its pid now names another process.
// `f_type` and `st_ino` have other integer types on other architectures.
#[allow(clippy::useless_conversion)]
pub(crate) fn pidfs_inode(
    reader: &mut SystemSource,
    identity: ProcessIdentity,
) -> Result<Option<u64>> {
    if identity.boot_id() != reader.boot_id() {
        return Ok(None);
    }
    let pid = identity.pid();
    let Some(raw) = rustix::process::Pid::from_raw(pid.as_raw()) else {
        return Ok(None);
    };
    let io = |errno: Errno| Error::Io {
        path: Some(format!("/proc/{pid}").into()),
        source: errno.into(),
    };
    let fd: OwnedFd = match rustix::process::pidfd_open(raw, PidfdFlags::empty()) {
        Ok(fd) => fd,
        // Gone (or being torn down, or a thread id), or no pidfds at all.
        Err(Errno::SRCH | Errno::INVAL | Errno::NOENT | Errno::NOSYS) => return Ok(None),
        Err(errno) => return Err(io(errno)),
    };
    // Read after pinning: if the pid holds the identity's start time now, the
    // pidfd (opened before) is on that very process.
    match reader.stat(pid) {
        Ok(stat) if stat.starttime == identity.start_time().as_raw() => {}
        Ok(_) | Err(Error::NotFound { .. }) => return Ok(None),
        Err(other) => return Err(other),
    }
    let fs = rustix::fs::fstatfs(&fd).map_err(io)?;
    if i64::from(fs.f_type) != PIDFS_MAGIC {
        return Ok(None);
    }
    let stat = rustix::fs::fstat(&fd).map_err(io)?;
    Ok(Some(u64::from(stat.st_ino)))
}
