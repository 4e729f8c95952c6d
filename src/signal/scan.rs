//! Tree discovery for the killer: who is whose child, right now.
//!
//! Everything the killer knows about the process tree comes from
//! [`Snapshot::refresh`], which asks the platform's
//! [`SystemSource`](crate::SystemSource) through the [`ProcessSource`] trait
//! (a pid listing and one sample per process): the same code on Linux and
//! macOS. Switching to another source (the incremental process table) means
//! replacing that one function.

use std::collections::HashMap;

use crate::{Error, Pid, ProcessSource, Result, StartTime, State};

/// One process as a scan saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) pid: Pid,
    pub(crate) parent: Option<Pid>,
    pub(crate) start: StartTime,
    pub(crate) state: State,
    pub(crate) threads: u32,
    pub(crate) kernel_thread: bool,
}

/// Every process at one moment, with a parent-to-children index.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    nodes: HashMap<Pid, Node>,
    children: HashMap<Pid, Vec<Pid>>,
    pids: Vec<Pid>,
}

impl Snapshot {
    /// Rescans every process: one listing, one sample each (on Linux one
    /// `/proc/<pid>/stat` read, on macOS one `proc_pidinfo` or `sysctl`).
    pub(crate) fn refresh(&mut self, reader: &mut impl ProcessSource) -> Result<()> {
        self.nodes.clear();
        self.children.values_mut().for_each(Vec::clear);
        reader.list_pids(&mut self.pids)?;
        for &pid in &self.pids {
            let node = match reader.sample(pid) {
                Ok(sample) => Node {
                    pid,
                    parent: sample.parent,
                    start: sample.start_time,
                    state: sample.state,
                    threads: sample.threads,
                    kernel_thread: sample.kernel_thread,
                },
                // Exited and reaped since the listing.
                Err(Error::NotFound { .. }) => continue,
                Err(other) => return Err(other),
            };
            if let Some(parent) = node.parent {
                self.children.entry(parent).or_default().push(pid);
            }
            self.nodes.insert(pid, node);
        }
        Ok(())
    }

    /// The process that has `pid` now, if any.
    pub(crate) fn get(&self, pid: Pid) -> Option<&Node> {
        self.nodes.get(&pid)
    }

    /// Every process, in no particular order.
    pub(crate) fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    /// The children of the process `(pid, start)`: none if that process is no
    /// longer in the snapshot. A child that started before its parent sits on
    /// a reused pid (a real parent is never younger than its child, even after
    /// reparenting), so that edge is not trusted.
    pub(crate) fn children_of(&self, pid: Pid, start: StartTime) -> impl Iterator<Item = &Node> {
        let parent_is_there = self.nodes.get(&pid).is_some_and(|node| node.start == start);
        self.children
            .get(&pid)
            .filter(|_| parent_is_there)
            .into_iter()
            .flatten()
            .filter_map(|child| self.nodes.get(child))
            .filter(move |child| child.start >= start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_our_parent_and_us() -> Result<()> {
        let mut reader = crate::system::open()?;
        let mut snapshot = Snapshot::default();
        snapshot.refresh(&mut reader)?;
        let me = snapshot
            .get(Pid::current())
            .copied()
            .ok_or(Error::NotFound {
                pid: Pid::current(),
            })?;
        let parent = me.parent.ok_or(Error::NotFound { pid: me.pid })?;
        let parent_start = snapshot
            .get(parent)
            .map(|n| n.start)
            .ok_or(Error::NotFound { pid: parent })?;
        assert!(
            snapshot
                .children_of(parent, parent_start)
                .any(|child| child.pid == me.pid)
        );
        // A wrong start time for the parent means "not that process": no children.
        let wrong = StartTime::from_raw(parent_start.as_raw() + 1);
        assert_eq!(snapshot.children_of(parent, wrong).count(), 0);
        Ok(())
    }
}
