//! Watches the system: every second, prints the processes that started,
//! exited or ran a new program since the last look, and the busiest ones.
//!
//! ```text
//! cargo run --release --example watch            # until Ctrl-C
//! cargo run --release --example watch -- 5       # five rounds, then exit
//! ```

use std::time::Duration;

use proctrack::table::ProcessTable;
use proctrack::{ProcessIdentity, ProcessInfo};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: Option<u64> = std::env::args().nth(1).map(|n| n.parse()).transpose()?;
    let mut table = ProcessTable::new()?;
    println!("watching {} processes", table.len());
    let mut round = 0;
    while rounds.is_none_or(|limit| round < limit) {
        round += 1;
        std::thread::sleep(Duration::from_secs(1));
        // Exited processes are gone from the table: describe them before refreshing.
        let before: Vec<(ProcessIdentity, String)> =
            table.iter().map(|p| (p.identity(), describe(p))).collect();
        let diff = table.refresh()?;
        for identity in &diff.spawned {
            if let Some(process) = table.get_identity(*identity) {
                println!("+ {:>7} {}", identity.pid(), describe(process));
            }
        }
        for identity in &diff.execed {
            if let Some(process) = table.get_identity(*identity) {
                println!("~ {:>7} {}", identity.pid(), describe(process));
            }
        }
        for identity in &diff.exited {
            let what = before
                .iter()
                .find(|(id, _)| id == identity)
                .map_or("", |(_, d)| d);
            println!("- {:>7} {what}", identity.pid());
        }
        for error in &diff.errors {
            println!("! {error}");
        }
        let mut busiest: Vec<(f32, &ProcessInfo)> = table
            .iter()
            .filter_map(|p| p.cpu_percent().map(|cpu| (cpu, p)))
            .filter(|(cpu, _)| *cpu > 0.0)
            .collect();
        busiest.sort_by(|a, b| b.0.total_cmp(&a.0));
        let top: Vec<String> = busiest
            .iter()
            .take(5)
            .map(|(cpu, p)| format!("{} {:.1}%", p.name().to_string_lossy(), cpu))
            .collect();
        println!("[{} processes] busiest: {}", table.len(), top.join(", "));
    }
    Ok(())
}

fn describe(process: &ProcessInfo) -> String {
    let text = if process.cmdline().is_empty() {
        format!("[{}]", process.name().to_string_lossy())
    } else {
        process.cmdline().to_string()
    };
    // One line per event: long command lines are cut.
    match text.char_indices().nth(100) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}
