use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{BoxFuture, ProcessInspector};
use crate::signal::{KillOptions, KillReport, Killed, Signal};
use crate::table::{ProcessTable, ProcessTree, TableOptions};
use crate::{BootId, Error, Liveness, MemorySource, Pid, ProcessIdentity, ProcessInfo, Result};

/// A [`ProcessInspector`] over processes a test describes, for testing code
/// that supervises processes without starting any.
///
/// Queries answer from a real [`ProcessTable`] over a [`MemorySource`], so
/// trees, cwd matching and reused-pid rules behave as on a live system.
/// `kill_tree` signals nothing: it records the call, removes the tree from the
/// mock, and reports its members as killed, or returns an error you scripted.
///
/// ```
/// use proctrack::inspect::{MockInspector, ProcessInspector};
/// use proctrack::signal::KillOptions;
/// use proctrack::{BootId, Cwd, Pid, ProcessIdentity, ProcessInfo, StartTime};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> proctrack::Result<()> {
/// let mock = MockInspector::new();
/// let id = |pid: i32, start: u64| -> proctrack::Result<ProcessIdentity> {
///     Ok(ProcessIdentity::new(BootId::default(), Pid::try_from(pid)?, StartTime::from_raw(start)))
/// };
/// mock.add(ProcessInfo::builder(id(100, 1)?).name("npm").cwd(Cwd::Path("/wt/a".into())).build());
/// mock.add(ProcessInfo::builder(id(101, 2)?).parent(Some(Pid::try_from(100)?)).name("node").build());
///
/// let found = mock.find_by_cwd_prefix("/wt".as_ref()).await?;
/// let report = mock.kill_tree(found[0].identity(), &KillOptions::new()).await?;
/// assert_eq!(report.killed.len(), 2);
/// assert_eq!(mock.kills(), vec![id(100, 1)?]);
/// assert!(mock.list().await?.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MockInspector {
    state: Mutex<MockState>,
}

#[derive(Debug, Default)]
struct MockState {
    source: MemorySource,
    kills: Vec<ProcessIdentity>,
    next_kill_error: Option<Error>,
}

impl MockInspector {
    /// An empty mock (boot id all zeros: build identities with
    /// `BootId::default()`).
    pub fn new() -> MockInspector {
        MockInspector::with_boot_id(BootId::default())
    }

    /// An empty mock whose processes belong to `boot_id`.
    pub fn with_boot_id(boot_id: BootId) -> MockInspector {
        MockInspector {
            state: Mutex::new(MockState {
                source: MemorySource::new(boot_id),
                ..MockState::default()
            }),
        }
    }

    /// Adds or replaces a process (by pid).
    pub fn add(&self, process: ProcessInfo) {
        self.lock().source.insert(process);
    }

    /// Removes the process with `pid`, as if it exited and was reaped.
    pub fn remove(&self, pid: Pid) -> Option<ProcessInfo> {
        self.lock().source.remove(pid)
    }

    /// The roots `kill_tree` was called with, in order.
    pub fn kills(&self) -> Vec<ProcessIdentity> {
        self.lock().kills.clone()
    }

    /// Makes the next `kill_tree` call fail with `error` (it is still recorded).
    pub fn fail_next_kill(&self, error: Error) {
        self.lock().next_kill_error = Some(error);
    }

    fn lock(&self) -> MutexGuard<'_, MockState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn table(&self) -> Result<ProcessTable<MemorySource>> {
        ProcessTable::with_source(self.lock().source.clone(), TableOptions::default())
    }

    fn answer<T: Send + 'static>(&self, answer: Result<T>) -> BoxFuture<'static, Result<T>> {
        Box::pin(std::future::ready(answer))
    }

    fn kill_now(&self, root: ProcessIdentity) -> Result<KillReport> {
        let table = self.table()?;
        let mut state = self.lock();
        state.kills.push(root);
        if let Some(error) = state.next_kill_error.take() {
            return Err(error);
        }
        let mut report = KillReport {
            settled: true,
            confirmed: true,
            ..KillReport::default()
        };
        if table.get_identity(root).is_none() {
            report.already_gone.push(root);
            return Ok(report);
        }
        let descendants: Vec<ProcessIdentity> = table
            .descendants(root.pid())
            .iter()
            .map(|p| p.identity())
            .collect();
        let members = std::iter::once(root).chain(descendants);
        for member in members {
            state.source.remove(member.pid());
            report.killed.push(Killed {
                identity: member,
                signal: Signal::Kill,
            });
        }
        Ok(report)
    }
}

impl ProcessInspector for MockInspector {
    fn list(&self) -> BoxFuture<'_, Result<Vec<ProcessInfo>>> {
        self.answer(Ok(self.lock().source.iter().cloned().collect()))
    }

    fn tree(&self, pid: Pid) -> BoxFuture<'_, Result<Option<ProcessTree>>> {
        self.answer(self.table().map(|table| table.tree(pid)))
    }

    fn find_by_cwd_prefix<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, Result<Vec<ProcessInfo>>> {
        let found = self
            .table()
            .map(|table| table.find_by_cwd_prefix(dir).into_iter().cloned().collect());
        self.answer(found)
    }

    fn kill_tree<'a>(
        &'a self,
        root: ProcessIdentity,
        _options: &'a KillOptions,
    ) -> BoxFuture<'a, Result<KillReport>> {
        self.answer(self.kill_now(root))
    }

    fn exists(&self, pid: Pid) -> BoxFuture<'_, Result<Liveness>> {
        let liveness = match self.lock().source.get(pid) {
            None => Liveness::Gone,
            Some(process) if process.state().has_exited() => Liveness::Zombie,
            Some(_) => Liveness::Alive,
        };
        self.answer(Ok(liveness))
    }
}
