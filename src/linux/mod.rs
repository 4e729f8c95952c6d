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
