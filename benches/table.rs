//! The process table against its anchors, on a population this bench builds
//! itself: 4 `sh` parents x 500 `sleep` children, plus one 10-process subtree
//! (a `sh` with 9 children) started in a directory of its own.
//!
//! ```text
//! cargo bench --bench table
//! ```
//!
//! Measured in one run, on the same processes:
//! - cold refresh: a new `ProcessTable` (stat + cmdline + cwd of every
//!   process) against a new sysinfo `System` refreshed once (default and
//!   tuned) and the procfs crate reading stat + cmdline + cwd;
//! - steady refresh: `ProcessTable::refresh` on a kept table against the raw
//!   floor (getdents, then openat + one read + close of every stat) and sysinfo
//!   `refresh_processes` on a kept `System`, default and tuned;
//! - descendants of the 10-process subtree: `ProcessTable::descendants`
//!   against what sysinfo-based code does per call: build a parent → children
//!   map from the full process list and walk it;
//! - cwd prefix: `ProcessTable::find_by_cwd_prefix` against filtering
//!   sysinfo's process list by `cwd().starts_with`.
//!
//! The closing table gives medians of interleaved rounds and their ratios.

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
    println!("the table bench reads /proc: it runs on Linux only");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::{HashMap, VecDeque};
    use std::hint::black_box;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use criterion::Criterion;
    use proctrack::Pid;
    use proctrack::table::ProcessTable;
    use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};

    use crate::floor::Floor;
    use crate::population::Population;

    const ROUNDS: usize = 41;
    const QUERY_ROUNDS: usize = 201;
    /// Calls per timed round for the sub-microsecond queries, so the clock's
    /// own cost does not dominate.
    const QUERY_BATCH: u32 = 100;

    pub fn main() {
        let big = Population::spawn(4, 500).expect("spawning the population");
        let subtree_dir = tempfile::tempdir().expect("a temp dir");
        let small = spawn_in(subtree_dir.path(), || Population::spawn(1, 9));
        let subtree_root = Pid::try_from(small.roots()[0].as_raw_nonzero().get()).expect("a pid");
        println!(
            "population: {} + {} extra processes; subtree root {subtree_root} in {}",
            big.len(),
            small.len(),
            subtree_dir.path().display()
        );

        let mut criterion = Criterion::default()
            .sample_size(15)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .configure_from_args();
        let mut summary = Vec::new();
        refresh_benches(&mut criterion, &mut summary);
        query_benches(
            &mut criterion,
            &mut summary,
            subtree_root,
            subtree_dir.path(),
        );
        criterion.final_summary();
        print_summary(&summary);

        let reaped = small.teardown().unwrap_or(0) + big.teardown().unwrap_or(0);
        println!("torn down: {reaped} processes reaped");
    }

    fn spawn_in(dir: &Path, spawn: impl FnOnce() -> std::io::Result<Population>) -> Population {
        let here = std::env::current_dir().expect("the current dir");
        std::env::set_current_dir(dir).expect("entering the subtree dir");
        let population = spawn();
        std::env::set_current_dir(here).expect("leaving the subtree dir");
        population.expect("spawning the subtree")
    }

    /// One measured variant: its name and one call of it (returning a count,
    /// so the work cannot be optimised away).
    type Variant<'a> = (&'static str, Box<dyn FnMut() -> usize + 'a>);

    /// Median of interleaved rounds, per variant: (group, variant, median).
    type Summary = Vec<(&'static str, &'static str, Duration)>;

    fn refresh_benches(criterion: &mut Criterion, summary: &mut Summary) {
        let tuned = ProcessRefreshKind::nothing()
            .with_cpu()
            .with_memory()
            .with_cmd(UpdateKind::OnlyIfNotSet)
            .with_cwd(UpdateKind::OnlyIfNotSet)
            .without_tasks();
        let mut table = ProcessTable::new().expect("a table");
        let mut floor = Floor::open();
        let mut sys_default = System::new().expect("sysinfo System");
        sys_default.refresh_processes(ProcessesToUpdate::All, true);
        let mut sys_tuned = System::new().expect("sysinfo System");
        sys_tuned.refresh_processes_specifics(ProcessesToUpdate::All, true, tuned);

        let mut cold: Vec<Variant<'static>> = vec![
            (
                "proctrack_table_new",
                Box::new(|| ProcessTable::new().map_or(0, |t| t.len())),
            ),
            (
                "procfs_stat_cmdline_cwd",
                Box::new(|| {
                    procfs::process::all_processes().map_or(0, |all| {
                        all.filter_map(Result::ok)
                            .filter(|p| p.stat().is_ok() && p.cmdline().is_ok() && p.cwd().is_ok())
                            .count()
                    })
                }),
            ),
            (
                "sysinfo_default_new",
                Box::new(|| {
                    let mut sys = System::new().expect("sysinfo System");
                    sys.refresh_processes(ProcessesToUpdate::All, true);
                    sys.processes().len()
                }),
            ),
            (
                "sysinfo_tuned_new",
                Box::new(move || {
                    let mut sys = System::new().expect("sysinfo System");
                    sys.refresh_processes_specifics(ProcessesToUpdate::All, true, tuned);
                    sys.processes().len()
                }),
            ),
        ];
        run_group(criterion, summary, "cold_refresh", &mut cold, ROUNDS, 1);

        let mut steady: Vec<Variant<'_>> = vec![
            ("floor_stat", Box::new(|| floor.scan())),
            (
                "proctrack_table_refresh",
                Box::new(|| table.refresh().map_or(0, |_| table.len())),
            ),
            (
                "sysinfo_default_refresh",
                Box::new(|| sys_default.refresh_processes(ProcessesToUpdate::All, true)),
            ),
            (
                "sysinfo_tuned_refresh",
                Box::new(|| {
                    sys_tuned.refresh_processes_specifics(ProcessesToUpdate::All, true, tuned)
                }),
            ),
        ];
        run_group(criterion, summary, "steady_refresh", &mut steady, ROUNDS, 1);
    }

    fn query_benches(criterion: &mut Criterion, summary: &mut Summary, root: Pid, dir: &Path) {
        let table = ProcessTable::new().expect("a table");
        let mut sys = System::new().expect("sysinfo System");
        sys.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing()
                .with_cwd(UpdateKind::Always)
                .without_tasks(),
        );
        let sys_root = sysinfo::Pid::from_u32(root.as_u32());
        assert_eq!(table.descendants(root).len(), 9);
        assert_eq!(sysinfo_descendants(&sys, sys_root), 9);
        let dir: PathBuf = dir.to_path_buf();
        assert_eq!(table.find_by_cwd_prefix(&dir).len(), 10);

        let mut descendants: Vec<Variant<'_>> = vec![
            (
                "proctrack_descendants",
                Box::new(|| table.descendants(root).len()),
            ),
            (
                "sysinfo_map_and_walk",
                Box::new(|| sysinfo_descendants(&sys, sys_root)),
            ),
        ];
        run_group(
            criterion,
            summary,
            "descendants_10",
            &mut descendants,
            QUERY_ROUNDS,
            QUERY_BATCH,
        );

        let mut cwd: Vec<Variant<'_>> = vec![
            (
                "proctrack_find_by_cwd_prefix",
                Box::new(|| table.find_by_cwd_prefix(&dir).len()),
            ),
            (
                "sysinfo_filter_cwd",
                Box::new(|| {
                    sys.processes()
                        .values()
                        .filter(|p| p.cwd().is_some_and(|cwd| cwd.starts_with(&dir)))
                        .count()
                }),
            ),
        ];
        run_group(
            criterion,
            summary,
            "cwd_prefix",
            &mut cwd,
            QUERY_ROUNDS,
            QUERY_BATCH,
        );
    }

    /// What code built on sysinfo does to find a subtree: sysinfo keeps no
    /// children index, so every call builds one from the full list.
    fn sysinfo_descendants(sys: &System, root: sysinfo::Pid) -> usize {
        let mut children: HashMap<sysinfo::Pid, Vec<sysinfo::Pid>> = HashMap::new();
        for (pid, process) in sys.processes() {
            if let Some(parent) = process.parent() {
                children.entry(parent).or_default().push(*pid);
            }
        }
        let mut count = 0;
        let mut queue = VecDeque::from([root]);
        while let Some(pid) = queue.pop_front() {
            for child in children.get(&pid).into_iter().flatten() {
                count += 1;
                queue.push_back(*child);
            }
        }
        count
    }

    /// Criterion per variant, then interleaved rounds (`batch` calls of each
    /// variant per round) whose medians feed the ratio table: interleaving
    /// keeps a change in machine load from landing on one variant only.
    fn run_group<'a>(
        criterion: &mut Criterion,
        summary: &mut Summary,
        name: &'static str,
        variants: &mut [Variant<'a>],
        rounds: usize,
        batch: u32,
    ) {
        {
            let mut group = criterion.benchmark_group(name);
            for (variant, run) in variants.iter_mut() {
                group.bench_function(*variant, |b| b.iter(|| black_box(run())));
            }
            group.finish();
        }
        let mut times = vec![Vec::with_capacity(rounds); variants.len()];
        for _ in 0..rounds {
            for (i, (_, run)) in variants.iter_mut().enumerate() {
                let start = Instant::now();
                for _ in 0..batch {
                    black_box(run());
                }
                times[i].push(start.elapsed() / batch);
            }
        }
        for ((variant, _), mut samples) in variants.iter().zip(times) {
            samples.sort_unstable();
            summary.push((name, *variant, samples[samples.len() / 2]));
        }
    }

    fn print_summary(summary: &Summary) {
        println!(
            "\n{:<16} {:<30} {:>12} {:>10}",
            "group", "variant", "median", "ratio"
        );
        let mut base: Option<(&str, Duration)> = None;
        for (group, variant, median) in summary {
            // The first variant of each group is its baseline.
            if base.is_none_or(|(g, _)| g != *group) {
                base = Some((group, *median));
            }
            let ratio = base.map_or(f64::NAN, |(_, b)| median.as_secs_f64() / b.as_secs_f64());
            println!("{group:<16} {variant:<30} {:>12.3?} {ratio:>9.2}x", median);
        }
    }
}
