//! `proctrack watch`: what started, ran a new program and exited, every
//! interval, from the differences between two refreshes of the table.

use std::collections::HashMap;

use proctrack::table::{ProcessTable, Reparented};
use proctrack::{ProcessIdentity, ProcessInfo};
use serde::Serialize;

use crate::args::WatchArgs;
use crate::list::describe;
use crate::output::{Out, Style};
use crate::{Error, Outcome};

/// How many of the busiest processes a look names.
const BUSIEST: usize = 5;

/// One look, as `watch --json` prints it (one object per line).
#[derive(Serialize)]
struct Look<'a> {
    /// Processes in the table after this look.
    processes: usize,
    spawned: Vec<&'a ProcessInfo>,
    execed: Vec<&'a ProcessInfo>,
    /// As they were last seen.
    exited: Vec<&'a ProcessInfo>,
    reparented: &'a [Reparented],
    /// Processes that could not be read, and why.
    errors: Vec<String>,
    /// Up to five processes with the most CPU since the last look, busiest first.
    busiest: Vec<Busy<'a>>,
}

#[derive(Serialize)]
struct Busy<'a> {
    identity: ProcessIdentity,
    name: std::borrow::Cow<'a, str>,
    /// Percent of one CPU (up to 100 × threads).
    cpu_percent: f32,
}

pub fn run(args: &WatchArgs, out: &mut Out) -> Result<Outcome, Error> {
    let mut table = ProcessTable::new()?;
    if !args.json {
        out.plain(&format!("watching {} processes", table.len()))?;
        out.flush()?;
    }
    let mut look = 0;
    while args.count.is_none_or(|count| look < count) {
        look += 1;
        std::thread::sleep(args.interval);
        // Exited processes leave the table: keep them as last seen.
        let before: HashMap<ProcessIdentity, ProcessInfo> =
            table.iter().map(|p| (p.identity(), p.clone())).collect();
        let diff = table.refresh()?;
        let current = |identities: &[ProcessIdentity]| -> Vec<&ProcessInfo> {
            identities
                .iter()
                .filter_map(|identity| table.get_identity(*identity))
                .collect()
        };
        let mut busiest: Vec<Busy> = table
            .iter()
            .filter_map(|p| {
                p.cpu_percent().map(|cpu_percent| Busy {
                    identity: p.identity(),
                    name: p.name().to_string_lossy(),
                    cpu_percent,
                })
            })
            .filter(|busy| busy.cpu_percent > 0.0)
            .collect();
        busiest.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent));
        busiest.truncate(BUSIEST);
        let look = Look {
            processes: table.len(),
            spawned: current(&diff.spawned),
            execed: current(&diff.execed),
            exited: diff
                .exited
                .iter()
                .filter_map(|identity| before.get(identity))
                .collect(),
            reparented: &diff.reparented,
            errors: diff.errors.iter().map(ToString::to_string).collect(),
            busiest,
        };
        if args.json {
            out.json_line(&look)?;
        } else {
            print_look(out, &look)?;
            out.flush()?;
        }
    }
    Ok(Outcome::Done)
}

fn print_look(out: &mut Out, look: &Look) -> Result<(), Error> {
    let event = |out: &mut Out, mark: &str, style: Option<Style>, process: &ProcessInfo| {
        let mark = match style {
            Some(style) => out.paint(style, mark),
            None => mark.to_owned(),
        };
        let prefix = format!("{mark} {:>7}  ", process.pid());
        out.line(&prefix, 1 + 1 + 7 + 2, &describe(process), None)
    };
    for process in &look.spawned {
        event(out, "+", Some(Style::Good), process)?;
    }
    for process in &look.execed {
        event(out, "~", None, process)?;
    }
    for process in &look.exited {
        event(out, "-", Some(Style::Bad), process)?;
    }
    for error in &look.errors {
        out.line("! ", 2, error, None)?;
    }
    let busiest = if look.busiest.is_empty() {
        "nothing used the CPU".to_owned()
    } else {
        look.busiest
            .iter()
            .map(|busy| format!("{} {:.1}%", busy.name, busy.cpu_percent))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let summary = format!("[{} processes] busiest: {busiest}", look.processes);
    let summary = out.paint(Style::Dim, &summary);
    out.plain(&summary)?;
    Ok(())
}
