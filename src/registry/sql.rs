//! The SQL side: the embedded migrations, the row columns and their decoding,
//! and SQLite errors as proctrack errors.

use std::borrow::Cow;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use sqlx::Row;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::sqlite::SqliteRow;

use super::entry::{Entry, RowId, from_millis, u64_from_sql};
use super::error::RegistryError;
use crate::CommandLine;
use crate::{BootId, Pid, ProcessIdentity, StartTime};

/// The schema, one file per version under `migrations/`, embedded at compile
/// time. Version numbers are the files' number prefixes; a new migration is a
/// new file and a new line here, and never an edit of an old one (sqlx keeps
/// each applied migration's checksum and refuses a file whose text changed).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "processes",
        include_str!("../../migrations/0001_processes.sql"),
    ),
    (2, "jobs", include_str!("../../migrations/0002_jobs.sql")),
];

/// The newest schema version this library knows.
pub(crate) const SUPPORTED_VERSION: i64 = 2;

/// The embedded migrations as an sqlx migration source (what
/// `sqlx::migrate!` generates, without the proc-macro).
#[derive(Debug)]
struct Embedded;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The migrator for the embedded schema. It refuses a database that records a
/// version it does not know (`ignore_missing` stays false).
pub(crate) async fn migrator() -> Result<Migrator, BoxDynError> {
    Ok(Migrator::new(Embedded).await?)
}

/// True when `version` is one of ours.
pub(crate) fn knows_version(version: i64) -> bool {
    MIGRATIONS.iter().any(|&(known, _, _)| known == version)
}

/// Every column of `processes`, in the order [`decode`] reads them.
pub(crate) const COLUMNS: &str = "id, boot_id, pid, start_time, pidfs_inode, owner, label, \
     command, cwd, pgid, sid, status, end_reason, exit_code, kill_report, registered_at, \
     updated_at, ended_at";

/// One row of `SELECT {COLUMNS} FROM processes` as an [`Entry`].
pub(crate) fn decode(path: &Path, row: &SqliteRow) -> Result<Entry, RegistryError> {
    let corrupt = |detail: String| RegistryError::CorruptDatabase {
        path: path.to_path_buf(),
        detail,
    };
    let db = |source: sqlx::Error| database(path, source);
    let id: i64 = row.try_get("id").map_err(db)?;
    let bad = |what: &str, value: &dyn std::fmt::Debug| {
        corrupt(format!("row {id}: bad {what} {value:?}"))
    };
    let boot_text: String = row.try_get("boot_id").map_err(db)?;
    let boot_id: BootId = boot_text.parse().map_err(|_| bad("boot id", &boot_text))?;
    let pid_raw: i64 = row.try_get("pid").map_err(db)?;
    let pid = Pid::try_from(pid_raw).map_err(|_| bad("pid", &pid_raw))?;
    let start: i64 = row.try_get("start_time").map_err(db)?;
    let inode: Option<i64> = row.try_get("pidfs_inode").map_err(db)?;
    let command: Vec<u8> = row.try_get("command").map_err(db)?;
    let cwd: Option<Vec<u8>> = row.try_get("cwd").map_err(db)?;
    let optional_pid = |column: &str| -> Result<Option<Pid>, RegistryError> {
        let raw: Option<i64> = row.try_get(column).map_err(db)?;
        raw.map(|raw| Pid::try_from(raw).map_err(|_| bad(column, &raw)))
            .transpose()
    };
    let status_text: String = row.try_get("status").map_err(db)?;
    let reason_text: Option<String> = row.try_get("end_reason").map_err(db)?;
    let exit_code: Option<i64> = row.try_get("exit_code").map_err(db)?;
    let ended_at: Option<i64> = row.try_get("ended_at").map_err(db)?;
    Ok(Entry {
        id: RowId::from_raw(id),
        identity: ProcessIdentity::new(boot_id, pid, StartTime::from_raw(u64_from_sql(start))),
        pidfs_inode: inode.map(u64_from_sql),
        owner: row.try_get("owner").map_err(db)?,
        label: row.try_get("label").map_err(db)?,
        command: CommandLine::from_raw(command),
        cwd: cwd.map(path_from_bytes),
        process_group: optional_pid("pgid")?,
        session: optional_pid("sid")?,
        status: status_text
            .parse()
            .map_err(|_| bad("status", &status_text))?,
        end_reason: reason_text
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|_| bad("end reason", &reason_text))?,
        exit_code: exit_code
            .map(i32::try_from)
            .transpose()
            .map_err(|_| bad("exit code", &exit_code))?,
        kill_report: row.try_get("kill_report").map_err(db)?,
        registered_at: from_millis(row.try_get("registered_at").map_err(db)?),
        updated_at: from_millis(row.try_get("updated_at").map_err(db)?),
        ended_at: ended_at.map(from_millis),
    })
}

/// A path's bytes, as stored in the `cwd` column.
pub(crate) fn path_to_bytes(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

pub(crate) fn path_from_bytes(bytes: Vec<u8>) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStringExt;
    std::ffi::OsString::from_vec(bytes).into()
}

/// SQLite's primary result codes that get their own [`RegistryError`] variant.
const SQLITE_BUSY: i32 = 5;
pub(crate) const SQLITE_READONLY: i32 = 8;
const SQLITE_CORRUPT: i32 = 11;
const SQLITE_NOTADB: i32 = 26;

/// The primary SQLite result code of an error, if it came from SQLite.
pub(crate) fn primary_code(error: &sqlx::Error) -> Option<i32> {
    match error {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .map(|code| code & 0xff),
        _ => None,
    }
}

/// True for `SQLITE_BUSY` (and its extended codes): a lock was taken.
pub(crate) fn is_busy(error: &sqlx::Error) -> bool {
    primary_code(error) == Some(SQLITE_BUSY)
}

/// An sqlx error on the database at `path` as a proctrack error.
pub(crate) fn database(path: &Path, error: sqlx::Error) -> RegistryError {
    let path = path.to_path_buf();
    match primary_code(&error) {
        Some(SQLITE_CORRUPT) => RegistryError::CorruptDatabase {
            path,
            detail: match &error {
                sqlx::Error::Database(db) => db.message().to_owned(),
                other => other.to_string(),
            },
        },
        Some(SQLITE_NOTADB) => RegistryError::NotADatabase { path },
        Some(SQLITE_READONLY) => RegistryError::ReadOnly { path },
        _ => match error {
            sqlx::Error::Io(source) => RegistryError::Io { path, source },
            other => RegistryError::Database {
                path,
                source: Box::new(other),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_versions_are_known_and_ascending() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.0).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(versions.last(), Some(&SUPPORTED_VERSION));
        assert!(knows_version(1));
        assert!(knows_version(2));
        assert!(!knows_version(3));
    }

    /// A registry written by the version that knew only migration 1, with a
    /// row in it, opens as version 2: the row is kept and jobs can be
    /// recorded.
    #[tokio::test]
    async fn a_version_1_registry_upgrades_with_its_rows() {
        use crate::registry::{JobJournal, Registry};
        use crate::supervisor::{JobId, JobRecord, Journal};
        use crate::{BootId, ProcessIdentity};
        use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

        #[derive(Debug)]
        struct FirstOnly;
        impl<'s> MigrationSource<'s> for FirstOnly {
            fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
                Box::pin(async {
                    let (version, description, sql) = MIGRATIONS[0];
                    Ok(vec![Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )])
                })
            }
        }

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        Migrator::new(FirstOnly)
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO processes (boot_id, pid, start_time, owner, label, registered_at, \
             updated_at) VALUES ('09090909-0909-0909-0909-090909090909', 4242, 7, 'exec-1', \
             'web', 1, 1)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let registry = Registry::open(&path).await.unwrap();
        let rows = registry.running().await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].owner(), rows[0].label()), ("exec-1", "web"));

        let boot = BootId::from_bytes([9; 16]);
        let me = ProcessIdentity::new(boot, Pid::try_from(100).unwrap(), StartTime::from_raw(1));
        let root = ProcessIdentity::new(boot, Pid::try_from(101).unwrap(), StartTime::from_raw(2));
        let id: JobId = "devtool.100-1.1".parse().unwrap();
        let record = JobRecord::new(id.clone(), root, root.pid(), None, vec!["sleep".into()]);
        let mut journal = JobJournal::new(registry.clone(), me);
        journal.started(&record).unwrap();
        assert_eq!(journal.unfinished("devtool").unwrap(), vec![record]);
        assert_eq!(registry.running().await.unwrap().len(), 2);
        registry.close().await;
    }

    #[test]
    fn cwd_bytes_round_trip() {
        use std::os::unix::ffi::OsStrExt;
        let path = Path::new(std::ffi::OsStr::from_bytes(b"/srv/\xffapp"));
        assert_eq!(path_from_bytes(path_to_bytes(path)), path);
    }
}
