//! What this kernel offers, and which backend a handle uses.

use std::sync::OnceLock;

/// Which kernel features the signal layer found, probed once per process.
///
/// With [`pidfd`](Capabilities::pidfd) (Linux 5.3) every guarantee of this
/// module holds: a handle pins its process, signals cannot reach a later
/// holder of the pid, and exits are events. Without it, handles fall back to
/// [`Backend::CheckedPid`]: the identity is checked right before each `kill(2)`,
/// which leaves a window of microseconds in which the process could exit, be
/// reaped and have its pid reused; and exits of other processes than our own
/// children cannot be waited for.
///
/// On macOS `pidfd` is false, always: handles are [`Backend::CheckedPid`], with the
/// same small reuse window between the start-time check and `kill(2)` (a tree
/// kill narrows it by stopping each member first). Exits of any process are
/// still events there ([`exit_events`](Capabilities::exit_events), through
/// kqueue), and there is no child subreaper.
///
/// ```no_run
/// let caps = proctrack::signal::capabilities();
/// if !caps.pidfd {
///     eprintln!("old kernel: signals are identity-checked, not pinned");
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Capabilities {
    /// `pidfd_open` and `pidfd_send_signal` work (Linux 5.3): handles pin
    /// their process and signals are race-free.
    pub pidfd: bool,
    /// A pidfd becomes readable when its process exits, so exits of any
    /// process can be awaited without polling (Linux 5.3, with `pidfd`).
    pub pidfd_wait: bool,
    /// `waitid(P_PIDFD)` works (Linux 5.4): exit statuses of our own children
    /// are collected through the pinned handle, never by a bare pid.
    pub waitid_pidfd: bool,
    /// `PR_SET_CHILD_SUBREAPER` is available (Linux 3.4): orphaned descendants
    /// can be made to reparent to us (see [`Subreaper`](super::Subreaper)).
    /// False on macOS.
    pub child_subreaper: bool,
    /// Exits of any process, not only our children, are events that
    /// [`ProcessHandle::wait`](super::ProcessHandle::wait) and
    /// [`wait_async`](super::ProcessHandle::wait_async) wait for without polling, for
    /// handles made with [`Backend::Auto`]: through a pidfd on Linux (as
    /// `pidfd_wait`), through kqueue `EVFILT_PROC` / `NOTE_EXIT` on macOS.
    pub exit_events: bool,
}

impl Capabilities {
    /// The backend [`Backend::Auto`] resolves to on this system.
    ///
    /// ```no_run
    /// use proctrack::signal::{capabilities, Backend};
    /// assert_eq!(capabilities().auto_backend(), Backend::Pidfd); // on Linux >= 5.3
    /// ```
    pub fn auto_backend(&self) -> Backend {
        if self.pidfd {
            Backend::Pidfd
        } else {
            Backend::CheckedPid
        }
    }
}

/// How a handle reaches its process.
///
/// ```
/// use proctrack::signal::{Backend, KillOptions};
/// // Tests force the fallback to see what old kernels get:
/// let options = KillOptions::new().backend(Backend::CheckedPid);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// [`Backend::Pidfd`] where the kernel has pidfds, else [`Backend::CheckedPid`].
    #[default]
    Auto,
    /// A pidfd per process: pinned, race-free signals, exits as events.
    /// Opening a handle fails with [`Error::Unsupported`](crate::Error::Unsupported)
    /// on kernels without pidfds.
    Pidfd,
    /// `kill(2)` right after checking the identity in `/proc` (on macOS,
    /// `sysctl(KERN_PROC_PID)`), as kernels before 5.3 force and as macOS
    /// always is. On Linux, exits of processes other than our own children
    /// cannot be awaited then; on macOS they can (kqueue). See
    /// [`Capabilities`].
    CheckedPid,
}

impl Backend {
    /// What this backend means here: `Auto` resolved against [`capabilities`].
    pub(crate) fn resolve(self) -> crate::Result<Backend> {
        match self {
            Backend::Auto => Ok(capabilities().auto_backend()),
            Backend::Pidfd if !capabilities().pidfd => Err(crate::Error::Unsupported {
                what: if cfg!(target_os = "macos") {
                    "pidfd (macOS has none)"
                } else {
                    "pidfd (Linux 5.3 or later)"
                },
            }),
            other => Ok(other),
        }
    }
}

/// Probes the kernel once and returns what the signal layer can rely on.
///
/// ```no_run
/// let caps = proctrack::signal::capabilities();
/// println!("pidfd: {}, waitid(P_PIDFD): {}", caps.pidfd, caps.waitid_pidfd);
/// ```
pub fn capabilities() -> Capabilities {
    static PROBED: OnceLock<Capabilities> = OnceLock::new();
    *PROBED.get_or_init(super::sys::probe)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn this_kernel_has_everything() {
        // The development machines run Linux 6.x.
        let caps = capabilities();
        assert!(
            caps.pidfd
                && caps.pidfd_wait
                && caps.waitid_pidfd
                && caps.child_subreaper
                && caps.exit_events,
            "{caps:?}"
        );
        assert_eq!(Backend::Auto.resolve().ok(), Some(Backend::Pidfd));
        assert_eq!(
            Backend::CheckedPid.resolve().ok(),
            Some(Backend::CheckedPid)
        );
    }
}
