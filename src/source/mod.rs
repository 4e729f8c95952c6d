//! [`ProcessSource`]: where process data comes from, one platform each.
//!
//! The process table asks a source for two things: a cheap [`Sample`] of a
//! process it already knows (the fields that change while a process runs), and a
//! full, consistent [`ProcessInfo`] of a process it has not seen or that has
//! `exec`ed. The platform's source is [`SystemSource`](crate::SystemSource):
//! `/proc` on Linux, libproc and `sysctl` on macOS; platform differences stop
//! there.

use std::time::Duration;

mod memory;

pub use memory::MemorySource;

use crate::{BootId, Cwd, Pid, ProcessIdentity, ProcessInfo, Result, StartTime, State};

/// What looking at one process's open files gave (the ports layer asks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
pub(crate) enum FdAccess {
    /// The fds were read.
    Read,
    /// Another user's process: its fds cannot be read without privilege.
    NotPermitted,
    /// Not read: the process belongs to a user the caller did not ask for.
    OtherOwner,
    /// The process is gone.
    Gone,
}

/// The fields of a process that a refresh re-reads, borrowed from the source's
/// buffer. On Linux this is one read of `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample<'a> {
    /// The pid the sample was taken of.
    pub pid: Pid,
    /// Start time: with `pid`, the process's identity.
    pub start_time: StartTime,
    /// The parent's pid, if any.
    pub parent: Option<Pid>,
    /// The kernel's name for the process (may change on `exec` or `PR_SET_NAME`).
    pub name: &'a [u8],
    /// Scheduler state.
    pub state: State,
    /// Resident memory, bytes.
    pub rss_bytes: u64,
    /// User-mode CPU time.
    pub user_time: Duration,
    /// Kernel-mode CPU time.
    pub system_time: Duration,
    /// Process group, if any.
    pub process_group: Option<Pid>,
    /// Session, if any.
    pub session: Option<Pid>,
    /// Number of threads.
    pub threads: u32,
    /// Kernel thread flag.
    pub kernel_thread: bool,
    /// A value that changes when the process runs a new program, so `exec` is
    /// seen without re-reading the command line (on Linux: from the text
    /// segment's addresses). 0 when unknown; then only a new name tells.
    pub exec_marker: u64,
}

/// A source of process data: the platform layer under the process table.
///
/// Implemented by [`SystemSource`](crate::SystemSource) on each platform and
/// by [`MemorySource`] for tests. Every method that
/// names a pid returns [`Error::NotFound`](crate::Error::NotFound) when no
/// process has it (any more).
pub trait ProcessSource {
    /// The boot every identity from this source belongs to.
    fn boot_id(&self) -> BootId;

    /// Clears `pids` and fills it with every process's pid, ascending.
    fn list_pids(&mut self, pids: &mut Vec<Pid>) -> Result<()>;

    /// The cheap per-refresh read of one process.
    fn sample(&mut self, pid: Pid) -> Result<Sample<'_>>;

    /// A full read of one process, all fields from the same process, with the
    /// exec marker that goes with it.
    fn read(&mut self, pid: Pid) -> Result<(ProcessInfo, u64)>;

    /// The current working directory of `identity`; [`Error::NotFound`](crate::Error::NotFound)
    /// when that process is gone, even if its pid was reused.
    fn read_cwd(&mut self, identity: ProcessIdentity) -> Result<Cwd>;

    /// Tells the source that `identity` left the table, so it can release
    /// what it holds for that process (kept-open files). The default holds
    /// nothing.
    fn forget(&mut self, identity: ProcessIdentity) {
        let _ = identity;
    }

    /// Fills `children` with the pids of `pid`'s children as the kernel links
    /// them now, and returns true; returns false (leaving `children` empty)
    /// where the platform cannot list one process's children without a scan
    /// of every process. On Linux this reads `/proc/<pid>/task/*/children`,
    /// which is exact while `pid` is stopped: a tree kill finds the members
    /// of a stopped tree in time proportional to the tree.
    fn children(&mut self, pid: Pid, children: &mut Vec<Pid>) -> Result<bool> {
        let _ = pid;
        children.clear();
        Ok(false)
    }

    /// The environment `identity` was started with (what `exec` got):
    /// `NAME=value` entries, each ended by NUL; find a variable in it with
    /// [`supervisor::tag::find`](crate::supervisor::tag::find). `Ok(None)`
    /// when we may not read it (another user's process), which is not an
    /// error; [`Error::NotFound`](crate::Error::NotFound) when that process
    /// is gone, even if its pid was reused; a zombie's reads empty. The
    /// default is [`Error::Unsupported`](crate::Error::Unsupported).
    fn environ(&mut self, identity: ProcessIdentity) -> Result<Option<Vec<u8>>> {
        let _ = identity;
        Err(crate::Error::Unsupported {
            what: "reading another process's environment on this platform",
        })
    }

    /// Whether `identity` is alive now: its pid is held by that same process
    /// (same boot, same start time) and it has not exited (a zombie has).
    /// A vanished or reused pid is `Ok(false)`, not an error. The one
    /// "is it still there" of every layer above.
    fn is_alive(&mut self, identity: ProcessIdentity) -> Result<bool> {
        if identity.boot_id() != self.boot_id() {
            return Ok(false);
        }
        match self.sample(identity.pid()) {
            Ok(sample) => {
                Ok(sample.start_time == identity.start_time() && !sample.state.has_exited())
            }
            Err(crate::Error::NotFound { .. }) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// The effective uid `identity` runs as (the owner of its `/proc`
    /// directory on Linux); `Ok(None)` where the platform cannot tell, the
    /// default. [`Error::NotFound`](crate::Error::NotFound) when that
    /// process is gone, even if its pid was reused.
    fn uid(&mut self, identity: ProcessIdentity) -> Result<Option<u32>> {
        let _ = identity;
        Ok(None)
    }

    /// Fills `states` with the scheduler state of every thread of `pid`.
    /// A group stop reaches threads one by one, and a thread still running
    /// could fork. The default gives the sample's state, right for platforms
    /// that stop a process as a whole.
    fn thread_states(&mut self, pid: Pid, states: &mut Vec<State>) -> Result<()> {
        states.clear();
        let state = self.sample(pid)?.state;
        states.push(state);
        Ok(())
    }
}

impl<'a> Sample<'a> {
    /// What sampling `info` reads, for sources that hold whole processes
    /// ([`MemorySource`], test fakes). The exec marker is 0 (unknown): a
    /// changed name or command line tells an exec.
    pub(crate) fn of(info: &'a ProcessInfo) -> Sample<'a> {
        Sample {
            pid: info.pid(),
            start_time: info.start_time(),
            parent: info.parent(),
            name: info.name().as_encoded_bytes(),
            state: info.state(),
            rss_bytes: info.rss_bytes(),
            user_time: info.user_time(),
            system_time: info.system_time(),
            process_group: info.process_group(),
            session: info.session(),
            threads: info.threads(),
            kernel_thread: info.is_kernel_thread(),
            exec_marker: 0,
        }
    }

    /// The identity this sample belongs to.
    pub fn identity(&self, boot_id: BootId) -> ProcessIdentity {
        ProcessIdentity::new(boot_id, self.pid, self.start_time)
    }
}
