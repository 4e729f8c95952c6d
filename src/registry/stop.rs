//! [`Registry::stop`]: killing what the rows say is still running.

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::entry::{EndReason, Entry, Status};
use super::error::Result;
use super::observe::{Ending, Observed, Observer};
use super::{Registry, RowId};
use crate::blocking::run_blocking;
use crate::signal::{KillOptions, KillReport, Refusal, kill_tree};
use crate::source::ProcessSource;
use crate::{Error, Pid, ProcessIdentity, StartTime};

/// Which rows a [`Registry::stop`] kills (of those still running).
///
/// ```
/// use proctrack::registry::{StopScope, RowId};
/// let scopes = [
///     StopScope::Owner("build-42".into()),
///     StopScope::Row(RowId::from_raw(7)),
///     StopScope::AllRunning,
/// ];
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopScope {
    /// Every running row of this owner.
    Owner(String),
    /// One row.
    Row(RowId),
    /// Every running row in the file, whoever's.
    AllRunning,
}

/// What [`Registry::stop`] did to one row.
///
/// ```no_run
/// # async fn demo(registry: proctrack::registry::Registry) -> Result<(), proctrack::registry::RegistryError> {
/// use proctrack::registry::{StopOutcome, StopScope};
/// for row in registry.stop(StopScope::AllRunning).await?.rows {
///     match row.outcome {
///         StopOutcome::Killed(kill) => println!("killed {} processes", kill.killed.len()),
///         StopOutcome::KilledWithTree(by) => println!("died with the tree of #{by}"),
///         StopOutcome::Ended => println!("had ended: {:?}", row.entry.end_reason()),
///         StopOutcome::Survived(kill) => eprintln!("survivors: {:?}", kill.survived),
///         StopOutcome::Refused(why) => eprintln!("not signalled: {why}"),
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
pub enum StopOutcome {
    /// The row's process and its descendants were killed; the row is now
    /// [`Status::Killed`] ([`EndReason::Stopped`]). The report may still list
    /// descendants that survived or were denied.
    Killed(KillReport),
    /// The process died with the tree of another row of the same stop (a
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

/// One row of a [`StopReport`].
///
/// ```no_run
/// # async fn demo(registry: proctrack::registry::Registry) -> Result<(), proctrack::registry::RegistryError> {
/// use proctrack::registry::StopScope;
/// let report = registry.stop(StopScope::Owner("build-42".into())).await?;
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
pub struct StoppedRow {
    /// The row as stored after the stop.
    pub entry: Entry,
    /// What the stop did.
    pub outcome: StopOutcome,
}

/// What [`Registry::stop`] did, row by row (oldest first).
///
/// ```no_run
/// # async fn demo(registry: proctrack::registry::Registry) -> Result<(), proctrack::registry::RegistryError> {
/// use proctrack::registry::StopScope;
/// let report = registry.stop(StopScope::AllRunning).await?;
/// print!("{report}");
/// assert!(report.is_complete());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct StopReport {
    /// Every running row in scope, with what was done to it.
    pub rows: Vec<StoppedRow>,
}

impl StopReport {
    /// The rows whose process this stop killed (alone or with another row's
    /// tree).
    ///
    /// ```no_run
    /// # async fn demo(registry: proctrack::registry::Registry) -> Result<(), proctrack::registry::RegistryError> {
    /// let report = registry.stop(proctrack::registry::StopScope::AllRunning).await?;
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
                    StopOutcome::Killed(_) | StopOutcome::KilledWithTree(_)
                )
            })
            .map(|row| &row.entry)
    }

    /// True when nothing in scope is left running: no row survived or was
    /// refused, and no tree kill left a survivor, a denial or a refusal.
    pub fn is_complete(&self) -> bool {
        self.rows.iter().all(|row| match &row.outcome {
            StopOutcome::Killed(report) => report.is_complete(),
            StopOutcome::KilledWithTree(_) | StopOutcome::Ended => true,
            StopOutcome::Survived(_) | StopOutcome::Refused(_) => false,
        })
    }
}

impl fmt::Display for StopReport {
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
                StopOutcome::Killed(report) => writeln!(f, "killed ({})", summarize(report))?,
                StopOutcome::KilledWithTree(by) => writeln!(f, "killed with the tree of #{by}")?,
                StopOutcome::Ended => match entry.end_reason() {
                    Some(reason) => writeln!(f, "had ended already ({reason})")?,
                    None => writeln!(f, "had ended already")?,
                },
                StopOutcome::Survived(report) => writeln!(f, "SURVIVED ({})", summarize(report))?,
                StopOutcome::Refused(reason) => writeln!(f, "refused: {reason}")?,
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
    if !report.escaped.is_empty() {
        parts.push(format!("escaped {}", pids(report.escaped.iter())));
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
pub(super) fn parse_owner_key(owner: &str) -> Option<ProcessIdentity> {
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
/// stop must not kill on a guess.
///
/// ```no_run
/// # async fn demo(registry: proctrack::registry::Registry) -> Result<(), proctrack::registry::RegistryError> {
/// use proctrack::registry::process_owner_alive;
/// // Kill the trees of every supervisor that died without cleaning up:
/// let report = registry
///     .stop_stale(|owner| process_owner_alive(owner).unwrap_or(true))
///     .await?;
/// # Ok(())
/// # }
/// ```
pub fn process_owner_alive(owner: &str) -> Option<bool> {
    let identity = parse_owner_key(owner)?;
    let Ok(mut source) = crate::SystemSource::open() else {
        return Some(true);
    };
    Some(source.is_alive(identity).unwrap_or(true))
}

/// What one blocking look at a row's process found or did.
enum Step {
    /// The process had ended; nothing was signalled.
    Ended(Ending),
    /// The process was alive: the tree kill's result.
    Killed(crate::Result<KillReport>),
}

/// Checks `entry` like [`Registry::reconcile`] does and, if its process is
/// alive, kills its tree. Blocks (reads /proc, waits for exits).
fn look_and_kill(
    observer: &mut Observer,
    entry: &Entry,
    options: &KillOptions,
) -> crate::Result<Step> {
    if let Observed::Ended(ending) = observer.observe(entry)? {
        return Ok(Step::Ended(ending));
    }
    let kill = kill_tree(observer.table()?, entry.identity(), options);
    Ok(Step::Killed(kill))
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
    /// Processes that left the tree before the stop (a double-forked daemon
    /// whose parent exited) are out of its reach: register them too, or run
    /// the supervisor as a [`Subreaper`](crate::signal::Subreaper).
    ///
    /// ```no_run
    /// # async fn demo(registry: proctrack::registry::Registry) -> Result<(), proctrack::registry::RegistryError> {
    /// use proctrack::registry::{StopOutcome, StopScope};
    /// let report = registry.stop(StopScope::Owner("build-42".into())).await?;
    /// for row in &report.rows {
    ///     if let StopOutcome::Killed(kill) = &row.outcome {
    ///         println!("killed {} processes of #{}", kill.killed.len(), row.entry.id());
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn stop(&self, scope: StopScope) -> Result<StopReport> {
        let rows = match scope {
            StopScope::Owner(owner) => self.by_owner(&owner).await?,
            StopScope::Row(id) => self.get(id).await?.into_iter().collect(),
            StopScope::AllRunning => self.running().await?,
        };
        let rows = rows.into_iter().filter(Entry::is_running).collect();
        self.stop_rows(rows).await
    }

    /// Stops the running rows of every owner that `is_owner_alive` says is
    /// gone: the trees left behind by supervisors that crashed.
    ///
    /// How an owner is known to be gone is the caller's to say: an execution
    /// id the caller's own records call finished, or, for owners made by
    /// [`owner_key`], [`process_owner_alive`]. It is asked once per owner, on
    /// tokio's blocking pool (it may read `/proc`, as
    /// [`process_owner_alive`] does), hence `Send + 'static`.
    ///
    /// ```no_run
    /// # async fn demo(registry: proctrack::registry::Registry) -> Result<(), proctrack::registry::RegistryError> {
    /// let finished = ["build-40", "build-41"];
    /// let report = registry.stop_stale(move |owner| !finished.contains(&owner)).await?;
    /// println!("killed {} rows", report.killed().count());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn stop_stale(
        &self,
        is_owner_alive: impl Fn(&str) -> bool + Send + 'static,
    ) -> Result<StopReport> {
        let rows = self.running().await?;
        let owners: HashSet<String> = rows.iter().map(|e| e.owner().to_owned()).collect();
        // The caller's check may read /proc (process_owner_alive does), so it
        // runs on the blocking pool, once per owner.
        let stale: HashSet<String> = run_blocking(move || {
            Ok(owners
                .into_iter()
                .filter(|owner| !is_owner_alive(owner))
                .collect())
        })
        .await?;
        let rows = rows
            .into_iter()
            .filter(|entry| stale.contains(entry.owner()))
            .collect();
        self.stop_rows(rows).await
    }

    async fn stop_rows(&self, rows: Vec<Entry>) -> Result<StopReport> {
        let mut report = StopReport::default();
        if rows.is_empty() {
            return Ok(report);
        }
        let mut observer = run_blocking(Observer::open).await?;
        // Processes killed by an earlier row's tree kill in this stop.
        let mut killed_by: HashMap<ProcessIdentity, RowId> = HashMap::new();
        for entry in rows {
            let id = entry.id();
            if let Some(&by) = killed_by.get(&entry.identity()) {
                let words = format!("killed with the tree of row {by}");
                let stored = self.finish(id, Some((Status::Killed, EndReason::Stopped)), &words);
                report.rows.push(StoppedRow {
                    entry: stored.await?.unwrap_or(entry),
                    outcome: StopOutcome::KilledWithTree(by),
                });
                continue;
            }
            // The look and the kill read /proc and block: both go to the
            // blocking pool, in one step, and the observer comes back.
            let row = entry.clone();
            let options = self.kill_options.clone();
            let (back, step) = run_blocking(move || {
                let step = look_and_kill(&mut observer, &row, &options);
                Ok((observer, step))
            })
            .await?;
            observer = back;
            let kill = match step? {
                Step::Ended(ending) => {
                    let mut conn = self.pool.acquire().await.map_err(|e| self.db(e))?;
                    let stored = self.mark_ended(&mut conn, id, ending, None).await?;
                    report.rows.push(StoppedRow {
                        entry: stored.unwrap_or(entry),
                        outcome: StopOutcome::Ended,
                    });
                    continue;
                }
                Step::Killed(kill) => kill,
            };
            let identity = entry.identity();
            let (stored, outcome) = match kill {
                Ok(kill) => {
                    for member in &kill.killed {
                        killed_by.insert(member.identity, id);
                    }
                    let words = summarize(&kill);
                    if kill.killed.iter().any(|k| k.identity == identity) {
                        let done = Some((Status::Killed, EndReason::Stopped));
                        (
                            self.finish(id, done, &words).await?,
                            StopOutcome::Killed(kill),
                        )
                    } else if kill.already_gone.contains(&identity) {
                        let (status, reason) = Ending::Gone.outcome();
                        let done = Some((status, reason));
                        (self.finish(id, done, &words).await?, StopOutcome::Ended)
                    } else {
                        (
                            self.finish(id, None, &words).await?,
                            StopOutcome::Survived(kill),
                        )
                    }
                }
                Err(Error::Refused { reason, .. }) => (None, StopOutcome::Refused(reason)),
                Err(other) => return Err(other.into()),
            };
            report.rows.push(StoppedRow {
                entry: stored.unwrap_or(entry),
                outcome,
            });
        }
        Ok(report)
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
