//! The raw-syscall floor that the benches compare against: one dir fd on
//! /proc, getdents into a reused buffer, and per pid openat + one read into a
//! reused buffer + close. No parsing: nothing that reads every stat file can
//! be cheaper.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;

use rustix::fs::{Mode, OFlags, RawDir, SeekFrom};

/// The floor's reusable state.
pub struct Floor {
    proc: OwnedFd,
    dirents: Vec<MaybeUninit<u8>>,
    buf: Vec<u8>,
    name: Vec<u8>,
}

/// `/proc` as a directory fd, for getdents and `openat`.
pub fn open_proc() -> OwnedFd {
    rustix::fs::open(
        "/proc",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .expect("open /proc")
}

/// Opens `<pid>/stat` under `proc`, the path built in `name` (reused);
/// `None` for a process that exited since getdents.
pub fn open_stat(proc: &OwnedFd, name: &mut Vec<u8>, pid: &[u8]) -> Option<OwnedFd> {
    name.clear();
    name.extend_from_slice(pid);
    name.extend_from_slice(b"/stat\0");
    let path = CStr::from_bytes_with_nul(name).expect("one nul");
    rustix::fs::openat(proc, path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()
}

impl Floor {
    pub fn open() -> Floor {
        Floor {
            proc: open_proc(),
            dirents: vec![MaybeUninit::uninit(); 64 * 1024],
            buf: vec![0; 4096],
            name: Vec::new(),
        }
    }

    /// Returns the number of stat files read.
    pub fn scan(&mut self) -> usize {
        rustix::fs::seek(&self.proc, SeekFrom::Start(0)).expect("rewind /proc");
        let mut read = 0;
        let mut dir = RawDir::new(&self.proc, &mut self.dirents);
        while let Some(entry) = dir.next() {
            let entry = entry.expect("getdents /proc");
            let pid = entry.file_name().to_bytes();
            if !pid.first().is_some_and(u8::is_ascii_digit) {
                continue;
            }
            // A process that exited since getdents is skipped.
            let Some(fd) = open_stat(&self.proc, &mut self.name, pid) else {
                continue;
            };
            if rustix::io::read(&fd, &mut self.buf).is_ok() {
                read += 1;
            }
        }
        read
    }
}
