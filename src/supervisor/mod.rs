//! A supervisor: spawn commands as jobs in every containment the system
//! allows, know each job's members, stop them all, and recover the jobs of
//! an instance that crashed.
//!
//! A job's processes can escape every tree we can find: a double fork plus
//! `setsid` leaves the parent-pid tree and the process group, `chdir /`
//! leaves a working directory search, clearing the environment drops a tag.
//! A [`Supervisor`] therefore contains each job by every layer it can have,
//! and says which hold ([`Containment`]):
//!
//! - its own **process group**;
//! - our **child subreaper** attribute: orphans of the job reparent to us,
//!   not to init, so they stay in reach;
//! - an **environment tag** ([`tag`]): `PROCTRACK_JOB=<job id>`, inherited
//!   by every descendant, readable in `/proc/<pid>/environ` by the same user
//!   even after the process reparented to init;
//! - its own **cgroup v2 leaf** ([`cgroup`]), where the cgroup2 tree is
//!   writable (root, or a delegated subtree): every process forked inside
//!   stays inside, `cgroup.kill` kills all of them at once, forks during the
//!   kill included. The job enters it before it execs (an exec shim; see
//!   [`JobCgroup::command`](cgroup::JobCgroup::command)), so nothing of it
//!   ever runs outside.
//!
//! A job's members are the union of its cgroup, its tree (and the trees of
//! the other members) and the processes that carry its tag ([`Member`]).
//! [`Supervisor::stop`] kills through the cgroup where there is one, else by
//! a tree kill of every member (which stops the members before it kills
//! them, so forks during the kill are caught too). Dropping the supervisor
//! stops every job not marked [`keep_running`](Supervisor::keep_running).
//!
//! With a [`Journal`] (the SQLite [`Registry`](crate::registry::Registry)
//! is one), every job is written down as it starts and ends, and
//! [`Supervisor::recover`] in a later instance of the same name finds the
//! jobs of instances that died (from the journal, the cgroups left behind
//! and the tags of processes reparented anywhere), and stops them.
//!
//! ```no_run
//! use std::time::Duration;
//! use proctrack::supervisor::{Supervisor, SupervisorOptions};
//!
//! let mut supervisor = Supervisor::new(SupervisorOptions::new("devtool"))?;
//! println!("{:?}", supervisor.recover()?); // what the last crash left
//! let mut command = supervisor.command("sh");
//! command.args(["-c", "setsid sh -c 'sleep 600 &' & exec sleep 600"]);
//! let job = supervisor.spawn(command)?;
//! println!("{}", supervisor.job(&job).expect("ours").containment());
//! println!("{:?}", supervisor.usage(&job)?);
//! let report = supervisor.stop(&job, Duration::from_secs(2))?;
//! assert!(report.is_complete());
//! # Ok::<(), proctrack::supervisor::SupervisorError>(())
//! ```
//!
//! Other children of the application are never taken for a job's: an orphan
//! the subreaper adopted counts as a job's member only when it carries the
//! job's tag, is still in the job's process group, or was seen in the job
//! before; only members are ever signalled or reaped. So a process that
//! clears its environment, calls `setsid` and double-forks before the
//! supervisor ever looked escapes every layer but the cgroup: where
//! cgroups cannot be made, that one is out of reach.

mod adopt;
#[cfg(feature = "tokio")]
mod async_supervisor;
pub mod cgroup;
mod feed;
mod job;
mod journal;
#[cfg(feature = "tokio")]
mod lineage;
mod members;
mod recover;
pub mod state_dir;
mod stop;
pub mod tag;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use async_supervisor::{AsyncSupervisor, JobEvent, JobEvents};
pub use job::{
    BadJobId, Containment, FoundBy, Job, JobId, JobStatus, JobStopReport, JobUsage, Member,
};
pub use journal::{JobEnd, JobRecord, Journal, JournalError, MemoryJournal};
pub use members::{JobMark, JournaledJob, instance_alive, job_marks, journaled_jobs};
pub use recover::{RecoverFilter, RecoverReport, RecoveredJob};
pub use state_dir::{SkippedFile, StateDir, StateDirError, StateScan};

use crate::signal::{Subreaper, spawn_group};
use crate::table::ProcessTable;
use crate::{Error, Pid, ProcessIdentity, ProcessSource};
use cgroup::{Cgroup2, JobCgroup};
use feed::Feed;
use members::{Look, Marks};

/// The system calls under this layer, chosen once.
#[cfg_attr(target_os = "linux", path = "sys/linux.rs")]
#[cfg_attr(not(target_os = "linux"), path = "sys/unsupported.rs")]
mod sys;

/// What went wrong in a supervisor call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// Reading, signalling or spawning processes failed.
    #[error(transparent)]
    Process(#[from] Error),
    /// The journal could not write or read; the job it was about is stopped
    /// if it had just started (a job nobody wrote down could not be
    /// recovered).
    #[error("the supervisor's journal failed: {0}")]
    Journal(#[from] JournalError),
    /// No job of this supervisor has that id.
    #[error("no job {0} in this supervisor")]
    NoSuchJob(JobId),
    /// A supervisor name must be 1 to 64 ASCII letters, digits, `-` or `_`.
    #[error("{0:?} cannot name a supervisor: use 1 to 64 ASCII letters, digits, '-' and '_'")]
    BadName(String),
    /// [`Supervisor::adopt`] cannot take this job.
    #[error("cannot adopt job {id}: {why}")]
    NotAdoptable {
        /// The job.
        id: JobId,
        /// Why not.
        why: String,
    },
    /// [`Cgroups::Required`] was asked for and job cgroups cannot be made.
    #[error("job cgroups were required but cannot be made: {why}")]
    CgroupsRequired {
        /// What is missing.
        why: String,
    },
}

/// Whether jobs get a cgroup of their own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cgroups {
    /// Where the cgroup2 tree is writable; else without, saying why.
    #[default]
    Auto,
    /// Never: process group, subreaper and tag only.
    Off,
    /// Always; [`Supervisor::new`] fails where they cannot be made.
    Required,
}

/// How a [`Supervisor`] works.
///
/// ```
/// use std::time::Duration;
/// use proctrack::supervisor::{Cgroups, SupervisorOptions};
/// let options = SupervisorOptions::new("devtool")
///     .cgroups(Cgroups::Off)
///     .shutdown_grace(Duration::from_secs(5));
/// ```
pub struct SupervisorOptions {
    name: String,
    cgroups: Cgroups,
    subreaper: bool,
    shutdown_grace: Duration,
    journal: Option<Box<dyn Journal>>,
    table: Option<ProcessTable>,
}

impl fmt::Debug for SupervisorOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorOptions")
            .field("name", &self.name)
            .field("cgroups", &self.cgroups)
            .field("subreaper", &self.subreaper)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("journal", &self.journal.is_some())
            .field("table", &self.table.is_some())
            .finish()
    }
}

impl SupervisorOptions {
    /// Options for a supervisor called `name` (which
    /// [`recover`](Supervisor::recover) matches jobs by): cgroups where
    /// possible, a subreaper, 2 s of grace on shutdown, no journal.
    pub fn new(name: impl Into<String>) -> SupervisorOptions {
        SupervisorOptions {
            name: name.into(),
            cgroups: Cgroups::Auto,
            subreaper: true,
            shutdown_grace: Duration::from_secs(2),
            journal: None,
            table: None,
        }
    }

    /// Whether jobs get cgroups ([`Cgroups::Auto`] by default).
    pub fn cgroups(mut self, cgroups: Cgroups) -> SupervisorOptions {
        self.cgroups = cgroups;
        self
    }

    /// Whether to make this process a child subreaper (default true).
    pub fn subreaper(mut self, subreaper: bool) -> SupervisorOptions {
        self.subreaper = subreaper;
        self
    }

    /// How long jobs get between `SIGTERM` and `SIGKILL` when the supervisor
    /// is dropped (default 2 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> SupervisorOptions {
        self.shutdown_grace = grace;
        self
    }

    /// The table the supervisor reads processes through: the
    /// application's own, handed over, rather than a new scan of every
    /// process. It is refreshed before each look.
    ///
    /// ```no_run
    /// use proctrack::supervisor::{Supervisor, SupervisorOptions};
    /// use proctrack::table::ProcessTable;
    /// let table = ProcessTable::new()?;
    /// let supervisor = Supervisor::new(SupervisorOptions::new("devtool").table(table))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn table(mut self, table: ProcessTable) -> SupervisorOptions {
        self.table = Some(table);
        self
    }

    /// Where to write jobs down, for [`recover`](Supervisor::recover).
    pub fn journal(mut self, journal: impl Journal + 'static) -> SupervisorOptions {
        self.journal = Some(Box::new(journal));
        self
    }
}

/// A command about to become a job: a [`Command`] (dereference it to add
/// arguments, environment, directory and stdio) already set up for the
/// job's containment. Start it with [`Supervisor::spawn`]; dropped unused,
/// it removes the cgroup it made.
#[derive(Debug)]
pub struct JobCommand {
    id: JobId,
    command: Command,
    cgroup: Option<JobCgroup>,
    cgroup_missing: Option<String>,
}

impl JobCommand {
    /// The id the job will have.
    pub fn id(&self) -> &JobId {
        &self.id
    }
}

impl Deref for JobCommand {
    type Target = Command;

    fn deref(&self) -> &Command {
        &self.command
    }
}

impl DerefMut for JobCommand {
    fn deref_mut(&mut self) -> &mut Command {
        &mut self.command
    }
}

/// Spawns commands as contained jobs and stops them; see the
/// [module documentation](self).
pub struct Supervisor {
    name: String,
    me: ProcessIdentity,
    table: ProcessTable,
    /// Where job cgroups go, or why they cannot.
    cgroups: std::result::Result<Cgroup2, String>,
    subreaper: std::result::Result<Subreaper, String>,
    shutdown_grace: Duration,
    journal: Option<Box<dyn Journal>>,
    jobs: BTreeMap<JobId, Job>,
    numbered: u64,
    /// The exit codes of adopted roots.
    exits: adopt::Exits,
    /// What a tracker beside us found (the async face's).
    feed: Option<Arc<Feed>>,
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("name", &self.name)
            .field("me", &self.me)
            .field("cgroups", &self.cgroups)
            .field("subreaper", &self.subreaper.is_ok())
            .field("jobs", &self.jobs.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Supervisor {
    /// A supervisor: reads the process table, finds out which containment
    /// layers it can have, and installs the subreaper (unless turned off).
    pub fn new(options: SupervisorOptions) -> Result<Supervisor, SupervisorError> {
        if !job::valid_name(&options.name) {
            return Err(SupervisorError::BadName(options.name));
        }
        let mut table = match options.table {
            Some(table) => table,
            None => ProcessTable::new()?,
        };
        let boot = table.boot_id();
        let me = table.source_mut().sample(Pid::current())?.identity(boot);
        let cgroups = match options.cgroups {
            Cgroups::Off => Err("job cgroups are turned off".to_owned()),
            Cgroups::Auto | Cgroups::Required => writable_cgroups(),
        };
        if let (Cgroups::Required, Err(why)) = (options.cgroups, &cgroups) {
            return Err(SupervisorError::CgroupsRequired { why: why.clone() });
        }
        let subreaper = if options.subreaper {
            Subreaper::install().map_err(|error| format!("no subreaper: {error}"))
        } else {
            Err("the subreaper is turned off".to_owned())
        };
        Ok(Supervisor {
            name: options.name,
            me,
            table,
            cgroups,
            subreaper,
            shutdown_grace: options.shutdown_grace,
            journal: options.journal,
            jobs: BTreeMap::new(),
            numbered: 0,
            exits: adopt::Exits::default(),
            feed: None,
        })
    }

    /// The supervisor's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where job cgroups are made, or why they are not.
    pub fn cgroups(&self) -> std::result::Result<&Cgroup2, &str> {
        self.cgroups.as_ref().map_err(String::as_str)
    }

    /// A command that runs `program` as the next job. Its cgroup, if jobs
    /// get one, is made now; if making it fails, the job runs without and
    /// its [`Containment::missing`] says why.
    pub fn command(&mut self, program: impl AsRef<OsStr>) -> JobCommand {
        self.numbered += 1;
        let id = JobId::new(&self.name, self.me, self.numbered);
        let made = match &self.cgroups {
            Ok(cgroups) => JobCgroup::create(cgroups, id.as_str())
                .map_err(|error| format!("no cgroup: {error}")),
            Err(why) => Err(why.clone()),
        };
        let (command, cgroup, cgroup_missing) = match made {
            Ok(cgroup) => (cgroup.command(program), Some(cgroup), None),
            Err(why) => {
                let mut command = Command::new(program);
                tag::set(&mut command, id.as_str());
                (command, None, Some(why))
            }
        };
        JobCommand {
            id,
            command,
            cgroup,
            cgroup_missing,
        }
    }

    /// Starts `command` (from [`command`](Supervisor::command)) as a job, in
    /// its own process group and, if it has one, inside its cgroup; writes
    /// it down in the journal. A job the journal cannot write down is
    /// killed again and the call fails: it could not be recovered.
    pub fn spawn(&mut self, command: JobCommand) -> Result<JobId, SupervisorError> {
        let JobCommand {
            id,
            mut command,
            cgroup,
            cgroup_missing,
        } = command;
        let spawned = match (&cgroup, &self.subreaper) {
            (Some(cgroup), subreaper) => {
                let spawned = cgroup.spawn(&mut command)?;
                if let Ok(subreaper) = subreaper {
                    subreaper.register(spawned.handle.identity());
                }
                spawned
            }
            (None, Ok(subreaper)) => subreaper.spawn(&mut command)?,
            (None, Err(_)) => spawn_group(&mut command)?,
        };
        let root = spawned.handle.identity();
        let mut missing: Vec<String> = cgroup_missing.into_iter().collect();
        if let Err(why) = &self.subreaper {
            missing.push(why.clone());
        }
        let containment = Containment {
            process_group: root.pid(),
            subreaper: self.subreaper.is_ok(),
            tag: format!("{}={id}", tag::JOB_VAR),
            cgroup: cgroup.as_ref().map(|c| c.path().to_path_buf()),
            missing,
        };
        let mut record = JobRecord::new(
            id.clone(),
            root,
            root.pid(),
            containment.cgroup.clone(),
            match &cgroup {
                // What the user asked to run, not the shim that runs it.
                Some(_) => JobCgroup::user_command(&command)
                    .map(OsStr::to_os_string)
                    .collect(),
                None => std::iter::once(command.get_program())
                    .chain(command.get_args())
                    .map(OsStr::to_os_string)
                    .collect(),
            },
        );
        record.started = Some(std::time::SystemTime::now());
        record.subreaper = Some(containment.subreaper);
        record.missing = containment.missing.clone();
        let job = Job {
            id: id.clone(),
            root,
            child: Some(spawned.child),
            cgroup,
            containment,
            keep_running: false,
            exit: None,
            finished: false,
            seen: [root].into_iter().collect(),
        };
        if let Some(journal) = self.journal.as_mut()
            && let Err(error) = journal.started(&record)
        {
            self.jobs.insert(id.clone(), job);
            let _ = self.stop(&id, Duration::ZERO);
            self.jobs.remove(&id);
            return Err(error.into());
        }
        self.jobs.insert(id.clone(), job);
        Ok(id)
    }

    /// The job `id`, if it is this supervisor's.
    pub fn job(&self, id: &JobId) -> Option<&Job> {
        self.jobs.get(id)
    }

    /// The root's [`Child`](std::process::Child), for its stdio pipes. Do
    /// not wait on it: the supervisor collects the root's status (a stop or
    /// a [`wait`](Supervisor::wait)) and reports it. `None` for an
    /// [adopted](Supervisor::adopt) job (another process started its root)
    /// and for ids that are not this supervisor's.
    pub fn child_mut(&mut self, id: &JobId) -> Option<&mut std::process::Child> {
        self.jobs.get_mut(id).and_then(|job| job.child.as_mut())
    }

    /// Every job this supervisor started, finished ones included, by id.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> + '_ {
        self.jobs.values()
    }

    /// Leaves job `id` running when the supervisor is dropped: its cgroup
    /// stays, and the journal marks it kept, so
    /// [`recover`](Supervisor::recover) leaves it alone. Without a journal a
    /// later recover cannot tell it from a crashed instance's job, and
    /// stops it.
    pub fn keep_running(&mut self, id: &JobId, keep: bool) -> Result<(), SupervisorError> {
        self.job_mut(id)?.keep_running = keep;
        Ok(())
    }

    /// The table the supervisor reads processes through, as of its last
    /// refresh.
    pub fn table(&self) -> &ProcessTable {
        &self.table
    }

    /// The live members of job `id` now: its cgroup, its tree and the
    /// processes carrying its tag, with the trees below each, united.
    /// Refreshes the table.
    pub fn members(&mut self, id: &JobId) -> Result<Vec<Member>, SupervisorError> {
        self.job_mut(id)?;
        let look = self.look()?;
        self.find_members(id, &look)
    }

    /// What job `id` uses now, summed over its live members.
    pub fn usage(&mut self, id: &JobId) -> Result<JobUsage, SupervisorError> {
        let members = self.members(id)?;
        Ok(usage_of(&self.jobs[id], &members))
    }

    /// Every job as it is now (finished ones too), with one refresh of the
    /// table: for a UI.
    pub fn status(&mut self) -> Result<Vec<JobStatus>, SupervisorError> {
        let look = self.look()?;
        let ids: Vec<JobId> = self.jobs.keys().cloned().collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let members = if self.jobs[&id].finished {
                Vec::new()
            } else {
                self.find_members(&id, &look)?
            };
            let job = &self.jobs[&id];
            out.push(JobStatus {
                root: job.root,
                containment: job.containment.clone(),
                finished: job.finished,
                kept: job.keep_running,
                exit: job.exit,
                usage: usage_of(job, &members),
                members: members.iter().map(|m| m.process.pid()).collect(),
                id,
            });
        }
        Ok(out)
    }

    fn job_mut(&mut self, id: &JobId) -> Result<&mut Job, SupervisorError> {
        self.jobs
            .get_mut(id)
            .ok_or_else(|| SupervisorError::NoSuchJob(id.clone()))
    }

    /// Lets a tracker beside the supervisor tell it members and exits
    /// (the async face's); exits of adopted roots come from there then.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn set_feed(&mut self, feed: Arc<Feed>) {
        self.exits.watch = adopt::ExitWatch::Fed(feed.clone());
        self.feed = Some(feed);
    }

    /// Refreshes the table and takes one [`Look`] at it, after taking the
    /// members a tracker beside us found.
    fn look(&mut self) -> Result<Look, SupervisorError> {
        if let Some(feed) = &self.feed {
            for (id, found) in feed.take_seen() {
                if let Some(job) = self.jobs.get_mut(&id) {
                    job.seen.extend(found);
                }
            }
        }
        let roots: Vec<ProcessIdentity> = self.jobs.values().map(|job| job.root).collect();
        // Keep the exit watch's socket read, so that its buffer does not
        // overflow and drop an adopted root's exit event.
        let adopted: Vec<ProcessIdentity> = self
            .jobs
            .values()
            .filter(|job| job.child.is_none() && !job.finished)
            .map(|job| job.root)
            .collect();
        if !adopted.is_empty() {
            self.exits.keep_up(&adopted);
        }
        Ok(Look::take(&mut self.table, self.me, &roots)?)
    }

    /// The members of `id` in the table as last refreshed, by `look`: what
    /// [`Marks::direct`] finds, and everything below it.
    fn find_members(&mut self, id: &JobId, look: &Look) -> Result<Vec<Member>, SupervisorError> {
        let job = self
            .jobs
            .get(id)
            .ok_or_else(|| SupervisorError::NoSuchJob(id.clone()))?;
        let members = Marks::of(job).with_trees(&self.table, look);
        if let Some(job) = self.jobs.get_mut(id) {
            job.seen
                .extend(members.iter().map(|m| m.process.identity()));
        }
        Ok(members)
    }
}

/// What `members` of `job` use, with the cgroup's memory where it counts.
fn usage_of(job: &Job, members: &[Member]) -> JobUsage {
    let memory = job
        .cgroup
        .as_ref()
        .and_then(|cgroup| cgroup.memory_current().ok().flatten());
    members::usage_of(members, memory)
}

/// Our cgroup2 tree if we may make job cgroups in it, else why not.
fn writable_cgroups() -> std::result::Result<Cgroup2, String> {
    let cgroups = Cgroup2::locate().map_err(|error| format!("no cgroup: {error}"))?;
    let access = cgroups.probe();
    if access.is_writable() {
        Ok(cgroups)
    } else {
        Err(format!(
            "no cgroup: {} is {access}",
            cgroups.own_dir().display()
        ))
    }
}
