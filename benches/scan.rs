//! Cost of one full scan of every process, on a population this bench builds
//! itself (4 `sh` parents x 500 `sleep` children = 2004 extra processes).
//!
//! ```text
//! cargo bench --bench scan
//! ```
//!
//! Variants, all on the same population in one run:
//! - `floor_stat`: the raw-syscall floor: getdents on one /proc fd, then for
//!   each pid openat("<pid>/stat") + one read into a reused buffer + close.
//!   No parsing.
//! - `proctrack_stat`: `SystemSource::list_pids` + `SystemSource::stat` per pid.
//! - `proctrack_full`: `SystemSource::processes` (stat + cmdline + cwd).
//! - `procfs_stat`, `procfs_full`: the procfs crate, stat only and stat +
//!   cmdline + cwd.
//! - `sysinfo_default`: sysinfo's `refresh_processes` on a kept `System`.
//! - `sysinfo_tuned`: sysinfo told to read cpu, memory, and cmd/cwd only if not
//!   yet set, without threads.
//!
//! At the end a table gives each variant's median against the floor.

#[cfg(target_os = "linux")]
mod floor;
#[cfg(target_os = "linux")]
mod population;

#[cfg(target_os = "linux")]
fn main() {
    linux::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("the scan bench reads /proc: it runs on Linux only");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::hint::black_box;
    use std::time::{Duration, Instant};

    use criterion::{Criterion, SamplingMode};
    use proctrack::{Error, Pid, SystemSource};
    use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

    use crate::floor::Floor;
    use crate::population::Population;

    const PARENTS: usize = 4;
    const CHILDREN_PER_PARENT: usize = 500;
    const SAMPLES: usize = 20;
    /// Rounds of the interleaved summary loop; one round scans once per variant.
    const ROUNDS: usize = 25;

    /// One full scan; returns how many processes it saw.
    type Scan<'a> = Box<dyn FnMut() -> usize + 'a>;

    /// One variant's results: criterion's median, and the median of the
    /// interleaved summary loop.
    struct Row {
        name: &'static str,
        criterion: Option<Duration>,
        interleaved: Option<Duration>,
        processes: usize,
    }

    pub fn main() {
        let population =
            Population::spawn(PARENTS, CHILDREN_PER_PARENT).expect("start the population");
        println!("population: {} extra processes", population.len());

        let mut floor = Floor::open();
        let mut stat_reader = SystemSource::open().expect("open /proc");
        let mut full_reader = SystemSource::open().expect("open /proc");
        let mut pids = Vec::new();
        // Kept `System`s, refreshed once so the measured refreshes are steady.
        let mut default_system = System::new().expect("sysinfo System");
        default_system.refresh_processes(ProcessesToUpdate::All, true);
        let tuned = ProcessRefreshKind::nothing()
            .with_cpu()
            .with_memory()
            .with_cmd(UpdateKind::OnlyIfNotSet)
            .with_cwd(UpdateKind::OnlyIfNotSet)
            .without_tasks();
        let mut tuned_system = System::new().expect("sysinfo System");
        tuned_system.refresh_processes_specifics(ProcessesToUpdate::All, true, tuned);

        let mut variants: Vec<(&'static str, Scan<'_>)> = vec![
            ("floor_stat", Box::new(|| floor.scan())),
            (
                "proctrack_stat",
                Box::new(|| proctrack_stat(&mut stat_reader, &mut pids)),
            ),
            (
                "proctrack_full",
                Box::new(|| full_reader.processes().expect("scan").len()),
            ),
            ("procfs_stat", Box::new(|| procfs_scan(false))),
            ("procfs_full", Box::new(|| procfs_scan(true))),
            (
                "sysinfo_default",
                Box::new(|| default_system.refresh_processes(ProcessesToUpdate::All, true)),
            ),
            (
                "sysinfo_tuned",
                Box::new(|| {
                    tuned_system.refresh_processes_specifics(ProcessesToUpdate::All, true, tuned)
                }),
            ),
        ];

        let mut criterion = Criterion::default()
            .sample_size(SAMPLES)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .configure_from_args();
        let mut rows: Vec<Row> = variants
            .iter_mut()
            .filter_map(|(name, scan)| measure(&mut criterion, name, scan))
            .collect();
        criterion.final_summary();

        // Criterion runs the groups one after another, so a change in machine
        // load between groups skews their ratios. The summary also times the
        // variants in turn, one scan each per round, and compares those medians.
        // Only under `cargo bench` (criterion passes --bench), not in test mode.
        if std::env::args().any(|arg| arg == "--bench") {
            interleave(&mut variants, &mut rows);
        }
        drop(variants);
        print_table(&rows);
        match population.teardown() {
            Ok(reaped) => println!("population: {reaped} processes killed and reaped"),
            Err(err) => panic!("population teardown failed: {err}"),
        }
    }

    /// Runs one criterion group on `scan` and returns the median of its
    /// samples (criterion's own measurements, through `iter_custom`); `None`
    /// when the group was filtered out on the command line.
    fn measure(criterion: &mut Criterion, name: &'static str, scan: &mut Scan<'_>) -> Option<Row> {
        let mut per_scan = Vec::new();
        let mut processes = 0;
        let mut group = criterion.benchmark_group(name);
        // One scan takes tens of milliseconds: equal iteration counts per sample.
        group.sampling_mode(SamplingMode::Flat);
        group.bench_function("all", |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    processes = black_box(scan());
                }
                let elapsed = start.elapsed();
                per_scan.push(elapsed / iters.max(1) as u32);
                elapsed
            })
        });
        group.finish();
        // Warm-up calls come first; the last SAMPLES calls are the samples.
        let samples = per_scan.split_off(per_scan.len().saturating_sub(SAMPLES));
        Some(Row {
            name,
            criterion: Some(median(samples)?),
            interleaved: None,
            processes,
        })
    }

    /// Times each measured variant once per round, ROUNDS rounds.
    fn interleave(variants: &mut [(&'static str, Scan<'_>)], rows: &mut [Row]) {
        let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(ROUNDS); rows.len()];
        for _ in 0..ROUNDS {
            for (row, row_times) in rows.iter_mut().zip(&mut times) {
                let scan = &mut variants
                    .iter_mut()
                    .find(|(name, _)| *name == row.name)
                    .expect("a measured variant")
                    .1;
                let start = Instant::now();
                row.processes = black_box(scan());
                row_times.push(start.elapsed());
            }
        }
        for (row, row_times) in rows.iter_mut().zip(times) {
            row.interleaved = median(row_times);
        }
    }

    fn median(mut samples: Vec<Duration>) -> Option<Duration> {
        samples.sort();
        samples.get(samples.len() / 2).copied()
    }

    fn print_table(rows: &[Row]) {
        let ratio = |row: &Row, base: &str, pick: fn(&Row) -> Option<Duration>| {
            let base = rows.iter().find(|r| r.name == base).and_then(pick);
            match (pick(row), base) {
                (Some(a), Some(b)) => format!("{:.2}", a.as_secs_f64() / b.as_secs_f64()),
                _ => "-".to_string(),
            }
        };
        let ms = |d: Option<Duration>| {
            d.map_or("-".to_string(), |d| {
                format!("{:.2} ms", d.as_secs_f64() * 1e3)
            })
        };
        // procfs doing the same work: stat only, or stat + cmdline + cwd.
        let procfs_peer = |row: &Row| match row.name {
            "sysinfo_default" | "sysinfo_tuned" => "",
            name if name.ends_with("_full") => "procfs_full",
            _ => "procfs_stat",
        };
        let criterion = |row: &Row| row.criterion;
        let interleaved = |row: &Row| row.interleaved;
        println!();
        println!(
            "{:<16} {:>6} {:>10} {:>11} {:>8} {:>8} {:>10} {:>12} {:>8}",
            "variant",
            "procs",
            "median",
            "per process",
            "x floor",
            "x procfs",
            "x sysinfo",
            "interleaved",
            "x floor"
        );
        for row in rows {
            let per_process = row.criterion.map_or("-".to_string(), |d| {
                format!(
                    "{:.2} us",
                    d.as_secs_f64() * 1e6 / row.processes.max(1) as f64
                )
            });
            println!(
                "{:<16} {:>6} {:>10} {:>11} {:>8} {:>8} {:>10} {:>12} {:>8}",
                row.name,
                row.processes,
                ms(row.criterion),
                per_process,
                ratio(row, "floor_stat", criterion),
                ratio(row, procfs_peer(row), criterion),
                ratio(row, "sysinfo_default", criterion),
                ms(row.interleaved),
                ratio(row, "floor_stat", interleaved),
            );
        }
        println!("median: criterion's median of one full scan (its samples)");
        println!(
            "x procfs: against procfs doing the same reads; x sysinfo: against sysinfo_default"
        );
        println!("interleaved: median of {ROUNDS} rounds that scan once with each variant in turn");
    }

    fn proctrack_stat(reader: &mut SystemSource, pids: &mut Vec<Pid>) -> usize {
        reader.list_pids(pids).expect("list pids");
        let mut read = 0;
        for &pid in pids.iter() {
            match reader.stat(pid) {
                Ok(stat) => {
                    black_box(stat.starttime);
                    read += 1;
                }
                Err(Error::NotFound { .. }) => {}
                Err(err) => panic!("stat {pid}: {err}"),
            }
        }
        read
    }

    fn procfs_scan(full: bool) -> usize {
        let mut read = 0;
        // Streamed: each procfs Process holds an fd, collecting 2000 would not fit RLIMIT_NOFILE.
        for process in procfs::process::all_processes().expect("procfs") {
            let Ok(process) = process else { continue };
            let Ok(stat) = process.stat() else { continue };
            black_box(stat);
            if full {
                black_box(process.cmdline().ok());
                black_box(process.cwd().ok());
            }
            read += 1;
        }
        read
    }
}
