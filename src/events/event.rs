//! What a [`Tracker`](super::Tracker) reports.

use std::fmt;

use crate::{Pid, ProcessIdentity};

/// One change to the processes a tracker follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// How it was learnt.
    pub origin: Origin,
}

/// What happened to a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum EventKind {
    /// A new process (thread creations are not reported), read into the
    /// table.
    Spawned {
        /// The new process.
        process: ProcessIdentity,
        /// Its parent when it was read.
        parent: Option<Pid>,
        /// The process that forked it, as the kernel's fork event said
        /// ([`Origin::Kernel`] only; `None` when a refresh found it). A
        /// forker that was gone before it could be read (and so was never
        /// reported) is skipped for its own forker, and so on: lineage
        /// survives a double fork whose middle process exits at once.
        forked_by: Option<Pid>,
    },
    /// A process ran a new program; the table holds its new command line.
    Exec {
        /// The process.
        process: ProcessIdentity,
    },
    /// A process exited; its row is gone from the table.
    Exited {
        /// Its pid.
        pid: Pid,
        /// Its identity, when the table had read it (a process that exits
        /// before it can be read has none).
        process: Option<ProcessIdentity>,
        /// How it ended, for any process, not only children of ours.
        exit: Exit,
    },
    /// A process changed its name (`prctl(PR_SET_NAME)`, `/proc/<pid>/comm`).
    Renamed {
        /// The process.
        process: ProcessIdentity,
    },
    /// A process started a new session (`setsid`).
    NewSession {
        /// The process.
        process: ProcessIdentity,
    },
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Exit {
    /// It called `exit` with this code.
    Code(i32),
    /// A signal ended it (9 for SIGKILL).
    Signal(i32),
    /// Not known: the exit was found by a refresh, not told by the kernel.
    Unknown,
}

impl Exit {
    /// Decodes a wait status, as the kernel reports it in its exit event.
    pub(crate) fn from_wait_status(status: u32) -> Exit {
        let signal = status & 0x7f;
        if signal == 0 {
            Exit::Code(((status >> 8) & 0xff) as i32)
        } else {
            Exit::Signal(signal as i32)
        }
    }
}

/// How an event was learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Origin {
    /// Told by the kernel as it happened.
    Kernel,
    /// Found by the refresh that followed lost kernel events: what changed
    /// while the tracker was not told. Exit codes are unknown here.
    Resync,
    /// Found by a polling refresh (no proc connector here).
    Poll,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit code {code}"),
            Exit::Signal(signal) => write!(f, "killed by signal {signal}"),
            Exit::Unknown => f.write_str("exit status unknown"),
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            EventKind::Spawned {
                process, parent, ..
            } => match parent {
                Some(parent) => write!(f, "spawned {process} (parent {parent})"),
                None => write!(f, "spawned {process}"),
            },
            EventKind::Exec { process } => write!(f, "exec {process}"),
            EventKind::Exited { pid, exit, .. } => write!(f, "exited {pid}: {exit}"),
            EventKind::Renamed { process } => write!(f, "renamed {process}"),
            EventKind::NewSession { process } => write!(f, "new session {process}"),
        }?;
        match self.origin {
            Origin::Kernel => Ok(()),
            Origin::Resync => f.write_str(" [resync]"),
            Origin::Poll => f.write_str(" [poll]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Exit;

    #[test]
    fn wait_statuses_decode() {
        assert_eq!(Exit::from_wait_status(3 << 8), Exit::Code(3));
        assert_eq!(Exit::from_wait_status(0), Exit::Code(0));
        assert_eq!(Exit::from_wait_status(9), Exit::Signal(9));
        // SIGSEGV with a core dump.
        assert_eq!(Exit::from_wait_status(0x80 | 11), Exit::Signal(11));
    }
}
