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

    /// The pids of the rows that name `pid` as their parent, whether or not
    /// `pid` has a row: for callers told that `pid` exited, whose children
    /// the kernel has moved and must be re-read even when the parent's own
    /// row is already gone.
    pub(crate) fn children_named(&self, pid: Pid) -> Vec<Pid> {
        let mut named: Vec<Pid> = self
            .children
            .get(&pid)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&child| {
                self.rows
                    .get(child)
                    .is_some_and(|row| row.info.parent() == Some(pid))
            })
            .collect();
        named.sort_unstable();
        named.dedup();
        named
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

    /// The child of `ancestor` that `pid` descends from: which of my
    /// children does this process belong to? `pid` itself when it is a
    /// direct child; `None` when `pid` is not below `ancestor` (or is it).
    /// Costs in proportion to the depth of `pid`.
    ///
    /// ```
    /// use proctrack::table::{ProcessTable, TableOptions};
    /// use proctrack::{BootId, MemorySource, Pid, ProcessIdentity, ProcessInfo, StartTime};
    ///
    /// // 1 ── 10 (a shell) ── 11 (a build) ── 12 (a compiler)
    /// let boot = BootId::default();
    /// let mut source = MemorySource::new(boot);
    /// for (pid, parent) in [(1, 0), (10, 1), (11, 10), (12, 11)] {
    ///     let identity = ProcessIdentity::new(boot, Pid::try_from(pid)?, StartTime::from_raw(pid as u64));
    ///     source.insert(ProcessInfo::builder(identity).parent(Pid::try_from(parent).ok()).build());
    /// }
    /// let table = ProcessTable::with_source(source, TableOptions::default())?;
    /// let build = table.child_leading_to(Pid::try_from(10)?, Pid::try_from(12)?);
    /// assert_eq!(build.map(|p| p.pid().as_raw()), Some(11));
    /// # Ok::<(), proctrack::Error>(())
    /// ```
    pub fn child_leading_to(&self, ancestor: Pid, pid: Pid) -> Option<&ProcessInfo> {
        let mut current = self.rows.get(pid)?;
        // Trusted edges go to older processes, so the walk ends; the bound
        // keeps even corrupt input (equal start times in a cycle) finite.
        for _ in 0..self.rows.len() {
            let parent = self.trusted_parent(current)?;
            if parent.info.pid() == ancestor {
                return Some(&current.info);
            }
            current = parent;
        }
        None
    }

    /// Of `pids`, the processes that have no ancestor among them, ascending
    /// pid: the roots of the trees that hold them all. Killing these trees
    /// kills every one of `pids` (and whatever else is under them). Pids not
    /// in the table are left out.
    ///
    /// ```no_run
    /// use proctrack::table::ProcessTable;
    ///
    /// let table = ProcessTable::new()?;
    /// let in_dir = table.find_by_cwd_prefix("/srv/app");
    /// for root in table.outermost(in_dir.iter().map(|p| p.pid())) {
    ///     println!("{} heads a tree", root.pid());
    /// }
    /// # Ok::<(), proctrack::Error>(())
    /// ```
    pub fn outermost(&self, pids: impl IntoIterator<Item = Pid>) -> Vec<&ProcessInfo> {
        let set: std::collections::HashSet<Pid> = pids
            .into_iter()
            .filter(|pid| self.rows.get(*pid).is_some())
            .collect();
        let mut roots: Vec<&ProcessInfo> = set
            .iter()
            .filter(|pid| {
                !self
                    .ancestors(**pid)
                    .iter()
                    .any(|ancestor| set.contains(&ancestor.pid()))
            })
            .filter_map(|pid| self.get(*pid))
            .collect();
        roots.sort_unstable_by_key(|info| info.pid());
        roots
    }

    /// How many processes' working directories could not be read for lack of
    /// permission ([`Cwd::NotPermitted`](crate::Cwd::NotPermitted): other
    /// users' processes, without root or `CAP_SYS_PTRACE`). A cwd search
    /// cannot see them: when this is not 0, say so to whoever searched.
    pub fn cwds_not_permitted(&self) -> usize {
        self.rows
            .iter()
            .filter(|row| matches!(row.info.cwd(), crate::Cwd::NotPermitted))
            .count()
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

#[cfg(test)]
mod tests {
    use crate::table::{ProcessTable, TableOptions};
    use crate::{BootId, Cwd, MemorySource, Pid, ProcessIdentity, ProcessInfo, StartTime};

    fn pid(raw: i32) -> Pid {
        Pid::try_from(raw).expect("test pids are valid")
    }

    /// `(pid, parent, start)` rows; parent 0 for a root.
    fn table(rows: &[(i32, i32, u64)]) -> ProcessTable<MemorySource> {
        let boot = BootId::from_bytes([3; 16]);
        let mut source = MemorySource::new(boot);
        for &(raw, parent, start) in rows {
            let identity = ProcessIdentity::new(boot, pid(raw), StartTime::from_raw(start));
            source.insert(
                ProcessInfo::builder(identity)
                    .parent(Pid::try_from(parent).ok())
                    .build(),
            );
        }
        ProcessTable::with_source(source, TableOptions::default()).expect("memory source")
    }

    // 1 ─┬─ 10 ─┬─ 20 ── 30 ── 40
    //    │      └─ 21
    //    └─ 11
    const TREE: &[(i32, i32, u64)] = &[
        (1, 0, 1),
        (10, 1, 2),
        (11, 1, 3),
        (20, 10, 4),
        (21, 10, 5),
        (30, 20, 6),
        (40, 30, 7),
    ];

    fn child(table: &ProcessTable<MemorySource>, ancestor: i32, of: i32) -> Option<i32> {
        table
            .child_leading_to(pid(ancestor), pid(of))
            .map(|p| p.pid().as_raw())
    }

    #[test]
    fn child_leading_to_finds_the_branch() {
        let table = table(TREE);
        assert_eq!(child(&table, 10, 40), Some(20));
        assert_eq!(child(&table, 10, 21), Some(21));
        assert_eq!(child(&table, 1, 40), Some(10));
        assert_eq!(child(&table, 1, 11), Some(11));
        assert_eq!(child(&table, 30, 40), Some(40));
    }

    #[test]
    fn child_leading_to_is_none_off_the_path() {
        let table = table(TREE);
        assert_eq!(
            child(&table, 10, 10),
            None,
            "a process is not its own child"
        );
        assert_eq!(child(&table, 11, 40), None, "another branch");
        assert_eq!(child(&table, 40, 10), None, "upwards");
        assert_eq!(child(&table, 10, 99), None, "not in the table");
        assert_eq!(child(&table, 99, 40), None, "ancestor not in the table");
    }

    #[test]
    fn child_leading_to_stops_at_an_untrusted_edge() {
        // 50 names 20 as parent but started before it: 20 is a later process
        // on a reused pid, not 50's parent.
        let mut rows = TREE.to_vec();
        rows.push((50, 20, 3));
        let table = table(&rows);
        assert_eq!(child(&table, 10, 50), None);
        assert_eq!(child(&table, 1, 50), None);
    }

    #[test]
    fn child_leading_to_survives_a_cycle() {
        // Corrupt input: equal start times and parents in a ring.
        let table = table(&[(5, 6, 1), (6, 7, 1), (7, 5, 1)]);
        assert_eq!(child(&table, 9, 5), None);
    }

    #[test]
    fn outermost_keeps_only_the_tops() {
        let table = table(TREE);
        let tops = |pids: &[i32]| -> Vec<i32> {
            table
                .outermost(pids.iter().map(|raw| pid(*raw)))
                .iter()
                .map(|p| p.pid().as_raw())
                .collect()
        };
        assert_eq!(tops(&[40, 20, 21, 11]), [11, 20, 21]);
        assert_eq!(tops(&[40, 10, 30]), [10]);
        assert_eq!(tops(&[40, 99]), [40]);
        assert_eq!(tops(&[]), Vec::<i32>::new());
    }

    #[test]
    fn counts_unreadable_cwds() {
        let boot = BootId::default();
        let mut source = MemorySource::new(boot);
        for (raw, cwd) in [
            (1, Cwd::Path("/".into())),
            (2, Cwd::NotPermitted),
            (3, Cwd::NotPermitted),
            (4, Cwd::Unknown),
        ] {
            let identity = ProcessIdentity::new(boot, pid(raw), StartTime::from_raw(1));
            source.insert(ProcessInfo::builder(identity).cwd(cwd).build());
        }
        let table = ProcessTable::with_source(source, TableOptions::default()).expect("memory");
        assert_eq!(table.cwds_not_permitted(), 2);
    }
}
