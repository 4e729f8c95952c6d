//! The built `proctrack` binary, run as a user would: bad input, pipes,
//! JSON, and real process trees that it lists and kills.
#![cfg(target_os = "linux")]

#[allow(dead_code)]
#[path = "../../tests/support/kernel.rs"]
mod kernel;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};

use proctrack::{Liveness, Pid};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_proctrack");

fn proctrack(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("the proctrack binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the exit code and that standard error holds `message`.
fn assert_fails(args: &[&str], code: i32, message: &str) {
    let output = proctrack(args);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(code), "{args:?}: {err}");
    assert!(err.contains(message), "{args:?}: {err:?} lacks {message:?}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
}

#[test]
fn bad_pids_are_usage_errors_that_say_why() {
    assert_fails(&["kill", "0"], 2, "0 is not a valid pid: pids start at 1");
    assert_fails(&["kill", "-1"], 2, "-1 is not a valid pid: pids start at 1");
    assert_fails(&["kill", "-9"], 2, "would read -9 as process group 9");
    assert_fails(&["kill", "abc"], 2, "abc is not a pid");
    assert_fails(&["kill", "2147483648"], 2, "pids go up to 2147483647");
    assert_fails(
        &["kill", "--grace", "-3", "42"],
        2,
        "not a number of seconds",
    );
    assert_fails(&["kill"], 2, "required");
    assert_fails(&["tree", "0"], 2, "pids start at 1");
    // Nothing was killed by any of them: we are still here, and so is pid 1.
}

/// pid 1 and a kernel thread are refused alike: one `refused` row each,
/// exit 1, nothing signalled.
#[test]
fn protected_targets_are_refused_the_same_way() {
    let output = proctrack(&["kill", "1"]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}{}", stderr(&output));
    assert!(out.starts_with("refused "), "{out}");
    assert!(out.contains("it is pid 1 (init): "), "{out}");
    assert!(
        out.contains("0 killed") && out.contains("1 refused"),
        "{out}"
    );

    // pid 2 is the kernel's kthreadd on Linux, unless in a pid namespace.
    let two = proctrack::process(Pid::try_from(2).expect("valid"));
    if two.is_ok_and(|p| p.is_kernel_thread()) {
        let output = proctrack(&["kill", "2"]);
        let out = stdout(&output);
        assert_eq!(output.status.code(), Some(1), "{out}");
        assert!(out.starts_with("refused "), "{out}");
        assert!(out.contains("it is a kernel thread: [kthreadd]"), "{out}");
        assert!(
            out.contains("0 killed") && out.contains("1 refused"),
            "{out}"
        );
    }

    let json = parse(&proctrack(&["kill", "--json", "1"]).stdout);
    assert_eq!(json["reports"][0]["refused"][0]["reason"], "init");
    assert_eq!(json["reports"][0]["refused"][0]["identity"]["pid"], 1);
}

#[test]
fn a_missing_directory_is_a_warning_and_exit_1() {
    let missing = "/nonexistent/proctrack-test-dir";
    for args in [
        &["kill", "--cwd", missing][..],
        &["kill", "--dry-run", "--cwd", missing],
        &["ps", "--cwd", missing],
        &["tree", "--cwd", missing],
    ] {
        assert_fails(args, 1, "/nonexistent/proctrack-test-dir does not exist");
    }
}

#[test]
fn a_missing_pid_is_an_error_and_exit_1() {
    // A valid pid above this kernel's pid_max: never taken.
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max").expect("pid_max");
    assert!(pid_max.trim().parse::<i64>().expect("a number") < 2147483647);
    assert_fails(&["kill", "2147483647"], 1, "no process has pid 2147483647");
    assert_fails(&["tree", "2147483647"], 1, "no process has pid 2147483647");
}

#[test]
fn help_documents_exit_codes() {
    for args in [&["--help"][..], &["watch", "--help"], &["kill", "--help"]] {
        let output = proctrack(args);
        let out = stdout(&output);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(out.contains("Usage: proctrack"), "{out}");
        assert!(out.contains("Exit codes:"), "{out}");
        assert!(out.contains("2  usage error"), "{out}");
    }
}

#[test]
fn watch_says_what_it_watches_and_stops() {
    let output = proctrack(&["watch", "--count", "0"]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(out.starts_with("watching "), "{out}");
    assert!(out.contains("events from "), "{out}");
}

/// A child killed (and reaped) when dropped, also when the test fails.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn watch_follows_a_tree_with_exit_codes_and_stops_when_its_root_exits() {
    let _serial = serial();
    // The followed tree: on a line, a grandchild of ours exits 3; then the
    // root exits 0.
    let mut target = Reaped(
        Command::new("sh")
            .args(["-c", "read _; sh -c 'exit 3'; exit 0"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("sh starts"),
    );
    let root = target.0.id().to_string();
    let mut watch = Reaped(
        Command::new(BIN)
            .args(["watch", "--json", "--pid", &root])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("watch starts"),
    );
    // A hang guard, never a timing assertion: a stuck watch is killed
    // through its pidfd, which cannot name another process.
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_child(&watch.0),
        rustix::process::PidfdFlags::empty(),
    )
    .expect("pidfd of watch");
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(60));
        let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
    });
    // The header on stderr: the tracker listens from here on.
    let mut header = String::new();
    BufReader::new(watch.0.stderr.take().expect("piped"))
        .read_line(&mut header)
        .expect("header");
    assert!(header.starts_with("watching 1 processes"), "{header}");
    let mut stdin = target.0.stdin.take().expect("piped");
    std::io::Write::write_all(&mut stdin, b"go\n").expect("write");
    drop(stdin);
    let events: Vec<Value> = BufReader::new(watch.0.stdout.take().expect("piped"))
        .lines()
        .map(|line| parse(line.expect("a line").as_bytes()))
        .collect();
    let status = watch.0.wait().expect("watch ends");
    assert!(status.success(), "{status:?}");
    let exits: Vec<(String, Option<i64>)> = events
        .iter()
        .filter(|e| e["event"] == "exited")
        .map(|e| (e["pid"].to_string(), e["exit_code"].as_i64()))
        .collect();
    assert!(
        exits
            .iter()
            .any(|(pid, code)| *pid != root && *code == Some(3)),
        "the grandchild's exit code 3: {events:?}"
    );
    assert_eq!(exits.last(), Some(&(root.clone(), Some(0))), "{events:?}");
    assert!(events.iter().all(|e| e["origin"] == "kernel"), "{events:?}");
}

#[test]
fn a_closed_pipe_ends_quietly() {
    // As a user types it: the status of `proctrack tree` in `| head -1`.
    let output = Command::new("sh")
        .args([
            "-c",
            r#"{ "$0" tree; echo "status=$?" >&2; } | head -1"#,
            BIN,
        ])
        .output()
        .expect("sh runs");
    let err = stderr(&output);
    assert!(err.contains("status=0"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(stdout(&output).lines().count(), 1);

    // Deterministically: the reader is gone before the first write.
    for args in [&["tree"][..], &["ps", "--json"], &["tree", "--json"]] {
        let (reader, writer) = rustix::pipe::pipe().expect("pipe");
        drop(reader);
        let output = Command::new(BIN)
            .args(args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .expect("runs");
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&output)
        );
        assert_eq!(stderr(&output), "", "{args:?}");
    }
}

/// On a terminal (a pty from `script`, 60 columns): lines are cut to the
/// width and coloured; `-w` prints them whole.
#[test]
fn a_terminal_gets_cut_and_coloured_lines() {
    let on_terminal = |args: &str| -> Option<String> {
        let command = format!("stty cols 60 rows 0; {BIN} {args}");
        let output = Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .ok()?;
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        Some(stdout(&output))
    };
    let Some(cut) = on_terminal("ps") else {
        eprintln!("skipped: no `script` to make a terminal");
        return;
    };
    assert!(cut.contains("\x1b["), "colour on a terminal: {cut:?}");
    let visible = |line: &str| strip_ansi(line).trim_end_matches('\r').chars().count();
    assert!(cut.lines().all(|line| visible(line) <= 60), "{cut}");
    assert!(
        cut.contains('…'),
        "some command line is longer than 60: {cut}"
    );

    let wide = on_terminal("-w ps").expect("ran once already");
    assert!(wide.lines().any(|line| visible(line) > 60), "{wide}");
}

/// `text` without `ESC [ ... m` colour sequences.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn json_listings_parse() {
    let ps = parse(&proctrack(&["ps", "--json"]).stdout);
    let all = ps.as_array().expect("an array");
    let me = all
        .iter()
        .find(|p| p["identity"]["pid"] == std::process::id())
        .expect("the test process is listed");
    assert_eq!(
        me["cmdline"][0].as_str(),
        std::env::args().next().as_deref()
    );
    assert!(me["cwd"]["path"].is_string());
    assert_eq!(me["cwd"]["deleted"], false);
    assert!(me["identity"]["boot_id"].is_string());

    // The test process's own tree: the machine's may hold chains deeper
    // than a JSON parser's nesting limit.
    let me = std::process::id().to_string();
    let tree = parse(&proctrack(&["tree", &me, "--json"]).stdout);
    assert!(tree.as_array().is_some_and(|roots| !roots.is_empty()));
    assert!(tree[0]["process"]["identity"]["pid"].is_u64());
    assert!(tree[0]["children"].is_array());
}

#[test]
fn dry_run_kills_nothing_and_kill_kills_the_tree() {
    let _serial = serial();
    let dir = TempDir::new("dry-run");
    let tree = SpawnedTree::start(&dir.0);
    let root = tree.root.to_string();

    // The tree as `tree PID --json` and `ps --cwd` see it.
    let shown = parse(&proctrack(&["tree", "--json", &root]).stdout);
    assert_eq!(shown[0]["process"]["identity"]["pid"], tree.root.as_raw());
    assert_eq!(shown[0]["children"].as_array().map(Vec::len), Some(2));
    let listed = parse(&proctrack(&["ps", "--json", "--cwd", dir.path()]).stdout);
    assert_eq!(pids(&listed, ""), tree.all());

    // --dry-run lists all three and leaves them running.
    let output = proctrack(&["kill", "--dry-run", "--json", &root]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let plan = parse(&output.stdout);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(pids(&plan["would_kill"], "identity"), tree.all());
    let text = stdout(&proctrack(&["kill", "--dry-run", &root]));
    assert!(
        text.contains("dry run: 3 would be killed, 0 refused"),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "no colour into a pipe: {text:?}");
    for pid in tree.all() {
        assert_eq!(alive(pid), Liveness::Alive, "pid {pid} after --dry-run");
    }

    // A real kill ends every member.
    let output = proctrack(&["kill", "--json", "--grace", "5", &root]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report = parse(&output.stdout);
    assert_eq!(report["dry_run"], false);
    let killed = report["reports"][0]["killed"].as_array().expect("killed");
    assert_eq!(killed.len(), 3, "{report}");
    for member in killed {
        assert_eq!(member["signal"], "SIGTERM", "{report}");
    }
    tree.reap_all();
    for pid in tree.all() {
        assert_eq!(alive(pid), Liveness::Gone, "pid {pid} after kill");
    }
}

#[test]
fn kill_by_directory_kills_the_tree_standing_there() {
    let _serial = serial();
    let dir = TempDir::new("by-cwd");
    let tree = SpawnedTree::start(&dir.0);

    let output = proctrack(&["kill", "--cwd", dir.path(), "--grace", "5"]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{}", stderr(&output));
    assert!(out.contains("3 killed"), "{out}");
    // sh and sleep end on SIGTERM, within the grace period.
    let by_term = out.lines().filter(|l| l.starts_with("killed by SIGTERM "));
    assert_eq!(by_term.count(), 3, "{out}");
    tree.reap_all();
    for pid in tree.all() {
        assert_eq!(alive(pid), Liveness::Gone, "pid {pid} after kill --cwd");
    }
}

/// A python3 server that listens on a port and forks a child that shares
/// the socket; both wait on stdin. Dropping it kills and reaps both.
struct Server {
    child: Child,
    forked: Pid,
    port: u16,
}

impl Server {
    fn start() -> Server {
        const SCRIPT: &str = "import os, socket, sys\n\
s = socket.socket()\n\
s.bind(('127.0.0.1', 0))\n\
s.listen()\n\
r, w = os.pipe()\n\
pid = os.fork()\n\
if pid == 0:\n    os.write(w, b'x')\n    sys.stdin.read()\n    os._exit(0)\n\
os.read(r, 1)\n\
print(s.getsockname()[1], pid, flush=True)\n\
sys.stdin.read()\n";
        let mut child = Command::new("/usr/bin/python3")
            .args(["-c", SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 starts");
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the server reports");
        let mut words = line.split_whitespace();
        let port = words.next().and_then(|w| w.parse().ok());
        let forked = words.next().and_then(|w| w.parse::<i64>().ok());
        let server = Server {
            child,
            forked: forked
                .and_then(|raw| Pid::try_from(raw).ok())
                .unwrap_or(Pid::current()),
            port: port.unwrap_or(0),
        };
        assert!(
            server.port != 0 && server.forked != Pid::current(),
            "bad report {line:?}"
        );
        server
    }

    fn pids(&self) -> Vec<Pid> {
        let mut pids = vec![Pid::try_from(self.child.id()).expect("valid"), self.forked];
        pids.sort_unstable();
        pids
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Both are ours until reaped (the forked one comes to us, the
        // subreaper, when the server dies): signalling by pid is safe.
        for pid in self.pids() {
            if let Some(pid) = rustix::process::Pid::from_raw(pid.as_raw()) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        let _ = self.child.wait();
        reap(self.forked);
    }
}

#[test]
fn port_shows_every_holder_and_kill_port_kills_the_tree() {
    let _serial = serial();
    let server = Server::start();
    let port = server.port.to_string();

    let output = proctrack(&["port", "--json", &port]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let shown = parse(&output.stdout);
    let holders = &shown["listeners"][0]["holders"];
    let mut held: Vec<Pid> = holders
        .as_array()
        .expect("holders")
        .iter()
        .map(|h| Pid::try_from(h["identity"]["pid"].as_i64().expect("pid")).expect("valid"))
        .collect();
    held.sort_unstable();
    assert_eq!(held, server.pids(), "{shown}");
    let text = stdout(&proctrack(&["port", &port]));
    assert!(text.contains(&format!("tcp 127.0.0.1:{port}")), "{text}");
    assert!(text.contains("2 holders"), "{text}");

    let output = proctrack(&["kill", "--port", &port, "--dry-run"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(
        text.contains("dry run: 2 would be killed, 0 refused"),
        "{text}"
    );
    for pid in server.pids() {
        assert_eq!(alive(pid), Liveness::Alive, "pid {pid} after --dry-run");
    }

    let output = proctrack(&["kill", "--port", &port, "--grace", "5"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(text.contains("2 killed"), "{text}");
    let output = proctrack(&["port", &port]);
    assert_eq!(output.status.code(), Some(1), "nothing listens any more");
    assert!(stderr(&output).contains(&format!("nothing listens on port {port}")));
}

/// A tree started as uid `user`: `sh` with a `sleep` of its own and a
/// `sleep` that a setuid helper turned into uid `other`. Dropping it kills
/// and reaps all three, also when a test fails.
struct UidTree {
    child: Child,
    own: Pid,
    other: Pid,
}

impl UidTree {
    fn start(helper: &Path, user: u32, other: u32) -> UidTree {
        use std::os::unix::process::CommandExt;
        let script = r#"sleep 1000 & echo "own $!"
"$0" --reuid "$1" --regid "$1" --clear-groups sh -c 'echo "other $$"; exec sleep 1000' &
wait"#;
        let mut child = Command::new("sh")
            .args(["-c", script])
            .arg(helper)
            .arg(other.to_string())
            .current_dir("/")
            .uid(user)
            .gid(user)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh starts");
        let stdout = child.stdout.take().expect("piped");
        let mut tree = UidTree {
            child,
            own: Pid::current(),
            other: Pid::current(),
        };
        // Both lines, in either order; the other one once it is uid `other`.
        for line in BufReader::new(stdout).lines().take(2) {
            let line = line.expect("a line");
            let (who, pid) = line.split_once(' ').expect("who and pid");
            let pid: Pid = pid.parse().expect("a pid");
            match who {
                "own" => tree.own = pid,
                _ => tree.other = pid,
            }
        }
        assert!(
            tree.own != Pid::current() && tree.other != Pid::current(),
            "sh reported both members"
        );
        tree
    }

    fn root(&self) -> Pid {
        Pid::try_from(self.child.id()).expect("valid")
    }
}

impl Drop for UidTree {
    fn drop(&mut self) {
        // The root first: once it is reaped, its children are ours (we are
        // a subreaper) and unreaped, so their pids are safe to signal.
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in [self.own, self.other] {
            if pid == Pid::current() {
                continue;
            }
            if let Some(pid) = rustix::process::Pid::from_raw(pid.as_raw()) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            reap(pid);
        }
    }
}

/// `kill` run by a user that may signal only part of the tree: the rest is
/// `denied`, and that is exit 1.
#[test]
fn kill_that_is_denied_part_of_the_tree_exits_1() {
    const USER: u32 = 65533;
    const OTHER: u32 = 65534;
    if let Err(why) = kernel::may_change_uid() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = TempDir::new("setuid-helper");
    let helper = match kernel::setuid_helper(&dir.0, USER, OTHER) {
        Ok(helper) => helper,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let _serial = serial();
    let tree = UidTree::start(&helper, USER, OTHER);
    let root = tree.root().to_string();
    let output = {
        use std::os::unix::process::CommandExt;
        match Command::new(BIN)
            .args(["kill", "--grace", "0", &root])
            .uid(USER)
            .gid(USER)
            .output()
        {
            Ok(output) => output,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                eprintln!("skipped: uid {USER} may not run {BIN}: {e}");
                return;
            }
            Err(e) => panic!("run as uid {USER}: {e}"),
        }
    };
    let out = stdout(&output);
    print!("{out}");
    assert_eq!(output.status.code(), Some(1), "{out}{}", stderr(&output));
    let other = tree.other.to_string();
    assert!(
        out.lines()
            .any(|l| l.starts_with("denied") && l.split_whitespace().any(|w| w == other)),
        "{out}"
    );
    assert!(
        out.contains("2 killed") && out.contains("1 denied"),
        "{out}"
    );
    assert_eq!(alive(tree.other), Liveness::Alive, "denied, not killed");
    assert_ne!(alive(tree.own), Liveness::Alive, "killed");
    drop(tree);
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// The pids of a JSON array of processes (`at` is the key of the process
/// object in each element, or "" when the element is one), ascending.
fn pids(list: &Value, at: &str) -> Vec<Pid> {
    let mut pids: Vec<Pid> = list
        .as_array()
        .expect("an array")
        .iter()
        .map(|item| {
            let identity = if at.is_empty() {
                &item["identity"]
            } else {
                &item[at]
            };
            let raw = identity["pid"].as_i64().expect("a pid");
            Pid::try_from(raw).expect("valid")
        })
        .collect();
    pids.sort_unstable();
    pids
}

fn alive(pid: Pid) -> Liveness {
    proctrack::exists(pid).expect("exists() reads /proc")
}

/// One forking test at a time: the subreaper's orphans are reaped by pid,
/// and two trees in one process must not confuse that.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    static SUBREAPER: Once = Once::new();
    SUBREAPER.call_once(|| {
        // Our grandchildren outlive their `sh` parent during a kill: they
        // must come to us, not to a pid 1 that reaps late, so we reap them.
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .expect("PR_SET_CHILD_SUBREAPER");
    });
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `sh` with two `sleep` children, standing in a directory. Its pids come
/// back on a pipe, so nothing here waits by sleeping. Dropping it kills and
/// reaps whatever is left, also when a test fails.
struct SpawnedTree {
    child: Child,
    root: Pid,
    sleepers: Vec<Pid>,
}

impl SpawnedTree {
    fn start(dir: &Path) -> SpawnedTree {
        let mut child = Command::new("sh")
            .args([
                "-c",
                "sleep 1000 & echo $!; sleep 1000 & echo $!; echo ready; wait",
            ])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh starts");
        let root = Pid::try_from(child.id()).expect("valid");
        let stdout = child.stdout.take().expect("piped");
        // From here on, Drop cleans up whatever happens.
        let mut tree = SpawnedTree {
            child,
            root,
            sleepers: Vec::new(),
        };
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("sh prints its children's pids");
            if line == "ready" {
                break;
            }
            tree.sleepers.push(line.parse().expect("a pid"));
        }
        assert_eq!(tree.sleepers.len(), 2, "sh said it started two sleepers");
        tree
    }

    fn all(&self) -> Vec<Pid> {
        let mut all = self.sleepers.clone();
        all.push(self.root);
        all.sort_unstable();
        all
    }

    /// Collects the exit status of the root (our child) and of the sleepers
    /// that came to us as orphans; the rest their parent collected.
    fn reap_all(&self) {
        reap(self.root);
        for &pid in &self.sleepers {
            reap(pid);
        }
    }
}

/// Waits for `pid` if it is our child; ECHILD when it is not (any more).
fn reap(pid: Pid) {
    let pid = rustix::process::Pid::from_raw(pid.as_raw()).expect("positive");
    let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
}

impl Drop for SpawnedTree {
    fn drop(&mut self) {
        // Every pid here is ours until reaped (a zombie keeps its pid), so
        // signalling by pid cannot hit a stranger.
        for &pid in self.sleepers.iter().chain([&self.root]) {
            if let Some(pid) = rustix::process::Pid::from_raw(pid.as_raw()) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        let _ = self.child.wait();
        for &pid in &self.sleepers {
            reap(pid);
        }
    }
}

/// A directory of its own under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("proctrack-cli-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        // The kernel reports resolved paths (/tmp may be a symlink).
        TempDir(std::fs::canonicalize(&dir).expect("it exists"))
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary directory")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
