//! Kept-open stat fds (`SystemSource::keep_stat_fds`): the table sees the
//! same processes as without them, stays within its fd budget, and a kept fd
//! never reads the next holder of a reused pid.
#![cfg(target_os = "linux")]

mod support;

use std::io::Write;
use std::process::{Child, Command};

use proctrack::table::{ProcessTable, TableOptions};
use proctrack::{Liveness, Pid, ProcessSource, SystemSource};

const NS_LAST_PID: &str = "/proc/sys/kernel/ns_last_pid";

/// A child killed and reaped when dropped, also when the test fails.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Reaped {
    fn pid(&self) -> Pid {
        Pid::try_from(self.0.id()).expect("pid")
    }
}

fn sleeper() -> Reaped {
    Reaped(
        Command::new("sleep")
            .arg("1000")
            .spawn()
            .expect("spawn sleep"),
    )
}

fn kept_table(budget: usize) -> ProcessTable {
    let mut source = SystemSource::open().expect("open /proc");
    assert_eq!(source.keep_stat_fds(budget), budget, "budget granted");
    ProcessTable::with_source(source, TableOptions::default()).expect("table")
}

#[test]
fn a_sample_through_a_kept_fd_sees_an_exec() {
    let _serial = support::serial();
    let mut table = kept_table(4096);
    let mut tree =
        support::SpawnedTree::shell("echo ready; read _; exec sh -c 'echo execed; read _'");
    tree.wait_ready();
    let pid = tree.pid();
    table.refresh().expect("refresh"); // reads the root
    table.refresh().expect("refresh"); // keeps its stat fd
    let before = table.get(pid).expect("row").cmdline().to_string();
    assert!(before.contains("echo ready"), "{before}");
    let stdin = tree.child().stdin.as_mut().expect("stdin");
    stdin.write_all(b"go\n").expect("write");
    assert_eq!(tree.read_line().as_deref(), Some("execed"));
    // The kept fd's pread renders the stat anew: the exec shows.
    let diff = table.refresh().expect("refresh");
    assert!(diff.execed.iter().any(|p| p.pid() == pid), "{diff:?}");
    let after = table.get(pid).expect("row").cmdline().to_string();
    assert!(
        !after.contains("echo ready") && after.contains("execed"),
        "{after}"
    );
    tree.finish();
}

#[test]
fn kept_fds_stay_within_the_budget_and_close_when_forgotten() {
    let _serial = support::serial();
    let mut source = SystemSource::open().expect("open /proc");
    assert_eq!(source.keep_stat_fds(8), 8);
    let mut pids = Vec::new();
    ProcessSource::list_pids(&mut source, &mut pids).expect("list");
    assert!(pids.len() > 8, "enough processes to fill the budget");
    let boot_id = source.boot_id();
    let mut identities = Vec::new();
    for &pid in &pids {
        if let Ok(sample) = source.sample(pid) {
            identities.push(sample.identity(boot_id));
        }
    }
    assert_eq!(source.kept_stat_fds(), 8, "kept up to the budget, no more");
    // Sampled again: through the kept fds, still eight.
    for &pid in &pids {
        let _ = source.sample(pid);
    }
    assert_eq!(source.kept_stat_fds(), 8);
    for identity in identities {
        source.forget(identity);
    }
    assert_eq!(source.kept_stat_fds(), 0, "forgotten rows close their fds");
}

#[test]
fn a_kept_fd_never_reads_the_next_holder_of_its_pid() {
    if let Err(why) = support::kernel::ns_last_pid_writable() {
        eprintln!("skipped: a pid cannot be reused on purpose here: {why}");
        return;
    }
    let _serial = support::serial();
    let mut table = kept_table(4096);
    let mut reused = 0;
    for _ in 0..20 {
        let first = sleeper();
        let pid = first.pid();
        table.refresh().expect("refresh"); // reads it
        table.refresh().expect("refresh"); // keeps its stat fd and samples through it
        let old = table.get(pid).expect("the first holder").identity();
        drop(first); // killed and reaped: the pid is free
        let Some(second) = force_pid(pid) else {
            continue;
        };
        reused += 1;
        // The kept fd answers ESRCH: the first holder exited, whatever the
        // second's start time (it may share the first's clock tick, which
        // a (pid, start time) identity cannot tell apart).
        let diff = table.refresh().expect("refresh");
        assert!(diff.exited.contains(&old), "the first holder exited");
        assert!(table.get(pid).is_none(), "not the old row kept");
        // The next refresh reads the second holder, by path.
        table.refresh().expect("refresh");
        let second_identity = proctrack::process(pid)
            .expect("the second holder")
            .identity();
        assert!(table.get_identity(second_identity).is_some());
        drop(second);
    }
    assert!(reused > 0, "no pid could be reused in 20 tries");
}

/// Spawns `sleep 1000` on `pid`, which must be free; `None` when other
/// forkers keep winning the race (as in `signal_reuse.rs`).
fn force_pid(pid: Pid) -> Option<Reaped> {
    for _attempt in 0..200 {
        if proctrack::exists(pid).expect("exists") != Liveness::Gone {
            return None;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(NS_LAST_PID)
            .expect("open ns_last_pid");
        write!(file, "{}", pid.as_raw() - 1).expect("write ns_last_pid");
        drop(file);
        let child = sleeper();
        if child.pid() == pid {
            return Some(child);
        }
    }
    None
}
