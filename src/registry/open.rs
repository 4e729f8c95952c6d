//! Opening a registry file: look before writing.
//!
//! Nothing is written to a file before it is known to be a registry (or
//! empty, or new):
//!
//! 1. with plain file I/O, the first 100 bytes must be SQLite's header
//!    (`SQLite format 3\0`, then the rest of the header) unless the file is
//!    empty, and the file must open for writing;
//! 2. on a read-only connection, `PRAGMA quick_check` must say `ok`, and the
//!    tables must be a registry's: a `_sqlx_migrations` table that records
//!    our first version and none we do not know (a file a crashed writer
//!    left with a hot rollback journal is looked at on the read-write
//!    connection instead, after SQLite rolled the journal back: recovery);
//! 3. only then is the file switched to WAL (a write to its header) and
//!    migrated, under `BEGIN IMMEDIATE`, so that processes opening one new
//!    file at once migrate it once.
//!
//! Reading an existing WAL database creates its `-wal` and `-shm` files if
//! they are missing: those are SQLite's companions, the main file's bytes do
//! not change.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::migrate::MigrateError;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};

use super::error::{RegistryError, Result};
use super::sql::{self, SUPPORTED_VERSION, database, is_busy, knows_version};
use crate::blocking::run_blocking;

/// How long a statement waits for another process's lock before failing.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections per open registry: SQLite serializes writers anyway, and WAL
/// lets readers run beside the one writer.
const POOL_SIZE: u32 = 4;

/// The first 16 bytes of every SQLite 3 database file.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// The size of SQLite's database header.
const HEADER_LEN: usize = 100;

/// What the tables of a file that passed the checks say.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Schema {
    /// No tables: a new file, or one whose first migration never committed.
    Empty,
    /// A registry with some of our migrations applied, not all.
    Older,
    /// A registry with every one of our migrations applied.
    Current,
}

/// Opens (creating or migrating) the registry at `path` and returns its pool.
pub(crate) async fn open(path: &Path) -> Result<SqlitePool> {
    // File system calls block (a network file system may take long).
    let owned = path.to_path_buf();
    run_blocking(move || Ok(check_file(&owned, true))).await??;
    // Per connection: wait for locks instead of failing at once, and sync
    // the WAL only at checkpoints (see the module docs of `registry` on
    // crash safety). Neither writes to the file.
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .busy_timeout(BUSY_TIMEOUT)
        .synchronous(SqliteSynchronous::Normal);
    let schema = inspect_read_only(path, &options).await?;
    let mut conn = options
        .connect()
        .await
        .map_err(|error| database(path, error))?;
    let prepared = prepare(&mut conn, path, schema).await;
    let closed = conn.close().await;
    prepared?;
    closed.map_err(|error| database(path, error))?;
    SqlitePoolOptions::new()
        .max_connections(POOL_SIZE)
        .connect_with(options)
        .await
        .map_err(|error| database(path, error))
}

/// Step 1: the file's first bytes, and that it can be written. A missing
/// file is created empty (SQLite takes an empty file for a new database);
/// `retry`: whether to look again if another process created it meanwhile.
fn check_file(path: &Path, retry: bool) -> Result<()> {
    match OpenOptions::new().read(true).open(path) {
        Ok(mut file) => {
            let mut header = [0u8; HEADER_LEN];
            let len = read_full(&mut file, &mut header).map_err(|e| file_error(path, e))?;
            if len > 0 && (len < HEADER_LEN || &header[..MAGIC.len()] != MAGIC) {
                return Err(RegistryError::NotADatabase {
                    path: path.to_path_buf(),
                });
            }
            // Opening for writing changes nothing; it tells whether we may.
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(|e| file_error(path, e))?;
            Ok(())
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            match OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(_) => Ok(()),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists && retry => {
                    check_file(path, false)
                }
                Err(error) => Err(file_error(path, error)),
            }
        }
        Err(error) => Err(file_error(path, error)),
    }
}

/// Reads until `buf` is full or the file ends; returns how much was read.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(len)
}

fn file_error(path: &Path, error: io::Error) -> RegistryError {
    let path = path.to_path_buf();
    match error.kind() {
        io::ErrorKind::PermissionDenied => RegistryError::PermissionDenied { path },
        io::ErrorKind::ReadOnlyFilesystem => RegistryError::ReadOnly { path },
        _ => RegistryError::Io {
            path,
            source: error,
        },
    }
}

/// Step 2 on a read-only connection, which cannot write to the file even
/// when it closes (a read-write connection that closes last checkpoints the
/// WAL into the main file). `None` when the file cannot be read without a
/// write: a writer died in the middle of a rollback-journal transaction (the
/// switch to WAL of a new file) and left a hot journal, which only a
/// read-write connection may roll back.
async fn inspect_read_only(path: &Path, options: &SqliteConnectOptions) -> Result<Option<Schema>> {
    let read_only = options.clone().read_only(true);
    let mut conn = match read_only.connect().await {
        Ok(conn) => conn,
        Err(error) if sql::primary_code(&error) == Some(sql::SQLITE_READONLY) => return Ok(None),
        Err(error) => return Err(database(path, error)),
    };
    let inspected = inspect(&mut conn, path).await;
    let closed = conn.close().await;
    let schema = match inspected {
        Ok(schema) => Some(schema),
        Err(RegistryError::ReadOnly { .. }) => None,
        Err(other) => return Err(other),
    };
    closed.map_err(|error| database(path, error))?;
    Ok(schema)
}

/// Steps 2 (unless done read-only already) and 3, on a read-write
/// connection.
async fn prepare(conn: &mut SqliteConnection, path: &Path, schema: Option<Schema>) -> Result<()> {
    let schema = match schema {
        Some(schema) => schema,
        None => inspect(conn, path).await?,
    };
    ensure_wal(conn, path).await?;
    if schema != Schema::Current {
        migrate(conn, path).await?;
    }
    Ok(())
}

/// Step 2: reads only.
async fn inspect(conn: &mut SqliteConnection, path: &Path) -> Result<Schema> {
    let db = |error| database(path, error);
    let problems: Vec<String> = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    if problems.iter().map(String::as_str).ne(["ok"]) {
        let mut detail = problems
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        if problems.len() > 5 {
            detail.push_str("; ...");
        }
        return Err(RegistryError::CorruptDatabase {
            path: path.to_path_buf(),
            detail,
        });
    }
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
    if tables.iter().all(|name| name.starts_with("sqlite_")) {
        return Ok(Schema::Empty);
    }
    let not_ours = || RegistryError::NotARegistry {
        path: path.to_path_buf(),
    };
    if !tables.iter().any(|name| name == "_sqlx_migrations") {
        return Err(not_ours());
    }
    let applied: Vec<(i64, bool)> = sqlx::query_as("SELECT version, success FROM _sqlx_migrations")
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
    // Our first migration is in every registry; a file without it holds some
    // other program's sqlx migrations.
    if !applied.iter().any(|&(version, _)| version == 1) {
        return Err(not_ours());
    }
    if applied.iter().any(|&(version, _)| !knows_version(version)) {
        let found = applied.iter().map(|&(version, _)| version).max();
        return Err(RegistryError::SchemaTooNew {
            path: path.to_path_buf(),
            found: found.unwrap_or(SUPPORTED_VERSION),
            supported: SUPPORTED_VERSION,
        });
    }
    if let Some(&(version, _)) = applied.iter().find(|&&(_, success)| !success) {
        return Err(RegistryError::CorruptDatabase {
            path: path.to_path_buf(),
            detail: format!("schema migration {version} was left half-applied"),
        });
    }
    let all_applied = (1..=SUPPORTED_VERSION)
        .filter(|&version| knows_version(version))
        .all(|version| applied.iter().any(|&(v, _)| v == version));
    Ok(if all_applied {
        Schema::Current
    } else {
        Schema::Older
    })
}

/// Switches the file to WAL unless it is already. The switch waits for
/// other connections like any write; a switch that could not take effect
/// (another process in the middle of its own switch) is retried until the
/// busy timeout.
async fn ensure_wal(conn: &mut SqliteConnection, path: &Path) -> Result<()> {
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await
        .map_err(|error| database(path, error))?;
    if mode.eq_ignore_ascii_case("wal") {
        return Ok(());
    }
    let deadline = Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        let last = match sqlx::query_scalar::<_, String>("PRAGMA journal_mode = WAL")
            .fetch_one(&mut *conn)
            .await
        {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => RegistryError::Database {
                path: path.to_path_buf(),
                source: format!("could not switch to WAL: journal mode stayed {mode}").into(),
            },
            Err(error) if is_busy(&error) => database(path, error),
            Err(error) => return Err(database(path, error)),
        };
        if Instant::now() >= deadline {
            return Err(last);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Step 3: the migrations, in one `BEGIN IMMEDIATE` transaction, so that two
/// processes opening a new file at once cannot both apply them (sqlx's
/// SQLite migrator takes no lock of its own; inside our transaction its own
/// becomes a savepoint).
async fn migrate(conn: &mut SqliteConnection, path: &Path) -> Result<()> {
    let migrator = sql::migrator()
        .await
        .map_err(|source| RegistryError::Database {
            path: path.to_path_buf(),
            source,
        })?;
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|error| database(path, error))?;
    migrator
        .run(&mut *tx)
        .await
        .map_err(|error| migrate_error(path, error))?;
    tx.commit().await.map_err(|error| database(path, error))
}

fn migrate_error(path: &Path, error: MigrateError) -> RegistryError {
    match error {
        MigrateError::Execute(error) | MigrateError::ExecuteMigration(error, _) => {
            database(path, error)
        }
        MigrateError::VersionMissing(found) => RegistryError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported: SUPPORTED_VERSION,
        },
        MigrateError::Dirty(version) => RegistryError::CorruptDatabase {
            path: path.to_path_buf(),
            detail: format!("schema migration {version} was left half-applied"),
        },
        other => RegistryError::Database {
            path: path.to_path_buf(),
            source: Box::new(other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_passes_and_text_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.db");
        std::fs::write(&empty, b"").unwrap();
        check_file(&empty, true).unwrap();

        let text = dir.path().join("notes.txt");
        std::fs::write(&text, b"hello\n").unwrap();
        assert!(matches!(
            check_file(&text, true),
            Err(RegistryError::NotADatabase { path }) if path == text
        ));
        assert_eq!(std::fs::read(&text).unwrap(), b"hello\n");

        let mut fake = MAGIC.to_vec();
        fake.resize(HEADER_LEN - 1, 0);
        let short = dir.path().join("short.db");
        std::fs::write(&short, &fake).unwrap();
        assert!(matches!(
            check_file(&short, true),
            Err(RegistryError::NotADatabase { .. })
        ));
    }

    #[test]
    fn a_missing_file_is_created_empty_and_a_missing_dir_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.db");
        check_file(&new, true).unwrap();
        assert_eq!(std::fs::metadata(&new).unwrap().len(), 0);
        let nowhere = dir.path().join("no/such/dir/x.db");
        assert!(matches!(
            check_file(&nowhere, true),
            Err(RegistryError::Io { .. })
        ));
    }
}
