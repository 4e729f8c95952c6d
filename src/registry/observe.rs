//! What the live system says about a row's process now.

use crate::SystemSource;
use crate::platform::pidfs_inode;
use crate::source::ProcessSource;
use crate::table::ProcessTable;
use crate::{Error, ProcessIdentity, Result};

use super::entry::{EndReason, Entry, Status};

/// The fate of a running row's process, as seen now.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Observed {
    /// The process with the row's identity is alive.
    Alive,
    /// It ended; the row should say so.
    Ended(Ending),
}

/// How a row's process was found to have ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Ending {
    /// No process on the pid, or only the row's own unreaped zombie.
    Gone,
    /// The pid belongs to another process: other start time, or (where the
    /// row has one) other pidfs inode.
    PidReused,
    /// The row is of another boot.
    EarlierBoot,
}

impl Ending {
    /// The status and reason a row gets for this ending.
    pub(crate) fn outcome(self) -> (Status, EndReason) {
        match self {
            Ending::Gone => (Status::Exited, EndReason::Gone),
            Ending::PidReused => (Status::Exited, EndReason::PidReused),
            Ending::EarlierBoot => (Status::Lost, EndReason::EarlierBoot),
        }
    }
}

/// Looks at the process of one row.
pub(crate) struct Observer {
    source: SystemSource,
    /// The table the stop's kills read, made at the first kill and
    /// refreshed for each later one (not a scan per row).
    table: Option<ProcessTable<SystemSource>>,
}

impl Observer {
    pub(crate) fn open() -> Result<Observer> {
        Ok(Observer {
            source: SystemSource::open()?,
            table: None,
        })
    }

    /// The table for a kill: made once, refreshed after.
    pub(crate) fn table(&mut self) -> Result<&mut ProcessTable<SystemSource>> {
        let table = match self.table.take() {
            Some(mut table) => {
                table.refresh()?;
                table
            }
            None => ProcessTable::new()?,
        };
        Ok(self.table.insert(table))
    }

    /// The pidfs inode of `identity` now, where the kernel has one.
    pub(crate) fn pidfs_inode(&mut self, identity: ProcessIdentity) -> Result<Option<u64>> {
        pidfs_inode(&mut self.source, identity)
    }

    /// The source, for reading a live process.
    pub(crate) fn source(&mut self) -> &mut SystemSource {
        &mut self.source
    }

    /// What became of `entry`'s process.
    ///
    /// A process is the row's when its boot, pid and start time match and,
    /// where both the row and the kernel have a pidfs inode, the inodes do:
    /// start times count 10 ms clock ticks, so a pid reused within one tick
    /// shows the same start time and only the inode tells.
    pub(crate) fn observe(&mut self, entry: &Entry) -> Result<Observed> {
        let identity = entry.identity();
        if identity.boot_id() != self.source.boot_id() {
            return Ok(Observed::Ended(Ending::EarlierBoot));
        }
        let (start, exited) = match self.source.sample(identity.pid()) {
            Ok(sample) => (sample.start_time, sample.state.has_exited()),
            Err(Error::NotFound { .. }) => return Ok(Observed::Ended(Ending::Gone)),
            Err(other) => return Err(other),
        };
        if start != identity.start_time() {
            return Ok(Observed::Ended(Ending::PidReused));
        }
        if let Some(registered) = entry.pidfs_inode() {
            match self.pidfs_inode(identity)? {
                Some(now) if now != registered => {
                    return Ok(Observed::Ended(Ending::PidReused));
                }
                // The same process, or it vanished right after the sample
                // (then the next look finds it gone).
                _ => {}
            }
        }
        Ok(if exited {
            Observed::Ended(Ending::Gone)
        } else {
            Observed::Alive
        })
    }
}
