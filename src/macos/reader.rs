use std::ffi::CStr;
use std::io;
use std::time::Duration;

use libc::c_char;
use libproc::kinfo::KinfoProc;
use libproc::proc_pid::pidinfo;
use libproc::task_info::TaskAllInfo;

use crate::CommandLine;
use crate::ffi;
use crate::parse;
use crate::source::{ProcessSource, Sample};
use crate::{
    BootId, Cwd, Error, Liveness, Pid, ProcessIdentity, ProcessInfo, Result, StartTime, State,
};

/// `PROC_FLAG_SYSTEM` in `pbi_flags`: a system (kernel) process.
const PROC_FLAG_SYSTEM: u32 = 0x1;
/// `P_SYSTEM` in `kinfo_proc`'s `p_flag`: the same flag, BSD-side.
const P_SYSTEM: i32 = 0x200;
/// The boot's random id, a UUID string.
const BOOT_SESSION: &CStr = c"kern.bootsessionuuid";
/// Room for the longest process name, `pbi_name` (2 × `MAXCOMLEN`).
const NAME_LEN: usize = 32;
/// `MAXPATHLEN`: the size of `vip_path`.
const VIP_PATH: usize = 1024;
/// A command-line buffer larger than this is dropped after use.
const ARGS_KEEP: usize = 64 * 1024;

/// Reads processes on macOS through libproc and `sysctl`.
///
/// One reader holds the boot id, the Mach timebase and reused buffers; keep it
/// and call it repeatedly. What is weaker than on Linux (no pin or pidfd,
/// start times in wall-clock microseconds, less about other users' processes
/// unless running as root) is listed in the [crate docs](crate#macos).
///
/// Each field comes from one call: the pid list from `proc_listallpids`; the
/// parent, name, state, start time, group, RSS, CPU times and threads from
/// `proc_pidinfo(PROC_PIDTASKALLINFO)`, or from `sysctl(KERN_PROC_PID)` for
/// processes that call refuses (other users', zombies); the session from
/// `getsid`; the command line from `sysctl(KERN_PROCARGS2)`; the working
/// directory from `proc_pidinfo(PROC_PIDVNODEPATHINFO)`; the boot id from
/// `sysctl kern.bootsessionuuid`.
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
    boot_id: BootId,
    /// One Mach tick is `.0 / .1` nanoseconds.
    timebase: (u32, u32),
    /// The `KERN_PROCARGS2` buffer.
    args: Vec<u8>,
    /// The raw `proc_listallpids` buffer.
    raw_pids: Vec<libc::c_int>,
    /// The last sample, which [`ProcessSource::sample`] lends out.
    last: Option<Basic>,
}

/// What one `proc_pidinfo` or `kinfo_proc` read tells: a [`Sample`], owned.
#[derive(Debug, Clone, Copy)]
struct Basic {
    pid: Pid,
    start_time: StartTime,
    parent: Option<Pid>,
    name: [u8; NAME_LEN],
    name_len: usize,
    state: State,
    rss_bytes: u64,
    user_time: Duration,
    system_time: Duration,
    process_group: Option<Pid>,
    session: Option<Pid>,
    threads: u32,
    kernel_thread: bool,
}

impl Basic {
    fn sample(&self) -> Sample<'_> {
        Sample {
            pid: self.pid,
            start_time: self.start_time,
            parent: self.parent,
            name: &self.name[..self.name_len],
            state: self.state,
            rss_bytes: self.rss_bytes,
            user_time: self.user_time,
            system_time: self.system_time,
            process_group: self.process_group,
            session: self.session,
            threads: self.threads,
            kernel_thread: self.kernel_thread,
            // Nothing cheap on macOS changes at exec; the table falls back on
            // the name.
            exec_marker: 0,
        }
    }
}

impl SystemSource {
    /// Reads the boot id and the Mach timebase.
    pub fn open() -> Result<SystemSource> {
        let raw =
            ffi::sysctl_bytes(BOOT_SESSION).map_err(|e| sys_error(e, "kern.bootsessionuuid"))?;
        let boot_id =
            parse::parse_boot_id(parse::c_string_bytes(&raw)).map_err(|e| Error::Parse {
                path: None,
                source: e.into(),
            })?;
        Ok(SystemSource {
            boot_id,
            timebase: ffi::mach_timebase(),
            args: Vec::new(),
            raw_pids: Vec::new(),
            last: None,
        })
    }

    /// The id of the boot the processes belong to (`kern.bootsessionuuid`).
    pub fn boot_id(&self) -> BootId {
        self.boot_id
    }

    /// Lists the pids of all processes, ascending, without pid 0
    /// (`kernel_task`, which cannot be signalled).
    ///
    /// `pids` is cleared and refilled, so a caller that keeps it allocates
    /// nothing in steady state.
    pub fn list_pids(&mut self, pids: &mut Vec<Pid>) -> Result<()> {
        pids.clear();
        ffi::list_all_pids(&mut self.raw_pids).map_err(|e| sys_error(e, "proc_listallpids"))?;
        pids.extend(
            self.raw_pids
                .iter()
                .filter_map(|&raw| Pid::try_from(raw).ok()),
        );
        pids.sort_unstable();
        pids.dedup();
        Ok(())
    }

    /// Reads one process: the task and BSD fields, command line and working
    /// directory, checked to be of one process.
    pub fn process(&mut self, pid: Pid) -> Result<ProcessInfo> {
        self.read_checked(pid)
    }

    /// Reads every process. One that exits during the scan is left out.
    pub fn processes(&mut self) -> Result<Vec<ProcessInfo>> {
        let mut pids = Vec::new();
        self.list_pids(&mut pids)?;
        let mut out = Vec::with_capacity(pids.len());
        for pid in pids {
            match self.read_checked(pid) {
                Ok(info) => out.push(info),
                Err(Error::NotFound { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(out)
    }

    /// Tells whether `pid` is a live process, a zombie, or gone. One
    /// `sysctl`, which answers for every user's processes.
    pub fn exists(&mut self, pid: Pid) -> Result<Liveness> {
        match kinfo(pid)? {
            Some(info) if state_of(&info).has_exited() => Ok(Liveness::Zombie),
            Some(_) => Ok(Liveness::Alive),
            None => Ok(Liveness::Gone),
        }
    }

    /// Reads the command line (`KERN_PROCARGS2`). Empty for another user's
    /// process (unless running as root) and for a zombie.
    pub fn cmdline(&mut self, pid: Pid) -> Result<CommandLine> {
        let start = start_now(pid)?;
        let cmdline = self.cmdline_of(pid);
        check_start(pid, start)?;
        Ok(cmdline)
    }

    /// Reads the working directory. Another user's process is
    /// [`Cwd::NotPermitted`], not an error.
    pub fn cwd(&mut self, pid: Pid) -> Result<Cwd> {
        let start = start_now(pid)?;
        let cwd = cwd_of(pid)?;
        check_start(pid, start)?;
        Ok(cwd)
    }

    /// The fields of a sample: one `proc_pidinfo(PROC_PIDTASKALLINFO)`, or
    /// `sysctl(KERN_PROC_PID)` when that is refused, and `getsid`.
    fn basic(&self, pid: Pid) -> Result<Basic> {
        let mut basic = match pidinfo::<TaskAllInfo>(pid.as_raw(), 0) {
            Ok(all) if all.pbsd.pbi_pid == pid.as_u32() => {
                basic_from_task(pid, &all, self.timebase)
            }
            // Refused (another user's process: EPERM), a zombie (its task is
            // gone: ESRCH) or gone. The sysctl tells which, and has the BSD
            // fields of the first two. libproc's error is a string, so it is
            // not inspected.
            _ => match kinfo(pid)? {
                Some(info) => basic_from_kinfo(pid, &info),
                None => return Err(Error::NotFound { pid }),
            },
        };
        basic.session = ffi::session_of(pid.as_raw())
            .ok()
            .and_then(|sid| Pid::try_from(sid).ok());
        Ok(basic)
    }

    /// A full read: the sample's fields first, then the command line and
    /// working directory, then the start time again. Without a pin this is how
    /// the parts are known to be one process's: a pid held by the same
    /// process at both ends was held by it throughout.
    fn read_checked(&mut self, pid: Pid) -> Result<ProcessInfo> {
        let first = self.basic(pid)?;
        let (cmdline, cwd) = if first.state.has_exited() {
            (CommandLine::default(), Cwd::Unknown)
        } else {
            (self.cmdline_of(pid), cwd_of(pid)?)
        };
        check_start(pid, first.start_time)?;
        Ok(ProcessInfo::from_sample(
            &first.sample(),
            self.boot_id,
            cmdline,
            cwd,
        ))
    }

    /// `KERN_PROCARGS2`, decoded. Empty when refused: the kernel says EINVAL
    /// alike for another user's process, a zombie and a gone one, so the
    /// caller checks the process afterwards.
    fn cmdline_of(&mut self, pid: Pid) -> CommandLine {
        let cmdline = match ffi::procargs2(pid.as_raw(), &mut self.args) {
            Ok(len) => parse::parse_procargs2(&self.args[..len])
                .map(|args| args.command_line())
                .unwrap_or_default(),
            Err(_) => CommandLine::default(),
        };
        // A megabyte command line should not pin a megabyte for the reader's life.
        if self.args.len() > ARGS_KEEP {
            self.args = Vec::new();
        }
        cmdline
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
        let basic = self.basic(pid)?;
        Ok(self.last.insert(basic).sample())
    }

    fn read(&mut self, pid: Pid) -> Result<(ProcessInfo, u64)> {
        self.read_checked(pid).map(|info| (info, 0))
    }

    fn read_cwd(&mut self, identity: ProcessIdentity) -> Result<Cwd> {
        let pid = identity.pid();
        if identity.boot_id() != self.boot_id {
            return Err(Error::NotFound { pid });
        }
        // The identity was seen before this read; seen again after it, the
        // process held the pid throughout.
        let cwd = cwd_of(pid)?;
        check_start(pid, identity.start_time())?;
        Ok(cwd)
    }
}

/// `proc_pidinfo(PROC_PIDVNODEPATHINFO)`, decoded.
fn cwd_of(pid: Pid) -> Result<Cwd> {
    match ffi::vnode_path_info(pid.as_raw()) {
        Ok(info) => {
            let cdir = &info.pvi_cdir;
            let mut path = [0u8; VIP_PATH];
            for (byte, &c) in path.iter_mut().zip(cdir.vip_path.iter().flatten()) {
                *byte = to_byte(c);
            }
            Ok(parse::parse_vnode_path(
                &path,
                cdir.vip_vi.vi_stat.vst_nlink,
            ))
        }
        Err(error) => match error.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => Ok(Cwd::NotPermitted),
            // A zombie has no cwd; a gone process is told by the check after.
            Some(libc::ESRCH) => Ok(Cwd::Unknown),
            _ => Err(sys_error(
                error,
                &format!("proc_pidinfo.vnodepathinfo.{pid}"),
            )),
        },
    }
}

/// `sysctl(KERN_PROC_PID)`: `None` when no process has `pid`.
fn kinfo(pid: Pid) -> Result<Option<KinfoProc>> {
    match ffi::kinfo_proc(pid.as_raw()) {
        Ok(Some(info)) if info.kp_proc.p_pid == pid.as_raw() => Ok(Some(info)),
        Ok(_) => Ok(None),
        Err(error) => Err(sys_error(error, &format!("kern.proc.pid.{pid}"))),
    }
}

/// The start time, parent and state of whichever process has `pid` now, from
/// one `sysctl(KERN_PROC_PID)` (any user's process, zombies included); `None`
/// when no process has it. The signal layer's identity check.
pub(crate) fn brief(pid: Pid) -> Result<Option<(StartTime, Option<Pid>, State)>> {
    Ok(kinfo(pid)?.map(|info| {
        (
            start_of(&info),
            Pid::try_from(info.kp_eproc.e_ppid).ok(),
            state_of(&info),
        )
    }))
}

/// The start time of whichever process has `pid` now.
fn start_now(pid: Pid) -> Result<StartTime> {
    kinfo(pid)?
        .map(|info| start_of(&info))
        .ok_or(Error::NotFound { pid })
}

/// [`Error::NotFound`] unless `pid` is (still) the process that started at
/// `start`.
fn check_start(pid: Pid, start: StartTime) -> Result<()> {
    match kinfo(pid)? {
        Some(info) if start_of(&info) == start => Ok(()),
        _ => Err(Error::NotFound { pid }),
    }
}

/// The sample's fields from `proc_pidinfo(PROC_PIDTASKALLINFO)`.
fn basic_from_task(pid: Pid, all: &TaskAllInfo, timebase: (u32, u32)) -> Basic {
    let (bsd, task) = (&all.pbsd, &all.ptinfo);
    let (numer, denom) = timebase;
    // pbi_name is the longer name (up to 32 bytes); empty for some
    // processes, which have only pbi_comm.
    let long = to_bytes(&bsd.pbi_name);
    let short = to_bytes(&bsd.pbi_comm);
    let name = match parse::c_string_bytes(&long) {
        [] => parse::c_string_bytes(&short),
        name => name,
    };
    let (name, name_len) = name_array(name);
    Basic {
        pid,
        start_time: parse::start_time_from_timeval(bsd.pbi_start_tvsec, bsd.pbi_start_tvusec),
        parent: Pid::try_from(bsd.pbi_ppid).ok(),
        name,
        name_len,
        state: parse::state_from_bsd_status(
            bsd.pbi_status,
            u32::try_from(task.pti_numrunning).ok(),
        ),
        rss_bytes: task.pti_resident_size,
        user_time: parse::mach_ticks_to_duration(task.pti_total_user, numer, denom),
        system_time: parse::mach_ticks_to_duration(task.pti_total_system, numer, denom),
        process_group: Pid::try_from(bsd.pbi_pgid).ok(),
        session: None,
        threads: u32::try_from(task.pti_threadnum).unwrap_or(0),
        kernel_thread: bsd.pbi_flags & PROC_FLAG_SYSTEM != 0,
    }
}

/// The sample's fields from `sysctl(KERN_PROC_PID)`: no task fields.
fn basic_from_kinfo(pid: Pid, info: &KinfoProc) -> Basic {
    let (proc, eproc) = (&info.kp_proc, &info.kp_eproc);
    let (name, name_len) = name_array(parse::c_string_bytes(&to_bytes(&proc.p_comm)));
    Basic {
        pid,
        start_time: start_of(info),
        parent: Pid::try_from(eproc.e_ppid).ok(),
        name,
        name_len,
        state: state_of(info),
        // Only the task (refused here) knows these.
        rss_bytes: 0,
        user_time: Duration::ZERO,
        system_time: Duration::ZERO,
        threads: 0,
        process_group: Pid::try_from(eproc.e_pgid).ok(),
        session: None,
        kernel_thread: proc.p_flag & P_SYSTEM != 0,
    }
}

/// `p_starttime`: the same `p_start` that `pbi_start_tv*` reports.
fn start_of(info: &KinfoProc) -> StartTime {
    let started = info.kp_proc.p_un;
    parse::start_time_from_timeval(
        u64::try_from(started.tv_sec).unwrap_or(0),
        u64::try_from(started.tv_usec).unwrap_or(0),
    )
}

fn state_of(info: &KinfoProc) -> State {
    parse::state_from_bsd_status(u32::try_from(info.kp_proc.p_stat).unwrap_or(0), None)
}

fn to_byte(c: c_char) -> u8 {
    c.to_ne_bytes()[0]
}

fn to_bytes<const N: usize>(chars: &[c_char; N]) -> [u8; N] {
    chars.map(to_byte)
}

fn name_array(name: &[u8]) -> ([u8; NAME_LEN], usize) {
    let len = name.len().min(NAME_LEN);
    let mut array = [0; NAME_LEN];
    array[..len].copy_from_slice(&name[..len]);
    (array, len)
}

/// A failed system call as a proctrack error. There is no file to name: a
/// refusal names the call the way `sysctl(8)` names its values, any other
/// error names no path.
fn sys_error(error: io::Error, what: &str) -> Error {
    match error.kind() {
        io::ErrorKind::PermissionDenied => Error::io(Some(what.into()), error),
        _ => Error::io(None, error),
    }
}
