//! The incremental process table: every process, its parent index, and what
//! changed since the last look.
//!
//! A [`ProcessTable`] is built once and then [refreshed](ProcessTable::refresh)
//! in place. A refresh lists the pids and takes one cheap [`Sample`] of each
//! known process (on Linux, one read of `/proc/<pid>/stat`); it reads the
//! command line and working directory only for processes it has not seen
//! before and for processes that ran a new program. What changed comes back as
//! a [`RefreshDiff`]: spawned, exited, exec'd and reparented processes.
//!
//! Rows are keyed by [`ProcessIdentity`](crate::ProcessIdentity), so a pid that
//! was reused between two refreshes is an exit plus a spawn, never an update.
//! The parent index trusts an edge only when the parent is not younger than the
//! child: a younger "parent" is a new process on a reused pid.
//!
//! Queries (children, descendants, ancestors, a nested [`ProcessTree`], cwd
//! prefix, name) cost in proportion to what they return, not to the number of
//! processes on the system, except the searches (`find*`), which look at every
//! row.
//!
//! ```no_run
//! use proctrack::{Pid, table::ProcessTable};
//!
//! let mut table = ProcessTable::new()?;
//! let me = Pid::current();
//! for descendant in table.descendants(me) {
//!     println!("{} {}", descendant.pid(), descendant.cmdline());
//! }
//! let diff = table.refresh()?;
//! for spawned in &diff.spawned {
//!     println!("new: {spawned}");
//! }
//! # Ok::<(), proctrack::Error>(())
//! ```
//!
//! [`Sample`]: crate::Sample

mod diff;
mod pid_hash;
mod query;
mod refresh;
mod rows;
mod tree;

pub use diff::{RefreshDiff, Reparented};
pub use refresh::{CwdRefresh, ProcessTable, TableOptions};
pub use tree::ProcessTree;
