//! Process hygiene shared by the integration tests (Linux only): one module
//! for every test that starts processes.
//!
//! pid 1 on the test machines does not reap orphans: a process a test leaks
//! stays a zombie forever, and enough of them exhaust `pid_max`. So every test
//! that starts processes:
//!
//! 1. starts them through a [`SpawnedTree`] (or [`spawn_group`] plus
//!    [`Lines`]), and the test process is a child subreaper
//!    ([`become_subreaper`]), so orphans of the tree reparent to it and can be
//!    reaped;
//! 2. waits for readiness on events, never by sleeping: the tree prints lines
//!    on its stdout (a pipe) and the test reads them ([`SpawnedTree::wait_ready`],
//!    [`SpawnedTree::read_line`]); exits are awaited on a pidfd
//!    ([`wait_for_exit`], [`wait_child`]). Every wait gives up after
//!    [`HANG_GUARD`] with a panic, so the test's guards still clean up.
//!    `Command::spawn` returning is not readiness: it returns once the exec
//!    has switched memory maps, but the kernel sets the new argument area a
//!    little later, and meanwhile `/proc/<pid>/cmdline` reads empty (measured:
//!    39% of reads right after spawning with 1 MiB of arguments). Have each
//!    process print its own line (`echo $$`) after its exec;
//! 3. ends with [`SpawnedTree::finish`] (or just drops the guard), which kills
//!    every member and reaps every one that became ours, and then may call
//!    [`assert_no_leftovers`].
//!
//! Tests whose final check is about the whole test process ("no descendant of
//! ours is left, alive or zombie": [`assert_no_descendants`]) take [`serial`]
//! first, so that two of them never overlap; its guard [`sweep`]s every
//! descendant when it drops, also when the test panics.
//!
//! ```ignore
//! mod support;
//! let mut tree = support::SpawnedTree::shell("echo $$; echo ready; read _");
//! let lines = tree.wait_ready();
//! // ... look at the processes ...
//! let record = tree.finish();
//! support::assert_no_leftovers(&record);
//! ```
//!
//! Include it as `mod support;` from a test file that starts with
//! `#![cfg(target_os = "linux")]` (it uses rustix and pidfds).
//!
//! Reaping is by pid only, never `waitpid(-1)`: tests run in parallel threads
//! of one process, and a wait-any would steal another test's exit statuses
//! (tokio::process and std's `Child::wait` reap by pid too).
//!
//! Files by job: [`tree`] (a spawned tree and its cleanup), [`lines`]
//! (readiness lines with a hang guard), [`descendants`] (the serial guard,
//! sweeping and checking every descendant of the test process), [`wide`] (a
//! parent with thousands of children, forked by a re-executed helper).
#![allow(dead_code, unused_imports)]

pub mod descendants;
pub mod kernel;
pub mod lines;
pub mod tree;
pub mod wide;

use std::process::{Child, ExitStatus};
use std::sync::Once;
use std::time::Duration;

use proctrack::Pid;
use proctrack::signal::ProcessHandle;
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::process::PidfdFlags;

pub use descendants::{
    Seen, Serial, assert_no_descendants, descendants, marked, scan, serial, still_there, sweep,
    unique_marker, with_env,
};
pub use lines::Lines;
pub use proctrack::signal::spawn_group;
pub use tree::{SpawnedTree, TreeRecord, assert_no_leftovers};

/// How long a test waits for anything before it fails (and its guards
/// clean up): a hang guard, never a timing assertion.
pub const HANG_GUARD: Duration = Duration::from_secs(60);

/// Makes the test process a child subreaper: orphans of its descendants
/// reparent to it instead of to pid 1. Idempotent; the flag is process-wide.
pub fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .expect("PR_SET_CHILD_SUBREAPER");
    });
}

/// rustix's pid type from ours.
pub fn rustix_pid(pid: Pid) -> rustix::process::Pid {
    rustix::process::Pid::from_raw(pid.as_raw()).expect("a Pid is always positive")
}

/// Blocks until `pid` has exited (it may still be an unreaped zombie), by
/// polling its pidfd, which becomes readable at exit. Works for any process,
/// not only children. Returns at once if the process is already gone.
///
/// The pid must be pinned (an unreaped child, say) or known alive: a pid that
/// was already reaped may name another process by now.
pub fn wait_for_exit(pid: Pid) {
    let fd = match rustix::process::pidfd_open(rustix_pid(pid), PidfdFlags::empty()) {
        Ok(fd) => fd,
        // Any of these means the process is gone already.
        Err(Errno::SRCH | Errno::INVAL | Errno::NOENT) => return,
        Err(errno) => panic!("pidfd_open({pid}): {errno}"),
    };
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    loop {
        match rustix::event::poll(&mut fds, None) {
            Ok(n) if n > 0 => return, // readable (exited), or hung up (reaped)
            Ok(_) | Err(Errno::INTR) => continue,
            Err(errno) => panic!("poll on the pidfd of {pid}: {errno}"),
        }
    }
}

/// Reaps our child, failing (not hanging) if it does not exit within
/// [`HANG_GUARD`].
pub fn wait_child(child: &mut Child) -> ExitStatus {
    let handle = ProcessHandle::from_child(child).expect("pin the child");
    assert!(
        handle.wait_timeout(HANG_GUARD).expect("wait"),
        "child {} did not exit",
        handle.pid()
    );
    child.wait().expect("reap the child")
}
