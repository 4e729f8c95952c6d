//! `proctrack watch`: processes as they start, run a new program and exit,
//! from the library's event tracker (the kernel's proc connector, or polling
//! where that is not allowed), with exit codes.

use std::time::Duration;

use proctrack::events::{Event, EventKind, Exit, Origin, Scope, Tracker, TrackerOptions};
use proctrack::{ProcessIdentity, ProcessInfo, SystemSource};
use serde::Serialize;

use crate::args::WatchArgs;
use crate::list::describe;
use crate::output::{Out, Style};
use crate::{Error, Outcome};

/// The shortest polling interval: `--interval 0` must not spin.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// One event, as `watch --json` prints it (one object per line).
#[derive(Serialize)]
struct Line<'a> {
    /// `spawned`, `exec`, `exited`, `renamed` or `new_session`.
    event: &'static str,
    pid: u32,
    /// `kernel`, `resync` (found after lost events) or `poll`.
    origin: &'static str,
    /// Set when the process exited with a code.
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    /// Set when a signal ended the process.
    #[serde(skip_serializing_if = "Option::is_none")]
    signal: Option<i32>,
    /// The process's identity, when it was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<ProcessIdentity>,
    /// The process as the table holds it now (absent for exits).
    #[serde(skip_serializing_if = "Option::is_none")]
    process: Option<&'a ProcessInfo>,
}

pub fn run(args: &WatchArgs, out: &mut Out) -> Result<Outcome, Error> {
    let scope = args.pid.map_or(Scope::All, Scope::Subtree);
    let options = TrackerOptions::default().poll_interval(args.interval.max(MIN_INTERVAL));
    let mut tracker = Tracker::with_source(SystemSource::open()?, scope, options)?;
    let header = format!(
        "watching {} processes; events from {}",
        tracker.table().len(),
        tracker.probe()
    );
    if args.json {
        // Stdout is for events only; the header still tells a reader (or a
        // test) that the tracker listens.
        eprintln!("{header}");
    } else {
        out.plain(&header)?;
        out.flush()?;
    }
    let mut seen = 0;
    while args.count.is_none_or(|count| seen < count) {
        let Some(event) = tracker.wait_event(None)? else {
            continue;
        };
        seen += 1;
        if args.json {
            out.json_line(&line(&tracker, &event))?;
        } else {
            print_event(out, &tracker, &event)?;
            out.flush()?;
        }
        if let (Some(root), EventKind::Exited { pid, .. }) = (args.pid, event.kind)
            && pid == root
        {
            break;
        }
    }
    Ok(Outcome::Done)
}

fn line<'a>(tracker: &'a Tracker, event: &Event) -> Line<'a> {
    let (name, pid, identity, exit) = match event.kind {
        EventKind::Spawned { process, .. } => ("spawned", process.pid(), Some(process), None),
        EventKind::Exec { process } => ("exec", process.pid(), Some(process), None),
        EventKind::Exited { pid, process, exit } => ("exited", pid, process, Some(exit)),
        EventKind::Renamed { process } => ("renamed", process.pid(), Some(process), None),
        EventKind::NewSession { process } => ("new_session", process.pid(), Some(process), None),
        _ => ("other", proctrack::Pid::current(), None, None),
    };
    Line {
        event: name,
        pid: pid.as_u32(),
        origin: match event.origin {
            Origin::Kernel => "kernel",
            Origin::Resync => "resync",
            Origin::Poll => "poll",
        },
        exit_code: match exit {
            Some(Exit::Code(code)) => Some(code),
            _ => None,
        },
        signal: match exit {
            Some(Exit::Signal(signal)) => Some(signal),
            _ => None,
        },
        identity,
        process: identity.and_then(|identity| tracker.table().get_identity(identity)),
    }
}

fn print_event(out: &mut Out, tracker: &Tracker, event: &Event) -> Result<(), Error> {
    let row = |identity: ProcessIdentity| tracker.table().get_identity(identity);
    let (mark, style, pid, text) = match event.kind {
        EventKind::Spawned { process, .. } => (
            "+",
            Some(Style::Good),
            process.pid(),
            row(process).map(describe),
        ),
        EventKind::Exec { process } => ("~", None, process.pid(), row(process).map(describe)),
        EventKind::Exited { pid, exit, .. } => {
            let text = match exit {
                Exit::Code(code) => format!("exit code {code}"),
                Exit::Signal(signal) => format!("killed by signal {signal}"),
                _ => "exited".to_owned(),
            };
            ("-", Some(Style::Bad), pid, Some(text))
        }
        EventKind::Renamed { process } => (
            "=",
            None,
            process.pid(),
            row(process).map(|p| format!("renamed to {}", p.name().to_string_lossy())),
        ),
        EventKind::NewSession { process } => (
            "s",
            None,
            process.pid(),
            row(process).map(|p| format!("new session: {}", describe(p))),
        ),
        _ => return Ok(()),
    };
    let mark = match style {
        Some(style) => out.paint(style, mark),
        None => mark.to_owned(),
    };
    let mut text = text.unwrap_or_default();
    if event.origin == Origin::Resync {
        text.push_str("  [found by a resync after lost events]");
    }
    let prefix = format!("{mark} {pid:>7}  ");
    out.line(&prefix, 1 + 1 + 7 + 2, &text, None)?;
    Ok(())
}
