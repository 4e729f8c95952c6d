//! `proctrack ports`: every listening socket with every holder.

use std::collections::HashSet;

use proctrack::Pid;
use proctrack::ports::{Listener, PortFinder, Protocol};
use proctrack::table::{ProcessTable, ProcessTree};
use serde::Serialize;

use crate::args::PortsArgs;
use crate::output::{self, Out};
use crate::port::{Detail, holder_trees, print_listener, warn_not_permitted};
use crate::{Error, Outcome};

/// `ports --json`.
#[derive(Serialize)]
struct PortsJson<'a> {
    /// By protocol, port, address, then socket id.
    listeners: &'a [Listener],
    /// Processes whose open files could not be read (other users').
    not_permitted: &'a [Pid],
    /// Each holder with everything under it.
    trees: Vec<ProcessTree>,
}

/// Each socket's owner, and each holder's command on its own line: a holder
/// is often in a tree printed for another socket.
const DETAIL: Detail = Detail {
    owner: true,
    command: true,
};

pub fn show(args: &PortsArgs, out: &mut Out) -> Result<Outcome, Error> {
    let mut finder = PortFinder::open()?;
    let report = if args.tcp {
        finder.protocol_listeners(Protocol::Tcp)?
    } else if args.udp {
        finder.protocol_listeners(Protocol::Udp)?
    } else {
        finder.listeners()?
    };
    let table = ProcessTable::new()?;
    warn_not_permitted(&report);
    if args.json {
        out.json(&PortsJson {
            listeners: &report.listeners,
            not_permitted: &report.not_permitted,
            trees: holder_trees(&report, &table),
        })?;
        return Ok(Outcome::Done);
    }
    // A holder inside a tree already shown is not shown again.
    let mut shown = HashSet::new();
    for listener in &report.listeners {
        print_listener(out, &table, listener, &mut shown, DETAIL)?;
        if listener.holders.is_empty() {
            let why = if report.not_permitted.is_empty() {
                "held by a process outside this pid namespace, or it exited since".to_owned()
            } else {
                format!(
                    "likely among the {} processes that could not be read ({})",
                    report.not_permitted.len(),
                    output::not_permitted_hint()
                )
            };
            out.plain(&format!("  no holder found: {why}"))?;
        }
    }
    if report.listeners.is_empty() {
        let what = match (args.tcp, args.udp) {
            (true, _) => "no TCP socket listens",
            (_, true) => "no UDP socket is bound",
            _ => "no socket listens",
        };
        output::warn(&format!("{what} in this network namespace"));
    }
    Ok(Outcome::Done)
}
