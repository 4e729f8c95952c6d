//! What a supervisor says about a job: its id, how it is contained, its
//! members, its usage and how a stop went.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::str::FromStr;
use std::time::Duration;

use super::cgroup::JobCgroup;
use crate::signal::KillReport;
use crate::{Pid, ProcessIdentity, ProcessInfo, StartTime};

/// A job's id: `<supervisor name>.<instance>.<number>`, where the instance
/// is the supervisor process's `<pid>-<start time>`. It names the job's
/// cgroup (`proctrack-<id>`) and is the value of its environment tag, so a
/// later supervisor of the same name can tell the jobs of a dead instance
/// from those of a live one.
///
/// ```
/// use proctrack::supervisor::JobId;
/// let id: JobId = "devtool.4242-99.3".parse()?;
/// assert_eq!(id.supervisor(), "devtool");
/// assert_eq!(id.number(), 3);
/// assert_eq!(id.to_string(), "devtool.4242-99.3");
/// assert!("devtool.4242.3".parse::<JobId>().is_err());
/// # Ok::<(), proctrack::supervisor::BadJobId>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId {
    text: String,
    name_len: usize,
    pid: Pid,
    start: StartTime,
    number: u64,
}

/// A string that is not a [`JobId`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a job id (<name>.<pid>-<start time>.<number>)")]
pub struct BadJobId {
    /// The string.
    pub text: String,
}

impl JobId {
    pub(crate) fn new(name: &str, instance: ProcessIdentity, number: u64) -> JobId {
        let text = format!(
            "{name}.{}-{}.{number}",
            instance.pid(),
            instance.start_time().as_raw()
        );
        JobId {
            text,
            name_len: name.len(),
            pid: instance.pid(),
            start: instance.start_time(),
            number,
        }
    }

    /// The name of the supervisor that started the job.
    pub fn supervisor(&self) -> &str {
        &self.text[..self.name_len]
    }

    /// The supervisor process's pid and start time, as when it started the
    /// job.
    pub fn instance(&self) -> (Pid, StartTime) {
        (self.pid, self.start)
    }

    /// The job's number within its supervisor instance (1, 2, ...).
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for JobId {
    type Err = BadJobId;

    fn from_str(text: &str) -> Result<JobId, BadJobId> {
        let bad = || BadJobId {
            text: text.to_owned(),
        };
        let (rest, number) = text.rsplit_once('.').ok_or_else(bad)?;
        let (name, instance) = rest.rsplit_once('.').ok_or_else(bad)?;
        let (pid, start) = instance.split_once('-').ok_or_else(bad)?;
        if !valid_name(name) {
            return Err(bad());
        }
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(pid) || !digits(start) || !digits(number) {
            return Err(bad());
        }
        Ok(JobId {
            text: text.to_owned(),
            name_len: name.len(),
            pid: pid.parse().map_err(|_| bad())?,
            start: StartTime::from_raw(start.parse().map_err(|_| bad())?),
            number: number.parse().map_err(|_| bad())?,
        })
    }
}

/// A supervisor name: 1 to 64 ASCII letters, digits, `-` and `_`.
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Which layers contain a job, and why a missing one is missing.
///
/// Printed, it reads like `process group 4242, subreaper, tag
/// PROCTRACK_JOB=devtool.1-2.1, cgroup /sys/fs/cgroup/unified/proctrack-devtool.1-2.1`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Containment {
    /// The job's own process group (its root's pid).
    pub process_group: Pid,
    /// Whether we are a child subreaper, so orphans of the job reparent to
    /// us instead of to init.
    pub subreaper: bool,
    /// The environment tag every descendant inherits (`NAME=value`).
    pub tag: String,
    /// The job's cgroup v2 leaf, where one could be made.
    pub cgroup: Option<PathBuf>,
    /// Why a layer is missing (cgroup, subreaper), for a person.
    pub missing: Vec<String>,
}

impl fmt::Display for Containment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "process group {}", self.process_group)?;
        if self.subreaper {
            f.write_str(", subreaper")?;
        }
        write!(f, ", tag {}", self.tag)?;
        if let Some(cgroup) = &self.cgroup {
            write!(f, ", cgroup {}", cgroup.display())?;
        }
        for why in &self.missing {
            write!(f, "; {why}")?;
        }
        Ok(())
    }
}

/// One job of a [`Supervisor`](super::Supervisor).
#[derive(Debug)]
pub struct Job {
    pub(super) id: JobId,
    pub(super) root: ProcessIdentity,
    /// `None` for an adopted job: another process started it.
    pub(super) child: Option<Child>,
    pub(super) cgroup: Option<JobCgroup>,
    pub(super) containment: Containment,
    pub(super) keep_running: bool,
    pub(super) exit: Option<ExitStatus>,
    pub(super) finished: bool,
    /// Every process seen as a member: an orphan that lost its tag and its
    /// tree is still known as this job's.
    pub(super) seen: HashSet<ProcessIdentity>,
}

impl Job {
    /// The job's id.
    pub fn id(&self) -> &JobId {
        &self.id
    }

    /// The process the job started as.
    pub fn root(&self) -> ProcessIdentity {
        self.root
    }

    /// How the job is contained.
    pub fn containment(&self) -> &Containment {
        &self.containment
    }

    /// The job's cgroup directory, if it has one.
    pub fn cgroup(&self) -> Option<&Path> {
        self.cgroup.as_ref().map(JobCgroup::path)
    }

    /// The root's exit status, once collected (by a wait or a stop). For
    /// an [adopted](super::Supervisor::adopt) job, what the kernel's exit
    /// event told (the root is not our child); `None` where no event could
    /// be had.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.exit
    }

    /// True when this supervisor [adopted](super::Supervisor::adopt) the
    /// job from a dead instance rather than spawning it.
    pub fn is_adopted(&self) -> bool {
        self.child.is_none()
    }

    /// True once every member is gone and the job's end is recorded.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// True when dropping the supervisor leaves this job running.
    pub fn keeps_running(&self) -> bool {
        self.keep_running
    }
}

/// How a member was found; a process can be found several ways.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FoundBy {
    /// Listed in the job's cgroup.
    pub cgroup: bool,
    /// In the process tree under the job's root or under another member.
    pub tree: bool,
    /// Carries the job's environment tag.
    pub tag: bool,
    /// An orphan our subreaper adopted that was seen in this job before, or
    /// that is still in the job's process group (it lost its tag).
    pub adopted: bool,
}

impl FoundBy {
    /// The ways it was found, by name (`cgroup`, `tag`, `tree`, `adopted`),
    /// in that order.
    ///
    /// ```
    /// use proctrack::supervisor::FoundBy;
    /// let mut found = FoundBy::default();
    /// found.tag = true;
    /// found.tree = true;
    /// assert_eq!(found.ways(), ["tag", "tree"]);
    /// ```
    pub fn ways(&self) -> Vec<&'static str> {
        [
            (self.cgroup, "cgroup"),
            (self.tag, "tag"),
            (self.tree, "tree"),
            (self.adopted, "adopted"),
        ]
        .into_iter()
        .filter_map(|(found, name)| found.then_some(name))
        .collect()
    }
}

/// A live member of a job.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Member {
    /// The process, as the supervisor's table read it.
    pub process: ProcessInfo,
    /// How it was found.
    pub found_by: FoundBy,
}

/// What a job uses now, summed over its live members.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobUsage {
    /// How many live members.
    pub processes: usize,
    /// User plus system CPU time of the live members.
    pub cpu_time: Duration,
    /// Resident memory of the live members (shared pages count once per
    /// process).
    pub rss_bytes: u64,
    /// The cgroup's `memory.current`, where the memory controller is on for
    /// it; counts page cache and kernel memory too.
    pub cgroup_memory: Option<u64>,
}

/// A job as it is now, in one look: what `GET /api/jobs` serves (feature
/// `http`), from [`Supervisor::status`](super::Supervisor::status).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobStatus {
    /// The job.
    pub id: JobId,
    /// The process it started as.
    pub root: ProcessIdentity,
    /// How it is contained.
    pub containment: Containment,
    /// Every member is gone and the end is recorded.
    pub finished: bool,
    /// Left running when the supervisor goes.
    pub kept: bool,
    /// The root's exit status, once collected.
    pub exit: Option<ExitStatus>,
    /// What the live members use.
    pub usage: JobUsage,
    /// The live members' pids, ascending.
    pub members: Vec<Pid>,
}

/// What [`Supervisor::stop`](super::Supervisor::stop) did: the kill
/// engine's report over every member (its tree, its cgroup, its tagged
/// processes and the orphans it left with us), and the root's exit status.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobStopReport {
    /// The job.
    pub job: JobId,
    /// What happened to each member.
    pub kill: KillReport,
    /// The root's exit status.
    pub exit: Option<ExitStatus>,
}

impl JobStopReport {
    /// True when every member is proven gone ([`KillReport::is_complete`]).
    pub fn is_complete(&self) -> bool {
        self.kill.is_complete()
    }
}

impl fmt::Display for JobStopReport {
    /// `job <id> stopped: ` and the kill's [`KillCounts`](crate::signal::KillCounts),
    /// then one line per member.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "job {} stopped: {}", self.job, self.kill.counts())?;
        write!(f, "{}", self.kill)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_round_trip_and_bad_ones_are_refused() {
        let boot = crate::BootId::from_bytes([1; 16]);
        let me = ProcessIdentity::new(boot, Pid::try_from(77).unwrap(), StartTime::from_raw(5));
        let id = JobId::new("dev-tool_2", me, 12);
        assert_eq!(id.as_str(), "dev-tool_2.77-5.12");
        assert_eq!(id.as_str().parse::<JobId>(), Ok(id.clone()));
        assert_eq!(id.instance(), (me.pid(), me.start_time()));
        for bad in [
            "",
            "a",
            "a.1-2",
            "a.1-2.",
            ".1-2.3",
            "a.0-2.3",
            "a b.1-2.3",
            "a.1-x.3",
            "a.1--2.3",
            "a.1-2.-3",
            "a.99999999999-2.3",
        ] {
            assert!(bad.parse::<JobId>().is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in "\\PC{0,40}") {
            let _ = text.parse::<JobId>();
        }

        #[test]
        fn made_ids_parse_back(name in "[A-Za-z0-9_-]{1,64}", pid in 1i32..=i32::MAX, start: u64, n: u64) {
            let boot = crate::BootId::from_bytes([1; 16]);
            let me = ProcessIdentity::new(boot, Pid::try_from(pid).unwrap(), StartTime::from_raw(start));
            let id = JobId::new(&name, me, n);
            prop_assert_eq!(id.as_str().parse::<JobId>(), Ok(id.clone()));
            prop_assert_eq!(id.supervisor(), name.as_str());
        }
    }
}
