//! Which source of events runs here, and what the kernel answered.
//!
//! Who may listen to the proc connector differs between kernel builds, not
//! only between versions: the probe asks the kernel and reports what it
//! observed. Observed so far (examples, not rules): root in the initial
//! namespaces is acked; an unprivileged user is acked on some 6.6+ builds
//! and refused at `bind` (EPERM) on others; before 6.6 its request is
//! refused in the ack (EPERM); in a new user or pid namespace the kernel
//! acks nothing.

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

/// The step of subscribing at which the kernel said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedAt {
    /// `bind(2)` of the socket to the proc connector's group failed.
    Bind,
    /// The kernel answered the listen request with an error in its ack.
    Ack,
}

/// What the kernel answered when the probe asked to listen, and so which
/// source runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeReason {
    /// Connector: the kernel acked the listen request; this process is root
    /// or has `CAP_NET_ADMIN`.
    Privileged,
    /// Connector: the kernel acked the listen request of this process,
    /// which has no `CAP_NET_ADMIN`.
    UnprivilegedListen,
    /// Polling: the kernel refused, at `bind` or in its ack, with `errno`
    /// (EPERM: listening needs `CAP_NET_ADMIN` on this kernel).
    NotPermitted {
        /// Which step the kernel refused.
        at: RefusedAt,
        /// The error it gave.
        errno: i32,
    },
    /// Polling: the socket bound, but no ack came within `waited` (the
    /// kernel answers nothing outside the initial user and pid namespaces).
    NoAnswer {
        /// How long the probe waited for each form of the request.
        waited: Duration,
    },
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
    /// What the kernel answered.
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
        match self.reason {
            ProbeReason::Privileged => f.write_str(
                "proc connector: the kernel acked our listen request (root or CAP_NET_ADMIN)",
            ),
            ProbeReason::UnprivilegedListen => f.write_str(
                "proc connector: the kernel acked our listen request without CAP_NET_ADMIN",
            ),
            ProbeReason::NotPermitted { at, errno } => {
                let step = match at {
                    RefusedAt::Bind => "the bind",
                    RefusedAt::Ack => "the listen request in its ack",
                };
                write!(
                    f,
                    "polling: the kernel refused {step} ({}): listening needs CAP_NET_ADMIN on this kernel",
                    errno_name(errno)
                )
            }
            ProbeReason::NoAnswer { waited } => write!(
                f,
                "polling: no ack to the listen request within {} ms (the kernel answers nothing \
                 outside the initial user and pid namespaces, as in a container)",
                waited.as_millis()
            ),
            ProbeReason::Unsupported => f.write_str("polling: this platform has no proc connector"),
            ProbeReason::Requested => f.write_str("polling, as requested"),
            ProbeReason::SocketFailed(errno) => write!(
                f,
                "polling: the netlink socket failed: {}",
                std::io::Error::from_raw_os_error(errno)
            ),
        }
    }
}

/// The errors by which a kernel refuses a listener (the same numbers on
/// every unix this crate builds for).
const EPERM: i32 = 1;
const EACCES: i32 = 13;

/// The symbolic name of the errors a refusal gives, the number otherwise.
fn errno_name(errno: i32) -> String {
    match errno {
        EPERM => "EPERM".to_owned(),
        EACCES => "EACCES".to_owned(),
        _ => format!("errno {errno}"),
    }
}

/// Tries the proc connector (open, bind, listen, wait for the ack) and says
/// which source a [`Tracker`](super::Tracker) would use here, and what the
/// kernel answered.
pub fn probe() -> Probe {
    match Connector::open(None, DEFAULT_ACK_TIMEOUT) {
        Ok((_, probe)) => probe,
        Err(reason) => Probe::polling(reason),
    }
}

/// What the kernel answered one listen request.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ack {
    /// An ack with error 0.
    Accepted,
    /// An ack carrying this error.
    Refused(i32),
    /// Nothing within the timeout.
    Silent,
}

/// The kernel side of subscribing, as [`negotiate`] needs it: the real
/// socket, or recorded answers in tests.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) trait Subscribe {
    /// Binds to the proc connector's group: `Err(errno)` when refused.
    fn bind(&mut self) -> Result<(), i32>;
    /// Sends a listen request (with the 6.6+ event mask when `mask` is set)
    /// and waits up to `timeout` for its ack. `Err` is a socket failure.
    fn listen(&mut self, mask: Option<u32>, timeout: Duration) -> Result<Ack, i32>;
}

/// The decision: which source runs, given what the kernel answers. The
/// masked form comes first; a kernel older than 6.6 ignores it without an
/// answer, so silence is followed by the old form.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn negotiate(
    kernel: &mut impl Subscribe,
    privileged: bool,
    timeout: Duration,
) -> Result<Probe, ProbeReason> {
    match kernel.bind() {
        Ok(()) => {}
        Err(errno @ (EPERM | EACCES)) => {
            return Err(ProbeReason::NotPermitted {
                at: RefusedAt::Bind,
                errno,
            });
        }
        Err(errno) => return Err(ProbeReason::SocketFailed(errno)),
    }
    let mut filter = true;
    let mut answer = kernel
        .listen(Some(super::decode::PROC_EVENT_ALL), timeout)
        .map_err(ProbeReason::SocketFailed)?;
    if answer == Ack::Silent {
        filter = false;
        answer = kernel
            .listen(None, timeout)
            .map_err(ProbeReason::SocketFailed)?;
    }
    match answer {
        Ack::Accepted => Ok(Probe {
            reason: if privileged {
                ProbeReason::Privileged
            } else {
                ProbeReason::UnprivilegedListen
            },
            filter,
        }),
        Ack::Refused(errno) => Err(ProbeReason::NotPermitted {
            at: RefusedAt::Ack,
            errno,
        }),
        Ack::Silent => Err(ProbeReason::NoAnswer { waited: timeout }),
    }
}

#[cfg(test)]
mod tests {
    //! The decision on recorded kernel answers, so that every branch is
    //! tested on every machine, whatever its own kernel does.
    use super::*;

    /// Replays what one kernel answered: the bind, then each listen request
    /// in turn (the masked form first).
    struct Recorded {
        bind: Result<(), i32>,
        acks: Vec<Ack>,
        asked: Vec<Option<u32>>,
    }

    impl Recorded {
        fn new(bind: Result<(), i32>, acks: &[Ack]) -> Recorded {
            Recorded {
                bind,
                acks: acks.iter().rev().copied().collect(),
                asked: Vec::new(),
            }
        }
    }

    impl Subscribe for Recorded {
        fn bind(&mut self) -> Result<(), i32> {
            self.bind
        }
        fn listen(&mut self, mask: Option<u32>, _: Duration) -> Result<Ack, i32> {
            self.asked.push(mask);
            Ok(self
                .acks
                .pop()
                .expect("the probe asked more than the kernel answered"))
        }
    }

    const WAIT: Duration = Duration::from_millis(250);

    fn run(kernel: &mut Recorded, privileged: bool) -> Result<Probe, ProbeReason> {
        negotiate(kernel, privileged, WAIT)
    }

    #[test]
    fn a_kernel_that_acks_the_masked_form_gives_the_filtered_connector() {
        // Root on 6.6+; or any user on a build that lets everyone listen.
        for privileged in [true, false] {
            let mut kernel = Recorded::new(Ok(()), &[Ack::Accepted]);
            let probe = run(&mut kernel, privileged).unwrap();
            assert_eq!(probe.source(), EventSource::Connector);
            assert!(probe.filter);
            assert_eq!(kernel.asked.len(), 1);
            let expected = if privileged {
                ProbeReason::Privileged
            } else {
                ProbeReason::UnprivilegedListen
            };
            assert_eq!(probe.reason, expected);
        }
    }

    #[test]
    fn a_kernel_silent_to_the_mask_but_acking_the_old_form_gives_the_plain_connector() {
        // Root before 6.6.
        let mut kernel = Recorded::new(Ok(()), &[Ack::Silent, Ack::Accepted]);
        let probe = run(&mut kernel, true).unwrap();
        assert_eq!(probe.reason, ProbeReason::Privileged);
        assert!(!probe.filter);
        assert_eq!(
            kernel.asked,
            [Some(super::super::decode::PROC_EVENT_ALL), None]
        );
    }

    #[test]
    fn a_refused_bind_polls_and_says_so() {
        // An unprivileged user on a 6.18.44 build.
        let mut kernel = Recorded::new(Err(EPERM), &[]);
        let reason = run(&mut kernel, false).unwrap_err();
        assert_eq!(
            reason,
            ProbeReason::NotPermitted {
                at: RefusedAt::Bind,
                errno: EPERM
            }
        );
        assert!(
            kernel.asked.is_empty(),
            "no listen request after a refused bind"
        );
        assert_eq!(
            Probe::polling(reason).to_string(),
            "polling: the kernel refused the bind (EPERM): listening needs CAP_NET_ADMIN on this kernel"
        );
    }

    #[test]
    fn an_error_ack_polls_and_says_so() {
        // An unprivileged user before 6.6: the old form is refused in the ack.
        let mut kernel = Recorded::new(Ok(()), &[Ack::Silent, Ack::Refused(EPERM)]);
        let reason = run(&mut kernel, false).unwrap_err();
        assert_eq!(
            reason,
            ProbeReason::NotPermitted {
                at: RefusedAt::Ack,
                errno: EPERM
            }
        );
        assert!(
            Probe::polling(reason)
                .to_string()
                .contains("in its ack (EPERM)")
        );
        // The masked form refused outright is the same refusal.
        let mut kernel = Recorded::new(Ok(()), &[Ack::Refused(EPERM)]);
        assert!(matches!(
            run(&mut kernel, false),
            Err(ProbeReason::NotPermitted {
                at: RefusedAt::Ack,
                ..
            })
        ));
    }

    #[test]
    fn silence_to_both_forms_polls_and_says_how_long_it_waited() {
        // A new user or pid namespace.
        let mut kernel = Recorded::new(Ok(()), &[Ack::Silent, Ack::Silent]);
        let reason = run(&mut kernel, true).unwrap_err();
        assert_eq!(reason, ProbeReason::NoAnswer { waited: WAIT });
        assert!(
            Probe::polling(reason)
                .to_string()
                .starts_with("polling: no ack to the listen request within 250 ms")
        );
    }

    #[test]
    fn any_other_bind_error_is_a_socket_failure() {
        let mut kernel = Recorded::new(Err(22), &[]);
        assert_eq!(run(&mut kernel, true), Err(ProbeReason::SocketFailed(22)));
    }
}
