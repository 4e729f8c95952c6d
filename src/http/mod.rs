//! An HTTP API and a live tree view of the processes (feature `http`), as an
//! [`axum::Router`] that an axum application nests or serves on its own.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /` | the tree view: one static page |
//! | `GET /api/processes` | the process trees as JSON (`{"trees": [...], "count": n}`, each tree `{"process": {...}, "children": [...]}`, of any depth); `?root=PID` one tree, `?cwd=DIR` the trees of the processes standing in `DIR`, `?name=NAME` the trees of the processes of that name. Command lines and working directories are cut to [`MAX_TEXT`] bytes, and a process that was cut has `"truncated": true` |
//! | `GET /api/processes/{pid}` | one process, its command line and directory whole |
//! | `POST /api/processes/{pid}/kill` | kills the tree of that process: body [`KillRequest`], answer [`KillReport`](crate::signal::KillReport) |
//! | `GET /api/ports/{port}` | who holds a port: a [`PortReport`](crate::ports::PortReport) |
//! | `GET /api/events` | server-sent events: `event: ready` once the server's one [`Tracker`](crate::events::Tracker) runs (events count from there), then each [`Event`](crate::events::Event) as JSON (`event: process`); `event: lagged` when a slow client missed some (list again), `event: failed` when the tracker failed |
//!
//! | `GET /api/jobs` | the jobs of the application's [`Supervisor`], handed over with [`ApiConfig::supervisor`]: a list of [`JobStatus`](crate::supervisor::JobStatus) (404 `no_supervisor` without one) |
//! | `POST /api/session` | the page's sign-in: trades the one-time code of [`ApiState::sign_in_code`] (`{"code": "..."}`), or the token (`Authorization: Bearer`, body `{}`), for a session cookie |
//!
//! Every error is a status with a JSON body `{"error": "<code>", "message":
//! "<what is wrong and what to do>"}`.
//!
//! # Security
//!
//! - Every route checks the `Host` header against the bound address,
//!   `localhost`, `127.0.0.1` and `[::1]` (with the bound port), and the
//!   names the application adds ([`ApiConfig::allow_host`]): a page of
//!   another site whose name was made to resolve to 127.0.0.1 (DNS
//!   rebinding) gets 403.
//! - Every `/api/*` route, reads included, needs `Authorization: Bearer
//!   <token>` (compared in constant time) or the page's session cookie
//!   (401 otherwise): the listings show other users' working directories
//!   and command lines. The page itself loads without. It signs in by
//!   trading a one-time code from its URL's fragment (never sent in a
//!   request, spent at once, so harmless in a browser's argv) for a cookie
//!   that is `HttpOnly; SameSite=Strict; Path=/`, so no script of the page
//!   ever holds a secret.
//! - A request that a browser says another site made (`Sec-Fetch-Site:
//!   cross-site`, or `same-site` for `/api/*`: another port of this host)
//!   gets 403 on every route; so does a mutating request or a sign-in with
//!   an `Origin` that is not one of the allowed hosts.
//! - Every answer carries a strict Content-Security-Policy (nothing but
//!   this server's own script, style and requests; no frames),
//!   `X-Frame-Options: DENY` and `X-Content-Type-Options: nosniff`; the
//!   API's answers are `Cache-Control: no-store`.
//! - Request bodies are bounded ([`MAX_BODY`]; 413 beyond).
//! - A kill names the process by identity (pid and start time): a pid now
//!   held by another process is 409, never signalled. The guard rails of
//!   [`Guard::new`](crate::signal::Guard::new) hold: pid 1, the server
//!   itself and its ancestors are 403.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use proctrack::http::{ApiConfig, ApiState, Token, serve};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let bound = listener.local_addr()?;
//! let token = Token::generate()?;
//! eprintln!("API token: {token}");
//! let state = ApiState::new(ApiConfig::new(bound, token))?;
//! eprintln!("open http://{bound}/#code={} (works once)", state.sign_in_code()?);
//! serve(listener, state).await?; // or nest `router(state)` in your app

//! # Ok(())
//! # }
//! ```

mod error;
mod events;
mod listing;
mod routes;
mod scope;
mod security;
mod server;

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::Result;
use crate::supervisor::Supervisor;
use crate::table::ProcessTable;

pub use error::ApiError;
pub use listing::MAX_TEXT;
pub use routes::KillRequest;
pub use scope::{KILL_SIGNALS, KillScope};
pub use server::{FD_RESERVE, raise_fd_limit, serve};

/// The largest request body accepted, in bytes: a kill request is far smaller.
pub const MAX_BODY: usize = 16 * 1024;

/// The bearer token that every `/api/*` route requires.
///
/// Its `Display` is the secret itself (to print once, or to put in a URL
/// fragment); its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A new random token: 32 bytes from the operating system's random
    /// source (`/dev/urandom`), as 64 hex digits.
    pub fn generate() -> Result<Token> {
        use std::io::Read;
        let path = "/dev/urandom";
        let io = |source| crate::Error::Io {
            path: Some(path.into()),
            source,
        };
        let mut bytes = [0_u8; 32];
        std::fs::File::open(path)
            .and_then(|mut file| file.read_exact(&mut bytes))
            .map_err(io)?;
        Ok(Token(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// A token the embedding application chose (at least 16 characters of
    /// its own randomness); `None` when it is shorter, or holds characters
    /// a header cannot carry.
    pub fn new(secret: impl Into<String>) -> Option<Token> {
        let secret = secret.into();
        let fits = secret.len() >= 16 && secret.bytes().all(|b| b.is_ascii_graphic());
        fits.then_some(Token(secret))
    }

    /// Whether `offered` is this token, in time that does not depend on
    /// where they differ.
    pub(crate) fn matches(&self, offered: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        if offered.len() != expected.len() {
            return false;
        }
        let difference = expected
            .iter()
            .zip(offered)
            .fold(0_u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(difference) == 0
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

/// What the API accepts: its address (for the Host check), its token, and
/// any further host names.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    bound: SocketAddr,
    token: Token,
    hosts: Vec<String>,
    max_age: Duration,
    supervisor: Option<SharedSupervisor>,
    state_dir: Option<crate::supervisor::StateDir>,
    kill_scope: KillScope,
    max_connections: usize,
    header_timeout: Duration,
    idle_timeout: Duration,
    max_scans: usize,
    event_fed: bool,
}

/// A supervisor the application shares with the API (`GET /api/jobs`).
pub type SharedSupervisor = Arc<std::sync::Mutex<Supervisor>>;

impl ApiConfig {
    /// The API as served on `bound` (the listener's local address), with
    /// `token` for every `/api/*` route.
    pub fn new(bound: SocketAddr, token: Token) -> ApiConfig {
        ApiConfig {
            bound,
            token,
            hosts: Vec::new(),
            max_age: Duration::from_millis(200),
            supervisor: None,
            state_dir: None,
            kill_scope: KillScope::Any,
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            max_scans: 4,
            event_fed: true,
        }
    }

    /// Whether listings come from the event tracker's table (`true`, the
    /// default): the server's one [`Tracker`](crate::events::Tracker)
    /// keeps it from process events and publishes a copy that readers
    /// share at most once per [`max_age`](Self::max_age), sampling CPU
    /// and memory use every 2 s, so a listing costs its encoding, not a
    /// scan of `/proc`. With `false` a listing rescans `/proc` whenever an
    /// event came since the last scan or it is older than `max_age`: the
    /// old way, kept to compare (`cargo bench --bench http`). Where the
    /// tracker cannot start, listings rescan either way.
    pub fn event_fed(mut self, event_fed: bool) -> ApiConfig {
        self.event_fed = event_fed;
        self
    }

    /// At most this many connections open at once (4096 by default), fewer
    /// when the open-file limit less [`FD_RESERVE`] is lower. A new
    /// connection beyond closes the one idle the longest ([`serve`]).
    pub fn max_connections(mut self, max: usize) -> ApiConfig {
        self.max_connections = max.max(1);
        self
    }

    /// How long a client may take to send a request's head (10 s by
    /// default), also the time a kept-alive connection may wait for its
    /// next request ([`serve`]).
    pub fn header_timeout(mut self, timeout: Duration) -> ApiConfig {
        self.header_timeout = timeout;
        self
    }

    /// A connection on which no byte moved for this long while no handler
    /// ran is closed (120 s by default; the event stream sends a comment
    /// every 15 s, so a reading client never idles).
    pub fn idle_timeout(mut self, timeout: Duration) -> ApiConfig {
        self.idle_timeout = timeout;
        self
    }

    /// At most this many requests read `/proc` at once (4 by default:
    /// listings that refresh the table, port searches, kills, job
    /// listings); the others wait their turn.
    pub fn max_scans(mut self, max: usize) -> ApiConfig {
        self.max_scans = max.max(1);
        self
    }

    /// Which processes `POST /api/processes/{pid}/kill` may reach
    /// ([`KillScope::Any`] by default); outside it the answer is 403
    /// `out_of_scope` and nothing is signalled. Whatever the scope, only
    /// the signals that end a process are sent ([`KILL_SIGNALS`]).
    ///
    /// ```no_run
    /// use proctrack::http::{ApiConfig, KillScope, Token};
    /// use proctrack::signal::ProcessHandle;
    ///
    /// // Only what runs under the dev server we started.
    /// let child = std::process::Command::new("sleep").arg("600").spawn()?;
    /// let root = ProcessHandle::from_child(&child)?.identity();
    /// let config = ApiConfig::new("127.0.0.1:8787".parse()?, Token::generate()?)
    ///     .kill_scope(KillScope::Subtrees(vec![root]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kill_scope(mut self, scope: KillScope) -> ApiConfig {
        self.kill_scope = scope;
        self
    }

    /// Serves `GET /api/jobs` from `supervisor`: the application keeps
    /// starting and stopping jobs through the same handle. A request holds
    /// the lock while it reads the jobs' members.
    ///
    /// ```no_run
    /// use std::sync::{Arc, Mutex};
    /// use proctrack::http::{ApiConfig, Token};
    /// use proctrack::supervisor::{Supervisor, SupervisorOptions};
    ///
    /// let supervisor = Arc::new(Mutex::new(Supervisor::new(SupervisorOptions::new("devtool"))?));
    /// let config = ApiConfig::new("127.0.0.1:8787".parse()?, Token::generate()?)
    ///     .supervisor(Arc::clone(&supervisor));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn supervisor(mut self, supervisor: SharedSupervisor) -> ApiConfig {
        self.supervisor = Some(supervisor);
        self
    }

    pub(crate) fn shared_supervisor(&self) -> Option<&SharedSupervisor> {
        self.supervisor.as_ref()
    }

    /// Also marks the members of the jobs written down in `state_dir` (the
    /// jobs of `proctrack run`, or of any supervisor journaling there) in
    /// `GET /api/marks` and the tree view, beside those of the
    /// [shared supervisor](Self::supervisor).
    ///
    /// ```no_run
    /// use proctrack::http::{ApiConfig, Token};
    /// use proctrack::supervisor::StateDir;
    /// let config = ApiConfig::new("127.0.0.1:8787".parse()?, Token::generate()?)
    ///     .jobs_from(StateDir::from_env()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn jobs_from(mut self, state_dir: crate::supervisor::StateDir) -> ApiConfig {
        self.state_dir = Some(state_dir);
        self
    }

    pub(crate) fn state_dir(&self) -> Option<&crate::supervisor::StateDir> {
        self.state_dir.as_ref()
    }

    /// Also accepts `Host: <name>` (as sent: `name:port`, or `name` for
    /// the scheme's default port), for an app served under a name of its own.
    pub fn allow_host(mut self, name: impl Into<String>) -> ApiConfig {
        self.hosts.push(name.into().to_ascii_lowercase());
        self
    }

    /// How old a listing may be (200 ms by default): how often the event
    /// tracker's table is published to readers while events change it, or
    /// (without [`event_fed`](Self::event_fed)) how old the rescanned table
    /// may be before a read rescans it. Many clients at once share one.
    pub fn max_age(mut self, max_age: Duration) -> ApiConfig {
        self.max_age = max_age;
        self
    }

    /// The hosts a request may name: the bound address, the loopback names
    /// with the bound port, and the added names.
    pub(crate) fn allowed_hosts(&self) -> Vec<String> {
        let port = self.bound.port();
        let mut hosts = vec![
            self.bound.to_string(),
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
        ];
        hosts.extend(self.hosts.iter().cloned());
        hosts
    }
}

/// The state the routes share: the configuration and one process table.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    config: ApiConfig,
    hosts: Vec<String>,
    table: Mutex<Snapshot>,
    /// Set by the event stream: the next read refreshes whatever its age.
    stale: AtomicBool,
    /// The event stream, started by its first client.
    events: OnceLock<events::Channel>,
    /// The page's one-time sign-in code and its sessions.
    sessions: Mutex<security::Sessions>,
    /// Permits for requests that read `/proc`.
    scans: tokio::sync::Semaphore,
    /// The table kills run on, apart from the listings' so that a kill's
    /// grace period does not hold them up; made at the first kill,
    /// refreshed for each later one. Kills run one at a time.
    kills: Mutex<Option<ProcessTable>>,
}

/// The table and when it was last refreshed.
pub(crate) struct Snapshot {
    pub(crate) table: ProcessTable,
    pub(crate) refreshed: Instant,
}

impl ApiState {
    /// The state for `config`, with a table read now from the system.
    pub fn new(config: ApiConfig) -> Result<ApiState> {
        let table = ProcessTable::new()?;
        let scans = tokio::sync::Semaphore::new(config.max_scans);
        Ok(ApiState {
            inner: Arc::new(Inner {
                hosts: config.allowed_hosts(),
                config,
                table: Mutex::new(Snapshot {
                    table,
                    refreshed: Instant::now(),
                }),
                stale: AtomicBool::new(false),
                events: OnceLock::new(),
                sessions: Mutex::new(security::Sessions::default()),
                scans,
                kills: Mutex::new(None),
            }),
        })
    }

    /// A new one-time code for the page's sign-in link,
    /// `http://<address>/#code=<code>`: the page trades it for a session
    /// cookie (`POST /api/session`), and it works once. A new code replaces
    /// the one issued before. Unlike the token, the code is harmless once
    /// spent: a browser started with the link keeps it in its argv, where
    /// other local users can read it.
    ///
    /// ```no_run
    /// use proctrack::http::{ApiConfig, ApiState, Token};
    ///
    /// let bound = "127.0.0.1:8787".parse()?;
    /// let state = ApiState::new(ApiConfig::new(bound, Token::generate()?))?;
    /// eprintln!("open http://{bound}/#code={}", state.sign_in_code()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sign_in_code(&self) -> Result<Token> {
        let code = Token::generate()?;
        self.sessions().set_code(code.clone());
        Ok(code)
    }

    pub(crate) fn sessions(&self) -> std::sync::MutexGuard<'_, security::Sessions> {
        // A panic elsewhere poisons the lock, not the sessions.
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    /// Runs `kill` (blocking; call it on a blocking thread) on the kill
    /// table, refreshed first.
    pub(crate) fn on_kill_table<T, E: From<crate::Error>>(
        &self,
        kill: impl FnOnce(&mut ProcessTable) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        // A panic in another kill poisons the lock, not the table.
        let mut slot = self
            .inner
            .kills
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let table = match slot.take() {
            Some(mut table) => {
                table.refresh()?;
                table
            }
            None => ProcessTable::new()?,
        };
        kill(slot.insert(table))
    }

    pub(crate) fn hosts(&self) -> &[String] {
        &self.inner.hosts
    }

    /// Runs `read` on a blocking thread, on the process table: the event
    /// tracker's table as last published ([`ApiConfig::event_fed`]), or,
    /// without it, the shared table rescanned first when events marked it
    /// stale or it is older than the configured age.
    pub(crate) async fn with_table<T: Send + 'static>(
        &self,
        read: impl FnOnce(&events::Frozen) -> T + Send + 'static,
    ) -> std::result::Result<T, ApiError> {
        if self.inner.config.event_fed
            && let Some(snapshot) = self.snapshot().await
        {
            // No scan: the table the events keep. The last reader drops
            // the copy, on its blocking thread.
            return tokio::task::spawn_blocking(move || read(&snapshot))
                .await
                .map_err(|_| ApiError::internal("the request's worker thread failed"));
        }
        let state = self.clone();
        self.blocking(move || {
            // A panic in another request poisons the lock, not the table.
            let mut snapshot = state
                .inner
                .table
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let stale = state.inner.stale.swap(false, Ordering::Relaxed);
            if stale || snapshot.refreshed.elapsed() >= state.inner.config.max_age {
                snapshot.table.refresh()?;
                snapshot.refreshed = Instant::now();
            }
            Ok(read(&snapshot.table.frozen()))
        })
        .await?
    }

    /// Runs `work` (which reads `/proc`) on a blocking thread once one of
    /// the [`ApiConfig::max_scans`] permits is free.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> std::result::Result<T, ApiError> {
        let _permit = self
            .inner
            .scans
            .acquire()
            .await
            .map_err(|_| ApiError::internal("the server is shutting down"))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| ApiError::internal("the request's worker thread failed"))
    }
}

/// The API and the tree view, for `state`. Nest it (`Router::nest`) or
/// serve it as it is.
pub fn router(state: ApiState) -> Router {
    let mutating = Router::new()
        .route("/api/processes/{pid}/kill", post(routes::kill))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::check_mutation,
        ));
    let reads = Router::new()
        .route("/api/processes", get(routes::processes))
        .route("/api/processes/{pid}", get(routes::process))
        .route("/api/ports/{port}", get(routes::port))
        .route("/api/jobs", get(routes::jobs))
        .route("/api/marks", get(routes::marks))
        .route("/api/events", get(events::stream))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::check_read,
        ));
    Router::new()
        .route("/", get(routes::page))
        .route("/app.js", get(routes::script))
        .route("/style.css", get(routes::style))
        .route("/api/session", post(security::sign_in))
        .merge(reads)
        .merge(mutating)
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::check_host,
        ))
        .with_state(state)
}
