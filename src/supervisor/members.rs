//! Finding a job's members in a process table: by its cgroup, its tag, its
//! root's tree and (for a supervisor's own jobs) the orphans it adopted.
//! One way for every caller: a [`Supervisor`](super::Supervisor) for its
//! jobs, [`journaled_jobs`] for the jobs a journal holds, whoever started
//! them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use super::{FoundBy, JobId, JobRecord, JobUsage, Member, tag};
use crate::table::ProcessTable;
use crate::{Pid, ProcessIdentity, ProcessSource};

/// What is known of one job to find its members by.
pub(super) struct Traces<'a> {
    pub(super) id: &'a JobId,
    pub(super) root: ProcessIdentity,
    /// The pids its cgroup lists (none without a cgroup).
    pub(super) cgroup_pids: Vec<Pid>,
    /// Orphans our subreaper adopted (none but a supervisor's own).
    pub(super) adopted: &'a [ProcessIdentity],
    /// Processes seen in the job before (none but a supervisor's own).
    pub(super) seen: Option<&'a HashSet<ProcessIdentity>>,
}

/// The job tag of every process in `table` that carries one (but `skip`),
/// read once for all the jobs a look serves.
pub(super) fn read_tags<S: ProcessSource>(
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

/// The live members of the job `traces` describe, in `table` as last
/// refreshed, ascending pid.
pub(super) fn collect<S: ProcessSource>(
    table: &ProcessTable<S>,
    traces: &Traces<'_>,
    tags: &HashMap<ProcessIdentity, Vec<u8>>,
) -> Vec<Member> {
    let mut found: BTreeMap<Pid, (ProcessIdentity, FoundBy)> = BTreeMap::new();
    let mark = |found: &mut BTreeMap<Pid, (ProcessIdentity, FoundBy)>,
                identity: ProcessIdentity,
                how: fn(&mut FoundBy)| {
        let entry = found
            .entry(identity.pid())
            .or_insert((identity, FoundBy::default()));
        how(&mut entry.1);
    };
    for &pid in &traces.cgroup_pids {
        if let Some(process) = table.get(pid) {
            mark(&mut found, process.identity(), |f| f.cgroup = true);
        }
    }
    if table.get_identity(traces.root).is_some() {
        mark(&mut found, traces.root, |f| f.tree = true);
    }
    for (identity, tag) in tags {
        if tag.as_slice() == traces.id.as_str().as_bytes() {
            mark(&mut found, *identity, |f| f.tag = true);
        }
    }
    // An orphan we adopted is this job's if it was seen in it before or
    // is still in the job's process group (its tag lost). Never merely
    // for being our child: the application's own children are too.
    for orphan in traces.adopted {
        let in_group = table
            .get_identity(*orphan)
            .is_some_and(|p| p.process_group() == Some(traces.root.pid()));
        if traces.seen.is_some_and(|seen| seen.contains(orphan)) || in_group {
            mark(&mut found, *orphan, |f| f.adopted = true);
        }
    }
    // Everything below a member is a member.
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

/// What `members` use, with the cgroup's `memory.current` where it counts.
pub(super) fn usage_of(members: &[Member], cgroup_memory: Option<u64>) -> JobUsage {
    JobUsage {
        processes: members.len(),
        cpu_time: members.iter().map(|m| m.process.cpu_time()).sum(),
        rss_bytes: members.iter().map(|m| m.process.rss_bytes()).sum(),
        cgroup_memory,
    }
}

/// Whether the supervisor instance that started `id` runs in `table`.
pub(super) fn instance_alive<S: ProcessSource>(table: &ProcessTable<S>, id: &JobId) -> bool {
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
    /// time in its [`JobId`]) still runs. A job whose supervisor is gone is
    /// orphaned: nothing stops it when it ends.
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
    let tags = read_tags(table, None);
    let boot = table.boot_id();
    records
        .into_iter()
        .map(|record| {
            let this_boot = record.root.boot_id() == boot;
            // A cgroup counts only when it is named after the job, as
            // recover opens it.
            let cgroup = record
                .cgroup
                .as_deref()
                .filter(|dir| named_after(dir, &record.id));
            let cgroup_pids = cgroup.map(cgroup_pids).unwrap_or_default();
            let traces = Traces {
                id: &record.id,
                root: record.root,
                cgroup_pids,
                adopted: &[],
                seen: None,
            };
            let members = if this_boot {
                collect(table, &traces, &tags)
            } else {
                Vec::new()
            };
            let memory = cgroup.and_then(memory_current);
            JournaledJob {
                supervisor_alive: this_boot && instance_alive(table, &record.id),
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

/// The pids a cgroup directory lists; none when it is gone.
fn cgroup_pids(dir: &Path) -> Vec<Pid> {
    std::fs::read(dir.join("cgroup.procs"))
        .map(|bytes| super::cgroup::parse_procs(&bytes))
        .unwrap_or_default()
}

/// A cgroup directory's `memory.current`, where it has one.
fn memory_current(dir: &Path) -> Option<u64> {
    std::fs::read_to_string(dir.join("memory.current"))
        .ok()?
        .trim()
        .parse()
        .ok()
}
