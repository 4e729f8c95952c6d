//! The proc connector on Linux: a `NETLINK_CONNECTOR` socket bound to the
//! `CN_IDX_PROC` group, through rustix (no `unsafe`).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use super::decode::{self, CN_IDX_PROC, Message};
use super::probe::{Ack, Probe, ProbeReason, Subscribe, negotiate};

/// Room for a few dozen ~92-byte messages per `recv`.
const RECV_BUFFER: usize = 16 * 1024;

/// What one drain of the socket brought.
#[derive(Debug, Default)]
pub(crate) struct Drained {
    /// True when the kernel reported dropped messages (ENOBUFS, overrun,
    /// a truncated datagram, a malformed one): a resync is due.
    pub(crate) lost: bool,
}

/// A listening proc connector socket.
#[derive(Debug)]
pub(crate) struct Connector {
    socket: OwnedFd,
    buf: Vec<u8>,
    /// The ack number of the last listen request sent.
    ack: u32,
}

impl Connector {
    /// Opens, binds and subscribes, waiting up to `ack_timeout` for the
    /// kernel's answer. `Err` says what the kernel answered instead, and so
    /// why events must come from polling.
    pub(crate) fn open(
        receive_buffer: Option<usize>,
        ack_timeout: Duration,
    ) -> Result<(Connector, Probe), ProbeReason> {
        let socket = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            Some(netlink::CONNECTOR),
        )
        .map_err(|errno| ProbeReason::SocketFailed(errno.raw_os_error()))?;
        let mut connector = Connector {
            socket,
            buf: vec![0; RECV_BUFFER],
            // Acks are multicast to every listener: a number of our own
            // tells ours from another process's subscribing at the same
            // moment.
            ack: ack_nonce(),
        };
        let probe = negotiate(&mut connector, privileged(), ack_timeout)?;
        if let Some(bytes) = receive_buffer {
            // Set once subscribed, so that a small buffer cannot lose the ack
            // to other processes' events. The forced size needs
            // CAP_NET_ADMIN; the plain one is capped by net.core.rmem_max.
            let socket = &connector.socket;
            rustix::net::sockopt::set_socket_recv_buffer_size_force(socket, bytes)
                .or_else(|_| rustix::net::sockopt::set_socket_recv_buffer_size(socket, bytes))
                .map_err(|errno| ProbeReason::SocketFailed(errno.raw_os_error()))?;
        }
        Ok((connector, probe))
    }

    /// The socket, for tokio's `AsyncFd`.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Waits until the socket is readable or `timeout` passes: true when
    /// readable.
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> std::io::Result<bool> {
        let timeout = timeout.map(|t| {
            rustix::time::Timespec::try_from(t).unwrap_or(rustix::time::Timespec {
                tv_sec: i64::MAX,
                tv_nsec: 0,
            })
        });
        let mut fds = [PollFd::new(&self.socket, PollFlags::IN)];
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(n) => Ok(n > 0),
            Err(Errno::INTR) => Ok(false),
            Err(errno) => Err(errno.into()),
        }
    }

    /// Reads every message waiting, without blocking, into `out`.
    pub(crate) fn drain(&mut self, out: &mut Vec<Message>) -> std::io::Result<Drained> {
        let mut drained = Drained::default();
        loop {
            let len = match rustix::net::recv(&self.socket, &mut self.buf[..], RecvFlags::DONTWAIT)
            {
                Ok((_, len)) => len,
                Err(Errno::AGAIN) => return Ok(drained),
                Err(Errno::INTR) => continue,
                // The socket's queue overflowed: messages were dropped.
                Err(Errno::NOBUFS) => {
                    drained.lost = true;
                    continue;
                }
                Err(errno) => return Err(errno.into()),
            };
            if len > self.buf.len() {
                drained.lost = true;
            }
            let len = len.min(self.buf.len());
            for message in decode::messages(&self.buf[..len]) {
                match message {
                    Ok(Message::Overrun) | Err(_) => drained.lost = true,
                    Ok(message) => out.push(message),
                }
            }
        }
    }
}

impl Subscribe for Connector {
    fn bind(&mut self) -> Result<(), i32> {
        rustix::net::bind(&self.socket, &SocketAddrNetlink::new(0, CN_IDX_PROC))
            .map_err(|errno| errno.raw_os_error())
    }

    fn listen(&mut self, mask: Option<u32>, timeout: Duration) -> Result<Ack, i32> {
        // Each request its own number, so a late ack to the first cannot
        // pass for the answer to the second.
        self.ack = self.ack.wrapping_add(2);
        let request = decode::listen_request(0, self.ack, mask);
        rustix::net::send(&self.socket, &request, SendFlags::empty())
            .map_err(|errno| errno.raw_os_error())?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero()
                || !self
                    .wait(Some(left))
                    .map_err(|e| e.raw_os_error().unwrap_or(0))?
            {
                return Ok(Ack::Silent);
            }
            let len = match rustix::net::recv(&self.socket, &mut self.buf[..], RecvFlags::DONTWAIT)
            {
                Ok((_, len)) => len.min(self.buf.len()),
                Err(Errno::AGAIN | Errno::INTR | Errno::NOBUFS) => continue,
                Err(errno) => return Err(errno.raw_os_error()),
            };
            // Events may come before the ack (other listeners exist); they
            // predate our baseline, so nothing is lost by skipping them.
            for message in decode::messages(&self.buf[..len]).flatten() {
                if let Message::Ack {
                    ack: answer, err, ..
                } = message
                    && answer == self.ack.wrapping_add(1)
                {
                    return Ok(if err == 0 {
                        Ack::Accepted
                    } else {
                        Ack::Refused(err as i32)
                    });
                }
            }
        }
    }
}

/// A listen request's ack number unlikely to be another listener's: the
/// pid, a per-process counter and the clock's nanoseconds mixed.
fn ack_nonce() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = std::process::id()
        .wrapping_mul(0x9E37_79B9)
        .wrapping_add(NEXT.fetch_add(4, Ordering::Relaxed))
        ^ nanos;
    // Never the small numbers naive listeners use (0, 1, ...).
    mixed | 0x8000_0000
}

/// Root or CAP_NET_ADMIN in the effective set.
fn privileged() -> bool {
    rustix::process::geteuid().is_root()
        || rustix::thread::capabilities(None)
            .map(|sets| {
                sets.effective
                    .contains(rustix::thread::CapabilitySet::NET_ADMIN)
            })
            .unwrap_or(false)
}
