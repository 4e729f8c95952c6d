//! [`ProcessInspector`]: what a supervisor asks about processes, as one async
//! trait, so code can be tested against a [`MockInspector`] and run against
//! the [`SystemInspector`].
//!
//! A supervisor (a dev-server runner, an agent harness, a test runner) mostly
//! asks five things: what runs, what runs under this process, what runs in
//! this directory, is this process still there, and kill this tree. The trait
//! asks exactly those, returns owned values, and is object safe, so it can sit
//! behind an `Arc<dyn ProcessInspector>`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use proctrack::inspect::{ProcessInspector, SystemInspector};
//! use proctrack::signal::KillOptions;
//!
//! # async fn demo() -> proctrack::Result<()> {
//! let inspector: Arc<dyn ProcessInspector> = Arc::new(SystemInspector::new()?);
//! for server in inspector.find_by_cwd_prefix("/srv/worktrees/feature-x".as_ref()).await? {
//!     let report = inspector.kill_tree(server.identity(), &KillOptions::new()).await?;
//!     println!("{}: {} killed", server.pid(), report.killed.len());
//! }
//! # Ok(())
//! # }
//! ```

mod mock;
mod system;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;

pub use mock::MockInspector;
pub use system::SystemInspector;

use crate::signal::{KillOptions, KillReport};
use crate::table::ProcessTree;
use crate::{Liveness, Pid, ProcessIdentity, ProcessInfo, Result};

/// A boxed, sendable future: what the trait's methods return, so that the
/// trait stays usable as `dyn ProcessInspector`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The questions a supervisor asks about processes.
///
/// Every method looks at the system as it is when called (implementations
/// refresh before answering).
pub trait ProcessInspector: Send + Sync {
    /// Every process, ascending pid.
    fn list(&self) -> BoxFuture<'_, Result<Vec<ProcessInfo>>>;

    /// `pid` and everything under it; `None` when no process has `pid`.
    fn tree(&self, pid: Pid) -> BoxFuture<'_, Result<Option<ProcessTree>>>;

    /// Processes whose working directory is `dir` or below it (by path
    /// components), ascending pid.
    fn find_by_cwd_prefix<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, Result<Vec<ProcessInfo>>>;

    /// Kills `root` and all its descendants (see [`crate::signal::kill_tree`]).
    fn kill_tree<'a>(
        &'a self,
        root: ProcessIdentity,
        options: &'a KillOptions,
    ) -> BoxFuture<'a, Result<KillReport>>;

    /// Whether `pid` is alive, a zombie, or gone.
    fn exists(&self, pid: Pid) -> BoxFuture<'_, Result<Liveness>>;
}
