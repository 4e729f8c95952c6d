//! The supervisor for tokio applications: [`AsyncSupervisor`] (feature
//! `tokio`), its job events and their stream.

use std::ffi::OsStr;
use std::fmt;
use std::pin::Pin;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::feed::Feed;
use super::lineage::{Lineage, Told};
use super::stop::WaitStep;
use super::{
    Job, JobCommand, JobId, JobStatus, JobStopReport, JobUsage, Member, Supervisor,
    SupervisorError, SupervisorOptions,
};
use crate::events::{EventSource, Origin, Probe, Scope, Tracker, TrackerOptions};
use crate::signal::ProcessHandle;
use crate::{Error, ProcessIdentity, SystemSource};

/// How many events a slow [`JobEvents`] may fall behind before it misses
/// some ([`JobEvent::Lagged`]).
const CHANNEL: usize = 4096;

/// Something that happened to a job, as [`AsyncSupervisor::events`] tells
/// it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobEvent {
    /// A process became a member: the root when the job is spawned or
    /// adopted, the members an adoption found, a child forked by a member,
    /// and members a look found that lineage did not know (tagged, in the
    /// cgroup).
    MemberJoined {
        /// The job.
        job: JobId,
        /// The new member.
        process: ProcessIdentity,
    },
    /// A member exited.
    MemberLeft {
        /// The job.
        job: JobId,
        /// The member that exited.
        identity: ProcessIdentity,
    },
    /// Every member of the job is gone (a look confirmed it), by a stop or
    /// by itself.
    Exited {
        /// The job.
        job: JobId,
        /// The root's exit code, if it exited by `exit` and the code is
        /// known (see [`Job::exit_status`]).
        code: Option<i32>,
        /// The signal that ended the root, if one did and it is known.
        signal: Option<i32>,
    },
    /// This stream fell behind and missed `missed` events: ask
    /// [`status`](AsyncSupervisor::status) for the state.
    Lagged {
        /// How many events were missed.
        missed: u64,
    },
}

impl fmt::Display for JobEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobEvent::MemberJoined { job, process } => write!(f, "{job}: {process} joined"),
            JobEvent::MemberLeft { job, identity } => write!(f, "{job}: {identity} left"),
            JobEvent::Exited { job, code, signal } => match (code, signal) {
                (Some(code), _) => write!(f, "{job}: exited, root exit code {code}"),
                (None, Some(signal)) => write!(f, "{job}: exited, root killed by signal {signal}"),
                (None, None) => write!(f, "{job}: exited, root status unknown"),
            },
            JobEvent::Lagged { missed } => write!(f, "missed {missed} job events"),
        }
    }
}

/// The stream of [`JobEvent`]s from [`AsyncSupervisor::events`]: from the
/// moment it was made, in the order the tracker told them. Ends when the
/// supervisor is dropped.
pub struct JobEvents {
    inner: Pin<Box<dyn Stream<Item = JobEvent> + Send>>,
}

impl fmt::Debug for JobEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobEvents").finish_non_exhaustive()
    }
}

impl JobEvents {
    /// The next event; `None` once the supervisor is gone.
    pub async fn next(&mut self) -> Option<JobEvent> {
        std::future::poll_fn(|cx| self.inner.as_mut().poll_next(cx)).await
    }
}

impl Stream for JobEvents {
    type Item = JobEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<JobEvent>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// What the tracker task and the calls share.
struct Shared {
    lineage: Mutex<Lineage>,
    feed: Arc<Feed>,
    events: broadcast::Sender<JobEvent>,
}

impl Shared {
    /// Hands what lineage found on: members into the feed (the
    /// supervisor's `seen`), root exits too, events to the stream.
    fn hand_on(&self, told: Told) {
        for (job, identity) in told.seen {
            self.feed.seen(job, identity);
        }
        if !told.root_exits.is_empty() {
            self.feed.exits(told.root_exits);
        }
        for event in told.events {
            // No receiver: nobody listens, nothing to keep.
            let _ = self.events.send(event);
        }
    }

    fn lineage(&self) -> std::sync::MutexGuard<'_, Lineage> {
        self.lineage.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A [`Supervisor`] for tokio applications (feature `tokio`).
///
/// It wraps a [`Supervisor`] and adds what an async application needs:
/// nothing blocks a runtime worker (every call that reads `/proc` or kills
/// runs on tokio's blocking pool, one at a time), a job's end is a future
/// ([`exited`](AsyncSupervisor::exited), woken by pidfd readiness through
/// tokio's reactor, never by polling), and a [`Stream`] of job events
/// ([`events`](AsyncSupervisor::events)): members joining and leaving and
/// jobs ending, fed by one event [`Tracker`] that follows every process.
///
/// ## Fork lineage
///
/// The tracker's fork events make the child of a member a member at once,
/// whatever it does next. So a member that clears its environment (no
/// tag), calls `setsid` (a new process group) and double-forks (it leaves
/// the tree) before any look is still the job's, without a cgroup: the
/// one shape the blocking supervisor cannot see. What lineage finds is
/// written into the job's `seen` set, so the blocking
/// [`members`](Supervisor::members) and [`stop`](Supervisor::stop) (through
/// [`with_supervisor`](AsyncSupervisor::with_supervisor), or this type's
/// own) find it too, from the next look on. A process that is gone before
/// the tracker could read it (a few microseconds of life) has no identity
/// to tell: it never joins or leaves on the stream, but its children are
/// told as forked by its own forker, so lineage goes through it.
///
/// The events come from the kernel's proc connector where this process
/// may listen to it ([`probe`](AsyncSupervisor::probe) says); elsewhere
/// (unprivileged on kernels that refuse, in some containers, on macOS) the
/// tracker refreshes its table at an interval instead, and lineage then
/// only sees what lives across a refresh: a process that forks and exits
/// between two refreshes (the middle of a double fork, always) hides the
/// lineage of its children, and exits come without codes. The stream's
/// events are the same either way, fewer and later when polled.
///
/// ```no_run
/// # async fn demo() -> Result<(), proctrack::supervisor::SupervisorError> {
/// use std::time::Duration;
/// use proctrack::supervisor::{AsyncSupervisor, SupervisorOptions};
///
/// let supervisor = AsyncSupervisor::new(SupervisorOptions::new("devtool")).await?;
/// let mut events = supervisor.events();
/// tokio::spawn(async move {
///     while let Some(event) = events.next().await {
///         println!("{event}");
///     }
/// });
/// let mut command = supervisor.command("sh").await?;
/// command.args(["-c", "sleep 1 & exec sleep 2"]);
/// let job = supervisor.spawn(command).await?;
/// let status = supervisor.exited(&job).await?; // every member gone
/// println!("{job}: {status:?}");
/// # Ok(())
/// # }
/// ```
///
/// Needs a runtime with I/O and time enabled (`enable_all`): pidfds and the
/// connector's socket are awaited on the reactor, and a polling tracker
/// uses a timer.
///
/// Call [`shutdown`](AsyncSupervisor::shutdown) before dropping it:
/// dropped, it stops its jobs (those not kept running) as the blocking
/// supervisor does, on the thread that drops the last reference, which
/// blocks for up to the shutdown grace.
pub struct AsyncSupervisor {
    supervisor: Arc<tokio::sync::Mutex<Supervisor>>,
    shared: Arc<Shared>,
    probe: Probe,
    tracker: JoinHandle<()>,
}

impl fmt::Debug for AsyncSupervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncSupervisor")
            .field("probe", &self.probe)
            .finish_non_exhaustive()
    }
}

impl Drop for AsyncSupervisor {
    fn drop(&mut self) {
        self.tracker.abort();
    }
}

impl AsyncSupervisor {
    /// A supervisor ([`Supervisor::new`]) and its event tracker over every
    /// process, both made on the blocking pool (they read the whole table;
    /// the tracker waits for the kernel's answer to its listen request).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub async fn new(options: SupervisorOptions) -> Result<AsyncSupervisor, SupervisorError> {
        AsyncSupervisor::with_tracker(options, TrackerOptions::default()).await
    }

    /// [`new`](AsyncSupervisor::new) with a tracker made with `tracker`:
    /// [`TrackerOptions::polling`] to poll where the connector would work
    /// (to see what a container gets), a shorter
    /// [`poll_interval`](TrackerOptions::poll_interval) to lose less
    /// lineage where it polls.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), proctrack::supervisor::SupervisorError> {
    /// use std::time::Duration;
    /// use proctrack::events::TrackerOptions;
    /// use proctrack::supervisor::{AsyncSupervisor, SupervisorOptions};
    ///
    /// let tracker = TrackerOptions::default().poll_interval(Duration::from_millis(200));
    /// let supervisor =
    ///     AsyncSupervisor::with_tracker(SupervisorOptions::new("devtool"), tracker).await?;
    /// println!("events from: {}", supervisor.probe());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn with_tracker(
        options: SupervisorOptions,
        tracker: TrackerOptions,
    ) -> Result<AsyncSupervisor, SupervisorError> {
        let (supervisor, tracker) = run_blocking(move || {
            let supervisor = Supervisor::new(options)?;
            let tracker = Tracker::with_source(SystemSource::open()?, Scope::All, tracker)?;
            Ok::<_, SupervisorError>((supervisor, tracker))
        })
        .await??;
        let probe = tracker.probe();
        let (events, _) = broadcast::channel(CHANNEL);
        let shared = Arc::new(Shared {
            lineage: Mutex::new(Lineage::default()),
            feed: Arc::new(Feed::new(probe.source() == EventSource::Connector)),
            events,
        });
        let mut supervisor = supervisor;
        supervisor.set_feed(shared.feed.clone());
        let supervisor = Arc::new(tokio::sync::Mutex::new(supervisor));
        let tracker = tokio::spawn(follow(tracker, shared.clone(), Arc::downgrade(&supervisor)));
        Ok(AsyncSupervisor {
            supervisor,
            shared,
            probe,
            tracker,
        })
    }

    /// Where the events come from (the proc connector, or polling) and why.
    pub fn probe(&self) -> Probe {
        self.probe
    }

    /// Runs `f` on the blocking supervisor, on tokio's blocking pool, after
    /// the calls before it: for anything this type does not mirror
    /// ([`Supervisor::keep_running`], [`Supervisor::child_mut`], ...).
    pub async fn with_supervisor<T, F>(&self, f: F) -> Result<T, SupervisorError>
    where
        F: FnOnce(&mut Supervisor) -> T + Send + 'static,
        T: Send + 'static,
    {
        with(&self.supervisor, f).await
    }

    /// A command for the next job ([`Supervisor::command`]; it makes the
    /// job's cgroup, so it runs on the blocking pool).
    pub async fn command(&self, program: impl AsRef<OsStr>) -> Result<JobCommand, SupervisorError> {
        let program = program.as_ref().to_os_string();
        self.with_supervisor(move |supervisor| supervisor.command(program))
            .await
    }

    /// Starts `command` as a job ([`Supervisor::spawn`]). Lineage follows
    /// it from its first fork on (the events since just before the spawn
    /// are replayed), and its root joins the [stream](Self::events).
    pub async fn spawn(&self, command: JobCommand) -> Result<JobId, SupervisorError> {
        let mark = self.shared.lineage().mark();
        let (id, root) = self
            .with_supervisor(move |supervisor| {
                let id = supervisor.spawn(command)?;
                let root = supervisor.jobs[&id].root;
                Ok::<_, SupervisorError>((id, root))
            })
            .await??;
        self.register(&id, root, &[], mark).await;
        Ok(id)
    }

    /// Adopts job `id` of a dead instance ([`Supervisor::adopt`]): the
    /// members it found join the [stream](Self::events), and lineage
    /// follows them from the look on (forks between the look and now are
    /// replayed). Its exit code comes from this supervisor's tracker.
    pub async fn adopt(&self, id: &JobId) -> Result<JobId, SupervisorError> {
        let mark = self.shared.lineage().mark();
        let job = id.clone();
        let (root, members) = self
            .with_supervisor(move |supervisor| {
                let adopted = supervisor.adopt(&job)?;
                let members: Vec<ProcessIdentity> = adopted.seen.iter().copied().collect();
                Ok::<_, SupervisorError>((adopted.root, members))
            })
            .await??;
        self.register(id, root, &members, mark).await;
        Ok(id.clone())
    }

    /// The jobs a [`adopt`](Self::adopt) could take now
    /// ([`Supervisor::adoptable`]).
    pub async fn adoptable(&self) -> Result<Vec<JobId>, SupervisorError> {
        self.with_supervisor(Supervisor::adoptable).await?
    }

    /// Follows `id` in lineage; where the log no longer reached back to
    /// `mark`, a look adds what lineage missed.
    async fn register(
        &self,
        id: &JobId,
        root: ProcessIdentity,
        members: &[ProcessIdentity],
        mark: u64,
    ) {
        let (told, complete) = self.shared.lineage().register(id, root, members, mark);
        self.shared.hand_on(told);
        if !complete {
            confirm(
                id.clone(),
                self.shared.clone(),
                Arc::downgrade(&self.supervisor),
            )
            .await;
        }
    }

    /// The live members of job `id` now ([`Supervisor::members`]).
    pub async fn members(&self, id: &JobId) -> Result<Vec<Member>, SupervisorError> {
        let id = id.clone();
        self.with_supervisor(move |supervisor| supervisor.members(&id))
            .await?
    }

    /// What job `id` uses now ([`Supervisor::usage`]).
    pub async fn usage(&self, id: &JobId) -> Result<JobUsage, SupervisorError> {
        let id = id.clone();
        self.with_supervisor(move |supervisor| supervisor.usage(&id))
            .await?
    }

    /// Every job as it is now ([`Supervisor::status`]).
    pub async fn status(&self) -> Result<Vec<JobStatus>, SupervisorError> {
        self.with_supervisor(Supervisor::status).await?
    }

    /// Stops job `id` ([`Supervisor::stop`]) on the blocking pool: the
    /// kill engine's `grace` and its waits never block a runtime worker.
    pub async fn stop(
        &self,
        id: &JobId,
        grace: Duration,
    ) -> Result<JobStopReport, SupervisorError> {
        let id = id.clone();
        self.with_supervisor(move |supervisor| supervisor.stop(&id, grace))
            .await?
    }

    /// Completes when every member of job `id` is gone, with the root's
    /// exit status ([`Job::exit_status`]: for an adopted job, what the
    /// kernel's exit event told, else `None`). Event-driven: each look
    /// (on the blocking pool) names a live member, and its pidfd's
    /// readiness on tokio's reactor wakes the next look; an empty look is
    /// believed when the one after it is empty too.
    pub async fn exited(&self, id: &JobId) -> Result<Option<ExitStatus>, SupervisorError> {
        let mut empty_before = false;
        loop {
            let job = id.clone();
            let (step, empty) = self
                .with_supervisor(move |supervisor| {
                    let step = supervisor.wait_step(&job, &mut empty_before);
                    (step, empty_before)
                })
                .await?;
            empty_before = empty;
            match step? {
                WaitStep::Ended(status) => return Ok(status),
                WaitStep::Again => {}
                WaitStep::Member(member) => match ProcessHandle::open(member) {
                    Ok(handle) => handle.wait_async().await?,
                    Err(Error::NotFound { .. }) => {}
                    Err(other) => return Err(other.into()),
                },
            }
        }
    }

    /// Stops every job not kept running ([`Supervisor::shutdown`]).
    pub async fn shutdown(&self, grace: Duration) -> Result<Vec<JobStopReport>, SupervisorError> {
        self.with_supervisor(move |supervisor| supervisor.shutdown(grace))
            .await?
    }

    /// The job events from now on: members joining (forks by members,
    /// roots, adoptions) and leaving (exits), and jobs ending. Each call
    /// makes a stream of its own.
    pub fn events(&self) -> JobEvents {
        let receiver = self.shared.events.subscribe();
        let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
            match receiver.recv().await {
                Ok(event) => Some((event, receiver)),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    Some((JobEvent::Lagged { missed }, receiver))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        JobEvents {
            inner: Box::pin(stream),
        }
    }

    /// The job `id` as the supervisor has it (a copy of what
    /// [`Job`]'s accessors say, taken on the blocking pool).
    pub async fn job(&self, id: &JobId) -> Result<Option<JobStatus>, SupervisorError> {
        let id = id.clone();
        let all = self.status().await?;
        Ok(all.into_iter().find(|status| status.id == id))
    }
}

/// Runs `f` with the supervisor, after the calls before it, on the
/// blocking pool.
async fn with<T, F>(
    supervisor: &Arc<tokio::sync::Mutex<Supervisor>>,
    f: F,
) -> Result<T, SupervisorError>
where
    F: FnOnce(&mut Supervisor) -> T + Send + 'static,
    T: Send + 'static,
{
    let mut guard = supervisor.clone().lock_owned().await;
    run_blocking(move || f(&mut guard)).await
}

/// `f` on tokio's blocking pool; its panic goes on unwinding here.
async fn run_blocking<T, F>(f: F) -> Result<T, SupervisorError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => Ok(value),
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => Err(SupervisorError::Process(Error::Io {
            path: None,
            source: std::io::Error::other("the tokio runtime is shutting down"),
        })),
    }
}

/// The tracker task: every event through lineage, then on.
async fn follow(
    mut tracker: Tracker,
    shared: Arc<Shared>,
    supervisor: Weak<tokio::sync::Mutex<Supervisor>>,
) {
    loop {
        let event = match tracker.next_async().await {
            Ok(event) => event,
            // The tracker cannot go on (its socket failed): lineage stops;
            // looks still find tagged and cgroup members.
            Err(_) => return,
        };
        let told = shared.lineage().apply(&event);
        let emptied = told.emptied.clone();
        shared.hand_on(told);
        let mut confirm_jobs = emptied;
        if event.origin == Origin::Resync {
            // Events were lost: a look at every job adds what lineage
            // missed.
            confirm_jobs = shared.lineage().live();
        }
        for job in confirm_jobs {
            tokio::spawn(confirm(job, shared.clone(), supervisor.clone()));
        }
    }
}

/// Asks the supervisor whether job `job` is over: if so, its `Exited`
/// event; else the members a look found join lineage.
async fn confirm(
    job: JobId,
    shared: Arc<Shared>,
    supervisor: Weak<tokio::sync::Mutex<Supervisor>>,
) {
    let Some(supervisor) = supervisor.upgrade() else {
        return;
    };
    let id = job.clone();
    let looked = with(&supervisor, move |supervisor| {
        let status = supervisor.try_wait(&id)?;
        let finished = supervisor.job(&id).is_some_and(Job::is_finished);
        let members = if finished {
            Vec::new()
        } else {
            supervisor
                .members(&id)?
                .iter()
                .map(|m| m.process.identity())
                .collect()
        };
        Ok::<_, SupervisorError>((finished, status, members))
    })
    .await;
    // A job the supervisor no longer has, or a look that failed: the next
    // exit asks again.
    let Ok(Ok((finished, status, members))) = looked else {
        return;
    };
    if finished {
        let code = status.and_then(|s| s.code());
        let signal = status.and_then(|s| {
            use std::os::unix::process::ExitStatusExt;
            s.signal()
        });
        let end = shared.lineage().end(&job, code, signal);
        if let Some(end) = end {
            let _ = shared.events.send(end);
        }
    } else {
        let told = shared.lineage().add(&job, &members);
        shared.hand_on(told);
    }
}
