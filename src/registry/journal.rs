//! The registry as a supervisor's [`Journal`]: each job is its root's row in
//! `processes` plus a row in `jobs` (migration 2), written in one
//! transaction.

use std::future::Future;
use std::time::SystemTime;

use sqlx::Row;

use super::entry::{to_millis, u64_to_sql};
use super::sql::{COLUMNS, decode, path_from_bytes, path_to_bytes};
use super::stop::parse_owner_key;
use super::{Filled, Metadata, Registry, RegistryError, Result, owner_key};
use crate::ProcessIdentity;
use crate::supervisor::{JobEnd, JobId, JobRecord, Journal, JournalError};

/// A [`Registry`] that a [`Supervisor`](crate::supervisor::Supervisor)
/// writes its jobs to: pass it to
/// [`SupervisorOptions::journal`](crate::supervisor::SupervisorOptions::journal).
///
/// The supervisor's calls block; each runs the registry's async call to
/// completion on a thread of its own (with a small runtime of its own), so a
/// supervisor works the same inside a tokio runtime and outside any.
///
/// The root's row has the supervisor's [`owner_key`] as its owner and the
/// job id as its label, so the registry's own tools
/// ([`stop_stale`](Registry::stop_stale), [`reconcile`](Registry::reconcile))
/// see it too.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use proctrack::registry::{JobJournal, Registry};
/// use proctrack::supervisor::{Supervisor, SupervisorOptions};
///
/// let registry = Registry::open("/tmp/devtool.db").await?;
/// let journal = JobJournal::new(registry, proctrack::process(proctrack::Pid::current())?.identity());
/// let mut supervisor = Supervisor::new(SupervisorOptions::new("devtool").journal(journal))?;
/// let report = supervisor.recover()?; // the jobs of a crashed instance
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct JobJournal {
    registry: Registry,
    owner: String,
}

impl JobJournal {
    /// A journal in `registry` for the supervisor running as `supervisor`
    /// (this process's identity).
    pub fn new(registry: Registry, supervisor: ProcessIdentity) -> JobJournal {
        JobJournal {
            registry,
            owner: owner_key(supervisor),
        }
    }

    /// The registry written to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// Runs `work` to completion on a thread of its own with a runtime of its
/// own: callable from any thread, inside a runtime or not.
fn block_on<T: Send>(work: impl Future<Output = Result<T>> + Send) -> Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|source| {
                        RegistryError::Process(crate::Error::Io { path: None, source })
                    })?;
                runtime.block_on(work)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn journal_error(error: RegistryError) -> JournalError {
    JournalError(Box::new(error))
}

impl Registry {
    async fn record_job(&self, record: &JobRecord, owner: &str) -> Result<()> {
        let metadata = Metadata::new(owner)
            .label(record.id.as_str())
            .command(&record.command)
            .process_group(record.process_group);
        let row = Filled::new(record.root, &metadata, None);
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.db(e))?;
        let process = row.insert(&mut tx).await.map_err(|e| self.db(e))?;
        sqlx::query(
            "INSERT INTO jobs (id, supervisor, process, cgroup, kept) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(record.id.as_str())
        .bind(record.id.supervisor())
        .bind(process.as_raw())
        .bind(record.cgroup.as_deref().map(path_to_bytes))
        .bind(record.kept)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.db(e))?;
        tx.commit().await.map_err(|e| self.db(e))
    }

    async fn end_job(&self, id: &JobId, end: JobEnd) -> Result<()> {
        let now = to_millis(SystemTime::now());
        let query = match end {
            JobEnd::Kept => sqlx::query("UPDATE jobs SET kept = 1 WHERE id = ?1").bind(id.as_str()),
            JobEnd::Exited(code) => sqlx::query(
                "UPDATE processes SET status = 'exited', end_reason = 'reported', \
                     exit_code = ?2, ended_at = ?3, updated_at = ?3 \
                 WHERE status = 'running' AND id = (SELECT process FROM jobs WHERE id = ?1)",
            )
            .bind(id.as_str())
            .bind(code)
            .bind(now),
            JobEnd::Stopped | JobEnd::Recovered => sqlx::query(
                "UPDATE processes SET status = 'killed', end_reason = 'reaped', \
                     kill_report = ?2, ended_at = ?3, updated_at = ?3 \
                 WHERE status = 'running' AND id = (SELECT process FROM jobs WHERE id = ?1)",
            )
            .bind(id.as_str())
            .bind(if end == JobEnd::Stopped {
                "job stopped by its supervisor"
            } else {
                "job recovered: stopped after its supervisor died"
            })
            .bind(now),
        };
        query.execute(&self.pool).await.map_err(|e| self.db(e))?;
        Ok(())
    }

    /// Hands job `record.id`'s root row over to `record.owner` (its owner
    /// key) and `record.root`, if `from` owns it and it runs; in one
    /// transaction, so one of two adopters wins.
    async fn adopt_job(&self, record: &JobRecord, from: ProcessIdentity) -> Result<bool> {
        let Some(owner) = record.owner else {
            return Ok(false);
        };
        let now = to_millis(SystemTime::now());
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.db(e))?;
        let changed = sqlx::query(
            "UPDATE processes SET owner = ?1, boot_id = ?2, pid = ?3, start_time = ?4, \
                 pidfs_inode = NULL, updated_at = ?5 \
             WHERE status = 'running' AND owner = ?6 \
               AND id = (SELECT process FROM jobs WHERE id = ?7)",
        )
        .bind(owner_key(owner))
        .bind(record.root.boot_id().to_string())
        .bind(record.root.pid().as_raw())
        .bind(u64_to_sql(record.root.start_time().as_raw()))
        .bind(now)
        .bind(owner_key(from))
        .bind(record.id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| self.db(e))?
        .rows_affected();
        if changed != 1 {
            return Ok(false);
        }
        sqlx::query("UPDATE jobs SET kept = 0 WHERE id = ?1")
            .bind(record.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db(e))?;
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(true)
    }

    async fn unfinished_jobs(&self, name: &str) -> Result<Vec<JobRecord>> {
        let sql = format!(
            "SELECT jobs.id AS job_id, jobs.cgroup AS job_cgroup, jobs.kept AS job_kept, {} \
             FROM jobs JOIN processes ON processes.id = jobs.process \
             WHERE jobs.supervisor = ?1 AND processes.status = 'running' ORDER BY jobs.id",
            COLUMNS
                .split(", ")
                .map(|c| format!("processes.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rows = sqlx::query(&sql)
            .bind(name)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.db(e))?;
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            let corrupt = |detail: String| RegistryError::CorruptDatabase {
                path: self.path.clone(),
                detail,
            };
            let entry = decode(&self.path, &row)?;
            let text: String = row.try_get("job_id").map_err(|e| self.db(e))?;
            let id: JobId = text
                .parse()
                .map_err(|error| corrupt(format!("jobs.id: {error}")))?;
            let cgroup: Option<Vec<u8>> = row.try_get("job_cgroup").map_err(|e| self.db(e))?;
            let kept: bool = row.try_get("job_kept").map_err(|e| self.db(e))?;
            let mut record = JobRecord::new(
                id,
                entry.identity(),
                entry.process_group().unwrap_or(entry.pid()),
                cgroup.map(path_from_bytes),
                entry.command().args().map(ToOwned::to_owned).collect(),
            );
            record.kept = kept;
            // Adopted: the row's owner is the adopting instance.
            record.owner =
                parse_owner_key(entry.owner()).filter(|owner| *owner != record.owner_instance());
            records.push(record);
        }
        Ok(records)
    }
}

impl Journal for JobJournal {
    fn started(&mut self, record: &JobRecord) -> std::result::Result<(), JournalError> {
        block_on(self.registry.record_job(record, &self.owner)).map_err(journal_error)
    }

    fn ended(&mut self, id: &JobId, end: JobEnd) -> std::result::Result<(), JournalError> {
        block_on(self.registry.end_job(id, end)).map_err(journal_error)
    }

    fn unfinished(&mut self, name: &str) -> std::result::Result<Vec<JobRecord>, JournalError> {
        block_on(self.registry.unfinished_jobs(name)).map_err(journal_error)
    }

    /// The root's row gets this journal's owner key and the new root's
    /// identity, in one transaction that only changes a running row still
    /// owned by `from`.
    fn adopted(
        &mut self,
        record: &JobRecord,
        from: ProcessIdentity,
    ) -> std::result::Result<bool, JournalError> {
        let mut record = record.clone();
        // The owner key this journal writes under.
        record.owner = parse_owner_key(&self.owner).or(record.owner);
        block_on(self.registry.adopt_job(&record, from)).map_err(journal_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::JobId;
    use crate::{BootId, Pid, StartTime};

    fn identity(pid: i32, start: u64) -> ProcessIdentity {
        ProcessIdentity::new(
            BootId::from_bytes([4; 16]),
            Pid::try_from(pid).expect("pid"),
            StartTime::from_raw(start),
        )
    }

    /// A dead instance's job, adopted by two live instances at once: one
    /// gets it, with its new root; the other is refused; `unfinished`
    /// names the owner, and only the owner can hand it on again.
    #[tokio::test]
    async fn one_of_two_adopters_gets_the_job() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::open(dir.path().join("jobs.db"))
            .await
            .expect("open");
        let (dead, first, second) = (identity(100, 1), identity(200, 2), identity(300, 3));
        let id = JobId::new("devtool", dead, 1);
        let root = identity(101, 5);
        let record = JobRecord::new(id.clone(), root, root.pid(), None, vec!["sleep".into()]);
        let mut original = JobJournal::new(registry.clone(), dead);
        original.started(&record).expect("started");

        let mut claim = record.clone();
        claim.root = identity(102, 6);
        claim.owner = Some(first);
        let mut a = JobJournal::new(registry.clone(), first);
        let mut b = JobJournal::new(registry.clone(), second);
        assert!(a.adopted(&claim, dead).expect("adopt"));
        claim.owner = Some(second);
        assert!(!b.adopted(&claim, dead).expect("adopt"), "the job is taken");

        let rows = b.unfinished("devtool").expect("unfinished");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].owner, Some(first));
        assert_eq!(rows[0].root, identity(102, 6));
        assert_eq!(rows[0].owner_instance(), first);
        // Once the first adopter is dead, the second may take it from it.
        assert!(b.adopted(&claim, first).expect("adopt"));
        let rows = a.unfinished("devtool").expect("unfinished");
        assert_eq!(rows[0].owner, Some(second));
        registry.close().await;
    }
}
