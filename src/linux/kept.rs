//! Kept-open `/proc/<pid>/stat` fds, read again with `pread`: a sample
//! without `openat` and `close` (about half the cost of a stat read here).
//!
//! A kept fd answers `ESRCH` once its process is reaped, even after the pid
//! was reused, so it can never read another process. Fds count against
//! `RLIMIT_NOFILE`: they are kept only up to a budget, and the soft limit is
//! raised toward the hard one to make room (sysinfo kept one fd per process
//! with no budget and removed it after complaints).

use std::collections::HashMap;
use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::process::{Resource, Rlimit};

use crate::{Pid, ProcessIdentity, StartTime};

/// Fds left for the rest of the program when the budget is sized.
const HEADROOM: u64 = 256;

/// The kept fds, keyed by pid, each with the start time of the process it
/// was opened on.
#[derive(Debug)]
pub(super) struct KeptStats {
    fds: HashMap<Pid, (OwnedFd, StartTime)>,
    budget: usize,
}

/// What a read through a kept fd found.
pub(super) enum KeptRead {
    /// The stat text, this many bytes.
    Read(usize),
    /// No fd kept for this pid: read by path.
    NotKept,
}

impl KeptStats {
    /// Keeps up to `budget` fds, raising the soft `RLIMIT_NOFILE` toward the
    /// hard limit so that `budget` fds plus some headroom fit; fewer if the
    /// hard limit is lower.
    pub(super) fn new(budget: usize) -> KeptStats {
        let wanted = budget as u64 + HEADROOM;
        let limit = rustix::process::getrlimit(Resource::Nofile);
        let mut soft = limit.current.unwrap_or(u64::MAX);
        if soft < wanted {
            let raised = limit.maximum.map_or(wanted, |hard| hard.min(wanted));
            let new = Rlimit {
                current: Some(raised),
                maximum: limit.maximum,
            };
            if rustix::process::setrlimit(Resource::Nofile, new).is_ok() {
                soft = raised;
            }
        }
        let room = usize::try_from(soft.saturating_sub(HEADROOM)).unwrap_or(usize::MAX);
        KeptStats {
            fds: HashMap::new(),
            budget: budget.min(room),
        }
    }

    /// The number of fds this may keep.
    pub(super) fn budget(&self) -> usize {
        self.budget
    }

    /// Reads the stat of `pid` through its kept fd into `buf`.
    pub(super) fn read(&mut self, pid: Pid, buf: &mut Vec<u8>) -> Result<KeptRead, Errno> {
        let Some((fd, _)) = self.fds.get(&pid) else {
            return Ok(KeptRead::NotKept);
        };
        // One pread unless it fills the buffer: stat is a single_open
        // seq_file, rendered whole by a read from offset 0 (see
        // `reader::read_stat`); a second pread of 0 bytes would double the
        // cost of the cheapest sample.
        loop {
            match rustix::io::pread(fd, &mut buf[..], 0) {
                // A full buffer may mean a longer text: grow and read again.
                Ok(n) if n == buf.len() => buf.resize(buf.len() * 2, 0),
                Ok(n) => return Ok(KeptRead::Read(n)),
                Err(Errno::INTR) => {}
                // ESRCH: reaped. The pid may hold another process by now,
                // even one started in the same clock tick, which a (pid,
                // start time) identity cannot tell apart: report the exit,
                // and let the next refresh read the new holder as new.
                Err(errno) => {
                    self.fds.remove(&pid);
                    return Err(errno);
                }
            }
        }
    }

    /// Keeps `fd`, the stat of the process `pid` started at `start_time`,
    /// if the budget has room; otherwise it is closed.
    pub(super) fn keep(&mut self, pid: Pid, fd: OwnedFd, start_time: StartTime) {
        if self.fds.len() < self.budget || self.fds.contains_key(&pid) {
            self.fds.insert(pid, (fd, start_time));
        }
    }

    /// Closes the fd kept for `identity`, if any: its row left the table.
    pub(super) fn forget(&mut self, identity: ProcessIdentity) {
        if self
            .fds
            .get(&identity.pid())
            .is_some_and(|(_, start)| *start == identity.start_time())
        {
            self.fds.remove(&identity.pid());
        }
    }

    /// How many fds are kept now.
    pub(super) fn len(&self) -> usize {
        self.fds.len()
    }
}
