//! A [`Journal`] in a directory of small text files, one per job: what the
//! `proctrack run` command writes, so that a later `proctrack` (another
//! terminal, after a crash) finds the job.
//!
//! ## Where
//!
//! [`StateDir::from_env`]: `$PROCTRACK_STATE_DIR` when set; else, for root,
//! `/run/proctrack` (a tmpfs cleared at boot, as the jobs are); else
//! `$XDG_STATE_HOME/proctrack`, else `~/.local/state/proctrack`. The
//! directory is made (mode 0700) on the first write.
//!
//! ## The file
//!
//! `<job id>.job`, written to a temporary file (`.<job id>.job.tmp-<pid>`),
//! flushed and renamed over, so a reader sees the whole file or none. It is
//! removed when the job ends ([`JobEnd::Exited`], [`JobEnd::Stopped`],
//! [`JobEnd::Recovered`]) and rewritten with `kept yes` for
//! [`JobEnd::Kept`]. One `key value` line each ([`encode_record`]):
//!
//! ```text
//! proctrack-job 1
//! id build.4242-99.1
//! boot 0f2c1d9e-4a1b-4c3d-8e5f-6a7b8c9d0e1f
//! root 4243 1234
//! process-group 4243
//! started-ms 1765151000123
//! subreaper yes
//! cgroup /sys/fs/cgroup/unified/proctrack-build.4242-99.1
//! missing no%20subreaper:%20...
//! kept no
//! arg sh
//! arg -c
//! arg sleep%20600
//! end
//! ```
//!
//! Values that are bytes (arguments, paths, reasons) are escaped: every
//! byte outside `!`..`~`, and `%` itself, is written `%XX` (two upper-case
//! hex digits), so any bytes round-trip and a value never holds a space or
//! a newline. `cgroup`, `started-ms`, `subreaper` and `missing` may be
//! absent; `arg` repeats. The last line is `end`: a file without it was cut
//! short. Any key this version does not know makes the file corrupt; a new
//! key means a new format number, which older readers refuse by name
//! ([`RecordError::NewerVersion`]) rather than misread.
//!
//! Format 2 adds one line, `owner <boot> <pid> <start time>`: the
//! supervisor instance that [adopted](super::Supervisor::adopt) the job.
//! Only an adopted job's file is written as format 2. The hand-over is
//! atomic ([`Journal::adopted`]): the adopter first creates
//! `.<job id>.from-<pid>-<start>` (the instance it takes the job from)
//! with `O_EXCL`, so of two adopters of one job only one gets past it; it
//! then checks the file still names that owner and rewrites it. Such claim
//! files go with the job's file.
//!
//! A file that is not whole, not ours, or newer is never deleted: reading
//! the directory ([`StateDir::scan`]) hands it back as a [`SkippedFile`]
//! with what is wrong and what to do.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::sys;
use super::{JobEnd, JobId, JobRecord, Journal, JournalError};
use crate::{BootId, Pid, ProcessIdentity, StartTime};

/// The environment variable that overrides the state directory.
pub const STATE_DIR_VAR: &str = "PROCTRACK_STATE_DIR";

/// The newest format this version reads, and writes for an adopted job
/// (its `owner` line). A job that was never adopted is written as format 1,
/// which readers of the first version still read.
pub const FORMAT: u32 = 2;

/// What a job file's name ends with.
const SUFFIX: &str = ".job";

/// The first line's word.
const MAGIC: &str = "proctrack-job";

/// Larger files are not read: no job file comes near (arguments are limited
/// to a few MiB by the kernel, escaping triples them at most).
const MAX_FILE: u64 = 32 << 20;

/// What is wrong with the bytes of a job file ([`decode_record`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The first line is not `proctrack-job <number>`: some other file.
    #[error("not a proctrack job file (it does not start with `{MAGIC} <format>`)")]
    Foreign,
    /// Written by a newer proctrack, in a format this one does not read.
    #[error("written in job file format {found} by a newer proctrack (this one reads {FORMAT})")]
    NewerVersion {
        /// The format number in the file.
        found: u32,
    },
    /// The last line is not `end`: the file was cut short.
    #[error("cut short: it does not end with an `end` line")]
    Truncated,
    /// A line that is not what the format allows.
    #[error("line {line}: {why}")]
    Corrupt {
        /// The line's number, from 1.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
}

/// What went wrong with a state directory or one of its files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateDirError {
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A file in the directory is not a job file this version can read. It
    /// is left where it is.
    #[error("{}: {error}; {}", path.display(), hint(error))]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        error: RecordError,
    },
    /// No directory could be chosen: neither `PROCTRACK_STATE_DIR`,
    /// `XDG_STATE_HOME` nor `HOME` is set.
    #[error(
        "no state directory: set {STATE_DIR_VAR} (or XDG_STATE_HOME, or HOME) to where proctrack may keep its job files"
    )]
    NoDirectory,
}

/// What a person can do about a bad file.
fn hint(error: &RecordError) -> &'static str {
    match error {
        RecordError::Foreign => "it was left alone: move it out of this directory",
        RecordError::NewerVersion { .. } => {
            "it was left alone: use the newer proctrack that wrote it to list or stop its job"
        }
        RecordError::Truncated | RecordError::Corrupt { .. } => {
            "it was left alone: its job cannot be found through it (look for its processes with `proctrack tree`), then remove the file"
        }
    }
}

/// A file of the state directory that [`StateDir::scan`] could not read as
/// a job, and why. It is left in place.
#[derive(Debug)]
#[non_exhaustive]
pub struct SkippedFile {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it, and what to do.
    pub error: StateDirError,
}

/// Every job file of a state directory: the jobs read, and the files that
/// could not be.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct StateScan {
    /// The jobs, by id.
    pub records: Vec<JobRecord>,
    /// The files that are not readable jobs, each with why.
    pub skipped: Vec<SkippedFile>,
}

/// A directory of job files: a [`Journal`] for a
/// [`Supervisor`](super::Supervisor) that needs no database (see the
/// [module documentation](self) for the place and the format).
///
/// ```
/// use proctrack::supervisor::{Cgroups, StateDir, Supervisor, SupervisorOptions};
///
/// let dir = tempfile::tempdir()?;
/// let state = StateDir::new(dir.path());
/// let mut supervisor = Supervisor::new(
///     SupervisorOptions::new("doc").cgroups(Cgroups::Off).journal(state.clone()),
/// )?;
/// let mut command = supervisor.command("sleep");
/// command.arg("60");
/// let job = supervisor.spawn(command)?;
/// let scan = state.scan()?;
/// assert_eq!(scan.records[0].id, job);
/// assert_eq!(scan.records[0].command, ["sleep", "60"]);
/// supervisor.stop(&job, std::time::Duration::ZERO)?;
/// assert!(state.scan()?.records.is_empty()); // an ended job's file is removed
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// The state directory `dir` (made on the first write).
    pub fn new(dir: impl Into<PathBuf>) -> StateDir {
        StateDir { dir: dir.into() }
    }

    /// The state directory for this user: `$PROCTRACK_STATE_DIR`, else
    /// [`default_dir`](StateDir::default_dir).
    pub fn from_env() -> Result<StateDir, StateDirError> {
        match std::env::var_os(STATE_DIR_VAR).filter(|dir| !dir.is_empty()) {
            Some(dir) => Ok(StateDir::new(dir)),
            None => StateDir::default_dir().map(StateDir::new),
        }
    }

    /// Where jobs are kept when `PROCTRACK_STATE_DIR` is not set: for root
    /// `/run/proctrack`; else `$XDG_STATE_HOME/proctrack` (an absolute one),
    /// else `$HOME/.local/state/proctrack`.
    pub fn default_dir() -> Result<PathBuf, StateDirError> {
        if sys::is_root() {
            return Ok(PathBuf::from("/run/proctrack"));
        }
        let absolute = |name: &str| {
            std::env::var_os(name)
                .map(PathBuf::from)
                .filter(|path| path.is_absolute())
        };
        if let Some(state) = absolute("XDG_STATE_HOME") {
            return Ok(state.join("proctrack"));
        }
        absolute("HOME")
            .map(|home| home.join(".local/state/proctrack"))
            .ok_or(StateDirError::NoDirectory)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The file of job `id`.
    pub fn file_of(&self, id: &JobId) -> PathBuf {
        self.dir.join(format!("{id}{SUFFIX}"))
    }

    /// Reads job `id`'s file.
    pub fn read(&self, id: &JobId) -> Result<JobRecord, StateDirError> {
        let path = self.file_of(id);
        let record = read_file(&path)?;
        if &record.id != id {
            return Err(StateDirError::BadFile {
                path,
                error: RecordError::Corrupt {
                    line: 2,
                    why: format!(
                        "the file is named after job {id} but holds job {}",
                        record.id
                    ),
                },
            });
        }
        Ok(record)
    }

    /// Every job file in the directory, by job id; files that cannot be
    /// read as a job are listed with why, and left alone. A directory that
    /// does not exist holds no jobs.
    pub fn scan(&self) -> Result<StateScan, StateDirError> {
        let io = |source| StateDirError::Io {
            path: self.dir.clone(),
            source,
        };
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(StateScan::default());
            }
            Err(error) => return Err(io(error)),
        };
        let mut scan = StateScan::default();
        let mut names = Vec::new();
        for entry in entries {
            names.push(entry.map_err(io)?.file_name());
        }
        names.sort();
        for name in names {
            let path = self.dir.join(&name);
            let bytes = name.as_bytes();
            let Some(stem) = bytes.strip_suffix(SUFFIX.as_bytes()) else {
                // Another writer's temporary file, in the instant before
                // its rename: not a job yet. An adoption's claim: not a job.
                if bytes.starts_with(b".")
                    && (bytes.windows(5).any(|w| w == b".tmp-")
                        || bytes.windows(10).any(|w| w == b".job.from-"))
                {
                    continue;
                }
                scan.skipped.push(SkippedFile {
                    error: StateDirError::BadFile {
                        path: path.clone(),
                        error: RecordError::Foreign,
                    },
                    path,
                });
                continue;
            };
            let named = std::str::from_utf8(stem)
                .ok()
                .and_then(|stem| stem.parse::<JobId>().ok());
            let outcome = read_file(&path).and_then(|record| match &named {
                Some(id) if *id == record.id => Ok(record),
                _ => Err(StateDirError::BadFile {
                    path: path.clone(),
                    error: RecordError::Corrupt {
                        line: 2,
                        why: format!(
                            "it holds job {} but is named {}",
                            record.id,
                            name.to_string_lossy()
                        ),
                    },
                }),
            });
            match outcome {
                Ok(record) => scan.records.push(record),
                Err(error) => scan.skipped.push(SkippedFile { path, error }),
            }
        }
        scan.records.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(scan)
    }

    /// Writes `record` to its file, whole or not at all.
    pub fn write(&self, record: &JobRecord) -> Result<(), StateDirError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|source| StateDirError::Io {
                path: self.dir.clone(),
                source,
            })?;
        let path = self.file_of(&record.id);
        let temp = self
            .dir
            .join(format!(".{}{SUFFIX}.tmp-{}", record.id, std::process::id()));
        let written = File::create(&temp)
            .and_then(|mut file| {
                file.write_all(&encode_record(record))?;
                file.sync_all()
            })
            .and_then(|()| fs::rename(&temp, &path));
        written.map_err(|source| {
            let _ = fs::remove_file(&temp);
            StateDirError::Io { path, source }
        })
    }

    /// Removes the adoption claims of job `id` (best effort: a claim left
    /// behind only blocks a hand-over from an owner that is gone for good).
    fn remove_claims(&self, id: &JobId) {
        let prefix = format!(".{id}{SUFFIX}.from-");
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().as_bytes().starts_with(prefix.as_bytes()) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Removes job `id`'s file; a file already gone is not an error.
    pub fn remove(&self, id: &JobId) -> Result<(), StateDirError> {
        let path = self.file_of(id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateDirError::Io { path, source }),
        }
    }
}

impl Journal for StateDir {
    fn started(&mut self, record: &JobRecord) -> Result<(), JournalError> {
        self.write(record).map_err(journal_error)
    }

    fn ended(&mut self, id: &JobId, end: JobEnd) -> Result<(), JournalError> {
        match end {
            JobEnd::Kept => {
                let mut record = self.read(id).map_err(journal_error)?;
                record.kept = true;
                self.write(&record).map_err(journal_error)
            }
            _ => {
                self.remove(id).map_err(journal_error)?;
                self.remove_claims(id);
                Ok(())
            }
        }
    }

    /// Hands job `record.id` over to `record.owner` if `from` owns it now:
    /// one adopter per previous owner gets past an `O_EXCL` claim file,
    /// then the file is checked and rewritten (see the module docs).
    fn adopted(&mut self, record: &JobRecord, from: ProcessIdentity) -> Result<bool, JournalError> {
        let claim = self.dir.join(format!(
            ".{}{SUFFIX}.from-{}-{}",
            record.id,
            from.pid(),
            from.start_time().as_raw()
        ));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&claim)
        {
            Ok(_) => {}
            // Another adopter took it from `from` first.
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(source) => {
                return Err(journal_error(StateDirError::Io {
                    path: claim,
                    source,
                }));
            }
        }
        let now = match self.read(&record.id) {
            Ok(now) => now,
            // Ended meanwhile, or never written: nothing to hand over.
            Err(StateDirError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(false);
            }
            Err(other) => return Err(journal_error(other)),
        };
        if now.owner_instance() != from {
            return Ok(false);
        }
        let mut adopted = now;
        adopted.owner = record.owner;
        adopted.root = record.root;
        adopted.kept = false;
        self.write(&adopted).map_err(journal_error)?;
        Ok(true)
    }

    /// The readable jobs of supervisors named `name`; files that cannot be
    /// read are skipped here (and left alone): [`StateDir::scan`] says why.
    fn unfinished(&mut self, name: &str) -> Result<Vec<JobRecord>, JournalError> {
        let scan = self.scan().map_err(journal_error)?;
        Ok(scan
            .records
            .into_iter()
            .filter(|record| record.id.supervisor() == name)
            .collect())
    }
}

fn journal_error(error: StateDirError) -> JournalError {
    JournalError(Box::new(error))
}

/// Reads and decodes one job file.
fn read_file(path: &Path) -> Result<JobRecord, StateDirError> {
    let io = |source| StateDirError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Only a regular file is read: a FIFO would block the reader, a
    // symlink could point anywhere (/dev/zero), a directory is not ours.
    let metadata = fs::symlink_metadata(path).map_err(io)?;
    if !metadata.is_file() {
        return Err(StateDirError::BadFile {
            path: path.to_path_buf(),
            error: RecordError::Foreign,
        });
    }
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|file| file.take(MAX_FILE + 1).read_to_end(&mut bytes))
        .map_err(io)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(StateDirError::BadFile {
            path: path.to_path_buf(),
            error: RecordError::Corrupt {
                line: 0,
                why: format!("larger than {MAX_FILE} bytes"),
            },
        });
    }
    decode_record(&bytes).map_err(|error| StateDirError::BadFile {
        path: path.to_path_buf(),
        error,
    })
}

/// `bytes` escaped for a job file: every byte outside `!`..`~`, and `%`,
/// as `%XX`.
///
/// ```
/// use proctrack::supervisor::state_dir::{escape, unescape};
/// assert_eq!(escape(b"a b%\n"), "a%20b%25%0A");
/// assert_eq!(unescape("a%20b%25%0A").unwrap(), b"a b%\n");
/// ```
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_graphic() && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The bytes of an [`escape`]d value; `None` when it is not one (a `%`
/// without two hex digits, a byte outside `!`..`~`).
pub fn unescape(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            byte if byte.is_ascii_graphic() => {
                out.push(byte);
                i += 1;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// The job file of `record` (format [`FORMAT`]; see the
/// [module documentation](self)).
pub fn encode_record(record: &JobRecord) -> Vec<u8> {
    let mut out = String::new();
    let mut line = |key: &str, value: &dyn fmt::Display| {
        out.push_str(key);
        out.push(' ');
        out.push_str(&value.to_string());
        out.push('\n');
    };
    line(MAGIC, &if record.owner.is_some() { 2 } else { 1 });
    line("id", &record.id);
    line("boot", &record.root.boot_id());
    line(
        "root",
        &format_args!(
            "{} {}",
            record.root.pid(),
            record.root.start_time().as_raw()
        ),
    );
    line("process-group", &record.process_group);
    if let Some(started) = record.started {
        let ms = started
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis());
        line("started-ms", &ms);
    }
    if let Some(subreaper) = record.subreaper {
        line("subreaper", &yes_no(subreaper));
    }
    if let Some(cgroup) = &record.cgroup {
        line("cgroup", &escape(cgroup.as_os_str().as_bytes()));
    }
    for why in &record.missing {
        line("missing", &escape(why.as_bytes()));
    }
    if let Some(owner) = record.owner {
        line(
            "owner",
            &format_args!(
                "{} {} {}",
                owner.boot_id(),
                owner.pid(),
                owner.start_time().as_raw()
            ),
        );
    }
    line("kept", &yes_no(record.kept));
    for arg in &record.command {
        line("arg", &escape(arg.as_bytes()));
    }
    out.push_str("end\n");
    out.into_bytes()
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

/// Decodes a job file ([`encode_record`]'s bytes). Never panics: any bytes
/// give a record or a [`RecordError`].
///
/// ```
/// use proctrack::supervisor::state_dir::{decode_record, RecordError};
/// assert_eq!(decode_record(b"#!/bin/sh\n"), Err(RecordError::Foreign));
/// assert_eq!(decode_record(b"proctrack-job 7\n"), Err(RecordError::NewerVersion { found: 7 }));
/// assert_eq!(decode_record(b"proctrack-job 1\nid a.1-2.3\n"), Err(RecordError::Truncated));
/// ```
pub fn decode_record(bytes: &[u8]) -> Result<JobRecord, RecordError> {
    let text = std::str::from_utf8(bytes).map_err(|error| {
        let line = 1 + bytes[..error.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        // A first line that is not text is not ours at all.
        if line == 1 {
            RecordError::Foreign
        } else {
            RecordError::Corrupt {
                line,
                why: "bytes that are not text (values are escaped)".to_owned(),
            }
        }
    })?;
    let mut lines = text.split('\n').enumerate().map(|(i, line)| (i + 1, line));
    let first = lines.next().map_or("", |(_, line)| line);
    let version = first
        .strip_prefix(MAGIC)
        .and_then(|rest| rest.strip_prefix(' '))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(RecordError::Foreign)?;
    let version: u32 = version.parse().unwrap_or(u32::MAX);
    if version > FORMAT {
        return Err(RecordError::NewerVersion { found: version });
    }
    if version < 1 {
        return Err(RecordError::Corrupt {
            line: 1,
            why: format!("format {version} was never written"),
        });
    }
    if !text.trim_end_matches('\n').ends_with("\nend") {
        return Err(RecordError::Truncated);
    }
    let mut fields = Fields::default();
    let mut ended = false;
    for (number, line) in lines {
        if ended {
            if line.is_empty() {
                continue;
            }
            return Err(corrupt(number, "a line after `end`"));
        }
        if line == "end" {
            ended = true;
            continue;
        }
        let (key, value) = line
            .split_once(' ')
            .ok_or_else(|| corrupt(number, "not a `key value` line"))?;
        fields.set(number, key, value)?;
    }
    fields.into_record()
}

fn corrupt(line: usize, why: impl Into<String>) -> RecordError {
    RecordError::Corrupt {
        line,
        why: why.into(),
    }
}

/// The values of a job file as they are read.
#[derive(Default)]
struct Fields {
    id: Option<JobId>,
    boot: Option<BootId>,
    root: Option<(Pid, StartTime)>,
    process_group: Option<Pid>,
    started: Option<SystemTime>,
    subreaper: Option<bool>,
    cgroup: Option<PathBuf>,
    missing: Vec<String>,
    kept: Option<bool>,
    owner: Option<ProcessIdentity>,
    command: Vec<OsString>,
}

impl Fields {
    fn set(&mut self, line: usize, key: &str, value: &str) -> Result<(), RecordError> {
        let bad = |what: &str| corrupt(line, format!("{key}: {value:?} is not {what}"));
        let once = |taken: bool| {
            if taken {
                Err(corrupt(line, format!("a second `{key}` line")))
            } else {
                Ok(())
            }
        };
        let pid = |text: &str| text.parse::<Pid>().ok();
        let yes_no = |text: &str| match text {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        };
        match key {
            "id" => {
                once(self.id.is_some())?;
                self.id = Some(value.parse().map_err(|_| bad("a job id"))?);
            }
            "boot" => {
                once(self.boot.is_some())?;
                self.boot = Some(value.parse().map_err(|_| bad("a boot id"))?);
            }
            "root" => {
                once(self.root.is_some())?;
                let (p, s) = value
                    .split_once(' ')
                    .ok_or_else(|| bad("`<pid> <start time>`"))?;
                let start = s.parse::<u64>().map_err(|_| bad("`<pid> <start time>`"))?;
                let p = pid(p).ok_or_else(|| bad("`<pid> <start time>`"))?;
                self.root = Some((p, StartTime::from_raw(start)));
            }
            "process-group" => {
                once(self.process_group.is_some())?;
                self.process_group = Some(pid(value).ok_or_else(|| bad("a pid"))?);
            }
            "started-ms" => {
                once(self.started.is_some())?;
                let ms = value
                    .parse::<u64>()
                    .map_err(|_| bad("milliseconds since 1970"))?;
                self.started = UNIX_EPOCH.checked_add(Duration::from_millis(ms));
            }
            "subreaper" => {
                once(self.subreaper.is_some())?;
                self.subreaper = Some(yes_no(value).ok_or_else(|| bad("yes or no"))?);
            }
            "owner" => {
                once(self.owner.is_some())?;
                let shape = "`<boot id> <pid> <start time>`";
                let mut parts = value.split(' ');
                let (Some(boot), Some(p), Some(start), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Err(bad(shape));
                };
                let boot = boot.parse::<BootId>().map_err(|_| bad(shape))?;
                let p = pid(p).ok_or_else(|| bad(shape))?;
                let start = start.parse::<u64>().map_err(|_| bad(shape))?;
                self.owner = Some(ProcessIdentity::new(boot, p, StartTime::from_raw(start)));
            }
            "kept" => {
                once(self.kept.is_some())?;
                self.kept = Some(yes_no(value).ok_or_else(|| bad("yes or no"))?);
            }
            "cgroup" => {
                once(self.cgroup.is_some())?;
                let bytes = unescape(value).ok_or_else(|| bad("an escaped path"))?;
                self.cgroup = Some(PathBuf::from(OsString::from_vec(bytes)));
            }
            "missing" => {
                let bytes = unescape(value).ok_or_else(|| bad("escaped text"))?;
                let text = String::from_utf8(bytes).map_err(|_| bad("escaped UTF-8 text"))?;
                self.missing.push(text);
            }
            "arg" => {
                let bytes = unescape(value).ok_or_else(|| bad("an escaped argument"))?;
                self.command.push(OsString::from_vec(bytes));
            }
            other => return Err(corrupt(line, format!("unknown key `{other}`"))),
        }
        Ok(())
    }

    fn into_record(self) -> Result<JobRecord, RecordError> {
        let missing = |key: &str| corrupt(0, format!("no `{key}` line"));
        let id = self.id.ok_or_else(|| missing("id"))?;
        let boot = self.boot.ok_or_else(|| missing("boot"))?;
        let (pid, start) = self.root.ok_or_else(|| missing("root"))?;
        let process_group = self.process_group.ok_or_else(|| missing("process-group"))?;
        let kept = self.kept.ok_or_else(|| missing("kept"))?;
        let mut record = JobRecord::new(
            id,
            ProcessIdentity::new(boot, pid, start),
            process_group,
            self.cgroup,
            self.command,
        );
        record.kept = kept;
        record.started = self.started;
        record.subreaper = self.subreaper;
        record.missing = self.missing;
        record.owner = self.owner;
        Ok(record)
    }
}

/// The command of `record` as one line for a person: arguments joined by
/// spaces, lossily decoded.
pub fn command_line(record: &JobRecord) -> String {
    record
        .command
        .iter()
        .map(|arg| OsStr::to_string_lossy(arg))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(args: Vec<Vec<u8>>, cgroup: Option<Vec<u8>>) -> JobRecord {
        let boot = BootId::from_bytes([3; 16]);
        let root =
            ProcessIdentity::new(boot, Pid::try_from(4243).unwrap(), StartTime::from_raw(99));
        let mut record = JobRecord::new(
            "build.4242-7.1".parse().unwrap(),
            root,
            root.pid(),
            cgroup.map(|c| PathBuf::from(OsString::from_vec(c))),
            args.into_iter().map(OsString::from_vec).collect(),
        );
        record.started = Some(UNIX_EPOCH + Duration::from_millis(1_765_151_000_123));
        record.subreaper = Some(true);
        record
    }

    #[test]
    fn a_record_reads_back_and_the_text_is_what_the_docs_say() {
        let mut original = record(
            vec![b"sh".to_vec(), b"-c".to_vec(), b"sleep 600\n".to_vec()],
            Some(b"/sys/fs/cgroup/a b".to_vec()),
        );
        original.missing = vec!["no subreaper: EPERM".to_owned()];
        let bytes = encode_record(&original);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(
            text,
            "proctrack-job 1\nid build.4242-7.1\nboot 03030303-0303-0303-0303-030303030303\n\
             root 4243 99\nprocess-group 4243\nstarted-ms 1765151000123\nsubreaper yes\n\
             cgroup /sys/fs/cgroup/a%20b\nmissing no%20subreaper:%20EPERM\nkept no\n\
             arg sh\narg -c\narg sleep%20600%0A\nend\n"
        );
        assert_eq!(decode_record(&bytes), Ok(original));
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let good = encode_record(&record(vec![b"true".to_vec()], None));
        let good = String::from_utf8(good).unwrap();
        let cases: Vec<(String, RecordError)> = vec![
            (String::new(), RecordError::Foreign),
            ("{\"id\": 1}\n".into(), RecordError::Foreign),
            ("proctrack-job\n".into(), RecordError::Foreign),
            (
                "proctrack-job 3\nwhatever".into(),
                RecordError::NewerVersion { found: 3 },
            ),
            (
                "proctrack-job 99999999999999\n".into(),
                RecordError::NewerVersion { found: u32::MAX },
            ),
            (good.replace("end\n", ""), RecordError::Truncated),
            (good[..good.len() / 2].to_owned(), RecordError::Truncated),
            (
                good.replace("kept no\n", "kept maybe\n"),
                corrupt(8, "kept: \"maybe\" is not yes or no"),
            ),
            (
                good.replace("arg true", "arg tr ue"),
                corrupt(9, "arg: \"tr ue\" is not an escaped argument"),
            ),
            (
                good.replace("arg true", "arg %zz"),
                corrupt(9, "arg: \"%zz\" is not an escaped argument"),
            ),
            (
                good.replace("kept no\n", "kept no\nkept no\n"),
                corrupt(9, "a second `kept` line"),
            ),
            (
                good.replace("kept no\n", "colour blue\n"),
                corrupt(8, "unknown key `colour`"),
            ),
            (good.replace("kept no\n", ""), corrupt(0, "no `kept` line")),
            (
                good.replace("end\n", "end\nmore\nend\n"),
                corrupt(11, "a line after `end`"),
            ),
            (
                good.replace("kept no\n", "kept\n"),
                corrupt(8, "not a `key value` line"),
            ),
            (
                "proctrack-job 0\nend\n".into(),
                corrupt(1, "format 0 was never written"),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(decode_record(text.as_bytes()), Err(expected), "{text:?}");
        }
        let mut binary = good.into_bytes();
        binary.insert(20, 0xff);
        assert!(matches!(
            decode_record(&binary),
            Err(RecordError::Corrupt { line: 2, .. })
        ));
        assert_eq!(decode_record(b"\xff\xfe"), Err(RecordError::Foreign));
    }

    #[test]
    fn a_directory_keeps_bad_files_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = StateDir::new(dir.path().join("nested/state"));
        assert!(state.scan().unwrap().records.is_empty());
        let good = record(vec![b"sleep".to_vec()], None);
        state.started(&good).unwrap();
        let mode = fs::metadata(state.path()).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o700
        );
        fs::write(state.path().join("notes.txt"), "mine").unwrap();
        fs::write(state.path().join("x.1-2.3.job"), "proctrack-job 3\n").unwrap();
        fs::write(
            state.path().join("y.1-2.3.job"),
            "proctrack-job 1\nid y.1-2.3\n",
        )
        .unwrap();
        fs::create_dir(state.path().join("w.1-2.3.job")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", state.path().join("v.1-2.3.job")).unwrap();
        let moved = String::from_utf8(encode_record(&good)).unwrap();
        fs::write(state.path().join("z.1-2.3.job"), moved).unwrap();
        let scan = state.scan().unwrap();
        assert_eq!(scan.records, vec![good.clone()]);
        let why: Vec<String> = scan.skipped.iter().map(|s| s.error.to_string()).collect();
        assert_eq!(why.len(), 6, "{why:#?}");
        let says = |i: usize, text: &str| assert!(why[i].contains(text), "{why:#?}");
        says(0, "notes.txt: not a proctrack job file");
        says(1, "v.1-2.3.job: not a proctrack job file");
        says(2, "w.1-2.3.job: not a proctrack job file");
        says(3, "format 3 by a newer proctrack");
        says(3, "use the newer proctrack");
        says(4, "cut short");
        says(4, "then remove the file");
        says(5, "holds job build.4242-7.1 but is named z.1-2.3.job");
        // Nothing was deleted.
        assert_eq!(fs::read_dir(state.path()).unwrap().count(), 7);
        assert_eq!(state.unfinished("build").unwrap(), vec![good.clone()]);
        assert!(state.unfinished("other").unwrap().is_empty());

        state.ended(&good.id, JobEnd::Kept).unwrap();
        assert!(state.read(&good.id).unwrap().kept);
        state.ended(&good.id, JobEnd::Stopped).unwrap();
        assert!(!state.file_of(&good.id).exists());
        // Ended twice (a stop by another proctrack, then its supervisor's).
        state.ended(&good.id, JobEnd::Recovered).unwrap();
    }

    /// Two adopters of one dead instance's job: one gets it. The next
    /// hand-over (from the adopter, once it is gone) works the same way;
    /// the file is format 2 with its owner, and the claims go with the job.
    #[test]
    fn one_adopter_of_two_gets_the_job() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = StateDir::new(dir.path());
        let mut b = StateDir::new(dir.path());
        let job = record(vec![b"sleep".to_vec()], None);
        a.started(&job).unwrap();
        let dead = job.owner_instance();
        let boot = BootId::from_bytes([3; 16]);
        let instance = |pid: i32| {
            ProcessIdentity::new(boot, Pid::try_from(pid).unwrap(), StartTime::from_raw(5))
        };
        let offer = |owner: i32| {
            let mut offer = job.clone();
            offer.owner = Some(instance(owner));
            offer
        };
        assert!(a.adopted(&offer(500), dead).unwrap());
        assert!(!b.adopted(&offer(600), dead).unwrap(), "the second adopter");
        let now = a.read(&job.id).unwrap();
        assert_eq!(now.owner, Some(instance(500)));
        assert!(encode_record(&now).starts_with(b"proctrack-job 2\n"));
        // From the adopter, when it is gone in turn.
        assert!(
            !b.adopted(&offer(600), instance(501)).unwrap(),
            "not its owner"
        );
        assert!(b.adopted(&offer(600), instance(500)).unwrap());
        assert_eq!(a.read(&job.id).unwrap().owner, Some(instance(600)));
        // Only the job's file is a job; its claims go when it ends.
        assert_eq!(a.scan().unwrap().records.len(), 1);
        assert!(a.scan().unwrap().skipped.is_empty());
        a.ended(&job.id, JobEnd::Stopped).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        // A job that ended cannot be adopted.
        assert!(!b.adopted(&offer(700), instance(600)).unwrap());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        #[test]
        fn any_bytes_round_trip(
            args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..6),
            cgroup in prop::option::of(prop::collection::vec(any::<u8>(), 1..40)),
            missing in prop::collection::vec("\\PC{0,20}", 0..3),
            kept: bool,
            owner in prop::option::of((1i32..=i32::MAX, any::<u64>())),
        ) {
            let mut original = record(args, cgroup);
            original.kept = kept;
            original.owner = owner.map(|(pid, start)| {
                ProcessIdentity::new(
                    BootId::from_bytes([4; 16]),
                    Pid::try_from(pid).unwrap(),
                    StartTime::from_raw(start),
                )
            });
            original.missing = missing;
            let bytes = encode_record(&original);
            prop_assert_eq!(decode_record(&bytes), Ok(original));
        }

        #[test]
        fn escaping_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..100)) {
            let text = escape(&bytes);
            prop_assert!(text.bytes().all(|b| b.is_ascii_graphic()));
            prop_assert_eq!(unescape(&text), Some(bytes));
        }

        #[test]
        fn any_bytes_decode_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_record(&bytes);
        }

        #[test]
        fn cut_or_changed_files_never_panic(cut in 0usize..400, at in 0usize..400, byte: u8) {
            let good = encode_record(&record(vec![b"sh".to_vec(), b"-c".to_vec(), b"x y".to_vec()], Some(b"/cg".to_vec())));
            let mut bytes = good[..cut.min(good.len())].to_vec();
            let _ = decode_record(&bytes);
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] = byte;
                let _ = decode_record(&bytes);
            }
        }
    }
}
