//! Taking over the jobs of a dead instance: [`Supervisor::adopt`], and the
//! exit codes of adopted roots, which are not our children.
//!
//! An adopted job's root was started by another process: its exit status
//! is that process's to collect (or init's, once it died), never ours. What
//! can be seen is the kernel's exit event (the proc connector reports the
//! exit code of any process): the supervisor opens one
//! [`Tracker`] when it first adopts, and reads the exit of each adopted
//! root from it. Where the kernel does not let this process listen (see
//! [`probe`](crate::events::probe)), or the event was lost (the socket's
//! buffer overflowed while nobody read it), an adopted job's exit status is
//! `None`.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use super::cgroup::JobCgroup;
use super::feed::Feed;
use super::members::Marks;
use super::recover::{RecoverFilter, open_leftover};
use super::{Containment, Job, JobId, JobRecord, Member, Supervisor, SupervisorError, tag};
use crate::events::{EventKind, EventSource, Exit, Tracker};
use crate::table::ProcessTable;
use crate::{Pid, ProcessIdentity, ProcessSource};

/// How long a root known to have exited is waited for in the async face's
/// feed (its tracker task may not have read the exit event yet).
const FEED_WAIT: Duration = Duration::from_secs(2);

/// Where the exit codes of adopted roots come from.
#[derive(Debug, Default)]
pub(super) enum ExitWatch {
    /// Not opened yet: nothing was adopted.
    #[default]
    Closed,
    /// Our own tracker, on the proc connector.
    Tracker(Box<Tracker>),
    /// Exit codes cannot be seen here; why.
    Unavailable(String),
    /// The async face's tracker tells them ([`Feed`]).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    Fed(Arc<Feed>),
}

/// The exit watch and what it told so far.
#[derive(Debug, Default)]
pub(super) struct Exits {
    pub(super) watch: ExitWatch,
    /// How watched roots ended.
    told: HashMap<ProcessIdentity, Exit>,
}

impl Exits {
    /// Opens the tracker if nothing watches yet. Where the kernel gives no
    /// exit events (the tracker would poll), it is dropped again: a polled
    /// exit has no code.
    fn open(&mut self) {
        if !matches!(self.watch, ExitWatch::Closed) {
            return;
        }
        self.watch = match Tracker::all() {
            Ok(tracker) if tracker.source() == EventSource::Connector => {
                ExitWatch::Tracker(Box::new(tracker))
            }
            Ok(tracker) => ExitWatch::Unavailable(format!(
                "no exit events here (the tracker polls: {}): adopted jobs' exit statuses are unknown",
                tracker.probe()
            )),
            Err(error) => ExitWatch::Unavailable(format!("no exit events: {error}")),
        };
    }

    /// Takes every exit told so far of the processes in `roots`; those
    /// known to have `exited` are waited for a little where another task
    /// reads the events ([`Feed::take_exit`]).
    fn drain(&mut self, roots: &[ProcessIdentity], exited: bool) {
        match &mut self.watch {
            ExitWatch::Tracker(tracker) => {
                // A tracker that failed tells nothing more: the codes of
                // the exits it missed are unknown.
                if tracker.sync().is_err() {
                    return;
                }
                while let Ok(Some(event)) = tracker.wait_event(Some(Duration::ZERO)) {
                    if let EventKind::Exited {
                        process: Some(process),
                        exit,
                        ..
                    } = event.kind
                        && roots.contains(&process)
                    {
                        self.told.insert(process, exit);
                    }
                }
            }
            ExitWatch::Fed(feed) => {
                for &root in roots {
                    if let Some(exit) = feed.take_exit(root, exited, FEED_WAIT) {
                        self.told.insert(root, exit);
                    }
                }
            }
            ExitWatch::Closed | ExitWatch::Unavailable(_) => {}
        }
    }

    /// Reads what the watch has, keeping the exits of `roots`; waits for
    /// nothing.
    pub(super) fn keep_up(&mut self, roots: &[ProcessIdentity]) {
        if let ExitWatch::Tracker(_) = self.watch {
            self.drain(roots, false);
        }
    }

    /// How `root` ended, as told: `None` when no event told it, or told
    /// no code (a resync found it gone). `exited`: it is known to have
    /// exited (its pidfd said so, or it is gone).
    pub(super) fn status_of(&mut self, root: ProcessIdentity, exited: bool) -> Option<ExitStatus> {
        self.drain(&[root], exited);
        match self.told.get(&root)? {
            Exit::Code(code) => Some(ExitStatus::from_raw((code & 0xff) << 8)),
            Exit::Signal(signal) => Some(ExitStatus::from_raw(signal & 0x7f)),
            Exit::Unknown => None,
        }
    }
}

/// Whether supervisor instance `owner` runs: this one, or a live process
/// in `table` (as last refreshed) with its pid and start time.
pub(super) fn runs<S: ProcessSource>(
    table: &ProcessTable<S>,
    me: ProcessIdentity,
    owner: ProcessIdentity,
) -> bool {
    owner == me
        || table
            .get_identity(owner)
            .is_some_and(|p| !p.state().has_exited())
}

/// The root of an adopted job: the journal's root while it lives; else the
/// outermost member leading a process group (the oldest, if several); else
/// the outermost member. `None` only without members.
pub(super) fn choose_root<S: ProcessSource>(
    table: &ProcessTable<S>,
    journal_root: Option<ProcessIdentity>,
    members: &[Member],
) -> Option<ProcessIdentity> {
    if let Some(root) = journal_root
        && members.iter().any(|m| m.process.identity() == root)
    {
        return Some(root);
    }
    let outermost = |pids: Vec<Pid>| {
        table
            .outermost(pids)
            .into_iter()
            .min_by_key(|p| (p.start_time(), p.pid()))
            .map(|p| p.identity())
    };
    let leaders: Vec<Pid> = members
        .iter()
        .filter(|m| m.process.process_group() == Some(m.process.pid()))
        .map(|m| m.process.pid())
        .collect();
    outermost(leaders)
        .or_else(|| outermost(members.iter().map(|m| m.process.pid()).collect()))
        .or_else(|| members.first().map(|m| m.process.identity()))
}

impl Supervisor {
    /// The jobs this supervisor could [`adopt`](Supervisor::adopt) now: jobs
    /// of dead instances of its name (kept ones included) with a process
    /// still alive, found as [`recover`](Supervisor::recover) finds them
    /// (journal, cgroups, tags).
    pub fn adoptable(&mut self) -> Result<Vec<JobId>, SupervisorError> {
        let dead = self.find_dead(&RecoverFilter::dead_and_kept())?;
        Ok(dead
            .into_iter()
            .filter(|(id, found)| {
                let alive = |p: &ProcessIdentity| {
                    self.table
                        .get_identity(*p)
                        .is_some_and(|p| !p.state().has_exited())
                };
                found.processes.iter().any(alive)
                    || found
                        .cgroup
                        .as_deref()
                        .and_then(|path| open_leftover(path, id))
                        .is_some_and(|cgroup| {
                            let populated = cgroup.is_populated().unwrap_or(false);
                            // Looked at, not ours: never removed here.
                            cgroup.leave();
                            populated
                        })
            })
            .map(|(id, _)| id)
            .collect())
    }

    /// Makes job `id`, a live job of a dead instance of this supervisor's
    /// name, a job of this one: its members (by its cgroup, its tag, its
    /// process group, and the trees below them), [`usage`](Supervisor::usage),
    /// [`stop`](Supervisor::stop), [`wait`](Supervisor::wait) and
    /// [`status`](Supervisor::status) work on it as on a job spawned here,
    /// and dropping the supervisor stops it (unless
    /// [`keep_running`](Supervisor::keep_running)).
    ///
    /// What differs:
    /// - It has no [`Child`](std::process::Child):
    ///   [`child_mut`](Supervisor::child_mut) is `None` and its stdio stays
    ///   where the dead instance put it.
    /// - Its root keeps its [`JobId`] (and so its tag and cgroup name). If
    ///   the journaled root is gone but members are left, the root becomes
    ///   the live member leading a process group, else the outermost member.
    /// - Its exit status is what can be seen: the root's status itself if it
    ///   was orphaned to our subreaper; else its exit code from the kernel's
    ///   exit event, where the proc connector lets us listen (see
    ///   [`events::probe`](crate::events::probe)); else `None`. The
    ///   supervisor opens one event tracker at its first adoption and reads
    ///   it at each call: an event lost meanwhile (its socket's buffer
    ///   overflowed while nothing read it, on a busy host) also gives `None`.
    /// - Its orphans reparent to init (or their own subreaper), not to us:
    ///   a member that clears its environment, calls `setsid` and
    ///   double-forks escapes every look where the job has no cgroup. The
    ///   async face's fork lineage catches it (feature `tokio`).
    ///
    /// The journal records the adoption: the job's row now belongs to this
    /// instance ([`JobRecord::owner`]), so [`recover`](Supervisor::recover)
    /// (here or in another instance) leaves it alone while this instance
    /// runs; a job found only by its cgroup or tag gets a new row. The hand
    /// over is atomic in the journal: of two live instances sharing one
    /// journal (the [`Registry`](crate::registry::Registry)) that adopt the
    /// same job at once, one gets [`SupervisorError::NotAdoptable`]. Without
    /// a shared journal two instances cannot know of each other's adoption.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use proctrack::supervisor::{Supervisor, SupervisorOptions};
    ///
    /// // After a crash: take over what the last instance was running.
    /// let mut supervisor = Supervisor::new(SupervisorOptions::new("devtool"))?;
    /// for id in supervisor.adoptable()? {
    ///     let job = supervisor.adopt(&id)?;
    ///     println!("adopted {id}, root {}", job.root());
    /// }
    /// # Ok::<(), proctrack::supervisor::SupervisorError>(())
    /// ```
    pub fn adopt(&mut self, id: &JobId) -> Result<&Job, SupervisorError> {
        let refuse = |why: &str| SupervisorError::NotAdoptable {
            id: id.clone(),
            why: why.to_owned(),
        };
        if self.jobs.contains_key(id) {
            return Err(refuse("it is this supervisor's job already"));
        }
        // Before the look: a root exit after it is told.
        self.exits.open();
        let mut dead = self.find_dead(&RecoverFilter::jobs([id.clone()]))?;
        let found = dead.remove(id).ok_or_else(|| {
            refuse(
                "no job of a dead instance of this supervisor's name has that id \
                 (its instance, or the one that adopted it, runs; or nothing of it is left)",
            )
        })?;
        let cgroup = found
            .cgroup
            .as_deref()
            .and_then(|path| open_leftover(path, id));
        let look = self.look()?;
        let members = Marks {
            id,
            root: found.root,
            cgroup: cgroup.as_ref(),
            seen: None,
        }
        .with_trees(&self.table, &look);
        let root = choose_root(&self.table, found.root, &members)
            .ok_or_else(|| refuse("nothing of it is alive"))?;
        let root_info = self.table.get_identity(root);
        let process_group = found
            .record
            .as_ref()
            .map(|r| r.process_group)
            .or_else(|| root_info.and_then(|p| p.process_group()))
            .unwrap_or(root.pid());
        let command = match &found.record {
            Some(record) => record.command.clone(),
            None => root_info
                .map(|p| p.cmdline().args().map(ToOwned::to_owned).collect())
                .unwrap_or_default(),
        };
        let cgroup_path = cgroup.as_ref().map(|c| c.path().to_path_buf());
        let mut record = JobRecord::new(
            id.clone(),
            root,
            process_group,
            cgroup_path.clone(),
            command,
        );
        record.owner = Some(self.me);
        if let Some(journal) = self.journal.as_mut() {
            let claimed = match &found.record {
                Some(old) => journal.adopted(&record, old.owner_instance())?,
                None => {
                    journal.started(&record)?;
                    true
                }
            };
            if !claimed {
                // Let go of the cgroup: it is the other instance's now.
                cgroup.map(JobCgroup::leave);
                return Err(refuse("another instance adopted it first"));
            }
        }
        let mut missing = vec![
            "adopted: its orphans reparent to init or their own subreaper, not to us".to_owned(),
        ];
        if cgroup.is_none() {
            missing.push("no cgroup: none was made for it, or it is gone".to_owned());
        }
        if let ExitWatch::Unavailable(why) = &self.exits.watch {
            missing.push(why.clone());
        }
        let containment = Containment {
            process_group,
            subreaper: false,
            tag: format!("{}={id}", tag::JOB_VAR),
            cgroup: cgroup_path,
            missing,
        };
        let job = Job {
            id: id.clone(),
            root,
            child: None,
            cgroup,
            containment,
            keep_running: false,
            exit: None,
            finished: false,
            seen: members.iter().map(|m| m.process.identity()).collect(),
        };
        Ok(self.jobs.entry(id.clone()).or_insert(job))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::FoundBy;
    use crate::table::TableOptions;
    use crate::{BootId, MemorySource, ProcessInfo, StartTime, State};

    const BOOT: BootId = BootId::from_bytes([3; 16]);

    fn id(pid: i32) -> ProcessIdentity {
        ProcessIdentity::new(
            BOOT,
            Pid::try_from(pid).expect("pid"),
            StartTime::from_raw(pid as u64),
        )
    }

    /// `(pid, parent, process group)`, all members.
    fn setup(rows: &[(i32, i32, i32)]) -> (ProcessTable<MemorySource>, Vec<Member>) {
        let mut source = MemorySource::new(BOOT);
        source.insert(ProcessInfo::builder(id(1)).state(State::Sleeping).build());
        for &(pid, parent, group) in rows {
            source.insert(
                ProcessInfo::builder(id(pid))
                    .parent(Pid::try_from(parent).ok())
                    .group_and_session(Pid::try_from(group).ok(), Pid::try_from(group).ok())
                    .state(State::Sleeping)
                    .build(),
            );
        }
        let table = ProcessTable::with_source(source, TableOptions::default()).expect("table");
        let members = rows
            .iter()
            .map(|&(pid, ..)| Member {
                process: table.get_identity(id(pid)).expect("row").clone(),
                found_by: FoundBy::default(),
            })
            .collect();
        (table, members)
    }

    #[test]
    fn the_journal_root_while_it_lives_then_a_group_leader_then_the_outermost() {
        // 100 leads group 100 under init; 101 below it; 300 a setsid daemon.
        let (table, members) = setup(&[(100, 1, 100), (101, 100, 100), (300, 1, 300)]);
        assert_eq!(choose_root(&table, Some(id(101)), &members), Some(id(101)));
        // The journal's root is gone: the oldest outermost group leader.
        assert_eq!(choose_root(&table, Some(id(50)), &members), Some(id(100)));
        // No leaders: the outermost members, oldest first.
        let (table, members) = setup(&[(200, 1, 50), (201, 200, 50), (210, 1, 50)]);
        assert_eq!(choose_root(&table, None, &members), Some(id(200)));
        assert_eq!(choose_root(&table, None, &[]), None);
    }
}
