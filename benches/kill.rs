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
//! A third row kills a parent with 5000 children (forked, not timed): its
//! `task/<tid>/children` file is ~30 KB, read to its end (issue 18: a single
//! read returns 682 of them), so the cost of the whole list is in the figure;
//! a fourth times that list's read alone, on a standing parent.
//!
//! A fifth kills a chain as many processes deep (each level forked by the
//! one above, which then waits) whose tip keeps forking a new level every
//! millisecond while the kill runs: the hostile shape whose settle used to
//! cost depth x size. Its median over the wide parent's is the figure
//! (target <= 2).

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
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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

    /// A parent with `WIDE` children, all blocked reading a pipe this
    /// process holds; killed (and reaped) on drop if the bench did not.
    struct WideTree {
        root: ProcessIdentity,
        /// The pipe's write end: closing it ends every child that is left.
        hold: Option<OwnedFd>,
        killed: bool,
    }

    impl WideTree {
        /// Forks the parent, which forks `WIDE` children and says so on a
        /// second pipe. Both forks run only raw system calls in the child
        /// (fork, read, write, close, _exit): safe in a threaded process.
        fn spawn() -> WideTree {
            let (hold_r, hold_w) = pipe();
            let (ready_r, ready_w) = pipe();
            let (hold_raw, ready_w_raw) = (hold_r.as_raw_fd(), ready_w.as_raw_fd());
            let hold_w_raw = hold_w.as_raw_fd();
            // SAFETY: the child runs only async-signal-safe calls and never
            // returns.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                unsafe {
                    libc::close(hold_w_raw);
                    let mut forked = 0u32;
                    while (forked as usize) < WIDE {
                        match libc::fork() {
                            0 => {
                                libc::close(ready_w_raw);
                                wait_eof(hold_raw)
                            }
                            -1 => libc::_exit(2),
                            _ => forked += 1,
                        }
                    }
                    let byte = 1u8;
                    libc::write(ready_w_raw, (&raw const byte).cast(), 1);
                    wait_eof(hold_raw)
                }
            }
            assert!(pid > 0, "fork: {}", std::io::Error::last_os_error());
            drop((hold_r, ready_w));
            let mut byte = [0u8; 1];
            let n = rustix::io::read(&ready_r, &mut byte).expect("ready");
            let pid = proctrack::Pid::try_from(pid as u32).expect("pid");
            let root = proctrack::process(pid).expect("the parent").identity();
            assert_eq!(n, 1, "the wide parent failed to fork {WIDE} children");
            WideTree {
                root,
                hold: Some(hold_w),
                killed: false,
            }
        }

        fn kill(mut self, table: &mut ProcessTable) -> Duration {
            let start = Instant::now();
            let report = kill_tree(table, self.root, &KillOptions::new()).expect("kill_tree");
            let took = start.elapsed();
            self.killed = true;
            assert!(report.is_complete(), "{report:?}");
            assert_eq!(report.killed.len(), WIDE + 1);
            took
        }
    }

    impl Drop for WideTree {
        fn drop(&mut self) {
            if !self.killed {
                if let Ok(mut table) = ProcessTable::new() {
                    let _ = kill_tree(&mut table, self.root, &KillOptions::new());
                }
            }
            drop(self.hold.take());
        }
    }

    /// A chain `WIDE` deep whose tip goes on forking a level a millisecond
    /// (up to twice as deep), every level blocked reading a pipe this
    /// process holds; killed (and reaped) on drop if the bench did not.
    struct ChainTree {
        root: ProcessIdentity,
        hold: Option<OwnedFd>,
        killed: bool,
    }

    impl ChainTree {
        fn spawn() -> ChainTree {
            let (hold_r, hold_w) = pipe();
            let (ready_r, ready_w) = pipe();
            let (hold_raw, ready_w_raw) = (hold_r.as_raw_fd(), ready_w.as_raw_fd());
            let hold_w_raw = hold_w.as_raw_fd();
            // SAFETY: every child runs only async-signal-safe calls (fork,
            // nanosleep, read, write, close, _exit) and never returns.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                unsafe {
                    libc::close(hold_w_raw);
                    let mut level = 0usize;
                    loop {
                        if level == WIDE {
                            let byte = 1u8;
                            libc::write(ready_w_raw, (&raw const byte).cast(), 1);
                        }
                        if level >= 2 * WIDE {
                            wait_eof(hold_raw)
                        }
                        if level >= WIDE {
                            let pause = libc::timespec {
                                tv_sec: 0,
                                tv_nsec: 1_000_000,
                            };
                            libc::nanosleep(&pause, std::ptr::null_mut());
                        }
                        match libc::fork() {
                            // The new tip.
                            0 => level += 1,
                            -1 => libc::_exit(2),
                            _ => wait_eof(hold_raw),
                        }
                    }
                }
            }
            assert!(pid > 0, "fork: {}", std::io::Error::last_os_error());
            drop((hold_r, ready_w));
            let mut byte = [0u8; 1];
            let n = rustix::io::read(&ready_r, &mut byte).expect("ready");
            let pid = proctrack::Pid::try_from(pid as u32).expect("pid");
            let root = proctrack::process(pid)
                .expect("the chain's root")
                .identity();
            assert_eq!(n, 1, "the chain failed to grow {WIDE} deep");
            ChainTree {
                root,
                hold: Some(hold_w),
                killed: false,
            }
        }

        fn kill(mut self, table: &mut ProcessTable) -> Duration {
            let start = Instant::now();
            let report = kill_tree(table, self.root, &KillOptions::new()).expect("kill_tree");
            let took = start.elapsed();
            self.killed = true;
            assert!(report.is_complete(), "{report}");
            assert!(report.killed.len() > WIDE, "{} killed", report.killed.len());
            took
        }
    }

    impl Drop for ChainTree {
        fn drop(&mut self) {
            if !self.killed {
                if let Ok(mut table) = ProcessTable::new() {
                    let _ = kill_tree(&mut table, self.root, &KillOptions::new());
                }
            }
            drop(self.hold.take());
        }
    }

    /// A pipe (read end, write end), close-on-exec: kept across fork, not
    /// handed to the `sh` trees of the other rows.
    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills `fds` with two new fds on success; each is
        // owned once.
        unsafe {
            assert_eq!(
                libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC),
                0,
                "pipe2: {}",
                std::io::Error::last_os_error()
            );
            (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
        }
    }

    /// Reads `fd` until end of file, then exits: the wide tree's children.
    unsafe fn wait_eof(fd: i32) -> ! {
        let mut byte = 0u8;
        loop {
            let n = unsafe { libc::read(fd, (&raw mut byte).cast(), 1) };
            if n == 0
                || (n < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR))
            {
                unsafe { libc::_exit(0) }
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
                        let took = WideTree::spawn().kill(&mut table);
                        wide.push(took);
                        total += took;
                    }
                    total
                })
            });
            // The read alone: one children list of a standing parent with
            // `WIDE` children (~8 reads of a ~30 KB seq_file, and the last
            // read of 0 bytes), no kill.
            let standing = WideTree::spawn();
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
            let _ = standing.kill(&mut table);
            group.sample_size(10).sampling_mode(SamplingMode::Flat);
            group.bench_function(format!("chain_{WIDE}_deep_growing"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let took = ChainTree::spawn().kill(&mut table);
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
