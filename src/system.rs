//! The platform's own [`ProcessSource`]: the one place that picks it.

#[cfg(target_os = "linux")]
mod imp {
    use crate::{Liveness, Pid, ProcReader, ProcessIdentity, ProcessInfo, Result};

    /// The platform's process source: [`ProcReader`] on `/proc`.
    pub type SystemSource = ProcReader;

    pub(crate) fn open() -> Result<SystemSource> {
        ProcReader::open()
    }

    pub(crate) fn processes() -> Result<Vec<ProcessInfo>> {
        ProcReader::open()?.processes()
    }

    pub(crate) fn process(pid: Pid) -> Result<ProcessInfo> {
        ProcReader::open()?.process(pid)
    }

    pub(crate) fn exists(pid: Pid) -> Result<Liveness> {
        ProcReader::open()?.exists(pid)
    }

    /// The pidfs inode of `identity` where the kernel has pidfs (6.9+) and the
    /// process exists; see `linux/pidfs.rs`.
    #[cfg_attr(not(feature = "registry"), allow(dead_code))]
    pub(crate) fn pidfs_inode(
        source: &mut SystemSource,
        identity: ProcessIdentity,
    ) -> Result<Option<u64>> {
        crate::linux::pidfs_inode(source, identity)
    }
}

#[cfg(target_os = "macos")]
mod imp {
    use crate::{LibprocReader, Liveness, Pid, ProcessIdentity, ProcessInfo, Result};

    /// The platform's process source: [`LibprocReader`] on libproc and
    /// `sysctl`.
    pub type SystemSource = LibprocReader;

    pub(crate) fn open() -> Result<SystemSource> {
        LibprocReader::open()
    }

    pub(crate) fn processes() -> Result<Vec<ProcessInfo>> {
        LibprocReader::open()?.processes()
    }

    pub(crate) fn process(pid: Pid) -> Result<ProcessInfo> {
        LibprocReader::open()?.process(pid)
    }

    pub(crate) fn exists(pid: Pid) -> Result<Liveness> {
        LibprocReader::open()?.exists(pid)
    }

    /// macOS has no pidfs inodes.
    #[cfg_attr(not(feature = "registry"), allow(dead_code))]
    pub(crate) fn pidfs_inode(
        _source: &mut SystemSource,
        _identity: ProcessIdentity,
    ) -> Result<Option<u64>> {
        Ok(None)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod imp {
    use crate::{
        BootId, Cwd, Error, Liveness, Pid, ProcessIdentity, ProcessInfo, ProcessSource, Result,
        Sample,
    };

    const NOT_YET: Error = Error::Unsupported {
        what: "reading processes on this platform",
    };

    /// A source for platforms proctrack cannot read yet: every call is
    /// [`Error::Unsupported`].
    #[derive(Debug)]
    pub struct SystemSource;

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

    pub(crate) fn open() -> Result<SystemSource> {
        Err(NOT_YET)
    }

    pub(crate) fn processes() -> Result<Vec<ProcessInfo>> {
        Err(NOT_YET)
    }

    pub(crate) fn process(_pid: Pid) -> Result<ProcessInfo> {
        Err(NOT_YET)
    }

    pub(crate) fn exists(_pid: Pid) -> Result<Liveness> {
        Err(NOT_YET)
    }

    /// No other platform has pidfs inodes.
    #[cfg_attr(not(feature = "registry"), allow(dead_code))]
    pub(crate) fn pidfs_inode(
        _source: &mut SystemSource,
        _identity: ProcessIdentity,
    ) -> Result<Option<u64>> {
        Ok(None)
    }
}

pub use imp::SystemSource;
#[cfg(feature = "registry")]
pub(crate) use imp::pidfs_inode;
pub(crate) use imp::{exists, open, process, processes};
