//! What an event tracker running beside the supervisor tells it: the
//! members that fork lineage found, and the exits of adopted roots. The
//! async face (feature `tokio`) fills it from its tracker task; the
//! supervisor takes from it at each look, so its blocking `members` and
//! `stop` find what lineage found.

use std::collections::{HashMap, HashSet};

use super::JobId;
use crate::ProcessIdentity;
use crate::events::Exit;

/// Told by a tracker, not yet taken by the supervisor.
#[derive(Debug, Default)]
pub(crate) struct Feed {
    /// Members found by fork lineage, per job.
    pub(crate) seen: HashMap<JobId, HashSet<ProcessIdentity>>,
    /// How processes ended (the roots of adopted jobs are looked up here).
    pub(crate) exits: HashMap<ProcessIdentity, Exit>,
}
