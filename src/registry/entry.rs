//! What a registry row holds: [`Entry`], and what a caller hands in: [`Metadata`].

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::CommandLine;
use crate::{Pid, ProcessIdentity, ProcessInfo};

/// The id of a registry row, handed out by [`Registry::register`](super::Registry::register).
///
/// Ids only grow and are never handed out twice in one file, not even after
/// rows are gone.
///
/// ```
/// use proctrack::registry::RowId;
/// let id = RowId::from_raw(7);
/// assert_eq!(id.as_raw(), 7);
/// assert_eq!(id.to_string(), "7");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RowId(i64);

impl RowId {
    /// Wraps the database's integer id.
    pub const fn from_raw(raw: i64) -> RowId {
        RowId(raw)
    }

    /// The database's integer id.
    pub const fn as_raw(self) -> i64 {
        self.0
    }
}

impl fmt::Display for RowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a registered process stands, as far as the registry knows.
///
/// ```
/// use proctrack::registry::Status;
/// assert_eq!(Status::Killed.as_str(), "killed");
/// assert_eq!("lost".parse::<Status>(), Ok(Status::Lost));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Status {
    /// Registered and not known to have ended.
    Running,
    /// Ended in this boot: reported by the caller
    /// ([`mark_exited`](super::Registry::mark_exited)), or found gone by
    /// [`reconcile`](super::Registry::reconcile) (then the exit code is unknown).
    Exited,
    /// Killed: reported by the caller ([`mark_killed`](super::Registry::mark_killed))
    /// or by a [`stop`](super::Registry::stop).
    Killed,
    /// Belongs to an earlier boot: it died with the machine, and how it ended
    /// cannot be known.
    Lost,
}

impl Status {
    /// The word stored in the database: `running`, `exited`, `killed`, `lost`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Killed => "killed",
            Status::Lost => "lost",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that names no [`Status`] or [`EndReason`].
///
/// ```
/// assert!("sleeping".parse::<proctrack::registry::Status>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownWord(pub String);

impl fmt::Display for UnknownWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown word {:?}", self.0)
    }
}

impl std::error::Error for UnknownWord {}

impl std::str::FromStr for Status {
    type Err = UnknownWord;

    fn from_str(word: &str) -> Result<Status, UnknownWord> {
        Ok(match word {
            "running" => Status::Running,
            "exited" => Status::Exited,
            "killed" => Status::Killed,
            "lost" => Status::Lost,
            other => return Err(UnknownWord(other.to_owned())),
        })
    }
}

/// Who or what ended a row.
///
/// ```
/// use proctrack::registry::EndReason;
/// assert_eq!(EndReason::PidReused.as_str(), "pid_reused");
/// assert_eq!("reaped".parse::<EndReason>(), Ok(EndReason::Stopped));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum EndReason {
    /// The caller said so ([`mark_exited`](super::Registry::mark_exited),
    /// [`mark_killed`](super::Registry::mark_killed)).
    Reported,
    /// The registry found no process with the row's identity (or only its
    /// unreaped zombie).
    Gone,
    /// The registry found the row's pid held by another process: the row's
    /// process had exited and its pid was handed out again.
    PidReused,
    /// The row belongs to an earlier boot.
    EarlierBoot,
    /// A [`stop`](super::Registry::stop) killed it (the stored word,
    /// `reaped`, predates the name `stop`).
    Stopped,
}

impl EndReason {
    /// The word stored in the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            EndReason::Reported => "reported",
            EndReason::Gone => "gone",
            EndReason::PidReused => "pid_reused",
            EndReason::EarlierBoot => "earlier_boot",
            EndReason::Stopped => "reaped",
        }
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EndReason {
    type Err = UnknownWord;

    fn from_str(word: &str) -> Result<EndReason, UnknownWord> {
        Ok(match word {
            "reported" => EndReason::Reported,
            "gone" => EndReason::Gone,
            "pid_reused" => EndReason::PidReused,
            "earlier_boot" => EndReason::EarlierBoot,
            "reaped" => EndReason::Stopped,
            other => return Err(UnknownWord(other.to_owned())),
        })
    }
}

/// What a caller tells about a process it registers, besides its identity.
///
/// Only the owner is required. Whatever is left unset (command, cwd, process
/// group, session) the registry reads from the live process at
/// [`register`](super::Registry::register) time, if the process is still there
/// with the registered identity. Set the command yourself when you register
/// right after spawning: for a moment after `exec` the kernel shows an empty
/// command line.
///
/// ```
/// use proctrack::registry::Metadata;
///
/// let metadata = Metadata::new("build-42")
///     .label("dev server")
///     .command(["npm", "run", "dev"])
///     .cwd("/srv/app");
/// assert_eq!(metadata.owner(), "build-42");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    pub(crate) owner: String,
    pub(crate) label: String,
    pub(crate) command: Option<CommandLine>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) process_group: Option<Pid>,
    pub(crate) session: Option<Pid>,
}

impl Metadata {
    /// Metadata with this owner key and nothing else.
    ///
    /// The owner is whatever the caller groups its processes by: an execution
    /// id, a job name, or the owning process itself ([`owner_key`](super::owner_key)).
    /// [`Registry::by_owner`](super::Registry::by_owner) and
    /// [`StopScope::Owner`](super::StopScope::Owner) select by it.
    pub fn new(owner: impl Into<String>) -> Metadata {
        Metadata {
            owner: owner.into(),
            ..Metadata::default()
        }
    }

    /// Metadata taken from a read of the process: its command line, cwd,
    /// process group and session.
    ///
    /// ```no_run
    /// use proctrack::registry::Metadata;
    /// let me = proctrack::process(proctrack::Pid::current())?;
    /// let metadata = Metadata::from_process("supervisor", &me).label("me");
    /// # Ok::<(), proctrack::Error>(())
    /// ```
    pub fn from_process(owner: impl Into<String>, process: &ProcessInfo) -> Metadata {
        Metadata {
            owner: owner.into(),
            label: String::new(),
            command: Some(process.cmdline().clone()),
            cwd: process.cwd().path().map(Path::to_path_buf),
            process_group: process.process_group(),
            session: process.session(),
        }
    }

    /// A free-form label for people ("dev server", "test runner").
    pub fn label(mut self, label: impl Into<String>) -> Metadata {
        self.label = label.into();
        self
    }

    /// The command the process runs, program first.
    pub fn command<I, S>(mut self, args: I) -> Metadata
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command = Some(CommandLine::from_args(args));
        self
    }

    /// The process's working directory.
    pub fn cwd(mut self, cwd: impl Into<PathBuf>) -> Metadata {
        self.cwd = Some(cwd.into());
        self
    }

    /// The process group the process leads or belongs to.
    pub fn process_group(mut self, pgid: Pid) -> Metadata {
        self.process_group = Some(pgid);
        self
    }

    /// The session the process belongs to.
    pub fn session(mut self, sid: Pid) -> Metadata {
        self.session = Some(sid);
        self
    }

    /// The owner key.
    pub fn owner(&self) -> &str {
        &self.owner
    }
}

/// One registry row: a process someone registered, and what became of it.
///
/// ```no_run
/// # async fn demo() -> Result<(), proctrack::registry::RegistryError> {
/// let registry = proctrack::registry::Registry::open("/tmp/procs.db").await?;
/// for entry in registry.running().await? {
///     println!(
///         "#{} {} [{}] {} `{}`",
///         entry.id(),
///         entry.identity(),
///         entry.owner(),
///         entry.label(),
///         entry.command()
///     );
/// }
/// # Ok(())
/// # }
/// ```
///
/// In JSON (feature `serde`) times are `*_ms` fields, milliseconds since the
/// Unix epoch, and command and cwd are strings (see the crate docs' "JSON").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub(crate) id: RowId,
    pub(crate) identity: ProcessIdentity,
    pub(crate) pidfs_inode: Option<u64>,
    pub(crate) owner: String,
    pub(crate) label: String,
    pub(crate) command: CommandLine,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) process_group: Option<Pid>,
    pub(crate) session: Option<Pid>,
    pub(crate) status: Status,
    pub(crate) end_reason: Option<EndReason>,
    pub(crate) exit_code: Option<i32>,
    pub(crate) kill_report: Option<String>,
    pub(crate) registered_at: SystemTime,
    pub(crate) updated_at: SystemTime,
    pub(crate) ended_at: Option<SystemTime>,
}

impl Entry {
    /// The row's id.
    pub fn id(&self) -> RowId {
        self.id
    }

    /// The registered process: boot, pid, start time.
    pub fn identity(&self) -> ProcessIdentity {
        self.identity
    }

    /// The registered process's pid (which may name another process by now).
    pub fn pid(&self) -> Pid {
        self.identity.pid()
    }

    /// The process's pidfs inode (Linux 6.9 and later), if it was known when
    /// the row was registered: a number no other process of the boot has, so
    /// it tells the registered process from a later one on the same pid even
    /// when both started within one clock tick.
    pub fn pidfs_inode(&self) -> Option<u64> {
        self.pidfs_inode
    }

    /// The owner key given at registration.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The label given at registration (empty if none).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The command line (empty if it was neither given nor readable).
    pub fn command(&self) -> &CommandLine {
        &self.command
    }

    /// The working directory, if known.
    pub fn cwd(&self) -> Option<&Path> {
        self.cwd.as_deref()
    }

    /// The process group, if known.
    pub fn process_group(&self) -> Option<Pid> {
        self.process_group
    }

    /// The session, if known.
    pub fn session(&self) -> Option<Pid> {
        self.session
    }

    /// Where the process stands.
    pub fn status(&self) -> Status {
        self.status
    }

    /// True while the status is [`Status::Running`].
    pub fn is_running(&self) -> bool {
        self.status == Status::Running
    }

    /// Who or what ended the row; `None` while it runs.
    pub fn end_reason(&self) -> Option<EndReason> {
        self.end_reason
    }

    /// The exit code, when someone reported one.
    pub fn exit_code(&self) -> Option<i32> {
        self.exit_code
    }

    /// What a [`stop`](super::Registry::stop) did to the process's tree, in
    /// words (a [`KillReport`](crate::signal::KillReport) summary).
    pub fn kill_report(&self) -> Option<&str> {
        self.kill_report.as_deref()
    }

    /// When the row was registered.
    pub fn registered_at(&self) -> SystemTime {
        self.registered_at
    }

    /// When the row last changed.
    pub fn updated_at(&self) -> SystemTime {
        self.updated_at
    }

    /// When the row was marked ended (not when the process ended: a
    /// [`reconcile`](super::Registry::reconcile) may find it long after).
    pub fn ended_at(&self) -> Option<SystemTime> {
        self.ended_at
    }
}

/// Milliseconds since the Unix epoch, as stored; times before it are 0, times
/// beyond `i64` milliseconds (292 million years) saturate.
pub(crate) fn to_millis(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// The inverse of [`to_millis`]; negative values are the epoch.
pub(crate) fn from_millis(millis: i64) -> SystemTime {
    let millis = u64::try_from(millis).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_millis(millis)
}

/// A `u64` as SQLite's signed 64-bit integer, bit for bit (start times and
/// inodes are only ever compared for equality).
pub(crate) fn u64_to_sql(value: u64) -> i64 {
    i64::from_ne_bytes(value.to_ne_bytes())
}

/// The inverse of [`u64_to_sql`].
pub(crate) fn u64_from_sql(value: i64) -> u64 {
    u64::from_ne_bytes(value.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_trip() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(from_millis(to_millis(time)), time);
        assert_eq!(
            to_millis(SystemTime::UNIX_EPOCH - Duration::from_secs(5)),
            0
        );
        assert_eq!(from_millis(-3), SystemTime::UNIX_EPOCH);
    }

    #[test]
    fn u64_round_trips_through_i64() {
        for value in [0, 1, u64::from(u32::MAX), i64::MAX as u64, u64::MAX] {
            assert_eq!(u64_from_sql(u64_to_sql(value)), value);
        }
    }

    #[test]
    fn words_round_trip() {
        for status in [
            Status::Running,
            Status::Exited,
            Status::Killed,
            Status::Lost,
        ] {
            assert_eq!(status.as_str().parse::<Status>(), Ok(status));
        }
        for reason in [
            EndReason::Reported,
            EndReason::Gone,
            EndReason::PidReused,
            EndReason::EarlierBoot,
            EndReason::Stopped,
        ] {
            assert_eq!(reason.as_str().parse::<EndReason>(), Ok(reason));
        }
        assert!("Running".parse::<Status>().is_err());
    }
}
