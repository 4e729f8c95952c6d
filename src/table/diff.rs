use crate::{Error, Pid, ProcessIdentity};

/// What one refresh found changed.
///
/// Lists are in the order the refresh met the processes (ascending pid for a
/// full refresh); exits found at the end of a refresh come last.
///
/// With the `serde` feature it serializes (not back: errors become their
/// messages).
#[derive(Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub struct RefreshDiff {
    /// Processes seen for the first time.
    pub spawned: Vec<ProcessIdentity>,
    /// Processes that are gone (including the old holder of a reused pid).
    pub exited: Vec<ProcessIdentity>,
    /// Processes that ran a new program: same identity, new command line.
    pub execed: Vec<ProcessIdentity>,
    /// Processes whose parent changed (their parent exited, usually).
    pub reparented: Vec<Reparented>,
    /// Processes that could not be read for a reason other than being gone;
    /// their rows are kept as they were. In JSON, their messages.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::wire::messages"))]
    #[cfg_attr(feature = "schema", schemars(with = "Vec<String>"))]
    pub errors: Vec<Error>,
}

impl RefreshDiff {
    /// True when nothing changed and nothing failed.
    pub fn is_empty(&self) -> bool {
        self.spawned.is_empty()
            && self.exited.is_empty()
            && self.execed.is_empty()
            && self.reparented.is_empty()
            && self.errors.is_empty()
    }
}

/// A process that moved to another parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Reparented {
    /// The process that moved.
    pub identity: ProcessIdentity,
    /// Its parent before.
    pub from: Option<Pid>,
    /// Its parent now.
    pub to: Option<Pid>,
}
