//! Fork lineage: which processes are a job's by who forked them, kept from
//! a tracker's events ([`Event`]), with no I/O. A fork by a member makes
//! the child a member, whatever it does next (clears its environment,
//! calls `setsid`, double-forks before anyone looked); an exit removes it.
//!
//! Events are applied in the tracker's order and logged: a job registered
//! a little after it started (the spawn returns after its first forks were
//! told) replays the log from a mark taken before the spawn, so none of its
//! forks is missed.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::JobId;
use super::async_supervisor::JobEvent;
use crate::events::{Event, EventKind, Exit};
use crate::{Pid, ProcessIdentity};

/// How many events the log keeps for late registrations.
const LOG: usize = 16 * 1024;

/// One logged change.
#[derive(Clone, Copy, Debug)]
enum Entry {
    Fork {
        forker: Pid,
        child: ProcessIdentity,
    },
    Exit {
        pid: Pid,
        process: Option<ProcessIdentity>,
        exit: Exit,
    },
}

/// A job as lineage knows it.
#[derive(Debug)]
struct Live {
    root: ProcessIdentity,
    members: HashMap<Pid, ProcessIdentity>,
    /// Its end was told on the stream.
    ended: bool,
}

/// What applying events found, for the caller to hand on.
#[derive(Debug, Default)]
pub(super) struct Told {
    /// For the stream, in order.
    pub(super) events: Vec<JobEvent>,
    /// New members, for the supervisor's `seen`.
    pub(super) seen: Vec<(JobId, ProcessIdentity)>,
    /// Exits of job roots.
    pub(super) root_exits: Vec<(ProcessIdentity, Exit)>,
    /// Jobs with no member left that lineage knows of: to confirm with a
    /// look (tagged or cgroup members may remain).
    pub(super) emptied: Vec<JobId>,
}

/// The lineage of every job, and the log.
#[derive(Debug, Default)]
pub(super) struct Lineage {
    applied: u64,
    log: VecDeque<(u64, Entry)>,
    jobs: BTreeMap<JobId, Live>,
}

impl Lineage {
    /// How many events were applied: a mark to register from.
    pub(super) fn mark(&self) -> u64 {
        self.applied
    }

    /// Applies one tracker event.
    pub(super) fn apply(&mut self, event: &Event) -> Told {
        let entry = match event.kind {
            EventKind::Spawned {
                process,
                parent,
                forked_by,
            } => match forked_by.or(parent) {
                Some(forker) => Entry::Fork {
                    forker,
                    child: process,
                },
                None => return Told::default(),
            },
            EventKind::Exited { pid, process, exit } => Entry::Exit { pid, process, exit },
            _ => return Told::default(),
        };
        self.applied += 1;
        if self.log.len() >= LOG {
            self.log.pop_front();
        }
        self.log.push_back((self.applied, entry));
        let mut told = Told::default();
        for (job, live) in &mut self.jobs {
            if live.ended {
                continue;
            }
            if step(job, live, entry, &mut told) && matches!(entry, Entry::Fork { .. }) {
                // A process joins one job.
                break;
            }
        }
        told
    }

    /// Follows job `id` from its `members` now (its root first), and
    /// replays what was applied after `since`. False in `complete` when the
    /// log no longer reaches back to `since`.
    pub(super) fn register(
        &mut self,
        id: &JobId,
        root: ProcessIdentity,
        members: &[ProcessIdentity],
        since: u64,
    ) -> (Told, bool) {
        let mut told = Told::default();
        let mut live = Live {
            root,
            members: HashMap::new(),
            ended: false,
        };
        for &member in std::iter::once(&root).chain(members) {
            if live.members.insert(member.pid(), member).is_none() {
                told.events.push(JobEvent::MemberJoined {
                    job: id.clone(),
                    process: member,
                });
            }
        }
        let complete = self
            .log
            .front()
            .is_none_or(|(first, _)| *first <= since + 1);
        for &(_, entry) in self.log.iter().filter(|(n, _)| *n > since) {
            step(id, &mut live, entry, &mut told);
        }
        self.jobs.insert(id.clone(), live);
        (told, complete)
    }

    /// Adds members a look found (tagged, in the cgroup) that lineage did
    /// not know.
    pub(super) fn add(&mut self, id: &JobId, members: &[ProcessIdentity]) -> Told {
        let mut told = Told::default();
        if let Some(live) = self.jobs.get_mut(id).filter(|live| !live.ended) {
            for &member in members {
                if live.members.insert(member.pid(), member).is_none() {
                    told.events.push(JobEvent::MemberJoined {
                        job: id.clone(),
                        process: member,
                    });
                    told.seen.push((id.clone(), member));
                }
            }
        }
        told
    }

    /// Job `id` is over (a look found no member): its `Exited` event, once.
    pub(super) fn end(
        &mut self,
        id: &JobId,
        code: Option<i32>,
        signal: Option<i32>,
    ) -> Option<JobEvent> {
        let live = self.jobs.get_mut(id)?;
        if live.ended {
            return None;
        }
        live.ended = true;
        live.members.clear();
        Some(JobEvent::Exited {
            job: id.clone(),
            code,
            signal,
        })
    }

    /// The jobs still followed (not ended).
    pub(super) fn live(&self) -> Vec<JobId> {
        self.jobs
            .iter()
            .filter(|(_, live)| !live.ended)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// Applies `entry` to one job; true when it concerned the job.
fn step(job: &JobId, live: &mut Live, entry: Entry, told: &mut Told) -> bool {
    match entry {
        Entry::Fork { forker, child } => {
            if !live.members.contains_key(&forker) {
                return false;
            }
            if live.members.insert(child.pid(), child).is_none() {
                told.events.push(JobEvent::MemberJoined {
                    job: job.clone(),
                    process: child,
                });
                told.seen.push((job.clone(), child));
            }
            true
        }
        Entry::Exit { pid, process, exit } => {
            let Some(&member) = live.members.get(&pid) else {
                return false;
            };
            if process.is_some_and(|p| p != member) {
                return false;
            }
            live.members.remove(&pid);
            told.events.push(JobEvent::MemberLeft {
                job: job.clone(),
                identity: member,
            });
            if member == live.root {
                told.root_exits.push((member, exit));
            }
            if live.members.is_empty() {
                told.emptied.push(job.clone());
            }
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Origin;
    use crate::{BootId, StartTime};

    fn id(pid: i32) -> ProcessIdentity {
        ProcessIdentity::new(
            BootId::from_bytes([5; 16]),
            Pid::try_from(pid).expect("pid"),
            StartTime::from_raw(pid as u64),
        )
    }

    fn fork(forker: i32, child: i32) -> Event {
        Event {
            kind: EventKind::Spawned {
                process: id(child),
                parent: Some(id(1).pid()),
                forked_by: Some(id(forker).pid()),
            },
            origin: Origin::Kernel,
        }
    }

    fn exit(pid: i32, code: i32) -> Event {
        Event {
            kind: EventKind::Exited {
                pid: id(pid).pid(),
                process: Some(id(pid)),
                exit: Exit::Code(code),
            },
            origin: Origin::Kernel,
        }
    }

    fn kinds(told: &Told) -> Vec<(char, i32)> {
        told.events
            .iter()
            .map(|event| match event {
                JobEvent::MemberJoined { process, .. } => ('+', process.pid().as_raw()),
                JobEvent::MemberLeft { identity, .. } => ('-', identity.pid().as_raw()),
                JobEvent::Exited { .. } => ('x', 0),
                JobEvent::Lagged { .. } => ('?', 0),
            })
            .collect()
    }

    /// The job's root 100 forks 101 (which double-forks 102 through a
    /// middle process gone unread) before the job is registered: the
    /// replay from the mark finds both; then the root exits 3, 102 exits,
    /// and the job is empty.
    #[test]
    fn a_late_registration_replays_forks_and_exits_follow() {
        let job = JobId::new("dev", id(50), 1);
        let mut lineage = Lineage::default();
        lineage.apply(&fork(50, 99)); // the application's own child
        let mark = lineage.mark();
        lineage.apply(&fork(50, 100));
        lineage.apply(&fork(100, 101));
        lineage.apply(&fork(101, 102));
        lineage.apply(&exit(101, 0));
        let (told, complete) = lineage.register(&job, id(100), &[], mark);
        assert!(complete);
        assert_eq!(
            kinds(&told),
            [('+', 100), ('+', 101), ('+', 102), ('-', 101)]
        );

        let told = lineage.apply(&fork(7, 8)); // someone else's
        assert!(told.events.is_empty());
        let told = lineage.apply(&exit(100, 3));
        assert_eq!(kinds(&told), [('-', 100)]);
        assert!(matches!(told.root_exits[..], [(root, Exit::Code(3))] if root == id(100)));
        assert!(told.emptied.is_empty());
        let told = lineage.apply(&exit(102, 0));
        assert_eq!(told.emptied, std::slice::from_ref(&job));
        assert!(lineage.end(&job, Some(3), None).is_some());
        assert!(lineage.end(&job, Some(3), None).is_none(), "told once");
        assert!(lineage.live().is_empty());
    }

    /// A pid reused by a process outside the job does not count as the
    /// member that had it.
    #[test]
    fn an_exit_of_another_process_on_a_members_pid_is_not_the_members() {
        let job = JobId::new("dev", id(50), 1);
        let mut lineage = Lineage::default();
        let (_, _) = lineage.register(&job, id(100), &[], lineage.mark());
        let other = ProcessIdentity::new(
            BootId::from_bytes([5; 16]),
            id(100).pid(),
            StartTime::from_raw(999),
        );
        let told = lineage.apply(&Event {
            kind: EventKind::Exited {
                pid: other.pid(),
                process: Some(other),
                exit: Exit::Code(0),
            },
            origin: Origin::Kernel,
        });
        assert!(told.events.is_empty());
        assert_eq!(lineage.live(), [job]);
    }
}
