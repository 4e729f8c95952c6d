//! `proctrack stop`: stop jobs of `proctrack run` by id, or every orphaned
//! one, through the library's recover (the one kill engine), and report
//! like `kill`.

use std::collections::{BTreeMap, HashMap};

use std::time::Duration;

use proctrack::signal::{KillCounts, KillReport, ProcessHandle, Signal};
use proctrack::supervisor::{
    JobId, RecoverFilter, RecoveredJob, StateDir, Supervisor, SupervisorOptions, instance_alive,
};
use proctrack::table::ProcessTable;
use proctrack::{Pid, ProcessIdentity, StartTime};
use serde::Serialize;

use crate::args::StopArgs;
use crate::jobs::{read_jobs, state_dir};
use crate::kill::report_lines;
use crate::list::describe;
use crate::output::{self, Out};
use crate::{Error, Outcome};

#[derive(Serialize)]
struct StopJson<'a> {
    jobs: Vec<StoppedJson<'a>>,
    /// Jobs whose running proctrack stopped them on our SIGTERM (--force),
    /// of which nothing was found afterwards.
    stopped_by_their_proctrack: &'a [String],
    /// Jobs named that were not stopped, and why.
    not_stopped: &'a [NotStopped],
    /// Everything of every job is proven gone, and no job was left out.
    complete: bool,
}

#[derive(Serialize)]
struct StoppedJson<'a> {
    id: String,
    cgroup: Option<&'a std::path::Path>,
    /// The cgroup is gone after the stop.
    cgroup_removed: Option<bool>,
    /// Found in the state directory (else by its tag or cgroup only).
    journaled: bool,
    kill: &'a KillReport,
}

#[derive(Clone, Serialize)]
struct NotStopped {
    id: String,
    why: String,
}

pub fn run(args: &StopArgs, out: &mut Out) -> Result<Outcome, Error> {
    let state = state_dir()?;
    let mut table = ProcessTable::new()?;
    let (jobs, skipped) = read_jobs(&state, &mut table)?;
    // Names, taken before the kill: afterwards the processes are gone.
    let names: HashMap<ProcessIdentity, String> =
        table.iter().map(|p| (p.identity(), describe(p))).collect();

    let mut not_stopped: Vec<NotStopped> = Vec::new();
    // The jobs to stop, by supervisor name: a supervisor recovers its
    // name's jobs.
    let mut chosen: BTreeMap<String, Vec<JobId>> = BTreeMap::new();
    // Named jobs whose proctrack runs (with --force): it is asked to stop
    // them, then what is left goes as for an orphaned job.
    let mut live: Vec<JobId> = Vec::new();
    if args.orphaned {
        for job in jobs.iter().filter(|job| job.is_orphaned()) {
            chosen
                .entry(job.record.id.supervisor().to_owned())
                .or_default()
                .push(job.record.id.clone());
        }
    }
    for text in &args.jobs {
        let id: JobId = match text.parse() {
            Ok(id) => id,
            Err(error) => {
                not_stopped.push(NotStopped {
                    id: text.clone(),
                    why: error.to_string(),
                });
                continue;
            }
        };
        let alive = jobs
            .iter()
            .find(|job| job.record.id == id)
            .map_or_else(|| instance_alive(&table, &id), |job| job.supervisor_alive);
        if alive && !args.force {
            let (pid, _) = id.instance();
            not_stopped.push(NotStopped {
                id: id.to_string(),
                why: format!(
                    "its proctrack (pid {pid}) is running: stop it there (Ctrl-C), \
                     or add --force to send that proctrack SIGTERM"
                ),
            });
            continue;
        }
        if alive {
            live.push(id.clone());
        }
        chosen
            .entry(id.supervisor().to_owned())
            .or_default()
            .push(id);
    }

    // Each live proctrack once, however many of its jobs were named.
    let mut asked: Vec<(Pid, StartTime)> = Vec::new();
    for id in &live {
        let instance = id.instance();
        if asked.contains(&instance) {
            continue;
        }
        asked.push(instance);
        if let Err(why) = stop_supervisor(&table, instance) {
            not_stopped.push(NotStopped {
                id: id.to_string(),
                why,
            });
        }
    }

    let mut stopped: Vec<RecoveredJob> = Vec::new();
    for (name, ids) in &chosen {
        let filter = if args.jobs.is_empty() {
            // --orphaned: what recover would stop, those found without a
            // file too.
            RecoverFilter::dead()
        } else {
            RecoverFilter::jobs(ids.iter().cloned())
        };
        match recover(&state, name, &filter) {
            Ok(jobs) => stopped.extend(jobs),
            Err(why) => not_stopped.extend(ids.iter().map(|id| NotStopped {
                id: id.to_string(),
                why: why.clone(),
            })),
        }
    }
    // A job named that nothing was found of.
    let mut by_supervisor: Vec<String> = Vec::new();
    for ids in chosen.values() {
        for id in ids {
            let found = stopped.iter().any(|job| &job.id == id);
            let failed = not_stopped.iter().any(|n| n.id == id.as_str());
            // Its proctrack stopped it and removed its file: nothing left.
            if !found && !failed && live.contains(id) {
                by_supervisor.push(id.to_string());
                continue;
            }
            if !found && !failed {
                not_stopped.push(NotStopped {
                    id: id.to_string(),
                    why: format!(
                        "nothing of it was found: no file in {}, no process with its tag, no cgroup",
                        state.path().display()
                    ),
                });
            }
        }
    }

    let mut counts = KillCounts::default();
    for job in &stopped {
        counts.add(&job.kill);
    }
    let cgroup_left = |job: &RecoveredJob| job.cgroup.as_ref().is_some_and(|path| path.exists());
    let cgroups_left = stopped.iter().filter(|job| cgroup_left(job)).count();
    let complete = not_stopped.is_empty() && counts.is_complete() && cgroups_left == 0;
    let outcome = if complete && !skipped {
        Outcome::Done
    } else {
        Outcome::Partial
    };

    if args.json {
        out.json(&StopJson {
            jobs: stopped
                .iter()
                .map(|job| StoppedJson {
                    id: job.id.to_string(),
                    cgroup: job.cgroup.as_deref(),
                    cgroup_removed: job.cgroup.as_ref().map(|path| !path.exists()),
                    journaled: job.journaled,
                    kill: &job.kill,
                })
                .collect(),
            stopped_by_their_proctrack: &by_supervisor,
            not_stopped: &not_stopped,
            complete,
        })?;
        return Ok(outcome);
    }
    for refused in &not_stopped {
        output::error(&format!("job {} not stopped: {}", refused.id, refused.why));
    }
    for id in &by_supervisor {
        out.plain(&format!(
            "job {id}: stopped by its proctrack on SIGTERM; nothing of it is left"
        ))?;
    }
    if stopped.is_empty() && not_stopped.is_empty() && by_supervisor.is_empty() {
        output::warn(&format!(
            "no orphaned jobs in {}: nothing to stop",
            state.path().display()
        ));
    }
    let mut total = KillCounts::default();
    for job in &stopped {
        let cgroup = match &job.cgroup {
            Some(path) if path.exists() => {
                format!(" (its cgroup {} is still there)", path.display())
            }
            Some(path) => format!(" (cgroup {} removed)", path.display()),
            None => String::new(),
        };
        out.plain(&format!("job {}{cgroup}", job.id))?;
        report_lines(
            out,
            &job.kill,
            &names,
            "(started during the stop)",
            &mut total,
        )?;
    }
    if !stopped.is_empty() {
        out.plain(&total.to_string())?;
    }
    Ok(outcome)
}

/// How long a running proctrack gets to stop its job after SIGTERM (it
/// has its own grace period, 5 s unless `run --grace`) before it is
/// killed, leaving its job orphaned, which is then stopped from here.
const SUPERVISOR_WAIT: Duration = Duration::from_secs(60);

/// Asks the supervisor instance `(pid, start)` to stop its jobs (SIGTERM,
/// as Ctrl-C in its terminal would) and waits for it to exit; SIGKILL
/// after [`SUPERVISOR_WAIT`]. Gone already is fine.
fn stop_supervisor(table: &ProcessTable, (pid, start): (Pid, StartTime)) -> Result<(), String> {
    let Some(process) = table.get(pid).filter(|p| p.start_time() == start) else {
        return Ok(());
    };
    let handle = match ProcessHandle::open(process.identity()) {
        Ok(handle) => handle,
        Err(proctrack::Error::NotFound { .. }) => return Ok(()),
        Err(error) => return Err(format!("cannot reach its proctrack (pid {pid}): {error}")),
    };
    let fail = |error: proctrack::Error| format!("its proctrack (pid {pid}): {error}");
    handle.signal(Signal::Term).map_err(fail)?;
    if handle.wait_timeout(SUPERVISOR_WAIT).map_err(fail)? {
        return Ok(());
    }
    output::warn(&format!(
        "its proctrack (pid {pid}) did not exit within {}s of SIGTERM: killed, its job is stopped from here",
        SUPERVISOR_WAIT.as_secs()
    ));
    handle.signal(Signal::Kill).map_err(fail)?;
    handle.wait_timeout(SUPERVISOR_WAIT).map_err(fail)?;
    Ok(())
}

/// Stops the jobs of supervisor `name` that `filter` picks, as a
/// supervisor of that name recovering them.
fn recover(
    state: &StateDir,
    name: &str,
    filter: &RecoverFilter,
) -> Result<Vec<RecoveredJob>, String> {
    let mut supervisor = Supervisor::new(
        SupervisorOptions::new(name)
            // Nothing is spawned: no orphan of ours to adopt.
            .subreaper(false)
            .journal(state.clone()),
    )
    .map_err(|error| error.to_string())?;
    supervisor
        .recover_matching(filter)
        .map(|report| report.jobs)
        .map_err(|error| error.to_string())
}
