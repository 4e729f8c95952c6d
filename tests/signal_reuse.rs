//! Pid reuse: a signal through a stale identity never reaches the process that
//! holds the pid now.
//!
//! Each trial takes the identity of a process P, lets P exit and be reaped,
//! forces a new process onto P's pid (as root: write pid-1 to
//! `/proc/sys/kernel/ns_last_pid`, then spawn; retried when another forker on
//! the machine took the pid first), and then tries to kill P through the old
//! identity, three ways: opening a handle, a handle opened while P was alive,
//! and a tree kill. All must say "gone", and the newcomer must be alive: it is
//! then ended with SIGTERM, so a wrong SIGKILL would show in its exit status.
//!
//! This binary holds only this test: forcing pids races with every fork in the
//! process.
#![cfg(target_os = "linux")]

mod support;

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command};

use proctrack::signal::{Backend, Delivery, KillOptions, ProcessHandle, Signal, kill_tree};
use proctrack::{Error, Liveness, Pid};
use support::{assert_no_descendants, serial};

/// Trials per backend; both backends together make 300.
const TRIALS: usize = 150;
const NS_LAST_PID: &str = "/proc/sys/kernel/ns_last_pid";

#[test]
fn a_stale_identity_never_signals_the_new_holder_of_its_pid() {
    let _serial = serial();
    if let Err(why) = support::kernel::ns_last_pid_writable() {
        println!("skipped: a pid cannot be reused on purpose here: {why}");
        return;
    }

    let mut total = Tally::default();
    for backend in [Backend::Pidfd, Backend::CheckedPid] {
        // All victims are spawned first, so each lives for many clock ticks
        // before its pid is reused: the newcomer's start time (in ticks of
        // 10 ms) then differs from the victim's, as the identity needs.
        let victims: Vec<Child> = (0..TRIALS)
            .map(|_| {
                Command::new("sleep")
                    .arg("1000")
                    .spawn()
                    .expect("spawn a victim")
            })
            .collect();
        let mut tally = Tally::default();
        for victim in victims {
            tally.add(trial(victim, backend));
        }
        println!(
            "{backend:?}: {} trials, {} wrong kills, {} skipped (pid taken by another forker), \
             {} same-tick collisions",
            tally.trials, tally.wrong_kills, tally.skipped, tally.same_tick
        );
        total.merge(&tally);
    }
    println!(
        "total: {} trials, {} wrong kills, {} skipped, {} same-tick collisions",
        total.trials, total.wrong_kills, total.skipped, total.same_tick
    );
    assert_no_descendants();
    assert_eq!(total.wrong_kills, 0);
    assert!(total.trials >= 200, "only {} trials ran", total.trials);
}

#[derive(Default)]
struct Tally {
    trials: usize,
    wrong_kills: usize,
    skipped: usize,
    same_tick: usize,
}

enum Outcome {
    Right,
    Wrong,
    Skipped,
    SameTick,
}

impl Tally {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Right => self.trials += 1,
            Outcome::Wrong => {
                self.trials += 1;
                self.wrong_kills += 1;
            }
            Outcome::Skipped => self.skipped += 1,
            Outcome::SameTick => self.same_tick += 1,
        }
    }

    fn merge(&mut self, other: &Tally) {
        self.trials += other.trials;
        self.wrong_kills += other.wrong_kills;
        self.skipped += other.skipped;
        self.same_tick += other.same_tick;
    }
}

fn trial(mut victim: Child, backend: Backend) -> Outcome {
    let early = ProcessHandle::from_child(&victim).expect("pin the victim");
    let stale = early.identity();
    let early = ProcessHandle::open_with(stale, backend).expect("open the victim");
    victim.kill().expect("kill the victim");
    victim.wait().expect("reap the victim");

    let Some(mut newcomer) = force_pid(stale.pid()) else {
        return Outcome::Skipped;
    };
    let fresh = ProcessHandle::from_child(&newcomer).expect("pin the newcomer");
    assert_eq!(fresh.pid(), stale.pid());
    if fresh.identity().start_time() == stale.start_time() {
        // Same pid and same start tick: indistinguishable by (pid, start
        // time). Not a trial of the handle; counted apart.
        end(&mut newcomer, &fresh);
        return Outcome::SameTick;
    }

    let mut wrong = Vec::new();
    // 1. No handle can be opened on the stale identity.
    match ProcessHandle::open_with(stale, backend) {
        Err(Error::NotFound { .. }) => {}
        other => wrong.push(format!("open of the stale identity: {other:?}")),
    }
    // 2. A handle opened while the victim lived does not reach the newcomer.
    match early.signal(Signal::Kill) {
        Ok(Delivery::Gone) => {}
        other => wrong.push(format!("signal through the early handle: {other:?}")),
    }
    // 3. A tree kill through the stale identity reports it gone.
    match kill_tree(
        &mut proctrack::table::ProcessTable::new().expect("table"),
        stale,
        &KillOptions::new().reap_root(false).backend(backend),
    ) {
        Ok(report) if report.already_gone == [stale] && report.members().count() == 1 => {}
        other => wrong.push(format!("kill_tree of the stale identity: {other:?}")),
    }
    // The newcomer must still be alive; SIGTERM ends it, and its status
    // tells which signal did.
    let liveness = proctrack::exists(stale.pid());
    let status = end(&mut newcomer, &fresh);
    if liveness.as_ref().ok() != Some(&Liveness::Alive) || status.signal() != Some(15) {
        wrong.push(format!(
            "newcomer: {liveness:?} before SIGTERM, then {status}"
        ));
    }
    if wrong.is_empty() {
        Outcome::Right
    } else {
        eprintln!("wrong kill, pid {}: {wrong:#?}", stale.pid());
        Outcome::Wrong
    }
}

fn end(child: &mut Child, handle: &ProcessHandle) -> std::process::ExitStatus {
    let _ = handle.signal(Signal::Term);
    child.wait().expect("reap the newcomer")
}

/// Spawns `sleep 1000` on `pid`, which must be free; `None` when another
/// process took the pid, or other forkers keep winning the race.
fn force_pid(pid: Pid) -> Option<Child> {
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
        let mut child = Command::new("sleep").arg("1000").spawn().expect("spawn");
        if child.id() == pid.as_u32() {
            return Some(child);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    None
}
