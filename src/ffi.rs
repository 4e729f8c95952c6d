//! Every `unsafe` block of proctrack: the macOS calls that libproc has no safe
//! wrapper for, or whose wrapper loses what we need (the errno, a retry), and
//! the signal layer's `kill`, `waitpid` and kqueue calls.
//!
//! Each function here is safe to call with any argument: buffers are owned,
//! zero-initialised and sized here, and every value handed back is plain data.
//! Only `src/lib.rs` allows `unsafe_code`, and only for this module. Decoding
//! what the kernel wrote is left to [`crate::parse`].

use std::ffi::CStr;
use std::io;
use std::mem::{MaybeUninit, size_of};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr;

use libc::{c_int, c_uint};
use libproc::kinfo::KinfoProc;

/// `struct kinfo_proc` is 648 bytes on 64-bit macOS; a mismatch would make
/// `sysctl(KERN_PROC_PID)` fail with ENOMEM.
const _: () = assert!(size_of::<KinfoProc>() == 648);
/// `struct proc_vnodepathinfo`: two `vnode_info_path`s of 152 + 1024 bytes.
const _: () = assert!(size_of::<libc::proc_vnodepathinfo>() == 2352);

/// `proc_listallpids(3)`: every pid, into `pids` (cleared first).
///
/// The kernel fills at most the room it is given and says nothing about the
/// rest, so a full buffer is retried with twice the room.
pub(crate) fn list_all_pids(pids: &mut Vec<c_int>) -> io::Result<()> {
    // SAFETY: a null buffer of size 0 only asks for an estimate of the count.
    let estimate = unsafe { libc::proc_listallpids(ptr::null_mut(), 0) };
    if estimate < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut room = usize::try_from(estimate).unwrap_or(0).max(256) + 64;
    loop {
        pids.clear();
        pids.resize(room, 0);
        let bytes = c_int::try_from(room * size_of::<c_int>())
            .map_err(|_| io::Error::other("proc_listallpids: too many processes"))?;
        // SAFETY: `pids` holds `room` initialised ints, `bytes` bytes in all;
        // the kernel writes at most `bytes` bytes and returns how many pids.
        let count = unsafe { libc::proc_listallpids(pids.as_mut_ptr().cast(), bytes) };
        if count < 0 {
            return Err(io::Error::last_os_error());
        }
        let count = usize::try_from(count).unwrap_or(0);
        if count < room {
            pids.truncate(count);
            return Ok(());
        }
        room *= 2;
    }
}

/// `sysctl({CTL_KERN, KERN_PROC, KERN_PROC_PID, pid})`: the `kinfo_proc` of
/// `pid`, zombies included and whoever owns it. `None` when no process has it.
pub(crate) fn kinfo_proc(pid: c_int) -> io::Result<Option<KinfoProc>> {
    let mut mib = [libc::CTL_KERN, libc::KERN_PROC, libc::KERN_PROC_PID, pid];
    let mut info = MaybeUninit::<KinfoProc>::zeroed();
    let mut size = size_of::<KinfoProc>();
    // SAFETY: `mib` holds the 4 names passed; `info` is writable for `size`
    // bytes and the kernel writes at most that many, storing the count in
    // `size`; no new value is set (null, 0).
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            mib.len() as c_uint,
            info.as_mut_ptr().cast(),
            &mut size,
            ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::ESRCH) => Ok(None),
            _ => Err(error),
        };
    }
    if size < size_of::<KinfoProc>() {
        // The kernel found no process and wrote nothing.
        return Ok(None);
    }
    // SAFETY: `KinfoProc` is a `repr(C)` struct of integers, integer arrays and
    // raw pointers (never dereferenced), valid for any bytes: zeroes, then
    // what the kernel wrote.
    Ok(Some(unsafe { info.assume_init() }))
}

/// `proc_pidinfo(pid, PROC_PIDVNODEPATHINFO)`: the working and root
/// directories of `pid`. EPERM for another user's process, ESRCH for a zombie
/// or a gone one.
pub(crate) fn vnode_path_info(pid: c_int) -> io::Result<libc::proc_vnodepathinfo> {
    const SIZE: c_int = size_of::<libc::proc_vnodepathinfo>() as c_int;
    let mut info = MaybeUninit::<libc::proc_vnodepathinfo>::zeroed();
    // SAFETY: `info` is writable for SIZE bytes and the kernel writes at most
    // that many.
    let written = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDVNODEPATHINFO,
            0,
            info.as_mut_ptr().cast(),
            SIZE,
        )
    };
    if written <= 0 {
        return Err(io::Error::last_os_error());
    }
    if written != SIZE {
        return Err(io::Error::other(
            "proc_pidinfo: short PROC_PIDVNODEPATHINFO",
        ));
    }
    // SAFETY: `proc_vnodepathinfo` is integers and `c_char` arrays, valid for
    // any bytes: zeroes, then what the kernel wrote.
    Ok(unsafe { info.assume_init() })
}

/// `sysctl({CTL_KERN, KERN_PROCARGS2, pid})` into `buf`, grown as needed;
/// returns how many bytes are valid. EINVAL for another user's process, a
/// zombie, a system process, or a gone one (the kernel does not say which).
pub(crate) fn procargs2(pid: c_int, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut mib = [libc::CTL_KERN, libc::KERN_PROCARGS2, pid];
    let mut needed = 0usize;
    // SAFETY: a null old pointer only asks for the length, stored in
    // `needed`; no new value is set.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            mib.len() as c_uint,
            ptr::null_mut(),
            &mut needed,
            ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if buf.len() < needed {
        buf.resize(needed, 0);
    }
    let mut len = buf.len();
    // SAFETY: `buf` is initialised and writable for `len` bytes; the kernel
    // writes at most that many and stores the count in `len`.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            mib.len() as c_uint,
            buf.as_mut_ptr().cast(),
            &mut len,
            ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(len.min(buf.len()))
}

/// `sysctlbyname(3)` of a string value (`kern.bootsessionuuid`, say): the
/// bytes as the kernel gives them, NUL included.
pub(crate) fn sysctl_bytes(name: &CStr) -> io::Result<Vec<u8>> {
    let mut needed = 0usize;
    // SAFETY: `name` is NUL-terminated; a null old pointer only asks for the
    // length; no new value is set.
    let rc = unsafe {
        libc::sysctlbyname(
            name.as_ptr(),
            ptr::null_mut(),
            &mut needed,
            ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; needed];
    let mut len = buf.len();
    // SAFETY: as above, with `buf` initialised and writable for `len` bytes;
    // the kernel writes at most that many and stores the count in `len`.
    let rc = unsafe {
        libc::sysctlbyname(
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            &mut len,
            ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(len);
    Ok(buf)
}

/// `struct mach_timebase_info` (declared here: libc deprecates its own
/// in favour of the mach2 crate).
#[repr(C)]
struct MachTimebaseInfo {
    numer: u32,
    denom: u32,
}

unsafe extern "C" {
    /// In libSystem, which every macOS program links.
    fn mach_timebase_info(info: *mut MachTimebaseInfo) -> c_int;
}

/// `mach_timebase_info(3)`: one Mach tick is `numer / denom` nanoseconds.
/// 1/1 if the call fails (it does not).
pub(crate) fn mach_timebase() -> (u32, u32) {
    let mut info = MachTimebaseInfo { numer: 0, denom: 0 };
    // SAFETY: `info` is a valid, writable `mach_timebase_info` struct.
    let rc = unsafe { mach_timebase_info(&mut info) };
    if rc == 0 && info.numer != 0 && info.denom != 0 {
        (info.numer, info.denom)
    } else {
        (1, 1)
    }
}

/// `getsid(2)`: the session of `pid`. XNU answers for any process, whatever
/// its session or owner.
pub(crate) fn session_of(pid: c_int) -> io::Result<c_int> {
    // SAFETY: takes and returns plain integers; touches no memory of ours.
    let sid = unsafe { libc::getsid(pid) };
    if sid < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sid)
    }
}

/// `kill(2)`: sends signal number `signal` to whoever holds `pid` now. The
/// signal layer checks the identity right before calling it.
pub(crate) fn kill(pid: c_int, signal: c_int) -> io::Result<()> {
    // SAFETY: takes plain integers; touches no memory of ours.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `waitpid(2)` on our child `pid`: its raw wait status once it has exited
/// (reaping it), `None` while it runs when `block` is false. Retries on EINTR.
pub(crate) fn waitpid(pid: c_int, block: bool) -> io::Result<Option<c_int>> {
    let options = if block { 0 } else { libc::WNOHANG };
    loop {
        let mut status: c_int = 0;
        // SAFETY: `status` is a valid, writable int for the kernel to fill.
        let rc = unsafe { libc::waitpid(pid, &mut status, options) };
        if rc > 0 {
            return Ok(Some(status));
        }
        if rc == 0 {
            return Ok(None);
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EINTR) {
            return Err(error);
        }
    }
}

/// `kqueue(2)`: a new, empty kernel event queue. Not inherited across `fork`.
pub(crate) fn kqueue() -> io::Result<OwnedFd> {
    // SAFETY: takes no arguments; returns a new descriptor or -1.
    let fd = unsafe { libc::kqueue() };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created by the kernel for us and nothing else
    // owns it; the `OwnedFd` closes it exactly once.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: plain integers; `fd` is open (owned above).
    let rc = unsafe { libc::fcntl(owned.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(owned)
}

/// An `EVFILT_PROC` / `NOTE_EXIT` change or event for `pid`.
fn proc_exit_event(pid: c_int, flags: u16) -> libc::kevent {
    libc::kevent {
        // A pid is positive here; the kernel reads `ident` as the pid.
        ident: usize::try_from(pid).unwrap_or(0),
        filter: libc::EVFILT_PROC,
        flags,
        fflags: libc::NOTE_EXIT,
        data: 0,
        udata: ptr::null_mut(),
    }
}

/// Registers `EVFILT_PROC` / `NOTE_EXIT` for `pid` on `kq`: one event when
/// that process exits (whoever its parent is). ESRCH when no live process has
/// `pid` (a zombie counts as exited: the kernel refuses it too).
///
/// The filter is tied to the process that held `pid` at registration, never
/// to a later holder; the caller checks afterwards that this was the process
/// it meant (its start time).
pub(crate) fn watch_exit(kq: BorrowedFd<'_>, pid: c_int) -> io::Result<()> {
    let change = proc_exit_event(pid, libc::EV_ADD | libc::EV_ONESHOT);
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `change` is one valid kevent, read by the kernel; no event list
    // (null, 0) is written, so a failed registration makes kevent return -1
    // with its errno; a zero timeout never blocks. `kq` is an open kqueue.
    let rc = unsafe { libc::kevent(kq.as_raw_fd(), &change, 1, ptr::null_mut(), 0, &zero) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Waits on `kq` for exits registered with [`watch_exit`], up to `timeout`
/// (`None`: no limit; zero: only look), and appends the pids that exited to
/// `wait_async`. Returns early, with nothing, on EINTR.
pub(crate) fn wait_exits(
    kq: BorrowedFd<'_>,
    exited: &mut Vec<c_int>,
    timeout: Option<std::time::Duration>,
) -> io::Result<()> {
    const ROOM: usize = 64;
    let mut events = [proc_exit_event(0, 0); ROOM];
    // Longer than a timespec holds is years: wait a year at a time.
    let timespec = timeout.map(|timeout| libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(365 * 24 * 3600),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos()),
    });
    let timeout_ptr = timespec
        .as_ref()
        .map_or(ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: no changes (null, 0); `events` is writable for ROOM kevents and
    // the kernel writes at most that many; `timeout_ptr` is null or points to
    // a timespec that outlives the call; `kq` is an open kqueue.
    let count = unsafe {
        libc::kevent(
            kq.as_raw_fd(),
            ptr::null(),
            0,
            events.as_mut_ptr(),
            ROOM as c_int,
            timeout_ptr,
        )
    };
    if count < 0 {
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::EINTR) => Ok(()),
            _ => Err(error),
        };
    }
    let count = usize::try_from(count).unwrap_or(0).min(ROOM);
    for event in &events[..count] {
        // Copies out of the packed struct before looking.
        let (filter, fflags, flags, ident) = (event.filter, event.fflags, event.flags, event.ident);
        if filter == libc::EVFILT_PROC
            && fflags & libc::NOTE_EXIT != 0
            && flags & libc::EV_ERROR == 0
        {
            if let Ok(pid) = c_int::try_from(ident) {
                exited.push(pid);
            }
        }
    }
    Ok(())
}

/// `PROC_PIDFDSOCKETINFO` from `<sys/proc_info.h>` (libc does not define it).
const PROC_PIDFDSOCKETINFO: c_int = 3;

/// The byte offsets the ports decoders read (`crate::ports` decode.rs),
/// checked against libproc's bindings of the same structs.
const _: () = {
    use crate::ports::decode as layout;
    use libproc::libproc::net_info::{InSockInfo, SocketFDInfo, SocketInfo, TcpSockInfo};
    use std::mem::offset_of;
    assert!(size_of::<SocketFDInfo>() == layout::SOCKET_FDINFO_SIZE);
    assert!(offset_of!(SocketFDInfo, psi) == layout::OFFSET_PSI);
    assert!(layout::OFFSET_PSI + offset_of!(SocketInfo, soi_so) == layout::OFFSET_SOI_SO);
    assert!(layout::OFFSET_PSI + offset_of!(SocketInfo, soi_family) == layout::OFFSET_SOI_FAMILY);
    assert!(layout::OFFSET_PSI + offset_of!(SocketInfo, soi_kind) == layout::OFFSET_SOI_KIND);
    assert!(layout::OFFSET_PSI + offset_of!(SocketInfo, soi_proto) == layout::OFFSET_SOI_PROTO);
    assert!(size_of::<InSockInfo>() == 80);
    assert!(offset_of!(TcpSockInfo, tcpsi_state) == 80);
    assert!(size_of::<libc::proc_fdinfo>() == 8);
};

/// `proc_pidinfo(pid, PROC_PIDLISTFDS)`: the `proc_fdinfo` entries of `pid`'s
/// open files into `buf` (grown until they fit); returns how many bytes are
/// valid. EPERM for another user's process without root, ESRCH when gone.
pub(crate) fn list_fds(pid: c_int, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.len() < 64 * 8 {
        buf.resize(64 * 8, 0);
    }
    loop {
        let size = c_int::try_from(buf.len())
            .map_err(|_| io::Error::other("proc_pidinfo: too many fds"))?;
        // SAFETY: `buf` is initialised and writable for `size` bytes; the
        // kernel writes at most that many and returns how many it wrote.
        let written = unsafe {
            libc::proc_pidinfo(pid, libc::PROC_PIDLISTFDS, 0, buf.as_mut_ptr().cast(), size)
        };
        if written <= 0 {
            let error = io::Error::last_os_error();
            // 0 bytes with no error: a process with no open files.
            return match error.raw_os_error() {
                Some(0) | None => Ok(0),
                _ => Err(error),
            };
        }
        let written = usize::try_from(written).unwrap_or(0);
        // A full buffer may have left entries out: retry with more room.
        if written + 8 > buf.len() {
            let grown = buf.len() * 2;
            buf.resize(grown, 0);
            continue;
        }
        return Ok(written);
    }
}

/// `proc_pidfdinfo(pid, fd, PROC_PIDFDSOCKETINFO)`: the `socket_fdinfo` of
/// one socket fd into `buf`; returns how many bytes are valid.
pub(crate) fn socket_fdinfo(pid: c_int, fd: c_int, buf: &mut [u8]) -> io::Result<usize> {
    let size = c_int::try_from(buf.len()).unwrap_or(c_int::MAX);
    // SAFETY: `buf` is initialised and writable for `size` bytes; the kernel
    // writes at most that many.
    let written = unsafe {
        libc::proc_pidfdinfo(pid, fd, PROC_PIDFDSOCKETINFO, buf.as_mut_ptr().cast(), size)
    };
    if written <= 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(written).unwrap_or(0))
}

/// `getrlimit(RLIMIT_NOFILE)`: the soft and hard limits on open files.
#[cfg(feature = "http")]
pub(crate) fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, owned rlimit for the call to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

/// `setrlimit(RLIMIT_NOFILE)` with a new soft limit, the hard one kept.
#[cfg(feature = "http")]
pub(crate) fn set_nofile_soft(soft: u64) -> io::Result<()> {
    let (_, hard) = nofile_limit()?;
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `limit` is a valid rlimit the call only reads.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
