//! `proctrack run`: the command's exit status comes back, and neither its
//! end nor a Ctrl-C (SIGINT) to proctrack leaves anything of the job
//! behind, with a cgroup (where writable) and without. Each run writes its
//! job to a state directory of the test's own.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use proctrack::signal::{ProcessHandle, Signal};
use proctrack::supervisor::tag;
use proctrack::{Pid, ProcessSource, SystemSource};

const BIN: &str = env!("CARGO_BIN_EXE_proctrack");

/// A unique supervisor name per test: the tag its jobs carry.
fn name(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "run_{test}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A state directory of the test's own (never the machine's
/// /run/proctrack or the user's), removed on drop.
struct StateDir(std::path::PathBuf);

impl StateDir {
    fn new(name: &str) -> StateDir {
        let dir = std::env::temp_dir().join(format!("proctrack-{name}"));
        std::fs::create_dir(&dir).expect("state dir");
        StateDir(dir)
    }

    /// `proctrack run` that writes its job here.
    fn run(&self) -> Command {
        let mut command = Command::new(BIN);
        command.arg("run").env("PROCTRACK_STATE_DIR", &self.0);
        command
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Processes anywhere whose tag names a job of supervisor `name`.
fn tagged_by(name: &str) -> Vec<Pid> {
    let mut source = SystemSource::open().expect("source");
    let prefix = format!("{name}.");
    let mut out = Vec::new();
    for process in source.processes().expect("scan") {
        if let Ok(Some(environ)) = source.environ(process.identity())
            && tag::job_of(&environ).is_some_and(|id| id.starts_with(prefix.as_bytes()))
        {
            out.push(process.pid());
        }
    }
    out
}

/// `proctrack run`; dropping it (also when a test fails) kills it and every
/// process tagged with its name, and reaps it.
struct Run {
    child: Child,
    name: String,
    _state: StateDir,
}

impl Run {
    fn start(name: &str, extra: &[&str], script: &str) -> (Run, Lines<BufReader<ChildStdout>>) {
        let state = StateDir::new(name);
        let mut child = state
            .run()
            .args(["--name", name, "--grace", "5"])
            .args(extra)
            .args(["--", "sh", "-c", script])
            .stdout(Stdio::piped())
            .spawn()
            .expect("proctrack run starts");
        let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        (
            Run {
                child,
                name: name.to_owned(),
                _state: state,
            },
            lines,
        )
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in tagged_by(&self.name) {
            if let Ok(process) = proctrack::process(pid)
                && let Ok(handle) = ProcessHandle::open(process.identity())
            {
                let _ = handle.signal(Signal::Kill);
            }
        }
    }
}

/// A job whose processes each print `pid <pid>`: the root, a child and a
/// double-forked `setsid` daemon that leaves the tree.
const JOB: &str = "\
echo pid $$
sleep 600 & echo pid $!
( setsid sh -c 'echo pid $$; exec sleep 600' & )
wait";

fn ctrl_c_stops_the_whole_job(extra: &[&str]) {
    let name = name("sigint");
    let (mut run, mut lines) = Run::start(&name, extra, JOB);
    let mut pinned = Vec::new();
    while pinned.len() < 3 {
        let line = lines.next().expect("a line").expect("read");
        let pid: Pid = line
            .strip_prefix("pid ")
            .expect("pid <pid>")
            .parse()
            .expect("a pid");
        let identity = proctrack::process(pid).expect("running").identity();
        pinned.push(ProcessHandle::open(identity).expect("pin"));
    }
    let proctrack = ProcessHandle::from_child(&run.child).expect("pin proctrack");
    proctrack.signal(Signal::Int).expect("SIGINT");
    let status = run.child.wait().expect("proctrack ends");
    assert_eq!(status.code(), Some(130), "{status:?}");
    for handle in &pinned {
        assert!(
            handle.has_exited().expect("look"),
            "{} survived",
            handle.pid()
        );
    }
    // Every job process held the pipe: all of them are gone.
    assert!(lines.next().is_none());
    assert_eq!(tagged_by(&name), Vec::<Pid>::new());
}

#[test]
fn ctrl_c_stops_the_whole_job_and_exits_130() {
    ctrl_c_stops_the_whole_job(&[]);
}

#[test]
fn ctrl_c_stops_the_whole_job_without_a_cgroup() {
    ctrl_c_stops_the_whole_job(&["--no-cgroup"]);
}

#[test]
fn the_commands_status_comes_back_and_its_daemons_go() {
    for extra in [&[][..], &["--no-cgroup"][..]] {
        let name = name("status");
        let script = "( setsid sh -c 'echo pid $$; exec sleep 600' & ); read _ <&3; exit 7";
        // fd 3 is a pipe nobody writes to: `read` returns when we close it.
        let (reader, writer) = std::io::pipe().expect("pipe");
        let state = StateDir::new(&name);
        let mut child = state
            .run()
            .args(["--name", &name])
            .args(extra)
            .args(["--", "sh", "-c", &format!("exec 3<&0; {script}")])
            .stdin(reader)
            .stdout(Stdio::piped())
            .spawn()
            .expect("proctrack run starts");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut run = Run {
            child,
            name,
            _state: state,
        };
        let line = lines.next().expect("a line").expect("read");
        let pid: Pid = line
            .strip_prefix("pid ")
            .expect("pid")
            .parse()
            .expect("pid");
        let daemon =
            ProcessHandle::open(proctrack::process(pid).expect("running").identity()).expect("pin");
        drop(writer);
        let status = run.child.wait().expect("proctrack ends");
        assert_eq!(status.code(), Some(7), "{extra:?}: {status:?}");
        assert!(
            daemon.has_exited().expect("look"),
            "{extra:?}: the daemon survived"
        );
        assert!(lines.next().is_none());
    }
}

#[test]
fn a_command_that_cannot_start_is_not_mistaken_for_its_status() {
    let state = StateDir::new(&name("cannot_start"));
    let output = state
        .run()
        .args(["--no-cgroup", "--", "/nonexistent/program"])
        .output()
        .expect("proctrack runs");
    assert_eq!(output.status.code(), Some(125), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/program"), "{stderr}");
    let output = state
        .run()
        .args(["--name", "no spaces", "--", "true"])
        .output()
        .expect("proctrack runs");
    assert_eq!(output.status.code(), Some(125), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot name a supervisor"));
}
