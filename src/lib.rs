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
//! The platform's reader is [`SystemSource`]: on Linux it reads `/proc`
//! through one directory fd and a reused buffer; on macOS it asks libproc
//! and `sysctl`. Hold one when you read
//! repeatedly. The byte-level decoders of both live in [`parse`], apart from
//! any I/O, and are tested on every platform.
//!
//! # macOS
//!
//! The same types and calls work on macOS, with weaker guarantees:
//!
//! - There is no pidfd and no `/proc/<pid>` pin. A full read of a process
//!   checks its start time before and after, so its fields are one process's;
//!   but signalling goes by pid, so a small window remains between checking a
//!   process's identity and `kill(2)` in which its pid could be reused.
//! - [`StartTime`] is the kernel's wall-clock start time in microseconds since
//!   the Unix epoch, not clock ticks since boot.
//! - Without root, other users' processes show their pid, parent, group,
//!   session, state, name and start time, but an empty command line, a
//!   [`Cwd::NotPermitted`] working directory, and 0 for memory, CPU times and
//!   threads.
//! - A process's name is up to 32 bytes (`p_name`) rather than 15.
//!
//! # Features
//!
//! None is on by default: reading the table or killing a tree compiles no
//! async runtime.
//!
//! | Feature    | Adds |
//! |------------|------|
//! | `serde`    | `Serialize`/`Deserialize` on the public data types |
//! | `tokio`    | [`ProcessHandle::wait_async`](signal::ProcessHandle::wait_async) (async wait) and the async [`inspect`] module |
//! | `registry` | [`registry`]: the SQLite file of spawned processes (async; turns on `tokio`) |
#![cfg_attr(not(target_os = "macos"), forbid(unsafe_code))]
// On macOS, `ffi` (and only it) needs `unsafe` for system calls libproc does
// not wrap; everything else stays free of it.
#![cfg_attr(target_os = "macos", deny(unsafe_code))]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "tokio")]
mod blocking;
mod error;
pub mod events;
mod identity;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod inspect;
pub mod parse;
mod pid;
mod process;
#[cfg(feature = "registry")]
#[cfg_attr(docsrs, doc(cfg(feature = "registry")))]
pub mod registry;
pub mod signal;
mod source;
pub mod table;

#[cfg(target_os = "macos")]
#[allow(unsafe_code)]
mod ffi;
/// The platform's process source, chosen once for the crate.
#[cfg_attr(target_os = "linux", path = "linux/mod.rs")]
#[cfg_attr(target_os = "macos", path = "macos/mod.rs")]
#[cfg_attr(
    not(any(target_os = "linux", target_os = "macos")),
    path = "unsupported.rs"
)]
mod platform;

pub use error::{Error, ParseError, Result};
pub use identity::{BootId, ProcessIdentity, StartTime};
pub use parse::cmdline::CommandLine;
pub use pid::Pid;
pub use platform::SystemSource;
pub use process::{Cwd, Liveness, ProcessInfo, ProcessInfoBuilder, State};
pub use source::{MemorySource, ProcessSource, Sample};

/// Reads every process on the system. Processes that exit during the scan are
/// left out.
///
/// ```no_run
/// let count = proctrack::processes()?.len();
/// # Ok::<(), proctrack::Error>(())
/// ```
pub fn processes() -> Result<Vec<ProcessInfo>> {
    SystemSource::open()?.processes()
}

/// Reads one process. [`Error::NotFound`] when no process has this pid.
///
/// ```no_run
/// let init = proctrack::process(proctrack::Pid::try_from(1)?)?;
/// assert_eq!(init.parent(), None);
/// # Ok::<(), proctrack::Error>(())
/// ```
pub fn process(pid: Pid) -> Result<ProcessInfo> {
    SystemSource::open()?.process(pid)
}

/// Tells whether a process with this pid is alive, a zombie, or gone.
///
/// ```no_run
/// use proctrack::{Liveness, Pid};
/// assert_eq!(proctrack::exists(Pid::current())?, Liveness::Alive);
/// # Ok::<(), proctrack::Error>(())
/// ```
pub fn exists(pid: Pid) -> Result<Liveness> {
    SystemSource::open()?.exists(pid)
}

/// README's examples compile and run as doctests, so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
