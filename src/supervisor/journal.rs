//! Where a supervisor writes down its jobs, so that the next instance can
//! find them after a crash.
//!
//! The supervisor calls a [`Journal`] when a job starts and when it ends,
//! and asks it for the unfinished jobs in [`recover`](super::Supervisor::recover).
//! The SQLite [`Registry`](crate::registry::Registry) is one (feature
//! `registry`); a test can keep one in memory.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::SystemTime;

use super::JobId;
use crate::{Pid, ProcessIdentity};

/// What a journal holds about one job.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobRecord {
    /// The job.
    pub id: JobId,
    /// The process the job started as.
    pub root: ProcessIdentity,
    /// The job's process group.
    pub process_group: Pid,
    /// The job's cgroup directory, if it has one.
    pub cgroup: Option<PathBuf>,
    /// The command's arguments.
    pub command: Vec<OsString>,
    /// True when the job was left running on purpose when its supervisor
    /// shut down: [`recover`](super::Supervisor::recover) leaves it alone.
    pub kept: bool,
    /// When the job started, where the journal keeps it.
    pub started: Option<SystemTime>,
    /// Whether its supervisor was a child subreaper (`None`: not written
    /// down).
    pub subreaper: Option<bool>,
    /// Why a containment layer was missing ([`Containment::missing`](super::Containment::missing)).
    pub missing: Vec<String>,
    /// The supervisor instance that owns the job now, when one
    /// [adopted](super::Supervisor::adopt) it; `None`: the instance named
    /// in its id, which started it. [`recover`](super::Supervisor::recover)
    /// leaves a job alone while its owner runs.
    pub owner: Option<ProcessIdentity>,
}

impl JobRecord {
    /// A record of a job; `kept` false, no start time, subreaper and
    /// missing layers unknown, owned by the instance in its id.
    pub fn new(
        id: JobId,
        root: ProcessIdentity,
        process_group: Pid,
        cgroup: Option<PathBuf>,
        command: Vec<OsString>,
    ) -> JobRecord {
        JobRecord {
            id,
            root,
            process_group,
            cgroup,
            command,
            kept: false,
            started: None,
            subreaper: None,
            missing: Vec::new(),
            owner: None,
        }
    }

    /// The supervisor instance that owns the job: its
    /// [`owner`](JobRecord::owner), else the instance in its id (which ran
    /// in the boot of its root).
    pub fn owner_instance(&self) -> ProcessIdentity {
        self.owner.unwrap_or_else(|| {
            let (pid, start) = self.id.instance();
            ProcessIdentity::new(self.root.boot_id(), pid, start)
        })
    }
}

/// How a job ended, as written down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobEnd {
    /// Every member exited; the root with this code (`None`: by a signal).
    Exited(Option<i32>),
    /// Stopped by its supervisor.
    Stopped,
    /// Found after its supervisor died, and stopped by another.
    Recovered,
    /// Left running on purpose when its supervisor shut down.
    Kept,
}

/// Storage for a supervisor's jobs. Calls block; an implementation over an
/// async store (the registry) runs it to completion on a thread of its own.
pub trait Journal: Send {
    /// Writes down a job that just started.
    fn started(&mut self, record: &JobRecord) -> Result<(), JournalError>;

    /// Writes down how a job ended. [`JobEnd::Kept`] leaves the job
    /// unfinished, marked [`kept`](JobRecord::kept).
    fn ended(&mut self, id: &JobId, end: JobEnd) -> Result<(), JournalError>;

    /// The jobs of supervisors named `name` that have not ended, kept ones
    /// included, each with its [`owner`](JobRecord::owner) if it was
    /// adopted.
    fn unfinished(&mut self, name: &str) -> Result<Vec<JobRecord>, JournalError>;

    /// Hands the unfinished job `record.id` over to the instance
    /// `record.owner` (the [adopting](super::Supervisor::adopt) supervisor)
    /// with `record.root` as its root, and unmarks it kept, if `from` owns
    /// it now; returns whether it did. Must be atomic against other
    /// writers of the same journal: of two instances that both saw `from`
    /// dead and adopt the job at once, exactly one gets `true`.
    ///
    /// The default refuses: a journal that cannot hand a job over cannot
    /// be used to adopt (a later recover would stop the adopted job).
    fn adopted(&mut self, record: &JobRecord, from: ProcessIdentity) -> Result<bool, JournalError> {
        let _ = (record, from);
        Err(JournalError(
            "this journal cannot record an adoption (Journal::adopted is not implemented)".into(),
        ))
    }
}

/// A journal's failure, in its own words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JournalError(pub Box<dyn std::error::Error + Send + Sync>);

/// A journal in memory: for tests, and for a supervisor that only needs
/// [`recover`](super::Supervisor::recover) to see its own earlier jobs
/// within one process.
#[derive(Clone, Debug, Default)]
pub struct MemoryJournal {
    records: Vec<JobRecord>,
    ended: Vec<(JobId, JobEnd)>,
}

impl MemoryJournal {
    /// An empty journal.
    pub fn new() -> MemoryJournal {
        MemoryJournal::default()
    }

    /// Every job ever started, in order.
    pub fn records(&self) -> &[JobRecord] {
        &self.records
    }

    /// How `id` ended, if it did.
    pub fn end_of(&self, id: &JobId) -> Option<JobEnd> {
        self.ended
            .iter()
            .rev()
            .find(|(ended, _)| ended == id)
            .map(|(_, end)| *end)
    }
}

impl Journal for MemoryJournal {
    fn started(&mut self, record: &JobRecord) -> Result<(), JournalError> {
        self.records.push(record.clone());
        Ok(())
    }

    fn ended(&mut self, id: &JobId, end: JobEnd) -> Result<(), JournalError> {
        if end == JobEnd::Kept {
            for record in self.records.iter_mut().filter(|r| &r.id == id) {
                record.kept = true;
            }
        }
        self.ended.push((id.clone(), end));
        Ok(())
    }

    fn adopted(&mut self, record: &JobRecord, from: ProcessIdentity) -> Result<bool, JournalError> {
        let unfinished = matches!(self.end_of(&record.id), None | Some(JobEnd::Kept));
        let Some(row) = self
            .records
            .iter_mut()
            .rev()
            .find(|r| r.id == record.id && unfinished && r.owner_instance() == from)
        else {
            return Ok(false);
        };
        row.owner = record.owner;
        row.root = record.root;
        row.kept = false;
        // No longer kept: an `ended(.., Kept)` before does not count.
        if self.end_of(&record.id) == Some(JobEnd::Kept) {
            self.ended.retain(|(id, _)| id != &record.id);
        }
        Ok(true)
    }

    fn unfinished(&mut self, name: &str) -> Result<Vec<JobRecord>, JournalError> {
        Ok(self
            .records
            .iter()
            .filter(|r| r.id.supervisor() == name)
            .filter(|r| matches!(self.end_of(&r.id), None | Some(JobEnd::Kept)))
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BootId, StartTime};

    fn identity(pid: i32, start: u64) -> ProcessIdentity {
        ProcessIdentity::new(
            BootId::from_bytes([2; 16]),
            Pid::try_from(pid).expect("pid"),
            StartTime::from_raw(start),
        )
    }

    /// A kept job of a dead instance is handed over once, unkept; a
    /// second claim from the same dead owner is refused.
    #[test]
    fn a_memory_journal_hands_a_job_over_once() {
        let (dead, me) = (identity(10, 1), identity(20, 2));
        let id = JobId::new("dev", dead, 1);
        let root = identity(11, 3);
        let mut journal = MemoryJournal::new();
        journal
            .started(&JobRecord::new(
                id.clone(),
                root,
                root.pid(),
                None,
                Vec::new(),
            ))
            .expect("started");
        journal.ended(&id, JobEnd::Kept).expect("kept");
        let mut claim = JobRecord::new(id.clone(), root, root.pid(), None, Vec::new());
        claim.owner = Some(me);
        assert!(journal.adopted(&claim, dead).expect("adopt"));
        assert!(!journal.adopted(&claim, dead).expect("adopt"));
        let rows = journal.unfinished("dev").expect("unfinished");
        assert_eq!(rows.len(), 1);
        assert!(!rows[0].kept);
        assert_eq!(rows[0].owner_instance(), me);
    }
}
