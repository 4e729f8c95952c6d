//! A parent with thousands of children: this test binary, re-executed as a
//! helper, forks them with `fork(2)` (no exec: ~0.1 ms each, where spawning
//! `sleep` costs an exec per child), from one or more threads, so that each
//! thread's `/proc/<pid>/task/<tid>/children` lists its own share.
//!
//! Every child blocks in `read` on the helper's stdin (a pipe from the test)
//! and exits at end of file (so also when the test process dies), and it
//! stays in the helper's process group, so the [`SpawnedTree`] guard's group
//! kill reaches it when the test fails. (No `PR_SET_PDEATHSIG`: children
//! that die with their parent during a tree kill would be reported as gone
//! before the kill's signal reached them, not as killed by it.) A test
//! binary that uses this declares the helper test:
//!
//! ```ignore
//! #[test]
//! fn wide_parent_helper() {
//!     support::wide::helper_main();
//! }
//! ```

use std::collections::HashSet;
use std::process::{Command, Stdio};

use proctrack::Pid;

use super::SpawnedTree;

/// Set (to `children,threads`) in the helper's environment.
const HELPER_ENV: &str = "PROCTRACK_WIDE_HELPER";

/// Pids a test leaves to everything else on the machine (the other tests
/// of the suite, builds, a second engineer's work) while its tree stands.
const PID_MARGIN: u64 = 2000;

/// The helper's body: forks `children` children over `threads` threads,
/// prints `thread <tid> <count>` for each thread and `child <pid>` for each
/// child, then `ready`, and waits for its stdin to close. Does nothing
/// unless run as the helper (the environment says so).
pub fn helper_main() {
    let Some(spec) = std::env::var_os(HELPER_ENV) else {
        return;
    };
    let spec = spec.to_str().expect("helper spec").to_owned();
    let (children, threads) = spec.split_once(',').expect("children,threads");
    let children: usize = children.parse().expect("children");
    let threads: usize = threads.parse().expect("threads");
    let (tx, rx) = std::sync::mpsc::channel();
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let tx = tx.clone();
            let share = children / threads + usize::from(i < children % threads);
            std::thread::spawn(move || {
                let tid = rustix::thread::gettid().as_raw_nonzero().get();
                let pids = fork_children(share);
                tx.send((tid, pids)).expect("report the children");
                drop(tx);
                // The thread stays: its children are listed under it.
                wait_for_eof();
            })
        })
        .collect();
    drop(tx);
    let mut out = String::from("\n");
    for (tid, pids) in rx.iter().take(threads) {
        out.push_str(&format!("thread {tid} {}\n", pids.len()));
        for pid in pids {
            out.push_str(&format!("child {pid}\n"));
        }
    }
    // After a newline: the harness leaves its "test ... " line open.
    out.push_str("ready\n");
    std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes()).expect("stdout");
    std::io::Write::flush(&mut std::io::stdout()).expect("stdout");
    wait_for_eof();
    for worker in workers {
        let _ = worker.join();
    }
}

/// Forks `count` children that wait for end of file on stdin; their pids.
fn fork_children(count: usize) -> Vec<i32> {
    let mut pids = Vec::with_capacity(count);
    for _ in 0..count {
        // SAFETY: the child runs only async-signal-safe system calls
        // (close, read, _exit) and never returns: no lock
        // or allocation another thread held at the fork is touched.
        match unsafe { libc::fork() } {
            -1 => panic!(
                "fork after {} children: {}",
                pids.len(),
                std::io::Error::last_os_error()
            ),
            0 => unsafe { child() },
            pid => pids.push(pid),
        }
    }
    pids
}

/// The child: holds no copy of the stdout pipe, and waits for end of file
/// on stdin.
unsafe fn child() -> ! {
    unsafe {
        libc::close(1);
        let mut byte = 0u8;
        loop {
            let n = libc::read(0, (&raw mut byte).cast(), 1);
            if n == 0 || (n < 0 && *libc::__errno_location() != libc::EINTR) {
                libc::_exit(0);
            }
        }
    }
}

/// Reads stdin until end of file (or an error).
fn wait_for_eof() {
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: reads into a local buffer of the given length.
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0
            || (n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted)
        {
            return;
        }
    }
}

/// A running helper with its children.
pub struct WideParent {
    /// The helper and its children; killing the group cleans up.
    pub tree: SpawnedTree,
    /// Every child, as the helper printed them.
    pub children: HashSet<Pid>,
    /// Each forking thread's id and how many children it forked.
    pub threads: Vec<(Pid, usize)>,
}

/// Starts a helper (the test binary, running its `wide_parent_helper`
/// test) with `children` children over `threads` threads, and waits until
/// all are forked. `None`, with the reason printed, when the machine cannot
/// hold that many processes more (see [`room_for`]).
pub fn spawn_wide(children: usize, threads: usize) -> Option<WideParent> {
    if let Err(why) = room_for(children as u64 + threads as u64 + 1) {
        println!("skipped: {children} children do not fit here: {why}");
        return None;
    }
    let exe = std::env::current_exe().expect("this test binary");
    let mut tree = SpawnedTree::spawn(
        Command::new(exe)
            .args([
                "--exact",
                "wide_parent_helper",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HELPER_ENV, format!("{children},{threads}"))
            .stdin(Stdio::piped()),
    );
    let (mut pids, mut forkers) = (HashSet::with_capacity(children), Vec::new());
    for line in tree.wait_ready() {
        let mut words = line.split(' ');
        match (words.next(), words.next(), words.next()) {
            (Some("child"), Some(pid), None) => {
                pids.insert(pid.parse().expect("a child's pid"));
            }
            (Some("thread"), Some(tid), Some(count)) => {
                forkers.push((tid.parse().expect("a tid"), count.parse().expect("a count")));
            }
            _ => {}
        }
    }
    assert_eq!(pids.len(), children, "children the helper forked");
    let wide = WideParent {
        tree,
        children: pids,
        threads: forkers,
    };
    Some(wide)
}

/// Whether `processes` more fit on this machine now, asked of the kernel:
/// free pids (`pid_max`, less the 300 reserved ones and every task now, per
/// `/proc/loadavg`), `threads-max`, and `RLIMIT_NPROC` (unless root), each
/// with [`PID_MARGIN`] left over.
pub fn room_for(processes: u64) -> Result<(), String> {
    let read = |path: &str| -> Result<u64, String> {
        std::fs::read_to_string(path)
            .map_err(|e| format!("{path}: {e}"))?
            .trim()
            .parse()
            .map_err(|e| format!("{path}: {e}"))
    };
    let pid_max = read("/proc/sys/kernel/pid_max")?;
    let threads_max = read("/proc/sys/kernel/threads-max")?;
    let loadavg =
        std::fs::read_to_string("/proc/loadavg").map_err(|e| format!("/proc/loadavg: {e}"))?;
    let tasks: u64 = loadavg
        .split_whitespace()
        .nth(3)
        .and_then(|field| field.split_once('/'))
        .and_then(|(_, total)| total.parse().ok())
        .ok_or_else(|| format!("/proc/loadavg: {loadavg:?}"))?;
    let wanted = processes + tasks + PID_MARGIN;
    if wanted > pid_max.saturating_sub(300) {
        return Err(format!(
            "pid_max is {pid_max} and {tasks} tasks exist: {processes} more leave under {PID_MARGIN} pids"
        ));
    }
    if wanted > threads_max {
        return Err(format!(
            "threads-max is {threads_max} and {tasks} tasks exist"
        ));
    }
    let nproc = rustix::process::getrlimit(rustix::process::Resource::Nproc).current;
    if let Some(limit) = nproc
        && !rustix::process::geteuid().is_root()
        && wanted > limit
    {
        return Err(format!("RLIMIT_NPROC is {limit} and {tasks} tasks exist"));
    }
    Ok(())
}
