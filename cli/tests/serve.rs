//! `proctrack serve`, through the built binary: it prints its address on
//! stdout and, once on stderr, a one-time sign-in link and the token; every
//! /api route needs the token; every answer carries the security headers;
//! as root it needs --allow-root. Without the `serve` feature it says how
//! to get it.

/// The command under test (unused on macOS with the feature: no test there).
#[allow(dead_code)]
const BIN: &str = env!("CARGO_BIN_EXE_proctrack");

#[cfg(all(feature = "serve", target_os = "linux"))]
mod serving {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::process::{Child, ChildStderr, Command, Stdio};
    use std::time::Duration;

    use super::BIN;

    /// A hang guard for reads from the server, not a timing assertion.
    pub const HANG_GUARD: Duration = Duration::from_secs(60);

    /// Whether this process runs as root: then `serve` needs --allow-root.
    pub fn root() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// A running `proctrack serve --port 0`, killed and reaped on drop
    /// (also when the test fails).
    pub struct Server {
        pub child: Child,
        pub addr: String,
        pub token: String,
        pub link: String,
        /// Kept open: the server's stderr has a reader as long as it runs.
        _stderr: Option<BufReader<ChildStderr>>,
    }

    impl Server {
        pub fn start() -> Server {
            let mut command = Command::new(BIN);
            command.args(["serve", "--port", "0"]);
            if root() {
                command.arg("--allow-root");
            }
            let child = command
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut server = Server {
                child,
                addr: String::new(),
                token: String::new(),
                link: String::new(),
                _stderr: None,
            };
            // The first line is printed once the socket listens: the
            // address alone, no secret.
            let mut stdout = BufReader::new(server.child.stdout.take().unwrap());
            let mut first = String::new();
            stdout.read_line(&mut first).unwrap();
            let addr = first
                .trim()
                .strip_prefix("proctrack serves http://")
                .and_then(|rest| rest.strip_suffix('/'))
                .unwrap_or_else(|| panic!("{first:?}"));
            server.addr = addr.to_owned();
            // The secrets, on stderr.
            let mut stderr = BufReader::new(server.child.stderr.take().unwrap());
            for _ in 0..2 {
                let mut line = String::new();
                stderr.read_line(&mut line).unwrap();
                if let Some((_, link)) = line.split_once("works once): ") {
                    server.link = link.trim().to_owned();
                } else if let Some((_, token)) = line.split_once("<token>): ") {
                    server.token = token.trim().to_owned();
                } else {
                    panic!("unexpected line on stderr: {line:?}");
                }
            }
            server._stderr = Some(stderr);
            server
        }

        /// One request on a fresh connection (`Connection: close`), the
        /// whole answer as text.
        pub fn request(&self, head: &str) -> String {
            request(&self.addr, head)
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    pub fn request(addr: &str, head: &str) -> String {
        send(addr, head, "")
    }

    /// A request with a body; `head` ends with its own `\r\n`.
    pub fn send(addr: &str, head: &str, body: &str) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
        write!(
            stream,
            "{head}Host: {addr}\r\nConnection: close\r\n\r\n{body}"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }
}

#[cfg(all(feature = "serve", target_os = "linux"))]
use serving::{HANG_GUARD, Server};

#[cfg(all(feature = "serve", target_os = "linux"))]
#[test]
fn serves_the_api_on_loopback_with_a_token_printed_once() {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpStream;
    use std::process::Command;

    let server = Server::start();
    assert!(server.addr.starts_with("127.0.0.1:"), "{}", server.addr);
    assert_eq!(server.token.len(), 64, "{}", server.token);
    // The link carries a one-time code, not the token.
    let code = server
        .link
        .strip_prefix(&format!("http://{}/#code=", server.addr))
        .unwrap_or_else(|| panic!("{}", server.link));
    assert_eq!(code.len(), 64, "{code}");
    assert_ne!(code, server.token);

    let token = &server.token;
    let listing = server.request(&format!(
        "GET /api/processes?root={} HTTP/1.1\r\nAuthorization: Bearer {token}\r\n",
        std::process::id()
    ));
    assert!(listing.starts_with("HTTP/1.1 200"), "{listing}");
    let refused = server.request("POST /api/processes/1/kill HTTP/1.1\r\nContent-Length: 0\r\n");
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");

    // The event stream, through the built binary's own runtime (its SSE
    // keep-alive needs timers): the answer's head, then a first event once
    // a process starts and exits.
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
    write!(
        stream,
        "GET /api/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\r\n",
        server.addr
    )
    .unwrap();
    let mut events = BufReader::new(stream);
    let mut status = String::new();
    events.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");
    let mut line = String::new();
    loop {
        // Any process will do; ours makes sure one comes.
        let ran = Command::new("true").status().unwrap();
        assert!(ran.success());
        line.clear();
        let read = events.read_line(&mut line).unwrap();
        assert!(read > 0, "the event stream ended before its first event");
        if line.starts_with("data:") {
            break;
        }
    }
    let mut server = server;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server exited"
    );
}

/// Another local user (uid 65534) who did not get the token reads nothing:
/// 401 on every /api route, with a JSON body that says what to send.
#[cfg(all(feature = "serve", target_os = "linux"))]
#[test]
fn a_read_without_the_token_is_401_from_another_uid() {
    let server = Server::start();
    let addr = server.addr.clone();
    let pid = std::process::id();
    // Credentials are per thread in the kernel: this thread becomes
    // `nobody`, the rest of the test stays who it was.
    let answers = std::thread::spawn(move || {
        let nobody = rustix::process::Uid::from_raw(65534);
        rustix::thread::set_thread_res_uid(Some(nobody), Some(nobody), Some(nobody))
            .map_err(|e| format!("setresuid(65534) failed: {e}"))?;
        let answers: Vec<String> = [
            "/api/processes".to_owned(),
            format!("/api/processes/{pid}"),
            "/api/ports/22".to_owned(),
            "/api/jobs".to_owned(),
            "/api/events".to_owned(),
        ]
        .iter()
        .map(|path| serving::request(&addr, &format!("GET {path} HTTP/1.1\r\n")))
        .collect();
        Ok::<_, String>(answers)
    })
    .join()
    .unwrap();
    let answers = match answers {
        Ok(answers) => answers,
        Err(why) => {
            println!("skipped: cannot become uid 65534 here: {why}");
            return;
        }
    };
    for answer in answers {
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert!(answer.contains(r#""error":"no_token""#), "{answer}");
        assert!(answer.contains("Authorization: Bearer"), "{answer}");
        assert!(!answer.contains("\"trees\""), "{answer}");
    }
}

/// The page and the API's answers carry a strict CSP, X-Frame-Options,
/// nosniff, and the API's `Cache-Control: no-store`; a request another
/// site's page made is refused.
#[cfg(all(feature = "serve", target_os = "linux"))]
#[test]
fn answers_carry_the_security_headers() {
    let server = Server::start();
    let token = &server.token;
    let page = server.request("GET / HTTP/1.1\r\n");
    let api = server.request(&format!(
        "GET /api/processes/{} HTTP/1.1\r\nAuthorization: Bearer {token}\r\n",
        std::process::id()
    ));
    let unauthorized = server.request("GET /api/processes HTTP/1.1\r\n");
    for (answer, status) in [(&page, "200"), (&api, "200"), (&unauthorized, "401")] {
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{answer}"
        );
        let head = answer
            .split("\r\n\r\n")
            .next()
            .unwrap()
            .to_ascii_lowercase();
        for header in [
            "content-security-policy: default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'",
            "frame-ancestors 'none'",
            "x-frame-options: deny",
            "x-content-type-options: nosniff",
        ] {
            assert!(head.contains(header), "{header} missing: {head}");
        }
    }
    for answer in [&api, &unauthorized] {
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("cache-control: no-store"),
            "{answer}"
        );
    }
    let cross = server.request("GET / HTTP/1.1\r\nSec-Fetch-Site: cross-site\r\n");
    assert!(cross.starts_with("HTTP/1.1 403"), "{cross}");
    assert!(cross.contains("foreign_site"), "{cross}");
}

/// A kill with SIGSTOP (and other signals that do not end a process) is
/// 400 and the target keeps running; SIGTERM then ends it.
#[cfg(all(feature = "serve", target_os = "linux"))]
#[test]
fn sigstop_is_400_and_the_target_keeps_running() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Child, Command};

    struct Target(Child);
    impl Drop for Target {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    fn state(pid: u32) -> char {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after = stat.rsplit_once(") ").unwrap().1;
        after.chars().next().unwrap()
    }

    let server = Server::start();
    let mut target = Target(Command::new("sleep").arg("600").spawn().unwrap());
    let pid = target.0.id();
    let token = &server.token;
    // The identity's start time: field 22 of its stat, in clock ticks.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let start_time: u64 = stat
        .rsplit_once(") ")
        .unwrap()
        .1
        .split(' ')
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let kill = |signal: &str| {
        let body = format!(r#"{{"start_time": {start_time}, "signal": "{signal}"}}"#);
        serving::send(
            &server.addr,
            &format!(
                "POST /api/processes/{pid}/kill HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ),
            &body,
        )
    };
    for signal in ["SIGSTOP", "SIGTSTP", "SIGCONT", "SIGUSR1"] {
        let answer = kill(signal);
        assert!(answer.starts_with("HTTP/1.1 400"), "{signal}: {answer}");
        assert!(answer.contains("signal_not_allowed"), "{answer}");
        assert!(answer.contains("SIGTERM"), "{answer}");
    }
    assert!(target.0.try_wait().unwrap().is_none(), "the target ended");
    let now = state(pid);
    assert!(
        !matches!(now, 'T' | 't' | 'Z'),
        "the target is in state {now}"
    );

    let answer = kill("SIGTERM");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let status = target.0.wait().unwrap();
    assert_eq!(status.signal(), Some(15), "{status:?}");
}

/// 1100 idle connections (more than the usual 1024 open files) do not
/// keep a normal request from being answered, nor does an open-file limit
/// lowered under them while the server runs: it closes the longest idle
/// ones and goes on.
#[cfg(all(feature = "serve", target_os = "linux"))]
#[test]
fn idle_connections_and_few_fds_do_not_stop_the_server() {
    use std::net::TcpStream;

    use rustix::process::{Pid, Resource, Rlimit, getrlimit, prlimit, setrlimit};

    const IDLE: usize = 1100;
    // Ours: room for the idle connections and the test's own files.
    let mut mine = getrlimit(Resource::Nofile);
    let want = (IDLE as u64) * 2 + 256;
    if mine.current.is_some_and(|soft| soft < want) {
        if mine.maximum.is_some_and(|hard| hard < want) {
            println!(
                "skipped: the hard open-file limit {:?} is under {want}",
                mine.maximum
            );
            return;
        }
        mine.current = Some(want);
        setrlimit(Resource::Nofile, mine).unwrap();
    }
    let mut server = Server::start();
    let pid = Pid::from_raw(server.child.id() as i32).unwrap();
    // The server raised its soft limit to its hard one at start.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.child.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    println!("the server's {line}");
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (soft, hard) = (fields[3], fields[4]);
    assert_eq!(soft, hard, "{line}");

    let token = server.token.clone();
    let answered = |server: &Server| {
        let answer = server.request(&format!(
            "GET /api/processes/{} HTTP/1.1\r\nAuthorization: Bearer {token}\r\n",
            std::process::id()
        ));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    };
    // Connected, and never a byte sent.
    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    answered(&server);

    // Fewer files than the connections it holds: the server closes idle
    // ones (the test's oldest) to stay under the limit, and answers.
    let low = 256;
    prlimit(
        Some(pid),
        Resource::Nofile,
        Rlimit {
            current: Some(low),
            maximum: hard.parse().ok(),
        },
    )
    .unwrap();
    let more: Vec<TcpStream> = (0..IDLE)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    answered(&server);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd", pid = server.child.id()))
        .unwrap()
        .count();
    println!("the server holds {fds} files under a limit of {low}");
    assert!(fds <= low as usize, "{fds} open files");
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server exited"
    );
    drop((idle, more));
}

/// Processes that run until their stdin closes: on drop (also when the
/// test fails) stdin is closed and the root waited for; each level of a
/// chain waits for its child, so nothing is left behind.
#[cfg(all(feature = "serve", target_os = "linux"))]
struct UntilStdinCloses(std::process::Child);

#[cfg(all(feature = "serve", target_os = "linux"))]
impl UntilStdinCloses {
    fn spawn(command: &mut std::process::Command) -> (UntilStdinCloses, String) {
        use std::io::{BufRead, BufReader};
        use std::process::Stdio;

        let mut child = UntilStdinCloses(
            command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut ready = String::new();
        BufReader::new(child.0.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        (child, ready)
    }
}

#[cfg(all(feature = "serve", target_os = "linux"))]
impl Drop for UntilStdinCloses {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

/// `GET {path}` until it answers 200 with a body that `done` accepts (the
/// server's table may be up to its max age old); the body.
#[cfg(all(feature = "serve", target_os = "linux"))]
fn get_until(server: &Server, path: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + HANG_GUARD;
    loop {
        let answer = server.request(&format!(
            "GET {path} HTTP/1.1\r\nAuthorization: Bearer {}\r\n",
            server.token
        ));
        let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        if answer.starts_with("HTTP/1.1 200") && done(body) {
            return body.to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path}: {}",
            &answer[..answer.len().min(500)]
        );
    }
}

/// A chain 300 deep is listed whole through the built binary (the JSON
/// nests 300 levels); a command line of a megabyte is cut in the listing,
/// with `"truncated": true`, and whole from `GET /api/processes/{pid}`.
#[cfg(all(feature = "serve", target_os = "linux"))]
#[test]
fn deep_chains_and_huge_command_lines_are_served() {
    use std::process::Command;

    const DEPTH: usize = 300;
    let server = Server::start();

    // Each level runs the next in the foreground (`; :` keeps the shell
    // from exec'ing it) and waits for it; the last reads stdin.
    let script =
        r#"if [ "$1" -gt 0 ]; then sh -c "$0" "$0" $(($1 - 1)); : ; else echo ready; read _; fi"#;
    let (chain, ready) = UntilStdinCloses::spawn(
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(script)
            .arg(DEPTH.to_string()),
    );
    assert_eq!(ready, "ready\n");
    let root = chain.0.id();
    let want = format!(r#"{{"count":{}"#, DEPTH + 1);
    let listing = get_until(&server, &format!("/api/processes?root={root}"), |body| {
        body.starts_with(&want)
    });
    assert_eq!(listing.matches(r#"{"process":"#).count(), DEPTH + 1);
    assert!(
        listing.ends_with(&"]}".repeat(DEPTH + 2)),
        "not nested {DEPTH} deep"
    );

    // 16 arguments of 64 KiB (one argument may hold at most 128 KiB).
    let big = "x".repeat(64 * 1024);
    let mut command = Command::new("sh");
    command.args(["-c", "echo ready; read _", "huge"]);
    for _ in 0..16 {
        command.arg(&big);
    }
    let (huge, ready) = UntilStdinCloses::spawn(&mut command);
    assert_eq!(ready, "ready\n");
    let pid = huge.0.id();
    // The listing follows events through a snapshot: until the exec is in
    // it, the row may still show the forked test process.
    let listing = get_until(&server, &format!("/api/processes?root={pid}"), |body| {
        body.starts_with(r#"{"count":1,"#) && body.contains(r#""truncated":true"#)
    });
    let listed: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let process = &listed["trees"][0]["process"];
    assert_eq!(process["truncated"], true, "{process}");
    let cut: usize = process["cmdline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|arg| arg.as_str().unwrap().len())
        .sum();
    assert!(cut <= 4096, "{cut} bytes of command line in the listing");
    assert!(listing.len() < 16 * 1024, "{} bytes", listing.len());

    let whole = get_until(&server, &format!("/api/processes/{pid}"), |_| true);
    let whole: serde_json::Value = serde_json::from_str(&whole).unwrap();
    let args = whole["cmdline"].as_array().unwrap();
    // sh, -c, the script, its $0, then the 16.
    assert_eq!(args.len(), 4 + 16);
    assert!(
        args[4..]
            .iter()
            .all(|arg| arg.as_str() == Some(big.as_str()))
    );
    assert!(whole.get("truncated").is_none());
    drop((chain, huge));
}

/// Run as root, `serve` refuses to start without --allow-root and says why.
#[cfg(all(feature = "serve", target_os = "linux"))]
#[test]
fn as_root_it_needs_allow_root() {
    use std::process::Command;

    if !serving::root() {
        println!("skipped: not running as root, so serve starts without --allow-root");
        return;
    }
    // Refused before it binds: no server is left to stop.
    let output = Command::new(BIN)
        .args(["serve", "--port", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("running as root"), "{stderr}");
    assert!(stderr.contains("--allow-root"), "{stderr}");
}

/// A reader that went away before the banner (`proctrack serve | true`) gets
/// a warning on stderr, and the server stays up rather than panicking.
#[cfg(all(feature = "serve", target_os = "linux"))]
#[test]
fn a_closed_stdout_does_not_take_the_server_down() {
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};

    struct Guard(Child);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    let (reader, writer) = std::io::pipe().unwrap();
    // Nobody will ever read what the server prints.
    drop(reader);
    let mut command = Command::new(BIN);
    command.args(["serve", "--port", "0"]);
    if serving::root() {
        command.arg("--allow-root");
    }
    let mut server = Guard(
        command
            .stdout(writer)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = BufReader::new(server.0.stderr.take().unwrap());
    let mut warning = String::new();
    stderr.read_line(&mut warning).unwrap();
    assert!(warning.contains("serving anyway"), "{warning:?}");
    // The sign-in lines follow: read them, so that the server is past them.
    for _ in 0..2 {
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
    }
    assert!(server.0.try_wait().unwrap().is_none(), "the server exited");
}

#[cfg(not(feature = "serve"))]
#[test]
fn without_the_feature_serve_says_how_to_get_it() {
    use std::process::Command;

    let output = Command::new(BIN).arg("serve").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--features serve"), "{stderr}");
}
