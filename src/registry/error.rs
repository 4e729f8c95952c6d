//! The registry's own errors: its file, its database, and the process errors
//! met on the way.

use std::io;
use std::path::PathBuf;

/// What went wrong in a [`Registry`](super::Registry) call. Every variant
/// about the file names it, and the file's bytes were left as they were.
///
/// ```no_run
/// use proctrack::registry::{Registry, RegistryError};
///
/// # async fn demo() -> Result<(), RegistryError> {
/// match Registry::open("/tmp/procs.db").await {
///     Ok(registry) => registry.close().await,
///     Err(RegistryError::NotARegistry { path }) => {
///         eprintln!("{} belongs to another program", path.display());
///     }
///     Err(other) => return Err(other),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The file is not a SQLite database (its first bytes are not SQLite's
    /// header, or SQLite says so), so it cannot be a registry.
    #[error("{} is not a SQLite database", path.display())]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },

    /// The file is a SQLite database of something else: it has tables but not
    /// the registry's schema bookkeeping.
    #[error("{} is a SQLite database but not a proctrack registry", path.display())]
    NotARegistry {
        /// The file.
        path: PathBuf,
    },

    /// The database file is damaged (`PRAGMA quick_check` or SQLite itself
    /// found it corrupt).
    #[error("{} is corrupt: {detail}", path.display())]
    CorruptDatabase {
        /// The file.
        path: PathBuf,
        /// What SQLite reported.
        detail: String,
    },

    /// The file was written by a newer proctrack: its schema version is one
    /// this library does not know. Open it with the newer version.
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

    /// The operating system refused access to the file or its directory.
    #[error("permission denied: {}", path.display())]
    PermissionDenied {
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
    /// registry's write lock for longer than the busy timeout.
    #[error("database error on {}: {source}", path.display())]
    Database {
        /// The database file.
        path: PathBuf,
        /// The underlying error (from the SQLite driver).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// An I/O error on the file other than the ones above.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A process error met on the way: reading a row's process, or killing
    /// its tree.
    #[error(transparent)]
    Process(#[from] crate::Error),
}

/// Shorthand for the registry's results.
pub(crate) type Result<T, E = RegistryError> = std::result::Result<T, E>;
