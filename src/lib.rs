//! proctrack: know which processes you started, what those started, and stop
//! all of them safely.
//!
//! A [`Pid`] can only hold a value that is safe to signal; a
//! [`ProcessIdentity`] (pid, start time, boot) names one process for its
//! whole life and never the next holder of its pid; a [`ProcessInfo`] is what
//! one read of a process tells. The [`table::ProcessTable`] is the model of
//! all processes: parent index, tree queries, cwd search, CPU%, diffs.
//! [`signal`] kills whole trees race-free; [`registry`] (feature `registry`)
//! remembers what you spawned across your own restarts; [`supervisor`]
//! runs commands as jobs in every containment the system allows (process
//! group, subreaper, environment tag, cgroup v2 leaf), stops all of each,
//! and recovers what a crashed instance left. The `proctrack`
//! command (`cargo install --path cli`) is built on exactly this API.
//!
//! # Quick start
//!
//! ## List processes, and trees
//!
//! ```
//! use proctrack::{Pid, table::ProcessTable};
//!
//! let table = ProcessTable::new()?;
//! let me = table.get(Pid::current()).expect("we are running");
//! println!("{} {} in {:?}", me.pid(), me.cmdline(), me.cwd().path());
//!
//! // Who started us, up to pid 1; everything we started, as a nested tree.
//! let ancestors: Vec<Pid> = table.ancestors(me.pid()).iter().map(|p| p.pid()).collect();
//! let tree = table.tree(me.pid()).expect("we are in the table");
//! println!("{} processes under us, {} above", tree.len() - 1, ancestors.len());
//!
//! // The whole system: one tree per root (pid 1, and the kernel's pid 2).
//! let everything: usize = table.roots().iter().filter_map(|root| table.tree(root.pid())).map(|t| t.len()).sum();
//! assert_eq!(everything, table.len());
//! # Ok::<(), proctrack::Error>(())
//! ```
//!
//! ## Find processes by working directory
//!
//! "What is still running in this worktree?" A directory matches by path
//! components (`/wt/ab` holds `/wt/ab/x`, never `/wt/abc`), removed
//! directories by the path they had.
//!
//! ```
//! use std::process::Command;
//! use proctrack::{Pid, table::ProcessTable};
//!
//! let dir = std::fs::canonicalize(std::env::temp_dir())?;
//! let mut server = Command::new("sleep").arg("30").current_dir(&dir).spawn()?;
//!
//! let table = ProcessTable::new()?;
//! let in_dir = table.find_by_cwd_prefix(&dir);
//! assert!(in_dir.iter().any(|p| p.pid().as_u32() == server.id()));
//! if table.cwds_not_permitted() > 0 {
//!     eprintln!("some processes of other users could not be checked: run as root");
//! }
//! // Which of our children does each belong to?
//! for process in &in_dir {
//!     if let Some(child) = table.child_leading_to(Pid::current(), process.pid()) {
//!         println!("{} belongs to our child {}", process.pid(), child.pid());
//!     }
//! }
//! # server.kill()?;
//! # server.wait()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Kill a tree
//!
//! The tree is frozen, completed and then signalled, so children forked
//! during the kill die too; every member is pinned by a pidfd, so a reused
//! pid is never hit. A [`Subreaper`](signal::Subreaper) makes orphans of the
//! dying tree come to us instead of pid 1, and the kill reaps them.
//!
//! ```
//! # #[cfg(target_os = "linux")] {
//! use std::process::Command;
//! use std::time::Duration;
//! use proctrack::signal::{KillOptions, Subreaper};
//! use proctrack::table::ProcessTable;
//!
//! let subreaper = Subreaper::install()?;
//! let tree = subreaper.spawn(Command::new("sh").args(["-c", "sleep 30 & sleep 30 & wait"]))?;
//!
//! // SIGTERM, up to 5 s of grace, then SIGKILL for what is left. The root
//! // is our child: the kill collects its exit status too (see
//! // `KillOptions::reap_root`), so nothing is left a zombie.
//! let mut table = ProcessTable::new()?;
//! let options = KillOptions::graceful(Duration::from_secs(5));
//! let report = subreaper.kill_tree(&mut table, tree.handle.identity(), &options)?;
//! assert!(report.is_complete());
//! print!("{report}"); // one line per member: "killed by SIGTERM    4242"
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`signal::kill_cwd`] kills everything standing in a directory, tree by tree.
//!
//! ## Find what you started after a restart
//!
//! With the `registry` feature, register what you spawn in a SQLite file;
//! after a crash and restart, [`reconcile`](registry::Registry::reconcile)
//! tells what still runs (by identity: a reused pid does not count) and
//! [`stop`](registry::Registry::stop) kills it.
//!
//! ```
//! # #[cfg(all(target_os = "linux", feature = "registry"))]
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! use proctrack::registry::{Metadata, Registry, StopScope};
//! use proctrack::signal::ProcessHandle;
//!
//! let file = std::env::temp_dir().join(format!("proctrack-doc-{}.db", std::process::id()));
//! # let _ = std::fs::remove_file(&file);
//! let mut server = std::process::Command::new("sleep").arg("30").spawn()?;
//! {
//!     let registry = Registry::open(&file).await?;
//!     let identity = ProcessHandle::from_child(&server)?.identity();
//!     registry.register(identity, &Metadata::new("build-42").label("dev server")).await?;
//! } // ... the supervisor crashes here ...
//!
//! // ... and starts again:
//! let registry = Registry::open(&file).await?;
//! let found = registry.reconcile().await?;
//! assert_eq!(found.running.len(), 1);
//! let stopped = registry.stop(StopScope::Owner("build-42".into())).await?;
//! assert!(stopped.is_complete());
//! server.wait()?; // killed; its exit status is left to its parent, us
//! # registry.close().await;
//! # let _ = std::fs::remove_file(&file);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## One-shot reads
//!
//! To list processes, build a [`ProcessTable`](table::ProcessTable): it is
//! the one model of them. Without a table: one process, and whether a pid
//! lives.
//!
//! ```no_run
//! let me = proctrack::process(proctrack::Pid::current())?;
//! assert_eq!(proctrack::exists(me.pid())?, proctrack::Liveness::Alive);
//! # Ok::<(), proctrack::Error>(())
//! ```
//!
//! The platform's reader is [`SystemSource`]: on Linux it reads `/proc`
//! through one directory fd and a reused buffer; on macOS it asks libproc
//! and `sysctl`. Hold one when you read
//! repeatedly. The byte-level decoders of both live in [`parse`], apart from
//! any I/O, and are tested on every platform.
//!
//! # Features
//!
//! None is on by default: reading the table or killing a tree compiles no
//! async runtime.
//!
//! | feature | what it adds | dependencies it brings |
//! |---|---|---|
//! | *(none)* | reading, the table, signals and tree kills, ports | rustix (Linux), libproc (macOS), thiserror |
//! | `tokio` | async waiting ([`ProcessHandle::wait_async`](signal::ProcessHandle::wait_async)), the async `inspect` module | tokio |
//! | `serde` | JSON forms of every data type and report (below) | serde |
//! | `registry` | [`registry`]: SQLite file of spawned processes, reconcile, stop (implies `tokio`) | sqlx with bundled SQLite |
//! | `schema` | a JSON Schema of the JSON forms (implies `serde`) | schemars |
//! | `http` | [`http`]: an axum router with the JSON API, server-sent events and a live tree view (implies `serde`, `tokio`) | axum, serde_json, futures-util |
//!
//! # JSON
//!
//! With `serde`, [`ProcessInfo`], [`table::ProcessTree`],
//! [`table::RefreshDiff`], [`signal::KillReport`] and the registry's rows and
//! reports serialize to JSON a web UI can use as it is:
//!
//! - names, arguments and paths are strings; where the bytes are not UTF-8
//!   the string is lossy (U+FFFD) and a sibling `<field>_bytes` array holds
//!   the exact bytes, present only then: `"name": "caf\u{FFFD}", "name_bytes": [99, 97, 102, 233]`.
//!   Reading back prefers the bytes, so nothing is lost;
//! - an identity is one object, `{"pid": 42, "start_time": 7, "boot_id": "0f2c…"}`;
//! - a cwd is `{"path": "/srv/app", "deleted": false}`, or
//!   `{"path": null, "deleted": false, "reason": "not_permitted"}` (or `"unknown"`);
//! - a state is a word (`"sleeping"`); CPU times are `user_time_us`,
//!   `system_time_us` (microseconds); registry times are `*_ms` since the epoch;
//! - a kill's refusals are `{"identity": …, "reason": "init" | "own_process" | "ancestor" | "kernel_thread"}`.
//!
//! `tests/golden/` holds an example of each, and `schema/proctrack.schema.json`
//! their JSON Schema (generated from these types; a test fails when they drift).
//!
//! # macOS
//!
//! The same types and calls work on macOS, with weaker guarantees:
//!
//! - There is no pidfd and no `/proc/<pid>` pin. A full read of a process
//!   checks its start time before and after, so its fields are one process's;
//!   but signalling goes by pid, so a small window remains between checking a
//!   process's identity and `kill(2)` in which its pid could be reused.
//! - [`StartTime`] is the kernel's wall-clock start time in microseconds since
//!   the Unix epoch, not clock ticks since boot.
//! - Without root, other users' processes show their pid, parent, group,
//!   session, state, name and start time, but an empty command line, a
//!   [`Cwd::NotPermitted`] working directory, and 0 for memory, CPU times and
//!   threads.
//! - A process's name is up to 32 bytes (`p_name`) rather than 15.

#![cfg_attr(not(target_os = "macos"), forbid(unsafe_code))]
// On macOS, `ffi` (and only it) needs `unsafe` for system calls libproc does
// not wrap; everything else stays free of it.
#![cfg_attr(target_os = "macos", deny(unsafe_code))]
#![warn(missing_docs)]
// The docs link to items of the `registry` and `http` features (and
// `tokio`, which both imply); built without them, those links are text.
#![cfg_attr(
    not(all(feature = "registry", feature = "http")),
    allow(rustdoc::broken_intra_doc_links)
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "tokio")]
mod blocking;
mod error;
pub mod events;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
mod identity;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod inspect;
pub mod parse;
mod pid;
pub mod ports;
mod process;
#[cfg(feature = "registry")]
#[cfg_attr(docsrs, doc(cfg(feature = "registry")))]
pub mod registry;
pub mod signal;
mod source;
pub mod supervisor;
pub mod table;
#[cfg(feature = "serde")]
mod wire;

#[cfg(target_os = "macos")]
#[allow(unsafe_code)]
mod ffi;
/// The platform's process source, chosen once for the crate.
#[cfg_attr(target_os = "linux", path = "linux/mod.rs")]
#[cfg_attr(target_os = "macos", path = "macos/mod.rs")]
#[cfg_attr(
    not(any(target_os = "linux", target_os = "macos")),
    path = "unsupported.rs"
)]
mod platform;

pub use error::{Error, ParseError, Result};
pub use identity::{BootId, ProcessIdentity, StartTime};
pub use parse::cmdline::CommandLine;
pub use pid::Pid;
pub use platform::SystemSource;
pub use process::{Cwd, Liveness, ProcessInfo, ProcessInfoBuilder, State};
pub use source::{MemorySource, ProcessSource, Sample};

/// Reads one process. [`Error::NotFound`] when no process has this pid.
///
/// ```no_run
/// let init = proctrack::process(proctrack::Pid::try_from(1)?)?;
/// assert_eq!(init.parent(), None);
/// # Ok::<(), proctrack::Error>(())
/// ```
pub fn process(pid: Pid) -> Result<ProcessInfo> {
    SystemSource::open()?.process(pid)
}

/// Tells whether a process with this pid is alive, a zombie, or gone.
///
/// ```no_run
/// use proctrack::{Liveness, Pid};
/// assert_eq!(proctrack::exists(Pid::current())?, Liveness::Alive);
/// # Ok::<(), proctrack::Error>(())
/// ```
pub fn exists(pid: Pid) -> Result<Liveness> {
    SystemSource::open()?.exists(pid)
}

/// README's examples compile and run as doctests, so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
