//! The platform's own [`ProcessSource`]: the one place that picks it.

#[cfg(target_os = "linux")]
mod imp {
    use crate::{Liveness, Pid, ProcReader, ProcessInfo, Result};

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
}

#[cfg(not(target_os = "linux"))]
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
}

pub use imp::SystemSource;
pub(crate) use imp::{exists, open, process, processes};
