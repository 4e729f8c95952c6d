//! Which source of events runs here, and why.

use std::fmt;
use std::time::Duration;

use super::connector::Connector;

/// How long the probe waits for the kernel to acknowledge a listen request.
/// In a container (a non-initial user or pid namespace) the kernel answers
/// nothing at all, so silence this long means "poll instead".
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_millis(250);

/// Where events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSource {
    /// The kernel's proc connector: every fork, exec and exit as it happens,
    /// with exit codes.
    Connector,
    /// Refreshes of the table at an interval; the same events, found by
    /// difference, without exit codes.
    Polling,
}

/// Why a source was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeReason {
    /// Connector: this process is root or has `CAP_NET_ADMIN`.
    Privileged,
    /// Connector: the kernel (6.6 and later) lets any user listen.
    UnprivilegedListen,
    /// Polling: the kernel refused to let this process listen (before 6.6
    /// listening needs `CAP_NET_ADMIN`).
    NotPermitted,
    /// Polling: the kernel did not answer the listen request in time, as in
    /// a container or a rootless namespace, where it stays silent.
    NoAnswer,
    /// Polling: the platform has no proc connector (macOS).
    Unsupported,
    /// Polling: the caller asked for it.
    Requested,
    /// Polling: the netlink socket could not be set up (the errno).
    SocketFailed(i32),
}

/// The outcome of probing for the proc connector.
///
/// ```no_run
/// let probe = proctrack::events::probe();
/// println!("events from {:?}: {probe}", probe.source());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Why the source was chosen.
    pub reason: ProbeReason,
    /// True when the kernel took the per-socket event filter (Linux 6.6+).
    pub filter: bool,
}

impl Probe {
    /// The source that runs.
    pub fn source(&self) -> EventSource {
        match self.reason {
            ProbeReason::Privileged | ProbeReason::UnprivilegedListen => EventSource::Connector,
            _ => EventSource::Polling,
        }
    }

    pub(crate) fn polling(reason: ProbeReason) -> Probe {
        Probe {
            reason,
            filter: false,
        }
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.reason {
            ProbeReason::Privileged => "proc connector (root or CAP_NET_ADMIN)",
            ProbeReason::UnprivilegedListen => "proc connector (the kernel lets any user listen)",
            ProbeReason::NotPermitted => {
                "polling: the kernel refused the proc connector (needs CAP_NET_ADMIN before Linux 6.6)"
            }
            ProbeReason::NoAnswer => {
                "polling: the proc connector did not answer (a container or user namespace?)"
            }
            ProbeReason::Unsupported => "polling: this platform has no proc connector",
            ProbeReason::Requested => "polling, as requested",
            ProbeReason::SocketFailed(errno) => {
                return write!(
                    f,
                    "polling: the netlink socket failed: {}",
                    std::io::Error::from_raw_os_error(errno)
                );
            }
        };
        f.write_str(why)
    }
}

/// Tries the proc connector (open, bind, listen, wait for the ack) and says
/// which source a [`Tracker`](super::Tracker) would use here, and why.
pub fn probe() -> Probe {
    match Connector::open(None, DEFAULT_ACK_TIMEOUT) {
        Ok((_, probe)) => probe,
        Err(reason) => Probe::polling(reason),
    }
}
