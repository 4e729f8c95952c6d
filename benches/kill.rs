//! `kill_tree` of a 50-process tree, with and without ~2000 unrelated
//! processes on the system, in one run: the kill reads the tree's members
//! through `/proc/<pid>/task/*/children`, so its cost should not grow with
//! the system. The ratio of the two medians is the figure (target <= 1.3).
//!
//! Each sample spawns a fresh tree (a shell with 49 `sleep` children, not
//! timed), then times one `kill_tree` of it, which also reaps every member:
//! the bench is a child subreaper, so nothing is left behind, and a tree that
//! a panic leaves is killed from `Drop`.
//!
//! A third row kills a parent with 5000 children (a shell's `sleep`s,
//! spawned untimed): its
//! `task/<tid>/children` file is ~30 KB, read to its end (issue 18: a single
//! read returns 682 of them), so the cost of the whole list is in the figure;
//! a fourth times that list's read alone, on a standing parent.
//!
//! A fifth kills a chain as many processes deep (each level an `sh` started
//! by the one above, which then waits) whose tip keeps starting new levels
//! while the kill runs: the hostile shape whose settle used to cost depth x
//! size. Its median over the wide parent's is the figure (target <= 2).
//! Every member is a small `sh` or `sleep`: forks of this large process
//! would each copy its page tables (5000 of them take gigabytes).

#[cfg(target_os = "linux")]
mod population;

#[cfg(target_os = "linux")]
fn main() {
    linux::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("the kill bench needs Linux");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use criterion::{Criterion, SamplingMode};
    use proctrack::signal::{KillOptions, ProcessHandle, kill_tree};
    use proctrack::table::ProcessTable;
    use proctrack::{ProcessIdentity, ProcessSource};

    use crate::population::Population;

    const TREE: usize = 50;
    /// Children of the wide parent of the third row.
    const WIDE: usize = 5000;

    /// A chain: each level runs the next under `sh` and waits; the level at
    /// depth `$2` says `ready`, and the tip goes on growing the chain at the
    /// pace of a fork and an exec a level, up to depth `$3`, so it still
    /// forks while the kill runs. Every level is a small `sh`.
    const CHAIN: &str = r#"if [ "$1" -eq "$2" ]; then echo ready; fi
if [ "$1" -lt "$3" ]; then sh -c "$CHAIN" chain $(($1 + 1)) "$2" "$3" & wait; else exec sleep 100000; fi"#;

    /// A tree spawned by `sh` that says `ready` once it stands; killed (and
    /// reaped) on drop if the bench did not kill it.
    struct Tree {
        root: ProcessIdentity,
        killed: bool,
    }

    impl Tree {
        /// A shell with `children - 1` sleeping children.
        fn flat(children: usize) -> Tree {
            Tree::spawn(Command::new("sh").args([
                "-c",
                &format!(
                    "i=1; while [ $i -lt {children} ]; do sleep 100000 </dev/null >/dev/null & i=$((i+1)); done; echo ready; wait"
                ),
            ]))
        }

        /// A chain `depth` deep, still growing (up to twice as deep).
        fn chain(depth: usize) -> Tree {
            let (depth, cap) = (depth.to_string(), (2 * depth).to_string());
            Tree::spawn(
                Command::new("sh")
                    .args(["-c", CHAIN, "chain", "0", &depth, &cap])
                    .env("CHAIN", CHAIN),
            )
        }

        fn spawn(command: &mut Command) -> Tree {
            let mut child = command
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn the tree");
            let root = ProcessHandle::from_child(&child).expect("pin").identity();
            let mut line = String::new();
            BufReader::new(child.stdout.take().expect("stdout"))
                .read_line(&mut line)
                .expect("ready");
            assert_eq!(line.trim(), "ready");
            // The kill reaps the root: `child` must not wait for it.
            std::mem::forget(child);
            Tree {
                root,
                killed: false,
            }
        }

        /// Kills the tree, which must count at least `members`, and returns
        /// how long that took.
        fn kill(mut self, table: &mut ProcessTable, members: usize) -> Duration {
            let start = Instant::now();
            let report = kill_tree(table, self.root, &KillOptions::new()).expect("kill_tree");
            let took = start.elapsed();
            self.killed = true;
            assert!(report.is_complete(), "{report}");
            assert!(
                report.killed.len() >= members,
                "{} killed",
                report.killed.len()
            );
            took
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            if !self.killed {
                if let Ok(mut table) = ProcessTable::new() {
                    let _ = kill_tree(&mut table, self.root, &KillOptions::new());
                }
            }
        }
    }

    fn measure(criterion: &mut Criterion, name: &str, samples: &mut Vec<Duration>) {
        let mut table = ProcessTable::new().expect("a table");
        criterion.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let took = Tree::flat(TREE).kill(&mut table, TREE);
                    samples.push(took);
                    total += took;
                }
                total
            })
        });
    }

    fn median(samples: &mut [Duration]) -> Duration {
        samples.sort_unstable();
        samples[samples.len() / 2]
    }

    pub fn main() {
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .expect("become a child subreaper");
        let mut criterion = Criterion::default()
            .sample_size(20)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(3))
            .configure_from_args();
        let mut alone = Vec::new();
        measure(&mut criterion, "kill_tree_50/alone", &mut alone);
        let crowd = Population::spawn(4, 500).expect("spawning the population");
        println!("population: {} unrelated processes", crowd.len());
        let mut crowded = Vec::new();
        measure(
            &mut criterion,
            "kill_tree_50/with_2000_unrelated",
            &mut crowded,
        );
        let reaped = crowd.teardown().unwrap_or(0);
        let mut wide = Vec::new();
        let mut chain = Vec::new();
        {
            let mut table = ProcessTable::new().expect("a table");
            let mut group = criterion.benchmark_group("kill_tree_wide");
            group.sample_size(10).sampling_mode(SamplingMode::Flat);
            group.bench_function(format!("{WIDE}_children"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let took = Tree::flat(WIDE + 1).kill(&mut table, WIDE + 1);
                        wide.push(took);
                        total += took;
                    }
                    total
                })
            });
            // The read alone: one children list of a standing parent with
            // `WIDE` children (~8 reads of a ~30 KB seq_file, and the last
            // read of 0 bytes), no kill.
            let standing = Tree::flat(WIDE + 1);
            let mut source = proctrack::SystemSource::open().expect("open /proc");
            let mut children = Vec::new();
            group.sampling_mode(SamplingMode::Auto).sample_size(20);
            group.bench_function(format!("children_list_of_{WIDE}"), |b| {
                b.iter(|| {
                    source
                        .children(standing.root.pid(), &mut children)
                        .expect("children");
                    assert_eq!(children.len(), WIDE);
                })
            });
            let _ = standing.kill(&mut table, WIDE + 1);
            group.sample_size(10).sampling_mode(SamplingMode::Flat);
            group.bench_function(format!("chain_{WIDE}_deep_growing"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let took = Tree::chain(WIDE).kill(&mut table, WIDE + 1);
                        chain.push(took);
                        total += took;
                    }
                    total
                })
            });
            group.finish();
        }
        criterion.final_summary();
        if !alone.is_empty() && !crowded.is_empty() {
            let (a, c) = (median(&mut alone), median(&mut crowded));
            println!(
                "kill_tree of {TREE} processes, median of {} / {} kills: alone {a:?}, \
                 with {reaped} unrelated {c:?}: ratio {:.2}",
                alone.len(),
                crowded.len(),
                c.as_secs_f64() / a.as_secs_f64()
            );
        }
        if !wide.is_empty() {
            let (count, m) = (wide.len(), median(&mut wide));
            println!(
                "kill_tree of a parent with {WIDE} children ({} processes), median of {count} kills: \
                 {m:?}, {:?} per process",
                WIDE + 1,
                m / (WIDE as u32 + 1)
            );
            if !chain.is_empty() {
                let (count, c) = (chain.len(), median(&mut chain));
                println!(
                    "kill_tree of a chain {WIDE} deep growing at its tip, median of {count} kills: \
                     {c:?}; chain / wide parent: {:.2}",
                    c.as_secs_f64() / m.as_secs_f64()
                );
            }
        }
    }
}
