//! The platform's own [`ProcessSource`]: the one place that picks it.

/// The platform's process source: `ProcReader` on Linux (`/proc`).
#[cfg(target_os = "linux")]
pub type SystemSource = crate::ProcReader;

/// The platform's process source: `LibprocReader` on macOS (libproc, sysctl).
#[cfg(target_os = "macos")]
pub type SystemSource = crate::LibprocReader;

/// Both readers have the same inherent calls; the one-shot functions use them.
#[cfg(any(target_os = "linux", target_os = "macos"))]
mod imp {
    use super::SystemSource;
    use crate::{Liveness, Pid, ProcessIdentity, ProcessInfo, Result};

    pub(crate) fn open() -> Result<SystemSource> {
        SystemSource::open()
    }

    pub(crate) fn processes() -> Result<Vec<ProcessInfo>> {
        SystemSource::open()?.processes()
    }

    pub(crate) fn process(pid: Pid) -> Result<ProcessInfo> {
        SystemSource::open()?.process(pid)
    }

    pub(crate) fn exists(pid: Pid) -> Result<Liveness> {
        SystemSource::open()?.exists(pid)
    }

    /// The pidfs inode of `identity` where the kernel has pidfs (Linux 6.9+)
    /// and the process exists; see `linux/pidfs.rs`. macOS has none.
    #[cfg_attr(not(feature = "registry"), allow(dead_code))]
    pub(crate) fn pidfs_inode(
        source: &mut SystemSource,
        identity: ProcessIdentity,
    ) -> Result<Option<u64>> {
        #[cfg(target_os = "linux")]
        {
            crate::linux::pidfs_inode(source, identity)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (source, identity);
            Ok(None)
        }
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

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub use imp::SystemSource;
#[cfg(feature = "registry")]
pub(crate) use imp::pidfs_inode;
pub(crate) use imp::{exists, open, process, processes};
