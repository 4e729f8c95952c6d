//! The JSON form of a registry row ([`Entry`]): strings and numbers, like
//! the rest (see the parent module). Times are whole milliseconds since the
//! Unix epoch, as the database stores them.

use std::borrow::Cow;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{bytes_of, text};
use crate::CommandLine;
use crate::registry::entry::{from_millis, to_millis};
use crate::registry::{EndReason, Entry, RowId, Status};
use crate::{Pid, ProcessIdentity};

#[derive(Serialize, Deserialize)]
#[serde(rename = "Entry")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub(crate) struct EntryJson<'a> {
    id: RowId,
    identity: ProcessIdentity,
    /// The pidfs inode of the process (Linux 6.9+), a second check against
    /// pid reuse; null where there is none.
    pidfs_inode: Option<u64>,
    owner: Cow<'a, str>,
    label: Cow<'a, str>,
    command: Vec<Cow<'a, str>>,
    /// Every argument's exact bytes, only when some argument is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command_bytes: Option<Vec<Vec<u8>>>,
    cwd: Option<Cow<'a, str>>,
    /// The cwd's exact bytes, only when they are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cwd_bytes: Option<Vec<u8>>,
    process_group: Option<Pid>,
    session: Option<Pid>,
    status: Status,
    end_reason: Option<EndReason>,
    exit_code: Option<i32>,
    /// What a stop's kill did, in words.
    kill_report: Option<Cow<'a, str>>,
    registered_at_ms: i64,
    updated_at_ms: i64,
    ended_at_ms: Option<i64>,
}

impl Serialize for Entry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut command = Vec::new();
        let mut lossless = true;
        for arg in self.command.args() {
            let (lossy, exact) = text(arg.as_bytes());
            lossless &= exact.is_none();
            command.push(lossy);
        }
        let command_bytes = (!lossless).then(|| {
            self.command
                .args()
                .map(|arg| arg.as_bytes().to_vec())
                .collect()
        });
        let (cwd, cwd_bytes) = match &self.cwd {
            Some(path) => {
                let (lossy, exact) = text(path.as_os_str().as_bytes());
                (Some(lossy), exact.map(<[u8]>::to_vec))
            }
            None => (None, None),
        };
        EntryJson {
            id: self.id,
            identity: self.identity,
            pidfs_inode: self.pidfs_inode,
            owner: Cow::Borrowed(&self.owner),
            label: Cow::Borrowed(&self.label),
            command,
            command_bytes,
            cwd,
            cwd_bytes,
            process_group: self.process_group,
            session: self.session,
            status: self.status,
            end_reason: self.end_reason,
            exit_code: self.exit_code,
            kill_report: self.kill_report.as_deref().map(Cow::Borrowed),
            registered_at_ms: to_millis(self.registered_at),
            updated_at_ms: to_millis(self.updated_at),
            ended_at_ms: self.ended_at.map(to_millis),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Entry, D::Error> {
        let json = EntryJson::deserialize(deserializer)?;
        let command = match json.command_bytes {
            Some(exact) => CommandLine::from_args(exact.into_iter().map(OsString::from_vec)),
            None => CommandLine::from_args(json.command.iter().map(|arg| &**arg)),
        };
        let cwd = json
            .cwd
            .map(|cwd| PathBuf::from(OsString::from_vec(bytes_of(cwd, json.cwd_bytes))));
        Ok(Entry {
            id: json.id,
            identity: json.identity,
            pidfs_inode: json.pidfs_inode,
            owner: json.owner.into_owned(),
            label: json.label.into_owned(),
            command,
            cwd,
            process_group: json.process_group,
            session: json.session,
            status: json.status,
            end_reason: json.end_reason,
            exit_code: json.exit_code,
            kill_report: json.kill_report.map(Cow::into_owned),
            registered_at: from_millis(json.registered_at_ms),
            updated_at: from_millis(json.updated_at_ms),
            ended_at: json.ended_at_ms.map(from_millis),
        })
    }
}
