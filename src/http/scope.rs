//! What the HTTP kill may do: which signals, and which processes
//! ([`KillScope`]).

use std::collections::HashSet;

use axum::http::StatusCode;

use super::{ApiError, SharedSupervisor};
use crate::signal::Signal;
use crate::table::ProcessTable;
use crate::{Pid, ProcessIdentity, ProcessSource};

/// The signals the HTTP kill sends: the ones that end a process.
/// `SIGSTOP` and the like would leave a process stopped for good, or do
/// what its program makes of them; a kill request naming one is 400.
pub const KILL_SIGNALS: [Signal; 5] = [
    Signal::Term,
    Signal::Int,
    Signal::Hup,
    Signal::Quit,
    Signal::Kill,
];

/// Which processes the HTTP kill may reach: the target and every process
/// of its tree must be inside, or the request is 403 `out_of_scope` and
/// nothing is signalled.
///
/// The check is made on a fresh reading of the table just before the
/// kill; a process that joins the tree after it (a fork of a member) is
/// killed with the tree, as its parent was allowed.
///
/// ```no_run
/// use proctrack::http::{ApiConfig, KillScope, Token};
///
/// // Only processes of uid 1000.
/// let config = ApiConfig::new("127.0.0.1:8787".parse()?, Token::generate()?)
///     .kill_scope(KillScope::Uids(vec![1000]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KillScope {
    /// Any process the server may signal (the guard rails still hold).
    #[default]
    Any,
    /// Only members of the jobs of the supervisor handed over with
    /// [`ApiConfig::supervisor`](super::ApiConfig::supervisor); without
    /// one, nothing.
    SupervisorJobs,
    /// Only these processes and what runs under them (each named by
    /// identity: a root whose pid was reused covers nothing).
    Subtrees(Vec<ProcessIdentity>),
    /// Only processes whose effective uid is one of these (read as the
    /// owner of `/proc/<pid>`; Linux).
    Uids(Vec<u32>),
}

/// 400 unless `signal` ends a process.
pub(crate) fn check_signal(signal: Signal) -> Result<(), ApiError> {
    if KILL_SIGNALS.contains(&signal) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        "signal_not_allowed",
        format!(
            "{signal} does not end a process, so this API does not send it: use one of \
             SIGTERM, SIGINT, SIGHUP, SIGQUIT or SIGKILL"
        ),
    ))
}

impl KillScope {
    /// `Ok` when `target` and all of its descendants are inside the scope.
    pub(crate) fn check<S: ProcessSource>(
        &self,
        table: &mut ProcessTable<S>,
        target: ProcessIdentity,
        supervisor: Option<&SharedSupervisor>,
    ) -> Result<(), ApiError> {
        let mut members: Vec<Pid> = vec![target.pid()];
        members.extend(table.descendants(target.pid()).iter().map(|p| p.pid()));
        let outside: Vec<Pid> = match self {
            KillScope::Any => Vec::new(),
            KillScope::Subtrees(roots) => {
                let inside = |pid: Pid| {
                    let own = table.get(pid).map(|p| p.identity());
                    roots.iter().any(|root| own == Some(*root))
                        || table
                            .ancestors(pid)
                            .iter()
                            .any(|ancestor| roots.contains(&ancestor.identity()))
                };
                // The tree of an inside target is inside.
                if inside(target.pid()) {
                    Vec::new()
                } else {
                    vec![target.pid()]
                }
            }
            KillScope::Uids(uids) => {
                let mut outside = Vec::new();
                for &pid in &members {
                    let identity = table.get(pid).map(|p| p.identity());
                    // Gone or unknown: not proven to be one of the uids.
                    let uid = identity.and_then(|i| table.source_mut().uid(i).ok().flatten());
                    if !uid.is_some_and(|uid| uids.contains(&uid)) {
                        outside.push(pid);
                    }
                }
                outside
            }
            KillScope::SupervisorJobs => {
                let jobs: HashSet<Pid> = match supervisor {
                    None => HashSet::new(),
                    Some(supervisor) => {
                        // A panic elsewhere poisons the lock, not the jobs.
                        let mut supervisor = supervisor
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner());
                        let jobs = supervisor
                            .status()
                            .map_err(|e| ApiError::internal(e.to_string()))?;
                        jobs.into_iter()
                            .filter(|job| !job.finished)
                            .flat_map(|job| job.members)
                            .collect()
                    }
                };
                members
                    .iter()
                    .copied()
                    .filter(|pid| !jobs.contains(pid))
                    .collect()
            }
        };
        if outside.is_empty() {
            return Ok(());
        }
        let listed: Vec<String> = outside.iter().take(10).map(Pid::to_string).collect();
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "out_of_scope",
            format!(
                "this server may only kill {}; process {} is outside{}: nothing was signalled",
                self.describe(),
                listed.join(", "),
                if outside.len() > listed.len() {
                    " (and more)"
                } else {
                    ""
                },
            ),
        ))
    }

    fn describe(&self) -> String {
        match self {
            KillScope::Any => "any process".into(),
            KillScope::SupervisorJobs => "its supervisor's jobs".into(),
            KillScope::Subtrees(roots) => {
                let roots: Vec<String> = roots.iter().map(|r| r.pid().to_string()).collect();
                format!("the trees under {}", roots.join(", "))
            }
            KillScope::Uids(uids) => {
                let uids: Vec<String> = uids.iter().map(u32::to_string).collect();
                format!("processes of uid {}", uids.join(", "))
            }
        }
    }
}
