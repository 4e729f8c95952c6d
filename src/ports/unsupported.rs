//! Platforms without a socket source: every query is `Error::Unsupported`.

use super::Protocol;
use super::decode::RawSocket;
use super::search::HolderSource;
use crate::source::FdAccess;
use crate::{Error, Pid, ProcessIdentity, Result};

const NOT_YET: Error = Error::Unsupported {
    what: "finding port holders on this platform",
};

#[derive(Debug)]
pub(crate) struct Platform;

impl Platform {
    pub(crate) fn open() -> Result<Platform> {
        Err(NOT_YET)
    }

    pub(crate) fn sockets(
        &mut self,
        _: Protocol,
        _: Option<u16>,
        _: &mut Vec<RawSocket>,
    ) -> Result<()> {
        Err(NOT_YET)
    }

    pub(crate) fn holder_source(&mut self) -> &mut Platform {
        self
    }
}

impl HolderSource for Platform {
    fn pids(&mut self, _: &mut Vec<Pid>) -> Result<()> {
        Err(NOT_YET)
    }
    fn socket_fds(&mut self, _: Pid, _: &[u32], _: &mut Vec<(i32, u64)>) -> Result<FdAccess> {
        Err(NOT_YET)
    }
    fn parent(&mut self, _: Pid) -> Result<Option<Pid>> {
        Err(NOT_YET)
    }
    fn children(&mut self, _: Pid, _: &mut Vec<Pid>) -> Result<bool> {
        Err(NOT_YET)
    }
    fn identity(&mut self, _: Pid) -> Result<Option<ProcessIdentity>> {
        Err(NOT_YET)
    }
}
