//! Runs a command as a supervised job, shows how it is contained and what
//! its members are, then stops all of it.
//!
//! ```text
//! supervise [--no-cgroup] -- COMMAND [ARGS...]
//! cargo run --example supervise -- sh -c '(setsid sleep 60 &); sleep 1; echo up'
//! ```
//!
//! The job runs until its command exits (or 10 s pass); then whatever it
//! left behind, daemons that double-forked and called `setsid` included, is
//! stopped: SIGTERM, 2 s of grace, SIGKILL.

use std::process::ExitCode;
use std::time::Duration;

use proctrack::supervisor::{Cgroups, Supervisor, SupervisorError, SupervisorOptions};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let cgroups = match args.first().map(String::as_str) {
        Some("--no-cgroup") => {
            args.remove(0);
            Cgroups::Off
        }
        _ => Cgroups::Auto,
    };
    if args.first().map(String::as_str) == Some("--") {
        args.remove(0);
    }
    if args.is_empty() {
        eprintln!("usage: supervise [--no-cgroup] -- COMMAND [ARGS...]");
        return ExitCode::from(2);
    }
    match supervise(&args, cgroups) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("supervise: {error}");
            ExitCode::FAILURE
        }
    }
}

fn supervise(args: &[String], cgroups: Cgroups) -> Result<(), SupervisorError> {
    let mut supervisor = Supervisor::new(SupervisorOptions::new("example").cgroups(cgroups))?;
    let mut command = supervisor.command(&args[0]);
    command.args(&args[1..]);
    let job = supervisor.spawn(command)?;
    println!("job {job}");
    if let Some(running) = supervisor.job(&job) {
        println!("contained by: {}", running.containment());
    }
    // The command's own exit, or 10 s.
    let root = supervisor.job(&job).map(|j| j.root());
    if let Some(root) = root {
        let handle = proctrack::signal::ProcessHandle::open(root)?;
        handle.wait_timeout(Duration::from_secs(10))?;
    }
    for member in supervisor.members(&job)? {
        println!(
            "left behind: {:>7} {} (found by {:?})",
            member.process.pid(),
            member.process.cmdline(),
            member.found_by
        );
    }
    println!("{:?}", supervisor.usage(&job)?);
    let report = supervisor.stop(&job, Duration::from_secs(2))?;
    println!("{report}");
    Ok(())
}
