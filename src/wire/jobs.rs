//! The JSON form of a supervisor's job as it is now ([`JobStatus`]), as
//! `GET /api/jobs` serves it. Written, not read back: a UI only shows it.

use std::borrow::Cow;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;

use serde::{Serialize, Serializer};

use super::text;
use crate::supervisor::JobStatus;
use crate::{Pid, ProcessIdentity};

#[derive(Serialize)]
#[serde(rename = "JobStatus")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub(crate) struct JobStatusJson<'a> {
    /// The job id, `<supervisor>.<pid>-<start time>.<number>`.
    id: &'a str,
    /// The name of the supervisor that started it.
    supervisor: &'a str,
    /// The process the job started as.
    root: ProcessIdentity,
    /// The job's own process group.
    process_group: Pid,
    /// Whether orphans of the job reparent to the supervisor.
    subreaper: bool,
    /// The environment tag every member inherits, `NAME=value`.
    tag: &'a str,
    /// The job's cgroup directory; null without one.
    cgroup: Option<Cow<'a, str>>,
    /// The cgroup path's exact bytes, only when they are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cgroup_bytes: Option<&'a [u8]>,
    /// Why a containment layer is missing, in words.
    missing: &'a [String],
    /// Every member is gone and the end is recorded.
    finished: bool,
    /// Left running when the supervisor goes.
    kept: bool,
    /// The root's exit code; null while it runs or when a signal ended it.
    exit_code: Option<i32>,
    /// The signal that ended the root; null otherwise.
    exit_signal: Option<i32>,
    /// How many live members.
    processes: usize,
    /// User plus system CPU time of the live members, in microseconds.
    cpu_time_us: u64,
    /// Resident memory of the live members, in bytes.
    rss_bytes: u64,
    /// The cgroup's `memory.current`; null where that controller is off.
    cgroup_memory_bytes: Option<u64>,
    /// The live members' pids, ascending.
    members: &'a [Pid],
}

impl Serialize for JobStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (cgroup, cgroup_bytes) = match &self.containment.cgroup {
            Some(path) => {
                let (lossy, exact) = text(path.as_os_str().as_bytes());
                (Some(lossy), exact)
            }
            None => (None, None),
        };
        JobStatusJson {
            id: self.id.as_str(),
            supervisor: self.id.supervisor(),
            root: self.root,
            process_group: self.containment.process_group,
            subreaper: self.containment.subreaper,
            tag: &self.containment.tag,
            cgroup,
            cgroup_bytes,
            missing: &self.containment.missing,
            finished: self.finished,
            kept: self.kept,
            exit_code: self.exit.and_then(|status| status.code()),
            exit_signal: self.exit.and_then(|status| status.signal()),
            processes: self.usage.processes,
            cpu_time_us: u64::try_from(self.usage.cpu_time.as_micros()).unwrap_or(u64::MAX),
            rss_bytes: self.usage.rss_bytes,
            cgroup_memory_bytes: self.usage.cgroup_memory,
            members: &self.members,
        }
        .serialize(serializer)
    }
}
