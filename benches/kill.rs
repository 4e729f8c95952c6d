//! `kill_tree` of a 50-process tree, with and without ~2000 unrelated
//! processes on the system, in one run: the kill reads the tree's members
//! through `/proc/<pid>/task/*/children`, so its cost should not grow with
//! the system. The ratio of the two medians is the figure (target <= 1.3).
//!
//! Each sample spawns a fresh tree (a shell with 49 `sleep` children, not
//! timed), then times one `kill_tree` of it, which also reaps every member:
//! the bench is a child subreaper, so nothing is left behind, and a tree that
//! a panic leaves is killed from `Drop`.

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

    use criterion::Criterion;
    use proctrack::ProcessIdentity;
    use proctrack::signal::{KillOptions, ProcessHandle, kill_tree};
    use proctrack::table::ProcessTable;

    use crate::population::Population;

    const TREE: usize = 50;

    /// A tree of `TREE` processes, killed (and reaped) on drop if the bench
    /// did not kill it.
    struct Tree {
        root: ProcessIdentity,
        killed: bool,
    }

    impl Tree {
        fn spawn() -> Tree {
            let script = format!(
                "i=1; while [ $i -lt {TREE} ]; do sleep 100000 </dev/null >/dev/null & i=$((i+1)); done; echo ready; wait"
            );
            let mut child = Command::new("sh")
                .args(["-c", &script])
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

        fn kill(mut self, table: &mut ProcessTable) -> Duration {
            let start = Instant::now();
            let report = kill_tree(table, self.root, &KillOptions::new()).expect("kill_tree");
            let took = start.elapsed();
            self.killed = true;
            assert!(report.is_complete(), "{report:?}");
            assert_eq!(report.killed.len(), TREE, "{report:?}");
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
                    let took = Tree::spawn().kill(&mut table);
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
    }
}
