//! `proctrack kill`: plan (with `--dry-run`) or run tree kills, and report.

use std::collections::HashMap;

use proctrack::signal::{
    KillCounts, KillOptions, KillOutcome, KillReport, Refusal, kill_cwd, kill_trees, plan_kill,
};
use proctrack::table::ProcessTable;
use proctrack::{Pid, ProcessIdentity, ProcessInfo};
use serde::Serialize;

use crate::args::KillArgs;
use crate::list::{CwdSearch, describe};
use crate::output::{self, Out, Style};
use crate::{Error, Outcome};

/// The width of a row's first column: "killed by SIGTERM".
pub const TAG: usize = 17;

/// `kill --json`: what happened.
#[derive(Serialize)]
struct KillJson<'a> {
    dry_run: bool,
    /// Pids on the command line that no process has.
    missing: &'a [Pid],
    /// One report per tree (per PID), or one for `--cwd`.
    reports: &'a [KillReport],
    /// Trees that could not be killed at all, and why.
    errors: Vec<String>,
}

/// `kill --dry-run --json`: what would happen.
#[derive(Serialize)]
struct PlanJson<'a> {
    dry_run: bool,
    missing: &'a [Pid],
    would_kill: Vec<&'a ProcessInfo>,
    refused: Vec<RefusedJson<'a>>,
}

#[derive(Serialize)]
struct RefusedJson<'a> {
    process: &'a ProcessInfo,
    reason: Refusal,
}

pub fn run(args: &KillArgs, out: &mut Out) -> Result<Outcome, Error> {
    let mut table = ProcessTable::new()?;
    let mut outcome = Outcome::Done;
    let mut missing = Vec::new();
    let roots: Vec<&ProcessInfo> = match &args.cwd {
        Some(dir) => {
            let search = CwdSearch::new(&table, dir);
            outcome = search.outcome();
            table.outermost(search.found.iter().map(|p| p.pid()))
        }
        None => {
            let mut roots = Vec::new();
            for &pid in &args.pids {
                match table.get(pid) {
                    Some(process) => roots.push(process),
                    None => {
                        output::error(&format!("no process has pid {pid}"));
                        missing.push(pid);
                    }
                }
            }
            roots
        }
    };
    if !missing.is_empty() {
        outcome = Outcome::Partial;
    }
    if args.dry_run {
        let roots: Vec<ProcessIdentity> = roots.iter().map(|p| p.identity()).collect();
        let plan = plan(&mut table, &roots)?;
        if !plan.refused.is_empty() {
            outcome = Outcome::Partial;
        }
        if args.json {
            out.json(&PlanJson {
                dry_run: true,
                missing: &missing,
                would_kill: plan.would_kill,
                refused: plan.refused,
            })?;
        } else {
            for process in &plan.would_kill {
                let tag = out.paint(Style::Good, &format!("{:<TAG$}", "would kill"));
                member_line(out, &tag, process.pid(), &describe(process), None)?;
            }
            for refused in &plan.refused {
                let outcome = KillOutcome::Refused(refused.reason);
                let tag = out.paint(Style::Bad, &format!("{:<TAG$}", outcome.to_string()));
                let (pid, what) = (refused.process.pid(), describe(refused.process));
                member_line(out, &tag, pid, &what, outcome.detail().as_deref())?;
            }
            out.plain(&format!(
                "dry run: {} would be killed, {} refused; nothing was signalled",
                plan.would_kill.len(),
                plan.refused.len()
            ))?;
        }
        return Ok(outcome);
    }

    // Names, taken before the kill: afterwards the processes are gone.
    let names: HashMap<ProcessIdentity, String> =
        table.iter().map(|p| (p.identity(), describe(p))).collect();
    let roots: Vec<ProcessIdentity> = roots.iter().map(|p| p.identity()).collect();
    let options = if args.grace.is_zero() {
        KillOptions::new()
    } else {
        KillOptions::graceful(args.grace)
    };
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    match &args.cwd {
        Some(dir) => match kill_cwd(&mut table, dir, &options) {
            Ok(report) => reports.push(report),
            Err(error) => errors.push(error.to_string()),
        },
        // All the trees at once, frozen together: a member of one that forks
        // into another is caught, and a protected root is reported as
        // refused like any member.
        None => match kill_trees(&mut table, &roots, &options) {
            Ok(report) => reports.push(report),
            Err(error) => errors.push(error.to_string()),
        },
    }
    if !errors.is_empty() || !reports.iter().all(KillReport::is_complete) {
        outcome = Outcome::Partial;
    }
    if args.json {
        out.json(&KillJson {
            dry_run: false,
            missing: &missing,
            reports: &reports,
            errors,
        })?;
        return Ok(outcome);
    }
    for error in &errors {
        output::error(error);
    }
    let mut counts = KillCounts::default();
    for report in &reports {
        report_lines(
            out,
            report,
            &names,
            "(started during the kill)",
            &mut counts,
        )?;
    }
    out.plain(&counts.to_string())?;
    Ok(outcome)
}

/// One line per member of `report` (what happened, pid, why, command),
/// counted into `counts`, and a warning for what it could not prove.
pub fn report_lines(
    out: &mut Out,
    report: &KillReport,
    names: &HashMap<ProcessIdentity, String>,
    unknown: &str,
    counts: &mut KillCounts,
) -> Result<(), Error> {
    let name = |identity: &ProcessIdentity| names.get(identity).map_or(unknown, String::as_str);
    counts.add(report);
    for (identity, outcome) in report.outcomes() {
        let tag = format!("{:<TAG$}", outcome.to_string());
        let tag = match outcome {
            KillOutcome::AlreadyGone => tag,
            done if done.is_done() => out.paint(Style::Good, &tag),
            _ => out.paint(Style::Bad, &tag),
        };
        let detail = outcome.detail();
        member_line(
            out,
            &tag,
            identity.pid(),
            name(&identity),
            detail.as_deref(),
        )?;
    }
    if !report.settled {
        output::warn(
            "a tree never stopped complete before the signal: what it forked meanwhile may have got away",
        );
    }
    if !report.confirmed {
        output::warn("exits were not confirmed: this kernel has no pidfds");
    }
    Ok(())
}

pub fn member_line(
    out: &mut Out,
    tag: &str,
    pid: Pid,
    what: &str,
    why: Option<&str>,
) -> Result<(), Error> {
    let prefix = format!("{tag} {:>7}  ", pid);
    // The reason first: a narrow terminal cuts the command line, not it.
    let text = match why {
        Some(why) => format!("{why}: {what}"),
        None => what.to_owned(),
    };
    out.line(&prefix, TAG + 1 + 7 + 2, &text, None)?;
    Ok(())
}

/// What a kill of `roots` would do: every member, and the protected
/// processes it would leave alone (not followed below, as the kill does).
struct Plan<'a> {
    would_kill: Vec<&'a ProcessInfo>,
    refused: Vec<RefusedJson<'a>>,
}

/// The library's dry run, with each process as the table shows it.
fn plan<'a, S: proctrack::ProcessSource>(
    table: &'a mut ProcessTable<S>,
    roots: &[ProcessIdentity],
) -> Result<Plan<'a>, Error> {
    let planned = plan_kill(table, roots, &KillOptions::new())?;
    let table: &'a ProcessTable<S> = table;
    Ok(Plan {
        would_kill: planned
            .members
            .iter()
            .filter_map(|identity| table.get_identity(*identity))
            .collect(),
        refused: planned
            .refused
            .iter()
            .filter_map(|(identity, reason)| {
                let process = table.get_identity(*identity)?;
                Some(RefusedJson {
                    process,
                    reason: *reason,
                })
            })
            .collect(),
    })
}
