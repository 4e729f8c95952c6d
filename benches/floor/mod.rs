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

impl Floor {
    pub fn open() -> Floor {
        let proc = rustix::fs::open(
            "/proc",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("open /proc");
        Floor {
            proc,
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
            self.name.clear();
            self.name.extend_from_slice(pid);
            self.name.extend_from_slice(b"/stat\0");
            let path = CStr::from_bytes_with_nul(&self.name).expect("one nul");
            // A process that exited since getdents is skipped.
            let Ok(fd) = rustix::fs::openat(
                &self.proc,
                path,
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            ) else {
                continue;
            };
            if rustix::io::read(&fd, &mut self.buf).is_ok() {
                read += 1;
            }
        }
        read
    }
}
