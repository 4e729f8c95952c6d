use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{BoxFuture, ProcessInspector};
use crate::blocking::run_blocking;
use crate::signal::{KillOptions, KillReport};
use crate::table::{ProcessTable, ProcessTree};
use crate::{Liveness, Pid, ProcessIdentity, ProcessInfo, Result};

/// The real [`ProcessInspector`]: one [`ProcessTable`] of this system,
/// refreshed before each question, and the race-free tree kill.
///
/// Scans and kills block, so they run on tokio's blocking pool; a tokio
/// runtime must be running when the methods are awaited.
///
/// ```no_run
/// use proctrack::inspect::{ProcessInspector, SystemInspector};
///
/// # async fn demo() -> proctrack::Result<()> {
/// let inspector = SystemInspector::new()?;
/// let me = proctrack::Pid::current();
/// let tree = inspector.tree(me).await?.expect("we exist");
/// println!("{} processes under us", tree.len() - 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SystemInspector {
    table: Arc<Mutex<ProcessTable>>,
}

impl SystemInspector {
    /// Reads the system once into a new table.
    pub fn new() -> Result<SystemInspector> {
        Ok(SystemInspector {
            table: Arc::new(Mutex::new(ProcessTable::new()?)),
        })
    }

    /// Refreshes the table, then answers `query` from it, off the async threads.
    fn query<T, F>(&self, query: F) -> BoxFuture<'static, Result<T>>
    where
        T: Send + 'static,
        F: FnOnce(&ProcessTable) -> T + Send + 'static,
    {
        let table = Arc::clone(&self.table);
        Box::pin(run_blocking(move || {
            let mut table = lock(&table);
            table.refresh()?;
            Ok(query(&table))
        }))
    }
}

/// A panic while the lock was held left the table as a refresh left it, which
/// the next refresh brings up to date: poisoning is not a reason to fail.
fn lock(table: &Mutex<ProcessTable>) -> MutexGuard<'_, ProcessTable> {
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ProcessInspector for SystemInspector {
    fn list(&self) -> BoxFuture<'_, Result<Vec<ProcessInfo>>> {
        self.query(|table| table.find(|_| true).into_iter().cloned().collect())
    }

    fn tree(&self, pid: Pid) -> BoxFuture<'_, Result<Option<ProcessTree>>> {
        self.query(move |table| table.tree(pid))
    }

    fn find_by_cwd_prefix<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, Result<Vec<ProcessInfo>>> {
        let dir = dir.to_path_buf();
        self.query(move |table| {
            table
                .find_by_cwd_prefix(&dir)
                .into_iter()
                .cloned()
                .collect()
        })
    }

    fn kill_tree<'a>(
        &'a self,
        root: ProcessIdentity,
        options: &'a KillOptions,
    ) -> BoxFuture<'a, Result<KillReport>> {
        let table = Arc::clone(&self.table);
        let options = options.clone();
        Box::pin(run_blocking(move || {
            crate::signal::kill_tree(&mut lock(&table), root, &options)
        }))
    }

    fn exists(&self, pid: Pid) -> BoxFuture<'_, Result<Liveness>> {
        Box::pin(run_blocking(move || crate::exists(pid)))
    }
}
