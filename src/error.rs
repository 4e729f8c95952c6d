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
