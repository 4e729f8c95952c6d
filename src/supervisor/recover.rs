//! After a crash: find the jobs a dead instance of this supervisor left,
//! and stop them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::cgroup::{self, JobCgroup};
use super::members::{JobBelonging, Marks};
use super::stop::end_in_cgroup;
use super::{JobEnd, JobId, Supervisor, SupervisorError, members};
use crate::ProcessIdentity;
use crate::signal::{KillOptions, KillReport, kill_belonging};

/// Looks for what is left, each followed by a kill of it.
const ROUNDS: usize = 4;

/// What [`Supervisor::recover`] found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoverReport {
    /// Every job of a dead instance that was found, and what was done.
    pub jobs: Vec<RecoveredJob>,
}

impl RecoverReport {
    /// How many processes were killed in all.
    pub fn killed(&self) -> usize {
        self.jobs.iter().map(|job| job.kill.killed.len()).sum()
    }

    /// True when every process of the dead instances' jobs is proven gone.
    pub fn is_complete(&self) -> bool {
        self.jobs.iter().all(|job| job.kill.is_complete())
    }
}

/// One job of a dead supervisor instance.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveredJob {
    /// The job.
    pub id: JobId,
    /// Its cgroup, if one was left; removed once empty.
    pub cgroup: Option<PathBuf>,
    /// Found in the journal (else only by its cgroup or its tag).
    pub journaled: bool,
    /// What the kill engine did to its processes, over every round.
    pub kill: KillReport,
}

/// Which jobs of dead supervisor instances [`Supervisor::recover_matching`]
/// stops. A job whose instance still runs is never one: its supervisor
/// owns it (and its cgroup).
///
/// ```
/// use proctrack::supervisor::RecoverFilter;
/// let id = "devtool.4242-99.3".parse()?;
/// let only = RecoverFilter::jobs([id]);
/// assert_ne!(only, RecoverFilter::dead());
/// # Ok::<(), proctrack::supervisor::BadJobId>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoverFilter {
    only: Option<Vec<JobId>>,
    /// Kept ones too, without naming them (what `adoptable` lists).
    with_kept: bool,
}

impl RecoverFilter {
    /// Every job of a dead instance, kept ones aside: what
    /// [`recover`](Supervisor::recover) stops.
    pub fn dead() -> RecoverFilter {
        RecoverFilter::default()
    }

    /// Only the jobs `ids` (of the supervisor's name), kept ones included:
    /// they are named.
    pub fn jobs(ids: impl IntoIterator<Item = JobId>) -> RecoverFilter {
        RecoverFilter {
            only: Some(ids.into_iter().collect()),
            with_kept: false,
        }
    }

    /// Every job of a dead instance, kept ones included.
    pub(super) fn dead_and_kept() -> RecoverFilter {
        RecoverFilter {
            only: None,
            with_kept: true,
        }
    }

    /// Whether job `id` (of a dead instance) is to be stopped.
    fn admits(&self, id: &JobId, kept: bool) -> bool {
        match &self.only {
            Some(ids) => ids.contains(id),
            None => self.with_kept || !kept,
        }
    }
}

/// What is known of one dead job while recovering (or adopting) it.
#[derive(Default)]
pub(super) struct Found {
    pub(super) cgroup: Option<PathBuf>,
    pub(super) journaled: bool,
    /// The journal's root, if journaled.
    pub(super) root: Option<ProcessIdentity>,
    /// The journal's record, if journaled.
    pub(super) record: Option<super::JobRecord>,
    pub(super) processes: Vec<ProcessIdentity>,
}

impl Supervisor {
    /// Finds every job that an earlier instance of a supervisor of this name
    /// left behind when it died, and stops it. Jobs are found three ways:
    /// the journal's unfinished rows, the `proctrack-<id>` cgroups under
    /// ours, and the tags of live processes (reparented anywhere). A job is
    /// left alone while its instance (the pid and start time in its
    /// [`JobId`]) still runs, and when it was kept on purpose
    /// ([`keep_running`](Supervisor::keep_running)). Processes are pinned by
    /// identity before they are signalled; the journal marks each job whose
    /// kill is proven complete [`JobEnd::Recovered`], so no row stays
    /// running without a process, and none ends while one is left.
    pub fn recover(&mut self) -> Result<RecoverReport, SupervisorError> {
        self.recover_matching(&RecoverFilter::dead())
    }

    /// [`recover`](Supervisor::recover), restricted by `filter` (only the
    /// jobs it names, say).
    pub fn recover_matching(
        &mut self,
        filter: &RecoverFilter,
    ) -> Result<RecoverReport, SupervisorError> {
        let mut recovered: BTreeMap<JobId, RecoveredJob> = BTreeMap::new();
        // A tagged look happens before the kill: a daemon that a job
        // double-forked in between is no one's descendant at the kill, and
        // is found by the next look. Killed jobs stop forking, so the looks
        // end.
        for _ in 0..ROUNDS {
            let dead = self.find_dead(filter)?;
            if dead.is_empty() {
                break;
            }
            for (id, found) in dead {
                let job = self.recover_job(id.clone(), found)?;
                match recovered.get_mut(&id) {
                    Some(earlier) => {
                        merge(&mut earlier.kill, job.kill);
                        earlier.journaled |= job.journaled;
                        if earlier.cgroup.is_none() {
                            earlier.cgroup = job.cgroup;
                        }
                    }
                    None => {
                        recovered.insert(id, job);
                    }
                }
            }
        }
        self.table.refresh()?;
        self.reap_adopted()?;
        Ok(RecoverReport {
            jobs: recovered.into_values().collect(),
        })
    }

    /// The jobs of dead instances of this supervisor's name that something
    /// of is left: a journal row, a cgroup, a tagged process. Never a job
    /// that a live instance (this one included)
    /// [adopted](Supervisor::adopt). Shared with `adopt`.
    pub(super) fn find_dead(
        &mut self,
        filter: &RecoverFilter,
    ) -> Result<BTreeMap<JobId, Found>, SupervisorError> {
        let look = self.look()?;
        let mut dead: BTreeMap<JobId, Found> = BTreeMap::new();
        let mut kept = Vec::new();
        let mut owned: Vec<JobId> = self.jobs.keys().cloned().collect();
        if let Some(journal) = self.journal.as_mut() {
            for record in journal.unfinished(&self.name)? {
                if record
                    .owner
                    .is_some_and(|o| super::adopt::runs(&self.table, self.me, o))
                {
                    owned.push(record.id);
                    continue;
                }
                if record.kept {
                    kept.push(record.id.clone());
                }
                let found = dead.entry(record.id.clone()).or_default();
                found.journaled = true;
                found.cgroup = record.cgroup.clone();
                found.root = Some(record.root);
                found.processes.push(record.root);
                found.record = Some(record);
            }
        }
        if let Ok(cgroups) = &self.cgroups {
            for id in cgroup::leftovers(cgroups.own_dir())? {
                if let Ok(id) = id.parse::<JobId>()
                    && id.supervisor() == self.name
                {
                    let path = cgroups.own_dir().join(format!("proctrack-{id}"));
                    dead.entry(id).or_default().cgroup.get_or_insert(path);
                }
            }
        }
        for (identity, tag) in &look.tags {
            if let Some(id) = std::str::from_utf8(tag)
                .ok()
                .and_then(|id| id.parse::<JobId>().ok())
                && id.supervisor() == self.name
            {
                dead.entry(id).or_default().processes.push(*identity);
            }
        }
        let me = (self.me.pid(), self.me.start_time());
        dead.retain(|id, _| {
            id.instance() != me
                && !owned.contains(id)
                && filter.admits(id, kept.contains(id))
                && !members::instance_alive(&self.table, id)
        });
        Ok(dead)
    }

    fn recover_job(&mut self, id: JobId, found: Found) -> Result<RecoveredJob, SupervisorError> {
        let cgroup = found
            .cgroup
            .as_deref()
            .and_then(|path| open_leftover(path, &id));
        let mut belonging = JobBelonging {
            marks: Marks {
                id: &id,
                root: found.root,
                cgroup: cgroup.as_ref(),
                seen: None,
            },
            me: self.me,
        };
        // Tagged processes and the journal's root are identities (a reused
        // pid is not them); the cgroup's members are named by the look.
        let mut kill = kill_belonging(
            &mut self.table,
            &found.processes,
            &KillOptions::new(),
            &mut belonging,
        )?;
        if let Some(cgroup) = &cgroup {
            end_in_cgroup(cgroup, &mut kill, &mut self.table)?;
        }
        let cgroup_path = cgroup.as_ref().map(|c| c.path().to_path_buf());
        if let Some(cgroup) = cgroup {
            // Still populated (a survivor): left for the next recover.
            let _ = cgroup.remove();
        }
        let journaled = found.journaled;
        // Ended only when proven: a job with a survivor stays written down,
        // for the next recover and for whoever lists the journal.
        if journaled
            && kill.is_complete()
            && let Some(journal) = self.journal.as_mut()
        {
            journal.ended(&id, JobEnd::Recovered)?;
        }
        Ok(RecoveredJob {
            id,
            cgroup: cgroup_path,
            journaled,
            kill,
        })
    }
}

/// Adds a later round's kill of the same job to `into`.
fn merge(into: &mut KillReport, more: KillReport) {
    into.killed.extend(more.killed);
    // A job left incomplete is found again next round: a process counts
    // once, as the first round that met it found it (a root killed in one
    // round is not also "already gone" in the next).
    for identity in more.already_gone {
        if !into.was_killed(&identity) && !into.already_gone.contains(&identity) {
            into.already_gone.push(identity);
        }
    }
    for identity in more.denied {
        if !into.denied.contains(&identity) {
            into.denied.push(identity);
        }
    }
    // Only the last round's survivors and escapees are still alive.
    into.survived = more.survived;
    into.escaped = more.escaped;
    for (identity, why) in more.refused {
        if !into.refused.iter().any(|(refused, _)| *refused == identity) {
            into.refused.push((identity, why));
        }
    }
    into.reaped.extend(more.reaped);
    into.settled &= more.settled;
    into.confirmed &= more.confirmed;
}

/// The job cgroup at `path`, if it is still there.
pub(super) fn open_leftover(path: &Path, id: &JobId) -> Option<JobCgroup> {
    JobCgroup::open(path.parent()?, id.as_str()).ok()
}
