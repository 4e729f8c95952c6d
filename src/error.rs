//! The errors of proctrack's process layers (the registry has its own).
//!
//! This module sits below every layer that returns its errors, so it names
//! nothing above it: [`Refusal`] lives here and the signal layer re-exports it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::Pid;
use crate::parse::{BootIdError, ProcArgsError, SocketDecodeError, StatError};

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
        reason: Refusal,
    },

    /// The exit status of this process cannot be collected here: it is not a
    /// child of the calling process, or its status was collected already.
    #[error("process {pid} is not an unreaped child of this process")]
    NotChild {
        /// The process whose status was asked for.
        pid: Pid,
    },

    /// An I/O error other than the ones above.
    #[error("I/O error{}: {source}", on(path.as_deref()))]
    Io {
        /// The file or directory involved; `None` when the failed call
        /// names no file (`poll`, `kqueue`, a cancelled blocking task).
        path: Option<PathBuf>,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Content read from the system could not be parsed.
    #[error("cannot parse {}: {source}", path.as_deref().map_or_else(|| source.what().to_owned(), |path| path.display().to_string()))]
    Parse {
        /// The file that was read; `None` when the bytes came from a system
        /// call rather than a file (`sysctl` on macOS).
        path: Option<PathBuf>,
        /// What was wrong with it.
        #[source]
        source: ParseError,
    },
}

/// " on <path>" for a message, or nothing.
fn on(path: Option<&Path>) -> String {
    path.map(|path| format!(" on {}", path.display()))
        .unwrap_or_default()
}

/// Why content read from the system could not be parsed: the decoder's own
/// error, or a check made on what it decoded.
///
/// ```
/// use proctrack::ParseError;
/// use proctrack::parse::{StatError, parse_stat};
///
/// let cause = ParseError::from(parse_stat(b"1 no-parens").unwrap_err());
/// assert_eq!(cause, ParseError::Stat(StatError::NoComm));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A `/proc/<pid>/stat` line ([`parse_stat`](crate::parse::parse_stat)).
    #[error(transparent)]
    Stat(#[from] StatError),
    /// A boot id ([`parse_boot_id`](crate::parse::parse_boot_id)).
    #[error(transparent)]
    BootId(#[from] BootIdError),
    /// A macOS `KERN_PROCARGS2` buffer (a process's arguments).
    #[error(transparent)]
    ProcArgs(#[from] ProcArgsError),
    /// A socket listing (sock_diag reply, `/proc/net` table).
    #[error(transparent)]
    Socket(#[from] SocketDecodeError),
    /// The stat file of one pid names another pid (or none that is valid).
    #[error("stat names pid {found} where {expected} was read")]
    OtherPid {
        /// The pid whose file was read.
        expected: Pid,
        /// The pid field of the stat line.
        found: i32,
    },
    /// `/proc/<pid>/status` has no `Tgid:` line.
    #[error("no Tgid line")]
    NoTgid,
}

impl ParseError {
    /// What was being parsed, for a message without a path.
    fn what(&self) -> &'static str {
        match self {
            ParseError::Stat(_) | ParseError::OtherPid { .. } => "a stat line",
            ParseError::BootId(_) => "the boot id",
            ParseError::ProcArgs(_) => "a KERN_PROCARGS2 buffer",
            ParseError::Socket(_) => "a socket listing",
            ParseError::NoTgid => "a status file",
        }
    }
}

/// Why a guard rail refused to signal a process
/// (see [`Guard`](crate::signal::Guard)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub enum Refusal {
    /// The process is pid 1.
    Init,
    /// The process is the calling process.
    OwnProcess,
    /// The process is an ancestor of the calling process.
    Ancestor,
    /// The process is a kernel thread: signals mean nothing to it, and it
    /// never stops. No guard setting allows it.
    KernelThread,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Init => "it is pid 1 (init)",
            Refusal::OwnProcess => "it is the calling process",
            Refusal::Ancestor => "it is an ancestor of the calling process",
            Refusal::KernelThread => "it is a kernel thread",
        })
    }
}

impl Error {
    /// An I/O failure, on `path` where one was involved: a refusal
    /// (`EACCES`, `EPERM`) on a path is [`Error::PermissionDenied`] naming
    /// it; anything else is [`Error::Io`]. The one place OS errors become
    /// the crate's.
    pub(crate) fn io(path: Option<PathBuf>, source: io::Error) -> Error {
        match (source.kind(), path) {
            (io::ErrorKind::PermissionDenied, Some(path)) => Error::PermissionDenied { path },
            (_, path) => Error::Io { path, source },
        }
    }
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn messages_read_well_with_and_without_a_path() {
        let io = |path: Option<&str>| Error::Io {
            path: path.map(PathBuf::from),
            source: io::Error::from_raw_os_error(5),
        };
        assert!(
            io(Some("/proc/7/stat"))
                .to_string()
                .starts_with("I/O error on /proc/7/stat: ")
        );
        assert!(io(None).to_string().starts_with("I/O error: "));

        let parse = |path: Option<&str>| Error::Parse {
            path: path.map(PathBuf::from),
            source: ParseError::Stat(StatError::NoComm),
        };
        assert_eq!(
            parse(Some("/proc/7/stat")).to_string(),
            "cannot parse /proc/7/stat: no parenthesised command name"
        );
        assert_eq!(
            parse(None).to_string(),
            "cannot parse a stat line: no parenthesised command name"
        );
        // The typed cause is reachable as the source.
        let source = parse(None).source().map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("no parenthesised command name"));
    }
}
