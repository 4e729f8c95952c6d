//! Port holders against the `listeners` crate, on a population this bench
//! builds itself: one `python3` that forks 100 "servers", each with 10
//! workers holding 5 listening TCP sockets of their own (1101 processes,
//! 5000 sockets, and one more opened late by the first server), removed at
//! the end, also when the bench panics.
//!
//! ```text
//! cargo bench --bench ports
//! ```
//!
//! Measured in one run, on the same processes:
//! - holders of one port, no hint: `PortFinder::holders` (TCP) against
//!   `listeners::get_process_by_port`. The port is one of the worker with
//!   the median pid, so a search in pid order from either end reads about
//!   half of the population;
//! - the same with the holder's server tree given (a supervisor's case):
//!   `Search::tree` on a kept `ProcessTable`;
//! - the socket the oldest server opened after everyone started: creation
//!   order points our search the wrong way, while `listeners`, reading in
//!   pid order, meets the holder early;
//! - every listener: `PortFinder::listeners` against `listeners::get_all`
//!   (ours walks every process on two threads where there is a second CPU,
//!   theirs on one: hence the CPU column).
//!
//! The closing table gives medians of interleaved rounds and their ratios,
//! in wall time and in CPU time of all threads (a walk over every process
//! may run on two threads).

#[cfg(target_os = "linux")]
fn main() {
    linux::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("the ports bench reads /proc: it runs on Linux only");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::hint::black_box;
    use std::io::{BufRead, BufReader};
    use std::process::{Child, ChildStdin, Command, Stdio};
    use std::time::{Duration, Instant};

    use criterion::Criterion;
    use proctrack::Pid;
    use proctrack::ports::{PortFinder, Protocol, Search};
    use proctrack::table::ProcessTable;
    use rustix::process::WaitOptions;

    const SERVERS: usize = 100;
    const WORKERS: usize = 10;
    const SOCKETS: usize = 5;
    const ROUNDS: usize = 21;

    /// The population: servers fork workers; each worker opens its sockets,
    /// reports `server worker port,port,...` on a shared pipe (one write,
    /// atomic), and blocks reading stdin. At end of file (the bench closed
    /// it, or died) workers exit, servers reap their workers, the root its
    /// servers: nothing is orphaned on the normal path.
    const SCRIPT: &str = r#"
import os, socket, sys
servers, workers, per = map(int, sys.argv[1:4])
r, w = os.pipe()
def worker():
    socks = []
    for _ in range(per):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        socks.append(s)
    ports = ",".join(str(s.getsockname()[1]) for s in socks)
    os.write(w, ("%d %d %s\n" % (os.getppid(), os.getpid(), ports)).encode())
    os.read(0, 1)
    os._exit(0)
go_r, go_w = os.pipe()
def server(first):
    kids = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            worker()
        kids.append(pid)
    if first:
        # Once everyone has started, the oldest server opens one more
        # socket: creation order points the search the wrong way.
        os.read(go_r, 1)
        late = socket.socket()
        late.bind(("127.0.0.1", 0))
        late.listen(1)
        os.write(w, ("late %d %d\n" % (os.getpid(), late.getsockname()[1])).encode())
    os.read(0, 1)
    for kid in kids:
        os.waitpid(kid, 0)
    os._exit(0)
children = []
for i in range(servers):
    pid = os.fork()
    if pid == 0:
        server(i == 0)
    children.append(pid)
want, got, buf = servers * workers, 0, b""
while got < want:
    buf += os.read(r, 65536)
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        sys.stdout.write(line.decode() + "\n")
        got += 1
os.write(go_w, b"x")
while b"\n" not in buf:
    buf += os.read(r, 65536)
sys.stdout.write(buf.decode())
sys.stdout.write("ready\n")
sys.stdout.flush()
os.read(0, 1)
for pid in children:
    os.waitpid(pid, 0)
"#;

    struct Worker {
        server: Pid,
        pid: Pid,
        ports: Vec<u16>,
    }

    /// The running population; `Drop` removes it.
    struct Population {
        root: Option<Child>,
        stdin: Option<ChildStdin>,
        workers: Vec<Worker>,
        /// A socket the oldest server opened after everyone started:
        /// (server, port).
        late: Option<(Pid, u16)>,
    }

    impl Population {
        fn spawn() -> Population {
            rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
                .expect("become a child subreaper");
            let mut root = Command::new("/usr/bin/python3")
                .args(["-c", SCRIPT])
                .args([SERVERS, WORKERS, SOCKETS].map(|n| n.to_string()))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn python3");
            let stdout = root.stdout.take().expect("piped stdout");
            // Built before reading, so a failure below still tears down.
            let mut population = Population {
                stdin: root.stdin.take(),
                root: Some(root),
                workers: Vec::new(),
                late: None,
            };
            for line in BufReader::new(stdout).lines() {
                let line = line.expect("read the population's report");
                if line == "ready" {
                    break;
                }
                let words: Vec<&str> = line.split_whitespace().collect();
                let pid =
                    |word: &str| Pid::try_from(word.parse::<i64>().expect("a pid")).expect("a pid");
                if words[0] == "late" {
                    population.late = Some((pid(words[1]), words[2].parse().expect("a port")));
                    continue;
                }
                population.workers.push(Worker {
                    server: pid(words[0]),
                    pid: pid(words[1]),
                    ports: words[2]
                        .split(',')
                        .map(|p| p.parse().expect("a port"))
                        .collect(),
                });
            }
            assert_eq!(
                population.workers.len(),
                SERVERS * WORKERS,
                "population incomplete"
            );
            population
        }

        fn processes(&self) -> usize {
            1 + SERVERS + self.workers.len()
        }
    }

    impl Drop for Population {
        fn drop(&mut self) {
            // End of file on stdin ends every process; the root reaps its
            // servers, they reap their workers.
            drop(self.stdin.take());
            if let Some(mut root) = self.root.take() {
                let _ = root.wait();
            }
            // Orphans (a server that died early) came to us, the subreaper:
            // reap those, by pid, only while they are our children.
            let me = rustix::process::getpid();
            let known = self.workers.iter().flat_map(|w| [w.server, w.pid]);
            for pid in known {
                let ours = proctrack::process(pid)
                    .ok()
                    .and_then(|p| p.parent())
                    .is_some_and(|parent| parent.as_raw() == me.as_raw_nonzero().get());
                if let (true, Some(raw)) = (ours, rustix::process::Pid::from_raw(pid.as_raw())) {
                    let _ = rustix::process::waitpid(Some(raw), WaitOptions::empty());
                }
            }
        }
    }

    type Variant<'a> = (&'static str, Box<dyn FnMut() -> usize + 'a>);
    /// Group, variant, median wall time, median CPU time.
    type Summary = Vec<(&'static str, &'static str, Duration, Duration)>;

    pub fn main() {
        let population = Population::spawn();
        let target = {
            let mut by_pid: Vec<&Worker> = population.workers.iter().collect();
            by_pid.sort_unstable_by_key(|w| w.pid);
            let median = by_pid[by_pid.len() / 2];
            Worker {
                server: median.server,
                pid: median.pid,
                ports: median.ports.clone(),
            }
        };
        let port = target.ports[SOCKETS / 2];
        let (late_holder, late_port) = population.late.expect("the late socket");
        let sockets = population.workers.len() * SOCKETS;
        println!(
            "population: {} processes, {sockets} listening sockets; target port {port} held by worker {} of server {}",
            population.processes(),
            target.pid,
            target.server
        );

        let mut finder = PortFinder::open().expect("a port finder");
        let table = ProcessTable::new().expect("a table");
        let tcp = Search::new().protocol(Protocol::Tcp);
        // The answers agree before anything is timed.
        let ours = finder.holders(port, &tcp).expect("holders");
        assert_eq!(
            ours.holders().iter().map(|h| h.pid()).collect::<Vec<_>>(),
            vec![target.pid]
        );
        let theirs =
            listeners::get_process_by_port(port, listeners::Protocol::TCP).expect("listeners");
        assert_eq!(theirs.pid, target.pid.as_u32());
        let late = finder
            .holders(late_port, &tcp)
            .expect("holders of the late socket");
        assert_eq!(
            late.holders().iter().map(|h| h.pid()).collect::<Vec<_>>(),
            vec![late_holder]
        );
        let tree = tcp.clone().tree(&table, target.server);
        let with_tree = finder.holders(port, &tree).expect("holders in the tree");
        assert_eq!(with_tree.holders(), ours.holders());
        let all = finder.listeners().expect("all listeners");
        let ours_all: usize = all
            .listeners
            .iter()
            .filter(|l| !l.holders.is_empty())
            .count();
        let theirs_all = listeners::get_all().expect("listeners get_all");
        println!(
            "listing all: proctrack {ours_all} held sockets, listeners {} entries",
            theirs_all.len()
        );
        assert!(ours_all >= sockets);

        let mut criterion = Criterion::default()
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3))
            .configure_from_args();
        let mut summary = Summary::new();
        let finder = std::cell::RefCell::new(finder);

        let mut by_port: Vec<Variant<'_>> = vec![
            (
                "listeners_get_process_by_port",
                Box::new(|| {
                    listeners::get_process_by_port(port, listeners::Protocol::TCP)
                        .map_or(0, |p| p.pid as usize)
                }),
            ),
            (
                "proctrack_holders_no_hint",
                Box::new(|| {
                    finder
                        .borrow_mut()
                        .holders(port, &tcp)
                        .map_or(0, |r| r.listeners.len())
                }),
            ),
            (
                "proctrack_holders_tree_given",
                Box::new(|| {
                    let search = tcp.clone().tree(&table, target.server);
                    finder
                        .borrow_mut()
                        .holders(port, &search)
                        .map_or(0, |r| r.listeners.len())
                }),
            ),
        ];
        run_group(
            &mut criterion,
            &mut summary,
            "holders_of_port",
            &mut by_port,
        );

        // The case creation order misleads: the oldest server's newest socket.
        let mut misled: Vec<Variant<'_>> = vec![
            (
                "listeners_get_process_by_port",
                Box::new(|| {
                    listeners::get_process_by_port(late_port, listeners::Protocol::TCP)
                        .map_or(0, |p| p.pid as usize)
                }),
            ),
            (
                "proctrack_holders_no_hint",
                Box::new(|| {
                    finder
                        .borrow_mut()
                        .holders(late_port, &tcp)
                        .map_or(0, |r| r.listeners.len())
                }),
            ),
        ];
        run_group(&mut criterion, &mut summary, "holders_misled", &mut misled);

        let mut listing: Vec<Variant<'_>> = vec![
            (
                "listeners_get_all",
                Box::new(|| listeners::get_all().map_or(0, |all| all.len())),
            ),
            (
                "proctrack_listeners",
                Box::new(|| {
                    finder
                        .borrow_mut()
                        .listeners()
                        .map_or(0, |r| r.listeners.len())
                }),
            ),
        ];
        run_group(&mut criterion, &mut summary, "list_all", &mut listing);
        criterion.final_summary();
        print_summary(&summary);
        drop(population);
        println!("population removed");
    }

    fn run_group(
        criterion: &mut Criterion,
        summary: &mut Summary,
        name: &'static str,
        variants: &mut [Variant<'_>],
    ) {
        {
            let mut group = criterion.benchmark_group(name);
            for (variant, run) in variants.iter_mut() {
                group.bench_function(*variant, |b| b.iter(|| black_box(run())));
            }
            group.finish();
        }
        let mut times = vec![Vec::with_capacity(ROUNDS); variants.len()];
        let mut cpu_times = vec![Vec::with_capacity(ROUNDS); variants.len()];
        for _ in 0..ROUNDS {
            for (i, (_, run)) in variants.iter_mut().enumerate() {
                let (start, cpu_start) = (Instant::now(), process_cpu_time());
                black_box(run());
                times[i].push(start.elapsed());
                cpu_times[i].push(process_cpu_time().saturating_sub(cpu_start));
            }
        }
        for (((variant, _), mut samples), mut cpu) in variants.iter().zip(times).zip(cpu_times) {
            samples.sort_unstable();
            cpu.sort_unstable();
            println!(
                "{name}/{variant}: interleaved min {:?}, median {:?}, max {:?}; CPU median {:?}",
                samples[0],
                samples[samples.len() / 2],
                samples[samples.len() - 1],
                cpu[cpu.len() / 2]
            );
            summary.push((
                name,
                *variant,
                samples[samples.len() / 2],
                cpu[cpu.len() / 2],
            ));
        }
    }

    /// CPU time of this process, all its threads: with the wall time it
    /// shows what a variant gains from a second thread and what from doing
    /// less work.
    fn process_cpu_time() -> Duration {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        Duration::new(
            u64::try_from(now.tv_sec).unwrap_or(0),
            u32::try_from(now.tv_nsec).unwrap_or(0),
        )
    }

    /// Medians of the interleaved rounds, wall and CPU time (all threads);
    /// the first variant of each group (the anchor) is the baseline, and the
    /// ratios say how many times faster, or how many times less CPU.
    fn print_summary(summary: &Summary) {
        println!(
            "\n{:<16} {:<32} {:>12} {:>12} {:>12} {:>12}",
            "group", "variant", "median", "anchor/this", "CPU", "anchor/this"
        );
        let mut base: Option<(&str, Duration, Duration)> = None;
        for (group, variant, median, cpu) in summary {
            if base.is_none_or(|(g, _, _)| g != *group) {
                base = Some((group, *median, *cpu));
            }
            let ratio = |base: Duration, this: &Duration| base.as_secs_f64() / this.as_secs_f64();
            let (wall_ratio, cpu_ratio) = base
                .map_or((f64::NAN, f64::NAN), |(_, wall, base_cpu)| {
                    (ratio(wall, median), ratio(base_cpu, cpu))
                });
            println!(
                "{group:<16} {variant:<32} {median:>12.3?} {wall_ratio:>11.2}x {cpu:>12.3?} {cpu_ratio:>11.2}x"
            );
        }
    }
}
