//! `proctrack run` leaves its job in the state directory; `jobs` lists it,
//! live or orphaned (the run SIGKILLed), `stop` stops it, a second `run` of
//! the name stops what a dead one left, and `tree` marks the members. Every
//! test has a state directory of its own (PROCTRACK_STATE_DIR).
#![cfg(target_os = "linux")]

#[path = "../../tests/support/kernel.rs"]
#[allow(dead_code)]
mod kernel;

use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use proctrack::signal::{ProcessHandle, Signal};
use proctrack::supervisor::tag;
use proctrack::{Pid, ProcessSource, SystemSource};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_proctrack");

/// How long anything may take before the test fails (and its guards clean
/// up): a hang guard, never a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// The job: a shell and two sleepers, which says `ready` once both exist.
const JOB: &str = "sleep 1000 & sleep 1000 & echo ready; wait";

/// Orphans of the runs we SIGKILL reparent to us, not to pid 1 (which
/// reaps late here): we reap them.
fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .expect("PR_SET_CHILD_SUBREAPER");
    });
}

/// A unique supervisor name per test.
fn name(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "jobs_{test}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
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

/// A directory of our own under the temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("proctrack-{name}"));
        std::fs::create_dir(&path).expect("mkdir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One test's state directory and supervisor name; dropping it (also when
/// the test fails) kills every `proctrack run` it started and every process
/// tagged with its name, and reaps what is ours.
struct Fixture {
    dir: TempDir,
    name: String,
    runs: Vec<Child>,
    pins: Vec<ProcessHandle>,
}

impl Fixture {
    fn new(test: &str) -> Fixture {
        become_subreaper();
        let name = name(test);
        Fixture {
            dir: TempDir::new(&name),
            name,
            runs: Vec::new(),
            pins: Vec::new(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env("PROCTRACK_STATE_DIR", self.dir.path())
            .env("NO_COLOR", "1");
        command
    }

    fn proctrack(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("proctrack runs")
    }

    /// `proctrack run --name <name> [extra] -- sh -c JOB`, once the job says
    /// it is ready; returns its index in `runs`.
    fn run(&mut self, extra: &[&str]) -> (usize, Lines<BufReader<ChildStdout>>) {
        let files = job_files(self.dir.path());
        let mut args = vec!["run", "--name", &self.name];
        args.extend(extra);
        args.extend(["--", "sh", "-c", JOB]);
        let mut child = self
            .command(&args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("proctrack run starts");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        self.runs.push(child);
        let ready = lines.next().expect("a line").expect("read");
        assert_eq!(ready, "ready");
        // `run` writes the job down just after the job starts.
        wait_for_job_files(self.dir.path(), files + 1);
        (self.runs.len() - 1, lines)
    }

    /// `jobs --json`, parsed; the jobs of this test's name.
    fn jobs(&self) -> Vec<Value> {
        let output = self.proctrack(&["jobs", "--json"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let json: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        assert_eq!(json["state_dir"], self.dir.path().to_str().expect("utf-8"));
        json["jobs"].as_array().expect("an array").clone()
    }

    /// Pins every member of `job` (a `jobs --json` entry), to see each end.
    fn pin_members(&mut self, job: &Value) {
        for member in job["members"].as_array().expect("members") {
            let identity = &member["process"]["identity"];
            let pid = Pid::try_from(identity["pid"].as_i64().expect("pid")).expect("pid");
            let process = proctrack::process(pid).expect("running");
            assert_eq!(
                Some(process.start_time().as_raw()),
                identity["start_time"].as_u64()
            );
            self.pins
                .push(ProcessHandle::open(process.identity()).expect("pin"));
        }
    }

    /// SIGKILL to `proctrack run` number `index`, as the OOM killer sends
    /// it, and its status collected.
    fn crash(&mut self, index: usize) {
        let run = &mut self.runs[index];
        run.kill().expect("SIGKILL");
        run.wait().expect("reap");
    }

    /// Every pinned member has exited; the ones that became our children
    /// are reaped.
    fn assert_members_gone(&self) {
        for pin in &self.pins {
            assert!(
                pin.wait_timeout(HANG_GUARD).expect("wait"),
                "{} is still running",
                pin.pid()
            );
            let _ = pin.try_reap();
        }
        assert_eq!(tagged_by(&self.name), Vec::<Pid>::new());
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for run in &mut self.runs {
            let _ = run.kill();
            let _ = run.wait();
        }
        for pid in tagged_by(&self.name) {
            if let Ok(process) = proctrack::process(pid)
                && let Ok(handle) = ProcessHandle::open(process.identity())
            {
                let _ = handle.signal(Signal::Kill);
                let _ = handle.wait_timeout(HANG_GUARD);
                let _ = handle.try_reap();
            }
        }
        for pin in &self.pins {
            let _ = pin.signal(Signal::Kill);
            let _ = pin.wait_timeout(HANG_GUARD);
            let _ = pin.try_reap();
        }
    }
}

/// How many job files `dir` holds.
fn job_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("the state directory")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".job"))
        })
        .count()
}

/// Blocks until `dir` holds `count` job files, woken by inotify (a job file
/// is renamed into place); fails after [`HANG_GUARD`].
fn wait_for_job_files(dir: &Path, count: usize) {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    use rustix::fs::inotify;
    let events = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
        .expect("inotify");
    inotify::add_watch(
        &events,
        dir,
        inotify::WatchFlags::MOVED_TO | inotify::WatchFlags::CREATE,
    )
    .expect("watch the state directory");
    let deadline = Instant::now() + HANG_GUARD;
    let mut buf = [0u8; 4096];
    // Looked at after the watch is set: no rename falls in between.
    while job_files(dir) < count {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no job file in {} in time", dir.display());
        let timeout = Timespec::try_from(left).expect("a timeout");
        let mut fds = [PollFd::new(&events, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(errno) => panic!("poll: {errno}"),
        }
        // Drained: the next poll waits for new events.
        while rustix::io::read(&events, &mut buf).is_ok_and(|n| n > 0) {}
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The job's cgroup, which it must have where the kernel lets us make one
/// (and must not have with --no-cgroup).
fn expected_cgroup(job: &Value, no_cgroup: bool) -> Option<PathBuf> {
    let cgroup = job["containment"]["cgroup"].as_str().map(PathBuf::from);
    match (no_cgroup, kernel::cgroup2_writable()) {
        (true, _) => assert_eq!(cgroup, None, "{job:#}"),
        (false, Ok(_)) => assert!(cgroup.as_deref().is_some_and(Path::is_dir), "{job:#}"),
        (false, Err(why)) => {
            assert_eq!(cgroup, None, "{job:#}");
            eprintln!("no job cgroups here: {why}");
        }
    }
    cgroup
}

fn a_killed_run_is_orphaned_and_stop_orphaned_ends_it(extra: &[&str]) {
    let mut fixture = Fixture::new("orphan");
    let (index, _lines) = fixture.run(extra);
    let jobs = fixture.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    let job = jobs[0].clone();
    assert_eq!(job["name"], fixture.name.as_str());
    assert_eq!(job["orphaned"], false);
    assert_eq!(job["supervisor"]["alive"], true);
    assert_eq!(job["processes"], 3, "{job:#}");
    assert_eq!(job["command"], serde_json::json!(["sh", "-c", JOB]));
    let started = job["started"].as_str().expect("a start time");
    assert!(started.len() == 20 && started.ends_with('Z'), "{started}");
    assert!(
        job["started_ms"].as_u64().is_some_and(|ms| ms > 0),
        "{job:#}"
    );
    let cgroup = expected_cgroup(&job, !extra.is_empty());
    fixture.pin_members(&job);

    fixture.crash(index);
    let jobs = fixture.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    let orphan = &jobs[0];
    assert_eq!(orphan["id"], job["id"]);
    assert_eq!(orphan["orphaned"], true, "{orphan:#}");
    assert_eq!(orphan["supervisor"]["alive"], false);
    assert_eq!(orphan["processes"], 3, "{orphan:#}");
    let members = orphan["members"].as_array().expect("members");
    assert_eq!(members.len(), 3, "{orphan:#}");
    for member in members {
        let found_by = member["found_by"].as_array().expect("found_by");
        assert!(found_by.contains(&"tag".into()), "{member:#}");
        assert_eq!(found_by.contains(&"cgroup".into()), cgroup.is_some());
    }
    let text = stdout(&fixture.proctrack(&["jobs"]));
    assert!(text.contains("orphaned"), "{text}");

    let output = fixture.proctrack(&["stop", "--orphaned"]);
    let out = stdout(&output);
    eprintln!("{out}{}", stderr(&output));
    assert_eq!(output.status.code(), Some(0), "{out}{}", stderr(&output));
    assert!(
        out.contains(&format!("job {}", job["id"].as_str().expect("id"))),
        "{out}"
    );
    assert!(
        out.contains("3 killed, 0 already gone, 0 denied, 0 survived"),
        "{out}"
    );
    fixture.assert_members_gone();
    if let Some(cgroup) = &cgroup {
        assert!(!cgroup.exists(), "{} is still there", cgroup.display());
        assert!(out.contains("removed"), "{out}");
    }
    assert_eq!(fixture.jobs(), Vec::<Value>::new());
    assert_eq!(
        std::fs::read_dir(fixture.dir.path()).expect("dir").count(),
        0,
        "the job's file is removed"
    );
}

#[test]
fn a_killed_run_is_orphaned_and_stop_orphaned_ends_it_with_a_cgroup_where_writable() {
    a_killed_run_is_orphaned_and_stop_orphaned_ends_it(&[]);
}

#[test]
fn a_killed_run_is_orphaned_and_stop_orphaned_ends_it_without_a_cgroup() {
    a_killed_run_is_orphaned_and_stop_orphaned_ends_it(&["--no-cgroup"]);
}

#[test]
fn a_second_run_of_the_name_stops_what_a_dead_one_left() {
    let mut fixture = Fixture::new("second");
    let (index, _lines) = fixture.run(&[]);
    let job = fixture.jobs()[0].clone();
    let cgroup = expected_cgroup(&job, false);
    fixture.pin_members(&job);
    fixture.crash(index);

    let output = fixture.proctrack(&["run", "--name", &fixture.name, "--", "true"]);
    let err = stderr(&output);
    eprintln!("{err}");
    assert_eq!(output.status.code(), Some(0), "{err}");
    let id = job["id"].as_str().expect("id");
    assert!(
        err.contains(&format!(
            "job {id} of a run named {} that died was still there: stopped 3 process(es) (3 killed",
            fixture.name
        )),
        "{err}"
    );
    assert!(!err.contains("not proven"), "{err}");
    fixture.assert_members_gone();
    if let Some(cgroup) = &cgroup {
        assert!(!cgroup.exists(), "{} is still there", cgroup.display());
        assert!(err.contains("removed"), "{err}");
    }
    assert_eq!(fixture.jobs(), Vec::<Value>::new());
}

#[test]
fn run_adopt_takes_over_what_a_dead_run_left_and_stops_it_on_ctrl_c() {
    let mut fixture = Fixture::new("adopt");
    let (index, _lines) = fixture.run(&[]);
    let job = fixture.jobs()[0].clone();
    let id = job["id"].as_str().expect("id").to_owned();
    let cgroup = expected_cgroup(&job, false);
    fixture.pin_members(&job);
    fixture.crash(index);
    assert_eq!(fixture.jobs()[0]["orphaned"], true);

    // No command: the run lasts as long as what it took over.
    let mut adopter = fixture
        .command(&["run", "--name", &fixture.name, "--adopt"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("proctrack run --adopt starts");
    let mut err = BufReader::new(adopter.stderr.take().expect("piped")).lines();
    let said = err.next().expect("a line").expect("read");
    fixture.runs.push(adopter);
    assert!(
        said.starts_with(&format!(
            "proctrack: took over job {id} of a run named {} that died: 3 process(es)",
            fixture.name
        )),
        "{said}"
    );
    // Its job again, not an orphan: `stop --orphaned` leaves it alone.
    let jobs = fixture.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["id"], id.as_str());
    assert_eq!(jobs[0]["orphaned"], false, "{}", jobs[0]);
    assert_eq!(jobs[0]["processes"], 3, "{}", jobs[0]);
    let output = fixture.proctrack(&["stop", "--orphaned"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(fixture.pins.iter().all(|p| !p.has_exited().expect("look")));

    // Ctrl-C to the adopting run stops the job it took over.
    let adopter = fixture.runs.last_mut().expect("the adopter");
    let pid = Pid::try_from(adopter.id()).expect("pid");
    let handle = ProcessHandle::open(proctrack::process(pid).expect("runs").identity())
        .expect("pin the adopter");
    handle.signal(Signal::Int).expect("SIGINT");
    let status = adopter.wait().expect("reap");
    assert_eq!(status.code(), Some(128 + 2), "{status:?}");
    fixture.assert_members_gone();
    if let Some(cgroup) = &cgroup {
        assert!(!cgroup.exists(), "{} is still there", cgroup.display());
    }
    assert_eq!(fixture.jobs(), Vec::<Value>::new());
    // The state directory holds nothing more: no job, no adoption claim.
    assert_eq!(
        std::fs::read_dir(fixture.dir.path()).expect("dir").count(),
        0
    );
}

#[test]
fn a_live_job_is_stopped_only_with_force_and_by_its_own_proctrack() {
    let mut fixture = Fixture::new("live");
    let (index, _lines) = fixture.run(&[]);
    let job = fixture.jobs()[0].clone();
    fixture.pin_members(&job);
    let id = job["id"].as_str().expect("id").to_owned();

    let output = fixture.proctrack(&["stop", &id]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("is running"),
        "{}",
        stderr(&output)
    );
    assert!(fixture.pins.iter().all(|p| !p.has_exited().expect("look")));
    // --orphaned leaves it alone too.
    let output = fixture.proctrack(&["stop", "--orphaned"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(fixture.pins.iter().all(|p| !p.has_exited().expect("look")));

    let output = fixture.proctrack(&["stop", "--force", &id]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{}", stderr(&output));
    assert!(out.contains(&format!("job {id}")), "{out}");
    // The run stopped its job as on Ctrl-C, and says so in its status.
    let status = fixture.runs[index].wait().expect("reap");
    assert_eq!(status.code(), Some(128 + 15), "{status:?}");
    fixture.assert_members_gone();
    assert_eq!(fixture.jobs(), Vec::<Value>::new());

    let output = fixture.proctrack(&["stop", "nonsense", &format!("{}.1-1.1", fixture.name)]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("\"nonsense\" is not a job id"), "{err}");
    assert!(err.contains("nothing of it was found"), "{err}");
}

#[test]
fn tree_marks_each_member_with_its_job() {
    let mut fixture = Fixture::new("tree");
    let (index, _lines) = fixture.run(&[]);
    let job = fixture.jobs()[0].clone();
    let id = job["id"].as_str().expect("id");
    let run = fixture.runs[index].id().to_string();

    let output = fixture.proctrack(&["tree", "-w", &run]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    let marked = out
        .lines()
        .filter(|line| line.contains(&format!("[job {id}: ")))
        .count();
    assert_eq!(marked, 3, "{out}");

    let output = fixture.proctrack(&["tree", "--json", &run]);
    let trees: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let root = &trees[0];
    assert!(root.get("job").is_none(), "proctrack itself is no member");
    let shell = &root["children"][0];
    assert_eq!(shell["job"]["job"], id);
    let found_by = shell["job"]["found_by"].as_array().expect("found_by");
    assert!(found_by.contains(&"tag".into()) && found_by.contains(&"tree".into()));
    for sleeper in shell["children"].as_array().expect("children") {
        assert_eq!(sleeper["job"]["job"], id);
    }
}

#[test]
fn files_that_are_not_jobs_are_named_and_left_alone() {
    let fixture = Fixture::new("files");
    let foreign = fixture.dir.path().join("notes.txt");
    std::fs::write(&foreign, "mine").expect("write");
    let newer = fixture.dir.path().join("x.1-2.3.job");
    std::fs::write(&newer, "proctrack-job 9\nwhatever\n").expect("write");
    let output = fixture.proctrack(&["jobs"]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("notes.txt: not a proctrack job file"), "{err}");
    assert!(err.contains("format 9 by a newer proctrack"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(foreign.exists() && newer.exists());
}

/// A job `stop` may not signal (run as another user: every signal is
/// denied) is reported as not proven gone, exit 1, and stays written down.
/// Needs root, to run `stop` as uid 65534; skipped otherwise.
#[test]
fn what_stop_cannot_prove_gone_is_said_and_stays_written_down() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to run stop as another user");
        return;
    }
    let mut fixture = Fixture::new("denied");
    let (index, _lines) = fixture.run(&["--no-cgroup"]);
    let job = fixture.jobs()[0].clone();
    fixture.pin_members(&job);
    fixture.crash(index);
    std::os::unix::fs::chown(fixture.dir.path(), Some(65534), Some(65534)).expect("chown");

    let output = {
        use std::os::unix::process::CommandExt;
        fixture
            .command(&["stop", "--orphaned"])
            .uid(65534)
            .gid(65534)
            .output()
            .expect("proctrack runs")
    };
    let out = stdout(&output);
    let err = stderr(&output);
    eprintln!("{out}{err}");
    assert_eq!(output.status.code(), Some(1), "{out}{err}");
    // Each process once, however many rounds met it.
    assert!(
        out.contains("0 killed, 0 already gone, 3 denied, 0 survived"),
        "{out}"
    );
    assert!(fixture.pins.iter().all(|p| !p.has_exited().expect("look")));
    // Still listed, still orphaned: a stop as root ends it.
    let jobs = fixture.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    assert_eq!(jobs[0]["processes"], 3);
    let output = fixture.proctrack(&["stop", "--orphaned"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    fixture.assert_members_gone();
}
