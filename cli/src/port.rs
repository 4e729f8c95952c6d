//! `proctrack port PORT` and `proctrack kill --port PORT`.

use std::collections::{HashMap, HashSet};

use proctrack::ports::{Listener, PortFinder, PortKillOptions, PortReport, Protocol, Search};
use proctrack::signal::{KillCounts, KillOptions, KillOutcome};
use proctrack::table::{ProcessTable, ProcessTree};
use proctrack::{Pid, ProcessIdentity};
use serde::Serialize;

use crate::args::{KillArgs, PortArgs};
use crate::kill::{TAG, member_line, report_lines};
use crate::list::{describe, print_header, print_row};
use crate::output::{self, Out, Style};
use crate::{Error, Outcome};

/// `port --json`.
#[derive(Serialize)]
struct PortJson<'a> {
    port: u16,
    listeners: &'a [Listener],
    /// Processes whose open files could not be read (other users').
    not_permitted: &'a [Pid],
    /// Each holder with everything under it.
    trees: Vec<ProcessTree>,
}

pub fn show(args: &PortArgs, out: &mut Out) -> Result<Outcome, Error> {
    let mut search = Search::new().exhaustive(args.all);
    if args.tcp {
        search = search.protocol(Protocol::Tcp);
    } else if args.udp {
        search = search.protocol(Protocol::Udp);
    }
    let report = PortFinder::open()?.holders(args.port, &search)?;
    let table = ProcessTable::new()?;
    let outcome = tell_what_is_missing(&report, args.port);
    if args.json {
        out.json(&PortJson {
            port: args.port,
            listeners: &report.listeners,
            not_permitted: &report.not_permitted,
            trees: holder_trees(&report, &table),
        })?;
        return Ok(outcome);
    }
    // A holder inside a tree already shown is not shown again.
    let mut shown = HashSet::new();
    for listener in &report.listeners {
        print_listener(out, &table, listener, &mut shown, Detail::default())?;
    }
    Ok(outcome)
}

/// Each holder of `report` that is still the process the table read, with
/// everything under it: what `--json` shows as `trees`.
pub fn holder_trees(report: &PortReport, table: &ProcessTable) -> Vec<ProcessTree> {
    report
        .holders()
        .iter()
        .filter(|holder| table.get_identity(**holder).is_some())
        .filter_map(|holder| table.tree(holder.pid()))
        .collect()
}

/// What [`print_listener`] adds to the lines `port` prints.
#[derive(Clone, Copy, Debug, Default)]
pub struct Detail {
    /// The uid that owns the socket, on the socket's line.
    pub owner: bool,
    /// The command on each holder's line, also when its tree is not shown
    /// again (cut to the terminal's width).
    pub command: bool,
}

/// Prints one listener: a line for the socket (protocol, address, "IPv4
/// too" for a dual-stack socket, its id, how many hold it), then each
/// holder's pid, fd and working directory, followed by its tree unless
/// `shown` (the pids printed so far) already holds it.
pub fn print_listener(
    out: &mut Out,
    table: &ProcessTable,
    listener: &Listener,
    shown: &mut HashSet<Pid>,
    detail: Detail,
) -> Result<(), Error> {
    let socket = &listener.socket;
    let both = if socket.local.is_ipv6() && socket.accepts_ipv4() {
        " (IPv4 too)"
    } else {
        ""
    };
    let uid = match socket.uid {
        Some(uid) if detail.owner => format!(", uid {uid}"),
        _ => String::new(),
    };
    out.plain(&format!(
        "{} {}{both}, socket {}{uid}, {} holder{}",
        socket.protocol,
        socket.local,
        socket.id,
        listener.holders.len(),
        if listener.holders.len() == 1 { "" } else { "s" }
    ))?;
    for holder in &listener.holders {
        let pid = holder.identity.pid();
        let Some(process) = table.get_identity(holder.identity) else {
            out.plain(&format!("  pid {pid} fd {} (exited since)", holder.fd))?;
            continue;
        };
        let cwd = process.cwd().path().map_or_else(
            || format!("{:?}", process.cwd()),
            |p| p.display().to_string(),
        );
        let line = format!("  pid {pid} fd {} in {cwd}", holder.fd);
        if detail.command {
            let prefix = format!("{line}: ");
            out.line(&prefix, prefix.chars().count(), &describe(process), None)?;
        } else {
            out.plain(&line)?;
        }
        if shown.contains(&pid) {
            continue;
        }
        if let Some(tree) = table.tree(pid) {
            print_header(out)?;
            let mut stack = vec![(&tree, 0_usize)];
            while let Some((node, depth)) = stack.pop() {
                shown.insert(node.process.pid());
                print_row(out, &node.process, depth)?;
                stack.extend(node.children.iter().rev().map(|child| (child, depth + 1)));
            }
        }
    }
    Ok(())
}

/// Warns about a port nobody listens on and about unreadable processes;
/// the first is exit code 1.
fn tell_what_is_missing(report: &PortReport, port: u16) -> Outcome {
    warn_not_permitted(report);
    if report.listeners.is_empty() {
        output::warn(&format!("nothing listens on port {port}"));
        Outcome::Partial
    } else {
        Outcome::Done
    }
}

/// Warns, on standard error, about processes whose open files could not be
/// read, and how to include them. Not an exit code of its own: what could be
/// read was shown.
pub fn warn_not_permitted(report: &PortReport) {
    if !report.not_permitted.is_empty() {
        output::warn(&format!(
            "the open files of {} processes could not be read ({})",
            report.not_permitted.len(),
            output::not_permitted_hint()
        ));
    }
}

pub fn kill(args: &KillArgs, port: u16, out: &mut Out) -> Result<Outcome, Error> {
    let mut table = ProcessTable::new()?;
    // Names, taken before the kill: afterwards the processes are gone.
    let names: HashMap<ProcessIdentity, String> =
        table.iter().map(|p| (p.identity(), describe(p))).collect();
    let name = |identity: &ProcessIdentity| {
        names
            .get(identity)
            .map_or("(started after the table was read)", String::as_str)
    };
    let kill = if args.grace.is_zero() {
        KillOptions::new()
    } else {
        KillOptions::graceful(args.grace)
    };
    let options = PortKillOptions::new().dry_run(args.dry_run).kill(kill);
    let done = PortFinder::open()?.kill_port(&mut table, port, &options)?;
    let mut outcome = tell_what_is_missing(&done.found, port);
    if !args.dry_run && !done.is_complete() {
        outcome = Outcome::Partial;
    }
    if args.json {
        out.json(&done)?;
        return Ok(outcome);
    }
    if args.dry_run {
        let mut refused_rows = 0;
        for (identity, reason) in &done.refused {
            let refused = KillOutcome::Refused(*reason);
            let tag = out.paint(Style::Bad, &format!("{:<TAG$}", refused.to_string()));
            member_line(
                out,
                &tag,
                identity.pid(),
                name(identity),
                refused.detail().as_deref(),
            )?;
            refused_rows += 1;
        }
        let mut would = 0;
        for tree in &done.trees {
            for member in &tree.members {
                let tag = out.paint(Style::Good, &format!("{:<TAG$}", "would kill"));
                member_line(out, &tag, member.pid(), name(member), None)?;
                would += 1;
            }
        }
        out.plain(&format!(
            "dry run: {would} would be killed, {refused_rows} refused; nothing was signalled"
        ))?;
        return Ok(outcome);
    }
    let mut counts = KillCounts::default();
    if let Some(report) = &done.kill {
        report_lines(
            out,
            report,
            &names,
            "(started after the table was read)",
            &mut counts,
        )?;
    }
    out.plain(&counts.to_string())?;
    Ok(outcome)
}
