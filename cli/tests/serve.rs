//! `proctrack serve`: with the `serve` feature it prints its address and
//! token once and answers on loopback; without it, it says how to get it.

/// The command under test (unused on macOS with the feature: no test there).
#[allow(dead_code)]
const BIN: &str = env!("CARGO_BIN_EXE_proctrack");

#[cfg(all(feature = "serve", target_os = "linux"))]
#[test]
fn serves_the_api_on_loopback_with_a_printed_token() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::process::{Child, Command, Stdio};

    /// The server, killed and reaped on drop (also when the test fails).
    struct Server(Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn request(addr: &str, head: &str) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(stream, "{head}Host: {addr}\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    let mut server = Server(
        Command::new(BIN)
            .args(["serve", "--port", "0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The first line is printed once the socket listens.
    // The reader lives as long as the server: a closed pipe is its own test.
    let mut banner = BufReader::new(server.0.stdout.take().unwrap());
    let mut first = String::new();
    banner.read_line(&mut first).unwrap();
    let url = first
        .trim()
        .strip_prefix("proctrack serves http://")
        .unwrap_or_else(|| panic!("{first:?}"));
    let (addr, token) = url.split_once("/#token=").unwrap();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert_eq!(token.len(), 64, "{token}");

    let listing = request(addr, "GET /api/processes?root=1 HTTP/1.1\r\n");
    assert!(listing.starts_with("HTTP/1.1 200"), "{listing}");
    let refused = request(
        addr,
        "POST /api/processes/1/kill HTTP/1.1\r\nContent-Length: 0\r\n",
    );
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");

    // The event stream, through the built binary's own runtime (its SSE
    // keep-alive needs timers): the answer's head, then a first event once
    // a process starts and exits.
    let mut stream = TcpStream::connect(addr).unwrap();
    // A hang guard, not a timing assertion.
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
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
    assert!(server.0.try_wait().unwrap().is_none(), "the server exited");
}

/// A reader that went away before the banner (`proctrack serve | true`) gets
/// a warning on stderr, and the server stays up rather than panicking.
#[cfg(all(feature = "serve", target_os = "linux"))]
#[test]
fn a_closed_stdout_does_not_take_the_server_down() {
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};

    struct Server(Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    let (reader, writer) = std::io::pipe().unwrap();
    // Nobody will ever read what the server prints.
    drop(reader);
    let mut server = Server(
        Command::new(BIN)
            .args(["serve", "--port", "0"])
            .stdout(writer)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut warning = String::new();
    BufReader::new(server.0.stderr.take().unwrap())
        .read_line(&mut warning)
        .unwrap();
    assert!(warning.contains("serving anyway"), "{warning:?}");
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
