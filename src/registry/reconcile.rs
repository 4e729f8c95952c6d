//! [`Registry::reconcile`]: the rows against the live system.

use std::time::SystemTime;

use super::entry::{EndReason, Entry, to_millis};
use super::error::Result;
use super::observe::{Ending, Observed, Observer};
use super::sql::{COLUMNS, decode};
use super::{Registry, RowId};
use crate::blocking::run_blocking;

/// What [`Registry::reconcile`] found, row by row (each list oldest first,
/// each entry as it is stored now).
///
/// ```no_run
/// # async fn demo(registry: proctrack::registry::Registry) -> Result<(), proctrack::registry::RegistryError> {
/// let report = registry.reconcile().await?;
/// for entry in &report.pid_reused {
///     println!("{} exited unseen; its pid now names another process", entry.identity());
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct ReconcileReport {
    /// Still running: the process with the row's identity is alive.
    pub running: Vec<Entry>,
    /// Found gone (no process on the pid, or only the row's unreaped zombie):
    /// now [`Status::Exited`](super::Status::Exited), [`EndReason::Gone`].
    pub exited: Vec<Entry>,
    /// Found gone with its pid held by another process: now
    /// [`Status::Exited`](super::Status::Exited), [`EndReason::PidReused`].
    /// The other process was not touched.
    pub pid_reused: Vec<Entry>,
    /// Of an earlier boot: now [`Status::Lost`](super::Status::Lost),
    /// [`EndReason::EarlierBoot`].
    pub earlier_boot: Vec<Entry>,
}

impl ReconcileReport {
    /// Every row this reconcile marked ended, in any way.
    ///
    /// ```no_run
    /// # async fn demo(registry: proctrack::registry::Registry) -> Result<(), proctrack::registry::RegistryError> {
    /// for entry in registry.reconcile().await?.ended() {
    ///     println!("#{} ended: {:?}", entry.id(), entry.end_reason());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn ended(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.exited
            .iter()
            .chain(&self.pid_reused)
            .chain(&self.earlier_boot)
    }
}

impl Registry {
    /// Checks every running row against the live system and marks the rows
    /// whose process is gone, whose pid was reused (another start time, or
    /// another pidfs inode) or that belong to an earlier boot. Nothing is
    /// signalled.
    ///
    /// Several processes may reconcile one file at once: a row is only
    /// changed while it still says running, so a row another process marked
    /// meanwhile is left (and out of the report).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), proctrack::registry::RegistryError> {
    /// let registry = proctrack::registry::Registry::open("/tmp/procs.db").await?;
    /// let report = registry.reconcile().await?;
    /// println!(
    ///     "{} running, {} exited, {} pid reused, {} from an earlier boot",
    ///     report.running.len(),
    ///     report.exited.len(),
    ///     report.pid_reused.len(),
    ///     report.earlier_boot.len()
    /// );
    /// # Ok(())
    /// # }
    /// ```
    pub async fn reconcile(&self) -> Result<ReconcileReport> {
        let rows = self.running().await?;
        // Reading /proc blocks: look at every row on the blocking pool.
        let observed = run_blocking(move || {
            let mut observer = Observer::open()?;
            rows.into_iter()
                .map(|entry| Ok((observer.observe(&entry)?, entry)))
                .collect::<crate::Result<Vec<_>>>()
        })
        .await?;
        let mut report = ReconcileReport::default();
        let mut endings = Vec::new();
        for (observed, entry) in observed {
            match observed {
                Observed::Alive => report.running.push(entry),
                Observed::Ended(ending) => endings.push((entry.id(), ending)),
            }
        }
        if endings.is_empty() {
            return Ok(report);
        }
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.db(e))?;
        for (id, ending) in endings {
            let Some(entry) = self.mark_ended(&mut tx, id, ending, None).await? else {
                continue;
            };
            match ending {
                Ending::Gone => report.exited.push(entry),
                Ending::PidReused => report.pid_reused.push(entry),
                Ending::EarlierBoot => report.earlier_boot.push(entry),
            }
        }
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(report)
    }

    /// Marks a running row ended as `ending` says; `None` if it no longer
    /// says running (another process marked it first).
    pub(crate) async fn mark_ended(
        &self,
        conn: &mut sqlx::SqliteConnection,
        id: RowId,
        ending: Ending,
        kill_report: Option<&str>,
    ) -> Result<Option<Entry>> {
        let (status, reason) = ending.outcome();
        self.end_row(conn, id, status.as_str(), reason, kill_report)
            .await
    }

    /// Sets a running row's final status; `None` if it no longer says running.
    pub(crate) async fn end_row(
        &self,
        conn: &mut sqlx::SqliteConnection,
        id: RowId,
        status: &str,
        reason: EndReason,
        kill_report: Option<&str>,
    ) -> Result<Option<Entry>> {
        let now = to_millis(SystemTime::now());
        let sql = format!(
            "UPDATE processes SET status = ?1, end_reason = ?2, kill_report = ?3, \
                 ended_at = ?4, updated_at = ?4 \
             WHERE id = ?5 AND status = 'running' RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(status)
            .bind(reason.as_str())
            .bind(kill_report)
            .bind(now)
            .bind(id.as_raw())
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| self.db(e))?;
        row.map(|row| decode(&self.path, &row)).transpose()
    }
}
