//! Tree discovery for the killer: who is whose child, right now.
//!
//! Everything the killer knows about the process tree comes from
//! [`Snapshot::refresh`], so switching to another source (the incremental
//! process table) means replacing that one function.

use std::collections::HashMap;

use crate::{Error, Pid, ProcReader, Result, StartTime, State};

/// One process as a scan saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) pid: Pid,
    pub(crate) parent: Option<Pid>,
    pub(crate) start: StartTime,
    pub(crate) state: State,
    pub(crate) threads: i64,
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
    /// Rescans every process: one `/proc` listing, one stat read each.
    pub(crate) fn refresh(&mut self, reader: &mut ProcReader) -> Result<()> {
        self.nodes.clear();
        self.children.values_mut().for_each(Vec::clear);
        reader.list_pids(&mut self.pids)?;
        for &pid in &self.pids {
            let node = match reader.stat(pid) {
                Ok(stat) => Node {
                    pid,
                    parent: Pid::try_from(stat.ppid).ok(),
                    start: StartTime::from_raw(stat.starttime),
                    state: State::from_letter(stat.state),
                    threads: stat.num_threads,
                    kernel_thread: stat.is_kernel_thread(),
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

/// True when every thread of `pid` is stopped or exited. The stat of a
/// process shows its leader thread only, and a group stop reaches the threads
/// one by one: a thread not stopped yet could still fork. `None` when the
/// process is gone.
pub(crate) fn all_threads_stopped(pid: Pid) -> Result<Option<bool>> {
    let dir = format!("/proc/{pid}/task");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Io {
                path: dir.into(),
                source,
            });
        }
    };
    for entry in entries {
        let Ok(entry) = entry else { return Ok(None) };
        let path = entry.path().join("stat");
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            // The thread exited meanwhile.
            Err(_) => continue,
        };
        let stat = crate::parse::parse_stat(&bytes).map_err(|e| Error::Parse {
            path,
            reason: e.to_string(),
        })?;
        let state = State::from_letter(stat.state);
        if !matches!(
            state,
            State::Stopped | State::TracingStop | State::Zombie | State::Dead
        ) {
            return Ok(Some(false));
        }
    }
    Ok(Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_our_parent_and_us() -> Result<()> {
        let mut reader = ProcReader::open()?;
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
