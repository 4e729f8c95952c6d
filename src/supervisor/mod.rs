//! Containment for supervised jobs: the groundwork of a supervisor.
//!
//! A job's processes can escape every tree we can find: a double fork plus
//! `setsid` leaves the parent-pid tree and the process group, `chdir /`
//! leaves a working directory search. Two things follow a job wherever its
//! processes go:
//!
//! - its own **cgroup v2 leaf** ([`cgroup`]): every process forked inside it
//!   stays inside, `cgroup.kill` kills all of them at once (forks during the
//!   kill included), and `cgroup.events` says when the last one is gone. It
//!   needs a writable cgroup2 tree (root, or a delegated subtree);
//! - an **environment tag** ([`tag`]): a variable set at spawn that every
//!   descendant inherits, readable in `/proc/<pid>/environ` by the same user
//!   even after the process reparented to init.
//!
//! On platforms without cgroups (macOS) the cgroup calls return
//! [`Error::Unsupported`](crate::Error::Unsupported); the pure parsers and the
//! tag work everywhere.

pub mod cgroup;
pub mod tag;

/// The system calls under this layer, chosen once.
#[cfg_attr(target_os = "linux", path = "sys/linux.rs")]
#[cfg_attr(not(target_os = "linux"), path = "sys/unsupported.rs")]
mod sys;
