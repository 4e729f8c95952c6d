use std::collections::{BTreeMap, HashMap};

use crate::{BootId, Cwd, Error, Pid, ProcessIdentity, ProcessInfo, ProcessSource, Result, Sample};

/// A [`ProcessSource`] over processes you describe: for tests of code built
/// on the process table, with the table's real query semantics.
///
/// ```
/// use proctrack::table::{ProcessTable, TableOptions};
/// use proctrack::{BootId, MemorySource, Pid, ProcessIdentity, ProcessInfo, StartTime};
///
/// let boot = BootId::from_bytes([1; 16]);
/// let process = |pid: i32, parent: i32, start: u64| -> Result<ProcessInfo, proctrack::Error> {
///     let identity = ProcessIdentity::new(boot, Pid::try_from(pid)?, StartTime::from_raw(start));
///     Ok(ProcessInfo::builder(identity).parent(Pid::try_from(parent).ok()).name("worker").build())
/// };
/// let mut source = MemorySource::new(boot);
/// source.insert(process(1, 0, 1)?);
/// source.insert(process(10, 1, 5)?);
/// source.insert(process(11, 10, 6)?);
///
/// let table = ProcessTable::with_source(source, TableOptions::default())?;
/// assert_eq!(table.descendants(Pid::try_from(1)?).len(), 2);
/// # Ok::<(), proctrack::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    boot_id: BootId,
    processes: BTreeMap<Pid, ProcessInfo>,
    environs: HashMap<ProcessIdentity, Vec<u8>>,
    uids: HashMap<ProcessIdentity, u32>,
}

impl MemorySource {
    /// Sets the environment [`environ`](ProcessSource::environ) gives for
    /// `identity` (`NAME=value` entries, each ended by NUL).
    pub fn set_environ(&mut self, identity: ProcessIdentity, environ: impl Into<Vec<u8>>) {
        self.environs.insert(identity, environ.into());
    }

    /// Sets the uid [`uid`](ProcessSource::uid) gives for `identity`.
    pub fn set_uid(&mut self, identity: ProcessIdentity, uid: u32) {
        self.uids.insert(identity, uid);
    }

    /// An empty source whose processes belong to `boot_id`.
    pub fn new(boot_id: BootId) -> MemorySource {
        MemorySource {
            boot_id,
            processes: BTreeMap::new(),
            environs: HashMap::new(),
            uids: HashMap::new(),
        }
    }

    /// Adds a process, replacing any with the same pid (a reused pid, or the
    /// same process after a change).
    pub fn insert(&mut self, process: ProcessInfo) {
        self.processes.insert(process.pid(), process);
    }

    /// Removes the process with `pid`, as if it exited and was reaped.
    pub fn remove(&mut self, pid: Pid) -> Option<ProcessInfo> {
        self.processes.remove(&pid)
    }

    /// The process with `pid`, if any.
    pub fn get(&self, pid: Pid) -> Option<&ProcessInfo> {
        self.processes.get(&pid)
    }

    /// Every process, ascending pid.
    pub fn iter(&self) -> impl Iterator<Item = &ProcessInfo> + '_ {
        self.processes.values()
    }

    fn find(&self, pid: Pid) -> Result<&ProcessInfo> {
        self.processes.get(&pid).ok_or(Error::NotFound { pid })
    }
}

impl ProcessSource for MemorySource {
    fn boot_id(&self) -> BootId {
        self.boot_id
    }

    fn list_pids(&mut self, pids: &mut Vec<Pid>) -> Result<()> {
        pids.clear();
        pids.extend(self.processes.keys().copied());
        Ok(())
    }

    fn sample(&mut self, pid: Pid) -> Result<Sample<'_>> {
        self.find(pid).map(Sample::of)
    }

    fn read(&mut self, pid: Pid) -> Result<(ProcessInfo, u64)> {
        self.find(pid).map(|info| (info.clone(), 0))
    }

    fn read_cwd(&mut self, identity: ProcessIdentity) -> Result<Cwd> {
        let pid = identity.pid();
        match self.find(pid)? {
            info if info.identity() == identity => Ok(info.cwd().clone()),
            _ => Err(Error::NotFound { pid }),
        }
    }

    /// The bytes given to [`set_environ`](MemorySource::set_environ); an
    /// empty environment for a process given none.
    fn environ(&mut self, identity: ProcessIdentity) -> Result<Option<Vec<u8>>> {
        let pid = identity.pid();
        match self.find(pid)? {
            info if info.identity() == identity => Ok(Some(
                self.environs.get(&identity).cloned().unwrap_or_default(),
            )),
            _ => Err(Error::NotFound { pid }),
        }
    }

    /// The uid given to [`set_uid`](MemorySource::set_uid); `None` for a
    /// process given none.
    fn uid(&mut self, identity: ProcessIdentity) -> Result<Option<u32>> {
        let pid = identity.pid();
        match self.find(pid)? {
            info if info.identity() == identity => Ok(self.uids.get(&identity).copied()),
            _ => Err(Error::NotFound { pid }),
        }
    }

    /// Lists children by a look at every process: the semantics of the
    /// kernel's list, without its speed.
    fn children(&mut self, pid: Pid, children: &mut Vec<Pid>) -> Result<bool> {
        children.clear();
        self.find(pid)?;
        children.extend(
            self.processes
                .values()
                .filter(|info| info.parent() == Some(pid))
                .map(ProcessInfo::pid),
        );
        Ok(true)
    }
}
