//! Kills a process tree, or everything standing in a directory, and prints
//! what happened to each process.
//!
//! ```text
//! killtree <pid|--cwd DIR> [--grace SECS]
//! ```
//!
//! With `--grace`, the tree gets SIGTERM first and SIGKILL after SECS seconds
//! for whatever is left; without it, SIGKILL at once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use proctrack::signal::{KillOptions, KillReport, capabilities, kill_cwd, kill_tree};
use proctrack::table::ProcessTable;
use proctrack::{Pid, ProcessIdentity};

enum Target {
    Pid(Pid),
    Cwd(PathBuf),
}

fn usage() -> ExitCode {
    eprintln!("usage: killtree <pid|--cwd DIR> [--grace SECS]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut target = None;
    let mut grace = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cwd" => match args.next() {
                Some(dir) => target = Some(Target::Cwd(dir.into())),
                None => return usage(),
            },
            "--grace" => match args.next().and_then(|s| s.parse::<f64>().ok()) {
                Some(secs) if secs.is_finite() && secs >= 0.0 => {
                    grace = Some(Duration::from_secs_f64(secs))
                }
                _ => return usage(),
            },
            "-h" | "--help" => return usage(),
            other => match other.parse::<Pid>() {
                Ok(pid) => target = Some(Target::Pid(pid)),
                Err(_) => return usage(),
            },
        }
    }
    let Some(target) = target else { return usage() };
    let options = match grace {
        Some(grace) => KillOptions::graceful(grace),
        None => KillOptions::new(),
    };
    if !capabilities().pidfd {
        eprintln!(
            "note: no pidfd on this kernel; signals are identity-checked kill(2), not pinned"
        );
    }
    let mut table = match ProcessTable::new() {
        Ok(table) => table,
        Err(e) => {
            eprintln!("killtree: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Names, read before the kill: afterwards the processes are gone.
    let names: HashMap<ProcessIdentity, String> = table
        .iter()
        .map(|p| (p.identity(), p.name().to_string_lossy().into_owned()))
        .collect();
    let result = match target {
        Target::Pid(pid) => match table.get(pid).map(|p| p.identity()) {
            Some(root) => kill_tree(&mut table, root, &options),
            None => Err(proctrack::Error::NotFound { pid }),
        },
        Target::Cwd(dir) => kill_cwd(&mut table, dir, &options),
    };
    match result {
        Ok(report) => {
            print_report(&report, &names);
            if report.is_complete() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("killtree: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_report(report: &KillReport, names: &HashMap<ProcessIdentity, String>) {
    let line = |what: &str, identity: &ProcessIdentity| {
        let name = names.get(identity).map_or("", String::as_str);
        println!("{what:<13} {:>7}  {name}", identity.pid());
    };
    report
        .killed
        .iter()
        .for_each(|k| line(&format!("killed ({})", k.signal), &k.identity));
    report
        .already_gone
        .iter()
        .for_each(|i| line("already gone", i));
    report.denied.iter().for_each(|i| line("denied", i));
    report.survived.iter().for_each(|i| line("survived", i));
    for (identity, reason) in &report.refused {
        println!("{:<13} {:>7}  ({reason})", "refused", identity.pid());
    }
    println!(
        "{} killed, {} already gone, {} denied, {} survived, {} refused, {} reaped{}{}",
        report.killed.len(),
        report.already_gone.len(),
        report.denied.len(),
        report.survived.len(),
        report.refused.len(),
        report.reaped.len(),
        if report.settled {
            ""
        } else {
            "; the tree never settled (stopped and complete) before the signal"
        },
        if report.confirmed {
            ""
        } else {
            "; exits not confirmed (no pidfd)"
        },
    );
}
