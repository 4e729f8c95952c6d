//! The Linux source: `/proc` read with raw system calls.
//!
//! [`ProcReader`] holds one directory fd on a proc root and one reused buffer.
//! Listing pids is `getdents64` on that fd; reading a file is `openat` relative
//! to it, one `read`, `close`. Nothing here allocates per process except the
//! strings a [`ProcessInfo`](crate::ProcessInfo) owns.

mod fds;
mod path;
mod pidfs;
mod reader;

pub(crate) use pidfs::pidfs_inode;

pub use reader::ProcReader;
pub(crate) use reader::read_stat_once;
