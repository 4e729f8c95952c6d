//! Linux: listening sockets from sock_diag netlink (the kernel filters by
//! port), `/proc/net/{tcp,tcp6,udp,udp6}` where netlink is refused; holders
//! from the fd links under `/proc`, read through [`SystemSource`].

use std::ffi::CStr;
use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, netlink};

use super::decode::{self, AF_INET, AF_INET6, Batch, RawSocket};
use super::search::HolderSource;
use super::{Protocol, io_error};
use crate::source::FdAccess;
use crate::{Error, Pid, ProcessIdentity, ProcessSource, Result, SystemSource};

/// Room for one netlink reply: the kernel sends at most 32 KiB per `recv`.
const REPLY_BUFFER: usize = 64 * 1024;

/// The platform's socket lister and holder source.
#[derive(Debug)]
pub(crate) struct Platform {
    reader: SystemSource,
    /// `None` when netlink sock_diag is unavailable: `/proc/net` is read instead.
    diag: Option<OwnedFd>,
    seq: u32,
    request: Vec<u8>,
    reply: Vec<u8>,
}

impl Platform {
    pub(crate) fn open() -> Result<Platform> {
        let diag = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(netlink::SOCK_DIAG),
        )
        .ok();
        Ok(Platform {
            reader: SystemSource::open()?,
            diag,
            seq: 0,
            request: Vec::new(),
            reply: vec![0; REPLY_BUFFER],
        })
    }

    /// The `/proc/net` files only, never netlink: for tests of the fallback.
    #[cfg(test)]
    pub(crate) fn without_netlink(mut self) -> Platform {
        self.diag = None;
        self
    }

    /// Appends the listening sockets of `protocol` (on `port` when given).
    pub(crate) fn sockets(
        &mut self,
        protocol: Protocol,
        port: Option<u16>,
        out: &mut Vec<RawSocket>,
    ) -> Result<()> {
        if self.diag.is_some() {
            let mark = out.len();
            match self.diag_sockets(protocol, port, out) {
                Ok(()) => return Ok(()),
                // Refused (a seccomp filter, an old kernel): fall back.
                Err(_) => out.truncate(mark),
            }
        }
        self.proc_net_sockets(protocol, port, out)
    }

    fn diag_sockets(
        &mut self,
        protocol: Protocol,
        port: Option<u16>,
        out: &mut Vec<RawSocket>,
    ) -> Result<()> {
        let Some(diag) = &self.diag else {
            return Err(Error::Unsupported {
                what: "sock_diag netlink",
            });
        };
        for family in [AF_INET, AF_INET6] {
            self.seq = self.seq.wrapping_add(1);
            decode::encode_diag_request(&mut self.request, family, protocol, port, self.seq);
            let kernel = netlink::SocketAddrNetlink::new(0, 0);
            rustix::net::sendto(diag, &self.request, SendFlags::empty(), &kernel)
                .map_err(|errno| io_error(errno, None))?;
            loop {
                let (_, len) = rustix::net::recv(diag, &mut self.reply[..], RecvFlags::empty())
                    .map_err(|errno| io_error(errno, None))?;
                match decode::decode_diag_batch(&self.reply[..len], protocol, self.seq, out) {
                    Ok(Batch::Done) => break,
                    Ok(Batch::More) if len > 0 => {}
                    Ok(Batch::More) => break,
                    // No IPv6 in this kernel: there are no IPv6 sockets.
                    Err(decode::DecodeError::Kernel(code))
                        if family == AF_INET6
                            && (code == Errno::NOENT.raw_os_error()
                                || code == Errno::AFNOSUPPORT.raw_os_error()) =>
                    {
                        break;
                    }
                    Err(error) => {
                        return Err(Error::Parse {
                            path: None,
                            source: error.into(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    fn proc_net_sockets(
        &mut self,
        protocol: Protocol,
        port: Option<u16>,
        out: &mut Vec<RawSocket>,
    ) -> Result<()> {
        let files: [&CStr; 2] = match protocol {
            Protocol::Tcp => [c"net/tcp", c"net/tcp6"],
            Protocol::Udp => [c"net/udp", c"net/udp6"],
        };
        for file in files {
            let text = match self.reader.read_file(file) {
                Ok(text) => text,
                // No IPv6 in this kernel.
                Err(Error::Io { .. }) if file.to_bytes().ends_with(b"6") => continue,
                Err(other) => return Err(other),
            };
            decode::decode_proc_net(text, protocol, port, out).map_err(|error| Error::Parse {
                path: Some(self.reader.root().join(file.to_string_lossy().as_ref())),
                source: error.into(),
            })?;
        }
        Ok(())
    }

    pub(crate) fn holder_source(&mut self) -> &mut SystemSource {
        &mut self.reader
    }
}

impl HolderSource for SystemSource {
    fn pids(&mut self, out: &mut Vec<Pid>) -> Result<()> {
        self.list_pids(out)
    }

    fn socket_fds(
        &mut self,
        pid: Pid,
        owners: &[u32],
        out: &mut Vec<(i32, u64)>,
    ) -> Result<FdAccess> {
        SystemSource::socket_fds(self, pid, owners, out)
    }

    fn socket_fds_of_all(
        &mut self,
        pids: &[Pid],
        sockets: &mut Vec<(Pid, i32, u64)>,
        not_permitted: &mut Vec<Pid>,
    ) -> Result<()> {
        SystemSource::socket_fds_of_all(self, pids, sockets, not_permitted)
    }

    fn parent(&mut self, pid: Pid) -> Result<Option<Pid>> {
        match self.sample(pid) {
            Ok(sample) => Ok(sample.parent),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(other) => Err(other),
        }
    }

    fn children(&mut self, pid: Pid, out: &mut Vec<Pid>) -> Result<bool> {
        match ProcessSource::children(self, pid, out) {
            // A process gone meanwhile has no children.
            Err(Error::NotFound { .. }) => Ok(true),
            other => other,
        }
    }

    fn identity(&mut self, pid: Pid) -> Result<Option<ProcessIdentity>> {
        let boot = self.boot_id();
        match self.sample(pid) {
            Ok(sample) => Ok(Some(sample.identity(boot))),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(other) => Err(other),
        }
    }

    fn identities(&mut self, pids: &[Pid], out: &mut Vec<Option<ProcessIdentity>>) -> Result<()> {
        SystemSource::identities(self, pids, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Netlink and the /proc/net fallback agree on a socket of ours.
    #[test]
    fn netlink_and_proc_net_agree() -> Result<()> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| io_error(e, None))?;
        let port = listener.local_addr().map_err(|e| io_error(e, None))?.port();
        let mut netlink = Platform::open()?;
        assert!(netlink.diag.is_some(), "sock_diag netlink refused here");
        let mut proc_net = Platform::open()?.without_netlink();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        netlink.sockets(Protocol::Tcp, Some(port), &mut a)?;
        proc_net.sockets(Protocol::Tcp, Some(port), &mut b)?;
        assert_eq!(a.len(), 1);
        assert_eq!(b.len(), 1);
        assert_eq!(
            (a[0].id, a[0].local, a[0].uid),
            (b[0].id, b[0].local, b[0].uid)
        );
        Ok(())
    }

    /// A `/proc/net/tcp` longer than 64 KiB (a seq_file of 150-byte lines,
    /// whose reads return only whole lines: short long before the end) is
    /// read whole by the fallback: 600 listeners of ours, every one found,
    /// the same sockets netlink lists.
    #[test]
    fn a_long_proc_net_table_is_read_whole() -> Result<()> {
        const LISTENERS: usize = 600;
        let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        if nofile.is_some_and(|soft| soft < LISTENERS as u64 + 256) {
            println!("skipped: RLIMIT_NOFILE {nofile:?} leaves no room for {LISTENERS} sockets");
            return Ok(());
        }
        let listeners = (0..LISTENERS)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| io_error(e, None))?;
        let mut ours = std::collections::HashSet::new();
        for listener in &listeners {
            ours.insert(listener.local_addr().map_err(|e| io_error(e, None))?);
        }
        let bytes = std::fs::read("/proc/net/tcp").map_err(|e| io_error(e, None))?;
        assert!(
            bytes.len() > 64 * 1024,
            "/proc/net/tcp is {} bytes",
            bytes.len()
        );
        let (mut netlink, mut proc_net) = (Vec::new(), Vec::new());
        Platform::open()?.sockets(Protocol::Tcp, None, &mut netlink)?;
        Platform::open()?
            .without_netlink()
            .sockets(Protocol::Tcp, None, &mut proc_net)?;
        let found = |sockets: &[RawSocket]| {
            sockets
                .iter()
                .filter(|socket| ours.contains(&socket.local))
                .map(|socket| (socket.id, socket.local))
                .collect::<std::collections::BTreeSet<_>>()
        };
        println!(
            "/proc/net/tcp: {} bytes; {} of our {LISTENERS} listeners found",
            bytes.len(),
            found(&proc_net).len()
        );
        assert_eq!(found(&proc_net).len(), LISTENERS);
        assert_eq!(found(&proc_net), found(&netlink));
        Ok(())
    }
}
