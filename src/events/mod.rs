//! Process events: fork, exec and exit as they happen, and a table kept
//! current by them.
//!
//! On Linux the events come from the kernel's proc connector (a netlink
//! socket): every new process, every exec, every exit with its exit code or
//! signal, also for processes that are not our children. Where the kernel
//! does not let this process listen (it refuses the bind or the listen
//! request, or never answers it, as in a container) and on macOS, the same
//! events come from refreshing the table at an interval; [`probe`] asks the
//! kernel and says which source runs and what the kernel answered.
//!
//! A [`Tracker`] owns a [`ProcessTable`](crate::table::ProcessTable) and
//! keeps it current from the events: the cost is in proportion to what
//! changes, not to the number of processes. [`Tracker::track`] follows one
//! subtree and reads nothing outside it.
//!
//! ```no_run
//! use proctrack::events::{EventKind, Tracker};
//! use proctrack::Pid;
//!
//! let mut tracker = Tracker::track(Pid::current())?;
//! for event in &mut tracker {
//!     if let EventKind::Exited { pid, exit, .. } = event?.kind {
//!         println!("{pid}: {exit}");
//!     }
//! }
//! # Ok::<(), proctrack::Error>(())
//! ```

#[cfg_attr(target_os = "linux", path = "connector_linux.rs")]
#[cfg_attr(not(target_os = "linux"), path = "connector_none.rs")]
mod connector;
mod decode;
mod event;
mod probe;
mod tracker;

pub use decode::DecodeError;
pub use event::{Event, EventKind, Exit, Origin};
pub use probe::{DEFAULT_ACK_TIMEOUT, EventSource, Probe, ProbeReason, RefusedAt, probe};
pub use tracker::{Scope, Tracker, TrackerOptions};
