//! Ending jobs: stop (polite signal, grace, kill), wait, and the stop of
//! every job when the supervisor goes.

use std::collections::{HashMap, HashSet};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use super::{
    JobEnd, JobId, JobStopReport, MemberFate, StopMethod, StoppedMember, Supervisor,
    SupervisorError,
};
use crate::signal::{KillOptions, KillReport, ProcessHandle, Signal, kill_trees};
use crate::supervisor::cgroup::{JobCgroup, KillMethod};
use crate::{Error, Pid, ProcessIdentity, ProcessSource};

/// How long a stop waits for killed members to be gone.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How long a freeze may take to settle before the kill goes ahead anyway.
const FREEZE_WAIT: Duration = Duration::from_secs(5);
/// Tree-kill rounds in a stop without a cgroup: a member that escaped the
/// first (a daemon started by a `SIGTERM` handler) is caught by the next.
const ROUNDS: usize = 3;

impl Supervisor {
    /// Stops job `id`: `SIGTERM` to every member, up to `grace` for them to
    /// exit, then `SIGKILL` to whatever is left (with a zero `grace`,
    /// `SIGKILL` at once). Through the job's cgroup where it has one (frozen
    /// while its members are listed and killed, so none forks away); else a
    /// tree kill of every member, which stops them before it kills. Collects
    /// the root's exit status and the orphans' we adopted, removes the
    /// cgroup, and writes the end down.
    pub fn stop(&mut self, id: &JobId, grace: Duration) -> Result<JobStopReport, SupervisorError> {
        self.job_mut(id)?;
        let report = if self.jobs[id].cgroup.is_some() {
            self.stop_cgroup(id, grace)?
        } else {
            self.stop_tree(id, grace)?
        };
        self.finish(id, JobEnd::Stopped)?;
        Ok(report)
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
        // An empty look is believed only when the one before it was empty
        // too: a member that forks and exits between reading the pid list
        // and reading its own state leaves its child out of that look, but
        // not out of the next (the child exists before its parent's exit).
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
            let look = self.look()?;
            let members = self.find_members(id, &look)?;
            self.reap_adopted()?;
            let Some(member) = members.first() else {
                if !empty_before {
                    empty_before = true;
                    continue;
                }
                let status = self.reap_root(id)?;
                self.finish(id, JobEnd::Exited(status.and_then(|s| s.code())))?;
                return Ok(status);
            };
            empty_before = false;
            let remaining = left(deadline);
            match ProcessHandle::open(member.process.identity()) {
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

    fn stop_cgroup(
        &mut self,
        id: &JobId,
        grace: Duration,
    ) -> Result<JobStopReport, SupervisorError> {
        let look = self.look()?;
        let before = self.find_members(id, &look)?;
        if grace > Duration::ZERO {
            for member in &before {
                polite(member.process.identity())?;
            }
            if let Some(cgroup) = &self.jobs[id].cgroup {
                cgroup.wait_empty(grace)?;
            }
        }
        let job = &self.jobs[id];
        let cgroup = job
            .cgroup
            .as_ref()
            .ok_or_else(|| SupervisorError::NoSuchJob(id.clone()))?;
        let (method, pins) = kill_pinned(cgroup, self.table.source_mut())?;
        let method = match method {
            KillMethod::CgroupKill => StopMethod::CgroupKill,
            _ => StopMethod::CgroupFreeze,
        };
        // Members outside the cgroup (a tagged process moved out by root)
        // go by a tree kill.
        let outside: Vec<ProcessIdentity> = before
            .iter()
            .filter(|m| !m.found_by.cgroup)
            .map(|m| m.process.identity())
            .filter(|identity| !pins.iter().any(|p| p.identity() == *identity))
            .collect();
        let tree = if outside.is_empty() {
            None
        } else {
            Some(kill_trees(
                &mut self.table,
                &outside,
                &KillOptions::new().reap_root(false),
            )?)
        };
        let root = self.jobs[id].root;
        // Members not listed at the freeze had exited by then.
        let left = if grace > Duration::ZERO {
            MemberFate::Terminated
        } else {
            MemberFate::AlreadyGone
        };
        let mut fates: HashMap<ProcessIdentity, MemberFate> = HashMap::new();
        for member in &before {
            fates.insert(member.process.identity(), left);
        }
        for pin in &pins {
            let fate = if pin.has_exited()? {
                MemberFate::Killed
            } else {
                MemberFate::Survived
            };
            fates.insert(pin.identity(), fate);
            if pin.identity() != root {
                reap_if_ours(pin)?;
            }
        }
        if let Some(tree) = &tree {
            record_tree(&mut fates, tree, &HashSet::new());
            for identity in tree.killed.iter().map(|k| k.identity) {
                if let Ok(handle) = ProcessHandle::open(identity) {
                    reap_if_ours(&handle)?;
                }
            }
        }
        // The kill's exits, seen.
        self.table.refresh()?;
        self.reap_adopted()?;
        let exit = self.reap_root(id)?;
        Ok(JobStopReport {
            job: id.clone(),
            method,
            members: into_members(fates),
            exit,
        })
    }

    fn stop_tree(&mut self, id: &JobId, grace: Duration) -> Result<JobStopReport, SupervisorError> {
        let root = self.jobs[id].root;
        let mut fates: HashMap<ProcessIdentity, MemberFate> = HashMap::new();
        // Whether the rounds ended on a look that found nothing, or on a
        // kill that left something (recorded): otherwise they ran out.
        let mut ended = false;
        for round in 0..ROUNDS {
            let look = self.look()?;
            let members = self.find_members(id, &look)?;
            if members.is_empty() {
                ended = true;
                break;
            }
            let pids: Vec<Pid> = members.iter().map(|m| m.process.pid()).collect();
            let roots: Vec<ProcessIdentity> = self
                .table
                .outermost(pids)
                .into_iter()
                .map(|p| p.identity())
                .collect();
            // Roots that are our children keep their status for us to
            // collect; pin them first.
            let ours: Vec<ProcessHandle> = roots
                .iter()
                .filter(|r| **r != root && look.adopted.contains(r))
                .filter_map(|r| ProcessHandle::open(*r).ok())
                .collect();
            let options = if grace > Duration::ZERO && round == 0 {
                KillOptions::graceful(grace)
            } else {
                KillOptions::new()
            };
            let report = kill_trees(&mut self.table, &roots, &options.reap_root(false))?;
            let polite: HashSet<ProcessIdentity> = report
                .killed
                .iter()
                .filter(|k| k.signal != Signal::Kill)
                .map(|k| k.identity)
                .collect();
            record_tree(&mut fates, &report, &polite);
            for handle in &ours {
                reap_if_ours(handle)?;
            }
            // Another look catches what left the trees during the kill (an
            // unsettled tree, an escapee: they are members still).
            if report.survived.is_empty() && report.denied.is_empty() && report.refused.is_empty() {
                continue;
            }
            ended = true;
            break;
        }
        if !ended {
            // Every round found more: what a last look finds is left running.
            let look = self.look()?;
            for member in self.find_members(id, &look)? {
                fates.insert(member.process.identity(), MemberFate::Survived);
            }
        }
        // The kill's exits, seen.
        self.table.refresh()?;
        self.reap_adopted()?;
        let exit = self.reap_root(id)?;
        Ok(JobStopReport {
            job: id.clone(),
            method: StopMethod::TreeKill,
            members: into_members(fates),
            exit,
        })
    }

    /// Collects the root's exit status, if it has exited (a stop has just
    /// killed it; a wait found no member left).
    pub(super) fn reap_root(&mut self, id: &JobId) -> Result<Option<ExitStatus>, SupervisorError> {
        let job = self.job_mut(id)?;
        if job.exit.is_none() {
            let handle = ProcessHandle::open(job.root);
            if let Ok(handle) = &handle {
                handle.wait_timeout(KILL_WAIT)?;
            }
            job.exit = job
                .child
                .try_wait()
                .map_err(|source| Error::Io { path: None, source })?;
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

/// Freezes `cgroup` (frozen, its list is complete: nobody in it can fork),
/// pins every member, kills them all, thaws, and waits for the cgroup to
/// empty. Returns how it killed and the pins, to see and collect the exits.
pub(super) fn kill_pinned(
    cgroup: &JobCgroup,
    source: &mut impl ProcessSource,
) -> Result<(KillMethod, Vec<ProcessHandle>), SupervisorError> {
    cgroup.freeze(FREEZE_WAIT)?;
    let boot = source.boot_id();
    let mut pins = Vec::new();
    for pid in cgroup.members().unwrap_or_default() {
        if let Ok(sample) = source.sample(pid)
            && let Ok(handle) = ProcessHandle::open(sample.identity(boot))
        {
            pins.push(handle);
        }
    }
    let killed = cgroup.kill();
    // Thawed whatever the kill did: a frozen job must not be left behind.
    let thawed = cgroup.thaw();
    let method = killed?;
    thawed?;
    cgroup.wait_empty(KILL_WAIT)?;
    Ok((method, pins))
}

/// `SIGTERM`, then `SIGCONT` so a stopped member can act on it.
fn polite(identity: ProcessIdentity) -> Result<(), SupervisorError> {
    match ProcessHandle::open(identity) {
        Ok(handle) => {
            handle.signal(Signal::Term)?;
            handle.signal(Signal::Cont)?;
            Ok(())
        }
        Err(Error::NotFound { .. } | Error::PermissionDenied { .. }) => Ok(()),
        Err(other) => Err(other.into()),
    }
}

/// Collects `handle`'s exit status if it is our child and has exited.
fn reap_if_ours(handle: &ProcessHandle) -> Result<(), SupervisorError> {
    match handle.try_reap() {
        Ok(_) | Err(Error::NotChild { .. } | Error::NotFound { .. }) => Ok(()),
        Err(other) => Err(other.into()),
    }
}

/// Adds a tree kill's outcomes to `fates`; `polite` are the members that
/// ended on the polite signal.
fn record_tree(
    fates: &mut HashMap<ProcessIdentity, MemberFate>,
    report: &KillReport,
    polite: &HashSet<ProcessIdentity>,
) {
    for killed in &report.killed {
        let fate = if polite.contains(&killed.identity) {
            MemberFate::Terminated
        } else {
            MemberFate::Killed
        };
        fates.insert(killed.identity, fate);
    }
    for identity in &report.already_gone {
        fates.entry(*identity).or_insert(MemberFate::AlreadyGone);
    }
    // Escapees are alive: whether or not they were members, they are not
    // stopped.
    for identity in report.survived.iter().chain(&report.escaped) {
        fates.insert(*identity, MemberFate::Survived);
    }
    for identity in &report.denied {
        fates.insert(*identity, MemberFate::Denied);
    }
    for (identity, _) in &report.refused {
        fates.insert(*identity, MemberFate::Refused);
    }
}

fn into_members(fates: HashMap<ProcessIdentity, MemberFate>) -> Vec<StoppedMember> {
    let mut members: Vec<StoppedMember> = fates
        .into_iter()
        .map(|(identity, fate)| StoppedMember { identity, fate })
        .collect();
    members.sort_by_key(|m| m.identity.pid());
    members
}
