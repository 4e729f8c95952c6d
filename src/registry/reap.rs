//! [`Registry::reap`]: killing what the rows say is still running.

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::entry::{EndReason, Entry, Status};
use super::observe::{Ending, Observed, Observer};
use super::{Registry, RowId};
use crate::signal::{KillOptions, KillReport, Refusal, kill_tree};
use crate::source::ProcessSource;
use crate::{Error, Pid, ProcessIdentity, Result, StartTime};

/// Which rows a [`Registry::reap`] kills (of those still running).
///
/// ```
/// use proctrack::registry::{ReapScope, RowId};
/// let scopes = [
///     ReapScope::Owner("build-42".into()),
///     ReapScope::Row(RowId::from_raw(7)),
///     ReapScope::AllRunning,
/// ];
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReapScope {
    /// Every running row of this owner.
    Owner(String),
    /// One row.
    Row(RowId),
    /// Every running row in the file, whoever's.
    AllRunning,
}

/// What [`Registry::reap`] did to one row.
///
/// ```no_run
/// # async fn demo(registry: proctrack::registry::Registry) -> proctrack::Result<()> {
/// use proctrack::registry::{ReapOutcome, ReapScope};
/// for row in registry.reap(ReapScope::AllRunning).await?.rows {
///     match row.outcome {
///         ReapOutcome::Killed(kill) => println!("killed {} processes", kill.killed.len()),
///         ReapOutcome::KilledWithTree(by) => println!("died with the tree of #{by}"),
///         ReapOutcome::Ended => println!("had ended: {:?}", row.entry.end_reason()),
///         ReapOutcome::Survived(kill) => eprintln!("survivors: {:?}", kill.survived),
///         ReapOutcome::Refused(why) => eprintln!("not signalled: {why}"),
///         _ => {}
///     }
/// }
/// # Ok(())
/// # }
/// ```
///
/// In JSON (feature `serde`): `{"outcome": "killed", "detail": <KillReport>}`,
/// `{"outcome": "ended"}`, and so on.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "outcome", content = "detail", rename_all = "snake_case")
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub enum ReapOutcome {
    /// The row's process and its descendants were killed; the row is now
    /// [`Status::Killed`] ([`EndReason::Reaped`]). The report may still list
    /// descendants that survived or were denied.
    Killed(KillReport),
    /// The process died with the tree of another row of the same reap (a
    /// child registered beside its parent); the row is now killed too.
    KilledWithTree(RowId),
    /// The process had ended already (gone, pid reused, earlier boot):
    /// nothing was signalled and the row was marked as
    /// [`reconcile`](Registry::reconcile) would ([`Entry::end_reason`] says
    /// how).
    Ended,
    /// The process outlived the kill, or the kernel refused the signal
    /// (another user's process): the row stays running, with the kill
    /// report recorded on it.
    Survived(KillReport),
    /// A guard rail protects the process (pid 1, the caller itself, one of
    /// its ancestors): nothing was signalled; the row stays running. See
    /// [`KillOptions::guard`].
    Refused(Refusal),
}

/// One row of a [`ReapReport`].
///
/// ```no_run
/// # async fn demo(registry: proctrack::registry::Registry) -> proctrack::Result<()> {
/// use proctrack::registry::ReapScope;
/// let report = registry.reap(ReapScope::Owner("build-42".into())).await?;
/// for row in &report.rows {
///     println!("#{} is {} now", row.entry.id(), row.entry.status());
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct ReapedRow {
    /// The row as stored after the reap.
    pub entry: Entry,
    /// What the reap did.
    pub outcome: ReapOutcome,
}

/// What [`Registry::reap`] did, row by row (oldest first).
///
/// ```no_run
/// # async fn demo(registry: proctrack::registry::Registry) -> proctrack::Result<()> {
/// use proctrack::registry::ReapScope;
/// let report = registry.reap(ReapScope::AllRunning).await?;
/// print!("{report}");
/// assert!(report.is_complete());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct ReapReport {
    /// Every running row in scope, with what was done to it.
    pub rows: Vec<ReapedRow>,
}

impl ReapReport {
    /// The rows whose process this reap killed (alone or with another row's
    /// tree).
    ///
    /// ```no_run
    /// # async fn demo(registry: proctrack::registry::Registry) -> proctrack::Result<()> {
    /// let report = registry.reap(proctrack::registry::ReapScope::AllRunning).await?;
    /// let labels: Vec<&str> = report.killed().map(|e| e.label()).collect();
    /// # Ok(())
    /// # }
    /// ```
    pub fn killed(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.rows
            .iter()
            .filter(|row| {
                matches!(
                    row.outcome,
                    ReapOutcome::Killed(_) | ReapOutcome::KilledWithTree(_)
                )
            })
            .map(|row| &row.entry)
    }

    /// True when nothing in scope is left running: no row survived or was
    /// refused, and no tree kill left a survivor, a denial or a refusal.
    pub fn is_complete(&self) -> bool {
        self.rows.iter().all(|row| match &row.outcome {
            ReapOutcome::Killed(report) => report.is_complete(),
            ReapOutcome::KilledWithTree(_) | ReapOutcome::Ended => true,
            ReapOutcome::Survived(_) | ReapOutcome::Refused(_) => false,
        })
    }
}

impl fmt::Display for ReapReport {
    /// One line per row: id, pid, owner, label and what happened.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for row in &self.rows {
            let entry = &row.entry;
            write!(
                f,
                "#{} pid {} [{}] {:?}: ",
                entry.id(),
                entry.pid(),
                entry.owner(),
                entry.label()
            )?;
            match &row.outcome {
                ReapOutcome::Killed(report) => writeln!(f, "killed ({})", summarize(report))?,
                ReapOutcome::KilledWithTree(by) => writeln!(f, "killed with the tree of #{by}")?,
                ReapOutcome::Ended => match entry.end_reason() {
                    Some(reason) => writeln!(f, "had ended already ({reason})")?,
                    None => writeln!(f, "had ended already")?,
                },
                ReapOutcome::Survived(report) => writeln!(f, "SURVIVED ({})", summarize(report))?,
                ReapOutcome::Refused(reason) => writeln!(f, "refused: {reason}")?,
            }
        }
        Ok(())
    }
}

/// A kill report in one line of words, as stored in the `kill_report` column.
pub(crate) fn summarize(report: &KillReport) -> String {
    fn pids<'a>(identities: impl Iterator<Item = &'a ProcessIdentity>) -> String {
        identities
            .map(|identity| identity.pid().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }
    let mut parts = Vec::new();
    let killed: Vec<ProcessIdentity> = report.killed.iter().map(|k| k.identity).collect();
    let lists = [
        ("killed", &killed),
        ("already gone", &report.already_gone),
        ("denied", &report.denied),
        ("survived", &report.survived),
        ("reaped", &report.reaped),
    ];
    for (name, list) in lists {
        if !list.is_empty() {
            parts.push(format!("{name} {}", pids(list.iter())));
        }
    }
    if !report.refused.is_empty() {
        let refused = report.refused.iter().map(|(identity, _)| identity);
        parts.push(format!("refused {}", pids(refused)));
    }
    if parts.is_empty() {
        parts.push("nothing to signal".to_owned());
    }
    if !report.settled {
        parts.push("tree not settled before the signal".to_owned());
    }
    if !report.confirmed {
        parts.push("exits not confirmed".to_owned());
    }
    parts.join("; ")
}

/// The owner key of a process: pass a supervisor's own identity as the owner
/// of the rows it registers, and [`process_owner_alive`] can tell later
/// whether the supervisor still runs.
///
/// ```
/// use proctrack::registry::owner_key;
/// use proctrack::{BootId, Pid, ProcessIdentity, StartTime};
///
/// let boot: BootId = "0f2c1d9e-4a1b-4c3d-8e5f-6a7b8c9d0e1f".parse()?;
/// let me = ProcessIdentity::new(boot, Pid::try_from(4242)?, StartTime::from_raw(99));
/// assert_eq!(owner_key(me), "process:0f2c1d9e-4a1b-4c3d-8e5f-6a7b8c9d0e1f:4242:99");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn owner_key(identity: ProcessIdentity) -> String {
    format!(
        "process:{}:{}:{}",
        identity.boot_id(),
        identity.pid(),
        identity.start_time().as_raw()
    )
}

/// The identity in an [`owner_key`]; `None` for any other owner string.
fn parse_owner_key(owner: &str) -> Option<ProcessIdentity> {
    let rest = owner.strip_prefix("process:")?;
    let mut parts = rest.split(':');
    let boot = parts.next()?.parse().ok()?;
    let pid = parts.next()?.parse::<Pid>().ok()?;
    let start = parts.next()?.parse::<u64>().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some(ProcessIdentity::new(boot, pid, StartTime::from_raw(start)))
}

/// For an owner made by [`owner_key`]: whether that process is alive now.
/// `None` for an owner string of any other kind (the caller decides about
/// those). A process that cannot be looked at counts as alive: a stale-owner
/// reap must not kill on a guess.
///
/// ```no_run
/// # async fn demo(registry: proctrack::registry::Registry) -> proctrack::Result<()> {
/// use proctrack::registry::process_owner_alive;
/// // Kill the trees of every supervisor that died without cleaning up:
/// let report = registry
///     .reap_stale(|owner| process_owner_alive(owner).unwrap_or(true))
///     .await?;
/// # Ok(())
/// # }
/// ```
pub fn process_owner_alive(owner: &str) -> Option<bool> {
    let identity = parse_owner_key(owner)?;
    let Ok(mut source) = crate::system::open() else {
        return Some(true);
    };
    if source.boot_id() != identity.boot_id() {
        return Some(false);
    }
    Some(match source.sample(identity.pid()) {
        Ok(sample) => sample.start_time == identity.start_time() && !sample.state.has_exited(),
        Err(Error::NotFound { .. }) => false,
        Err(_) => true,
    })
}

impl Registry {
    /// Kills the live trees of the running rows in `scope`, and records what
    /// became of each row.
    ///
    /// Each row is first checked like [`reconcile`](Registry::reconcile)
    /// does: a row whose process is gone, whose pid was reused or that is of
    /// an earlier boot is marked so and **never signalled**. A live one is
    /// killed with its descendants by [`kill_tree`] (with the registry's
    /// [kill options](Registry::with_kill_options)), which pins each process
    /// by identity before signalling. The row becomes [`Status::Killed`]
    /// with the kill report in words ([`Entry::kill_report`]).
    ///
    /// The pidfs inode check happens just before the kill; the tree kill then
    /// pins the root by start time. Only a process that exits, has its pid
    /// reused and gets a new process started within the same clock tick
    /// (10 ms), all in that microsecond window, could fool it.
    ///
    /// Processes that left the tree before the reap (a double-forked daemon
    /// whose parent exited) are out of its reach: register them too, or run
    /// the supervisor as a [`Subreaper`](crate::signal::Subreaper).
    ///
    /// ```no_run
    /// # async fn demo(registry: proctrack::registry::Registry) -> proctrack::Result<()> {
    /// use proctrack::registry::{ReapOutcome, ReapScope};
    /// let report = registry.reap(ReapScope::Owner("build-42".into())).await?;
    /// for row in &report.rows {
    ///     if let ReapOutcome::Killed(kill) = &row.outcome {
    ///         println!("killed {} processes of #{}", kill.killed.len(), row.entry.id());
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn reap(&self, scope: ReapScope) -> Result<ReapReport> {
        let rows = match scope {
            ReapScope::Owner(owner) => self.by_owner(&owner).await?,
            ReapScope::Row(id) => self.get(id).await?.into_iter().collect(),
            ReapScope::AllRunning => self.running().await?,
        };
        let rows = rows.into_iter().filter(Entry::is_running).collect();
        self.reap_rows(rows).await
    }

    /// Reaps the running rows of every owner that `is_owner_alive` says is
    /// gone: the trees left behind by supervisors that crashed.
    ///
    /// How an owner is known to be gone is the caller's to say: an execution
    /// id the caller's own records call finished, or, for owners made by
    /// [`owner_key`], [`process_owner_alive`].
    ///
    /// ```no_run
    /// # async fn demo(registry: proctrack::registry::Registry) -> proctrack::Result<()> {
    /// let finished = ["build-40", "build-41"];
    /// let report = registry.reap_stale(|owner| !finished.contains(&owner)).await?;
    /// println!("killed {} rows", report.killed().count());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn reap_stale(&self, is_owner_alive: impl Fn(&str) -> bool) -> Result<ReapReport> {
        let rows = self.running().await?;
        let mut verdicts: HashMap<&str, bool> = HashMap::new();
        for entry in &rows {
            verdicts
                .entry(entry.owner())
                .or_insert_with(|| is_owner_alive(entry.owner()));
        }
        let stale: HashSet<String> = verdicts
            .into_iter()
            .filter(|&(_, alive)| !alive)
            .map(|(owner, _)| owner.to_owned())
            .collect();
        let rows = rows
            .into_iter()
            .filter(|entry| stale.contains(entry.owner()))
            .collect();
        self.reap_rows(rows).await
    }

    async fn reap_rows(&self, rows: Vec<Entry>) -> Result<ReapReport> {
        let mut report = ReapReport::default();
        if rows.is_empty() {
            return Ok(report);
        }
        let mut observer = Observer::open()?;
        // Processes killed by an earlier row's tree kill in this reap.
        let mut killed_by: HashMap<ProcessIdentity, RowId> = HashMap::new();
        for entry in rows {
            let id = entry.id();
            if let Some(&by) = killed_by.get(&entry.identity()) {
                let words = format!("killed with the tree of row {by}");
                let stored = self.finish(id, Some((Status::Killed, EndReason::Reaped)), &words);
                report.rows.push(ReapedRow {
                    entry: stored.await?.unwrap_or(entry),
                    outcome: ReapOutcome::KilledWithTree(by),
                });
                continue;
            }
            if let Observed::Ended(ending) = observer.observe(&entry)? {
                let mut conn = self.pool.acquire().await.map_err(|e| self.db(e))?;
                let stored = self.mark_ended(&mut conn, id, ending, None).await?;
                report.rows.push(ReapedRow {
                    entry: stored.unwrap_or(entry),
                    outcome: ReapOutcome::Ended,
                });
                continue;
            }
            let identity = entry.identity();
            let (stored, outcome) = match self.kill(identity).await {
                Ok(kill) => {
                    for member in &kill.killed {
                        killed_by.insert(member.identity, id);
                    }
                    let words = summarize(&kill);
                    if kill.killed.iter().any(|k| k.identity == identity) {
                        let done = Some((Status::Killed, EndReason::Reaped));
                        (
                            self.finish(id, done, &words).await?,
                            ReapOutcome::Killed(kill),
                        )
                    } else if kill.already_gone.contains(&identity) {
                        let (status, reason) = Ending::Gone.outcome();
                        let done = Some((status, reason));
                        (self.finish(id, done, &words).await?, ReapOutcome::Ended)
                    } else {
                        (
                            self.finish(id, None, &words).await?,
                            ReapOutcome::Survived(kill),
                        )
                    }
                }
                Err(Error::Refused { reason, .. }) => (None, ReapOutcome::Refused(reason)),
                Err(other) => return Err(other),
            };
            report.rows.push(ReapedRow {
                entry: stored.unwrap_or(entry),
                outcome,
            });
        }
        Ok(report)
    }

    /// Runs the blocking tree kill off the async threads.
    async fn kill(&self, root: ProcessIdentity) -> Result<KillReport> {
        let options: KillOptions = self.kill_options.clone();
        match tokio::task::spawn_blocking(move || {
            kill_tree(&mut crate::table::ProcessTable::new()?, root, &options)
        })
        .await
        {
            Ok(result) => result,
            Err(join) => match join.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(join) => Err(Error::Io {
                    path: self.path.clone(),
                    source: std::io::Error::other(join),
                }),
            },
        }
    }

    /// Records the end of a running row (`done`), or only the kill report
    /// on a row that stays running (`None`). Returns the row as stored, or
    /// `None` if another process ended it first.
    async fn finish(
        &self,
        id: RowId,
        done: Option<(Status, EndReason)>,
        kill_report: &str,
    ) -> Result<Option<Entry>> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.db(e))?;
        match done {
            Some((status, reason)) => {
                self.end_row(&mut conn, id, status.as_str(), reason, Some(kill_report))
                    .await
            }
            None => {
                let now = super::entry::to_millis(std::time::SystemTime::now());
                sqlx::query(
                    "UPDATE processes SET kill_report = ?1, updated_at = ?2 \
                     WHERE id = ?3 AND status = 'running'",
                )
                .bind(kill_report)
                .bind(now)
                .bind(id.as_raw())
                .execute(&mut *conn)
                .await
                .map_err(|e| self.db(e))?;
                drop(conn);
                self.get(id).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BootId;

    #[test]
    fn owner_keys_round_trip() {
        let me = ProcessIdentity::new(
            BootId::from_bytes([0xab; 16]),
            Pid::try_from(31337).unwrap(),
            StartTime::from_raw(123_456),
        );
        assert_eq!(parse_owner_key(&owner_key(me)), Some(me));
        for other in [
            "build-42",
            "process:",
            "process:abc:1:2",
            "process:abababab-abab-abab-abab-abababababab:0:2",
            "process:abababab-abab-abab-abab-abababababab:1:2:3",
        ] {
            assert_eq!(parse_owner_key(other), None, "{other}");
            assert_eq!(process_owner_alive(other), None, "{other}");
        }
    }

    #[test]
    fn an_empty_kill_report_says_so() {
        let report = KillReport {
            settled: true,
            confirmed: true,
            ..KillReport::default()
        };
        assert_eq!(summarize(&report), "nothing to signal");
    }
}
