//! Load on the HTTP API, in one run: ~2000 extra processes on the system,
//! a real loopback server, 50 concurrent clients × 40 requests of
//! `GET /api/processes` (the whole tree). Prints errors, median and p99
//! latency. Not a criterion bench: the figure is the latency distribution
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
    use std::time::{Duration, Instant};

    use proctrack::http::{ApiConfig, ApiState, Token, serve};

    use crate::population::Population;

    const CLIENTS: usize = 50;
    const REQUESTS: usize = 40;

    /// One `GET /api/processes` on a fresh connection: the status code and
    /// the body's length.
    fn get(addr: SocketAddr) -> std::io::Result<(u16, usize)> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        write!(
            stream,
            "GET /api/processes HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
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

    pub fn main() {
        // Subreaper before spawning: see population's module docs.
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .expect("PR_SET_CHILD_SUBREAPER");
        let population = Population::spawn(4, 500).expect("spawning the population");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let token = Token::generate().unwrap();
        let state = ApiState::new(ApiConfig::new(addr, token)).unwrap();
        runtime.spawn(serve(listener, state));

        let (status, size) = get(addr).expect("a first listing");
        assert_eq!(status, 200);
        let processes = procfs::process::all_processes().unwrap().count();
        println!(
            "{processes} processes ({} spawned), one listing is {size} bytes",
            population.len()
        );

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
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "{CLIENTS} clients x {REQUESTS} GET /api/processes: {} ok, {errors} errors in {wall:.2?} \
             ({:.0} requests/s); latency median {:.1?}, p99 {:.1?}, max {:.1?}",
            latencies.len(),
            latencies.len() as f64 / wall.as_secs_f64(),
            at(0.5),
            at(0.99),
            at(1.0),
        );
        drop(runtime);
        let removed = population.teardown().expect("tearing the population down");
        println!("removed {removed} processes");
        assert_eq!(errors, 0, "requests failed");
    }
}
