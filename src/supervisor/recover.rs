//! After a crash: find the jobs a dead instance of this supervisor left,
//! and stop them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::cgroup::{self, JobCgroup};
use super::members::{JobBelonging, Marks};
use super::stop::end_in_cgroup;
use super::{JobEnd, JobId, Supervisor, SupervisorError};
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
    /// identity before they are signalled; the journal marks each job
    /// [`JobEnd::Recovered`], so no row stays running without a process.
    pub fn recover(&mut self) -> Result<RecoverReport, SupervisorError> {
        let mut recovered: BTreeMap<JobId, RecoveredJob> = BTreeMap::new();
        // A tagged look happens before the kill: a daemon that a job
        // double-forked in between is no one's descendant at the kill, and
        // is found by the next look. Killed jobs stop forking, so the looks
        // end.
        for _ in 0..ROUNDS {
            let dead = self.find_dead(false)?;
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
    /// of is left: a journal row, a cgroup, a tagged process; kept ones
    /// only `with_kept`. Never a job that a live instance (this one
    /// included) [adopted](Supervisor::adopt). Shared with `adopt`.
    pub(super) fn find_dead(
        &mut self,
        with_kept: bool,
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
                if record.kept && !with_kept {
                    kept.push(record.id);
                    continue;
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
        dead.retain(|id, _| !kept.contains(id) && !owned.contains(id) && !self.instance_alive(id));
        Ok(dead)
    }

    /// Whether the supervisor instance that started `id` still runs (this
    /// one included).
    fn instance_alive(&self, id: &JobId) -> bool {
        let (pid, start) = id.instance();
        if (pid, start) == (self.me.pid(), self.me.start_time()) {
            return true;
        }
        self.table
            .get(pid)
            .is_some_and(|p| p.start_time() == start && !p.state().has_exited())
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
        if journaled && let Some(journal) = self.journal.as_mut() {
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
    into.already_gone.extend(more.already_gone);
    into.denied.extend(more.denied);
    // Only the last round's survivors and escapees are still alive.
    into.survived = more.survived;
    into.escaped = more.escaped;
    into.refused.extend(more.refused);
    into.reaped.extend(more.reaped);
    into.settled &= more.settled;
    into.confirmed &= more.confirmed;
}

/// The job cgroup at `path`, if it is still there.
pub(super) fn open_leftover(path: &Path, id: &JobId) -> Option<JobCgroup> {
    JobCgroup::open(path.parent()?, id.as_str()).ok()
}
