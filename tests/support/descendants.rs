//! Every descendant of the test process: the serial guard that sweeps them
//! when a test ends, and the checks that none is left.
//!
//! Every test that forks and checks the whole test process takes [`serial`]
//! first: the checks at the end of such a test ("no child of ours is left,
//! alive or zombie") are about the whole test process, so two of them must
//! not overlap. [`sweep`] is the safety net that kills and reaps whatever a
//! failing test left behind.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use proctrack::{Pid, ProcessIdentity, ProcessSource, State};
use rustix::io::Errno;
use rustix::process::{PidfdFlags, Signal, WaitOptions};

use super::{become_subreaper, rustix_pid};

/// Serialises the forking tests of one test binary. Dropping the guard (also
/// when the test panics) kills and reaps every descendant left, so a failing
/// test leaks nothing.
pub fn serial() -> Serial {
    static LOCK: Mutex<()> = Mutex::new(());
    let lock = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    become_subreaper();
    Serial { _lock: lock }
}

/// See [`serial`].
pub struct Serial {
    _lock: MutexGuard<'static, ()>,
}

impl Drop for Serial {
    fn drop(&mut self) {
        let swept = sweep();
        if swept > 0 && !std::thread::panicking() {
            eprintln!("serial: swept {swept} leftover processes");
        }
    }
}

/// One scanned process.
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    pub identity: ProcessIdentity,
    pub parent: Option<Pid>,
    pub state: State,
}

/// Every process now.
pub fn scan() -> Vec<Seen> {
    proctrack::SystemSource::open()
        .and_then(|mut source| source.processes())
        .expect("scan /proc")
        .into_iter()
        .map(|p| Seen {
            identity: p.identity(),
            parent: p.parent(),
            state: p.state(),
        })
        .collect()
}

/// Every descendant of the test process (by ppid, edges checked by start
/// time), breadth-first.
pub fn descendants() -> Vec<Seen> {
    let all = scan();
    let me = Pid::current();
    let by_pid: HashMap<Pid, Seen> = all.iter().map(|s| (s.identity.pid(), *s)).collect();
    let mut children: HashMap<Pid, Vec<Seen>> = HashMap::new();
    for seen in &all {
        if let Some(parent) = seen.parent {
            children.entry(parent).or_default().push(*seen);
        }
    }
    let mut out = Vec::new();
    let mut queue: VecDeque<Pid> = VecDeque::from([me]);
    let mut visited = HashSet::new();
    while let Some(pid) = queue.pop_front() {
        let start = by_pid.get(&pid).map(|s| s.identity.start_time());
        for child in children.get(&pid).into_iter().flatten() {
            if start.is_some_and(|start| child.identity.start_time() >= start)
                && visited.insert(child.identity)
            {
                out.push(*child);
                queue.push_back(child.identity.pid());
            }
        }
    }
    out
}

/// Kills every descendant of the test process and reaps our children by pid,
/// until none is left; returns how many it met. The safety net: only call it
/// under [`serial`]. Never panics (it runs in `Drop`).
pub fn sweep() -> usize {
    let me = Pid::current();
    let mut total = 0;
    for _round in 0..1000 {
        let found = descendants();
        if found.is_empty() {
            return total;
        }
        total += found.len();
        for seen in &found {
            let pid = seen.identity.pid();
            if let Ok(fd) = rustix::process::pidfd_open(rustix_pid(pid), PidfdFlags::empty()) {
                let same = proctrack::process(pid).is_ok_and(|p| p.identity() == seen.identity);
                if same {
                    let _ = rustix::process::pidfd_send_signal(&fd, Signal::KILL);
                }
            }
        }
        for seen in found.iter().filter(|s| s.parent == Some(me)) {
            // Our unreaped child keeps its pid: waiting by pid cannot hit
            // another process. It was SIGKILLed, so this returns.
            let pid = Some(rustix_pid(seen.identity.pid()));
            while let Err(Errno::INTR) = rustix::process::waitpid(pid, WaitOptions::empty()) {}
        }
    }
    eprintln!("sweep: descendants still left after 1000 rounds");
    total
}

/// Identities of `members` that still exist anywhere (alive or zombie).
pub fn still_there(members: impl IntoIterator<Item = ProcessIdentity>) -> Vec<ProcessIdentity> {
    let now: HashSet<ProcessIdentity> = scan().into_iter().map(|s| s.identity).collect();
    members.into_iter().filter(|m| now.contains(m)).collect()
}

/// Processes whose environment holds `marker` (as `PROCTRACK_TEST_MARK=marker`).
/// Zombies have no environment: check those with [`descendants`].
pub fn marked(marker: &str) -> Vec<Pid> {
    with_env("PROCTRACK_TEST_MARK", |value| value == marker.as_bytes())
}

/// Processes whose environment sets `name` to a value `matches` accepts (a
/// job's tag, say), each read through a pin of its /proc directory.
pub fn with_env(name: &str, matches: impl Fn(&[u8]) -> bool) -> Vec<Pid> {
    let mut source = proctrack::SystemSource::open().expect("open /proc");
    let mut out = Vec::new();
    for seen in scan() {
        if let Ok(Some(environ)) = source.environ(seen.identity)
            && proctrack::supervisor::tag::find(&environ, name).is_some_and(&matches)
        {
            out.push(seen.identity.pid());
        }
    }
    out
}

/// Asserts the test process has no descendant left, alive or zombie.
pub fn assert_no_descendants() {
    let left = descendants();
    if !left.is_empty() {
        let shown = format!("{left:#?}");
        sweep();
        panic!("processes left behind: {shown}");
    }
}

/// A marker unique to this test process and call.
pub fn unique_marker(name: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
