//! The JSON forms of the data types (feature `serde`), shaped for a web UI
//! that uses them as they are.
//!
//! - Names, arguments and paths are strings. Where the bytes are not UTF-8
//!   the string is lossy (U+FFFD for each bad sequence) and a sibling field
//!   named `<field>_bytes` holds the exact bytes as an array of numbers; that
//!   field is present only when the bytes differ from the string. Reading
//!   JSON back prefers the bytes, so nothing is lost.
//! - A working directory is `{"path": "/srv/app", "deleted": false}`, or
//!   `{"path": null, "deleted": false, "reason": "not_permitted" | "unknown"}`.
//! - An identity is one object: `{"pid": 42, "start_time": 7, "boot_id": "…"}`.
//! - A signal is its name: `"SIGTERM"`.
//! - A state is a word (`"running"`, `"sleeping"`, `"zombie"`, …); a state
//!   letter this version does not know is that letter (`"Q"`).
//! - CPU times are whole microseconds (`user_time_us`, `system_time_us`):
//!   exact for what the kernel reports, and below 2^53 (what a JavaScript
//!   number holds exactly) for 285 years of CPU time.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::CommandLine;
use crate::signal::Signal;
use crate::{Cwd, Pid, ProcessIdentity, ProcessInfo, State};

/// Bytes as a lossy string, plus the exact bytes when the string is not them.
pub(crate) fn text(bytes: &[u8]) -> (Cow<'_, str>, Option<&[u8]>) {
    let lossy = String::from_utf8_lossy(bytes);
    let exact = matches!(lossy, Cow::Owned(_)).then_some(bytes);
    (lossy, exact)
}

/// The bytes a `text` pair stands for: the exact ones when present.
pub(crate) fn bytes_of(lossy: Cow<'_, str>, exact: Option<Vec<u8>>) -> Vec<u8> {
    exact.unwrap_or_else(|| lossy.into_owned().into_bytes())
}

#[derive(Serialize, Deserialize)]
#[serde(rename = "ProcessInfo")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub(crate) struct ProcessInfoJson<'a> {
    identity: ProcessIdentity,
    /// The parent's pid; null for the roots (pid 1 and the kernel's pid 2).
    parent: Option<Pid>,
    /// The kernel's name for the process (`comm`), at most 15 bytes on Linux.
    name: Cow<'a, str>,
    /// The name's exact bytes, only when they are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name_bytes: Option<Vec<u8>>,
    /// The arguments, the program first; empty for zombies and kernel threads.
    cmdline: Vec<Cow<'a, str>>,
    /// Every argument's exact bytes, only when some argument is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cmdline_bytes: Option<Vec<Vec<u8>>>,
    cwd: Cwd,
    state: State,
    rss_bytes: u64,
    user_time_us: u64,
    system_time_us: u64,
    process_group: Option<Pid>,
    session: Option<Pid>,
    threads: u32,
    kernel_thread: bool,
    /// CPU use between a table's last two samples, percent of one CPU (up
    /// to 100 × threads); null until sampled twice.
    #[serde(default)]
    cpu_percent: Option<f32>,
}

fn micros(nanos: u64) -> u64 {
    nanos / 1_000
}

impl Serialize for ProcessInfo {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (name, name_bytes) = text(self.name.as_bytes());
        let mut cmdline = Vec::new();
        let mut lossless = true;
        for arg in self.cmdline.args() {
            let (lossy, exact) = text(arg.as_bytes());
            lossless &= exact.is_none();
            cmdline.push(lossy);
        }
        let cmdline_bytes = (!lossless).then(|| {
            self.cmdline
                .args()
                .map(|arg| arg.as_bytes().to_vec())
                .collect()
        });
        ProcessInfoJson {
            identity: self.identity,
            parent: self.parent,
            name,
            name_bytes: name_bytes.map(<[u8]>::to_vec),
            cmdline,
            cmdline_bytes,
            cwd: self.cwd.clone(),
            state: self.state,
            rss_bytes: self.rss_bytes,
            user_time_us: micros(self.user_nanos),
            system_time_us: micros(self.system_nanos),
            process_group: self.process_group,
            session: self.session,
            threads: self.threads,
            kernel_thread: self.kernel_thread,
            cpu_percent: self.cpu_percent(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ProcessInfo {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ProcessInfo, D::Error> {
        let json = ProcessInfoJson::deserialize(deserializer)?;
        let name = OsString::from_vec(bytes_of(json.name, json.name_bytes));
        let cmdline = match json.cmdline_bytes {
            Some(exact) => CommandLine::from_args(exact.into_iter().map(OsString::from_vec)),
            None => CommandLine::from_args(json.cmdline.iter().map(|arg| OsStr::new(&**arg))),
        };
        Ok(ProcessInfo::builder(json.identity)
            .parent(json.parent)
            .name(name)
            .cmdline(cmdline)
            .cwd(json.cwd)
            .state(json.state)
            .rss_bytes(json.rss_bytes)
            .cpu_time(
                Duration::from_micros(json.user_time_us),
                Duration::from_micros(json.system_time_us),
            )
            .group_and_session(json.process_group, json.session)
            .threads(json.threads)
            .kernel_thread(json.kernel_thread)
            .cpu_percent(json.cpu_percent)
            .build())
    }
}

/// Why a working directory is not known.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub(crate) enum CwdReason {
    /// Another user's process, without root or `CAP_SYS_PTRACE`.
    NotPermitted,
    /// A zombie, or not read.
    Unknown,
}

#[derive(Serialize, Deserialize)]
#[serde(rename = "Cwd")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub(crate) struct CwdJson<'a> {
    /// The directory; null when it is not known (see `reason`).
    path: Option<Cow<'a, str>>,
    /// The path's exact bytes, only when they are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path_bytes: Option<Vec<u8>>,
    /// The directory was removed while the process stood in it; `path` is
    /// the last path it had.
    #[serde(default)]
    deleted: bool,
    /// Why `path` is null; absent when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<CwdReason>,
}

impl Serialize for Cwd {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let json = match self {
            Cwd::Path(path) | Cwd::Deleted(path) => {
                let (lossy, exact) = text(path.as_os_str().as_bytes());
                CwdJson {
                    path: Some(lossy),
                    path_bytes: exact.map(<[u8]>::to_vec),
                    deleted: matches!(self, Cwd::Deleted(_)),
                    reason: None,
                }
            }
            Cwd::NotPermitted | Cwd::Unknown => CwdJson {
                path: None,
                path_bytes: None,
                deleted: false,
                reason: Some(if matches!(self, Cwd::NotPermitted) {
                    CwdReason::NotPermitted
                } else {
                    CwdReason::Unknown
                }),
            },
        };
        json.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Cwd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Cwd, D::Error> {
        let json = CwdJson::deserialize(deserializer)?;
        Ok(match (json.path, json.reason) {
            (Some(path), _) => {
                let path = PathBuf::from(OsString::from_vec(bytes_of(path, json.path_bytes)));
                if json.deleted {
                    Cwd::Deleted(path)
                } else {
                    Cwd::Path(path)
                }
            }
            (None, Some(CwdReason::NotPermitted)) => Cwd::NotPermitted,
            (None, _) => Cwd::Unknown,
        })
    }
}

/// The word for each state; `None` for a letter this version does not know.
fn state_word(state: State) -> Option<&'static str> {
    Some(match state {
        State::Running => "running",
        State::Sleeping => "sleeping",
        State::DiskSleep => "disk_sleep",
        State::Stopped => "stopped",
        State::TracingStop => "tracing_stop",
        State::Zombie => "zombie",
        State::Dead => "dead",
        State::Idle => "idle",
        State::Parked => "parked",
        State::Waking => "waking",
        State::Unknown(_) => return None,
    })
}

impl Serialize for State {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (state_word(*self), self) {
            (Some(word), _) => serializer.serialize_str(word),
            (None, State::Unknown(letter)) => serializer.collect_str(letter),
            (None, _) => serializer.serialize_str("unknown"),
        }
    }
}

impl<'de> Deserialize<'de> for State {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<State, D::Error> {
        let word = <Cow<'de, str>>::deserialize(deserializer)?;
        const KNOWN: [State; 10] = [
            State::Running,
            State::Sleeping,
            State::DiskSleep,
            State::Stopped,
            State::TracingStop,
            State::Zombie,
            State::Dead,
            State::Idle,
            State::Parked,
            State::Waking,
        ];
        if let Some(state) = KNOWN.into_iter().find(|s| state_word(*s) == Some(&*word)) {
            return Ok(state);
        }
        let mut chars = word.chars();
        match (chars.next(), chars.next()) {
            (Some(letter), None) => Ok(State::Unknown(letter)),
            _ => Err(serde::de::Error::custom(format_args!(
                "unknown process state {word:?}"
            ))),
        }
    }
}

/// Errors as their messages: what went wrong, for a person to read.
pub(crate) fn messages<S: Serializer>(
    errors: &[crate::Error],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(errors.iter().map(ToString::to_string))
}

/// A tree kill's refusals as `{"identity": …, "reason": …}` objects, not
/// two-element arrays.
pub(crate) mod refusals {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::ProcessIdentity;
    use crate::signal::Refusal;

    #[derive(Serialize, Deserialize)]
    #[serde(rename = "Refused")]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    pub(crate) struct RefusedJson {
        identity: ProcessIdentity,
        reason: Refusal,
    }

    pub(crate) fn serialize<S: Serializer>(
        refused: &[(ProcessIdentity, Refusal)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            refused
                .iter()
                .map(|&(identity, reason)| RefusedJson { identity, reason }),
        )
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(ProcessIdentity, Refusal)>, D::Error> {
        let refused = Vec::<RefusedJson>::deserialize(deserializer)?;
        Ok(refused
            .into_iter()
            .map(|json| (json.identity, json.reason))
            .collect())
    }
}

#[cfg(test)]
mod golden;
mod jobs;
/// A signal by its conventional name, `"SIGTERM"`; reading also takes
/// `"TERM"` and numbers, as [`Signal`]'s `FromStr` does.
impl Serialize for Signal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Signal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Signal, D::Error> {
        let name = <Cow<'de, str>>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "registry")]
mod registry;
#[cfg(feature = "schema")]
mod schema;
