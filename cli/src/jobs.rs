//! `proctrack jobs`: every job `proctrack run` wrote down in the state
//! directory, live or orphaned, with its processes.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use proctrack::supervisor::{JobMark, JournaledJob, StateDir, journaled_jobs, tag};
use proctrack::table::ProcessTable;
use proctrack::{Pid, ProcessInfo};
use serde::Serialize;

use crate::args::JobsArgs;
use crate::list::{describe, human_bytes};
use crate::output::{self, Out, Style};
use crate::{Error, Outcome};

/// The state directory, or the error that says how to choose one.
pub fn state_dir() -> Result<StateDir, Error> {
    StateDir::from_env().map_err(|error| Error::State(error.to_string()))
}

/// Warns about every file of `state` that is not a readable job; returns
/// how many.
pub fn warn_skipped(state: &StateDir) -> usize {
    match state.scan() {
        Ok(scan) => {
            for skipped in &scan.skipped {
                output::warn(&skipped.error.to_string());
            }
            scan.skipped.len()
        }
        Err(error) => {
            output::warn(&error.to_string());
            1
        }
    }
}

/// The jobs of `state` as `table` shows them, and whether some file could
/// not be read (each said on standard error).
pub fn read_jobs(
    state: &StateDir,
    table: &mut ProcessTable,
) -> Result<(Vec<JournaledJob>, bool), Error> {
    let scan = state
        .scan()
        .map_err(|error| Error::State(error.to_string()))?;
    for skipped in &scan.skipped {
        output::warn(&skipped.error.to_string());
    }
    Ok((
        journaled_jobs(table, scan.records),
        !scan.skipped.is_empty(),
    ))
}

/// A job mark as JSON: `{"job": <id>, "found_by": ["tag", ...]}`.
#[derive(Serialize)]
pub struct MarkJson {
    job: String,
    found_by: Vec<&'static str>,
}

impl From<&JobMark> for MarkJson {
    fn from(mark: &JobMark) -> MarkJson {
        MarkJson {
            job: mark.job.to_string(),
            found_by: mark.found_by.ways(),
        }
    }
}

#[derive(Serialize)]
struct JobsJson<'a> {
    state_dir: &'a std::path::Path,
    jobs: Vec<JobJson<'a>>,
}

#[derive(Serialize)]
struct JobJson<'a> {
    id: String,
    name: &'a str,
    command: Vec<String>,
    /// Milliseconds since 1970, UTC.
    started_ms: Option<u128>,
    /// The same, as `2026-12-08T00:02:57Z`.
    started: Option<String>,
    supervisor: SupervisorJson,
    orphaned: bool,
    this_boot: bool,
    kept: bool,
    containment: ContainmentJson<'a>,
    processes: usize,
    cpu_seconds: f64,
    rss_bytes: u64,
    cgroup_memory: Option<u64>,
    members: Vec<MemberJson<'a>>,
    file: PathBuf,
}

#[derive(Serialize)]
struct SupervisorJson {
    pid: Pid,
    alive: bool,
}

#[derive(Serialize)]
struct ContainmentJson<'a> {
    process_group: Pid,
    subreaper: Option<bool>,
    tag: String,
    cgroup: Option<&'a std::path::Path>,
    missing: &'a [String],
}

#[derive(Serialize)]
struct MemberJson<'a> {
    found_by: Vec<&'static str>,
    process: &'a ProcessInfo,
}

pub fn run(args: &JobsArgs, out: &mut Out) -> Result<Outcome, Error> {
    let state = state_dir()?;
    let mut table = ProcessTable::new()?;
    let (jobs, skipped) = read_jobs(&state, &mut table)?;
    let outcome = if skipped {
        Outcome::Partial
    } else {
        Outcome::Done
    };
    if args.json {
        let json = JobsJson {
            state_dir: state.path(),
            jobs: jobs.iter().map(|job| job_json(&state, job)).collect(),
        };
        out.json(&json)?;
        return Ok(outcome);
    }
    if jobs.is_empty() {
        output::warn(&format!("no jobs in {}", state.path().display()));
        return Ok(outcome);
    }
    let header = format!(
        "{:<9} {:>5} {:>8} {:>9}  {:<20}  {}",
        "STATE", "PROCS", "CPU", "RSS", "STARTED (UTC)", "JOB / COMMAND"
    );
    let header = out.paint(Style::Dim, &header);
    out.plain(&header)?;
    for job in &jobs {
        let state = job_state(job);
        let style = if job.is_orphaned() && !job.members.is_empty() {
            Style::Bad
        } else {
            Style::Good
        };
        let started = job.record.started.map_or_else(|| "-".to_owned(), utc_text);
        let prefix = format!(
            "{} {:>5} {:>8} {:>9}  {started:<20}  ",
            out.paint(style, &format!("{state:<9}")),
            job.usage.processes,
            format!("{:.2}s", job.usage.cpu_time.as_secs_f64()),
            human_bytes(job.usage.rss_bytes),
        );
        out.line(
            &prefix,
            9 + 1 + 5 + 1 + 8 + 1 + 9 + 2 + 20 + 2,
            job.record.id.as_str(),
            Some(Style::Pid),
        )?;
        let indent = " ".repeat(4);
        out.line(
            &indent,
            4,
            &proctrack::supervisor::state_dir::command_line(&job.record),
            None,
        )?;
        out.line(&indent, 4, &containment_text(job), Some(Style::Dim))?;
        if args.members {
            for member in &job.members {
                let prefix = format!(
                    "{indent}{:>7}  {:<16} ",
                    member.process.pid(),
                    member.found_by.ways().join(",")
                );
                out.line(
                    &prefix,
                    4 + 7 + 2 + 16 + 1,
                    &describe(&member.process),
                    None,
                )?;
            }
        }
    }
    Ok(outcome)
}

/// `running` (its supervisor lives), `orphaned` (it does not, something is
/// left), `gone` (nothing left, only the file), `kept`.
fn job_state(job: &JournaledJob) -> &'static str {
    match (
        job.supervisor_alive,
        job.record.kept,
        job.members.is_empty(),
    ) {
        (true, _, _) => "running",
        (false, true, _) => "kept",
        (false, false, false) => "orphaned",
        (false, false, true) => "gone",
    }
}

/// The containment layers of a job, as its record says.
fn containment_text(job: &JournaledJob) -> String {
    let record = &job.record;
    let mut text = format!("process group {}", record.process_group);
    if record.subreaper == Some(true) {
        text.push_str(", subreaper");
    }
    text.push_str(&format!(", tag {}={}", tag::JOB_VAR, record.id));
    if let Some(cgroup) = &record.cgroup {
        text.push_str(&format!(", cgroup {}", cgroup.display()));
    }
    for why in &record.missing {
        text.push_str(&format!("; {why}"));
    }
    if !job.this_boot {
        text.push_str("; started in an earlier boot");
    }
    text
}

fn job_json<'a>(state: &StateDir, job: &'a JournaledJob) -> JobJson<'a> {
    let record = &job.record;
    let started_ms = record
        .started
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis());
    JobJson {
        id: record.id.to_string(),
        name: record.id.supervisor(),
        command: record
            .command
            .iter()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect(),
        started_ms,
        // RFC 3339, for programs.
        started: record
            .started
            .map(|time| format!("{}Z", utc_text(time).replacen(' ', "T", 1))),
        supervisor: SupervisorJson {
            pid: record.id.instance().0,
            alive: job.supervisor_alive,
        },
        orphaned: job.is_orphaned(),
        this_boot: job.this_boot,
        kept: record.kept,
        containment: ContainmentJson {
            process_group: record.process_group,
            subreaper: record.subreaper,
            tag: format!("{}={}", tag::JOB_VAR, record.id),
            cgroup: record.cgroup.as_deref(),
            missing: &record.missing,
        },
        processes: job.usage.processes,
        cpu_seconds: job.usage.cpu_time.as_secs_f64(),
        rss_bytes: job.usage.rss_bytes,
        cgroup_memory: job.usage.cgroup_memory,
        members: job
            .members
            .iter()
            .map(|member| MemberJson {
                found_by: member.found_by.ways(),
                process: &member.process,
            })
            .collect(),
        file: state.file_of(&record.id),
    }
}

/// `2026-12-07 23:59:01`, UTC.
pub fn utc_text(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_in_utc() {
        assert_eq!(utc_text(UNIX_EPOCH), "1970-01-01 00:00:00");
        let t = UNIX_EPOCH + Duration::from_secs(1_765_151_941);
        assert_eq!(utc_text(t), "2025-12-07 23:59:01");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc_text(leap), "2000-02-29 00:00:00");
    }
}
