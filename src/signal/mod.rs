//! Race-free signals: to one process, to a whole tree, to everything in a
//! directory.
//!
//! # Why a pid is not enough
//!
//! `kill(pid, SIGKILL)` signals whoever holds `pid` *when the call runs*. If
//! the process we meant exited and was reaped since we looked, and the pid was
//! handed to a new process (within seconds where `pid_max` is 32768), the
//! signal kills a stranger. Checking first and killing after does not help:
//! the pid can change hands between the check and the kill.
//!
//! Linux closes the gap with *pidfds* (5.3): a file descriptor that refers to
//! one process for as long as it is open, never to a later holder of the
//! pid. This module is built on them:
//!
//! - A [`ProcessHandle`] is made from a [`ProcessIdentity`](crate::ProcessIdentity)
//!   (pid, start time, boot): it opens a pidfd and only then checks that the
//!   process behind it has the identity's start time. If it does, the pidfd
//!   is on that process for good; if not, the identity is gone
//!   ([`Error::NotFound`](crate::Error::NotFound)). Signals go through the
//!   pidfd: a handle can never signal any process but its own.
//! - Exits are events: a pidfd turns readable when its process exits, whether
//!   or not it is our child. [`ProcessHandle::wait_timeout`] polls it,
//!   [`ProcessHandle::wait_async`] awaits it in tokio. Neither reaps; collecting
//!   the exit status of a child we own is a separate, explicit step
//!   ([`ProcessHandle::try_reap`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use proctrack::signal::{ProcessHandle, Signal};
//!
//! let identity = proctrack::process(proctrack::Pid::try_from(4242)?)?.identity();
//! let handle = ProcessHandle::open(identity)?;
//! handle.signal(Signal::Term)?;
//! if !handle.wait_timeout(Duration::from_secs(5))? {
//!     handle.signal(Signal::Kill)?;
//! }
//! # Ok::<(), proctrack::Error>(())
//! ```
//!
//! # Trees
//!
//! [`kill_tree`] kills a process and all its descendants, also while they
//! keep forking: it pins and stops every member, lists the children of the
//! stopped members until the set is complete, then signals; its docs tell the
//! steps. Both take the caller's [`ProcessTable`](crate::table::ProcessTable),
//! the one model of processes, and read the tree through its source.
//! [`kill_cwd`] does the same for every process standing in a directory. Both
//! return a [`KillReport`] that sorts every process into killed, already
//! gone, denied (another user's), survived, and refused.
//!
//! ```no_run
//! use std::time::Duration;
//! use proctrack::signal::{kill_tree, KillOptions};
//! use proctrack::table::ProcessTable;
//!
//! let mut table = ProcessTable::new()?;
//! let root = table.get(proctrack::Pid::try_from(4242)?).expect("running").identity();
//! let report = kill_tree(&mut table, root, &KillOptions::graceful(Duration::from_secs(3)))?;
//! println!("{report:#?}");
//! # Ok::<(), proctrack::Error>(())
//! ```
//!
//! A tree we spawn ourselves can be made easier to kill completely: see
//! [`spawn_group`] and [`Subreaper`], which catches double-forked daemons.
//!
//! # Guard rails
//!
//! Nothing here signals pid 1, the calling process, or one of its ancestors
//! unless a [`Guard`] allows it: one mistaken root would otherwise take down
//! the system or the caller. `EPERM` on one process is reported for that
//! process; it never aborts a tree kill.
//!
//! # Old kernels, macOS and other platforms
//!
//! Without pidfds (Linux before 5.3) handles fall back to `kill(2)` right
//! after an identity check in `/proc`, which narrows the race to microseconds
//! but cannot close it, and exits of processes other than our children cannot
//! be awaited. [`capabilities`] says which guarantees hold; [`Backend::CheckedPid`]
//! forces the fallback (tests use it).
//!
//! macOS has no pidfd, so every handle is that fallback: the start time
//! (microseconds since the epoch, from `sysctl(KERN_PROC_PID)`) is checked
//! right before `kill(2)`, and a small window remains in which the pid could
//! change hands ([`Capabilities::pidfd`] is false). A tree kill narrows it:
//! each member is stopped first and its start time checked again before the
//! real signal, and a stopped process cannot exit by itself. Exits, though,
//! are events for any process there: kqueue `EVFILT_PROC` / `NOTE_EXIT`
//! ([`Capabilities::exit_events`]), so waiting, [`ProcessHandle::wait_async`]
//! and a tree kill's exit check work as on Linux. Tree discovery is the same
//! code on both, through [`ProcessSource`](crate::ProcessSource). There is no
//! child subreaper on macOS: [`Subreaper::install`] returns
//! [`Error::Unsupported`](crate::Error::Unsupported).
//!
//! On other platforms every call returns
//! [`Error::Unsupported`](crate::Error::Unsupported) for now.

mod capability;
mod escape;
mod guard;
mod handle;
mod kill_tree;
mod options;
mod outcome;
mod plan;
mod report;
mod signaller;
mod signals;
mod spawn;
mod wait;

mod sys;

#[cfg(test)]
pub(crate) mod kill_tree_tests;

pub use capability::{Backend, Capabilities, capabilities};
pub use guard::{Guard, Refusal};
pub use handle::{Delivery, ProcessHandle};
pub(crate) use kill_tree::{Belonging, kill_belonging};
pub use kill_tree::{kill_cwd, kill_tree, kill_trees};
pub use options::KillOptions;
pub use outcome::{KillCounts, KillOutcome};
pub use plan::{KillPlan, plan_kill};
pub use report::{KillReport, Killed};
pub use signals::{ParseSignalError, Signal};
pub use spawn::{Spawned, Subreaper, spawn_group};
