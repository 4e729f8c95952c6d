//! Rows stored densely: a `Vec` of rows and a pid → slot index.
//!
//! A `HashMap<Pid, Row>` keeps about two buckets per row at typical load, each
//! the size of a whole row; here the spare capacity costs 8 bytes a slot.

use super::pid_hash::PidMap;
use crate::Pid;

#[derive(Debug, Clone)]
pub(super) struct Rows<R> {
    rows: Vec<R>,
    slots: PidMap<u32>,
}

impl<R> Default for Rows<R> {
    fn default() -> Self {
        Rows {
            rows: Vec::new(),
            slots: PidMap::default(),
        }
    }
}

impl<R> Rows<R> {
    pub(super) fn len(&self) -> usize {
        self.rows.len()
    }

    pub(super) fn get(&self, pid: Pid) -> Option<&R> {
        self.slots
            .get(&pid)
            .and_then(|&slot| self.rows.get(slot as usize))
    }

    pub(super) fn get_mut(&mut self, pid: Pid) -> Option<&mut R> {
        self.slots
            .get(&pid)
            .and_then(|&slot| self.rows.get_mut(slot as usize))
    }

    /// Inserts or replaces the row of `pid`.
    pub(super) fn insert(&mut self, pid: Pid, row: R) {
        match self.slots.get(&pid) {
            Some(&slot) => self.rows[slot as usize] = row,
            None => {
                // More than u32::MAX processes cannot exist (pids are 31-bit).
                let slot = u32::try_from(self.rows.len()).unwrap_or(u32::MAX);
                self.slots.insert(pid, slot);
                self.rows.push(row);
            }
        }
    }

    /// Removes the row of `pid`; the last row moves into its slot.
    pub(super) fn remove(&mut self, pid: Pid, pid_of: impl Fn(&R) -> Pid) -> Option<R> {
        let slot = self.slots.remove(&pid)? as usize;
        let row = self.rows.swap_remove(slot);
        if let Some(moved) = self.rows.get(slot) {
            self.slots.insert(pid_of(moved), slot as u32);
        }
        Some(row)
    }

    pub(super) fn iter(&self) -> std::slice::Iter<'_, R> {
        self.rows.iter()
    }
}
