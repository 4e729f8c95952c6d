//! What an event tracker running beside the supervisor tells it: the
//! members that fork lineage found, and the exits of job roots. The async
//! face (feature `tokio`) fills it from its tracker task; the supervisor
//! takes from it at each look, so its blocking `members` and `stop` find
//! what lineage found, and the exit code of an adopted root (not our
//! child) comes from here.

use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::JobId;
use crate::ProcessIdentity;
use crate::events::Exit;

/// Told by a tracker, not yet taken by the supervisor.
#[derive(Debug, Default)]
struct Told {
    /// Members found by fork lineage, per job.
    seen: HashMap<JobId, HashSet<ProcessIdentity>>,
    /// How job roots ended.
    exits: HashMap<ProcessIdentity, Exit>,
}

/// Shared between the tracker task and the supervisor.
#[derive(Debug, Default)]
pub(crate) struct Feed {
    told: Mutex<Told>,
    /// Raised when exits are told.
    exited: Condvar,
    /// Whether the tracker gets exit events with codes (the proc
    /// connector); a polling one tells none worth waiting for.
    exit_codes: bool,
}

impl Feed {
    /// A feed from a tracker that does (or does not) get exit codes.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn new(exit_codes: bool) -> Feed {
        Feed {
            exit_codes,
            ..Feed::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, Told> {
        self.told.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lineage made `member` one of `job`'s.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn seen(&self, job: JobId, member: ProcessIdentity) {
        self.lock().seen.entry(job).or_default().insert(member);
    }

    /// Roots ended so.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn exits(&self, exits: impl IntoIterator<Item = (ProcessIdentity, Exit)>) {
        self.lock().exits.extend(exits);
        self.exited.notify_all();
    }

    /// Every member lineage found since the last call.
    pub(crate) fn take_seen(&self) -> HashMap<JobId, HashSet<ProcessIdentity>> {
        std::mem::take(&mut self.lock().seen)
    }

    /// How `root` ended, if told. A root known to have exited (`exited`)
    /// is waited for up to `wait`, when the tracker gets exit codes: the
    /// kernel sends the exit event before the pidfd becomes readable, but
    /// the tracker task may not have read it yet.
    pub(crate) fn take_exit(
        &self,
        root: ProcessIdentity,
        exited: bool,
        wait: Duration,
    ) -> Option<Exit> {
        let deadline = Instant::now() + wait;
        let mut told = self.lock();
        loop {
            if let Some(exit) = told.exits.remove(&root) {
                return Some(exit);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if !exited || !self.exit_codes || left.is_zero() {
                return None;
            }
            told = self
                .exited
                .wait_timeout(told, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}
