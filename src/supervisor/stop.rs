//! Ending jobs: stop (through the kill engine), wait, and the stop of
//! every job when the supervisor goes.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use super::members::{JobBelonging, Marks};
use super::{JobEnd, JobId, JobStopReport, Supervisor, SupervisorError};
use crate::signal::{KillOptions, KillReport, Killed, ProcessHandle, Signal, kill_belonging};
use crate::supervisor::cgroup::JobCgroup;
use crate::table::ProcessTable;
use crate::{Error, ProcessIdentity, ProcessSource};

/// What one look of a wait found.
pub(super) enum WaitStep {
    /// Every member is gone: the root's status, if known.
    Ended(Option<ExitStatus>),
    /// The look was empty once: look again before believing it.
    Again,
    /// A live member to wait for.
    Member(ProcessIdentity),
}

/// How long a stop waits for killed members to be gone.
const KILL_WAIT: Duration = Duration::from_secs(10);

impl Supervisor {
    /// Stops job `id`: `SIGTERM` to every member, up to `grace` for them to
    /// exit, then `SIGKILL` to whatever is left (with a zero `grace`,
    /// `SIGKILL` at once), through the crate's one kill engine
    /// ([`kill_trees`](crate::signal::kill_trees)): every member is stopped
    /// and its children found until the set is complete, so forks during the
    /// stop are caught; what marks a process as the job's (its cgroup, its
    /// tag, the orphans it left with us) is asked again before the signal and
    /// after it, so a member that left the tree is killed too. Where the job
    /// has a cgroup and something of it is left (a member we may not signal),
    /// `cgroup.kill` ends it, and the report counts what that proved gone.
    /// Collects the root's exit status and the orphans' we adopted, removes
    /// the cgroup, and writes the end down.
    pub fn stop(&mut self, id: &JobId, grace: Duration) -> Result<JobStopReport, SupervisorError> {
        self.job_mut(id)?;
        let options = if grace > Duration::ZERO {
            KillOptions::graceful(grace)
        } else {
            KillOptions::new()
        }
        .reap_root(false);
        let job = &self.jobs[id];
        let mut belonging = JobBelonging {
            marks: Marks::of(job),
            me: self.me,
        };
        // No roots of our own: the engine's first look at the job's marks
        // names them (one scan of the tags, not two), and it follows the
        // trees below.
        let mut kill = kill_belonging(&mut self.table, &[], &options, &mut belonging)?;
        if let Some(cgroup) = &job.cgroup {
            end_in_cgroup(cgroup, &mut kill, &mut self.table)?;
        }
        // The kill's exits, seen.
        self.table.refresh()?;
        self.reap_adopted()?;
        let exit = self.reap_root(id)?;
        self.finish(id, JobEnd::Stopped)?;
        Ok(JobStopReport {
            job: id.clone(),
            kill,
            exit,
        })
    }

    /// Waits until every member of job `id` is gone, for at most `timeout`
    /// (`None`: no limit), and returns the root's exit status; `None` on
    /// timeout. Event-driven: `cgroup.events` where the job has a cgroup,
    /// else each member's pidfd.
    pub fn wait(
        &mut self,
        id: &JobId,
        timeout: Option<Duration>,
    ) -> Result<Option<ExitStatus>, SupervisorError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let left = |deadline: Option<Instant>| {
            deadline.map_or(Duration::from_secs(365 * 24 * 3600), |d| {
                d.saturating_duration_since(Instant::now())
            })
        };
        let mut empty_before = false;
        loop {
            if self.job_mut(id)?.finished {
                return Ok(self.jobs[id].exit);
            }
            if let Some(cgroup) = &self.jobs[id].cgroup
                && !cgroup.wait_empty(left(deadline))?
            {
                return Ok(None);
            }
            let member = match self.wait_step(id, &mut empty_before)? {
                WaitStep::Ended(status) => return Ok(status),
                WaitStep::Again => continue,
                WaitStep::Member(member) => member,
            };
            let remaining = left(deadline);
            match ProcessHandle::open(member) {
                Ok(handle) => {
                    if !handle.wait_timeout(remaining)? {
                        return Ok(None);
                    }
                }
                Err(Error::NotFound { .. }) => {}
                Err(other) => return Err(other.into()),
            }
            if remaining == Duration::ZERO {
                return Ok(None);
            }
        }
    }

    /// One look of a wait: the job's end (its members all gone: the root's
    /// status collected and the end written down), or a member to wait for.
    /// An empty look is believed only when the one before it was empty too
    /// (`empty_before`): a member that forks and exits between reading the
    /// pid list and reading its own state leaves its child out of that
    /// look, but not out of the next (the child exists before its parent's
    /// exit).
    pub(super) fn wait_step(
        &mut self,
        id: &JobId,
        empty_before: &mut bool,
    ) -> Result<WaitStep, SupervisorError> {
        if self.job_mut(id)?.finished {
            return Ok(WaitStep::Ended(self.jobs[id].exit));
        }
        let look = self.look()?;
        let members = self.find_members(id, &look)?;
        self.reap_adopted()?;
        let Some(member) = members.first() else {
            if !*empty_before {
                *empty_before = true;
                return Ok(WaitStep::Again);
            }
            let status = self.reap_root(id)?;
            self.finish(id, JobEnd::Exited(status.and_then(|s| s.code())))?;
            return Ok(WaitStep::Ended(status));
        };
        *empty_before = false;
        Ok(WaitStep::Member(member.process.identity()))
    }

    /// Like [`wait`](Supervisor::wait) without blocking: the root's exit
    /// status if every member is gone, else `None`.
    pub fn try_wait(&mut self, id: &JobId) -> Result<Option<ExitStatus>, SupervisorError> {
        if self.job_mut(id)?.finished {
            return Ok(self.jobs[id].exit);
        }
        self.wait(id, Some(Duration::ZERO))
    }

    /// Stops every running job not marked
    /// [`keep_running`](Supervisor::keep_running) with `grace`; the journal
    /// marks the kept ones so. What dropping the supervisor does, with its
    /// shutdown grace.
    pub fn shutdown(&mut self, grace: Duration) -> Result<Vec<JobStopReport>, SupervisorError> {
        let ids: Vec<JobId> = self
            .jobs
            .values()
            .filter(|job| !job.finished)
            .map(|job| job.id.clone())
            .collect();
        let mut reports = Vec::new();
        let mut first_error = None;
        for id in ids {
            let outcome = if self.jobs[&id].keep_running {
                self.keep(&id)
            } else {
                self.stop(&id, grace).map(|report| reports.push(report))
            };
            if let Err(error) = outcome {
                first_error.get_or_insert(error);
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(reports),
        }
    }

    fn keep(&mut self, id: &JobId) -> Result<(), SupervisorError> {
        let job = self.job_mut(id)?;
        job.finished = true;
        if let Some(cgroup) = job.cgroup.take() {
            job.containment.cgroup = Some(cgroup.leave());
        }
        if let Some(journal) = self.journal.as_mut() {
            journal.ended(id, JobEnd::Kept)?;
        }
        Ok(())
    }

    /// Collects the root's exit status, if it has exited (a stop has just
    /// killed it; a wait found no member left).
    pub(super) fn reap_root(&mut self, id: &JobId) -> Result<Option<ExitStatus>, SupervisorError> {
        let job = self
            .jobs
            .get_mut(id)
            .ok_or_else(|| SupervisorError::NoSuchJob(id.clone()))?;
        if job.exit.is_none() {
            let handle = ProcessHandle::open(job.root);
            let exited = match &handle {
                Ok(handle) => handle.wait_timeout(KILL_WAIT)?,
                Err(_) => true,
            };
            job.exit = match &mut job.child {
                Some(child) => child
                    .try_wait()
                    .map_err(|source| Error::Io { path: None, source })?,
                // Adopted: its root became our child only if it was
                // orphaned to our subreaper; else the exit event's word.
                None => match handle.as_ref().map(ProcessHandle::try_reap) {
                    Ok(Ok(Some(status))) => Some(status),
                    _ => self.exits.status_of(job.root, exited),
                },
            };
        }
        Ok(job.exit)
    }

    /// Collects the exit status of every adopted orphan that has exited and
    /// was seen as a job's member or is in a job's process group; the
    /// application's other children keep theirs. Reads the table as last
    /// refreshed.
    pub(super) fn reap_adopted(&mut self) -> Result<(), SupervisorError> {
        let zombies: Vec<ProcessIdentity> = self
            .table
            .children(self.me.pid())
            .into_iter()
            .filter(|child| child.state().has_exited())
            .filter(|child| {
                let identity = child.identity();
                self.jobs.values().any(|job| {
                    job.root != identity
                        && (job.seen.contains(&identity)
                            || child.process_group() == Some(job.root.pid()))
                })
            })
            .map(|child| child.identity())
            .collect();
        for identity in zombies {
            if let Ok(handle) = ProcessHandle::open(identity) {
                reap_if_ours(&handle)?;
            }
        }
        Ok(())
    }

    /// Marks job `id` finished, removes its cgroup and writes `end` down.
    pub(super) fn finish(&mut self, id: &JobId, end: JobEnd) -> Result<(), SupervisorError> {
        let job = self.job_mut(id)?;
        job.finished = true;
        if let Some(cgroup) = job.cgroup.take() {
            // Still populated (a member survived): left for recover.
            let _ = cgroup.remove();
        }
        if let Some(journal) = self.journal.as_mut() {
            journal.ended(id, end)?;
        }
        Ok(())
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let grace = self.shutdown_grace;
        // Nobody is left to tell; what fails is found by the next recover.
        let _ = self.shutdown(grace);
    }
}

/// What the kill engine left of a job with a cgroup (members it may not
/// signal: a setuid helper; anything that escaped) goes by `cgroup.kill`,
/// which the kernel delivers whatever the member's uid. Those then proven
/// gone move to [`KillReport::killed`]; the rest stay where they were.
pub(super) fn end_in_cgroup<S: ProcessSource>(
    cgroup: &JobCgroup,
    kill: &mut KillReport,
    table: &mut ProcessTable<S>,
) -> Result<(), SupervisorError> {
    if !cgroup.is_populated()? {
        return Ok(());
    }
    // Without cgroup.kill (kernels before 5.14) the engine's word stands.
    if !cgroup.kill()? {
        return Ok(());
    }
    cgroup.wait_empty(KILL_WAIT)?;
    let source = table.source_mut();
    let mut ended = Vec::new();
    for list in [&mut kill.survived, &mut kill.denied, &mut kill.escaped] {
        let mut left = Vec::with_capacity(list.len());
        for identity in list.drain(..) {
            if source.is_alive(identity)? {
                left.push(identity);
            } else {
                ended.push(identity);
            }
        }
        *list = left;
    }
    kill.killed.extend(ended.into_iter().map(|identity| Killed {
        identity,
        signal: Signal::Kill,
    }));
    Ok(())
}

/// Collects `handle`'s exit status if it is our child and has exited.
fn reap_if_ours(handle: &ProcessHandle) -> Result<(), SupervisorError> {
    match handle.try_reap() {
        Ok(_) | Err(Error::NotChild { .. } | Error::NotFound { .. }) => Ok(()),
        Err(other) => Err(other.into()),
    }
}
