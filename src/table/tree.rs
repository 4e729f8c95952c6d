use crate::ProcessInfo;

/// A process and, nested, everything under it.
///
/// Dropping a tree takes no stack in proportion to its depth (a chain tens
/// of thousands deep is fine). The derived `Clone`, `PartialEq`, `Debug`
/// and serde forms do recurse, one frame per level: the HTTP API writes
/// its listings with a JSON writer of its own instead.
///
/// ```no_run
/// use proctrack::{Pid, table::ProcessTable};
///
/// let table = ProcessTable::new()?;
/// if let Some(tree) = table.tree(Pid::current()) {
///     println!("{} processes under us", tree.len() - 1);
/// }
/// # Ok::<(), proctrack::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ProcessTree {
    /// The process at this node.
    pub process: ProcessInfo,
    /// Its children, ascending pid.
    pub children: Vec<ProcessTree>,
}

impl ProcessTree {
    /// The number of processes in the tree, this one included.
    pub fn len(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![self];
        while let Some(node) = stack.pop() {
            count += 1;
            stack.extend(&node.children);
        }
        count
    }

    /// Always false: a tree holds at least its root. Present for clippy's sake
    /// and for symmetry with [`len`](Self::len).
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl Drop for ProcessTree {
    /// Takes the children apart level by level, so that a deep chain does
    /// not recurse once per level.
    fn drop(&mut self) {
        let mut pending = std::mem::take(&mut self.children);
        while let Some(mut node) = pending.pop() {
            pending.append(&mut node.children);
            // `node` drops here with no children left.
        }
    }
}
