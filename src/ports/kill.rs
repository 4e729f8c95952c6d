//! Stopping what holds a port: the whole tree each holder belongs to, under
//! the guard rails of [`kill_tree`].
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
use crate::signal::{KillOptions, KillReport, Refusal, kill_tree};
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
    /// One report per tree killed, in the order of `trees`; empty on a dry run.
    pub killed: Vec<KillReport>,
}

impl PortFinder {
    /// Stops what holds `port`: each holder's tree, with the guard rails of
    /// [`kill_tree`], or with
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
    /// does not know (started after its refresh) is its own tree. The kills
    /// go through [`kill_tree`] on the same table.
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
        let holders = found.holders();
        let protected = options.kill.guard.protected(table.source_mut())?;
        let mut outcome = PortKill {
            dry_run: options.dry_run,
            ..PortKill::default()
        };
        let mut roots: Vec<ProcessIdentity> = Vec::new();
        for &holder in &holders {
            let in_table = table.get_identity(holder).is_some();
            // The holder, then its ancestors, nearest first.
            let mut line = vec![holder];
            if in_table {
                line.extend(
                    table
                        .ancestors(holder.pid())
                        .iter()
                        .map(|info| info.identity()),
                );
            }
            let top = match options.root {
                Some(root) => match line.iter().position(|id| id.pid() == root) {
                    Some(0) => Some(holder),
                    Some(at) => Some(line[at - 1]),
                    None => None,
                },
                None => line
                    .iter()
                    .rev()
                    .find(|id| holders.contains(id) && protected.refusal(id.pid()).is_none())
                    .copied()
                    .or(Some(holder)),
            };
            match top {
                Some(top) if !roots.contains(&top) => roots.push(top),
                Some(_) => {}
                None => outcome.outside_root.push(holder),
            }
        }
        // A root under another chosen root goes with the outer tree.
        let nested = |identity: &ProcessIdentity| {
            table
                .ancestors(identity.pid())
                .iter()
                .any(|ancestor| roots.contains(&ancestor.identity()))
        };
        let outer: Vec<ProcessIdentity> = roots.iter().filter(|r| !nested(r)).copied().collect();
        for root in outer {
            if let Some(reason) = protected.refusal(root.pid()) {
                outcome.refused.push((root, reason));
                continue;
            }
            let mut members = vec![root];
            if table.get_identity(root).is_some() {
                members.extend(
                    table
                        .descendants(root.pid())
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
                root,
                members,
                holders: tree_holders,
            });
        }
        if !options.dry_run {
            for tree in &outcome.trees {
                outcome
                    .killed
                    .push(kill_tree(table, tree.root, &options.kill)?);
            }
        }
        outcome.found = found;
        Ok(outcome)
    }
}
