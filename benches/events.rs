//! Events against refreshes, on the usual population (4 `sh` parents x 500
//! `sleep` children) this bench builds itself.
//!
//! ```text
//! cargo bench --bench events
//! ```
//!
//! Measured in one run, on the same processes:
//! - idle sync: `Tracker::sync` of a tracker following the bench's subtree
//!   (the population: ~2000 processes) when nothing in it changed: the
//!   socket is drained (other processes' events included) and nothing is
//!   read; against `ProcessTable::refresh` of a kept table (every process),
//!   and the subtree rescan a polling tracker does;
//! - cost per event: 200 `sleep`s spawned in a burst, then one `sync`
//!   handles their fork and exec events (a full read each, pinned); then they
//!   are killed and one `sync` handles the 200 exits (no read). Against one
//!   full read of a process (`SystemSource::process`: stat + cmdline + cwd).
//!
//! - kept-fd sampling: `ProcessTable::refresh` on a source keeping stat fds
//!   open, against the openat floor and against a kept-fd floor (getdents,
//!   then one `pread` per kept stat fd, no parsing): how much of the kept
//!   path is the kernel's.
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
    println!("the events bench needs the proc connector: it runs on Linux only");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::HashMap;
    use std::hint::black_box;
    use std::mem::MaybeUninit;
    use std::os::fd::OwnedFd;
    use std::time::{Duration, Instant};

    use rustix::fs::{RawDir, SeekFrom};

    use criterion::Criterion;
    use proctrack::events::{EventSource, Scope, Tracker, TrackerOptions};
    use proctrack::table::{ProcessTable, TableOptions};
    use proctrack::{Pid, SystemSource};

    use crate::floor::{Floor, open_proc, open_stat};
    use crate::population::Population;

    const ROUNDS: usize = 41;
    const BURST: usize = 200;
    const BURST_ROUNDS: usize = 9;

    pub fn main() {
        let big = Population::spawn(4, 500).expect("spawning the population");
        println!("population: {} extra processes", big.len());
        let me = Pid::current();
        let open = || SystemSource::open().expect("open /proc");
        let mut tracker =
            Tracker::with_source(open(), Scope::Subtree(me), TrackerOptions::default())
                .expect("a tracker");
        assert_eq!(
            tracker.source(),
            EventSource::Connector,
            "{}",
            tracker.probe()
        );
        let mut polling = Tracker::with_source(
            open(),
            Scope::Subtree(me),
            TrackerOptions::default().polling(true),
        )
        .expect("a polling tracker");
        let mut table = ProcessTable::new().expect("a table");
        let mut kept_source = open();
        let budget = kept_source.keep_stat_fds(8192);
        let mut kept = ProcessTable::with_source(kept_source, TableOptions::default())
            .expect("a table on kept fds");
        kept.refresh().expect("refresh"); // opens and keeps the fds
        let mut floor = Floor::open();
        let mut kept_floor = KeptFloor::open();
        kept_floor.scan(); // opens and keeps the fds
        println!("kept-fd budget: {budget}");
        println!(
            "tracked subtree: {} processes; whole table: {}",
            tracker.table().len(),
            table.len()
        );

        let mut criterion = Criterion::default()
            .sample_size(15)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .configure_from_args();
        let mut group = criterion.benchmark_group("events");
        group.bench_function("idle_sync_subtree", |b| {
            b.iter(|| black_box(tracker.sync().expect("sync")))
        });
        group.bench_function("full_refresh", |b| {
            b.iter(|| black_box(table.refresh().expect("refresh").spawned.len()))
        });
        group.bench_function("kept_fd_refresh", |b| {
            b.iter(|| black_box(kept.refresh().expect("refresh").spawned.len()))
        });
        group.bench_function("floor_stat_scan", |b| b.iter(|| black_box(floor.scan())));
        group.bench_function("polling_rescan_subtree", |b| {
            b.iter(|| black_box(polling.sync().expect("sync")))
        });
        group.finish();
        criterion.final_summary();
        drain(&mut tracker);
        drain(&mut polling);

        // Interleaved rounds: each variant once per round.
        let (mut idle, mut full, mut poll) = (Vec::new(), Vec::new(), Vec::new());
        let (mut kept_times, mut floor_times) = (Vec::new(), Vec::new());
        let mut kept_floor_times = Vec::new();
        for _ in 0..ROUNDS {
            idle.push(time(|| tracker.sync().expect("sync")));
            full.push(time(|| table.refresh().expect("refresh").spawned.len()));
            kept_times.push(time(|| kept.refresh().expect("refresh").spawned.len()));
            floor_times.push(time(|| floor.scan()));
            kept_floor_times.push(time(|| kept_floor.scan()));
            poll.push(time(|| polling.sync().expect("sync")));
            drain(&mut tracker);
            drain(&mut polling);
        }
        let (idle, full, poll) = (median(idle), median(full), median(poll));
        let (kept_median, floor_median) = (median(kept_times), median(floor_times));
        let kept_floor_median = median(kept_floor_times);

        // Per event: bursts of BURST sleepers under the bench process.
        let mut reader = open();
        let (mut spawn_per, mut exit_per, mut read_per) = (Vec::new(), Vec::new(), Vec::new());
        let mut events_seen = 0;
        for _ in 0..BURST_ROUNDS {
            drain(&mut tracker);
            let burst = Population::spawn(1, BURST).expect("a burst");
            let pids = burst.pids();
            let (elapsed, events) = timed_sync(&mut tracker);
            events_seen += events;
            spawn_per.push(elapsed / BURST as u32);
            let started = Instant::now();
            for pid in &pids {
                let pid = Pid::try_from(pid.as_raw_nonzero().get()).expect("a pid");
                black_box(reader.process(pid).ok());
            }
            read_per.push(started.elapsed() / pids.len() as u32);
            burst.teardown().expect("teardown");
            let (elapsed, events) = timed_sync(&mut tracker);
            events_seen += events;
            exit_per.push(elapsed / BURST as u32);
        }
        let (spawn_per, exit_per, read_per) =
            (median(spawn_per), median(exit_per), median(read_per));

        println!();
        println!(
            "interleaved medians ({ROUNDS} rounds; bursts: {BURST_ROUNDS} x {BURST} processes, {events_seen} events):"
        );
        println!("| what | median | ratio |");
        println!("|---|---:|---:|");
        println!(
            "| full `refresh()` of the table ({} processes) | {full:?} | 1 |",
            table.len()
        );
        println!(
            "| idle `sync()` of a tracked subtree of {} | {idle:?} | {:.0}x cheaper |",
            tracker.table().len(),
            ratio(full, idle)
        );
        println!(
            "| polling rescan of the same subtree | {poll:?} | {:.2}x the refresh's time |",
            ratio(poll, full)
        );
        println!(
            "| raw floor: getdents + openat/read/close of every stat | {floor_median:?} | {:.2}x the floor (refresh) |",
            ratio(full, floor_median)
        );
        println!(
            "| `refresh()` sampling through kept stat fds (pread) | {kept_median:?} | {:.2}x the floor |",
            ratio(kept_median, floor_median)
        );
        println!(
            "| kept-fd floor: getdents + one pread of every kept stat fd | {kept_floor_median:?} | {:.2}x the floor; kept `refresh()` is {:.2}x this |",
            ratio(kept_floor_median, floor_median),
            ratio(kept_median, kept_floor_median)
        );
        println!("| one full read of a process (stat + cmdline + cwd) | {read_per:?} | 1 |");
        println!(
            "| a new process: fork + exec events handled | {spawn_per:?} | {:.2}x one read |",
            ratio(spawn_per, read_per)
        );
        println!(
            "| an exit event handled (no read) | {exit_per:?} | {:.3}x one read |",
            ratio(exit_per, read_per)
        );

        let reaped = big.teardown().unwrap_or(0);
        println!("torn down: {reaped} processes reaped");
    }

    /// The floor for sampling through kept fds: getdents of /proc, then per
    /// pid one `pread` of its kept stat fd (opened and kept the first time).
    /// No parsing, no identity check, no budget: nothing sampling through
    /// kept fds can be cheaper.
    struct KeptFloor {
        proc: OwnedFd,
        dirents: Vec<MaybeUninit<u8>>,
        buf: Vec<u8>,
        name: Vec<u8>,
        fds: HashMap<u32, OwnedFd>,
    }

    impl KeptFloor {
        fn open() -> KeptFloor {
            KeptFloor {
                proc: open_proc(),
                dirents: vec![MaybeUninit::uninit(); 64 * 1024],
                buf: vec![0; 4096],
                name: Vec::new(),
                fds: HashMap::new(),
            }
        }

        /// Returns the number of stat texts read.
        fn scan(&mut self) -> usize {
            rustix::fs::seek(&self.proc, SeekFrom::Start(0)).expect("rewind /proc");
            let mut read = 0;
            let mut dir = RawDir::new(&self.proc, &mut self.dirents);
            while let Some(entry) = dir.next() {
                let entry = entry.expect("getdents /proc");
                let name = entry.file_name().to_bytes();
                let Some(pid) = std::str::from_utf8(name)
                    .ok()
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                if !self.fds.contains_key(&pid) {
                    let Some(fd) = open_stat(&self.proc, &mut self.name, name) else {
                        continue;
                    };
                    self.fds.insert(pid, fd);
                }
                let Some(fd) = self.fds.get(&pid) else {
                    continue;
                };
                match rustix::io::pread(fd, &mut self.buf, 0) {
                    Ok(_) => read += 1,
                    // Reaped: a new process may hold the pid next time.
                    Err(_) => {
                        self.fds.remove(&pid);
                    }
                }
            }
            read
        }
    }

    fn drain(tracker: &mut Tracker<SystemSource>) {
        while let Ok(Some(_)) = tracker.wait_event(Some(Duration::ZERO)) {}
    }

    /// One sync and the number of events it produced (then taken).
    fn timed_sync(tracker: &mut Tracker<SystemSource>) -> (Duration, usize) {
        let started = Instant::now();
        let events = tracker.sync().expect("sync");
        let elapsed = started.elapsed();
        drain(tracker);
        (elapsed, events)
    }

    fn time<T>(f: impl FnOnce() -> T) -> Duration {
        let started = Instant::now();
        black_box(f());
        started.elapsed()
    }

    fn median(mut samples: Vec<Duration>) -> Duration {
        samples.sort_unstable();
        samples[samples.len() / 2]
    }

    fn ratio(a: Duration, b: Duration) -> f64 {
        a.as_secs_f64() / b.as_secs_f64().max(1e-12)
    }
}
