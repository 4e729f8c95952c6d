//! Load on the HTTP API, in one run: ~2000 extra processes on the system,
//! churn (100 short processes started and ended a second), the page's
//! event stream open, a real loopback server, 50 concurrent clients × 40
//! requests of `GET /api/processes` (the whole tree). Twice: listings from
//! a table rescanned whenever events marked it stale (before,
//! `ApiConfig::event_fed(false)`), then from the event tracker's table
//! (after, the default). Prints errors, median and p99 latency of each, and
//! the ratio. Not a criterion bench: the figure is the latency distribution
//! under concurrency, which criterion's one-at-a-time samples do not give.
//!
//! `cargo bench --features http --bench http`

#[cfg(target_os = "linux")]
mod population;

#[cfg(target_os = "linux")]
fn main() {
    linux::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("the http bench needs Linux");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use proctrack::http::{ApiConfig, ApiState, Token, serve};

    use crate::population::Population;

    const CLIENTS: usize = 50;
    const REQUESTS: usize = 40;
    /// Short processes started (and ended) a second.
    const CHURN: u32 = 100;
    const SECRET: &str = "bench-token-0123456789abcdef0123456789";

    /// One `GET /api/processes` on a fresh connection: the status code and
    /// the body's length.
    fn get(addr: SocketAddr) -> std::io::Result<(u16, usize)> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        write!(
            stream,
            "GET /api/processes HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {SECRET}\r\n\
             Connection: close\r\n\r\n"
        )?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        let status = answer
            .get(9..12)
            .and_then(|code| std::str::from_utf8(code).ok())
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        Ok((status, answer.len()))
    }

    /// The page's event stream, read until the server goes.
    fn follow_events(addr: SocketAddr) -> std::thread::JoinHandle<()> {
        let mut stream = TcpStream::connect(addr).expect("the event stream");
        write!(
            stream,
            "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {SECRET}\r\n\r\n"
        )
        .unwrap();
        std::thread::spawn(move || {
            let mut buffer = [0_u8; 65536];
            while matches!(stream.read(&mut buffer), Ok(n) if n > 0) {}
        })
    }

    struct Figures {
        ok: usize,
        errors: usize,
        median: Duration,
        p99: Duration,
        max: Duration,
        wall: Duration,
    }

    /// A server on its own runtime with `config`, loaded by the clients.
    fn run(event_fed: bool) -> Figures {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let config = ApiConfig::new(addr, Token::new(SECRET).unwrap()).event_fed(event_fed);
        let state = ApiState::new(config).unwrap();
        runtime.spawn(serve(listener, state));
        let events = follow_events(addr);
        let (status, _) = get(addr).expect("a first listing");
        assert_eq!(status, 200);

        let started = Instant::now();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut latencies = Vec::with_capacity(REQUESTS);
                    let mut errors = 0;
                    for _ in 0..REQUESTS {
                        let start = Instant::now();
                        match get(addr) {
                            Ok((200, _)) => latencies.push(start.elapsed()),
                            _ => errors += 1,
                        }
                    }
                    (latencies, errors)
                })
            })
            .collect();
        let mut latencies = Vec::new();
        let mut errors = 0;
        for client in clients {
            let (mine, failed) = client.join().unwrap();
            latencies.extend(mine);
            errors += failed;
        }
        let wall = started.elapsed();
        // Ends the server and the event stream with it.
        drop(runtime);
        let _ = events.join();
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
        Figures {
            ok: latencies.len(),
            errors,
            median: at(0.5),
            p99: at(0.99),
            max: at(1.0),
            wall,
        }
    }

    fn print(label: &str, f: &Figures) {
        println!(
            "{label}: {CLIENTS} clients x {REQUESTS} GET /api/processes: {} ok, {} errors in {:.2?} \
             ({:.0} requests/s); latency median {:.1?}, p99 {:.1?}, max {:.1?}",
            f.ok,
            f.errors,
            f.wall,
            f.ok as f64 / f.wall.as_secs_f64(),
            f.median,
            f.p99,
            f.max,
        );
    }

    pub fn main() {
        // Subreaper before spawning: see population's module docs.
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .expect("PR_SET_CHILD_SUBREAPER");
        let population = Population::spawn(4, 500).expect("spawning the population");
        let processes = procfs::process::all_processes().unwrap().count();
        println!(
            "{processes} processes ({} spawned), churn {CHURN} spawns and exits a second",
            population.len()
        );

        // Churn: each a direct child, waited for, so nothing is left.
        let stop = Arc::new(AtomicBool::new(false));
        let churned = Arc::new(AtomicU64::new(0));
        let churn = {
            let stop = Arc::clone(&stop);
            let churned = Arc::clone(&churned);
            std::thread::spawn(move || {
                let period = Duration::from_secs(1) / CHURN;
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(mut child) = std::process::Command::new("true").spawn() {
                        let _ = child.wait();
                        churned.fetch_add(1, Ordering::Relaxed);
                    }
                    next += period;
                    // Pacing the load generator, not synchronisation.
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            })
        };

        let churn_start = Instant::now();
        let before = run(false);
        print("before (rescan when stale)", &before);
        let after = run(true);
        print("after (event-fed snapshot)", &after);
        stop.store(true, Ordering::Relaxed);
        churn.join().unwrap();
        println!(
            "churn: {} processes in {:.1?}; p99 before/after: {:.1}x, median {:.1}x",
            churned.load(Ordering::Relaxed),
            churn_start.elapsed(),
            before.p99.as_secs_f64() / after.p99.as_secs_f64(),
            before.median.as_secs_f64() / after.median.as_secs_f64(),
        );
        let removed = population.teardown().expect("tearing the population down");
        println!("removed {removed} processes");
        assert_eq!(before.errors + after.errors, 0, "requests failed");
    }
}
