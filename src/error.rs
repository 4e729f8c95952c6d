//! The one error type of proctrack.

use std::io;
use std::path::PathBuf;

use crate::Pid;

/// What went wrong. Match on the variant; the message names the path or pid.
///
/// ```
/// use proctrack::{Error, Pid};
///
/// match Pid::try_from(-1) {
///     Err(Error::InvalidPid { value }) => assert_eq!(value, -1),
///     other => panic!("unexpected: {other:?}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The process does not exist (it exited, was reaped, or never existed).
    #[error("process {pid} not found: it has exited or never existed")]
    NotFound {
        /// The pid that was looked up.
        pid: Pid,
    },

    /// The operating system refused access (another user's process, say).
    #[error("permission denied: {}", path.display())]
    PermissionDenied {
        /// What could not be accessed.
        path: PathBuf,
    },

    /// A value that cannot be a pid: 0, negative, or above `i32::MAX`.
    #[error("invalid pid {value}: a pid must be in 1..={}", i32::MAX)]
    InvalidPid {
        /// The rejected value (0 when the text was not a number at all).
        value: i128,
    },

    /// The platform or kernel lacks what this call needs.
    #[error("unsupported: {what}")]
    Unsupported {
        /// What is missing.
        what: &'static str,
    },

    /// A guard rail refused to signal this process: it is pid 1, the calling
    /// process, or one of its ancestors, and the caller did not allow that
    /// (see [`Guard`](crate::signal::Guard)).
    #[error("refusing to signal process {pid}: {reason}")]
    Refused {
        /// The process that was not signalled.
        pid: Pid,
        /// Which guard rail refused.
        reason: crate::signal::Refusal,
    },

    /// The exit status of this process cannot be collected here: it is not a
    /// child of the calling process, or its status was collected already.
    #[error("process {pid} is not an unreaped child of this process")]
    NotChild {
        /// The process whose status was asked for.
        pid: Pid,
    },

    /// The file is not a SQLite database (its first bytes are not SQLite's
    /// header, or SQLite says so), so it cannot be a process
    /// registry (the `registry` feature). The file was left as it was.
    #[error("{} is not a SQLite database", path.display())]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },

    /// The file is a SQLite database of something else: it has tables but not
    /// the registry's schema bookkeeping. The file was left
    /// as it was.
    #[error("{} is a SQLite database but not a proctrack registry", path.display())]
    NotARegistry {
        /// The file.
        path: PathBuf,
    },

    /// The database file is damaged (`PRAGMA quick_check` or SQLite itself
    /// found it corrupt). The file was left as it was.
    #[error("{} is corrupt: {detail}", path.display())]
    CorruptDatabase {
        /// The file.
        path: PathBuf,
        /// What SQLite reported.
        detail: String,
    },

    /// The registry file was written by a newer proctrack:
    /// its schema version is one this library does not know. The file was left
    /// as it was; open it with the newer version.
    #[error(
        "{} has registry schema version {found}; this proctrack knows versions up to {supported}",
        path.display()
    )]
    SchemaTooNew {
        /// The file.
        path: PathBuf,
        /// The newest schema version recorded in the file.
        found: i64,
        /// The newest schema version this library knows.
        supported: i64,
    },

    /// The file, or the directory that must hold it and its `-wal`/`-shm`
    /// companions, is on a read-only file system or cannot be written.
    #[error("{} cannot be written: read-only", path.display())]
    ReadOnly {
        /// The file.
        path: PathBuf,
    },

    /// The registry has no row with this id.
    #[error("{} has no row {id}", path.display())]
    UnknownRow {
        /// The registry file.
        path: PathBuf,
        /// The row id that was asked for.
        id: i64,
    },

    /// Any other database error; for instance another process held the
    /// registry's write lock for longer than the busy
    /// timeout.
    #[error("database error on {}: {source}", path.display())]
    Database {
        /// The database file.
        path: PathBuf,
        /// The underlying error (from the SQLite driver).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// An I/O error other than the ones above.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A file had content that could not be parsed.
    #[error("cannot parse {}: {reason}", path.display())]
    Parse {
        /// The file that was read.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
