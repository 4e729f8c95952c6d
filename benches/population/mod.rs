//! A process population for benches: a few `sh` parents, each with hundreds of
//! `sleep` children, created at bench start and removed at the end.
//!
//! Shared by several benches (`mod population;`); each uses part of it.
//!
//! Safety rules this follows (this machine's pid 1 does not reap orphans):
//! - the bench process becomes a child subreaper before anything is spawned, so
//!   every `sleep` is reparented to it, never to pid 1, when its `sh` dies;
//! - teardown kills and reaps top-down by pid (the `sh` first, then each
//!   `sleep` once it is verified to be our child), never with `waitpid(-1)`;
//! - teardown also runs from `Drop`, so a panicking bench leaves nothing;
//! - each `sh` holds a pipe from the bench on stdin: if the bench dies without
//!   tearing down, the `sh` sees end of file and kills its `sleep` children.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Resource, Signal, WaitOptions};

/// How long the children may take to finish their `exec` of `sleep`.
const EXEC_DEADLINE: Duration = Duration::from_secs(30);

/// The script each parent runs: start `$1` sleepers, print each pid, print
/// `ready`, then block on stdin. End of file on stdin (the bench died) kills
/// the sleepers. The sleepers do not hold the stdout pipe, so it ends when the
/// shell does.
const SCRIPT: &str = r#"
n=$1
pids=
i=0
while [ "$i" -lt "$n" ]; do
    sleep 100000 </dev/null >/dev/null &
    echo $!
    pids="$pids $!"
    i=$((i + 1))
done
echo ready
read -r _
kill -KILL $pids
"#;

/// Running extra processes: `parents` shells, each the parent of `children`
/// sleepers. Dropping it kills and reaps all of them.
pub struct Population {
    parents: Vec<Parent>,
    torn_down: bool,
}

struct Parent {
    shell: Child,
    /// Held open only as a dead-man switch; see the module docs.
    _stdin: Option<ChildStdin>,
    /// The shell's report, until read up to `ready` or end of file.
    report: Option<BufReader<ChildStdout>>,
    children: Vec<Pid>,
    ready: bool,
}

impl Parent {
    /// Reads the shell's report up to `ready`, or to end of file if the shell
    /// failed, recording each child pid. Afterwards every child the shell
    /// started is known.
    fn read_report(&mut self) -> io::Result<()> {
        let Some(report) = self.report.take() else {
            return Ok(());
        };
        for line in report.lines() {
            let line = line?;
            if line == "ready" {
                self.ready = true;
                break;
            }
            let raw: i32 = line
                .trim()
                .parse()
                .map_err(|_| bad(format!("unexpected line {line:?}")))?;
            self.children
                .push(Pid::from_raw(raw).ok_or_else(|| bad(format!("bad pid {raw}")))?);
        }
        Ok(())
    }
}

impl Population {
    /// Starts `parents` shells with `children` sleepers each and returns once
    /// every sleeper has been forked (each shell says so through its stdout
    /// pipe) and has become `sleep` (its exec has completed).
    pub fn spawn(parents: usize, children: usize) -> io::Result<Population> {
        let total = parents * (children + 1);
        raise_limit(Resource::Nproc, total as u64 + 4096)?;
        raise_limit(Resource::Nofile, 4096)?;
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;

        // Partly built populations are torn down by Drop on every error path.
        let mut population = Population {
            parents: Vec::with_capacity(parents),
            torn_down: false,
        };
        for _ in 0..parents {
            let mut shell = Command::new("sh")
                .args(["-c", SCRIPT, "population", &children.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()?;
            population.parents.push(Parent {
                _stdin: shell.stdin.take(),
                report: shell.stdout.take().map(BufReader::new),
                shell,
                children: Vec::with_capacity(children),
                ready: false,
            });
        }
        // Forking happens in all shells at once; read their reports in turn.
        for parent in &mut population.parents {
            parent.read_report()?;
            if !parent.ready || parent.children.len() != children {
                return Err(bad(format!(
                    "shell {} started {} of {children} children",
                    parent.shell.id(),
                    parent.children.len()
                )));
            }
        }
        population.wait_for_exec()?;
        Ok(population)
    }

    /// Number of extra processes: shells plus sleepers.
    pub fn len(&self) -> usize {
        self.parents.iter().map(|p| 1 + p.children.len()).sum()
    }

    /// Pids of the shells, the roots of the population's subtrees.
    pub fn roots(&self) -> Vec<Pid> {
        self.parents
            .iter()
            .filter_map(|p| Pid::from_raw(p.shell.id() as i32))
            .collect()
    }

    /// Pids of every process of the population, roots first.
    pub fn pids(&self) -> Vec<Pid> {
        let mut pids = self.roots();
        pids.extend(self.parents.iter().flat_map(|p| p.children.iter().copied()));
        pids
    }

    /// Kills and reaps every process. Returns how many were reaped.
    pub fn teardown(mut self) -> io::Result<usize> {
        self.kill_and_reap()
    }

    /// A forked child is reported at once but runs `sh` until its exec of
    /// `sleep` completes; wait for that, so the scans see a stable population.
    /// Not a timed sleep: each check reads `/proc/<pid>/comm` and yields.
    fn wait_for_exec(&self) -> io::Result<()> {
        let deadline = Instant::now() + EXEC_DEADLINE;
        for pid in self.parents.iter().flat_map(|p| p.children.iter()) {
            let path = format!("/proc/{}/comm", pid.as_raw_nonzero());
            while std::fs::read(&path)? != b"sleep\n" {
                if Instant::now() > deadline {
                    return Err(bad(format!("pid {pid:?} did not exec sleep in time")));
                }
                std::thread::yield_now();
            }
        }
        Ok(())
    }

    /// Top-down: learn every child pid (a shell interrupted by an error path
    /// is let finish its report first), kill each shell and reap it, so its
    /// sleepers are reparented to us (the subreaper); then kill and reap each
    /// sleeper by pid, having checked that it is now our child: only we can
    /// reap it, so its pid cannot have been reused by an unrelated process.
    fn kill_and_reap(&mut self) -> io::Result<usize> {
        if self.torn_down {
            return Ok(0);
        }
        self.torn_down = true;
        let me = rustix::process::getpid();
        let mut reaped = 0;
        for parent in &mut self.parents {
            if let Err(err) = parent.read_report() {
                eprintln!("population: report of shell {}: {err}", parent.shell.id());
            }
        }
        for parent in &mut self.parents {
            // Kill fails only if the shell already exited; wait reaps it either way.
            let _ = parent.shell.kill();
            parent.shell.wait()?;
            reaped += 1;
        }
        let ours: Vec<Pid> = self
            .parents
            .iter()
            .flat_map(|p| p.children.iter().copied())
            .filter(|&pid| parent_of(pid) == Some(me))
            .collect();
        for &pid in &ours {
            // A zombie accepts the signal too; ESRCH cannot happen for our child.
            let _ = rustix::process::kill_process(pid, Signal::KILL);
        }
        for &pid in &ours {
            rustix::process::waitpid(Some(pid), WaitOptions::empty())?;
            reaped += 1;
        }
        Ok(reaped)
    }
}

impl Drop for Population {
    fn drop(&mut self) {
        if let Err(err) = self.kill_and_reap() {
            eprintln!("population teardown failed: {err}");
        }
    }
}

/// The parent pid field of `/proc/<pid>/stat`; `None` if the process is gone.
fn parent_of(pid: Pid) -> Option<Pid> {
    let stat = std::fs::read(format!("/proc/{}/stat", pid.as_raw_nonzero())).ok()?;
    let after_comm = &stat[stat.iter().rposition(|&b| b == b')')? + 1..];
    let ppid = std::str::from_utf8(after_comm)
        .ok()?
        .split_ascii_whitespace()
        .nth(1)?;
    Pid::from_raw(ppid.parse().ok()?)
}

/// Raises a soft limit to at least `want` (capped by the hard limit).
fn raise_limit(resource: Resource, want: u64) -> io::Result<()> {
    let mut limit = rustix::process::getrlimit(resource);
    match limit.current {
        Some(current) if current < want => {
            limit.current = Some(limit.maximum.map_or(want, |max| max.min(want)));
            rustix::process::setrlimit(resource, limit)?;
        }
        _ => {}
    }
    Ok(())
}

fn bad(message: String) -> io::Error {
    io::Error::other(message)
}
