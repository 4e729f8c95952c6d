//! macOS: sockets and holders from each process's open files
//! (`proc_pidinfo(PROC_PIDLISTFDS)`, `proc_pidfdinfo(PROC_PIDFDSOCKETINFO)`).
//!
//! The kernel has no socket table to ask first, so one walk over every
//! process gives both the listening sockets and their holders; the holder
//! search then reads from what the walk kept.

use std::collections::HashMap;

use super::Protocol;
use super::decode::{self, RawSocket, SOCKET_FDINFO_SIZE};
use super::search::HolderSource;
use crate::source::FdAccess;
use crate::{Error, Pid, ProcessIdentity, ProcessSource, Result, SystemSource};

/// The platform's socket lister and holder source.
#[derive(Debug)]
pub(crate) struct Platform {
    holders: Walk,
}

/// What the last walk saw: each process's listening socket fds.
#[derive(Debug)]
pub(crate) struct Walk {
    reader: SystemSource,
    held: HashMap<Pid, Vec<(i32, u64)>>,
    not_permitted: Vec<Pid>,
    pids: Vec<Pid>,
    fds: Vec<u8>,
}

impl Platform {
    pub(crate) fn open() -> Result<Platform> {
        Ok(Platform {
            holders: Walk {
                reader: SystemSource::open()?,
                held: HashMap::new(),
                not_permitted: Vec::new(),
                pids: Vec::new(),
                fds: Vec::new(),
            },
        })
    }

    /// Appends the listening sockets of `protocol` (on `port` when given),
    /// walking every process's fds.
    pub(crate) fn sockets(
        &mut self,
        protocol: Protocol,
        port: Option<u16>,
        out: &mut Vec<RawSocket>,
    ) -> Result<()> {
        let walk = &mut self.holders;
        walk.held.clear();
        walk.not_permitted.clear();
        walk.reader.list_pids(&mut walk.pids)?;
        let mut info = vec![0u8; SOCKET_FDINFO_SIZE];
        for &pid in &walk.pids {
            let len = match crate::ffi::list_fds(pid.as_raw(), &mut walk.fds) {
                Ok(len) => len,
                Err(error) if error.raw_os_error() == Some(libc::EPERM) => {
                    walk.not_permitted.push(pid);
                    continue;
                }
                // Gone, or a zombie.
                Err(_) => continue,
            };
            for fd in decode::darwin_socket_fds(&walk.fds[..len]) {
                let Ok(n) = crate::ffi::socket_fdinfo(pid.as_raw(), fd, &mut info) else {
                    continue;
                };
                let Some(socket) = decode::darwin_listener(&info[..n]) else {
                    continue;
                };
                if socket.protocol != protocol || port.is_some_and(|p| p != socket.local.port()) {
                    continue;
                }
                walk.held.entry(pid).or_default().push((fd, socket.id));
                if !out.iter().any(|known| known.id == socket.id) {
                    out.push(socket);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn holder_source(&mut self) -> &mut Walk {
        &mut self.holders
    }
}

impl HolderSource for Walk {
    fn pids(&mut self, out: &mut Vec<Pid>) -> Result<()> {
        out.clear();
        out.extend_from_slice(&self.pids);
        Ok(())
    }

    /// Every process was read by the walk already: no order is cheaper than
    /// another, so `owners` is not looked at.
    fn socket_fds(
        &mut self,
        pid: Pid,
        _owners: &[u32],
        out: &mut Vec<(i32, u64)>,
    ) -> Result<FdAccess> {
        if self.not_permitted.contains(&pid) {
            return Ok(FdAccess::NotPermitted);
        }
        if !self.pids.contains(&pid) {
            // Not there when the walk ran: gone, or started since.
            return Ok(FdAccess::Gone);
        }
        if let Some(held) = self.held.get(&pid) {
            out.extend_from_slice(held);
        }
        Ok(FdAccess::Read)
    }

    fn parent(&mut self, pid: Pid) -> Result<Option<Pid>> {
        match self.reader.sample(pid) {
            Ok(sample) => Ok(sample.parent),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Children are not listed directly here; the search then looks at
    /// everyone, from what the walk kept.
    fn children(&mut self, _pid: Pid, _out: &mut Vec<Pid>) -> Result<bool> {
        Ok(false)
    }

    fn identity(&mut self, pid: Pid) -> Result<Option<ProcessIdentity>> {
        let boot = self.reader.boot_id();
        match self.reader.sample(pid) {
            Ok(sample) => Ok(Some(sample.identity(boot))),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(other) => Err(other),
        }
    }
}
