//! The source for platforms proctrack cannot read yet: every call is
//! [`Error::Unsupported`].

use crate::{
    BootId, Cwd, Error, Liveness, Pid, ProcessIdentity, ProcessInfo, ProcessSource, Result, Sample,
};

const NOT_YET: Error = Error::Unsupported {
    what: "reading processes on this platform",
};

/// A source for platforms proctrack cannot read yet: every call is
/// [`Error::Unsupported`].
#[derive(Debug)]
pub struct SystemSource;

impl SystemSource {
    /// [`Error::Unsupported`] here.
    pub fn open() -> Result<SystemSource> {
        Err(NOT_YET)
    }

    /// [`Error::Unsupported`] here.
    pub fn processes(&mut self) -> Result<Vec<ProcessInfo>> {
        Err(NOT_YET)
    }

    /// [`Error::Unsupported`] here.
    pub fn process(&mut self, _pid: Pid) -> Result<ProcessInfo> {
        Err(NOT_YET)
    }

    /// [`Error::Unsupported`] here.
    pub fn exists(&mut self, _pid: Pid) -> Result<Liveness> {
        Err(NOT_YET)
    }
}

impl ProcessSource for SystemSource {
    fn boot_id(&self) -> BootId {
        BootId::from_bytes([0; 16])
    }

    fn list_pids(&mut self, _pids: &mut Vec<Pid>) -> Result<()> {
        Err(NOT_YET)
    }

    fn sample(&mut self, _pid: Pid) -> Result<Sample<'_>> {
        Err(NOT_YET)
    }

    fn read(&mut self, _pid: Pid) -> Result<(ProcessInfo, u64)> {
        Err(NOT_YET)
    }

    fn read_cwd(&mut self, _identity: ProcessIdentity) -> Result<Cwd> {
        Err(NOT_YET)
    }
}

/// No other platform has pidfs inodes.
#[cfg(feature = "registry")]
pub(crate) fn pidfs_inode(
    _source: &mut SystemSource,
    _identity: ProcessIdentity,
) -> Result<Option<u64>> {
    Ok(None)
}

/// Unknown here: taken as unlimited.
#[cfg(feature = "http")]
pub(crate) fn open_file_limit() -> u64 {
    u64::MAX
}

/// Left as it is here.
#[cfg(feature = "http")]
pub(crate) fn raise_open_file_limit() -> std::io::Result<u64> {
    Ok(open_file_limit())
}
