//! [`plan_kill`]: what a tree kill would do, without signalling anything.

use super::{KillOptions, Refusal};
use crate::table::ProcessTable;
use crate::{ProcessIdentity, ProcessSource, Result};

/// What [`kill_tree`](super::kill_tree) of some roots would do now, as the
/// table shows the processes: the members it would signal, and the
/// processes the guard rails would leave alone (their trees not followed,
/// as the kill does not follow them). Nothing is signalled.
///
/// A real kill also catches what the tree forks meanwhile and re-checks
/// every identity; a plan is only as fresh as the table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KillPlan {
    /// The processes a kill would signal, ascending pid.
    pub members: Vec<ProcessIdentity>,
    /// The processes it would refuse to signal, and why, ascending pid.
    pub refused: Vec<(ProcessIdentity, Refusal)>,
}

/// Plans a kill of `roots` and their trees under `options`' guard: a dry
/// run. Roots the table does not hold (gone, or their pid reused) are left
/// out.
///
/// ```no_run
/// use proctrack::signal::{plan_kill, KillOptions};
/// use proctrack::table::ProcessTable;
///
/// let mut table = ProcessTable::new()?;
/// let root = table.get(proctrack::Pid::try_from(4242)?).expect("running").identity();
/// let plan = plan_kill(&mut table, &[root], &KillOptions::new())?;
/// println!("would kill {}, would refuse {}", plan.members.len(), plan.refused.len());
/// # Ok::<(), proctrack::Error>(())
/// ```
pub fn plan_kill<S: ProcessSource>(
    table: &mut ProcessTable<S>,
    roots: &[ProcessIdentity],
    options: &KillOptions,
) -> Result<KillPlan> {
    let protected = options.guard.protected(table.source_mut())?;
    let mut plan = KillPlan::default();
    let mut seen = std::collections::HashSet::new();
    let mut queue: Vec<ProcessIdentity> = roots
        .iter()
        .filter(|root| table.get_identity(**root).is_some())
        .copied()
        .collect();
    while let Some(identity) = queue.pop() {
        if !seen.insert(identity) {
            continue;
        }
        let kernel_thread = table
            .get_identity(identity)
            .is_some_and(|process| process.is_kernel_thread());
        let refusal = if kernel_thread {
            Some(Refusal::KernelThread)
        } else {
            protected.refusal(identity.pid())
        };
        if let Some(reason) = refusal {
            plan.refused.push((identity, reason));
            continue;
        }
        plan.members.push(identity);
        queue.extend(
            table
                .children(identity.pid())
                .into_iter()
                .map(|child| child.identity()),
        );
    }
    plan.members.sort_unstable_by_key(|identity| identity.pid());
    plan.refused
        .sort_unstable_by_key(|(identity, _)| identity.pid());
    Ok(plan)
}
