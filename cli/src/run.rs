//! `proctrack run`: one command as a contained job; its end, or a signal to
//! us, stops whatever is left of it. The job is written down in the state
//! directory, so `proctrack jobs` and `proctrack stop` find it, and a later
//! `run` of the same name stops what a run that died left behind.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::mpsc;

use proctrack::signal::ProcessHandle;
use proctrack::supervisor::{
    Cgroups, JobId, RecoverReport, StateDir, Supervisor, SupervisorError, SupervisorOptions,
};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::Outcome;
use crate::args::RunArgs;
use crate::output;

/// Our exit code when the job could not be started (as `env` and container
/// runners do, so it is not mistaken for the command's own).
const CANNOT_START: u8 = 125;

/// What ended the wait.
enum Event {
    /// The command (the job's root) exited.
    Exited,
    /// We got this signal.
    Signal(i32),
}

pub fn run(args: &RunArgs) -> Outcome {
    match supervise(args) {
        Ok(code) => Outcome::Exit(code),
        Err(error) => {
            output::error(&error);
            Outcome::Exit(CANNOT_START)
        }
    }
}

fn supervise(args: &RunArgs) -> Result<u8, SupervisorError> {
    // First: a signal before this would kill us and orphan the job.
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(io_error)?;
    let cgroups = if args.no_cgroup {
        Cgroups::Off
    } else {
        Cgroups::Auto
    };
    // Where the job is written down: without it, a run that dies leaves a
    // job nobody can find, so no state directory is no start.
    let state = StateDir::from_env().map_err(journal_error)?;
    crate::jobs::warn_skipped(&state);
    let mut supervisor = Supervisor::new(
        SupervisorOptions::new(args.name.as_str())
            .cgroups(cgroups)
            .shutdown_grace(args.grace)
            .journal(state),
    )?;
    // With --adopt, what runs of this name that died left running becomes
    // ours; what cannot be taken over, and everything without --adopt, is
    // stopped first.
    let adopted = if args.adopt {
        adopt_dead(&mut supervisor, &args.name)
    } else {
        Vec::new()
    };
    match supervisor.recover() {
        Ok(report) => tell_recovered(&args.name, &report),
        Err(error) => output::warn(&format!(
            "could not stop what earlier runs named {} left: {error}",
            args.name
        )),
    }
    let Some((program, rest)) = args.command.split_first() else {
        // --adopt without a command: supervise what was taken over.
        return supervise_adopted(supervisor, &adopted, signals, args.grace);
    };
    let mut command = supervisor.command(program);
    command.args(rest);
    let id = supervisor.spawn(command)?;
    let root = supervisor.job(&id).map(|job| job.root());

    let (tx, rx) = mpsc::channel();
    let exited = tx.clone();
    std::thread::spawn(move || {
        // Exit, not reap: the supervisor collects the status.
        if let Some(root) = root {
            let _ = ProcessHandle::open(root).and_then(|handle| handle.wait());
        }
        let _ = exited.send(Event::Exited);
    });
    let handle = signals.handle();
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            let _ = tx.send(Event::Signal(signal));
        }
    });
    let event = rx.recv().unwrap_or(Event::Exited);
    // The rest of the job goes, whatever ended the wait, and so do the jobs
    // taken over.
    let report = supervisor.stop(&id, args.grace)?;
    stop_adopted(&mut supervisor, &adopted, args.grace);
    handle.close();
    if !report.is_complete() {
        output::warn(&report.to_string());
    }
    Ok(match event {
        Event::Signal(signal) => 128u8.saturating_add(u8::try_from(signal).unwrap_or(0)),
        Event::Exited => report.exit.map_or(1, status_code),
    })
}

/// Takes over every job dead runs of `name` left that has a live process;
/// says on stderr what was taken over and what could not be.
fn adopt_dead(supervisor: &mut Supervisor, name: &str) -> Vec<JobId> {
    let candidates = match supervisor.adoptable() {
        Ok(candidates) => candidates,
        Err(error) => {
            output::warn(&format!(
                "could not look for what earlier runs named {name} left: {error}"
            ));
            return Vec::new();
        }
    };
    let mut adopted = Vec::new();
    for id in candidates {
        match supervisor.adopt(&id) {
            Ok(job) => {
                let root = job.root();
                let members = supervisor.members(&id).map_or(0, |m| m.len());
                eprintln!(
                    "proctrack: took over job {id} of a run named {name} that died: \
                     {members} process(es), root {}",
                    root.pid()
                );
                adopted.push(id);
            }
            // Left to the recover that follows, which stops it.
            Err(error) => output::warn(&format!("could not take over job {id}: {error}")),
        }
    }
    adopted
}

/// Stops the jobs taken over; what is not proven gone is said.
fn stop_adopted(supervisor: &mut Supervisor, adopted: &[JobId], grace: std::time::Duration) {
    for id in adopted {
        match supervisor.stop(id, grace) {
            Ok(report) if !report.is_complete() => output::warn(&report.to_string()),
            Ok(_) => {}
            Err(error) => output::warn(&format!("could not stop job {id}: {error}")),
        }
    }
}

/// `run --adopt` without a command: waits until every job taken over has
/// ended, or a signal comes (then stops them all). Exits as the last root
/// did, where its status is known (1 where not), or 128 + the signal.
fn supervise_adopted(
    mut supervisor: Supervisor,
    adopted: &[JobId],
    mut signals: Signals,
    grace: std::time::Duration,
) -> Result<u8, SupervisorError> {
    if adopted.is_empty() {
        output::warn("nothing to take over and no command given");
        return Ok(1);
    }
    let handle = signals.handle();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            let _ = tx.send(signal);
        }
    });
    let mut code = 0;
    for id in adopted {
        loop {
            if let Ok(signal) = rx.try_recv() {
                stop_adopted(&mut supervisor, adopted, grace);
                handle.close();
                return Ok(128u8.saturating_add(u8::try_from(signal).unwrap_or(0)));
            }
            // Woken by the job's end; a signal is looked at between waits.
            if supervisor
                .wait(id, Some(std::time::Duration::from_millis(200)))?
                .is_some()
                || supervisor.job(id).is_some_and(|job| job.is_finished())
            {
                code = supervisor
                    .job(id)
                    .and_then(|job| job.exit_status())
                    .map_or(1, status_code);
                break;
            }
        }
    }
    handle.close();
    Ok(code)
}

/// On standard error: each job of a dead run of `name` that was found,
/// what was stopped, and what is not proven gone.
fn tell_recovered(name: &str, report: &RecoverReport) {
    for job in &report.jobs {
        let counts = job.kill.counts();
        let total = counts.killed + counts.already_gone;
        let cgroup = match &job.cgroup {
            Some(path) if path.exists() => {
                format!("; its cgroup {} is still there", path.display())
            }
            Some(path) => format!("; its cgroup {} removed", path.display()),
            None => String::new(),
        };
        eprintln!(
            "proctrack: job {} of a run named {name} that died was still there: \
             stopped {total} process(es) ({counts}){cgroup}",
            job.id
        );
        for (identity, outcome) in job.kill.outcomes().filter(|(_, o)| !o.is_done()) {
            let detail = outcome.detail().map_or(String::new(), |d| format!(": {d}"));
            output::warn(&format!(
                "job {}: pid {} {outcome}{detail}: not proven gone",
                job.id,
                identity.pid()
            ));
        }
        if !job.kill.settled {
            output::warn(&format!(
                "job {}: its processes never stopped complete before the kill: not proven complete",
                job.id
            ));
        }
    }
}

/// The exit code a shell would give for `status`.
fn status_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(signal)) => 128u8.saturating_add(u8::try_from(signal).unwrap_or(0)),
        (None, None) => 1,
    }
}

fn journal_error(error: proctrack::supervisor::StateDirError) -> SupervisorError {
    SupervisorError::Journal(proctrack::supervisor::JournalError(Box::new(error)))
}

fn io_error(source: std::io::Error) -> SupervisorError {
    SupervisorError::Process(proctrack::Error::Io { path: None, source })
}
