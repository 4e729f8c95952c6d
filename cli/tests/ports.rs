//! `proctrack ports`, run as a user would: a population of listeners we
//! start (TCP and UDP, IPv4, IPv6 and dual-stack where the kernel has IPv6,
//! and one socket shared by forked workers), compared with `ss -ltnupH`,
//! filtered by protocol, printed as text, and seen by another user.
//!
//! Every listener is a python3 process that binds, prints `ready ...` on a
//! pipe (readiness, never a sleep) and waits on stdin. The [`Population`]
//! guard kills and reaps every one of them, workers included, also when an
//! assertion fails; the test process is a child subreaper, so workers whose
//! parent dies first come to it.
#![cfg(target_os = "linux")]

#[allow(dead_code)]
#[path = "../../tests/support/kernel.rs"]
mod kernel;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_proctrack");

/// One listener of each kind, by its first argument; it prints
/// `ready PROTOCOL PORT PID...` with every pid that holds the socket.
const LISTENER: &str = r#"
import os, socket, sys
mode = sys.argv[1]
def make(family, kind, addr, v6only=None):
    s = socket.socket(family, kind)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    s.bind((addr, 0))
    if kind == socket.SOCK_STREAM:
        s.listen()
    return s
tcp, udp, v4, v6 = socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.AF_INET, socket.AF_INET6
s = {
    "tcp4": lambda: make(v4, tcp, "127.0.0.1"),
    "tcp6": lambda: make(v6, tcp, "::1", v6only=1),
    "dual": lambda: make(v6, tcp, "::", v6only=0),
    "udp4": lambda: make(v4, udp, "127.0.0.1"),
    "udp6": lambda: make(v6, udp, "::1", v6only=1),
    "workers": lambda: make(v4, tcp, "127.0.0.1"),
}[mode]()
pids = [os.getpid()]
if mode == "workers":
    # Forked after listen: every worker holds the one socket (the fd is
    # theirs the moment fork returns).
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            sys.stdin.read()
            os._exit(0)
        pids.append(pid)
proto = "udp" if s.type == udp else "tcp"
print("ready", proto, s.getsockname()[1], *pids, flush=True)
sys.stdin.read()
"#;

/// (protocol, port, pid): what `ss -p` and `ports --json` are compared on.
type Held = BTreeSet<(String, u16, i32)>;

/// One started listener: its python3 process, the kind, the socket's
/// protocol and port, and every pid that holds it (the process first).
struct Started {
    child: Child,
    mode: &'static str,
    protocol: String,
    port: u16,
    pids: Vec<i32>,
}

/// Listeners we started. Dropping it kills every process (workers first,
/// while their parent keeps their pids from reuse), then reaps them all.
struct Population {
    started: Vec<Started>,
}

impl Population {
    /// Starts one listener per mode, each ready before the next starts.
    fn start(modes: &[&'static str]) -> Population {
        let mut population = Population {
            started: Vec::new(),
        };
        for &mode in modes {
            let mut child = Command::new("/usr/bin/python3")
                .args(["-c", LISTENER, mode])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("python3 starts (.ci/test installs it)");
            let stdout = child.stdout.take().expect("piped");
            // Owned by the guard before anything can fail.
            population.started.push(Started {
                child,
                mode,
                protocol: String::new(),
                port: 0,
                pids: Vec::new(),
            });
            let mut line = String::new();
            BufReader::new(stdout)
                .read_line(&mut line)
                .expect("the listener reports");
            let words: Vec<&str> = line.split_whitespace().collect();
            assert!(
                words.len() >= 4 && words[0] == "ready",
                "{mode}: bad line {line:?}"
            );
            let started = population.started.last_mut().expect("just pushed");
            started.protocol = words[1].to_owned();
            started.port = words[2].parse().expect("a port");
            started.pids = words[3..]
                .iter()
                .map(|w| w.parse().expect("a pid"))
                .collect();
        }
        population
    }

    /// Every (protocol, port, pid) the population holds.
    fn held(&self) -> Held {
        self.started
            .iter()
            .flat_map(|s| s.pids.iter().map(|&pid| (s.protocol.clone(), s.port, pid)))
            .collect()
    }

    fn pids(&self) -> BTreeSet<i32> {
        self.started
            .iter()
            .flat_map(|s| s.pids.iter().copied())
            .collect()
    }

    fn get(&self, mode: &str) -> Option<&Started> {
        self.started.iter().find(|s| s.mode == mode)
    }
}

impl Drop for Population {
    fn drop(&mut self) {
        for started in &mut self.started {
            // The workers are unreaped children of a parent that never
            // waits, then ours (we are a subreaper): their pids are pinned
            // until we reap them, so signalling by pid is safe.
            for &pid in started.pids.iter().skip(1) {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
            let _ = started.child.kill();
            let _ = started.child.wait();
            for &pid in started.pids.iter().skip(1) {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    // ECHILD when it never became ours.
                    let _ =
                        rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
                }
            }
        }
    }
}

/// The kinds to start: IPv6 ones only where the kernel lets us bind [::1].
fn modes() -> Vec<&'static str> {
    let mut modes = vec!["tcp4", "udp4", "workers"];
    match kernel::ipv6_loopback() {
        Ok(()) => modes.extend(["tcp6", "dual", "udp6"]),
        Err(why) => eprintln!("no IPv6 listeners: {why}"),
    }
    modes
}

/// One test at a time: the machine-wide comparison should not see the
/// other tests' listeners come and go. Also makes us a child subreaper.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    static SUBREAPER: Once = Once::new();
    SUBREAPER.call_once(|| {
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .expect("PR_SET_CHILD_SUBREAPER");
    });
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("the proctrack binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// `ports --json` (with `args`), exit 0, as its JSON.
fn ports_json(args: &[&str]) -> Value {
    let mut all = vec!["ports", "--json"];
    all.extend_from_slice(args);
    let output = run(&all);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    parse(&output.stdout)
}

/// The (protocol, port, pid) of every holder in a `ports --json` answer.
fn held_by_ports(json: &Value) -> Held {
    let mut held = Held::new();
    for listener in json["listeners"].as_array().expect("listeners") {
        let socket = &listener["socket"];
        let protocol = socket["protocol"]
            .as_str()
            .expect("a protocol")
            .to_lowercase();
        let port = port_of(socket["local"].as_str().expect("an address"));
        for holder in listener["holders"].as_array().expect("holders") {
            let pid = holder["identity"]["pid"].as_i64().expect("a pid");
            held.insert((protocol.clone(), port, pid as i32));
        }
    }
    held
}

/// The port of `127.0.0.1:80`, `[::]:80`, `*:80`, `127.0.0.53%lo:53`.
fn port_of(address: &str) -> u16 {
    address
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {address:?}"))
}

/// `ss -ltnupH`: every listening TCP and bound UDP socket's holders, from
/// its `users:(("name",pid=N,fd=M),...)` field.
fn held_by_ss() -> Held {
    let output = Command::new("ss")
        .arg("-ltnupH")
        .output()
        .expect("run ss (iproute2; .ci/test installs it)");
    assert!(output.status.success(), "ss failed: {output:?}");
    let mut held = Held::new();
    for line in text(&output.stdout).lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let protocol = match fields.first() {
            Some(&"tcp") => "tcp",
            Some(&"udp") => "udp",
            _ => continue,
        };
        // Netid State Recv-Q Send-Q Local Peer [Process].
        let Some(local) = fields.get(4) else { continue };
        let port = port_of(local);
        for rest in line.split("pid=").skip(1) {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            held.insert((protocol.to_owned(), port, digits.parse().expect("a pid")));
        }
    }
    held
}

/// `ports --json` against `ss -ltnupH`: on our population, the same
/// (protocol, port, pid) set, and the one we started; machine-wide, every
/// holder ss shows is ours too, unless asking again proves the socket
/// changed between the calls.
#[test]
fn ports_agrees_with_ss() {
    let _serial = serial();
    let population = Population::start(&modes());
    let expected = population.held();
    let pids = population.pids();

    let ss_before = held_by_ss();
    let json = ports_json(&[]);
    let ss_after = held_by_ss();
    let ours = held_by_ports(&json);

    let only_ours = |held: &Held| -> Held {
        held.iter()
            .filter(|(_, _, pid)| pids.contains(pid))
            .cloned()
            .collect()
    };
    assert_eq!(only_ours(&ours), expected, "ports --json on our population");
    assert_eq!(only_ours(&ss_before), expected, "ss on our population");
    assert_eq!(only_ours(&ss_after), expected, "ss again on our population");

    // Machine-wide: what one shows and the other does not is a
    // disagreement, unless asking again proves the socket came or went.
    let mut changed = Vec::new();
    for held in ss_before.difference(&ours) {
        // Gone by the second ss: it may have closed before ports looked.
        assert!(
            !ss_after.contains(held),
            "ss shows {held:?} before and after ports, ports does not"
        );
        changed.push(held.clone());
    }
    let mut ss_later = None;
    let mut ours_later = None;
    for held in ours.difference(&ss_before) {
        if ss_after.contains(held) {
            // It came between the first ss and ports.
            changed.push(held.clone());
            continue;
        }
        // Neither ss saw it: it must be gone now, for both.
        let ss_later = ss_later.get_or_insert_with(held_by_ss);
        let ours_later = ours_later.get_or_insert_with(|| held_by_ports(&ports_json(&[])));
        assert!(
            !ss_later.contains(held) && !ours_later.contains(held),
            "ports shows {held:?}, ss did not before nor after"
        );
        changed.push(held.clone());
    }
    println!(
        "ss and ports agree on all {} (protocol, port, pid) of our population; \
         machine-wide ss showed {}, ports {}, {} changed between the calls: {changed:?}",
        expected.len(),
        ss_before.len(),
        ours.len(),
        changed.len()
    );
    // The listeners' trees: every holder we started is in one.
    let trees = json["trees"].to_string();
    for pid in &pids {
        assert!(trees.contains(&format!("\"pid\":{pid},")), "{pid} in trees");
    }
    assert!(json["not_permitted"].is_array());
    drop(population);
}

/// The shapes of our listeners in `ports --json`: dual stack, v6 only, the
/// forked workers on one socket; and sorted by protocol, port, address.
#[test]
fn ports_json_describes_each_socket() {
    let _serial = serial();
    let population = Population::start(&modes());
    let json = ports_json(&[]);
    let listeners = json["listeners"].as_array().expect("listeners");
    let find = |mode: &str| -> &Value {
        let started = population.get(mode).expect("started");
        let mut found = listeners.iter().filter(|l| {
            l["holders"]
                .as_array()
                .is_some_and(|h| h.iter().any(|h| h["identity"]["pid"] == started.pids[0]))
                && port_of(l["socket"]["local"].as_str().unwrap_or("")) == started.port
        });
        let one = found.next().unwrap_or_else(|| panic!("{mode} listed"));
        assert!(found.next().is_none(), "{mode} listed once");
        one
    };
    let workers = population.get("workers").expect("started");
    let shared = find("workers");
    assert_eq!(shared["socket"]["protocol"], "Tcp");
    assert_eq!(
        shared["holders"].as_array().map(Vec::len),
        Some(workers.pids.len()),
        "one socket, every worker: {shared}"
    );
    assert_eq!(find("udp4")["socket"]["protocol"], "Udp");
    if population.get("dual").is_some() {
        let dual = &find("dual")["socket"];
        assert_eq!(dual["v6_only"], false, "{dual}");
        assert!(
            dual["local"]
                .as_str()
                .is_some_and(|a| a.starts_with("[::]:"))
        );
        let only6 = &find("tcp6")["socket"];
        assert_eq!(only6["v6_only"], true, "{only6}");
        assert!(
            only6["local"]
                .as_str()
                .is_some_and(|a| a.starts_with("[::1]:"))
        );
        assert_eq!(find("udp6")["socket"]["protocol"], "Udp");
    }
    // Sorted: protocol, port, IPv4 before IPv6.
    let keys: Vec<(String, u16, bool)> = listeners
        .iter()
        .map(|l| {
            let local = l["socket"]["local"].as_str().expect("address");
            (
                l["socket"]["protocol"].to_string(),
                port_of(local),
                local.starts_with('['),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    drop(population);
}

#[test]
fn tcp_and_udp_filter_the_listing() {
    let _serial = serial();
    let population = Population::start(&["tcp4", "udp4", "workers"]);
    let all = population.held();
    let of = |protocol: &str| -> Held {
        all.iter()
            .filter(|(p, _, _)| p == protocol)
            .cloned()
            .collect()
    };
    for (flag, kept, dropped, name) in [
        ("--tcp", "tcp", "udp", "Tcp"),
        ("--udp", "udp", "tcp", "Udp"),
    ] {
        let json = ports_json(&[flag]);
        let listeners = json["listeners"].as_array().expect("listeners");
        assert!(
            listeners.iter().all(|l| l["socket"]["protocol"] == name),
            "{flag}: {json}"
        );
        let held = held_by_ports(&json);
        assert!(held.is_superset(&of(kept)), "{flag} keeps our {kept}");
        assert!(held.is_disjoint(&of(dropped)), "{flag} drops our {dropped}");

        let output = run(&["ports", flag]);
        let shown = text(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        assert!(
            shown
                .lines()
                .filter(|l| !l.starts_with(' '))
                .all(|l| l.starts_with(&format!("{kept} "))),
            "{flag}: {shown}"
        );
    }
    let output = run(&["ports", "--tcp", "--udp"]);
    assert_eq!(output.status.code(), Some(2), "one protocol or both");
    drop(population);
}

#[test]
fn text_shows_every_holder_with_its_port() {
    let _serial = serial();
    let population = Population::start(&modes());
    let output = run(&["ports"]);
    let shown = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    for started in &population.started {
        let local = match started.mode {
            "tcp4" | "udp4" | "workers" => format!("127.0.0.1:{}", started.port),
            "tcp6" | "udp6" => format!("[::1]:{}", started.port),
            _ => format!("[::]:{} (IPv4 too)", started.port),
        };
        let header = format!("{} {local}, socket ", started.protocol);
        let block: Vec<&str> = shown
            .lines()
            .skip_while(|l| !l.starts_with(&header))
            .take_while(|l| l.starts_with(&header) || l.starts_with(' '))
            .collect();
        assert!(!block.is_empty(), "{header:?} in {shown}");
        let holders = started.pids.len();
        let count = format!(", {holders} holder{}", if holders == 1 { "" } else { "s" });
        assert!(block[0].ends_with(&count), "{block:?}");
        for pid in &started.pids {
            let line = format!("  pid {pid} fd ");
            let holder = block.iter().find(|l| l.starts_with(&line));
            // The holder's line names its directory and command.
            assert!(
                holder.is_some_and(|l| l.contains(" in /") && l.contains("python3")),
                "{line:?} in {block:?}"
            );
        }
    }
    // Into a pipe nothing is cut nor coloured.
    assert!(!shown.contains('…') && !shown.contains('\x1b'), "{shown}");
    drop(population);
}

/// As another user, root's listeners are listed without holders, with a
/// warning that says why and what to do, and exit 0.
#[test]
fn another_user_is_told_what_it_could_not_read() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: only root can run the command as another user");
        return;
    }
    if let Err(why) = kernel::may_change_uid() {
        eprintln!("skipped: {why}");
        return;
    }
    let _serial = serial();
    let population = Population::start(&["tcp4"]);
    let started = population.get("tcp4").expect("started");
    let as_nobody = |args: &[&str]| Command::new(BIN).args(args).uid(65534).gid(65534).output();
    let output = match as_nobody(&["ports", "--tcp"]) {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!("skipped: nobody may not run {BIN}: {e}");
            return;
        }
        Err(e) => panic!("run as nobody: {e}"),
    };
    let (shown, warned) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{warned}");
    assert!(
        warned.contains("could not be read (other users': run as root to include them)"),
        "{warned}"
    );
    let header = format!("tcp 127.0.0.1:{}, socket ", started.port);
    let block: Vec<&str> = shown
        .lines()
        .skip_while(|l| !l.starts_with(&header))
        .take(2)
        .collect();
    assert!(
        block.len() == 2 && block[0].ends_with(", 0 holders"),
        "{shown}"
    );
    assert!(
        block[1].starts_with("  no holder found: likely among the "),
        "{block:?}"
    );
    let json = parse(&as_nobody(&["ports", "--json"]).expect("ran once").stdout);
    let denied = json["not_permitted"].to_string();
    assert!(denied.contains(&started.pids[0].to_string()), "{denied}");
    drop(population);
}
