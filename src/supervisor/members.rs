//! Which processes are a job's: found in one look at the table by what
//! marks them (cgroup, tag, root, adoption), and the trees below those.
//! The supervisor's members, its stop and its recover all ask here, and so
//! does [`journaled_jobs`], for the jobs a journal holds, whoever started
//! them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use super::cgroup::JobCgroup;
use super::{FoundBy, Job, JobId, JobRecord, JobUsage, Member, tag};
use crate::signal::Belonging;
use crate::table::ProcessTable;
use crate::{Pid, ProcessIdentity, ProcessSource, Result};

/// One look at the table as just refreshed, shared by every job it serves.
pub(super) struct Look {
    /// Our children that we did not spawn: orphans adopted from the jobs'
    /// trees (or the application's other children).
    pub(super) adopted: Vec<ProcessIdentity>,
    /// The job tag of every process that carries one, read once.
    pub(super) tags: HashMap<ProcessIdentity, Vec<u8>>,
}

impl Look {
    /// Refreshes `table` and looks: the children of `me` that are not one
    /// of the jobs' `roots`, and every process's job tag.
    pub(super) fn take<S: ProcessSource>(
        table: &mut ProcessTable<S>,
        me: ProcessIdentity,
        roots: &[ProcessIdentity],
    ) -> Result<Look> {
        table.refresh()?;
        let adopted = table
            .children(me.pid())
            .into_iter()
            .filter(|child| !child.state().has_exited())
            .map(|child| child.identity())
            .filter(|identity| !roots.contains(identity))
            .collect();
        let tags = read_tags(table, Some(me));
        Ok(Look { adopted, tags })
    }
}

/// The job tag of every process in `table` that carries one (but `skip`),
/// read once for all the jobs a look serves.
fn read_tags<S: ProcessSource>(
    table: &mut ProcessTable<S>,
    skip: Option<ProcessIdentity>,
) -> HashMap<ProcessIdentity, Vec<u8>> {
    let candidates: Vec<ProcessIdentity> = table
        .iter()
        .filter(|p| !p.is_kernel_thread() && Some(p.identity()) != skip)
        .map(|p| p.identity())
        .collect();
    let mut tags = HashMap::new();
    for identity in candidates {
        // Gone, unreadable, or another user's: no tag known.
        if let Ok(Some(environ)) = table.source_mut().environ(identity)
            && let Some(tag) = tag::job_of(&environ)
        {
            tags.insert(identity, tag.to_vec());
        }
    }
    tags
}

/// What marks a process as one job's.
pub(super) struct Marks<'j> {
    /// The job: its tag's value.
    pub(super) id: &'j JobId,
    /// The process it started as (its pid is the job's process group), if
    /// known.
    pub(super) root: Option<ProcessIdentity>,
    /// Its cgroup, if it has one.
    pub(super) cgroup: Option<&'j JobCgroup>,
    /// Every process seen as a member before.
    pub(super) seen: Option<&'j HashSet<ProcessIdentity>>,
}

impl<'j> Marks<'j> {
    /// The marks of a job of ours.
    pub(super) fn of(job: &'j Job) -> Marks<'j> {
        Marks {
            id: &job.id,
            root: Some(job.root),
            cgroup: job.cgroup.as_ref(),
            seen: Some(&job.seen),
        }
    }

    /// The processes marked in themselves, not through a tree: listed in
    /// the cgroup, the root, carrying the tag, and orphans we adopted that
    /// were seen in the job before or are still in its process group (the
    /// tag lost). Never an orphan merely for being our child: the
    /// application's own children are too. Reads `table` as last refreshed.
    fn direct<S: ProcessSource>(
        &self,
        table: &ProcessTable<S>,
        look: &Look,
    ) -> BTreeMap<Pid, (ProcessIdentity, FoundBy)> {
        let mut found: BTreeMap<Pid, (ProcessIdentity, FoundBy)> = BTreeMap::new();
        if let Some(cgroup) = self.cgroup {
            // A cgroup that is gone has no members.
            for pid in cgroup.members().unwrap_or_default() {
                if let Some(process) = table.get(pid) {
                    mark(&mut found, process.identity(), |f| f.cgroup = true);
                }
            }
        }
        if let Some(root) = self.root
            && table.get_identity(root).is_some()
        {
            mark(&mut found, root, |f| f.tree = true);
        }
        for (identity, tag) in &look.tags {
            if tag.as_slice() == self.id.as_str().as_bytes() {
                mark(&mut found, *identity, |f| f.tag = true);
            }
        }
        for orphan in &look.adopted {
            let seen = self.seen.is_some_and(|seen| seen.contains(orphan));
            let in_group = self.root.is_some_and(|root| {
                table
                    .get_identity(*orphan)
                    .is_some_and(|p| p.process_group() == Some(root.pid()))
            });
            if seen || in_group {
                mark(&mut found, *orphan, |f| f.adopted = true);
            }
        }
        found
    }

    /// The live members: what [`direct`](Self::direct) finds and
    /// everything below it.
    pub(super) fn with_trees<S: ProcessSource>(
        &self,
        table: &ProcessTable<S>,
        look: &Look,
    ) -> Vec<Member> {
        let mut found = self.direct(table, look);
        let tops: Vec<Pid> = found.keys().copied().collect();
        for top in tops {
            for below in table.descendants(top) {
                mark(&mut found, below.identity(), |f| f.tree = true);
            }
        }
        found
            .into_values()
            .filter_map(|(identity, found_by)| {
                let process = table.get_identity(identity)?;
                (!process.state().has_exited()).then(|| Member {
                    process: process.clone(),
                    found_by,
                })
            })
            .collect()
    }
}

fn mark(
    found: &mut BTreeMap<Pid, (ProcessIdentity, FoundBy)>,
    identity: ProcessIdentity,
    how: fn(&mut FoundBy),
) {
    let entry = found
        .entry(identity.pid())
        .or_insert((identity, FoundBy::default()));
    how(&mut entry.1);
}

/// A job's marks as the kill engine's [`Belonging`]: each look refreshes
/// the table and names the live processes marked as the job's, so that a
/// member that left the tree (reparented, a new session) is killed too.
pub(super) struct JobBelonging<'j> {
    pub(super) marks: Marks<'j>,
    pub(super) me: ProcessIdentity,
}

impl<S: ProcessSource> Belonging<S> for JobBelonging<'_> {
    fn look(&mut self, table: &mut ProcessTable<S>) -> Result<Vec<ProcessIdentity>> {
        let roots: Vec<ProcessIdentity> = self.marks.root.into_iter().collect();
        let look = Look::take(table, self.me, &roots)?;
        Ok(self
            .marks
            .direct(table, &look)
            .into_values()
            .map(|(identity, _)| identity)
            .filter(|identity| {
                table
                    .get_identity(*identity)
                    .is_some_and(|p| !p.state().has_exited())
            })
            .collect())
    }
}

/// What `members` use, with the cgroup's `memory.current` where it counts.
pub(super) fn usage_of(members: &[Member], cgroup_memory: Option<u64>) -> JobUsage {
    JobUsage {
        processes: members.len(),
        cpu_time: members.iter().map(|m| m.process.cpu_time()).sum(),
        rss_bytes: members.iter().map(|m| m.process.rss_bytes()).sum(),
        cgroup_memory,
    }
}

/// Whether the supervisor instance that started `id` (the pid and start
/// time in it) runs in `table`, as last refreshed.
///
/// ```
/// use proctrack::supervisor::{instance_alive, JobId};
/// use proctrack::table::ProcessTable;
/// let table = ProcessTable::new()?;
/// let me = proctrack::process(proctrack::Pid::current())?;
/// let id: JobId = format!("x.{}-{}.1", me.pid(), me.start_time().as_raw()).parse()?;
/// assert!(instance_alive(&table, &id));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn instance_alive<S: ProcessSource>(table: &ProcessTable<S>, id: &JobId) -> bool {
    let (pid, start) = id.instance();
    table
        .get(pid)
        .is_some_and(|p| p.start_time() == start && !p.state().has_exited())
}

/// A job a journal holds, as a process table shows it now.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct JournaledJob {
    /// What the journal says of it.
    pub record: JobRecord,
    /// Whether the supervisor instance that started it (the pid and start
    /// time in its [`JobId`], or the instance that
    /// [adopted](super::Supervisor::adopt) it: [`JobRecord::owner`]) still
    /// runs. A job whose supervisor is gone is orphaned: nothing stops it
    /// when it ends.
    pub supervisor_alive: bool,
    /// Whether the job started in this boot; a job of an earlier boot has
    /// nothing left running, only its record.
    pub this_boot: bool,
    /// Its live members, ascending pid, each with how it was found.
    pub members: Vec<Member>,
    /// What those members use.
    pub usage: JobUsage,
}

impl JournaledJob {
    /// True when its supervisor is gone: nothing will stop it.
    pub fn is_orphaned(&self) -> bool {
        !self.supervisor_alive
    }
}

/// Which job a process belongs to, and how that was found: what
/// `proctrack tree` and the tree view show beside a member.
///
/// ```
/// use proctrack::supervisor::{FoundBy, JobMark};
/// let mut found_by = FoundBy::default();
/// found_by.tag = true;
/// let mark = JobMark { job: "dev.42-7.1".parse()?, found_by };
/// assert_eq!(mark.to_string(), "[job dev.42-7.1: tag]");
/// # Ok::<(), proctrack::supervisor::BadJobId>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobMark {
    /// The job.
    pub job: JobId,
    /// How the process was found to be the job's.
    pub found_by: FoundBy,
}

impl std::fmt::Display for JobMark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[job {}: {}]", self.job, self.found_by.ways().join(","))
    }
}

/// The mark of every live member of `jobs`, by identity.
pub fn job_marks(jobs: &[JournaledJob]) -> HashMap<ProcessIdentity, JobMark> {
    let mut marks = HashMap::new();
    for job in jobs {
        for member in &job.members {
            marks.insert(
                member.process.identity(),
                JobMark {
                    job: job.record.id.clone(),
                    found_by: member.found_by,
                },
            );
        }
    }
    marks
}

/// Every job of `records` (a [`Journal`](super::Journal)'s, or a
/// [`StateDir`](super::StateDir)'s scan) as `table` shows it, as last
/// refreshed: whether its supervisor runs, and its live members found by
/// the job's cgroup (its `cgroup.procs`), its tag (read through the
/// table's source) and its root's tree, as a
/// [`Supervisor`](super::Supervisor) finds its own jobs' members. Opens
/// nothing under `/proc` but through `table`.
///
/// ```
/// use proctrack::supervisor::{journaled_jobs, Cgroups, StateDir, Supervisor, SupervisorOptions};
/// use proctrack::table::ProcessTable;
///
/// let dir = tempfile::tempdir()?;
/// let state = StateDir::new(dir.path());
/// let mut supervisor = Supervisor::new(
///     SupervisorOptions::new("doc").cgroups(Cgroups::Off).journal(state.clone()),
/// )?;
/// let mut command = supervisor.command("sh");
/// command.args(["-c", "sleep 60 & exec sleep 60"]);
/// let id = supervisor.spawn(command)?;
///
/// let mut table = ProcessTable::new()?;
/// let jobs = journaled_jobs(&mut table, state.scan()?.records);
/// assert_eq!(jobs[0].record.id, id);
/// assert!(jobs[0].supervisor_alive); // this process
/// assert!(jobs[0].members.iter().all(|m| m.found_by.tag));
/// # supervisor.stop(&id, std::time::Duration::ZERO)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn journaled_jobs<S: ProcessSource>(
    table: &mut ProcessTable<S>,
    records: Vec<JobRecord>,
) -> Vec<JournaledJob> {
    if records.is_empty() {
        return Vec::new();
    }
    let look = Look {
        adopted: Vec::new(),
        tags: read_tags(table, None),
    };
    let boot = table.boot_id();
    records
        .into_iter()
        .map(|record| {
            let this_boot = record.root.boot_id() == boot;
            // A cgroup counts only when it is named after the job, as
            // recover opens it; it is let go of, never removed, here.
            let cgroup = record
                .cgroup
                .as_deref()
                .filter(|dir| named_after(dir, &record.id))
                .and_then(|dir| JobCgroup::open(dir.parent()?, record.id.as_str()).ok());
            let marks = Marks {
                id: &record.id,
                root: Some(record.root),
                cgroup: cgroup.as_ref(),
                seen: None,
            };
            let members = if this_boot {
                marks.with_trees(table, &look)
            } else {
                Vec::new()
            };
            let memory = cgroup
                .as_ref()
                .and_then(|cgroup| cgroup.memory_current().ok().flatten());
            cgroup.map(JobCgroup::leave);
            JournaledJob {
                // An adopted job's supervisor is its adopter.
                supervisor_alive: this_boot
                    && table
                        .get_identity(record.owner_instance())
                        .is_some_and(|p| !p.state().has_exited()),
                this_boot,
                usage: usage_of(&members, memory),
                members,
                record,
            }
        })
        .collect()
}

/// Whether `dir` is the cgroup of job `id` by name (`proctrack-<id>`).
fn named_after(dir: &Path, id: &JobId) -> bool {
    dir.file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_prefix("proctrack-"))
        == Some(id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::TableOptions;
    use crate::{BootId, MemorySource, ProcessInfo, StartTime, State};

    const BOOT: BootId = BootId::from_bytes([9; 16]);

    fn id(pid: i32) -> ProcessIdentity {
        ProcessIdentity::new(
            BOOT,
            Pid::try_from(pid).expect("test pid"),
            StartTime::from_raw(pid as u64),
        )
    }

    /// `(pid, parent, process group, state)`; tagged pids carry `job`'s tag.
    fn table(
        rows: &[(i32, i32, i32, State)],
        tagged: &[(i32, &JobId)],
    ) -> ProcessTable<MemorySource> {
        let mut source = MemorySource::new(BOOT);
        for &(pid, parent, group, state) in rows {
            source.insert(
                ProcessInfo::builder(id(pid))
                    .parent(Pid::try_from(parent).ok())
                    .group_and_session(Pid::try_from(group).ok(), Pid::try_from(group).ok())
                    .state(state)
                    .build(),
            );
        }
        for (pid, job) in tagged {
            let environ = format!("HOME=/root\0{}={}\0", tag::JOB_VAR, job.as_str());
            source.set_environ(id(*pid), environ.into_bytes());
        }
        ProcessTable::with_source(source, TableOptions::default()).expect("memory table")
    }

    fn pids(members: &[Member]) -> Vec<i32> {
        members.iter().map(|m| m.process.pid().as_raw()).collect()
    }

    const R: State = State::Running;

    // 1 ── 50 (us, the supervisor)
    //        ├─ 100 (the job's root, group 100) ── 101 ── 102
    //        ├─ 200 (an orphan adopted from the job: group 100, no tag)
    //        ├─ 300 (the application's own child, group 50)
    //        └─ 310 (an orphan seen in the job before, group 310)
    // 1 ── 400 (a daemon that cleared nothing: tagged, its own session) ── 401
    // 1 ── 500 (another job's tagged daemon)
    // 1 ── 600 (tagged, but a zombie)
    #[test]
    fn marks_find_root_tag_and_adopted_orphans_and_the_trees_below() {
        let me = id(50);
        let job = JobId::new("dev", me, 1);
        let other = JobId::new("dev", me, 2);
        let mut table = table(
            &[
                (1, 0, 1, R),
                (50, 1, 50, R),
                (100, 50, 100, R),
                (101, 100, 100, R),
                (102, 101, 100, R),
                (200, 50, 100, R),
                (300, 50, 50, R),
                (310, 50, 310, R),
                (400, 1, 400, R),
                (401, 400, 400, R),
                (500, 1, 500, R),
                (600, 1, 600, State::Zombie),
            ],
            &[(100, &job), (400, &job), (500, &other), (600, &job)],
        );
        let seen: HashSet<ProcessIdentity> = [id(310)].into();
        let marks = Marks {
            id: &job,
            root: Some(id(100)),
            cgroup: None,
            seen: Some(&seen),
        };
        let look = Look::take(&mut table, me, &[id(100)]).expect("look");
        let members = marks.with_trees(&table, &look);
        assert_eq!(pids(&members), vec![100, 101, 102, 200, 310, 400, 401]);
        let by = |pid: i32| {
            members
                .iter()
                .find(|m| m.process.pid().as_raw() == pid)
                .map(|m| m.found_by)
                .expect("a member")
        };
        assert!(by(100).tag && by(100).tree);
        assert!(by(200).adopted && !by(200).tag);
        assert!(by(310).adopted);
        assert!(by(400).tag);
        assert!(by(401).tree && !by(401).tag);

        // The engine's view: only what is marked in itself, alive.
        let mut belonging = JobBelonging { marks, me };
        let named = belonging.look(&mut table).expect("look");
        let mut named: Vec<i32> = named.iter().map(|i| i.pid().as_raw()).collect();
        named.sort_unstable();
        assert_eq!(named, vec![100, 200, 310, 400]);
    }

    #[test]
    fn a_dead_instances_job_is_found_by_its_tag_without_a_root() {
        let me = id(50);
        let dead = JobId::new("dev", id(40), 7);
        let mut table = table(
            &[
                (1, 0, 1, R),
                (50, 1, 50, R),
                (700, 1, 700, R),
                (701, 700, 700, R),
            ],
            &[(700, &dead)],
        );
        let marks = Marks {
            id: &dead,
            root: None,
            cgroup: None,
            seen: None,
        };
        let look = Look::take(&mut table, me, &[]).expect("look");
        assert_eq!(pids(&marks.with_trees(&table, &look)), vec![700, 701]);
    }

    /// 50 is a live supervisor, 60 was one; a record of an earlier boot
    /// names pid 100 too, which is not its process.
    #[test]
    fn journaled_jobs_tell_live_from_orphaned_and_earlier_boots() {
        let live = JobId::new("dev", id(50), 1);
        let dead = JobId::new("dev", id(60), 1);
        let mut table = table(
            &[
                (1, 0, 1, R),
                (50, 1, 50, R),
                (100, 50, 100, R),
                (101, 100, 100, R),
                (200, 1, 200, R),
                (201, 200, 200, R),
                (202, 1, 202, R),
            ],
            &[(101, &live), (201, &dead), (202, &dead)],
        );
        let record = |job: &JobId, root: ProcessIdentity| {
            JobRecord::new(job.clone(), root, root.pid(), None, Vec::new())
        };
        let before = ProcessIdentity::new(
            BootId::from_bytes([1; 16]),
            Pid::try_from(100).expect("pid"),
            StartTime::from_raw(100),
        );
        let jobs = journaled_jobs(
            &mut table,
            vec![
                record(&live, id(100)),
                record(&dead, id(200)),
                record(&JobId::new("dev", id(70), 1), before),
            ],
        );
        assert!(jobs[0].supervisor_alive && jobs[0].this_boot);
        assert_eq!(pids(&jobs[0].members), [100, 101]);
        assert!(jobs[1].is_orphaned() && jobs[1].this_boot);
        assert_eq!(pids(&jobs[1].members), [200, 201, 202]);
        let ways: Vec<Vec<&str>> = jobs[1].members.iter().map(|m| m.found_by.ways()).collect();
        assert_eq!(ways, [vec!["tree"], vec!["tag", "tree"], vec!["tag"]]);
        assert_eq!(jobs[1].usage.processes, 3);
        assert!(jobs[2].is_orphaned() && !jobs[2].this_boot);
        assert!(jobs[2].members.is_empty(), "{:?}", jobs[2].members);

        // The dead instance's job, adopted by the live one: not orphaned.
        let mut adopted = record(&dead, id(200));
        adopted.owner = Some(id(50));
        let jobs = journaled_jobs(&mut table, vec![adopted]);
        assert!(jobs[0].supervisor_alive, "its adopter runs");
    }

    /// A job's stop as the supervisor runs it (the engine with the job's
    /// marks), on the fake kernel, with a failure injected at every step:
    /// whatever fails, nothing is left stopped; once nothing fails, the
    /// root's tree, the tagged daemon and the adopted orphan are gone, and
    /// the application's own child and the supervisor are not.
    #[test]
    fn a_job_stop_with_a_failure_at_every_step() {
        use crate::signal::kill_tree_tests::{Kernel, kill_on_fake_kernel};
        use std::cell::RefCell;
        use std::rc::Rc;

        let job = JobId::new("dev", id(50), 1);
        let kernel_with_job = || {
            let mut kernel = Kernel::new();
            let init = kernel.spawn_at(1, None);
            let me = kernel.spawn_at(50, Some(init.pid()));
            let root = kernel.spawn_at(100, Some(me.pid()));
            let child = kernel.spawn_at(101, Some(root.pid()));
            let orphan = kernel.spawn_at(200, Some(me.pid()));
            let own = kernel.spawn_at(300, Some(me.pid()));
            let daemon = kernel.spawn_at(400, Some(init.pid()));
            let daemon_child = kernel.spawn_at(401, Some(daemon.pid()));
            let tag = format!("{}={}\0", tag::JOB_VAR, job.as_str()).into_bytes();
            for (identity, group, tagged) in [
                (root, 100, true),
                (child, 100, true),
                (orphan, 100, false),
                (own, 50, false),
                (daemon, 400, true),
                (daemon_child, 400, true),
            ] {
                let proc = kernel.get(identity).expect("spawned");
                proc.info.process_group = Pid::try_from(group).ok();
                if tagged {
                    proc.environ = tag.clone();
                }
            }
            (
                kernel,
                [root, child, orphan, daemon, daemon_child],
                [me, own],
            )
        };
        let run = |fail_at: Option<usize>| {
            let (mut kernel, gone, kept) = kernel_with_job();
            kernel.fail_at = fail_at;
            let root = gone[0];
            let kernel = Rc::new(RefCell::new(kernel));
            let mut belonging = JobBelonging {
                marks: Marks {
                    id: &job,
                    root: Some(root),
                    cgroup: None,
                    seen: None,
                },
                me: kept[0],
            };
            let result = kill_on_fake_kernel(&kernel, &[root], &mut belonging);
            (kernel, result, gone, kept)
        };
        // Uninjected: everything of the job goes, nothing else does.
        let (kernel, result, gone, kept) = run(None);
        let report = result.expect("the stop runs");
        let steps = kernel.borrow().ops;
        check(&kernel.borrow(), &report, gone, kept);
        assert!(steps > 20, "only {steps} steps");
        let mut failed = 0;
        for fail_at in 1..=steps {
            let (kernel, result, gone, kept) = run(Some(fail_at));
            let kernel = kernel.borrow();
            assert!(
                kernel.stopped().is_empty(),
                "a failure at step {fail_at} left {:?} stopped",
                kernel.stopped()
            );
            match result {
                Err(crate::Error::Unsupported { .. }) => failed += 1,
                Err(other) => panic!("step {fail_at}: {other:?}"),
                // A failed read the engine may skip (a process looked at
                // while it exits): the stop still ends complete.
                Ok(report) => check(&kernel, &report, gone, kept),
            }
        }
        println!(
            "{steps} steps; a failure at {failed} of them ended the stop, the rest were absorbed"
        );
        assert!(failed > 0);

        fn check(
            kernel: &Kernel,
            report: &crate::signal::KillReport,
            gone: [ProcessIdentity; 5],
            kept: [ProcessIdentity; 2],
        ) {
            for identity in gone {
                assert!(
                    kernel.get_ro(identity).is_none(),
                    "{identity} left: {report:?}"
                );
            }
            for identity in kept {
                assert!(kernel.get_ro(identity).is_some(), "{identity} was killed");
                assert!(!report.was_killed(&identity));
            }
            assert!(report.is_complete(), "{report:?}");
        }
    }
}
