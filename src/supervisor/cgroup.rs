//! cgroup v2 leaves for jobs: find the hierarchy, create a job's cgroup,
//! start a command inside it, list, kill, await and remove its members.
//!
//! - [`Cgroup2::locate`] finds the cgroup2 mount (in `/proc/self/mountinfo`,
//!   never hard-coded: it is `/sys/fs/cgroup` on a unified system and
//!   `/sys/fs/cgroup/unified` on a hybrid one) and our own cgroup (the
//!   `0::` line of `/proc/self/cgroup`); [`Cgroup2::probe`] says whether we
//!   may create cgroups under ours, and why.
//! - [`JobCgroup`] is one job's leaf cgroup. [`JobCgroup::command`] builds a
//!   command that enters the cgroup **before** it execs the program, so
//!   nothing of the job ever runs outside it; [`JobCgroup::kill`] kills every
//!   member at once; [`JobCgroup::wait_empty`] awaits the last exit.
//!
//! The byte-level parsers ([`parse_mountinfo_line`], [`parse_own_cgroup`],
//! [`parse_procs`], [`parse_events`]) do no I/O and accept any bytes.
//!
//! ```no_run
//! use std::time::Duration;
//! use proctrack::supervisor::cgroup::{Cgroup2, JobCgroup};
//!
//! let cgroups = Cgroup2::locate()?;
//! println!("{}", cgroups.probe()); // "writable: a test cgroup was made and removed"
//! let job = JobCgroup::create(&cgroups, "build-42")?;
//! let mut command = job.command("sh");
//! command.args(["-c", "setsid sh -c 'sleep 60 &' &"]);
//! let mut spawned = job.spawn(&mut command)?;
//! job.kill()?; // the shell, and the daemon that left its tree
//! assert!(job.wait_empty(Duration::from_secs(10))?);
//! spawned.child.wait()?;
//! job.remove()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::sys::{self, Halt};
use super::tag;
use crate::signal::{Signal, Spawned, spawn_group};
use crate::{Error, Pid, Result};

/// The shell the entry shim runs in.
const SHELL: &str = "/bin/sh";

/// The entry shim: the shell (whose pid the command will keep, as it
/// `exec`s) writes its own pid into `$1/cgroup.procs`, stops itself so the
/// spawner can confirm it is inside, then drops `$1` and execs the command
/// with its arguments untouched (`"$@"`). If the write fails, `&&` ends the
/// script: the command never runs.
const SHIM: &str = r#"echo $$ > "$1/cgroup.procs" && kill -STOP $$ && shift && exec "$@""#;

/// One mount of `/proc/<pid>/mountinfo`: the fields a supervisor needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// The directory of the filesystem that is mounted (field 4; `/` for a
    /// whole filesystem), octal escapes decoded.
    pub root: PathBuf,
    /// Where it is mounted (field 5), octal escapes decoded.
    pub mount_point: PathBuf,
    /// The filesystem type (the first field after the ` - ` separator).
    pub fs_type: Vec<u8>,
}

/// Parses one line of `/proc/<pid>/mountinfo`
/// (`36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw`).
/// `None` when the line does not have that shape. The kernel writes space,
/// tab, newline and backslash in paths as `\040`, `\011`, `\012`, `\134`;
/// they are decoded (any `\ooo` is).
///
/// ```
/// use proctrack::supervisor::cgroup::parse_mountinfo_line;
/// let line = b"41 31 0:38 / /sys/fs/my\\040cgroup rw,relatime - cgroup2 cgroup2 rw";
/// let mount = parse_mountinfo_line(line).unwrap();
/// assert_eq!(mount.mount_point, std::path::Path::new("/sys/fs/my cgroup"));
/// assert_eq!(mount.fs_type, b"cgroup2");
/// ```
pub fn parse_mountinfo_line(line: &[u8]) -> Option<Mount> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut fields = line.split(|&b| b == b' ');
    // id, parent id, major:minor
    for _ in 0..3 {
        fields.next().filter(|field| !field.is_empty())?;
    }
    let root = fields.next().filter(|field| !field.is_empty())?;
    let mount_point = fields.next().filter(|field| !field.is_empty())?;
    // Options, then optional fields up to the lone "-".
    let mut fields = fields.skip_while(|field| *field != b"-");
    fields.next()?;
    let fs_type = fields.next().filter(|field| !field.is_empty())?;
    Some(Mount {
        root: unescape_path(root),
        mount_point: unescape_path(mount_point),
        fs_type: fs_type.to_vec(),
    })
}

/// Decodes the kernel's `\ooo` octal escapes; anything else is kept as is.
fn unescape_path(bytes: &[u8]) -> PathBuf {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let digits = bytes.get(i + 1..i + 4);
        let octal = digits.filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) if d[0] <= b'3' => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    PathBuf::from(OsStr::from_bytes(&out))
}

/// The first cgroup2 mount in a whole `mountinfo` file.
pub fn find_cgroup2_mount(mountinfo: &[u8]) -> Option<Mount> {
    mountinfo
        .split(|&b| b == b'\n')
        .filter_map(parse_mountinfo_line)
        .find(|mount| mount.fs_type == b"cgroup2")
}

/// The cgroup2 path in `/proc/<pid>/cgroup`: the `0::/path` line (cgroup v1
/// lines, `N:controllers:/path`, are skipped). `None` without such a line.
///
/// ```
/// use proctrack::supervisor::cgroup::parse_own_cgroup;
/// let file = b"12:pids:/user.slice\n0::/user.slice/session-2.scope\n";
/// assert_eq!(parse_own_cgroup(file).unwrap(), std::path::Path::new("/user.slice/session-2.scope"));
/// ```
pub fn parse_own_cgroup(bytes: &[u8]) -> Option<PathBuf> {
    bytes
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"0::"))
        .filter(|path| path.starts_with(b"/"))
        .map(|path| PathBuf::from(OsStr::from_bytes(path)))
}

/// The pids in a `cgroup.procs` file, one decimal per line; lines that are
/// not a valid pid are skipped.
///
/// ```
/// use proctrack::supervisor::cgroup::parse_procs;
/// let pids = parse_procs(b"12\n345\n");
/// assert_eq!(pids.iter().map(|p| p.as_u32()).collect::<Vec<_>>(), [12, 345]);
/// ```
pub fn parse_procs(bytes: &[u8]) -> Vec<Pid> {
    bytes
        .split(|&b| b == b'\n')
        .filter_map(crate::parse::pid_token)
        .collect()
}

/// What a `cgroup.events` file says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupEvents {
    /// `populated`: whether any process lives in the cgroup or below it.
    pub populated: Option<bool>,
    /// `frozen`: whether the cgroup is frozen (`cgroup.freeze`).
    pub frozen: Option<bool>,
}

/// Parses a `cgroup.events` file (`populated 1\nfrozen 0\n`). Keys it does
/// not know, and values other than `0` and `1`, are ignored.
///
/// ```
/// use proctrack::supervisor::cgroup::parse_events;
/// assert_eq!(parse_events(b"populated 0\nfrozen 1\n").populated, Some(false));
/// ```
pub fn parse_events(bytes: &[u8]) -> CgroupEvents {
    let mut events = CgroupEvents::default();
    for line in bytes.split(|&b| b == b'\n') {
        let mut words = line.split(|&b| b == b' ');
        let (Some(key), Some(value), None) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let value = match value {
            b"0" => false,
            b"1" => true,
            _ => continue,
        };
        match key {
            b"populated" => events.populated = Some(value),
            b"frozen" => events.frozen = Some(value),
            _ => {}
        }
    }
    events
}

/// The cgroup2 hierarchy as this process sees it: where it is mounted and
/// which cgroup we are in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cgroup2 {
    mount: PathBuf,
    own: PathBuf,
}

/// Whether we may create cgroups under our own, as found by trying (see
/// [`Cgroup2::probe`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CgroupAccess {
    /// A cgroup was made under ours and removed again.
    Writable,
    /// Making one failed; `why` says what the kernel answered and what
    /// would help.
    NotWritable {
        /// What failed, for a message.
        why: String,
    },
}

impl CgroupAccess {
    /// True when job cgroups can be created.
    pub fn is_writable(&self) -> bool {
        matches!(self, CgroupAccess::Writable)
    }
}

impl fmt::Display for CgroupAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CgroupAccess::Writable => f.write_str("writable: a test cgroup was made and removed"),
            CgroupAccess::NotWritable { why } => write!(f, "not writable: {why}"),
        }
    }
}

impl Cgroup2 {
    /// Finds the cgroup2 mount in `/proc/self/mountinfo` and our cgroup in
    /// `/proc/self/cgroup`. [`Error::Unsupported`] when there is no cgroup2
    /// mount (a cgroup v1-only system, macOS) or we are in no cgroup2 cgroup.
    pub fn locate() -> Result<Cgroup2> {
        let mountinfo = read(Path::new(sys::MOUNTINFO))?;
        let own = read(Path::new(sys::OWN_CGROUP))?;
        Cgroup2::from_files(&mountinfo, &own)
    }

    /// [`locate`](Cgroup2::locate) on the given contents of `mountinfo` and
    /// `cgroup` files.
    pub fn from_files(mountinfo: &[u8], own_cgroup: &[u8]) -> Result<Cgroup2> {
        let mount = find_cgroup2_mount(mountinfo).ok_or(Error::Unsupported {
            what: "no cgroup2 filesystem is mounted (cgroup v1 only?)",
        })?;
        let own = parse_own_cgroup(own_cgroup).ok_or(Error::Unsupported {
            what: "this process is in no cgroup2 cgroup (no `0::` line in /proc/self/cgroup)",
        })?;
        // The path is relative to the hierarchy's root; a mount of a
        // subdirectory (`root` other than `/`) shows only what lies below it.
        let relative = own.strip_prefix(&mount.root).unwrap_or(&own);
        Ok(Cgroup2 {
            own: mount.mount_point.join(relative),
            mount: mount.mount_point,
        })
    }

    /// Where cgroup2 is mounted (`/sys/fs/cgroup/unified` on a hybrid system).
    pub fn mount_point(&self) -> &Path {
        &self.mount
    }

    /// Our own cgroup's directory, where job cgroups are created.
    pub fn own_dir(&self) -> &Path {
        &self.own
    }

    /// Whether we may create job cgroups under ours, found by making a
    /// cgroup there and removing it again: whether we are root, delegated a
    /// subtree, or in a container with a read-only cgroupfs, the kernel's
    /// answer is what counts.
    pub fn probe(&self) -> CgroupAccess {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "proctrack-probe.{}.{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = self.own.join(name);
        match fs::create_dir(&path) {
            Ok(()) => match fs::remove_dir(&path) {
                Ok(()) => CgroupAccess::Writable,
                Err(error) => CgroupAccess::NotWritable {
                    why: format!("made {} but could not remove it: {error}", path.display()),
                },
            },
            Err(error) => {
                let hint = if error.kind() == io::ErrorKind::PermissionDenied && !sys::is_root() {
                    format!(
                        " (run as root, or in a cgroup delegated to uid {}, e.g. systemd-run --user --scope -p Delegate=yes)",
                        sys::euid()
                    )
                } else {
                    String::new()
                };
                CgroupAccess::NotWritable {
                    why: format!("mkdir {} failed: {error}{hint}", path.display()),
                }
            }
        }
    }
}

/// One job's leaf cgroup, `proctrack-<job id>` under our own cgroup.
///
/// Dropping it removes the directory if the cgroup is empty; it never kills
/// (call [`kill`](JobCgroup::kill) first to stop a job).
#[derive(Debug)]
pub struct JobCgroup {
    path: PathBuf,
    job_id: String,
    removed: bool,
}

impl JobCgroup {
    /// Creates the leaf `proctrack-<job_id>` under our own cgroup.
    ///
    /// The job id may hold ASCII letters, digits, `-`, `_` and `.`, up to 200
    /// bytes, and must not start with `.`; a cgroup of that name must not
    /// exist yet (one cgroup per job: the name is the job's).
    pub fn create(cgroups: &Cgroup2, job_id: &str) -> Result<JobCgroup> {
        JobCgroup::create_in(cgroups.own_dir(), job_id)
    }

    /// Creates the leaf `proctrack-<job_id>` under `parent`, a cgroup2
    /// directory (see [`create`](JobCgroup::create)).
    pub fn create_in(parent: &Path, job_id: &str) -> Result<JobCgroup> {
        check_job_id(job_id)?;
        let path = parent.join(format!("{PREFIX}{job_id}"));
        fs::create_dir(&path).map_err(|error| file_error(&path, error))?;
        Ok(JobCgroup {
            path,
            job_id: job_id.to_owned(),
            removed: false,
        })
    }

    /// Opens the existing leaf `proctrack-<job_id>` under `parent`: a job's
    /// cgroup left behind by a supervisor that died (see [`leftovers`]).
    /// [`Error::NotFound`]-like [`Error::Io`] when it is not there.
    pub fn open(parent: &Path, job_id: &str) -> Result<JobCgroup> {
        check_job_id(job_id)?;
        let path = parent.join(format!("{PREFIX}{job_id}"));
        let events = path.join("cgroup.events");
        fs::metadata(&events).map_err(|error| file_error(&events, error))?;
        Ok(JobCgroup {
            path,
            job_id: job_id.to_owned(),
            removed: false,
        })
    }

    /// The cgroup's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The job id the cgroup is named after.
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// A command that runs `program` inside this cgroup, tagged with the job
    /// id ([`tag::set`]). Add arguments, environment, working directory and
    /// stdio as usual, then start it with [`spawn`](JobCgroup::spawn).
    ///
    /// It is `/bin/sh -c SHIM sh <cgroup dir> <program> <args>...`: the shell
    /// writes its own pid into the cgroup's `cgroup.procs`, then `exec`s the
    /// program with the arguments exactly as given (no shell parses them), so
    /// the job keeps the shell's pid and nothing of it runs outside the
    /// cgroup, not even for a moment. Needs no `unsafe` code and no
    /// `clone3`; costs one `sh` start.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(SHELL);
        command
            .arg("-c")
            .arg(SHIM)
            .arg("sh")
            .arg(&self.path)
            .arg(program);
        tag::set(&mut command, &self.job_id);
        command
    }

    /// The program and arguments a command made by
    /// [`command`](JobCgroup::command) will exec, without the entry shim.
    pub(super) fn user_command(command: &Command) -> impl Iterator<Item = &OsStr> {
        // -c SHIM sh <cgroup dir>
        command.get_args().skip(4)
    }

    /// Starts a command made by [`command`](JobCgroup::command) in a process
    /// group of its own ([`spawn_group`]), and returns once it is inside the
    /// cgroup and running the program.
    ///
    /// The shell stops itself (`SIGSTOP`) once its pid is in `cgroup.procs`;
    /// this call waits for that stop (`waitid(WSTOPPED | WNOWAIT)`), checks
    /// the pid is listed, and continues it. If the shell could not enter the
    /// cgroup (the write failed: the cgroup was removed, permission denied)
    /// it exits before running anything: the child is reaped and the call
    /// fails with an [`Error::Io`] naming `cgroup.procs`. A command made any
    /// other way is refused. Nothing may send the new process group `SIGCONT`
    /// before this returns (the stop is how it learns the shell is inside).
    pub fn spawn(&self, command: &mut Command) -> Result<Spawned> {
        let args: Vec<&OsStr> = command.get_args().take(4).collect();
        let ours = command.get_program() == SHELL
            && args.len() == 4
            && args[1] == SHIM
            && Path::new(args[3]) == self.path;
        if !ours {
            return Err(invalid_input(format!(
                "the command for {} was not made by JobCgroup::command",
                self.path.display()
            )));
        }
        let mut spawned = spawn_group(command)?;
        let procs = self.path.join("cgroup.procs");
        let inside = match sys::wait_stopped_or_exited(spawned.handle.pid()) {
            Ok(Halt::Stopped) => self
                .members()
                .map(|pids| pids.contains(&spawned.handle.pid())),
            Ok(Halt::Exited) => Ok(false),
            Err(error) => Err(error),
        };
        match inside {
            Ok(true) => {
                spawned.handle.signal(Signal::Cont)?;
                Ok(spawned)
            }
            outcome => {
                let _ = spawned.handle.signal(Signal::Kill);
                let status = spawned.child.wait();
                outcome?;
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                Err(Error::Io {
                    path: Some(procs),
                    source: io::Error::other(format!(
                        "the job's shell could not enter the cgroup ({status}); the command did not run"
                    )),
                })
            }
        }
    }

    /// The pids in the cgroup (`cgroup.procs`), in the kernel's order.
    pub fn members(&self) -> Result<Vec<Pid>> {
        Ok(parse_procs(&read(&self.path.join("cgroup.procs"))?))
    }

    /// Whether any process lives in the cgroup (`cgroup.events`).
    pub fn is_populated(&self) -> Result<bool> {
        let path = self.path.join("cgroup.events");
        events_populated(&path, &read(&path)?)
    }

    /// Kills every member with `cgroup.kill` (Linux 5.14+): atomic, it
    /// catches processes forked during the kill, and the kernel delivers it
    /// whatever a member's uid. Returns false, killing nothing, where the
    /// kernel has no `cgroup.kill`: stop the members with the kill engine
    /// then ([`Supervisor::stop`](super::Supervisor::stop) does both). Does
    /// not wait: follow with [`wait_empty`](JobCgroup::wait_empty). The exit
    /// statuses of our own children among the members stay ours to collect.
    pub fn kill(&self) -> Result<bool> {
        let path = self.path.join("cgroup.kill");
        match fs::write(&path, b"1") {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::NotFound && self.path.is_dir() => {
                Ok(false)
            }
            Err(error) => Err(file_error(&path, error)),
        }
    }

    /// Waits until no process lives in the cgroup (`populated 0` in
    /// `cgroup.events`), for at most `timeout`. Returns false on timeout.
    /// Event-driven: `poll(2)` with `POLLPRI` on `cgroup.events`, which the
    /// kernel raises on every change of the file.
    pub fn wait_empty(&self, timeout: Duration) -> Result<bool> {
        self.wait_events(timeout, |events| events.populated == Some(false))
    }

    /// Waits until `done` holds for `cgroup.events`, or `timeout`.
    fn wait_events(&self, timeout: Duration, done: impl Fn(&CgroupEvents) -> bool) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        let path = self.path.join("cgroup.events");
        let mut file = File::open(&path).map_err(|error| file_error(&path, error))?;
        let mut buf = Vec::with_capacity(64);
        loop {
            // Reading marks the current state as seen: poll then reports
            // only changes after it, so none is missed in between.
            buf.clear();
            file.seek(SeekFrom::Start(0))
                .and_then(|_| file.read_to_end(&mut buf))
                .map_err(|error| file_error(&path, error))?;
            events_populated(&path, &buf)?;
            if done(&parse_events(&buf)) {
                return Ok(true);
            }
            if !sys::wait_priority(&file, deadline)? {
                return Ok(false);
            }
        }
    }

    /// Freezes every member (`cgroup.freeze`): a frozen process cannot fork,
    /// so [`members`](JobCgroup::members) is then complete and stays so.
    /// Waits up to `timeout` for the kernel to report `frozen 1`; returns
    /// false if it did not (signals still reach the members).
    pub fn freeze(&self, timeout: Duration) -> Result<bool> {
        let freeze = self.path.join("cgroup.freeze");
        fs::write(&freeze, b"1").map_err(|error| file_error(&freeze, error))?;
        self.wait_events(timeout, |events| events.frozen == Some(true))
    }

    /// Lets the members run again after [`freeze`](JobCgroup::freeze).
    pub fn thaw(&self) -> Result<()> {
        let freeze = self.path.join("cgroup.freeze");
        fs::write(&freeze, b"0").map_err(|error| file_error(&freeze, error))
    }

    /// The cgroup's `memory.current` in bytes; `None` where the memory
    /// controller is not enabled for it (no such file).
    pub fn memory_current(&self) -> Result<Option<u64>> {
        let path = self.path.join("memory.current");
        match fs::read(&path) {
            Ok(bytes) => Ok(std::str::from_utf8(&bytes)
                .ok()
                .and_then(|text| text.trim().parse().ok())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(file_error(&path, error)),
        }
    }

    /// Lets go of the cgroup without removing it, for a job left running
    /// on purpose; returns its directory. (cgroup2 does not allow renaming
    /// a cgroup, so a kept job is told apart by its journal.)
    pub fn leave(mut self) -> PathBuf {
        self.removed = true;
        std::mem::take(&mut self.path)
    }

    /// Removes the cgroup (`rmdir`). Fails with [`Error::Io`] (`EBUSY`) while
    /// processes live in it: [`kill`](JobCgroup::kill) and
    /// [`wait_empty`](JobCgroup::wait_empty) first.
    pub fn remove(mut self) -> Result<()> {
        self.removed = true;
        fs::remove_dir(&self.path).map_err(|error| file_error(&self.path, error))
    }
}

impl Drop for JobCgroup {
    fn drop(&mut self) {
        if !self.removed {
            // Fails (EBUSY) while members live: a running job is not ours
            // to kill here.
            let _ = fs::remove_dir(&self.path);
        }
    }
}

/// What every job cgroup's name starts with.
const PREFIX: &str = "proctrack-";
/// The job ids of the job cgroups under `parent` (`proctrack-<job id>`):
/// what supervisors left behind, running or not. An empty list when
/// `parent` does not exist.
pub fn leftovers(parent: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(parent) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(file_error(parent, error)),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| file_error(parent, error))?;
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        if check_job_id(id).is_ok() && entry.path().is_dir() {
            ids.push(id.to_owned());
        }
    }
    ids.sort();
    Ok(ids)
}

/// A job id that can name a cgroup: ASCII letters, digits, `-`, `_` and
/// `.`, 1 to 200 bytes, not starting with `.`.
fn check_job_id(job_id: &str) -> Result<()> {
    let valid = !job_id.is_empty()
        && job_id.len() <= 200
        && !job_id.starts_with('.')
        && job_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(invalid_input(format!(
            "job id {job_id:?} cannot name a cgroup: use ASCII letters, digits, '-', '_' and '.'"
        )))
    }
}

/// The `populated` key of a `cgroup.events` file, which every non-root
/// cgroup has; its absence means the file is not what we think.
fn events_populated(path: &Path, bytes: &[u8]) -> Result<bool> {
    parse_events(bytes).populated.ok_or_else(|| Error::Io {
        path: Some(path.to_path_buf()),
        source: io::Error::new(
            io::ErrorKind::InvalidData,
            "no `populated` line: not a cgroup2 cgroup.events file",
        ),
    })
}

/// The whole file: `fs::read` reads until a read returns 0, as mountinfo
/// (a seq_file of one record per mount, short reads long before its end)
/// and `cgroup.procs` (one line per member) need.
fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|error| file_error(path, error))
}

fn file_error(path: &Path, error: io::Error) -> Error {
    Error::io(Some(path.to_path_buf()), error)
}

fn invalid_input(message: String) -> Error {
    Error::Io {
        path: None,
        source: io::Error::new(io::ErrorKind::InvalidInput, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A mountinfo of 2000 mounts (~150 KB) whose only cgroup2 mount is the
    /// last line: found. (`locate` reads the file with `fs::read`, to its
    /// end; `tests/supervisor_cgroup.rs` checks a long live one.)
    #[test]
    fn finds_cgroup2_at_the_end_of_a_long_mountinfo() {
        let mut mountinfo = Vec::new();
        for i in 0..2000 {
            mountinfo.extend(
                format!("{} 25 0:{} / /srv/mount\\040{i} rw,relatime shared:{i} - tmpfs tmpfs rw,size=1024k\n", 100 + i, 100 + i)
                    .bytes(),
            );
        }
        assert!(find_cgroup2_mount(&mountinfo).is_none());
        let filler = mountinfo.len();
        mountinfo.extend(b"2100 25 0:38 / /last/cg rw,relatime - cgroup2 cgroup2 rw\n");
        assert!(filler > 64 * 1024, "{filler} bytes before the cgroup2 line");
        let cgroups = Cgroup2::from_files(&mountinfo, b"0::/a\n").unwrap();
        assert_eq!(cgroups.mount_point(), Path::new("/last/cg"));
        assert_eq!(cgroups.own_dir(), Path::new("/last/cg/a"));
    }

    #[test]
    fn finds_cgroup2_in_a_hybrid_mountinfo() {
        let mountinfo = b"25 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
            31 25 0:26 / /sys/fs/cgroup ro shared:9 - tmpfs tmpfs ro,mode=755\n\
            41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw\n\
            42 31 0:39 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n";
        let mount = find_cgroup2_mount(mountinfo).unwrap();
        assert_eq!(mount.mount_point, Path::new("/sys/fs/cgroup/unified"));
        let cgroups = Cgroup2::from_files(mountinfo, b"12:pids:/\n0::/a/b\n").unwrap();
        assert_eq!(cgroups.own_dir(), Path::new("/sys/fs/cgroup/unified/a/b"));
    }

    #[test]
    fn decodes_octal_escapes_and_keeps_odd_backslashes() {
        let line = b"1 2 0:3 /a\\134b /m\\040n\\011o\\012p\\9 rw - cgroup2 x rw";
        let mount = parse_mountinfo_line(line).unwrap();
        assert_eq!(mount.root, Path::new("/a\\b"));
        assert_eq!(mount.mount_point, Path::new("/m n\to\np\\9"));
    }

    #[test]
    fn a_mount_of_a_subtree_is_joined_relative_to_its_root() {
        let mountinfo = b"41 31 0:38 /ns /cg rw - cgroup2 cgroup2 rw\n";
        let cgroups = Cgroup2::from_files(mountinfo, b"0::/ns/job\n").unwrap();
        assert_eq!(cgroups.own_dir(), Path::new("/cg/job"));
    }

    #[test]
    fn missing_pieces_are_unsupported() {
        let v1_only = b"42 31 0:39 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n";
        assert!(matches!(
            Cgroup2::from_files(v1_only, b"0::/\n"),
            Err(Error::Unsupported { .. })
        ));
        let mountinfo = b"41 31 0:38 / /cg rw - cgroup2 cgroup2 rw\n";
        assert!(matches!(
            Cgroup2::from_files(mountinfo, b"1:name=systemd:/\n"),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn events_and_procs() {
        let events = parse_events(b"populated 1\nfrozen 0\n");
        assert_eq!(events.populated, Some(true));
        assert_eq!(events.frozen, Some(false));
        assert_eq!(parse_events(b"populated 2\n").populated, None);
        let pids = parse_procs(b"1\n0\n-3\nx\n99999999999\n42\n");
        assert_eq!(pids.iter().map(|p| p.as_u32()).collect::<Vec<_>>(), [1, 42]);
    }

    #[test]
    fn bad_job_ids_are_refused_before_any_mkdir() {
        for id in ["", "a/b", "..", ".x", "a b"] {
            let error = JobCgroup::create_in(Path::new("/nonexistent"), id).unwrap_err();
            assert!(
                error.to_string().contains("cannot name a cgroup"),
                "{id}: {error}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]
        #[test]
        fn parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_mountinfo_line(&bytes);
            let _ = find_cgroup2_mount(&bytes);
            let _ = parse_own_cgroup(&bytes);
            let _ = parse_procs(&bytes);
            let _ = parse_events(&bytes);
            let _ = Cgroup2::from_files(&bytes, &bytes);
        }

        #[test]
        fn escaped_mount_points_round_trip(point in prop::collection::vec(1u8..=255, 1..40)) {
            let mut escaped = Vec::new();
            for &b in &point {
                if matches!(b, b' ' | b'\t' | b'\n' | b'\\') {
                    escaped.extend(format!("\\{b:03o}").bytes());
                } else {
                    escaped.push(b);
                }
            }
            let mut line = b"41 31 0:38 / ".to_vec();
            line.extend(&escaped);
            line.extend(b" rw shared:1 - cgroup2 cgroup2 rw");
            let mount = parse_mountinfo_line(&line).unwrap();
            prop_assert_eq!(mount.mount_point.as_os_str().as_bytes(), &point[..]);
        }
    }
}
