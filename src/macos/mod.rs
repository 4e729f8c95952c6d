//! The macOS source: libproc, `sysctl` and nothing else.
//!
//! [`SystemSource`] answers the same [`ProcessSource`](crate::ProcessSource)
//! questions as the Linux reader, from these calls:
//!
//! | what | call |
//! |---|---|
//! | pids | `proc_listallpids`, retried while the buffer comes back full; pid 0 (`kernel_task`) dropped |
//! | parent, name, state, start time, group, RSS, CPU, threads | `proc_pidinfo(PROC_PIDTASKALLINFO)` (libproc's `pidinfo::<TaskAllInfo>`) |
//! | the same, when that is refused | `sysctl(KERN_PROC_PID)`: another user's process, a zombie |
//! | session | `getsid` |
//! | command line | `sysctl(KERN_PROCARGS2)`, decoded by [`parse_procargs2`](crate::parse::parse_procargs2) |
//! | working directory | `proc_pidinfo(PROC_PIDVNODEPATHINFO)`, decoded by [`parse_vnode_path`](crate::parse::parse_vnode_path) |
//! | boot | `sysctl kern.bootsessionuuid` |
//!
//! The system calls that need `unsafe` live in `src/ffi.rs`; every decoding
//! step is a pure function in [`crate::parse`], tested on every platform.
//!
//! # What is weaker than on Linux
//!
//! - **No pin.** Linux reads every file of a process through one
//!   `/proc/<pid>` directory fd, which fails once that process is gone. macOS
//!   has no such handle: a full read takes the start time first and checks it
//!   again after the command line and working directory, and gives
//!   [`Error::NotFound`](crate::Error::NotFound) if the pid changed hands in
//!   between. The fields are one process's, but not one instant's.
//! - **No pidfd.** Signalling is `kill(2)` on a pid, so a small window
//!   remains between checking a process's identity and the signal arriving,
//!   in which the process could exit and its pid be reused.
//! - **Start time** is the kernel's `p_start`: wall-clock time, to the
//!   microsecond ([`StartTime`](crate::StartTime) is microseconds since the
//!   Unix epoch). It is the same on every read of a process, but a clock set
//!   backwards can make a child look older than its parent, and the process
//!   table then does not trust that parent edge.
//! - **Other users' processes** (unless running as root): `proc_pidinfo` and
//!   `KERN_PROCARGS2` refuse them. Their pid, parent, group, session, state,
//!   short name (16 bytes) and start time still come from
//!   `sysctl(KERN_PROC_PID)`; their command line is empty, their working
//!   directory [`Cwd::NotPermitted`](crate::Cwd::NotPermitted), and RSS, CPU
//!   times and thread count read 0. Their state is the BSD status alone, in
//!   which a sleeping process reads as running (the running-thread count that
//!   tells them apart is refused too).
//! - **No exec marker.** Nothing cheap changes when a process runs a new
//!   program, so [`Sample::exec_marker`](crate::Sample::exec_marker) is 0 and
//!   the table sees an `exec` by the process's name changing.
//! - **Zombies** are seen (state [`State::Zombie`](crate::State::Zombie)), with
//!   no RSS, CPU times or command line.
//! - An empty `argv[0]` cannot be told from the padding before it in
//!   `KERN_PROCARGS2` and is lost (as in `ps`).

mod reader;

pub use reader::SystemSource;
pub(crate) use reader::brief;

/// macOS has no pidfs: no inode to tell a process by.
#[cfg(feature = "registry")]
pub(crate) fn pidfs_inode(
    _source: &mut SystemSource,
    _identity: crate::ProcessIdentity,
) -> crate::Result<Option<u64>> {
    Ok(None)
}

/// The soft limit on open files (`u64::MAX`: unlimited or unknown).
#[cfg(feature = "http")]
pub(crate) fn open_file_limit() -> u64 {
    crate::ffi::nofile_limit().map_or(u64::MAX, |(soft, _)| soft)
}

/// Raises the soft limit on open files to the hard one (macOS caps it at
/// `OPEN_MAX` for `setrlimit`); returns the new soft limit.
#[cfg(feature = "http")]
pub(crate) fn raise_open_file_limit() -> std::io::Result<u64> {
    let (soft, hard) = crate::ffi::nofile_limit()?;
    // OPEN_MAX of <sys/syslimits.h>: setrlimit refuses a soft limit above it.
    const OPEN_MAX: u64 = 10_240;
    let want = hard.min(OPEN_MAX);
    if soft < want {
        crate::ffi::set_nofile_soft(want)?;
    }
    Ok(open_file_limit())
}
