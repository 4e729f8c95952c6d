//! The registry: a SQLite file of the processes we started, that outlives us.
//!
//! A supervisor that spawns dev servers, test runners or build steps keeps a
//! row per process in a [`Registry`]. When the supervisor crashes and starts
//! again, the rows tell what it had running; [`Registry::reconcile`] checks
//! each against the live system and [`Registry::stop`] kills what is left,
//! through the race-free tree kill of [`signal`](crate::signal).
//!
//! # Identity, not pids
//!
//! A row stores the process's full [identity](crate::ProcessIdentity): boot
//! id, pid and start time, plus its pidfs inode where the kernel has one
//! (Linux 6.9+, [`Entry::pidfs_inode`]). The registry never acts on a pid
//! alone: a row whose pid now belongs to another process is marked
//! [`EndReason::PidReused`], a row of an earlier boot is [`Status::Lost`],
//! and neither is ever signalled. Start times count clock ticks (10 ms), so
//! a pid reused within one tick would share the start time; the inode tells
//! those apart.
//!
//! # Rows
//!
//! Each row has an owner key the caller chooses (an execution id, or the
//! supervisor itself via [`owner_key`]), a label, the command, cwd, process
//! group and session, timestamps, a [`Status`] (running, exited, killed,
//! lost) with an [`EndReason`], and the exit code when someone reported one.
//!
//! ```no_run
//! use proctrack::registry::{Metadata, StopScope, Registry};
//! use proctrack::signal::spawn_group;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Registry::open("/var/lib/myci/processes.db").await?;
//!
//! // Spawn, then register at once (the unreaped child keeps its pid).
//! let mut command = std::process::Command::new("npm");
//! command.args(["run", "dev"]);
//! let mut spawned = spawn_group(&mut command)?;
//! let id = registry
//!     .register(
//!         spawned.handle.identity(),
//!         &Metadata::new("build-42").label("dev server").command(["npm", "run", "dev"]),
//!     )
//!     .await?;
//!
//! // ... later, when it exits:
//! let status = spawned.child.wait()?;
//! registry.mark_exited(id, status.code()).await?;
//!
//! // After a crash of the supervisor, on the next start:
//! let report = registry.reconcile().await?;
//! println!("{} still running, {} found gone", report.running.len(), report.ended().count());
//! let stopped = registry.stop(StopScope::Owner("build-42".into())).await?;
//! println!("{stopped}");
//! # Ok(())
//! # }
//! ```
//!
//! # The file
//!
//! The schema lives in `migrations/` and is embedded at build time; opening a
//! file creates it or migrates it. Before anything is written, the file is
//! checked: not SQLite ([`RegistryError::NotADatabase`]),
//! another program's database ([`RegistryError::NotARegistry`]),
//! damaged ([`RegistryError::CorruptDatabase`]), written
//! by a newer proctrack ([`RegistryError::SchemaTooNew`]) or
//! not writable ([`RegistryError::ReadOnly`],
//! [`RegistryError::PermissionDenied`]): each error names
//! the path, and the file's bytes are left as they were.
//!
//! Several processes may use one file at once. The file is in WAL mode
//! (readers never wait for the writer), every statement waits up to 10 s for
//! another process's lock (the busy timeout), and every multi-statement
//! write takes the write lock up front (`BEGIN IMMEDIATE`), so a caller does
//! not see "database is locked" unless a lock is held for longer than that.
//!
//! # Crash safety
//!
//! Every write is a transaction; once a call returns, its rows are in the
//! WAL file, in the kernel's page cache. A writer killed at any point
//! (`SIGKILL` included) loses nothing that was committed and leaves no half
//! transaction: the next opener recovers from the WAL. The file is synced
//! with `synchronous = NORMAL`: the WAL is fsynced at checkpoints, not at
//! every commit. After a *power loss* the last commits before it may be
//! missing (the file is never corrupt either way). We accept that: a power
//! loss also ends every registered process, whose rows would only be
//! reconciled to [`Status::Lost`]; `FULL` would cost an fsync per
//! registration for no process that could still be stopped.

pub(crate) mod entry;
mod error;
mod journal;
mod observe;
mod open;
mod reconcile;
mod sql;
mod stop;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sqlx::sqlite::SqlitePool;

pub use entry::{EndReason, Entry, Metadata, RowId, Status, UnknownWord};
pub use error::RegistryError;
pub use journal::JobJournal;
pub use reconcile::ReconcileReport;
pub use stop::{StopOutcome, StopReport, StopScope, StoppedRow, owner_key, process_owner_alive};

use crate::CommandLine;
use crate::blocking::run_blocking;
use crate::signal::KillOptions;
use crate::source::ProcessSource;
use crate::{Pid, ProcessIdentity};
use entry::{to_millis, u64_to_sql};
use error::Result;
use observe::Observer;
use sql::{COLUMNS, database, decode, path_to_bytes};

/// A registry file, open. Cheap to clone: clones share the connection pool.
///
/// Every method is async and needs a tokio runtime (any flavour).
///
/// ```no_run
/// use proctrack::registry::{Metadata, Registry};
///
/// # async fn demo() -> Result<(), proctrack::registry::RegistryError> {
/// let registry = Registry::open("/tmp/procs.db").await?;
/// let me = proctrack::process(proctrack::Pid::current())?;
/// let id = registry
///     .register(me.identity(), &Metadata::from_process("demo", &me))
///     .await?;
/// assert_eq!(registry.get(id).await?.map(|e| e.pid()), Some(me.pid()));
/// registry.close().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Registry {
    pool: SqlitePool,
    path: PathBuf,
    kill_options: KillOptions,
}

impl Registry {
    /// Opens the registry at `path`, creating the file if it is missing and
    /// bringing its schema up to date.
    ///
    /// Fails, leaving the file as it was, when it is not a registry or cannot
    /// be written (see the [module docs](self#the-file)).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), proctrack::registry::RegistryError> {
    /// use proctrack::registry::Registry;
    /// match Registry::open("/tmp/procs.db").await {
    ///     Ok(registry) => println!("{} running", registry.running().await?.len()),
    ///     Err(proctrack::registry::RegistryError::SchemaTooNew { found, supported, .. }) => {
    ///         eprintln!("written by a newer proctrack (schema {found} > {supported})");
    ///     }
    ///     Err(other) => return Err(other),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open(path: impl AsRef<Path>) -> Result<Registry> {
        let path = path.as_ref().to_path_buf();
        let pool = open::open(&path).await?;
        Ok(Registry {
            pool,
            path,
            // A caller that registered its own child may still `wait` for it
            // through its `Child`: leave the root's exit status to them.
            kill_options: KillOptions::graceful(Duration::from_secs(5)).reap_root(false),
        })
    }

    /// The kill options [`stop`](Registry::stop) uses. The default is
    /// [`KillOptions::graceful`] with 5 s: `SIGTERM`, then `SIGKILL` for what
    /// is left, and the root's exit status is left for its parent to collect
    /// (`reap_root(false)`: the caller may hold its `Child`; see
    /// [`KillOptions::reap_root`]).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), proctrack::registry::RegistryError> {
    /// use proctrack::signal::KillOptions;
    /// let registry = proctrack::registry::Registry::open("/tmp/procs.db")
    ///     .await?
    ///     .with_kill_options(KillOptions::new()); // SIGKILL at once
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_kill_options(mut self, options: KillOptions) -> Registry {
        self.kill_options = options;
        self
    }

    /// The file this registry lives in.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), proctrack::registry::RegistryError> {
    /// let registry = proctrack::registry::Registry::open("/tmp/procs.db").await?;
    /// assert_eq!(registry.path(), std::path::Path::new("/tmp/procs.db"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Copies everything in the `-wal` companion into the main file (a
    /// checkpoint) and closes every connection. Unless another process is
    /// reading the file at that moment, the main file alone then holds every
    /// row (a backup may copy it). Dropping a registry without closing loses
    /// nothing either: the rows are in the `-wal` file, and the next opener
    /// sees them.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), proctrack::registry::RegistryError> {
    /// let registry = proctrack::registry::Registry::open("/tmp/procs.db").await?;
    /// registry.close().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn close(self) {
        // Best effort: a reader in another process may hold part of the WAL
        // back (the checkpoint then reports busy and the rest waits for a
        // later one); nothing is lost either way.
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await;
        self.pool.close().await;
    }

    /// Records a process. `identity` must be the process's own (take it from a
    /// pinned handle or a fresh read, right after spawning); `metadata` says
    /// whose it is. What `metadata` leaves unset, and the pidfs inode, is read
    /// from the process if it is still there with this identity.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use proctrack::registry::{Metadata, Registry};
    /// use proctrack::signal::ProcessHandle;
    ///
    /// let registry = Registry::open("/tmp/procs.db").await?;
    /// let child = std::process::Command::new("sleep").arg("60").spawn()?;
    /// let identity = ProcessHandle::from_child(&child)?.identity();
    /// let id = registry
    ///     .register(identity, &Metadata::new("job-7").command(["sleep", "60"]))
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn register(&self, identity: ProcessIdentity, metadata: &Metadata) -> Result<RowId> {
        let metadata = metadata.clone();
        let row = run_blocking(move || {
            Ok(Filled::new(
                identity,
                &metadata,
                Observer::open().ok().as_mut(),
            ))
        })
        .await?;
        let mut conn = self.pool.acquire().await.map_err(|e| self.db(e))?;
        row.insert(&mut conn).await.map_err(|e| self.db(e))
    }

    /// Records several processes in one transaction: all rows or none (a
    /// tree, say). Returns their ids in order.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), proctrack::registry::RegistryError> {
    /// use proctrack::registry::{Metadata, Registry};
    /// let registry = Registry::open("/tmp/procs.db").await?;
    /// let table = proctrack::table::ProcessTable::new()?;
    /// let tree: Vec<_> = table
    ///     .children(proctrack::Pid::current())
    ///     .into_iter()
    ///     .map(|p| (p.identity(), Metadata::from_process("job-7", p)))
    ///     .collect();
    /// let ids = registry.register_all(&tree).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn register_all(&self, rows: &[(ProcessIdentity, Metadata)]) -> Result<Vec<RowId>> {
        let rows = rows.to_vec();
        let filled: Vec<Filled> = run_blocking(move || {
            let mut observer = Observer::open().ok();
            Ok(rows
                .iter()
                .map(|(identity, metadata)| Filled::new(*identity, metadata, observer.as_mut()))
                .collect())
        })
        .await?;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.db(e))?;
        let mut ids = Vec::with_capacity(filled.len());
        for row in &filled {
            ids.push(row.insert(&mut tx).await.map_err(|e| self.db(e))?);
        }
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(ids)
    }

    /// Records that the process of row `id` exited, with its exit code when
    /// known (`None` for a death by signal, say). A running, exited or lost
    /// row becomes [`Status::Exited`] ([`EndReason::Reported`]); a killed row
    /// stays killed and only gains the code. Returns the updated row;
    /// [`RegistryError::UnknownRow`] if there is none.
    ///
    /// ```no_run
    /// # async fn demo(registry: proctrack::registry::Registry, id: proctrack::registry::RowId)
    /// # -> Result<(), proctrack::registry::RegistryError> {
    /// let entry = registry.mark_exited(id, Some(0)).await?;
    /// assert_eq!(entry.exit_code(), Some(0));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn mark_exited(&self, id: RowId, code: Option<i32>) -> Result<Entry> {
        let now = to_millis(SystemTime::now());
        let sql = format!(
            "UPDATE processes SET \
                 exit_code = COALESCE(?1, exit_code), \
                 end_reason = CASE status WHEN 'killed' THEN end_reason ELSE 'reported' END, \
                 status = CASE status WHEN 'killed' THEN 'killed' ELSE 'exited' END, \
                 ended_at = COALESCE(ended_at, ?2), \
                 updated_at = ?2 \
             WHERE id = ?3 RETURNING {COLUMNS}"
        );
        let query = sqlx::query(&sql).bind(code).bind(now).bind(id.as_raw());
        self.fetch_entry(query)
            .await?
            .ok_or_else(|| self.unknown(id))
    }

    /// Records that the process of row `id` was killed (by the caller, some
    /// other way than [`stop`](Registry::stop)). The row becomes
    /// [`Status::Killed`] ([`EndReason::Reported`]) unless it already was
    /// killed. Returns the updated row; [`RegistryError::UnknownRow`] if there is none.
    ///
    /// ```no_run
    /// # async fn demo(registry: proctrack::registry::Registry, id: proctrack::registry::RowId)
    /// # -> Result<(), proctrack::registry::RegistryError> {
    /// let entry = registry.mark_killed(id).await?;
    /// assert_eq!(entry.status(), proctrack::registry::Status::Killed);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn mark_killed(&self, id: RowId) -> Result<Entry> {
        let now = to_millis(SystemTime::now());
        let sql = format!(
            "UPDATE processes SET \
                 end_reason = CASE status WHEN 'killed' THEN end_reason ELSE 'reported' END, \
                 status = 'killed', \
                 ended_at = COALESCE(ended_at, ?1), \
                 updated_at = ?1 \
             WHERE id = ?2 RETURNING {COLUMNS}"
        );
        let query = sqlx::query(&sql).bind(now).bind(id.as_raw());
        self.fetch_entry(query)
            .await?
            .ok_or_else(|| self.unknown(id))
    }

    /// The row `id`, if there is one.
    ///
    /// ```no_run
    /// # async fn demo(registry: proctrack::registry::Registry) -> Result<(), proctrack::registry::RegistryError> {
    /// use proctrack::registry::RowId;
    /// if let Some(entry) = registry.get(RowId::from_raw(1)).await? {
    ///     println!("{} is {}", entry.identity(), entry.status());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get(&self, id: RowId) -> Result<Option<Entry>> {
        let sql = format!("SELECT {COLUMNS} FROM processes WHERE id = ?1");
        self.fetch_entry(sqlx::query(&sql).bind(id.as_raw())).await
    }

    /// Runs a query that yields at most one row, decoded as an entry.
    async fn fetch_entry<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> Result<Option<Entry>> {
        let row = query
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.db(e))?;
        row.map(|row| decode(&self.path, &row)).transpose()
    }

    /// Every row whose status is [`Status::Running`], oldest first. The
    /// registry's word, not the system's: [`reconcile`](Registry::reconcile)
    /// first to drop what ended unseen.
    ///
    /// ```no_run
    /// # async fn demo(registry: proctrack::registry::Registry) -> Result<(), proctrack::registry::RegistryError> {
    /// for entry in registry.running().await? {
    ///     println!("{} {}", entry.pid(), entry.command());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn running(&self) -> Result<Vec<Entry>> {
        // The literal `status = 'running'` lets SQLite use the partial index.
        self.select("WHERE status = 'running' ORDER BY id", None)
            .await
    }

    /// Every row of `owner`, in any status, oldest first.
    ///
    /// ```no_run
    /// # async fn demo(registry: proctrack::registry::Registry) -> Result<(), proctrack::registry::RegistryError> {
    /// let rows = registry.by_owner("build-42").await?;
    /// let live = rows.iter().filter(|e| e.is_running()).count();
    /// # Ok(())
    /// # }
    /// ```
    pub async fn by_owner(&self, owner: &str) -> Result<Vec<Entry>> {
        self.select("WHERE owner = ?1 ORDER BY id", Some(owner))
            .await
    }

    /// Runs SQLite's full `PRAGMA integrity_check` on the file;
    /// [`RegistryError::CorruptDatabase`] with its findings if it finds anything.
    ///
    /// ```no_run
    /// # async fn demo(registry: proctrack::registry::Registry) -> Result<(), proctrack::registry::RegistryError> {
    /// registry.check_integrity().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn check_integrity(&self) -> Result<()> {
        let findings: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.db(e))?;
        if findings.iter().map(String::as_str).eq(["ok"]) {
            Ok(())
        } else {
            Err(RegistryError::CorruptDatabase {
                path: self.path.clone(),
                detail: findings.join("; "),
            })
        }
    }

    async fn select(&self, clause: &str, owner: Option<&str>) -> Result<Vec<Entry>> {
        let sql = format!("SELECT {COLUMNS} FROM processes {clause}");
        let mut query = sqlx::query(&sql);
        if let Some(owner) = owner {
            query = query.bind(owner);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(|e| self.db(e))?;
        rows.iter().map(|row| decode(&self.path, row)).collect()
    }

    fn db(&self, error: sqlx::Error) -> RegistryError {
        database(&self.path, error)
    }

    fn unknown(&self, id: RowId) -> RegistryError {
        RegistryError::UnknownRow {
            path: self.path.clone(),
            id: id.as_raw(),
        }
    }
}

/// A row about to be inserted: the caller's metadata, completed from the
/// live process where the caller left gaps.
struct Filled {
    identity: ProcessIdentity,
    pidfs_inode: Option<u64>,
    owner: String,
    label: String,
    command: CommandLine,
    cwd: Option<PathBuf>,
    process_group: Option<Pid>,
    session: Option<Pid>,
}

impl Filled {
    /// `observer`: the live system to fill gaps from; `None` where it cannot
    /// be read (another platform), and then the gaps stay empty.
    fn new(
        identity: ProcessIdentity,
        metadata: &Metadata,
        observer: Option<&mut Observer>,
    ) -> Filled {
        let mut row = Filled {
            identity,
            pidfs_inode: None,
            owner: metadata.owner.clone(),
            label: metadata.label.clone(),
            command: metadata.command.clone().unwrap_or_default(),
            cwd: metadata.cwd.clone(),
            process_group: metadata.process_group,
            session: metadata.session,
        };
        // Best effort: a process that is gone, or a platform we cannot read,
        // leaves the gaps empty rather than failing the registration.
        if let Some(observer) = observer {
            row.pidfs_inode = observer.pidfs_inode(identity).ok().flatten();
            row.complete(observer.source(), metadata);
        }
        row
    }

    fn complete(&mut self, source: &mut impl ProcessSource, metadata: &Metadata) {
        let wants_read = metadata.command.is_none() || metadata.cwd.is_none();
        let wants_sample = metadata.process_group.is_none() || metadata.session.is_none();
        if !(wants_read || wants_sample) || source.boot_id() != self.identity.boot_id() {
            return;
        }
        if wants_read {
            if let Ok((info, _)) = source.read(self.identity.pid()) {
                if info.identity() == self.identity {
                    if metadata.command.is_none() {
                        self.command = info.cmdline().clone();
                    }
                    if metadata.cwd.is_none() {
                        self.cwd = info.cwd().path().map(Path::to_path_buf);
                    }
                    self.process_group = self.process_group.or(info.process_group());
                    self.session = self.session.or(info.session());
                }
            }
        } else if let Ok(sample) = source.sample(self.identity.pid()) {
            if sample.start_time == self.identity.start_time() {
                self.process_group = self.process_group.or(sample.process_group);
                self.session = self.session.or(sample.session);
            }
        }
    }

    async fn insert(
        &self,
        conn: &mut sqlx::SqliteConnection,
    ) -> std::result::Result<RowId, sqlx::Error> {
        let now = to_millis(SystemTime::now());
        let result = sqlx::query(
            "INSERT INTO processes (boot_id, pid, start_time, pidfs_inode, owner, label, \
                 command, cwd, pgid, sid, status, registered_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'running', ?11, ?11)",
        )
        .bind(self.identity.boot_id().to_string())
        .bind(self.identity.pid().as_raw())
        .bind(u64_to_sql(self.identity.start_time().as_raw()))
        .bind(self.pidfs_inode.map(u64_to_sql))
        .bind(&self.owner)
        .bind(&self.label)
        .bind(self.command.as_bytes())
        .bind(self.cwd.as_deref().map(path_to_bytes))
        .bind(self.process_group.map(Pid::as_raw))
        .bind(self.session.map(Pid::as_raw))
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(RowId::from_raw(result.last_insert_rowid()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BootId, StartTime};

    fn fake(pid: i32, start: u64) -> ProcessIdentity {
        ProcessIdentity::new(
            BootId::from_bytes([9; 16]),
            Pid::try_from(pid).unwrap(),
            StartTime::from_raw(start),
        )
    }

    #[tokio::test]
    async fn rows_round_trip_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let registry = Registry::open(&path).await.unwrap();
        let identity = fake(4242, u64::MAX - 1);
        let metadata = Metadata::new("exec-1")
            .label("web")
            .command(["srv", "--port", "8080"])
            .cwd("/srv/\u{e9}")
            .process_group(Pid::try_from(4242).unwrap())
            .session(Pid::try_from(4000).unwrap());
        let id = registry.register(identity, &metadata).await.unwrap();
        let ids = registry
            .register_all(&[
                (fake(5, 6), Metadata::new("exec-2")),
                (fake(7, 8), Metadata::new("exec-2")),
            ])
            .await
            .unwrap();
        assert_eq!(ids.len(), 2);
        assert!(ids[0] > id && ids[1] > ids[0]);
        registry.close().await;

        let registry = Registry::open(&path).await.unwrap();
        let entry = registry.get(id).await.unwrap().unwrap();
        assert_eq!(entry.identity(), identity);
        assert_eq!(entry.owner(), "exec-1");
        assert_eq!(entry.label(), "web");
        assert_eq!(entry.command().to_string(), "srv --port 8080");
        assert_eq!(entry.cwd(), Some(Path::new("/srv/\u{e9}")));
        assert_eq!(entry.process_group().map(Pid::as_raw), Some(4242));
        assert_eq!(entry.session().map(Pid::as_raw), Some(4000));
        assert_eq!(entry.status(), Status::Running);
        assert_eq!(entry.pidfs_inode(), None); // another boot: never read
        assert_eq!(registry.running().await.unwrap().len(), 3);
        assert_eq!(registry.by_owner("exec-2").await.unwrap().len(), 2);

        let exited = registry.mark_exited(id, Some(3)).await.unwrap();
        assert_eq!(
            (exited.status(), exited.end_reason(), exited.exit_code()),
            (Status::Exited, Some(EndReason::Reported), Some(3))
        );
        let killed = registry.mark_killed(ids[0]).await.unwrap();
        assert_eq!(killed.status(), Status::Killed);
        let still_killed = registry.mark_exited(ids[0], Some(137)).await.unwrap();
        assert_eq!(
            (still_killed.status(), still_killed.exit_code()),
            (Status::Killed, Some(137))
        );
        assert!(matches!(
            registry.mark_exited(RowId::from_raw(999), None).await,
            Err(RegistryError::UnknownRow { id: 999, .. })
        ));

        // The fake boot is not this one: the last running row is lost.
        let report = registry.reconcile().await.unwrap();
        assert_eq!(report.earlier_boot.len(), 1);
        assert_eq!(report.earlier_boot[0].status(), Status::Lost);
        assert!(registry.running().await.unwrap().is_empty());
        registry.check_integrity().await.unwrap();
        registry.close().await;
    }
}
