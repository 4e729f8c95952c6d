//! The Linux source: `/proc` read with raw system calls.
//!
//! [`SystemSource`] holds one directory fd on a proc root and one reused buffer.
//! Listing pids is `getdents64` on that fd; reading a file is `openat` relative
//! to it, one `read`, `close`. Nothing here allocates per process except the
//! strings a [`ProcessInfo`](crate::ProcessInfo) owns.

mod fds;
mod kept;
mod path;
#[cfg(feature = "registry")]
mod pidfs;
mod reader;
mod split;

#[cfg(feature = "registry")]
pub(crate) use pidfs::pidfs_inode;

pub use reader::SystemSource;
pub(crate) use reader::read_stat_once;

/// The soft limit on open files (`u64::MAX`: unlimited).
#[cfg(feature = "http")]
pub(crate) fn open_file_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}

/// Raises the soft limit on open files to the hard one; returns the new
/// soft limit.
#[cfg(feature = "http")]
pub(crate) fn raise_open_file_limit() -> std::io::Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit)?;
    }
    Ok(open_file_limit())
}
