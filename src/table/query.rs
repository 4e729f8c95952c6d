use std::ffi::OsStr;
use std::path::Path;

use super::ProcessTree;
use super::refresh::{ProcessTable, Row};
use crate::{Pid, ProcessIdentity, ProcessInfo, ProcessSource};

impl<S: ProcessSource> ProcessTable<S> {
    /// The number of processes in the table.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the table holds no process.
    pub fn is_empty(&self) -> bool {
        self.rows.len() == 0
    }

    /// Every process, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &ProcessInfo> + '_ {
        self.rows.iter().map(|row| &row.info)
    }

    /// The process that has `pid` now, if any.
    pub fn get(&self, pid: Pid) -> Option<&ProcessInfo> {
        self.rows.get(pid).map(|row| &row.info)
    }

    /// The process with this identity, if it is still in the table. `None`
    /// when its pid now belongs to another process.
    pub fn get_identity(&self, identity: ProcessIdentity) -> Option<&ProcessInfo> {
        self.get(identity.pid())
            .filter(|info| info.identity() == identity)
    }

    /// CPU use of `pid` between the last two samples, in percent of one CPU
    /// (so up to 100 × threads). `None` until the process was sampled twice.
    pub fn cpu_percent(&self, pid: Pid) -> Option<f32> {
        self.rows.get(pid).and_then(|row| row.cpu_percent)
    }

    /// The parent of `pid`, when the edge is trusted: the parent is in the
    /// table and not younger than the child.
    pub fn parent(&self, pid: Pid) -> Option<&ProcessInfo> {
        self.rows
            .get(pid)
            .and_then(|row| self.trusted_parent(row))
            .map(|row| &row.info)
    }

    /// The direct children of `pid`, ascending pid.
    pub fn children(&self, pid: Pid) -> Vec<&ProcessInfo> {
        let Some(parent) = self.rows.get(pid) else {
            return Vec::new();
        };
        let mut children: Vec<&ProcessInfo> =
            self.child_rows(parent).map(|row| &row.info).collect();
        children.sort_unstable_by_key(|info| info.pid());
        children
    }

    /// Everything under `pid` (not `pid` itself), parents before their
    /// children. Costs in proportion to the subtree.
    pub fn descendants(&self, pid: Pid) -> Vec<&ProcessInfo> {
        let mut out: Vec<&ProcessInfo> = Vec::new();
        let Some(root) = self.rows.get(pid) else {
            return out;
        };
        // `out` doubles as the breadth-first queue. Trusted edges cannot form
        // a cycle unless start times are equal all round (corrupt input); the
        // length bound keeps even that finite.
        let mut parent = root;
        let mut next = 0;
        loop {
            out.extend(self.child_rows(parent).map(|row| &row.info));
            let Some(info) = out.get(next) else { break };
            if out.len() > self.rows.len() {
                break;
            }
            match self.rows.get(info.pid()) {
                Some(row) => parent = row,
                None => break,
            }
            next += 1;
        }
        out
    }

    /// The parent of `pid`, its parent, and so on up to a root; nearest first.
    pub fn ancestors(&self, pid: Pid) -> Vec<&ProcessInfo> {
        let mut out: Vec<&ProcessInfo> = Vec::new();
        let mut current = self.rows.get(pid);
        while let Some(row) = current.and_then(|row| self.trusted_parent(row)) {
            if out.len() >= self.rows.len() {
                break;
            }
            out.push(&row.info);
            current = Some(row);
        }
        out
    }

    /// `pid` and everything under it as a nested value; `None` when `pid` is
    /// not in the table.
    pub fn tree(&self, pid: Pid) -> Option<ProcessTree> {
        let root = self.rows.get(pid)?;
        // Breadth-first with parent links, then assembled leaves-first: no
        // recursion, so a ten-thousand-deep chain cannot overflow the stack.
        let mut nodes: Vec<(&Row, usize)> = vec![(root, 0)];
        let mut at = 0;
        while at < nodes.len() && nodes.len() <= self.rows.len() {
            let mut kids: Vec<&Row> = self.child_rows(nodes[at].0).collect();
            kids.sort_unstable_by_key(|row| row.info.pid());
            nodes.extend(kids.into_iter().map(|kid| (kid, at)));
            at += 1;
        }
        let mut built: Vec<Option<ProcessTree>> = nodes
            .iter()
            .map(|(row, _)| {
                Some(ProcessTree {
                    process: row.info.clone(),
                    children: Vec::new(),
                })
            })
            .collect();
        for index in (1..nodes.len()).rev() {
            let parent = nodes[index].1;
            if let Some(node) = built[index].take()
                && let Some(Some(parent_node)) = built.get_mut(parent)
            {
                parent_node.children.push(node);
            }
        }
        let mut tree = built.into_iter().next().flatten()?;
        let mut stack: Vec<&mut ProcessTree> = vec![&mut tree];
        while let Some(node) = stack.pop() {
            node.children.reverse();
            stack.extend(node.children.iter_mut());
        }
        Some(tree)
    }

    /// Processes with no trusted parent in the table, ascending pid.
    pub fn roots(&self) -> Vec<&ProcessInfo> {
        let mut roots: Vec<&ProcessInfo> = self
            .rows
            .iter()
            .filter(|row| self.trusted_parent(row).is_none())
            .map(|row| &row.info)
            .collect();
        roots.sort_unstable_by_key(|info| info.pid());
        roots
    }

    /// Processes whose working directory is `dir` or under it, compared by
    /// path components: `/wt/ab` matches `/wt/ab` and `/wt/ab/x`, never
    /// `/wt/abc`. Removed directories ([`Cwd::Deleted`](crate::Cwd::Deleted))
    /// match by their last path. Ascending pid.
    ///
    /// Symlinks: the kernel reports a working directory with every symlink
    /// and `..` resolved, so `dir` is resolved the same way
    /// ([`std::fs::canonicalize`]) when it exists; a directory that no longer
    /// exists, or a relative one, is taken as given (relative to our own
    /// working directory).
    pub fn find_by_cwd_prefix(&self, dir: impl AsRef<Path>) -> Vec<&ProcessInfo> {
        let dir = resolve_dir(dir.as_ref());
        self.find(|info| info.cwd().path().is_some_and(|cwd| cwd.starts_with(&dir)))
    }

    /// Processes whose name ([`ProcessInfo::name`]) is exactly `name`.
    pub fn find_by_name(&self, name: impl AsRef<OsStr>) -> Vec<&ProcessInfo> {
        let name = name.as_ref();
        self.find(|info| info.name() == name)
    }

    /// Processes for which `predicate` holds, ascending pid.
    pub fn find(&self, mut predicate: impl FnMut(&ProcessInfo) -> bool) -> Vec<&ProcessInfo> {
        let mut found: Vec<&ProcessInfo> = self
            .rows
            .iter()
            .map(|row| &row.info)
            .filter(|info| predicate(info))
            .collect();
        found.sort_unstable_by_key(|info| info.pid());
        found
    }

    /// Rows that name `parent` as parent over a trusted edge.
    fn child_rows<'a>(&'a self, parent: &'a Row) -> impl Iterator<Item = &'a Row> + 'a {
        self.children
            .get(&parent.info.pid())
            .into_iter()
            .flatten()
            .filter_map(|&child| self.rows.get(child))
            .filter(move |child| trusted(parent, child))
    }

    fn trusted_parent(&self, row: &Row) -> Option<&Row> {
        let parent = self.rows.get(row.info.parent()?)?;
        trusted(parent, row).then_some(parent)
    }
}

/// The path the kernel would report for `dir`.
fn resolve_dir(dir: &Path) -> std::path::PathBuf {
    match std::fs::canonicalize(dir) {
        Ok(path) => path,
        Err(_) if dir.is_absolute() => dir.to_path_buf(),
        Err(_) => std::env::current_dir()
            .map(|cwd| cwd.join(dir))
            .unwrap_or_else(|_| dir.to_path_buf()),
    }
}

/// A parent younger than its child is a new process on a reused pid.
fn trusted(parent: &Row, child: &Row) -> bool {
    parent.info.pid() != child.info.pid()
        && parent.info.start_time() <= child.info.start_time()
        && child.info.parent() == Some(parent.info.pid())
}
