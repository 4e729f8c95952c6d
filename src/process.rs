//! What proctrack tells about one process: [`ProcessInfo`] and its parts.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use crate::CommandLine;
use crate::source::Sample;
use crate::{BootId, Pid, ProcessIdentity, StartTime};

/// The scheduler state of a process, from the state letter of `/proc/<pid>/stat`.
///
/// In JSON (feature `serde`) a word: `"running"`, `"disk_sleep"`, …
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// `R`: running or runnable.
    Running,
    /// `S`: interruptible sleep.
    Sleeping,
    /// `D`: uninterruptible sleep (usually I/O).
    DiskSleep,
    /// `T`: stopped by a signal.
    Stopped,
    /// `t`: stopped by a tracer.
    TracingStop,
    /// `Z`: exited, waiting for its parent to reap it.
    Zombie,
    /// `X` or `x`: being torn down.
    Dead,
    /// `I`: an idle kernel thread.
    Idle,
    /// `P`: parked (kernel thread).
    Parked,
    /// `K` or `W`: wakekill / waking (old kernels).
    Waking,
    /// A letter this version does not know.
    Unknown(char),
}

impl State {
    /// Maps a state letter.
    ///
    /// ```
    /// use proctrack::State;
    /// assert_eq!(State::from_letter(b'Z'), State::Zombie);
    /// assert_eq!(State::from_letter(b'?'), State::Unknown('?'));
    /// ```
    pub fn from_letter(letter: u8) -> State {
        match letter {
            b'R' => State::Running,
            b'S' => State::Sleeping,
            b'D' => State::DiskSleep,
            b'T' => State::Stopped,
            b't' => State::TracingStop,
            b'Z' => State::Zombie,
            b'X' | b'x' => State::Dead,
            b'I' => State::Idle,
            b'P' => State::Parked,
            b'K' | b'W' => State::Waking,
            other => State::Unknown(char::from(other)),
        }
    }

    /// True once the process has exited (zombie or dead): it can no longer run,
    /// though its pid is still taken until it is reaped.
    pub fn has_exited(self) -> bool {
        matches!(self, State::Zombie | State::Dead)
    }

    /// True when the process cannot run until continued (stopped by a
    /// signal or a tracer) or has exited: either way it cannot fork.
    pub fn is_halted(self) -> bool {
        matches!(
            self,
            State::Stopped | State::TracingStop | State::Zombie | State::Dead
        )
    }
}

/// A process's current working directory, or why it is not known.
///
/// In JSON (feature `serde`): `{"path": "/srv", "deleted": false}`, or
/// `{"path": null, "deleted": false, "reason": "not_permitted"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Cwd {
    /// The directory the process stands in.
    Path(PathBuf),
    /// The directory was removed while the process stood in it; its last path.
    Deleted(PathBuf),
    /// We may not look (another user's process, without `CAP_SYS_PTRACE`).
    NotPermitted,
    /// The process has none to report (a zombie), or it was not read.
    Unknown,
}

impl Cwd {
    /// The path, for [`Cwd::Path`] and [`Cwd::Deleted`].
    ///
    /// ```
    /// use proctrack::Cwd;
    /// assert_eq!(Cwd::Path("/srv".into()).path(), Some(std::path::Path::new("/srv")));
    /// assert_eq!(Cwd::NotPermitted.path(), None);
    /// ```
    pub fn path(&self) -> Option<&Path> {
        match self {
            Cwd::Path(path) | Cwd::Deleted(path) => Some(path),
            Cwd::NotPermitted | Cwd::Unknown => None,
        }
    }
}

/// Whether a pid names a process now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Liveness {
    /// The process exists and has not exited.
    Alive,
    /// The process has exited but its parent has not reaped it yet.
    Zombie,
    /// No process has this pid.
    Gone,
}

/// One process, as read at one moment.
///
/// With the `serde` feature it is a JSON object a web UI can use as it is;
/// the crate docs' "JSON" section tells its form.
///
/// ```no_run
/// let me = proctrack::process(proctrack::Pid::current())?;
/// println!("{} {} in {:?}", me.pid(), me.cmdline(), me.cwd().path());
/// # Ok::<(), proctrack::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub(crate) identity: ProcessIdentity,
    pub(crate) parent: Option<Pid>,
    pub(crate) name: Box<OsStr>,
    pub(crate) cmdline: CommandLine,
    pub(crate) cwd: Cwd,
    pub(crate) state: State,
    pub(crate) rss_bytes: u64,
    /// CPU times in nanoseconds: half the size of two `Duration`s, which
    /// matters in a table of thousands of rows.
    pub(crate) user_nanos: u64,
    pub(crate) system_nanos: u64,
    pub(crate) process_group: Option<Pid>,
    pub(crate) session: Option<Pid>,
    pub(crate) threads: u32,
    pub(crate) kernel_thread: bool,
    /// CPU use between a table's last two samples, in hundredths of a
    /// percent of one CPU (a fixed point keeps the type `Eq`).
    pub(crate) cpu_centi_percent: Option<u32>,
}

impl ProcessInfo {
    /// Describes a process by hand, for mocks, tests and sources of your own.
    /// Everything but the identity starts empty: no parent, empty name and
    /// arguments, [`Cwd::Unknown`], [`State::Sleeping`], zero memory and time.
    ///
    /// ```
    /// use proctrack::{BootId, Cwd, Pid, ProcessIdentity, ProcessInfo, StartTime};
    /// use proctrack::CommandLine;
    ///
    /// let identity = ProcessIdentity::new(BootId::default(), Pid::try_from(42)?, StartTime::from_raw(7));
    /// let server = ProcessInfo::builder(identity)
    ///     .parent(Some(Pid::try_from(1)?))
    ///     .name("node")
    ///     .cmdline(CommandLine::from_args(["node", "server.js"]))
    ///     .cwd(Cwd::Path("/srv/app".into()))
    ///     .build();
    /// assert_eq!(server.cmdline().to_string(), "node server.js");
    /// # Ok::<(), proctrack::Error>(())
    /// ```
    pub fn builder(identity: ProcessIdentity) -> ProcessInfoBuilder {
        ProcessInfoBuilder {
            info: ProcessInfo {
                identity,
                parent: None,
                name: Box::default(),
                cmdline: CommandLine::default(),
                cwd: Cwd::Unknown,
                state: State::Sleeping,
                rss_bytes: 0,
                user_nanos: 0,
                system_nanos: 0,
                process_group: None,
                session: None,
                threads: 1,
                kernel_thread: false,
                cpu_centi_percent: None,
            },
        }
    }

    /// Assembles a process from a sample and the parts a sample does not carry.
    pub(crate) fn from_sample(
        sample: &Sample<'_>,
        boot_id: BootId,
        cmdline: CommandLine,
        cwd: Cwd,
    ) -> ProcessInfo {
        ProcessInfo {
            identity: sample.identity(boot_id),
            parent: sample.parent,
            name: OsString::from_vec(sample.name.to_vec()).into_boxed_os_str(),
            cmdline,
            cwd,
            state: sample.state,
            rss_bytes: sample.rss_bytes,
            user_nanos: nanos(sample.user_time),
            system_nanos: nanos(sample.system_time),
            process_group: sample.process_group,
            session: sample.session,
            threads: sample.threads,
            kernel_thread: sample.kernel_thread,
            cpu_centi_percent: None,
        }
    }

    /// Takes the fields a sample carries; the command line and cwd stay. The
    /// name is taken only when `name_changed`: the caller knows it without
    /// touching the old name's heap bytes.
    pub(crate) fn apply_sample(&mut self, sample: &Sample<'_>, name_changed: bool) {
        self.parent = sample.parent;
        if name_changed {
            self.name = OsString::from_vec(sample.name.to_vec()).into_boxed_os_str();
        }
        self.state = sample.state;
        self.rss_bytes = sample.rss_bytes;
        self.user_nanos = nanos(sample.user_time);
        self.system_nanos = nanos(sample.system_time);
        self.process_group = sample.process_group;
        self.session = sample.session;
        self.threads = sample.threads;
        self.kernel_thread = sample.kernel_thread;
    }

    /// Who this process is: pid, start time, boot.
    pub fn identity(&self) -> ProcessIdentity {
        self.identity
    }

    /// The process id.
    pub fn pid(&self) -> Pid {
        self.identity.pid()
    }

    /// The parent's pid; `None` for the roots (pid 1 and the kernel's pid 2).
    pub fn parent(&self) -> Option<Pid> {
        self.parent
    }

    /// The kernel's name for the process (`comm`): the executable's file name
    /// at `exec`, cut to 15 bytes, or what the process set with `PR_SET_NAME`.
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// The arguments; empty for zombies and kernel threads.
    pub fn cmdline(&self) -> &CommandLine {
        &self.cmdline
    }

    /// The working directory, or why it is unknown.
    pub fn cwd(&self) -> &Cwd {
        &self.cwd
    }

    /// The scheduler state.
    pub fn state(&self) -> State {
        self.state
    }

    /// When the process started (see [`StartTime`] for the unit).
    pub fn start_time(&self) -> StartTime {
        self.identity.start_time()
    }

    /// Resident memory, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        self.rss_bytes
    }

    /// CPU time spent in user mode, all threads together.
    pub fn user_time(&self) -> Duration {
        Duration::from_nanos(self.user_nanos)
    }

    /// CPU time spent in the kernel on the process's behalf.
    pub fn system_time(&self) -> Duration {
        Duration::from_nanos(self.system_nanos)
    }

    /// User plus system CPU time.
    pub fn cpu_time(&self) -> Duration {
        Duration::from_nanos(self.user_nanos.saturating_add(self.system_nanos))
    }

    /// The process group id; `None` where the kernel reports 0.
    pub fn process_group(&self) -> Option<Pid> {
        self.process_group
    }

    /// The session id; `None` where the kernel reports 0.
    pub fn session(&self) -> Option<Pid> {
        self.session
    }

    /// The number of threads.
    pub fn threads(&self) -> u32 {
        self.threads
    }

    /// True for kernel threads (they cannot be signalled meaningfully).
    pub fn is_kernel_thread(&self) -> bool {
        self.kernel_thread
    }

    /// CPU use between the last two samples a [`ProcessTable`](crate::table::ProcessTable)
    /// took of the process, in percent of one CPU (so up to 100 × threads),
    /// to a hundredth. `None` until the table sampled it twice, and for a
    /// process read once, outside a table.
    ///
    /// ```no_run
    /// let mut table = proctrack::table::ProcessTable::new()?;
    /// table.refresh()?;
    /// for process in table.iter() {
    ///     if let Some(cpu) = process.cpu_percent().filter(|cpu| *cpu > 50.0) {
    ///         println!("{} {cpu:.1}%", process.pid());
    ///     }
    /// }
    /// # Ok::<(), proctrack::Error>(())
    /// ```
    pub fn cpu_percent(&self) -> Option<f32> {
        self.cpu_centi_percent.map(|centi| centi as f32 / 100.0)
    }
}

/// A percentage in hundredths, rounded; `None` for what is not one.
pub(crate) fn centi_percent(percent: f32) -> Option<u32> {
    (percent.is_finite() && percent >= 0.0).then(|| {
        (f64::from(percent) * 100.0)
            .round()
            .min(f64::from(u32::MAX)) as u32
    })
}

/// A duration in whole nanoseconds, saturating (u64 nanoseconds is 584 years).
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Builds a [`ProcessInfo`] by hand; see [`ProcessInfo::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ProcessInfoBuilder {
    info: ProcessInfo,
}

impl ProcessInfoBuilder {
    /// The parent's pid.
    pub fn parent(mut self, parent: Option<Pid>) -> Self {
        self.info.parent = parent;
        self
    }

    /// The kernel's name for the process.
    pub fn name(mut self, name: impl AsRef<OsStr>) -> Self {
        self.info.name = name.as_ref().into();
        self
    }

    /// The arguments.
    pub fn cmdline(mut self, cmdline: CommandLine) -> Self {
        self.info.cmdline = cmdline;
        self
    }

    /// The working directory.
    pub fn cwd(mut self, cwd: Cwd) -> Self {
        self.info.cwd = cwd;
        self
    }

    /// The scheduler state.
    pub fn state(mut self, state: State) -> Self {
        self.info.state = state;
        self
    }

    /// Resident memory in bytes.
    pub fn rss_bytes(mut self, rss_bytes: u64) -> Self {
        self.info.rss_bytes = rss_bytes;
        self
    }

    /// CPU time in user and in kernel mode.
    pub fn cpu_time(mut self, user: Duration, system: Duration) -> Self {
        self.info.user_nanos = nanos(user);
        self.info.system_nanos = nanos(system);
        self
    }

    /// Process group and session.
    pub fn group_and_session(mut self, process_group: Option<Pid>, session: Option<Pid>) -> Self {
        self.info.process_group = process_group;
        self.info.session = session;
        self
    }

    /// Number of threads.
    pub fn threads(mut self, threads: u32) -> Self {
        self.info.threads = threads;
        self
    }

    /// Marks a kernel thread.
    pub fn kernel_thread(mut self, kernel_thread: bool) -> Self {
        self.info.kernel_thread = kernel_thread;
        self
    }

    /// CPU use in percent of one CPU (see [`ProcessInfo::cpu_percent`]);
    /// kept to a hundredth, negative and non-finite values as none.
    pub fn cpu_percent(mut self, cpu_percent: Option<f32>) -> Self {
        self.info.cpu_centi_percent = cpu_percent.and_then(centi_percent);
        self
    }

    /// The finished description.
    pub fn build(self) -> ProcessInfo {
        self.info
    }
}
