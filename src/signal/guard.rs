//! Guard rails: the processes proctrack will not signal unless told to.
//!
//! A tree kill from the wrong root, or a working-directory match that covers
//! the caller's own shell, would otherwise take down pid 1, the caller, or the
//! processes the caller runs under. A [`Guard`] names which of these the caller
//! allows; the default allows none.

use std::collections::HashSet;
use std::sync::OnceLock;

use crate::{Error, Pid, ProcessSource, Result};

/// Which protected processes the caller allows to be signalled.
///
/// The default ([`Guard::new`]) protects pid 1, the calling process and every
/// ancestor of the calling process. A signal to a protected process is
/// [`Error::Refused`] for a single handle, and a [`Refusal`] in a
/// [`KillReport`](super::KillReport) for a tree.
///
/// ```
/// use proctrack::signal::Guard;
///
/// let strict = Guard::new();
/// let loose = Guard::new().allow_ancestors(true);
/// assert_ne!(strict, loose);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Guard {
    allow_init: bool,
    allow_self: bool,
    allow_ancestors: bool,
}

impl Guard {
    /// The strict guard: pid 1, the calling process and its ancestors are protected.
    pub const fn new() -> Guard {
        Guard {
            allow_init: false,
            allow_self: false,
            allow_ancestors: false,
        }
    }

    /// Allows (or forbids again) signalling pid 1 of our pid namespace.
    pub const fn allow_init(mut self, allow: bool) -> Guard {
        self.allow_init = allow;
        self
    }

    /// Allows signalling the calling process itself.
    pub const fn allow_self(mut self, allow: bool) -> Guard {
        self.allow_self = allow;
        self
    }

    /// Allows signalling the calling process's parent, grandparent, and so on.
    pub const fn allow_ancestors(mut self, allow: bool) -> Guard {
        self.allow_ancestors = allow;
        self
    }

    /// The pids this guard protects right now, our ancestors read through
    /// `source`.
    pub(crate) fn protected(&self, source: &mut impl ProcessSource) -> Result<Protected> {
        let ancestors = if self.allow_ancestors {
            Vec::new()
        } else {
            ancestors(source, Pid::current())?
        };
        self.protect(ancestors)
    }

    /// The pids this guard protects, for a signal to one process: our
    /// ancestors as first read in this process's life. Ancestors only ever
    /// leave that list (an orphan reparents to an older ancestor, a
    /// subreaper or pid 1), so it never misses one; at worst it refuses a
    /// process that took a dead ancestor's pid.
    pub(crate) fn protected_now(&self) -> Result<Protected> {
        static ANCESTORS: OnceLock<Vec<Pid>> = OnceLock::new();
        let ancestors = match ANCESTORS.get() {
            Some(ancestors) => ancestors.clone(),
            None if self.allow_ancestors => Vec::new(),
            None => {
                let read = ancestors(&mut crate::SystemSource::open()?, Pid::current())?;
                ANCESTORS.get_or_init(|| read).clone()
            }
        };
        self.protect(ancestors)
    }

    fn protect(&self, ancestors: Vec<Pid>) -> Result<Protected> {
        let mut pids = Vec::new();
        let me = Pid::current();
        if !self.allow_init {
            pids.push((Pid::try_from(1_u32)?, Refusal::Init));
        }
        if !self.allow_self {
            pids.push((me, Refusal::OwnProcess));
        }
        if !self.allow_ancestors {
            pids.extend(ancestors.into_iter().map(|pid| (pid, Refusal::Ancestor)));
        }
        Ok(Protected { pids })
    }
}

pub use crate::error::Refusal;

/// The protected pids at one moment. Pids suffice: every protected process is
/// alive (we are, so are our ancestors and pid 1), so no other process can hold
/// its pid.
#[derive(Debug, Clone)]
pub(crate) struct Protected {
    pids: Vec<(Pid, Refusal)>,
}

impl Protected {
    /// Why `pid` must not be signalled, if it must not.
    pub(crate) fn refusal(&self, pid: Pid) -> Option<Refusal> {
        // Pid 1 is listed first and also an ancestor: the first reason wins.
        self.pids
            .iter()
            .find(|(protected, _)| *protected == pid)
            .map(|(_, why)| *why)
    }

    /// [`Error::Refused`] for a protected pid.
    pub(crate) fn check(&self, pid: Pid) -> Result<()> {
        match self.refusal(pid) {
            Some(reason) => Err(Error::Refused { pid, reason }),
            None => Ok(()),
        }
    }
}

/// The ancestors of `me`, parent first, up to pid 1.
fn ancestors(reader: &mut impl ProcessSource, me: Pid) -> Result<Vec<Pid>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut pid = me;
    loop {
        let parent = match reader.sample(pid) {
            Ok(sample) => sample.parent,
            // An ancestor exiting under us: its children now have a new
            // parent, which we would have met going up anyway.
            Err(Error::NotFound { .. }) => break,
            Err(other) => return Err(other),
        };
        match parent {
            Some(parent) if seen.insert(parent) => {
                out.push(parent);
                pid = parent;
            }
            _ => break,
        }
    }
    Ok(out)
}

#[cfg(all(test, any(target_os = "linux", target_os = "macos")))]
mod tests {
    use super::*;

    #[test]
    fn strict_guard_protects_init_self_and_parent() -> Result<()> {
        let mut source = crate::SystemSource::open()?;
        let protected = Guard::new().protected(&mut source)?;
        let one = Pid::try_from(1)?;
        assert_eq!(protected.refusal(one), Some(Refusal::Init));
        assert_eq!(protected.refusal(Pid::current()), Some(Refusal::OwnProcess));
        let parent = Pid::try_from(std::os::unix::process::parent_id())?;
        if parent != one {
            assert_eq!(protected.refusal(parent), Some(Refusal::Ancestor));
        }
        assert!(matches!(
            protected.check(one),
            Err(Error::Refused {
                reason: Refusal::Init,
                ..
            })
        ));

        let open = Guard::new()
            .allow_init(true)
            .allow_self(true)
            .allow_ancestors(true)
            .protected(&mut source)?;
        assert_eq!(open.refusal(one), None);
        assert_eq!(open.refusal(Pid::current()), None);
        assert_eq!(open.refusal(parent), None);
        Ok(())
    }
}
