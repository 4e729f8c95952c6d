//! [`KillReport`]: what a tree kill did, process by process.

use super::{Refusal, Signal};
use crate::ProcessIdentity;

/// What a tree kill did, process by process.
///
/// Each member lands in exactly one of `killed`, `already_gone`, `denied`,
/// `survived` and `refused`.
///
/// ```no_run
/// use proctrack::signal::{kill_tree, KillOptions};
/// use proctrack::table::ProcessTable;
/// let mut table = ProcessTable::new()?;
/// let root = table.get(proctrack::Pid::try_from(4242)?).expect("running").identity();
/// let report = kill_tree(&mut table, root, &KillOptions::new())?;
/// println!("killed {}, survivors {:?}", report.killed.len(), report.survived);
/// assert!(report.is_complete());
/// # Ok::<(), proctrack::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct KillReport {
    /// Signalled and seen to exit, each with the signal that ended it (with
    /// the fallback backend, which cannot see exits: signalled with
    /// `SIGKILL`; see [`confirmed`](Self::confirmed)).
    pub killed: Vec<Killed>,
    /// Exited before a signal reached it (including a root that was gone, or
    /// whose pid now belongs to another process, when the kill began).
    pub already_gone: Vec<ProcessIdentity>,
    /// The kernel refused the signal (`EPERM`): another user's process.
    pub denied: Vec<ProcessIdentity>,
    /// Signalled, but still alive when the wait ended.
    pub survived: Vec<ProcessIdentity>,
    /// Not signalled because a guard rail protects it; its descendants were
    /// not followed through it.
    #[cfg_attr(feature = "serde", serde(with = "crate::wire::refusals"))]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Vec<crate::wire::refusals::RefusedJson>")
    )]
    pub refused: Vec<(ProcessIdentity, Refusal)>,
    /// Found after the final signal and left running: processes born
    /// during the kill in the tree's process group and session that an
    /// ancestor of a root adopted, which rounds of killing them did not
    /// end (they went on forking).
    #[cfg_attr(feature = "serde", serde(default))]
    pub escaped: Vec<ProcessIdentity>,
    /// Members that became our children (orphans adopted by a subreaper) and
    /// whose exit status the kill collected, so they leave no zombie.
    pub reaped: Vec<ProcessIdentity>,
    /// True when the tree was complete and stopped before the signal; false
    /// when the settle timeout ran out first (see
    /// [`KillOptions::settle_timeout`](super::KillOptions::settle_timeout)):
    /// then what a member forked after its last look may have escaped, and
    /// the kill is not [complete](Self::is_complete).
    pub settled: bool,
    /// True when every exit was seen as an event (a pidfd on Linux, kqueue
    /// on macOS); false when some member was signalled through the Linux
    /// fallback, which cannot wait for exits.
    pub confirmed: bool,
}

impl KillReport {
    /// True when the kill is proven complete: the tree settled before the
    /// signal, and nothing is left (no survivor, denial, refusal or escapee).
    pub fn is_complete(&self) -> bool {
        self.settled
            && self.survived.is_empty()
            && self.denied.is_empty()
            && self.refused.is_empty()
            && self.escaped.is_empty()
    }

    /// Whether `identity` is among the [`killed`](Self::killed).
    pub fn was_killed(&self, identity: &ProcessIdentity) -> bool {
        self.killed
            .iter()
            .any(|killed| killed.identity == *identity)
    }

    /// Every process the kill dealt with, in any category.
    pub fn members(&self) -> impl Iterator<Item = ProcessIdentity> + '_ {
        self.killed
            .iter()
            .map(|killed| &killed.identity)
            .chain(&self.already_gone)
            .chain(&self.denied)
            .chain(&self.survived)
            .copied()
            .chain(self.refused.iter().map(|(identity, _)| *identity))
    }
}

/// A member a tree kill ended, and the last signal it was sent before it
/// exited: the first signal, or `SIGKILL` when it outlived the grace period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Killed {
    /// The process.
    pub identity: ProcessIdentity,
    /// The signal that ended it.
    pub signal: Signal,
}
