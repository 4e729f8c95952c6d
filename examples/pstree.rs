//! Prints the live process tree, like `ps -ef --forest`: pid, resident memory,
//! name and arguments, children indented under their parent.
//!
//! ```text
//! cargo run --release --example pstree
//! ```

use std::io::{self, Write};

use proctrack::table::ProcessTable;
use proctrack::{Pid, ProcessInfo};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The table is the model: its roots (processes without a trusted parent)
    // and children give the whole system's tree.
    let table = ProcessTable::new()?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    writeln!(out, "{:>7} {:>7} {:>9}  COMMAND", "PID", "PPID", "RSS")?;
    // Depth-first with an explicit stack: trees can be deeper than the call stack.
    let mut stack: Vec<(&ProcessInfo, usize)> =
        table.roots().into_iter().rev().map(|p| (p, 0)).collect();
    while let Some((process, depth)) = stack.pop() {
        print_row(&mut out, process, depth)?;
        let children = table.children(process.pid());
        stack.extend(children.into_iter().rev().map(|kid| (kid, depth + 1)));
    }
    out.flush()?;
    Ok(())
}

fn print_row(out: &mut impl Write, process: &ProcessInfo, depth: usize) -> io::Result<()> {
    let ppid = process.parent().map_or(0, Pid::as_raw);
    let indent = "  ".repeat(depth);
    let branch = if depth > 0 { "\\_ " } else { "" };
    // Kernel threads and zombies have no arguments: show the name in brackets, as ps does.
    let command = if process.cmdline().is_empty() {
        format!("[{}]", process.name().to_string_lossy())
    } else {
        process.cmdline().to_string()
    };
    writeln!(
        out,
        "{:>7} {:>7} {:>9}  {indent}{branch}{}",
        process.pid(),
        ppid,
        human_bytes(process.rss_bytes()),
        command.replace('\n', "\\n"),
    )
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "K", "M", "G"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}
