use std::ffi::{CStr, OsStr};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{Mode, OFlags, RawDir, SeekFrom};
use rustix::io::Errno;

use super::kept::{KeptRead, KeptStats};
use super::path::PidPath;
use super::split;
use crate::CommandLine;
use crate::parse::{self, Stat};
use crate::source::{ProcessSource, Sample};
use crate::{
    BootId, Cwd, Error, Liveness, ParseError, Pid, ProcessIdentity, ProcessInfo, Result, StartTime,
    State,
};

/// Size of the reused read buffer; a stat line is well under 1 KiB.
const READ_BUFFER: usize = 4096;
/// Size of the `getdents64` buffer: ~2700 entries of /proc per call.
pub(super) const DIRENT_BUFFER: usize = 64 * 1024;
/// Where the boot id lives, relative to a proc root.
const BOOT_ID: &CStr = c"sys/kernel/random/boot_id";

/// Reads processes from a proc root (normally `/proc`).
///
/// One reader holds one directory fd and reused buffers; keep it and call it
/// repeatedly rather than opening a new one per query. Any directory laid out
/// like `/proc` works, which is how the tests run on captured fixtures.
///
/// ```no_run
/// use proctrack::SystemSource;
///
/// let mut reader = SystemSource::open()?;
/// for process in reader.processes()? {
///     println!("{} {:?} {}", process.pid(), process.name(), process.cmdline());
/// }
/// # Ok::<(), proctrack::Error>(())
/// ```
#[derive(Debug)]
pub struct SystemSource {
    pub(super) root: OwnedFd,
    pub(super) root_path: PathBuf,
    boot_id: BootId,
    ticks_per_second: u64,
    page_size: u64,
    pub(super) buf: Vec<u8>,
    pub(super) dirents: Vec<MaybeUninit<u8>>,
    /// Whether `task/<tid>/children` exists here; asked on first use.
    children_files: Option<bool>,
    /// Kept-open stat fds, once [`SystemSource::keep_stat_fds`] asked for them.
    kept: Option<KeptStats>,
    /// The device of sockfs (where every socket's inode lives), `Some(None)`
    /// when it cannot be learnt; asked on first use.
    pub(super) sockfs_device: Option<Option<u64>>,
    /// Whether fd directories here can be read from a given fd number on;
    /// checked on first use.
    pub(super) fd_dirs_seek_by_number: Option<bool>,
    /// Whether a second CPU is there to share the fd walk; asked on first use.
    pub(super) two_cpus: Option<bool>,
    /// The `getdents64` buffer of the fd walk's helper thread; allocated on
    /// its first use.
    pub(super) spare_dirents: Vec<MaybeUninit<u8>>,
    /// The read buffer of that helper thread; grown on its first use.
    spare_buf: Vec<u8>,
}

impl SystemSource {
    /// Opens `/proc`.
    pub fn open() -> Result<SystemSource> {
        SystemSource::open_root("/proc")
    }

    /// Opens another proc root: a fixture directory, or procfs mounted elsewhere.
    ///
    /// The root must hold `sys/kernel/random/boot_id`, as `/proc` does.
    pub fn open_root(root: impl AsRef<Path>) -> Result<SystemSource> {
        let root_path = root.as_ref().to_path_buf();
        let root = rustix::fs::open(
            &root_path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| io_error(errno, root_path.clone()))?;
        let mut reader = SystemSource {
            root,
            root_path,
            boot_id: BootId::from_bytes([0; 16]),
            ticks_per_second: rustix::param::clock_ticks_per_second().max(1),
            page_size: rustix::param::page_size() as u64,
            buf: vec![0; READ_BUFFER],
            dirents: vec![MaybeUninit::uninit(); DIRENT_BUFFER],
            children_files: None,
            kept: None,
            sockfs_device: None,
            fd_dirs_seek_by_number: None,
            two_cpus: None,
            spare_dirents: Vec::new(),
            spare_buf: Vec::new(),
        };
        let boot_path = reader.root_path.join(OsStr::from_bytes(BOOT_ID.to_bytes()));
        // One read: a sysctl string (proc_dostring) of fixed length (a
        // 36-character uuid), copied out whole by the first read.
        let len = read_at(
            reader.root.as_fd(),
            BOOT_ID,
            &mut reader.buf,
            ReadMode::Once,
        )
        .map_err(|errno| io_error(errno, boot_path.clone()))?;
        reader.boot_id = parse::parse_boot_id(&reader.buf[..len]).map_err(|e| Error::Parse {
            path: Some(boot_path),
            source: e.into(),
        })?;
        Ok(reader)
    }

    /// The directory this reader reads.
    pub fn root(&self) -> &Path {
        &self.root_path
    }

    /// The id of the boot the processes belong to.
    pub fn boot_id(&self) -> BootId {
        self.boot_id
    }

    /// Lists the pids of all processes (thread group leaders), ascending.
    ///
    /// `pids` is cleared and refilled, so a caller that keeps it allocates
    /// nothing in steady state.
    pub fn list_pids(&mut self, pids: &mut Vec<Pid>) -> Result<()> {
        pids.clear();
        let fail = |errno| io_error(errno, self.root_path.clone());
        rustix::fs::seek(&self.root, SeekFrom::Start(0)).map_err(fail)?;
        let mut dir = RawDir::new(&self.root, &mut self.dirents);
        while let Some(entry) = dir.next() {
            if let Some(pid) = crate::parse::pid_token(entry.map_err(fail)?.file_name().to_bytes())
            {
                pids.push(pid);
            }
        }
        // procfs lists in ascending order; a fixture directory may not.
        if !pids.is_sorted() {
            pids.sort_unstable();
        }
        Ok(())
    }

    /// Appends the identity of each of `pids` now to `out`, in their order,
    /// `None` for a gone one: a read of `<pid>/stat` each. With many pids and
    /// a second CPU the reads are shared with one helper thread (see
    /// [`split`]); the answer does not depend on the threads' timing.
    pub(crate) fn identities(
        &mut self,
        pids: &[Pid],
        out: &mut Vec<Option<ProcessIdentity>>,
    ) -> Result<()> {
        let two_threads = *self.two_cpus.get_or_insert_with(split::two_cpus);
        let (root, root_path) = (self.root.as_fd(), self.root_path.as_path());
        let (ticks, page, boot) = (self.ticks_per_second, self.page_size, self.boot_id);
        let mut mine = StatReader {
            root,
            root_path,
            buf: &mut self.buf,
            ticks,
            page,
            boot,
        };
        let mut theirs = StatReader {
            root,
            root_path,
            buf: &mut self.spare_buf,
            ticks,
            page,
            boot,
        };
        let pieces =
            split::in_pieces(pids, two_threads, &mut mine, &mut theirs, |reader, pids| {
                pids.iter()
                    .map(|&pid| reader.identity(pid))
                    .collect::<Result<Vec<_>>>()
            })?;
        out.extend(pieces.into_iter().flatten());
        Ok(())
    }

    /// Keeps the `/proc/<pid>/stat` fd of each sampled process open, up to
    /// `budget` fds, and samples with `pread` on it: no `openat` and `close`
    /// per sample (the table's refresh samples every process). Raises the
    /// soft `RLIMIT_NOFILE` toward the hard limit to make room, and keeps
    /// fewer when the hard limit is too low; returns the budget granted.
    ///
    /// A kept fd answers `ESRCH` once its process is reaped, even if the pid
    /// was reused meanwhile: it never reads another process. Fds of
    /// processes that left the table are closed (see
    /// [`ProcessSource::forget`]).
    ///
    /// ```no_run
    /// use proctrack::{SystemSource, table::{ProcessTable, TableOptions}};
    ///
    /// let mut source = SystemSource::open()?;
    /// source.keep_stat_fds(4096);
    /// let mut table = ProcessTable::with_source(source, TableOptions::default())?;
    /// table.refresh()?; // one pread per known process
    /// # Ok::<(), proctrack::Error>(())
    /// ```
    pub fn keep_stat_fds(&mut self, budget: usize) -> usize {
        let kept = KeptStats::new(budget);
        let granted = kept.budget();
        self.kept = Some(kept);
        granted
    }

    /// How many stat fds are kept open now (0 unless
    /// [`keep_stat_fds`](Self::keep_stat_fds) was called).
    pub fn kept_stat_fds(&self) -> usize {
        self.kept.as_ref().map_or(0, KeptStats::len)
    }

    /// Reads the stat of `pid` into the buffer, through a kept fd if there
    /// is one, keeping the fd it opens otherwise (within the budget).
    fn read_stat_kept(&mut self, pid: Pid) -> Result<usize> {
        // One read (unless it fills the buffer) both ways: see [`read_stat`].
        let Some(kept) = self.kept.as_mut() else {
            let path = PidPath::new(pid, "stat");
            return read_at(
                self.root.as_fd(),
                path.as_c_str(),
                &mut self.buf,
                ReadMode::Once,
            )
            .map_err(|errno| file_error(&self.root_path, errno, pid, "stat"));
        };
        let fail = |errno| file_error(&self.root_path, errno, pid, "stat");
        if let KeptRead::Read(len) = kept.read(pid, &mut self.buf).map_err(fail)? {
            return Ok(len);
        }
        let path = PidPath::new(pid, "stat");
        let fd = open_at(self.root.as_fd(), path.as_c_str()).map_err(fail)?;
        let len = read_fd(&fd, &mut self.buf, ReadMode::Once).map_err(fail)?;
        if let Ok(stat) = parse::parse_stat(&self.buf[..len]) {
            kept.keep(pid, fd, StartTime::from_raw(stat.starttime));
        }
        Ok(len)
    }

    /// Reads and parses `/proc/<pid>/stat`, borrowing the reader's buffer.
    ///
    /// This is the cheap call: one `openat`, one `read`, one `close`. The pid
    /// is not checked to be a process rather than a thread; see [`Self::process`].
    pub fn stat(&mut self, pid: Pid) -> Result<Stat<'_>> {
        let path = PidPath::new(pid, "stat");
        read_stat(
            self.root.as_fd(),
            path.as_c_str(),
            &mut self.buf,
            &self.root_path,
            pid,
        )
    }

    /// Reads one process: stat, command line and working directory.
    ///
    /// `pid` must be a process: a thread id that is not its thread group's
    /// leader is [`Error::NotFound`], as is a pid no process has.
    pub fn process(&mut self, pid: Pid) -> Result<ProcessInfo> {
        let dir = self.open_pid_dir(pid)?;
        self.check_leader(dir.as_fd(), pid)?;
        self.read_pinned(dir.as_fd(), pid).map(|(info, _)| info)
    }

    /// Reads every process. One that exits during the scan is left out; none
    /// is ever half-read.
    pub fn processes(&mut self) -> Result<Vec<ProcessInfo>> {
        let mut pids = Vec::new();
        self.list_pids(&mut pids)?;
        let mut out = Vec::with_capacity(pids.len());
        for pid in pids {
            match self
                .open_pid_dir(pid)
                .and_then(|dir| self.read_pinned(dir.as_fd(), pid))
            {
                Ok((info, _)) => out.push(info),
                Err(Error::NotFound { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(out)
    }

    /// Tells whether `pid` is a live process, a zombie, or gone. A thread id
    /// that is not a thread group leader is [`Liveness::Gone`]: no process has
    /// that pid.
    pub fn exists(&mut self, pid: Pid) -> Result<Liveness> {
        let dir = match self.open_pid_dir(pid) {
            Ok(dir) => dir,
            Err(Error::NotFound { .. }) => return Ok(Liveness::Gone),
            Err(other) => return Err(other),
        };
        let state = self.check_leader(dir.as_fd(), pid).and_then(|()| {
            self.stat_in(dir.as_fd(), pid)
                .map(|stat| State::from_letter(stat.state))
        });
        match state {
            Ok(state) if state.has_exited() => Ok(Liveness::Zombie),
            Ok(_) => Ok(Liveness::Alive),
            Err(Error::NotFound { .. }) => Ok(Liveness::Gone),
            Err(other) => Err(other),
        }
    }

    /// Reads `/proc/<pid>/cmdline` whole, however long.
    pub fn cmdline(&mut self, pid: Pid) -> Result<CommandLine> {
        let dir = self.open_pid_dir(pid)?;
        self.cmdline_in(dir.as_fd(), pid)
    }

    /// Reads `/proc/<pid>/cwd`. Permission denied is [`Cwd::NotPermitted`], not
    /// an error: other users' processes show their stat but not their cwd.
    pub fn cwd(&mut self, pid: Pid) -> Result<Cwd> {
        let dir = self.open_pid_dir(pid)?;
        self.cwd_in(dir.as_fd(), pid)
    }

    /// Opens `/proc/<pid>` as a pin: files opened through it belong to this
    /// process or fail with ESRCH/ENOENT, even if the pid is reused meanwhile.
    fn open_pid_dir(&self, pid: Pid) -> Result<OwnedFd> {
        let path = PidPath::new(pid, "");
        rustix::fs::openat(
            &self.root,
            path.as_c_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| file_error(&self.root_path, errno, pid, ""))
    }

    /// Everything about the process `dir` pins: all three files are read through
    /// the pin, so they describe one process. Stat goes first: its exec
    /// marker is then never newer than the command line read after it, so an
    /// `execve` that lands between the reads shows as a changed marker at the
    /// next sample. (Read last, a new marker could sit with the old command
    /// line, and no later sample would tell.)
    fn read_pinned(&mut self, dir: BorrowedFd<'_>, pid: Pid) -> Result<(ProcessInfo, u64)> {
        let (boot_id, ticks, page) = (self.boot_id, self.ticks_per_second, self.page_size);
        let stat = self.stat_in(dir, pid)?;
        let (mut info, exec_marker) = match sample_from_stat(&stat, ticks, page) {
            Some(sample) if sample.pid == pid => (
                ProcessInfo::from_sample(&sample, boot_id, CommandLine::default(), Cwd::Unknown),
                sample.exec_marker,
            ),
            _ => {
                let found = stat.pid;
                return Err(parse_error(
                    &self.root_path,
                    pid,
                    "stat",
                    ParseError::OtherPid {
                        expected: pid,
                        found,
                    },
                ));
            }
        };
        info.cmdline = self.cmdline_in(dir, pid)?;
        info.cwd = self.cwd_in(dir, pid)?;
        Ok((info, exec_marker))
    }

    fn stat_in(&mut self, dir: BorrowedFd<'_>, pid: Pid) -> Result<Stat<'_>> {
        read_stat(dir, c"stat", &mut self.buf, &self.root_path, pid)
    }

    fn cmdline_in(&mut self, dir: BorrowedFd<'_>, pid: Pid) -> Result<CommandLine> {
        // To the end: served a page at a time, of any length.
        let len = read_at(dir, c"cmdline", &mut self.buf, ReadMode::ToEnd)
            .map_err(|errno| file_error(&self.root_path, errno, pid, "cmdline"))?;
        let cmdline = CommandLine::from_raw(self.buf[..len].to_vec());
        self.shrink_buffer();
        Ok(cmdline)
    }

    fn cwd_in(&mut self, dir: BorrowedFd<'_>, pid: Pid) -> Result<Cwd> {
        match rustix::fs::readlinkat(dir, c"cwd", Vec::new()) {
            Ok(target) => Ok(parse::parse_cwd_link(target.as_bytes())),
            Err(Errno::ACCESS | Errno::PERM) => Ok(Cwd::NotPermitted),
            // A zombie has no cwd; a gone process has no stat either.
            Err(Errno::NOENT) => self.stat_in(dir, pid).map(|_| Cwd::Unknown),
            Err(errno) => Err(file_error(&self.root_path, errno, pid, "cwd")),
        }
    }

    /// Fails with NotFound when `pid` names a thread rather than a process.
    fn check_leader(&mut self, dir: BorrowedFd<'_>, pid: Pid) -> Result<()> {
        // One read: status is rendered whole by single_open (one record,
        // however many groups the process is in), so the first read returns
        // all of it unless it fills the buffer, and then `read_fd` goes on.
        // Checked by `tests::status_of_a_thread_in_many_groups_is_read_whole`.
        let len = read_at(dir, c"status", &mut self.buf, ReadMode::Once)
            .map_err(|errno| file_error(&self.root_path, errno, pid, "status"))?;
        match parse::parse_status_tgid(&self.buf[..len]) {
            Some(tgid) if tgid == pid.as_raw() => Ok(()),
            Some(_) => Err(Error::NotFound { pid }),
            None => Err(parse_error(
                &self.root_path,
                pid,
                "status",
                ParseError::NoTgid,
            )),
        }
    }

    /// Whether this kernel has `task/<tid>/children` (CONFIG_PROC_CHILDREN),
    /// asked once of our own thread.
    fn has_children_files(&mut self) -> Result<bool> {
        if let Some(known) = self.children_files {
            return Ok(known);
        }
        let known = match rustix::fs::accessat(
            &self.root,
            c"thread-self/children",
            rustix::fs::Access::EXISTS,
            rustix::fs::AtFlags::empty(),
        ) {
            Ok(()) => true,
            Err(Errno::NOENT) => false,
            Err(errno) => return Err(io_error(errno, self.root_path.join("thread-self/children"))),
        };
        self.children_files = Some(known);
        Ok(known)
    }

    /// Reads `/proc/<pid>/task/<tid>/<leaf>` of every thread of `pid` (as
    /// `mode` says: see [`ReadMode`]) and hands each file's bytes to `visit`
    /// until it returns false. A thread that exits meanwhile is skipped; a
    /// gone process is [`Error::NotFound`].
    fn for_each_thread(
        &mut self,
        pid: Pid,
        leaf: &str,
        mode: ReadMode,
        mut visit: impl FnMut(&[u8]) -> bool,
    ) -> Result<()> {
        let task = rustix::fs::openat(
            &self.root,
            PidPath::new(pid, "task").as_c_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| file_error(&self.root_path, errno, pid, "task"))?;
        let mut dir = RawDir::new(&task, &mut self.dirents);
        while let Some(entry) = dir.next() {
            let entry = entry.map_err(|errno| file_error(&self.root_path, errno, pid, "task"))?;
            let Some(tid) = crate::parse::pid_token(entry.file_name().to_bytes()) else {
                continue;
            };
            let name = PidPath::new(tid, leaf);
            let len = match read_at(task.as_fd(), name.as_c_str(), &mut self.buf, mode) {
                Ok(len) => len,
                // The thread exited since the listing.
                Err(Errno::NOENT | Errno::SRCH) => continue,
                Err(errno) => return Err(file_error(&self.root_path, errno, pid, "task")),
            };
            if !visit(&self.buf[..len]) {
                break;
            }
        }
        Ok(())
    }

    /// A megabyte command line should not pin a megabyte for the reader's life.
    fn shrink_buffer(&mut self) {
        if self.buf.len() > READ_BUFFER {
            self.buf.truncate(READ_BUFFER);
            self.buf.shrink_to_fit();
        }
    }
}

/// How far to read a file. Only a read that returns 0 ends a file in
/// general: a short read does not.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadMode {
    /// Files the kernel renders whole on the first read: seq_files of one
    /// record (`single_open`: stat, status) and short sysctl strings. One
    /// `read` suffices unless it filled the buffer, and it saves the second
    /// `read` (of 0 bytes) on the hot stat path. Every use names its reason.
    Once,
    /// Everything else: files served in pieces (cmdline, environ: a page per
    /// read) and seq_files of many records (`task/<tid>/children`,
    /// `net/tcp`), whose reads hand out only the whole records that fit the
    /// kernel's page (4092 bytes of children, 682 pids) and so come back
    /// short long before the end. Read until a read returns 0.
    ToEnd,
}

/// Opens `name` under `dir`, reads it into `buf` (growing it as needed) and
/// closes it. Returns the number of bytes read.
pub(super) fn read_at(
    dir: BorrowedFd<'_>,
    name: &CStr,
    buf: &mut Vec<u8>,
    mode: ReadMode,
) -> Result<usize, Errno> {
    let fd = open_at(dir, name)?;
    read_fd(&fd, buf, mode)
}

fn open_at(dir: BorrowedFd<'_>, name: &CStr) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
}

/// Reads an open file from its current offset into `buf`, growing it as
/// needed. Returns the number of bytes read.
fn read_fd(fd: &OwnedFd, buf: &mut Vec<u8>, mode: ReadMode) -> Result<usize, Errno> {
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            buf.resize(buf.len().max(READ_BUFFER) * 2, 0);
        }
        let n = rustix::io::read(fd, &mut buf[filled..])?;
        filled += n;
        let more_possible = filled == buf.len() || mode == ReadMode::ToEnd;
        if n == 0 || !more_possible {
            return Ok(filled);
        }
    }
}

/// Reads and parses the stat file `name` under `dir`: the one place a stat is
/// read, whether through the proc root (`<pid>/stat`) or a pinned pid dir.
fn read_stat<'a>(
    dir: BorrowedFd<'_>,
    name: &CStr,
    buf: &'a mut Vec<u8>,
    root_path: &Path,
    pid: Pid,
) -> Result<Stat<'a>> {
    // One read: stat is a single_open seq_file (one record), rendered whole
    // by the first read; `read_fd` reads on if it fills the buffer.
    let len = read_at(dir, name, buf, ReadMode::Once)
        .map_err(|errno| file_error(root_path, errno, pid, "stat"))?;
    parse::parse_stat(&buf[..len]).map_err(|e| parse_error(root_path, pid, "stat", e.into()))
}

/// What one thread needs to read identities: the proc root, shared, and a
/// buffer of its own.
struct StatReader<'a> {
    root: BorrowedFd<'a>,
    root_path: &'a Path,
    buf: &'a mut Vec<u8>,
    ticks: u64,
    page: u64,
    boot: BootId,
}

impl StatReader<'_> {
    /// The identity of `pid` now; `None` when it is gone.
    fn identity(&mut self, pid: Pid) -> Result<Option<ProcessIdentity>> {
        let path = PidPath::new(pid, "stat");
        let stat = match read_stat(self.root, path.as_c_str(), self.buf, self.root_path, pid) {
            Ok(stat) => stat,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(other) => return Err(other),
        };
        let sample = sample_of(&stat, pid, self.ticks, self.page, self.root_path)?;
        Ok(Some(sample.identity(self.boot)))
    }
}

/// Reads `/proc/<pid>/stat` once, without a reader, and hands it to
/// `decode`; `Ok(None)` when no process has the pid. For the signal layer's
/// identity checks; the same read and decoder as every other stat read.
pub(crate) fn read_stat_once<T>(
    pid: Pid,
    decode: impl FnOnce(&Stat<'_>) -> T,
) -> Result<Option<T>> {
    static PROC: std::sync::OnceLock<std::result::Result<OwnedFd, Errno>> =
        std::sync::OnceLock::new();
    let proc_path = Path::new("/proc");
    let root = PROC
        .get_or_init(|| {
            rustix::fs::open(
                proc_path,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
        })
        .as_ref()
        .map_err(|errno| io_error(*errno, proc_path.to_path_buf()))?;
    let mut buf = vec![0; 1024];
    let name = PidPath::new(pid, "stat");
    match read_stat(root.as_fd(), name.as_c_str(), &mut buf, proc_path, pid) {
        Ok(stat) => Ok(Some(decode(&stat))),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(other) => Err(other),
    }
}

fn file_path(root_path: &Path, pid: Pid, leaf: &str) -> PathBuf {
    let mut path = root_path.join(pid.to_string());
    if !leaf.is_empty() {
        path.push(leaf);
    }
    path
}

fn parse_error(root_path: &Path, pid: Pid, leaf: &str, source: ParseError) -> Error {
    Error::Parse {
        path: Some(file_path(root_path, pid, leaf)),
        source,
    }
}

/// Gone (ENOENT, ESRCH) is NotFound; anything else names the file.
pub(super) fn file_error(root_path: &Path, errno: Errno, pid: Pid, leaf: &str) -> Error {
    match errno {
        Errno::NOENT | Errno::SRCH => Error::NotFound { pid },
        other => io_error(other, file_path(root_path, pid, leaf)),
    }
}

pub(super) fn io_error(errno: Errno, path: PathBuf) -> Error {
    Error::io(Some(path), errno.into())
}

/// Converts clock ticks to a duration without overflow or rounding drift.
pub(crate) fn ticks_to_duration(ticks: u64, ticks_per_second: u64) -> Duration {
    let hz = ticks_per_second.max(1);
    let nanos = u128::from(ticks % hz) * 1_000_000_000 / u128::from(hz);
    Duration::new(ticks / hz, nanos as u32)
}

/// The table's view of a parsed stat line. `None` when the stat's own pid is
/// not a valid pid.
pub(crate) fn sample_from_stat<'a>(
    stat: &Stat<'a>,
    ticks_per_second: u64,
    page_size: u64,
) -> Option<Sample<'a>> {
    let positive = |raw: i32| Pid::try_from(raw).ok();
    Some(Sample {
        pid: Pid::try_from(stat.pid).ok()?,
        start_time: StartTime::from_raw(stat.starttime),
        parent: positive(stat.ppid),
        name: stat.comm,
        state: State::from_letter(stat.state),
        rss_bytes: u64::try_from(stat.rss)
            .unwrap_or(0)
            .saturating_mul(page_size),
        user_time: ticks_to_duration(stat.utime, ticks_per_second),
        system_time: ticks_to_duration(stat.stime, ticks_per_second),
        process_group: positive(stat.pgrp),
        session: positive(stat.session),
        threads: u32::try_from(stat.num_threads).unwrap_or(0),
        kernel_thread: stat.is_kernel_thread(),
        exec_marker: exec_marker(stat.startcode, stat.endcode),
    })
}

/// The sample in `stat`, which was read as the stat of `pid`: an error if
/// it is another pid's.
fn sample_of<'a>(
    stat: &Stat<'a>,
    pid: Pid,
    ticks_per_second: u64,
    page_size: u64,
    root_path: &Path,
) -> Result<Sample<'a>> {
    match sample_from_stat(stat, ticks_per_second, page_size) {
        Some(sample) if sample.pid == pid => Ok(sample),
        _ => Err(parse_error(
            root_path,
            pid,
            "stat",
            ParseError::OtherPid {
                expected: pid,
                found: stat.pid,
            },
        )),
    }
}

/// A new program maps a new text segment, so its addresses tell an `exec` the
/// name alone misses (same binary again, under ASLR). They read as 1 when we may
/// not ptrace the process and as 0 for zombies and kernel threads: unknown, 0.
fn exec_marker(startcode: u64, endcode: u64) -> u64 {
    if startcode <= 1 && endcode <= 1 {
        0
    } else {
        (startcode.rotate_left(32) ^ endcode).max(1)
    }
}

impl ProcessSource for SystemSource {
    fn boot_id(&self) -> BootId {
        self.boot_id
    }

    fn list_pids(&mut self, pids: &mut Vec<Pid>) -> Result<()> {
        SystemSource::list_pids(self, pids)
    }

    fn sample(&mut self, pid: Pid) -> Result<Sample<'_>> {
        let (ticks, page) = (self.ticks_per_second, self.page_size);
        let len = self.read_stat_kept(pid)?;
        let stat = parse::parse_stat(&self.buf[..len])
            .map_err(|e| parse_error(&self.root_path, pid, "stat", e.into()))?;
        sample_of(&stat, pid, ticks, page, &self.root_path)
    }

    fn forget(&mut self, identity: ProcessIdentity) {
        if let Some(kept) = self.kept.as_mut() {
            kept.forget(identity);
        }
    }

    fn read(&mut self, pid: Pid) -> Result<(ProcessInfo, u64)> {
        let dir = self.open_pid_dir(pid)?;
        self.read_pinned(dir.as_fd(), pid)
    }

    fn children(&mut self, pid: Pid, children: &mut Vec<Pid>) -> Result<bool> {
        children.clear();
        if !self.has_children_files()? {
            return Ok(false);
        }
        // To the end: a seq_file of one record per child, whose first read
        // returns at most 682 of them (issue 18).
        self.for_each_thread(pid, "children", ReadMode::ToEnd, |text| {
            parse::parse_children(text, children);
            true
        })?;
        self.shrink_buffer();
        Ok(true)
    }

    fn thread_states(&mut self, pid: Pid, states: &mut Vec<State>) -> Result<()> {
        states.clear();
        let root_path = self.root_path.clone();
        let mut failure = None;
        // One read per thread: a task's stat is single_open, like a process's.
        self.for_each_thread(
            pid,
            "stat",
            ReadMode::Once,
            |text| match parse::parse_stat(text) {
                Ok(stat) => {
                    states.push(State::from_letter(stat.state));
                    true
                }
                Err(cause) => {
                    failure = Some(parse_error(&root_path, pid, "task/stat", cause.into()));
                    false
                }
            },
        )?;
        failure.map_or(Ok(()), Err)
    }

    /// Reads `/proc/<pid>/environ` through a pin of `/proc/<pid>`, then
    /// checks the start time through the same pin.
    ///
    /// ```no_run
    /// use proctrack::{Pid, ProcessSource, SystemSource, supervisor::tag};
    /// let mut source = SystemSource::open()?;
    /// let me = proctrack::process(Pid::current())?.identity();
    /// if let Some(environ) = source.environ(me)? {
    ///     println!("job: {:?}", tag::job_of(&environ));
    /// }
    /// # Ok::<(), proctrack::Error>(())
    /// ```
    fn environ(&mut self, identity: ProcessIdentity) -> Result<Option<Vec<u8>>> {
        let pid = identity.pid();
        if identity.boot_id() != self.boot_id {
            return Err(Error::NotFound { pid });
        }
        let dir = self.open_pid_dir(pid)?;
        // To the end: served a page at a time, like cmdline.
        let environ = match read_at(dir.as_fd(), c"environ", &mut self.buf, ReadMode::ToEnd) {
            Ok(len) => Some(self.buf[..len].to_vec()),
            Err(Errno::ACCESS | Errno::PERM) => None,
            Err(errno) => return Err(file_error(&self.root_path, errno, pid, "environ")),
        };
        self.shrink_buffer();
        let start = self.stat_in(dir.as_fd(), pid)?.starttime;
        if start == identity.start_time().as_raw() {
            Ok(environ)
        } else {
            Err(Error::NotFound { pid })
        }
    }

    fn uid(&mut self, identity: ProcessIdentity) -> Result<Option<u32>> {
        let pid = identity.pid();
        if identity.boot_id() != self.boot_id {
            return Err(Error::NotFound { pid });
        }
        let dir = self.open_pid_dir(pid)?;
        let uid = rustix::fs::fstat(&dir)
            .map_err(|errno| file_error(&self.root_path, errno, pid, ""))?
            .st_uid;
        // The fd holds that process's directory: its stat tells whether
        // the process is the one asked about.
        let start = self.stat_in(dir.as_fd(), pid)?.starttime;
        if start == identity.start_time().as_raw() {
            Ok(Some(uid))
        } else {
            Err(Error::NotFound { pid })
        }
    }

    fn read_cwd(&mut self, identity: ProcessIdentity) -> Result<Cwd> {
        let pid = identity.pid();
        if identity.boot_id() != self.boot_id {
            return Err(Error::NotFound { pid });
        }
        let dir = self.open_pid_dir(pid)?;
        let cwd = self.cwd_in(dir.as_fd(), pid)?;
        // The pin makes both reads one process's; the start time says whose.
        let start = self.stat_in(dir.as_fd(), pid)?.starttime;
        if start == identity.start_time().as_raw() {
            Ok(cwd)
        } else {
            Err(Error::NotFound { pid })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `status` is read once (`ReadMode::Once`) because single_open renders
    /// it whole: checked on a status far longer than the reader's buffer
    /// and than the kernel's first page, that of a thread in 65536
    /// supplementary groups (a `Groups:` line of ~460 KB). The raw
    /// `setgroups` call changes the calling thread's credentials only, so
    /// the rest of the test process is untouched.
    #[test]
    fn status_of_a_thread_in_many_groups_is_read_whole() {
        std::thread::spawn(|| {
            let groups: Vec<rustix::process::Gid> = (0..65536u32)
                .map(|i| rustix::process::Gid::from_raw(1_000_000 + i))
                .collect();
            if let Err(errno) = rustix::thread::set_thread_groups(&groups) {
                println!("skipped: setgroups of 65536 groups for one thread: {errno} (not root?)");
                return;
            }
            let mut reader = SystemSource::open().expect("open /proc");
            let tid = rustix::thread::gettid().as_raw_nonzero().get();
            let name = std::ffi::CString::new(format!("self/task/{tid}/status")).expect("name");
            let len = read_at(reader.root.as_fd(), &name, &mut reader.buf, ReadMode::Once)
                .expect("read status once");
            let whole =
                std::fs::read(format!("/proc/self/task/{tid}/status")).expect("read to end");
            assert!(
                whole.len() > 64 * 1024,
                "status is only {} bytes",
                whole.len()
            );
            // Counters (context switches, memory) move between the two
            // reads: compare the fields' names, and the groups in full.
            let once = &reader.buf[..len];
            let names = |text: &[u8]| -> Vec<Vec<u8>> {
                text.split(|&b| b == b'\n')
                    .map(|line| line.split(|&b| b == b':').next().unwrap_or(b"").to_vec())
                    .collect()
            };
            let groups = |text: &[u8]| -> Vec<u8> {
                text.split(|&b| b == b'\n')
                    .find(|line| line.starts_with(b"Groups:"))
                    .unwrap_or(b"")
                    .to_vec()
            };
            assert!(names(once) == names(&whole), "fields differ");
            assert!(groups(once) == groups(&whole), "groups differ");
            assert_eq!(groups(once).split(|&b| b == b' ').count(), 65536 + 1);
            assert!(once.ends_with(b"\n"));
            // And the same for the thread's stat (short, but of the same kind).
            let name = std::ffi::CString::new(format!("self/task/{tid}/stat")).expect("name");
            let len = read_at(reader.root.as_fd(), &name, &mut reader.buf, ReadMode::Once)
                .expect("read stat once");
            assert!(parse::parse_stat(&reader.buf[..len]).is_ok());
        })
        .join()
        .expect("the thread in many groups");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn ticks_convert_exactly(ticks in any::<u64>(), hz in prop::sample::select(vec![100u64, 250, 300, 1000])) {
            let d = ticks_to_duration(ticks, hz);
            prop_assert_eq!(d.as_secs(), ticks / hz);
            prop_assert_eq!(u128::from(d.subsec_nanos()), u128::from(ticks % hz) * 1_000_000_000 / u128::from(hz));
        }
    }
}
