//! The system calls under the signal layer, one file per platform, each
//! function speaking proctrack's types. Nothing above this module touches
//! rustix (Linux) or `crate::ffi` (macOS), and no other file of the signal
//! layer names a platform: this is where it is chosen, once.
//!
//! Both platforms offer the same functions:
//!
//! | function | Linux | macOS |
//! |---|---|---|
//! | `brief` | `/proc/<pid>/stat` | `sysctl(KERN_PROC_PID)` |
//! | `kill` | `kill(2)` | `kill(2)` |
//! | `wait_exits` | `poll(2)` on pidfds | kqueue `EVFILT_PROC` / `NOTE_EXIT` |
//! | `waitid_pid` | `waitid(P_PID)` | `waitpid` |
//! | `wait_exit_unreaped` | `waitid(WNOWAIT)` | kqueue `NOTE_EXIT` |
//! | `set_subreaper` | `PR_SET_CHILD_SUBREAPER` | unsupported |
//!
//! Linux also has the pidfd calls (`pidfd_open`, `pidfd_send`, ...), which
//! only its `Pin::Pidfd` handles use.

use std::sync::OnceLock;

use crate::{BootId, Pid, Result, StartTime, State};

#[cfg_attr(target_os = "linux", path = "linux.rs")]
#[cfg_attr(target_os = "macos", path = "macos.rs")]
#[cfg_attr(
    not(any(target_os = "linux", target_os = "macos")),
    path = "unsupported.rs"
)]
mod imp;
pub(crate) use imp::*;

/// What one cheap read of a process tells the signal layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Brief {
    pub(crate) start: StartTime,
    pub(crate) parent: Option<Pid>,
    pub(crate) state: State,
}

/// What became of one signal.
pub(crate) enum Sent {
    Delivered,
    Gone,
    Denied,
}

/// The id of this boot, read once, from the platform's
/// [`SystemSource`](crate::SystemSource).
pub(crate) fn boot_id() -> Result<BootId> {
    static BOOT: OnceLock<BootId> = OnceLock::new();
    if let Some(id) = BOOT.get() {
        return Ok(*id);
    }
    let id = crate::ProcessSource::boot_id(&crate::SystemSource::open()?);
    Ok(*BOOT.get_or_init(|| id))
}
