//! What got away from a tree kill: processes a member forked after its last
//! look and then left behind by exiting. The kernel hands such orphans to
//! the nearest child subreaper among the member's ancestors, or to init; so
//! they appear as new children of the roots' ancestors. [`Reapers`] notes
//! those ancestors and their children when the kill begins, and afterwards
//! names the newcomers that carry the tree's process group and session.
//!
//! A newcomer in its new parent's own group is left out: it may as well be
//! that ancestor's own new child (a test harness starting the next test, a
//! shell its next command), and from /proc nothing tells the two apart. So
//! an orphan adopted by a subreaper whose process group the tree shares is
//! not found; a tree in a group of its own (every job of a supervisor, every
//! job of an interactive shell) is fully covered.

use std::collections::{HashMap, HashSet};

use crate::table::ProcessTable;
use crate::{Error, Pid, ProcessIdentity, ProcessSource, Result, StartTime};

/// A process group and session, as a member had them.
pub(super) type Group = (Option<Pid>, Option<Pid>);

/// How far up a root's ancestry is followed: deeper than any real tree.
const MAX_ANCESTRY: usize = 65_536;

/// The roots' ancestors (every one a possible reaper of the tree's
/// orphans), with the children each had when the kill began and its own
/// group.
#[derive(Debug, Default)]
pub(super) struct Reapers {
    before: HashMap<Pid, (HashSet<Pid>, Group)>,
}

impl Reapers {
    /// Notes the ancestors of `roots` and their children now.
    pub(super) fn record<S: ProcessSource>(
        table: &mut ProcessTable<S>,
        roots: &[ProcessIdentity],
    ) -> Result<Reapers> {
        let mut reapers = Reapers::default();
        let parent_of = |table: &mut ProcessTable<S>, pid: Pid| match table.source_mut().sample(pid)
        {
            Ok(sample) => Ok(Some((
                sample.parent,
                (sample.process_group, sample.session),
            ))),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(other) => Err(other),
        };
        for root in roots {
            // One look at each ancestor: its group, and the next one up.
            let mut next = parent_of(table, root.pid())?.and_then(|(parent, _)| parent);
            for _ in 0..MAX_ANCESTRY {
                let Some(ancestor) = next else { break };
                if reapers.before.contains_key(&ancestor) {
                    break;
                }
                let Some((parent, group)) = parent_of(table, ancestor)? else {
                    break;
                };
                let children = list_children(table, ancestor)?;
                reapers
                    .before
                    .insert(ancestor, (children.into_iter().collect(), group));
                next = parent;
            }
        }
        Ok(reapers)
    }

    /// The escapees: the ancestors' children that were not there when the
    /// kill began, are not `known`, were born no earlier than `born_after`,
    /// and carry one of the tree's `groups` that is not their parent's own.
    pub(super) fn escapees<S: ProcessSource>(
        &self,
        table: &mut ProcessTable<S>,
        known: &HashSet<ProcessIdentity>,
        groups: &HashSet<Group>,
        born_after: StartTime,
    ) -> Result<Vec<ProcessIdentity>> {
        let mut found = Vec::new();
        let boot = table.source_mut().boot_id();
        for (&ancestor, (before, own_group)) in &self.before {
            for pid in list_children(table, ancestor)? {
                if before.contains(&pid) {
                    continue;
                }
                let (identity, group) = match table.source_mut().sample(pid) {
                    Ok(sample) if sample.parent == Some(ancestor) && !sample.kernel_thread => (
                        sample.identity(boot),
                        (sample.process_group, sample.session),
                    ),
                    Ok(_) | Err(Error::NotFound { .. }) => continue,
                    Err(other) => return Err(other),
                };
                if known.contains(&identity)
                    || identity.start_time() < born_after
                    || !groups.contains(&group)
                    || group == *own_group
                {
                    continue;
                }
                found.push(identity);
            }
        }
        Ok(found)
    }
}

/// The children of `pid` now: from the source's list where the platform has
/// one, else from a refreshed table.
fn list_children<S: ProcessSource>(table: &mut ProcessTable<S>, pid: Pid) -> Result<Vec<Pid>> {
    let mut children = Vec::new();
    match table.source_mut().children(pid, &mut children) {
        Ok(true) => Ok(children),
        Ok(false) => {
            table.refresh()?;
            Ok(table.children(pid).iter().map(|c| c.pid()).collect())
        }
        Err(Error::NotFound { .. }) => Ok(Vec::new()),
        Err(other) => Err(other),
    }
}
