//! The handlers: each parses, calls the library on a blocking thread, and
//! formats. No logic of their own.

use std::path::PathBuf;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiState};
use crate::ports::{PortFinder, Search};
use crate::signal::{KillOptions, KillReport, Signal, kill_tree};
use crate::supervisor::{JobId, JobMark, SupervisorError, job_marks, journaled_jobs};
use crate::table::{ProcessTable, ProcessTree};
use crate::{Pid, ProcessIdentity, ProcessInfo, ProcessSource, StartTime};

/// The longest grace period a request may ask for: the kill holds the table
/// (and so every other request) while it waits.
const MAX_GRACE: Duration = Duration::from_secs(30);

/// The body of `POST /api/processes/{pid}/kill`. The root's exit status is
/// left to its parent (see [`KillOptions::reap_root`]); the guard is the
/// strict one.
///
/// ```json
/// {"start_time": 123456, "signal": "SIGTERM", "grace_ms": 2000}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillRequest {
    /// The process's start time, as `identity.start_time` in its JSON: if
    /// the pid now belongs to another process the answer is 409.
    pub start_time: StartTime,
    /// The first signal (`"SIGKILL"` when absent): one that ends a process
    /// ([`KILL_SIGNALS`](super::KILL_SIGNALS)), else the answer is 400.
    #[serde(default)]
    pub signal: Option<Signal>,
    /// With a value: after the first signal wait up to this many
    /// milliseconds (at most 30 000), then `SIGKILL` what is left.
    #[serde(default)]
    pub grace_ms: Option<u64>,
}

impl KillRequest {
    fn options(&self) -> KillOptions {
        let grace = self
            .grace_ms
            .map(|ms| Duration::from_millis(ms).min(MAX_GRACE));
        // The root's exit status stays with its parent: an application
        // that spawned it and serves this API still waits on its `Child`.
        KillOptions::new()
            .signal(self.signal.unwrap_or(Signal::Kill))
            .grace(grace)
            .reap_root(false)
    }
}

#[derive(Deserialize)]
pub(crate) struct Filter {
    root: Option<String>,
    cwd: Option<PathBuf>,
    name: Option<String>,
}

fn parse_pid(text: &str) -> Result<Pid, ApiError> {
    text.parse::<Pid>().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_pid",
            format!(
                "{text:?} is not a pid: a pid is a whole number in 1..={}",
                i32::MAX
            ),
        )
    })
}

/// JSON already encoded on the blocking thread.
fn json(bytes: Vec<u8>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        Bytes::from(bytes),
    )
        .into_response()
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value).map_err(|e| ApiError::internal(format!("cannot encode JSON: {e}")))
}

struct Trees {
    count: usize,
    trees: Vec<ProcessTree>,
}

/// The trees of the outermost of `matches`.
fn trees_of<S: ProcessSource>(table: &ProcessTable<S>, matches: Vec<Pid>) -> Trees {
    let trees: Vec<ProcessTree> = table
        .outermost(matches)
        .iter()
        .filter_map(|process| table.tree(process.pid()))
        .collect();
    Trees {
        count: trees.iter().map(ProcessTree::len).sum(),
        trees,
    }
}

pub(crate) async fn processes(
    State(state): State<ApiState>,
    filter: Result<Query<Filter>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(filter) = filter.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let root = filter.root.as_deref().map(parse_pid).transpose()?;
    // The trees are built under the table's lock; encoding them is not,
    // so concurrent listings encode in parallel.
    let trees = state
        .with_table(move |table| {
            if let Some(root) = root {
                let tree = table
                    .tree(root)
                    .ok_or(crate::Error::NotFound { pid: root })?;
                return Ok(Trees {
                    count: tree.len(),
                    trees: vec![tree],
                });
            }
            let found: Vec<Pid> = if let Some(dir) = &filter.cwd {
                table
                    .find_by_cwd_prefix(dir)
                    .iter()
                    .map(|p| p.pid())
                    .collect()
            } else if let Some(name) = &filter.name {
                table.find_by_name(name).iter().map(|p| p.pid()).collect()
            } else {
                table.roots().iter().map(|p| p.pid()).collect()
            };
            Ok::<_, ApiError>(trees_of(table, found))
        })
        .await??;
    // Written without recursion, and dropped on the same thread: a chain
    // of any depth is served.
    let bytes =
        tokio::task::spawn_blocking(move || super::listing::encode(&trees.trees, trees.count))
            .await
            .map_err(|_| ApiError::internal("the encoding thread failed"))??;
    Ok(json(bytes))
}

pub(crate) async fn process(
    State(state): State<ApiState>,
    Path(pid): Path<String>,
) -> Result<Response, ApiError> {
    let pid = parse_pid(&pid)?;
    let bytes = state
        .with_table(move |table| {
            let process: &ProcessInfo = table.get(pid).ok_or(crate::Error::NotFound { pid })?;
            encode(process)
        })
        .await??;
    Ok(json(bytes))
}

pub(crate) async fn kill(
    State(state): State<ApiState>,
    Path(pid): Path<String>,
    body: Result<Json<KillRequest>, JsonRejection>,
) -> Result<Json<KillReport>, ApiError> {
    let pid = parse_pid(&pid)?;
    let Json(request) = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "body_too_large",
                format!("the body is larger than {} bytes", super::MAX_BODY),
            )
        } else {
            ApiError::bad_request(format!(
                "{}; send JSON like {{\"start_time\": 123, \"signal\": \"SIGTERM\", \"grace_ms\": 2000}}",
                rejection.body_text()
            ))
        }
    })?;
    super::scope::check_signal(request.signal.unwrap_or(Signal::Kill))?;
    let options = request.options();
    // The check and the kill run on the kill table, refreshed: the scope is
    // judged on the tree the kill will find, and listings are not held up
    // for the grace period. The kill re-checks the identity when it pins
    // the root.
    let kills = state.clone();
    let report = state
        .blocking(move || {
            kills.on_kill_table(|table| -> Result<KillReport, ApiError> {
                let stale = |now: &str| {
                    ApiError::new(
                        StatusCode::CONFLICT,
                        "stale_identity",
                        format!(
                            "process {pid} with start time {} {now}: nothing was signalled; list the processes again",
                            request.start_time.as_raw()
                        ),
                    )
                };
                let identity = match table.get(pid) {
                    None => return Err(stale("has exited")),
                    Some(process) if process.identity().start_time() != request.start_time => {
                        return Err(stale(
                            "has exited, and its pid now belongs to another process",
                        ));
                    }
                    Some(process) => process.identity(),
                };
                let config = kills.config();
                config
                    .kill_scope
                    .check(table, identity, config.shared_supervisor())?;
                Ok(kill_tree(table, identity, &options)?)
            })
        })
        .await??;
    Ok(Json(report))
}

pub(crate) async fn port(
    State(state): State<ApiState>,
    Path(port): Path<String>,
) -> Result<Response, ApiError> {
    let port: u16 = port
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{port:?} is not a port: use 0..=65535")))?;
    // The port search reads sockets and fds, not the table: no lock.
    let bytes = state
        .blocking(move || {
            let report = PortFinder::open()?.holders(port, &Search::new())?;
            encode(&report)
        })
        .await??;
    Ok(json(bytes))
}

/// `GET /api/jobs`: the shared supervisor's jobs as they are now.
pub(crate) async fn jobs(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let Some(supervisor) = state.config().shared_supervisor().cloned() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_supervisor",
            "this server has no supervisor: the application hands one over with ApiConfig::supervisor",
        ));
    };
    let bytes = state
        .blocking(move || {
            // A panic elsewhere poisons the lock, not the supervisor's jobs.
            let mut supervisor = supervisor
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match supervisor.status() {
                Ok(jobs) => encode(&jobs),
                Err(SupervisorError::Process(error)) => Err(error.into()),
                Err(other) => Err(ApiError::internal(other.to_string())),
            }
        })
        .await??;
    Ok(json(bytes))
}

/// `GET /api/marks`: which processes are job members, which job, and how
/// each was found: `{"marks": [{"pid", "start_time", "job", "found_by"}]}`,
/// from the shared supervisor's jobs and the jobs of the configured state
/// directory. Empty when there are none. Read on the kill table (it has
/// the source the tags are read through), refreshed.
pub(crate) async fn marks(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let config = state.clone();
    let marks = state
        .blocking(move || {
            let mut marks: Vec<(ProcessIdentity, JobMark)> = Vec::new();
            if let Some(supervisor) = config.config().shared_supervisor() {
                // A panic elsewhere poisons the lock, not the jobs.
                let mut supervisor = supervisor
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let ids: Vec<JobId> = supervisor
                    .jobs()
                    .filter(|job| !job.is_finished())
                    .map(|job| job.id().clone())
                    .collect();
                for id in ids {
                    // A job that ended meanwhile has no members to mark.
                    for member in supervisor.members(&id).unwrap_or_default() {
                        marks.push((
                            member.process.identity(),
                            JobMark {
                                job: id.clone(),
                                found_by: member.found_by,
                            },
                        ));
                    }
                }
            }
            if let Some(dir) = config.config().state_dir() {
                // An unreadable directory marks nothing; `proctrack jobs`
                // says what is wrong with it.
                // No jobs written down: no scan of the processes either.
                if let Ok(scan) = dir.scan()
                    && !scan.records.is_empty()
                {
                    let found = config.on_kill_table(|table| {
                        Ok::<_, crate::Error>(job_marks(&journaled_jobs(table, scan.records)))
                    })?;
                    marks.extend(found);
                }
            }
            Ok::<_, crate::Error>(marks)
        })
        .await??;
    let marks: Vec<serde_json::Value> = marks
        .iter()
        .map(|(identity, mark)| {
            serde_json::json!({
                "pid": identity.pid().as_raw(),
                "start_time": identity.start_time().as_raw(),
                "job": mark.job.as_str(),
                "found_by": mark.found_by.ways(),
            })
        })
        .collect();
    Ok(json(encode(&serde_json::json!({ "marks": marks }))?))
}

pub(crate) async fn page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("page/index.html"),
    )
        .into_response()
}

pub(crate) async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("page/app.js"),
    )
        .into_response()
}

pub(crate) async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("page/style.css"),
    )
        .into_response()
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        "no such route: see GET / or /api/processes",
    )
}
