//! proctrack: know which processes you started, what those started, and stop
//! all of them safely.
//!
//! This first layer reads processes. A [`Pid`] can only hold a value that is
//! safe to signal; a [`ProcessIdentity`] (pid, start time, boot) names one
//! process for its whole life and never the next holder of its pid; a
//! [`ProcessInfo`] is what one read of a process tells.
//!
//! ```no_run
//! // Every process, once:
//! for process in proctrack::processes()? {
//!     println!("{:>7} {:?} {}", process.pid(), process.name(), process.cmdline());
//! }
//!
//! // One process, and whether a pid is still alive:
//! let me = proctrack::process(proctrack::Pid::current())?;
//! assert_eq!(proctrack::exists(me.pid())?, proctrack::Liveness::Alive);
//! # Ok::<(), proctrack::Error>(())
//! ```
//!
//! On Linux the data comes from `/proc` through [`ProcReader`], which keeps one
//! directory fd and a reused buffer; hold one when you read repeatedly. The
//! byte-level decoders live in [`parse`], apart from any I/O.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod blocking;
mod error;
mod identity;
pub mod inspect;
pub mod parse;
mod pid;
mod process;
#[cfg(feature = "registry")]
pub mod registry;
pub mod signal;
mod source;
mod system;
pub mod table;

#[cfg(target_os = "linux")]
mod linux;

pub use error::{Error, Result};
pub use identity::{BootId, ProcessIdentity, StartTime};
#[cfg(target_os = "linux")]
pub use linux::ProcReader;
pub use pid::Pid;
pub use process::{Cwd, Liveness, ProcessInfo, ProcessInfoBuilder, State};
pub use source::{MemorySource, ProcessSource, Sample};
pub use system::SystemSource;

/// Reads every process on the system. Processes that exit during the scan are
/// left out.
///
/// ```no_run
/// let count = proctrack::processes()?.len();
/// # Ok::<(), proctrack::Error>(())
/// ```
pub fn processes() -> Result<Vec<ProcessInfo>> {
    system::processes()
}

/// Reads one process. [`Error::NotFound`] when no process has this pid.
///
/// ```no_run
/// let init = proctrack::process(proctrack::Pid::try_from(1)?)?;
/// assert_eq!(init.parent(), None);
/// # Ok::<(), proctrack::Error>(())
/// ```
pub fn process(pid: Pid) -> Result<ProcessInfo> {
    system::process(pid)
}

/// Tells whether a process with this pid is alive, a zombie, or gone.
///
/// ```no_run
/// use proctrack::{Liveness, Pid};
/// assert_eq!(proctrack::exists(Pid::current())?, Liveness::Alive);
/// # Ok::<(), proctrack::Error>(())
/// ```
pub fn exists(pid: Pid) -> Result<Liveness> {
    system::exists(pid)
}
