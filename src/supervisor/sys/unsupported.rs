//! Platforms without cgroup v2: every call says so.

use std::fs::File;
use std::time::Instant;

use crate::{Error, Pid, Result};

pub(super) const MOUNTINFO: &str = "/proc/self/mountinfo";
pub(super) const OWN_CGROUP: &str = "/proc/self/cgroup";

fn no_cgroups() -> Error {
    Error::Unsupported {
        what: "cgroup v2 exists only on Linux",
    }
}

pub(super) fn is_root() -> bool {
    false
}

pub(super) fn euid() -> u32 {
    u32::MAX
}

pub(super) fn wait_priority(_file: &File, _deadline: Instant) -> Result<bool> {
    Err(no_cgroups())
}

/// Linux's shape; matched by the shared code, never produced here.
#[allow(dead_code)]
pub(super) enum Halt {
    Stopped,
    Exited,
}

pub(super) fn wait_stopped_or_exited(_pid: Pid) -> Result<Halt> {
    Err(no_cgroups())
}
