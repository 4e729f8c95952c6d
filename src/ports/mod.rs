//! Ports: which processes hold a listening socket, every one of them, and
//! stopping them safely.
//!
//! A *listener* here is a listening TCP socket or a bound, unconnected UDP
//! socket, IPv4 or IPv6, with every process that holds it open: a server
//! that forked workers after `bind` shares one socket with all of them, and
//! `SO_REUSEPORT` servers have one socket each on the same port.
//!
//! ```no_run
//! use proctrack::ports::{PortFinder, Search};
//!
//! let mut finder = PortFinder::open()?;
//! let report = finder.holders(3000, &Search::new())?;
//! for listener in &report.listeners {
//!     for holder in &listener.holders {
//!         println!("{} {} fd {}", listener.socket.local, holder.identity, holder.fd);
//!     }
//! }
//! # Ok::<(), proctrack::Error>(())
//! ```
//!
//! # How
//!
//! On Linux the kernel lists the sockets through sock_diag netlink, filtering
//! by port itself (`/proc/net/{tcp,tcp6,udp,udp6}` where netlink is refused);
//! it gives each socket's inode and owner but not its holders. Holders are
//! found by reading fd links (`/proc/<pid>/fd/N -> socket:[INODE]`), the way
//! `ss -p` and `lsof` do, but in order of likelihood: the processes the
//! caller names first ([`Search::tree`]), then the socket owners' processes,
//! then everyone, stopping once every socket has a holder and the families
//! of the holders (their ancestors and the subtree of the highest one that
//! holds the socket too) have been looked at, where inherited copies live.
//! [`Search::exhaustive`] reads every process instead; listing every
//! listener ([`PortFinder::listeners`]) always does. Such a walk over every
//! process, and the reads of the holders' identities after it, share the
//! work with one helper thread when there is a second CPU: the kernel's
//! lookups of each fd bound it, not anything a cache could save. The answer
//! is put together in pid order, whichever thread read what.
//!
//! Another user's processes cannot be read without privilege; they are
//! listed in [`PortReport::not_permitted`], never silently skipped.
//!
//! On macOS the sockets come from each process's fds
//! (`proc_pidinfo(PROC_PIDLISTFDS)`, `proc_pidfdinfo(PROC_PIDFDSOCKETINFO)`),
//! so every search there reads every process.
//!
//! To stop what holds a port, see [`PortFinder::kill_port`].

pub(crate) mod decode;
mod kill;
mod search;

#[cfg_attr(target_os = "linux", path = "linux.rs")]
#[cfg_attr(target_os = "macos", path = "macos.rs")]
#[cfg_attr(
    not(any(target_os = "linux", target_os = "macos")),
    path = "unsupported.rs"
)]
mod imp;

use std::fmt;
use std::net::SocketAddr;

pub use kill::{PortKill, PortKillOptions, PortTree};

use crate::table::ProcessTable;
use crate::{Error, Pid, ProcessIdentity, ProcessSource, Result};
use decode::RawSocket;
use search::{HolderSource, Plan};

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Protocol {
    /// A listening TCP socket.
    Tcp,
    /// A bound UDP socket (not connected).
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// One listening socket, as the kernel describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Socket {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The local address and port.
    pub local: SocketAddr,
    /// The socket's id: its inode on Linux (as in `socket:[INODE]`), the
    /// kernel's socket id on macOS.
    pub id: u64,
    /// The user that owns the socket, where the platform says.
    pub uid: Option<u32>,
    /// For IPv6 sockets: whether IPv4 is refused (`IPV6_V6ONLY`); `None` for
    /// IPv4 sockets, or where the platform does not say (`/proc/net`).
    pub v6_only: Option<bool>,
}

impl Socket {
    /// True when IPv4 clients reach this socket: an IPv4 socket, or an IPv6
    /// socket on `::` that is not `IPV6_V6ONLY` (a dual-stack socket; when
    /// unknown, Linux's default, dual-stack, is assumed).
    pub fn accepts_ipv4(&self) -> bool {
        match self.local {
            SocketAddr::V4(_) => true,
            SocketAddr::V6(v6) => {
                let ip = v6.ip();
                (ip.is_unspecified() && self.v6_only != Some(true)) || ip.to_ipv4_mapped().is_some()
            }
        }
    }

    /// True when IPv6 clients reach this socket: an IPv6 socket not bound to
    /// an IPv4-mapped address.
    pub fn accepts_ipv6(&self) -> bool {
        match self.local {
            SocketAddr::V4(_) => false,
            SocketAddr::V6(v6) => v6.ip().to_ipv4_mapped().is_none(),
        }
    }

    fn from_raw(raw: &RawSocket) -> Socket {
        Socket {
            protocol: raw.protocol,
            local: raw.local,
            id: raw.id,
            uid: raw.uid,
            v6_only: raw.v6_only,
        }
    }
}

/// A process that holds a listening socket open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Holder {
    /// The process (pid, start time, boot): safe to hand to
    /// [`kill_tree`](crate::signal::kill_tree) later.
    pub identity: ProcessIdentity,
    /// The fd the socket is open on in that process (the first one, if
    /// several).
    pub fd: i32,
}

/// A listening socket and every process found holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Listener {
    /// The socket.
    pub socket: Socket,
    /// Its holders, ascending pid. Empty when none was found: the holder
    /// may be among [`PortReport::not_permitted`], or in another network
    /// namespace's view, or it exited meanwhile.
    pub holders: Vec<Holder>,
}

/// The answer of a port query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct PortReport {
    /// The listening sockets, by protocol, port, address (IPv4 first), then
    /// socket id.
    pub listeners: Vec<Listener>,
    /// Processes the search met whose fds could not be read: other users'
    /// processes, without privilege. A listener without holders is likely
    /// held by one of them.
    pub not_permitted: Vec<Pid>,
}

impl PortReport {
    /// Every holder of every listener, each process once, ascending pid.
    pub fn holders(&self) -> Vec<ProcessIdentity> {
        let mut all: Vec<ProcessIdentity> = self
            .listeners
            .iter()
            .flat_map(|listener| listener.holders.iter().map(|holder| holder.identity))
            .collect();
        all.sort_unstable_by_key(|identity| identity.pid());
        all.dedup();
        all
    }
}

/// Where a holder search looks first, and whether it may stop early.
///
/// ```
/// use proctrack::ports::{Protocol, Search};
///
/// let everything = Search::new().exhaustive(true);
/// let tcp_only = Search::new().protocol(Protocol::Tcp);
/// # let _ = (everything, tcp_only);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    protocol: Option<Protocol>,
    first: Vec<Pid>,
    exhaustive: bool,
}

impl Search {
    /// Both protocols, no hint, stop early.
    pub fn new() -> Search {
        Search::default()
    }

    /// Only sockets of this protocol.
    pub fn protocol(mut self, protocol: Protocol) -> Search {
        self.protocol = Some(protocol);
        self
    }

    /// Look at `root` and everything under it (from `table`) before anyone
    /// else: a supervisor that knows which trees it started finds their
    /// sockets without reading the rest of the system.
    pub fn tree<S: ProcessSource>(mut self, table: &ProcessTable<S>, root: Pid) -> Search {
        self.first.push(root);
        self.first
            .extend(table.descendants(root).iter().map(|info| info.pid()));
        self
    }

    /// Look at these processes before anyone else.
    pub fn pids(mut self, pids: impl IntoIterator<Item = Pid>) -> Search {
        self.first.extend(pids);
        self
    }

    /// Read every process, so that a holder that got its socket from an
    /// unrelated process (over a Unix socket) is found too.
    pub fn exhaustive(mut self, exhaustive: bool) -> Search {
        self.exhaustive = exhaustive;
        self
    }

    fn protocols(&self) -> &'static [Protocol] {
        match self.protocol {
            Some(Protocol::Tcp) => &[Protocol::Tcp],
            Some(Protocol::Udp) => &[Protocol::Udp],
            None => &[Protocol::Tcp, Protocol::Udp],
        }
    }
}

/// Finds listening sockets and the processes that hold them.
///
/// Holds what repeated queries reuse: on Linux a netlink socket and a
/// [`SystemSource`](crate::SystemSource); keep one rather than opening one per
/// query.
#[derive(Debug)]
pub struct PortFinder {
    platform: imp::Platform,
    raw: Vec<RawSocket>,
}

impl PortFinder {
    /// Opens the platform's sources (on Linux a sock_diag netlink socket,
    /// or `/proc/net` where that is refused, and `/proc`).
    pub fn open() -> Result<PortFinder> {
        Ok(PortFinder {
            platform: imp::Platform::open()?,
            raw: Vec::new(),
        })
    }

    /// Every listener on the system with all its holders. Reads every
    /// process's fds; on Linux with a second CPU, on two threads (this one
    /// and one helper, for the duration of the call), with the same answer.
    pub fn listeners(&mut self) -> Result<PortReport> {
        self.query(None, &Search::new().exhaustive(true))
    }

    /// Every listener of one protocol on the system with all its holders:
    /// [`listeners`](Self::listeners) without the other protocol's sockets
    /// (the kernel is not asked for them). Reads every process's fds.
    ///
    /// ```
    /// use proctrack::ports::{PortFinder, Protocol};
    ///
    /// let ours = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let port = ours.local_addr().unwrap().port();
    /// let mut finder = PortFinder::open()?;
    /// let tcp = finder.protocol_listeners(Protocol::Tcp)?;
    /// let found = tcp
    ///     .listeners
    ///     .iter()
    ///     .find(|l| l.socket.local.port() == port)
    ///     .expect("our listener is listed");
    /// assert!(found.holders.iter().any(|h| h.identity.pid() == proctrack::Pid::current()));
    /// let udp = finder.protocol_listeners(Protocol::Udp)?;
    /// assert!(udp.listeners.iter().all(|l| l.socket.protocol == Protocol::Udp));
    /// # Ok::<(), proctrack::Error>(())
    /// ```
    pub fn protocol_listeners(&mut self, protocol: Protocol) -> Result<PortReport> {
        self.query(None, &Search::new().protocol(protocol).exhaustive(true))
    }

    /// The listeners on `port` (IPv4 and IPv6; both protocols unless the
    /// search names one) and every process holding them.
    ///
    /// A port nobody listens on is an empty report, not an error.
    pub fn holders(&mut self, port: u16, search: &Search) -> Result<PortReport> {
        self.query(Some(port), search)
    }

    /// The listeners that any of `pids` holds, with those of their holders
    /// that are among `pids`. Reads only these processes' fds.
    pub fn ports_of(&mut self, pids: &[Pid]) -> Result<PortReport> {
        self.collect_sockets(None, None)?;
        let mut ids: Vec<u64> = self.raw.iter().map(|raw| raw.id).collect();
        ids.sort_unstable();
        ids.dedup();
        let source = self.platform.holder_source();
        let mut report = PortReport::default();
        let mut fds = Vec::new();
        let mut held: Vec<(u64, Pid, i32)> = Vec::new();
        for &pid in pids {
            fds.clear();
            match source.socket_fds(pid, &[], &mut fds)? {
                crate::source::FdAccess::Read => held.extend(
                    fds.iter()
                        .filter(|(_, id)| ids.binary_search(id).is_ok())
                        .map(|&(fd, id)| (id, pid, fd)),
                ),
                crate::source::FdAccess::NotPermitted => report.not_permitted.push(pid),
                crate::source::FdAccess::Gone | crate::source::FdAccess::OtherOwner => {}
            }
        }
        let mut holders: std::collections::HashMap<u64, Vec<(Pid, i32)>> = Default::default();
        for (id, pid, fd) in held {
            holders.entry(id).or_default().push((pid, fd));
        }
        let raw = std::mem::take(&mut self.raw);
        report.listeners = build_listeners(self.platform.holder_source(), &raw, holders, true)?;
        self.raw = raw;
        Ok(report)
    }

    /// The listeners held by `root` or anything under it in `table`.
    pub fn ports_of_tree<S: ProcessSource>(
        &mut self,
        table: &ProcessTable<S>,
        root: Pid,
    ) -> Result<PortReport> {
        let mut pids = vec![root];
        pids.extend(table.descendants(root).iter().map(|info| info.pid()));
        self.ports_of(&pids)
    }

    fn collect_sockets(&mut self, port: Option<u16>, search: Option<&Search>) -> Result<()> {
        self.raw.clear();
        let protocols = search.map_or(&[Protocol::Tcp, Protocol::Udp][..], Search::protocols);
        for &protocol in protocols {
            self.platform.sockets(protocol, port, &mut self.raw)?;
        }
        Ok(())
    }

    fn query(&mut self, port: Option<u16>, search: &Search) -> Result<PortReport> {
        self.collect_sockets(port, Some(search))?;
        let raw = std::mem::take(&mut self.raw);
        let result = self.find(&raw, search);
        self.raw = raw;
        result
    }

    fn find(&mut self, raw: &[RawSocket], search: &Search) -> Result<PortReport> {
        let mut ids: Vec<u64> = raw.iter().map(|socket| socket.id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut uids: Vec<u32> = raw.iter().filter_map(|socket| socket.uid).collect();
        uids.sort_unstable();
        uids.dedup();
        let plan = Plan {
            ids: &ids,
            uids: &uids,
            first: &search.first,
            exhaustive: search.exhaustive,
        };
        let source = self.platform.holder_source();
        let found = search::find_holders(source, &plan)?;
        Ok(PortReport {
            listeners: build_listeners(source, raw, found.holders, false)?,
            not_permitted: found.not_permitted,
        })
    }
}

/// Listeners from sockets and their holders, holders named by identity (a
/// holder that exited meanwhile is dropped), sorted. With `held_only`, only
/// sockets with a holder are kept.
fn build_listeners<S: HolderSource>(
    source: &mut S,
    raw: &[RawSocket],
    mut holders: std::collections::HashMap<u64, Vec<(Pid, i32)>>,
    held_only: bool,
) -> Result<Vec<Listener>> {
    let mut listeners = Vec::with_capacity(raw.len());
    let mut seen = std::collections::HashSet::new();
    // One read per holder, however many sockets it holds, all at once (the
    // platform may share them between threads).
    let mut pids: Vec<Pid> = holders.values().flatten().map(|&(pid, _)| pid).collect();
    pids.sort_unstable();
    pids.dedup();
    let mut identities = Vec::with_capacity(pids.len());
    source.identities(&pids, &mut identities)?;
    for socket in raw {
        // /proc/net can list one socket twice while it changes; keep one.
        if !seen.insert((socket.protocol, socket.id)) {
            continue;
        }
        let mut found: Vec<(Pid, i32)> = holders.remove(&socket.id).unwrap_or_default();
        found.sort_unstable();
        found.dedup_by_key(|(pid, _)| *pid);
        if held_only && found.is_empty() {
            continue;
        }
        let mut listener = Listener {
            socket: Socket::from_raw(socket),
            holders: Vec::with_capacity(found.len()),
        };
        for (pid, fd) in found {
            let identity = pids
                .binary_search(&pid)
                .ok()
                .and_then(|at| identities.get(at).copied().flatten());
            if let Some(identity) = identity {
                listener.holders.push(Holder { identity, fd });
            }
        }
        listeners.push(listener);
    }
    // The socket id last: SO_REUSEPORT sockets share protocol, port and
    // address, and their order must not depend on the kernel's listing.
    listeners.sort_by(|a, b| {
        (
            a.socket.protocol,
            a.socket.local.port(),
            a.socket.local.is_ipv6(),
            a.socket.local.ip(),
            a.socket.id,
        )
            .cmp(&(
                b.socket.protocol,
                b.socket.local.port(),
                b.socket.local.is_ipv6(),
                b.socket.local.ip(),
                b.socket.id,
            ))
    });
    Ok(listeners)
}

/// The ports layer's I/O errors, built in one place; `path` only where a
/// file was involved (a netlink socket has none).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn io_error(source: impl Into<std::io::Error>, path: Option<std::path::PathBuf>) -> Error {
    Error::io(path, source.into())
}
