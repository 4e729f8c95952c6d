//! The holder search: which processes hold the wanted sockets open.
//!
//! The kernel says which sockets listen but not who holds them; the only
//! answer is each process's fd table, and reading all of them costs in
//! proportion to every fd on the system. So the search goes in order of
//! likelihood and stops early:
//!
//! 1. the processes the caller named first (a supervisor's own trees);
//! 2. then the processes of the sockets' owners (the kernel tells each
//!    socket's uid), starting where the holder probably is: pids and socket
//!    inodes both grow in creation order, so a search that reads a few
//!    processes spread over the pids and narrows to where sockets of the
//!    wanted one's age are lands near the holder; from there it goes
//!    outward, reading one process in pid order from the oldest for every
//!    one near the guess (so a wrong guess costs at most twice a plain walk
//!    in pid order);
//! 3. then everyone else;
//!
//! stopping once every wanted socket has a holder. Holders share a socket by
//! inheriting it (fork after bind: a master and its workers), so the search
//! then completes each holder's family: its ancestors as long as they hold
//! the socket too, and the whole subtree under the highest of them. A
//! process that got the socket another way (passed over a Unix socket by an
//! unrelated process, or from a grandparent through a parent that closed
//! its copy) is found only by an exhaustive search.

use std::collections::{HashMap, HashSet};

use crate::source::FdAccess;
use crate::{Pid, ProcessIdentity, Result};

/// What the search reads of processes; the platform layer implements it.
pub(crate) trait HolderSource {
    /// Every pid, ascending.
    fn pids(&mut self, out: &mut Vec<Pid>) -> Result<()>;
    /// Appends `(fd, socket id)` for each socket `pid` holds; with `owners`
    /// not empty, only if `pid` belongs to one of these users (else
    /// [`FdAccess::OtherOwner`]).
    fn socket_fds(
        &mut self,
        pid: Pid,
        owners: &[u32],
        out: &mut Vec<(i32, u64)>,
    ) -> Result<FdAccess>;
    /// Appends `(pid, fd, socket id)` for every socket each of `pids` holds
    /// to `sockets`, in the order of `pids`, and the pids whose fds cannot
    /// be read to `not_permitted`: [`HolderSource::socket_fds`] of any
    /// owner on each pid in turn. A platform may read several processes at
    /// once, as long as the answer stays the same.
    fn socket_fds_of_all(
        &mut self,
        pids: &[Pid],
        sockets: &mut Vec<(Pid, i32, u64)>,
        not_permitted: &mut Vec<Pid>,
    ) -> Result<()> {
        let mut fds = Vec::new();
        for &pid in pids {
            fds.clear();
            match self.socket_fds(pid, &[], &mut fds)? {
                FdAccess::Read => sockets.extend(fds.iter().map(|&(fd, id)| (pid, fd, id))),
                FdAccess::NotPermitted => not_permitted.push(pid),
                FdAccess::Gone | FdAccess::OtherOwner => {}
            }
        }
        Ok(())
    }
    /// The parent of `pid`; `None` for a root or a gone process.
    fn parent(&mut self, pid: Pid) -> Result<Option<Pid>>;
    /// Appends the children of `pid`; `Ok(false)` when the platform cannot
    /// list children directly (the search then looks at everyone).
    fn children(&mut self, pid: Pid, out: &mut Vec<Pid>) -> Result<bool>;
    /// The identity of `pid` now; `None` when it is gone.
    fn identity(&mut self, pid: Pid) -> Result<Option<ProcessIdentity>>;
    /// Appends the identity of each of `pids` now to `out`, in their order
    /// (`None` for a gone one): [`HolderSource::identity`] on each in turn.
    /// A platform may read several at once, as long as the answer stays the
    /// same.
    fn identities(&mut self, pids: &[Pid], out: &mut Vec<Option<ProcessIdentity>>) -> Result<()> {
        for &pid in pids {
            out.push(self.identity(pid)?);
        }
        Ok(())
    }
}

/// Where to look and how far.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan<'a> {
    /// Socket ids wanted, sorted and without duplicates.
    pub(crate) ids: &'a [u64],
    /// The sockets' owners: their processes are searched before others.
    pub(crate) uids: &'a [u32],
    /// Processes to search before anything else.
    pub(crate) first: &'a [Pid],
    /// Look at every process, never stop early.
    pub(crate) exhaustive: bool,
}

/// What the search found.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// Socket id to `(holder, fd)`, holders in the order found.
    pub(crate) holders: HashMap<u64, Vec<(Pid, i32)>>,
    /// Processes whose fds could not be read (another user's, unprivileged).
    pub(crate) not_permitted: Vec<Pid>,
}

struct Search<'p, 's, S: HolderSource> {
    source: &'s mut S,
    plan: &'p Plan<'p>,
    visited: HashSet<Pid>,
    found: Found,
    fds: Vec<(i32, u64)>,
}

/// Runs the search of `plan` on `source`.
pub(crate) fn find_holders<S: HolderSource>(source: &mut S, plan: &Plan<'_>) -> Result<Found> {
    let mut search = Search {
        source,
        plan,
        visited: HashSet::new(),
        found: Found::default(),
        fds: Vec::new(),
    };
    search.run()?;
    Ok(search.found)
}

impl<S: HolderSource> Search<'_, '_, S> {
    fn run(&mut self) -> Result<()> {
        if self.plan.ids.is_empty() {
            return Ok(());
        }
        for &pid in self.plan.first {
            self.scan(pid)?;
        }
        if !self.done() {
            let mut pids = Vec::new();
            self.source.pids(&mut pids)?;
            let owners = self.plan.uids;
            if self.plan.exhaustive {
                return self.scan_all(&pids);
            }
            let mut later = Vec::new();
            let start = self.locate(&pids, owners, &mut later)?;
            // Outward from there, alternately newer and older, and as a
            // hedge against a wrong guess (pids wrapped around, a socket an
            // old process opened late) one process in pid order from the
            // oldest for every one near the guess: a wrong guess costs at
            // most twice a plain walk in pid order.
            let (mut newer, mut older, mut oldest) = (start, start, 0);
            let mut turn = 0_u8;
            while !self.done() && (newer < pids.len() || older > oldest) {
                turn = turn.wrapping_add(1);
                let pid = if turn % 2 == 0 && oldest < older {
                    oldest += 1;
                    pids[oldest - 1]
                } else if (turn % 4 == 1 || older <= oldest) && newer < pids.len() {
                    newer += 1;
                    pids[newer - 1]
                } else if older > oldest {
                    older -= 1;
                    pids[older]
                } else {
                    continue;
                };
                if self.scan_owned(pid, owners)? == FdAccess::OtherOwner {
                    later.push(pid);
                }
            }
            for pid in later {
                if self.done() {
                    break;
                }
                self.scan(pid)?;
            }
        }
        if !self.plan.exhaustive {
            self.complete_families()?;
        }
        Ok(())
    }

    /// Where in `pids` (ascending) the holder of the first socket still
    /// without one probably is. Socket inodes are handed out in creation
    /// order, and a server opens its listening sockets soon after it starts;
    /// pids are handed out in creation order too, except that they wrap
    /// around at `pid_max`. So the search reads a few processes spread over
    /// the range, takes the one whose sockets were created last before the
    /// wanted one (the holder started after it), narrows the range to what
    /// lies between it and the next sample, and repeats. Choosing by age
    /// rather than comparing against a midpoint keeps it right when the pids
    /// have wrapped. Every probe is a real read (it counts as visited), so a
    /// wrong guess (a socket an old process opened late) costs only order.
    fn locate(&mut self, pids: &[Pid], owners: &[u32], later: &mut Vec<Pid>) -> Result<usize> {
        const FANOUT: usize = 8;
        let Some(&target) = self
            .plan
            .ids
            .iter()
            .find(|id| !self.found.holders.contains_key(id))
        else {
            return Ok(pids.len());
        };
        let (mut low, mut high) = (0, pids.len());
        let mut guess = pids.len();
        while high - low > 2 * FANOUT && !self.done() {
            let step = (high - low) / FANOUT;
            let mut samples: Vec<(usize, u64)> = Vec::with_capacity(FANOUT);
            for k in 0..FANOUT {
                let from = low + k * step;
                if let Some(sample) = self.age_at(pids, from, from + step, owners, later)? {
                    samples.push(sample);
                }
                if self.done() {
                    return Ok(from);
                }
            }
            let before = samples
                .iter()
                .filter(|&&(_, age)| age <= target)
                .max_by_key(|&&(_, age)| age);
            let Some(&(at, _)) = before else {
                // Older than every sample: start from the oldest of them.
                return Ok(samples
                    .iter()
                    .min_by_key(|&&(_, age)| age)
                    .map_or(low, |s| s.0));
            };
            guess = at;
            let next = samples.iter().map(|s| s.0).filter(|&i| i > at).min();
            (low, high) = (at, next.unwrap_or(high));
        }
        Ok(if guess < pids.len() { guess } else { low })
    }

    /// The first process in `pids[from..to]` (at most 8 tried) that holds a
    /// socket, read, with the median inode of its sockets: when it opened them.
    fn age_at(
        &mut self,
        pids: &[Pid],
        from: usize,
        to: usize,
        owners: &[u32],
        later: &mut Vec<Pid>,
    ) -> Result<Option<(usize, u64)>> {
        let end = to.min(from + 8).min(pids.len());
        for (at, &pid) in pids.iter().enumerate().take(end).skip(from) {
            match self.scan_owned(pid, owners)? {
                FdAccess::OtherOwner => later.push(pid),
                FdAccess::Read if !self.fds.is_empty() => {
                    let mut inodes: Vec<u64> = self.fds.iter().map(|&(_, id)| id).collect();
                    inodes.sort_unstable();
                    return Ok(Some((at, inodes[inodes.len() / 2])));
                }
                _ => {}
            }
            if self.done() {
                break;
            }
        }
        Ok(None)
    }

    /// Every wanted socket has a holder (and the search may stop).
    fn done(&self) -> bool {
        !self.plan.exhaustive && self.found.holders.len() == self.plan.ids.len()
    }

    /// Reads the socket fds of `pid`, once.
    fn scan(&mut self, pid: Pid) -> Result<()> {
        self.scan_owned(pid, &[]).map(|_| ())
    }

    /// Reads the socket fds of `pid` if it belongs to one of `owners` (any
    /// user when empty), once; a process of another user is left unvisited.
    fn scan_owned(&mut self, pid: Pid, owners: &[u32]) -> Result<FdAccess> {
        if self.visited.contains(&pid) {
            return Ok(FdAccess::Gone);
        }
        self.fds.clear();
        let access = self.source.socket_fds(pid, owners, &mut self.fds)?;
        match access {
            FdAccess::Read => {
                for &(fd, id) in &self.fds {
                    if self.plan.ids.binary_search(&id).is_ok() {
                        self.found.holders.entry(id).or_default().push((pid, fd));
                    }
                }
            }
            FdAccess::NotPermitted => self.found.not_permitted.push(pid),
            FdAccess::Gone | FdAccess::OtherOwner => {}
        }
        if access != FdAccess::OtherOwner {
            self.visited.insert(pid);
        }
        Ok(access)
    }

    /// Reads the socket fds of every process of `pids` not read yet, all at
    /// once (the platform may share the work between threads), recording
    /// what was found in pid order.
    fn scan_all(&mut self, pids: &[Pid]) -> Result<()> {
        let unread: Vec<Pid> = pids
            .iter()
            .copied()
            .filter(|pid| !self.visited.contains(pid))
            .collect();
        let mut sockets = Vec::new();
        self.source
            .socket_fds_of_all(&unread, &mut sockets, &mut self.found.not_permitted)?;
        for (pid, fd, id) in sockets {
            if self.plan.ids.binary_search(&id).is_ok() {
                self.found.holders.entry(id).or_default().push((pid, fd));
            }
        }
        self.visited.extend(unread);
        Ok(())
    }

    fn holds(&self, pid: Pid) -> bool {
        self.found
            .holders
            .values()
            .any(|holders| holders.iter().any(|&(holder, _)| holder == pid))
    }

    /// Up from each holder while the ancestors hold a wanted socket too, then
    /// the whole subtree under the highest such holder: where inherited
    /// copies of a socket live (a parent that bound before forking, its
    /// other children).
    fn complete_families(&mut self) -> Result<()> {
        let mut holders: Vec<Pid> = self
            .found
            .holders
            .values()
            .flatten()
            .map(|&(pid, _)| pid)
            .collect();
        holders.sort_unstable();
        holders.dedup();
        let mut tops = Vec::new();
        for holder in holders {
            let mut top = holder;
            let mut at = holder;
            let mut steps = 0;
            while let Some(parent) = self.source.parent(at)? {
                // A cycle can only come from pid reuse mid-walk; bound it.
                steps += 1;
                if steps > 4096 {
                    break;
                }
                self.scan(parent)?;
                if !self.holds(parent) {
                    break;
                }
                top = parent;
                at = parent;
            }
            tops.push(top);
        }
        tops.sort_unstable();
        tops.dedup();
        let mut queue = tops;
        let mut children = Vec::new();
        let mut walked = HashSet::new();
        while let Some(pid) = queue.pop() {
            if !walked.insert(pid) {
                continue;
            }
            self.scan(pid)?;
            children.clear();
            if !self.source.children(pid, &mut children)? {
                // No way to list children here: look at everyone instead.
                return self.scan_everyone();
            }
            queue.extend(children.iter().copied());
        }
        Ok(())
    }

    fn scan_everyone(&mut self) -> Result<()> {
        let mut pids = Vec::new();
        self.source.pids(&mut pids)?;
        self.scan_all(&pids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pid, parent, owner, socket fds, readable.
    type FakeProcess = (Pid, Option<Pid>, u32, Vec<(i32, u64)>, bool);

    /// A process list with parents, owners and socket fds, counting reads.
    #[derive(Default)]
    struct Fake {
        procs: Vec<FakeProcess>,
        fd_reads: Vec<Pid>,
        no_children: bool,
    }

    fn pid(raw: i32) -> Pid {
        Pid::try_from(raw).unwrap_or_else(|_| Pid::current())
    }

    impl Fake {
        fn add(&mut self, raw: i32, parent: i32, uid: u32, fds: &[(i32, u64)]) -> &mut Fake {
            let parent = (parent > 0).then(|| pid(parent));
            self.procs.push((pid(raw), parent, uid, fds.to_vec(), true));
            self
        }
        fn get(&self, pid: Pid) -> Option<&FakeProcess> {
            self.procs.iter().find(|p| p.0 == pid)
        }
    }

    impl HolderSource for Fake {
        fn pids(&mut self, out: &mut Vec<Pid>) -> Result<()> {
            out.clear();
            out.extend(self.procs.iter().map(|p| p.0));
            out.sort_unstable();
            Ok(())
        }
        fn socket_fds(
            &mut self,
            pid: Pid,
            owners: &[u32],
            out: &mut Vec<(i32, u64)>,
        ) -> Result<FdAccess> {
            if let Some(p) = self.get(pid)
                && !owners.is_empty()
                && !owners.contains(&p.2)
            {
                return Ok(FdAccess::OtherOwner);
            }
            self.fd_reads.push(pid);
            Ok(match self.get(pid) {
                Some(p) if !p.4 => FdAccess::NotPermitted,
                Some(p) => {
                    out.extend(p.3.iter().copied());
                    FdAccess::Read
                }
                None => FdAccess::Gone,
            })
        }
        fn parent(&mut self, pid: Pid) -> Result<Option<Pid>> {
            Ok(self.get(pid).and_then(|p| p.1))
        }
        fn children(&mut self, pid: Pid, out: &mut Vec<Pid>) -> Result<bool> {
            out.extend(self.procs.iter().filter(|p| p.1 == Some(pid)).map(|p| p.0));
            Ok(!self.no_children)
        }
        fn identity(&mut self, _pid: Pid) -> Result<Option<ProcessIdentity>> {
            Ok(None)
        }
    }

    /// init(1) -> shell(10) -> master(20, holds 7) -> workers 21, 22 (hold 7)
    /// and a sibling 23 (holds nothing); many unrelated processes 100..200.
    fn system() -> Fake {
        let mut fake = Fake::default();
        fake.add(1, 0, 0, &[]).add(10, 1, 1000, &[]);
        fake.add(20, 10, 1000, &[(3, 7)]);
        fake.add(21, 20, 1000, &[(3, 7)])
            .add(22, 20, 1000, &[(3, 7), (4, 9)]);
        fake.add(23, 20, 1000, &[]);
        for raw in 100..200 {
            fake.add(raw, 1, 0, &[(0, 1000 + raw as u64)]);
        }
        fake
    }

    fn holders_of(found: &Found, id: u64) -> Vec<i32> {
        let mut pids: Vec<i32> = found
            .holders
            .get(&id)
            .into_iter()
            .flatten()
            .map(|h| h.0.as_raw())
            .collect();
        pids.sort_unstable();
        pids
    }

    #[test]
    fn finds_every_inherited_holder_without_reading_everyone() -> Result<()> {
        let mut fake = system();
        let found = find_holders(
            &mut fake,
            &Plan {
                ids: &[7],
                uids: &[1000],
                ..Plan::default()
            },
        )?;
        assert_eq!(holders_of(&found, 7), vec![20, 21, 22]);
        // The owner's processes first: none of the 100 root processes read.
        assert!(
            fake.fd_reads
                .iter()
                .all(|p| p.as_raw() < 100 || p.as_raw() == 1)
        );
        Ok(())
    }

    #[test]
    fn given_trees_come_first_and_stop_the_search() -> Result<()> {
        let mut fake = system();
        let first = [pid(20), pid(21), pid(22), pid(23)];
        let found = find_holders(
            &mut fake,
            &Plan {
                ids: &[7, 9],
                first: &first,
                ..Plan::default()
            },
        )?;
        assert_eq!(holders_of(&found, 9), vec![22]);
        assert_eq!(holders_of(&found, 7), vec![20, 21, 22]);
        assert!(fake.fd_reads.iter().all(|p| p.as_raw() < 100));
        Ok(())
    }

    #[test]
    fn exhaustive_reads_everyone_and_unreadable_ones_are_reported() -> Result<()> {
        let mut fake = system();
        fake.procs[3].4 = false; // 21 cannot be read
        fake.no_children = true;
        let found = find_holders(
            &mut fake,
            &Plan {
                ids: &[7, 150_000],
                exhaustive: true,
                ..Plan::default()
            },
        )?;
        assert_eq!(holders_of(&found, 7), vec![20, 22]);
        assert_eq!(found.not_permitted, vec![pid(21)]);
        assert_eq!(fake.fd_reads.len(), fake.procs.len());
        Ok(())
    }

    #[test]
    fn a_socket_nobody_holds_costs_one_look_at_everyone() -> Result<()> {
        let mut fake = system();
        let found = find_holders(
            &mut fake,
            &Plan {
                ids: &[424_242],
                uids: &[0],
                ..Plan::default()
            },
        )?;
        assert!(found.holders.is_empty());
        assert_eq!(fake.fd_reads.len(), fake.procs.len());
        Ok(())
    }

    #[test]
    fn creation_order_leads_to_the_holder() -> Result<()> {
        // 1000 processes, each opening two sockets as it starts: inodes grow
        // with pids, as on a live system.
        let mut fake = Fake::default();
        for raw in 1000..2000 {
            let inode = raw as u64 * 10;
            fake.add(raw, 1, 0, &[(3, inode), (4, inode + 1)]);
        }
        let found = find_holders(
            &mut fake,
            &Plan {
                ids: &[15_371],
                uids: &[0],
                ..Plan::default()
            },
        )?;
        assert_eq!(holders_of(&found, 15_371), vec![1537]);
        assert!(
            fake.fd_reads.len() < 60,
            "read {} processes",
            fake.fd_reads.len()
        );
        Ok(())
    }

    #[test]
    fn wrapped_pids_still_lead_to_the_holder() -> Result<()> {
        // Pids wrapped at 2000: the 600 newest processes have pids 300..900,
        // below the 1100 older ones at 900..2000.
        let mut fake = Fake::default();
        for n in 0..1700_u64 {
            let raw = if n < 1100 { 900 + n } else { 300 + (n - 1100) } as i32;
            fake.add(raw, 1, 0, &[(3, 10_000 + n * 10)]);
        }
        for (n, raw) in [(1400_u64, 600), (500, 1400)] {
            let id = 10_000 + n * 10;
            fake.fd_reads.clear();
            let found = find_holders(
                &mut fake,
                &Plan {
                    ids: &[id],
                    uids: &[0],
                    ..Plan::default()
                },
            )?;
            assert_eq!(holders_of(&found, id), vec![raw]);
            assert!(
                fake.fd_reads.len() < 60,
                "read {} processes",
                fake.fd_reads.len()
            );
        }
        Ok(())
    }

    #[test]
    fn a_wrong_guess_costs_at_most_twice_the_pid_order() -> Result<()> {
        // The oldest process opened the wanted socket last: creation order
        // points at the newest processes.
        let mut fake = Fake::default();
        for raw in 1000..2000 {
            let inode = raw as u64 * 10;
            fake.add(raw, 1, 0, &[(3, inode)]);
        }
        fake.procs[5].3.push((9, 99_999));
        let found = find_holders(
            &mut fake,
            &Plan {
                ids: &[99_999],
                uids: &[0],
                ..Plan::default()
            },
        )?;
        assert_eq!(holders_of(&found, 99_999), vec![1005]);
        // Six in pid order, twice, and the samples (8 per level) on top.
        assert!(
            fake.fd_reads.len() < 6 * 2 + 3 * 8 + 8,
            "read {} processes",
            fake.fd_reads.len()
        );
        Ok(())
    }
}
