//! Stopping what holds a port: the whole tree each holder belongs to, under
//! the guard rails of [`kill_tree`](crate::signal::kill_tree).
//!
//! Killing only the process that holds the socket (`lsof -ti:3000 | xargs
//! kill`) leaves the parent that respawns it, or a master whose workers keep
//! the socket open. So each holder is mapped to a tree:
//!
//! - with a root given (a supervisor's own process, say): the child of that
//!   root on the holder's ancestor line, the top of the job it started; a
//!   holder that is not under the root is left alone and reported;
//! - without one: the highest ancestor of the holder that holds one of the
//!   port's sockets too (the master of forked workers), else the holder.
//!
//! Trees inside other trees are killed once, as part of the outer one.

use super::{PortFinder, PortReport, Search};
use crate::signal::{KillOptions, KillReport, Refusal, kill_trees};
use crate::table::ProcessTable;
use crate::{Pid, ProcessIdentity, ProcessSource, Result};

/// How [`PortFinder::kill_port`] chooses and kills.
///
/// ```
/// use proctrack::ports::{PortKillOptions, Protocol, Search};
/// use proctrack::signal::KillOptions;
///
/// let look = PortKillOptions::new().dry_run(true);
/// let tcp_under_me = PortKillOptions::new()
///     .search(Search::new().protocol(Protocol::Tcp))
///     .root(proctrack::Pid::current())
///     .kill(KillOptions::graceful(std::time::Duration::from_secs(3)));
/// # let _ = (look, tcp_under_me);
/// ```
#[derive(Debug, Clone, Default)]
pub struct PortKillOptions {
    search: Search,
    root: Option<Pid>,
    dry_run: bool,
    kill: KillOptions,
}

impl PortKillOptions {
    /// Both protocols, no root, a real kill with [`KillOptions::new`].
    pub fn new() -> PortKillOptions {
        PortKillOptions::default()
    }

    /// How the holders are searched.
    pub fn search(mut self, search: Search) -> PortKillOptions {
        self.search = search;
        self
    }

    /// Kill the child of `root` that the holder runs under (and search that
    /// root's tree first); holders outside it are left alone.
    pub fn root(mut self, root: Pid) -> PortKillOptions {
        self.root = Some(root);
        self
    }

    /// Say what would be killed, kill nothing.
    pub fn dry_run(mut self, dry_run: bool) -> PortKillOptions {
        self.dry_run = dry_run;
        self
    }

    /// How each tree is killed (signal, grace, guard rails).
    pub fn kill(mut self, kill: KillOptions) -> PortKillOptions {
        self.kill = kill;
        self
    }
}

/// A tree chosen to be killed because it holds the port.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct PortTree {
    /// The top of the tree.
    pub root: ProcessIdentity,
    /// The root and everything under it, as the table showed them.
    pub members: Vec<ProcessIdentity>,
    /// The members that hold one of the port's sockets.
    pub holders: Vec<ProcessIdentity>,
}

/// What [`PortFinder::kill_port`] found, chose and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct PortKill {
    /// The port's listeners and holders, as found before anything was killed.
    pub found: PortReport,
    /// The trees chosen (killed, unless this was a dry run).
    pub trees: Vec<PortTree>,
    /// Trees not killed because a guard rail protects their root (pid 1, the
    /// caller, an ancestor of the caller).
    #[cfg_attr(feature = "serde", serde(with = "crate::wire::refusals"))]
    pub refused: Vec<(ProcessIdentity, Refusal)>,
    /// Holders not under the given root, left alone.
    pub outside_root: Vec<ProcessIdentity>,
    /// True when nothing was killed on purpose.
    pub dry_run: bool,
    /// What the kill did to every tree at once (the refused roots listed
    /// in it too); `None` on a dry run.
    pub kill: Option<KillReport>,
}

impl PortKill {
    /// True when the kill ran and every member of every chosen tree is
    /// proven gone, and no root was refused.
    pub fn is_complete(&self) -> bool {
        self.refused.is_empty() && self.kill.as_ref().is_some_and(KillReport::is_complete)
    }
}

impl PortFinder {
    /// Stops what holds `port`: each holder's tree, with the guard rails of
    /// [`kill_tree`](crate::signal::kill_tree), or with
    /// [`dry_run`](PortKillOptions::dry_run) only says what it would kill.
    ///
    /// The tree of a holder is, with a [root](PortKillOptions::root) given,
    /// the child of that root on the holder's ancestor line (a holder not
    /// under the root is left alone and listed in
    /// [`outside_root`](PortKill::outside_root)); without one, the subtree
    /// of the holder's highest ancestor that holds one of the port's sockets
    /// too (the master of forked workers), else of the holder itself. A tree
    /// inside another chosen tree is killed as part of the outer one.
    ///
    /// `table` gives the trees: refresh it just before. A holder the table
    /// does not know (started after its refresh) is its own tree. Every
    /// chosen tree is killed in one [`kill_trees`] on the same table (the
    /// refused roots are reported in it too).
    ///
    /// ```no_run
    /// use proctrack::ports::{PortFinder, PortKillOptions};
    /// use proctrack::table::ProcessTable;
    ///
    /// let mut table = ProcessTable::new()?;
    /// let plan = PortFinder::open()?.kill_port(&mut table, 3000, &PortKillOptions::new().dry_run(true))?;
    /// for tree in &plan.trees {
    ///     println!("would kill {} ({} processes)", tree.root, tree.members.len());
    /// }
    /// # Ok::<(), proctrack::Error>(())
    /// ```
    pub fn kill_port<S: ProcessSource>(
        &mut self,
        table: &mut ProcessTable<S>,
        port: u16,
        options: &PortKillOptions,
    ) -> Result<PortKill> {
        let mut search = options.search.clone();
        if let Some(root) = options.root {
            search = search.tree(&*table, root);
        }
        let found = self.holders(port, &search)?;
        let protected = options.kill.guard.protected(table.source_mut())?;
        let mut outcome = choose_trees(table, &found.holders(), options.root, |pid| {
            protected.refusal(pid)
        });
        outcome.dry_run = options.dry_run;
        if !options.dry_run {
            // Every tree in one kill: a member of one that forks into
            // another is caught, and the refused roots are reported in it.
            let roots: Vec<ProcessIdentity> = outcome
                .trees
                .iter()
                .map(|tree| tree.root)
                .chain(outcome.refused.iter().map(|(root, _)| *root))
                .collect();
            outcome.kill = Some(kill_trees(table, &roots, &options.kill)?);
        }
        outcome.found = found;
        Ok(outcome)
    }
}

/// Which trees stopping `holders` means (see [`PortFinder::kill_port`]):
/// what the kill would do, before it does it. `refusal` is the guard's
/// answer for a pid.
fn choose_trees<S: ProcessSource>(
    table: &ProcessTable<S>,
    holders: &[ProcessIdentity],
    root: Option<Pid>,
    refusal: impl Fn(Pid) -> Option<Refusal>,
) -> PortKill {
    let mut outcome = PortKill::default();
    let mut tops: Vec<ProcessIdentity> = Vec::new();
    for &holder in holders {
        // The holder, then its ancestors, nearest first.
        let mut line = vec![holder];
        if table.get_identity(holder).is_some() {
            line.extend(
                table
                    .ancestors(holder.pid())
                    .iter()
                    .map(|info| info.identity()),
            );
        }
        let top = match root {
            Some(root) => match line.iter().position(|id| id.pid() == root) {
                Some(0) => Some(holder),
                Some(at) => Some(line[at - 1]),
                None => None,
            },
            None => line
                .iter()
                .rev()
                .find(|id| holders.contains(id) && refusal(id.pid()).is_none())
                .copied()
                .or(Some(holder)),
        };
        match top {
            Some(top) if !tops.contains(&top) => tops.push(top),
            Some(_) => {}
            None => outcome.outside_root.push(holder),
        }
    }
    // A tree inside another goes with the outer one. A holder the table
    // does not know (started after its refresh) is its own tree.
    let known: Vec<Pid> = tops
        .iter()
        .filter(|top| table.get_identity(**top).is_some())
        .map(|top| top.pid())
        .collect();
    let outer = table
        .outermost(known)
        .into_iter()
        .map(|info| info.identity())
        .chain(
            tops.iter()
                .filter(|top| table.get_identity(**top).is_none())
                .copied(),
        );
    for top in outer {
        if let Some(reason) = refusal(top.pid()) {
            outcome.refused.push((top, reason));
            continue;
        }
        let mut members = vec![top];
        if table.get_identity(top).is_some() {
            members.extend(
                table
                    .descendants(top.pid())
                    .iter()
                    .map(|info| info.identity()),
            );
        }
        let tree_holders = holders
            .iter()
            .filter(|h| members.contains(h))
            .copied()
            .collect();
        outcome.trees.push(PortTree {
            root: top,
            members,
            holders: tree_holders,
        });
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::TableOptions;
    use crate::{BootId, MemorySource, ProcessInfo, StartTime};

    const BOOT: BootId = BootId::from_bytes([5; 16]);

    fn id(pid: i32) -> ProcessIdentity {
        ProcessIdentity::new(
            BOOT,
            Pid::try_from(pid).expect("test pid"),
            StartTime::from_raw(pid as u64),
        )
    }

    // 1 ── 100 (shell) ─┬─ 200 (master, holds) ─┬─ 300 (worker, holds)
    //                   │                       └─ 301 (worker, holds)
    //                   └─ 210 ── 310 (holds)
    fn table() -> ProcessTable<MemorySource> {
        let mut source = MemorySource::new(BOOT);
        for (pid, parent) in [
            (1, 0),
            (100, 1),
            (200, 100),
            (300, 200),
            (301, 200),
            (210, 100),
            (310, 210),
        ] {
            source.insert(
                ProcessInfo::builder(id(pid))
                    .parent(Pid::try_from(parent).ok())
                    .build(),
            );
        }
        ProcessTable::with_source(source, TableOptions::default()).expect("memory table")
    }

    fn roots(kill: &PortKill) -> Vec<i32> {
        kill.trees.iter().map(|t| t.root.pid().as_raw()).collect()
    }

    #[test]
    fn forked_workers_go_with_their_master() {
        let table = table();
        let plan = choose_trees(&table, &[id(300), id(301), id(200)], None, |_| None);
        assert_eq!(roots(&plan), vec![200]);
        assert_eq!(plan.trees[0].members.len(), 3);
        assert_eq!(plan.trees[0].holders.len(), 3);
    }

    #[test]
    fn a_tree_inside_a_chosen_tree_is_killed_with_it() {
        let table = table();
        // Under root 1, the holders' tops are 100 (both lines); once.
        let plan = choose_trees(&table, &[id(310), id(300)], Some(id(1).pid()), |_| None);
        assert_eq!(roots(&plan), vec![100]);
        assert!(plan.outside_root.is_empty());
    }

    #[test]
    fn holders_outside_the_root_are_left_alone() {
        let table = table();
        let plan = choose_trees(&table, &[id(310), id(300)], Some(id(210).pid()), |_| None);
        assert_eq!(roots(&plan), vec![310]);
        assert_eq!(plan.outside_root, vec![id(300)]);
    }

    #[test]
    fn a_protected_holder_is_refused_with_what_runs_under_it() {
        let table = table();
        let guard = |pid: Pid| (pid.as_raw() == 200).then_some(Refusal::Ancestor);
        // The protected master holds too: refused, and its workers are not
        // taken out from under it (as the kill engine does not follow a
        // refused root's descendants).
        let plan = choose_trees(&table, &[id(200), id(300), id(301)], None, guard);
        assert_eq!(roots(&plan), Vec::<i32>::new());
        assert_eq!(plan.refused, vec![(id(200), Refusal::Ancestor)]);
        // A holder elsewhere is still chosen.
        let plan = choose_trees(&table, &[id(200), id(310)], None, guard);
        assert_eq!(roots(&plan), vec![310]);
    }

    #[test]
    fn a_holder_the_table_does_not_know_is_its_own_tree() {
        let table = table();
        let plan = choose_trees(&table, &[id(999), id(300)], None, |_| None);
        assert_eq!(roots(&plan), vec![300, 999]);
    }
}
