//! Files that are not a usable registry: a text file, corrupt bytes, a
//! schema from a newer proctrack, another program's SQLite database, a place
//! that cannot be written. Each gives its typed error naming the path, and the
//! file's bytes are exactly as before.
#![cfg(all(target_os = "linux", feature = "registry"))]

use std::path::{Path, PathBuf};

use proctrack::registry::RegistryError as Error;
use proctrack::registry::{Metadata, Registry};
use proctrack::{BootId, Pid, ProcessIdentity, StartTime};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// A closed registry file with `rows` rows in it.
async fn registry_with_rows(path: &Path, rows: usize) {
    let registry = Registry::open(path).await.expect("open");
    let batch: Vec<_> = (0..rows)
        .map(|i| {
            let identity = ProcessIdentity::new(
                BootId::from_bytes([3; 16]),
                Pid::try_from(100 + i).expect("pid"),
                StartTime::from_raw(i as u64),
            );
            let metadata = Metadata::new("owner")
                .label(format!("row {i} with some text to fill pages"))
                .command(["prog", "--flag", &"x".repeat(100)]);
            (identity, metadata)
        })
        .collect();
    registry.register_all(&batch).await.expect("rows");
    registry.close().await;
}

/// Runs SQL on a file directly, as another program would.
async fn execute(path: &Path, sql: &str) {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .connect()
        .await
        .expect("connect");
    sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
    conn.close().await.expect("close");
}

/// Opens `path` as a registry, expects an error, and checks that the file
/// is byte for byte what it was.
async fn open_fails(path: &Path) -> Error {
    let before = std::fs::read(path).expect("reading the file");
    let error = match Registry::open(path).await {
        Ok(_) => panic!("{} opened as a registry", path.display()),
        Err(error) => error,
    };
    let after = std::fs::read(path).expect("reading the file again");
    assert!(before == after, "{} changed: {error}", path.display());
    println!("{error}");
    error
}

fn named(path: &Path) -> impl Fn(&PathBuf) -> bool + '_ {
    move |p| p == path
}

#[tokio::test]
async fn a_text_file_is_not_a_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "remember the milk\n".repeat(200)).expect("write");
    let error = open_fails(&path).await;
    assert!(matches!(&error, Error::NotADatabase { path: p } if named(&path)(p)));
    assert!(error.to_string().contains("notes.txt"));
}

#[tokio::test]
async fn corrupt_pages_are_reported_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("corrupt.db");
    registry_with_rows(&path, 300).await;
    let mut bytes = std::fs::read(&path).expect("read");
    assert!(bytes.len() > 3 * 4096, "several pages: {}", bytes.len());
    // Every page after the first (the header and schema) becomes garbage.
    for (i, byte) in bytes.iter_mut().enumerate().skip(4096) {
        *byte = (i * 131 % 251) as u8;
    }
    std::fs::write(&path, &bytes).expect("write");
    let error = open_fails(&path).await;
    assert!(
        matches!(&error, Error::CorruptDatabase { path: p, .. } if named(&path)(p)),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_damaged_schema_page_is_corrupt_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("schema.db");
    registry_with_rows(&path, 10).await;
    let mut bytes = std::fs::read(&path).expect("read");
    // Page 1 after the 100-byte header: the schema table's b-tree page.
    for byte in &mut bytes[100..4096] {
        *byte = 0xA5;
    }
    std::fs::write(&path, &bytes).expect("write");
    let error = open_fails(&path).await;
    assert!(
        matches!(
            &error,
            Error::CorruptDatabase { path: p, .. } | Error::NotADatabase { path: p }
                if named(&path)(p)
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("newer.db");
    registry_with_rows(&path, 3).await;
    // What a later proctrack with a third migration would leave.
    execute(
        &path,
        "ALTER TABLE processes ADD COLUMN future TEXT; \
         INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (3, 'future', TRUE, x'00', 0);",
    )
    .await;
    let error = open_fails(&path).await;
    match &error {
        Error::SchemaTooNew {
            path: p,
            found,
            supported,
        } => {
            assert_eq!(p, &path);
            assert_eq!((*found, *supported), (3, 2));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn another_programs_database_is_not_a_registry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("other.db");
    execute(
        &path,
        "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('hello');",
    )
    .await;
    let error = open_fails(&path).await;
    assert!(
        matches!(&error, Error::NotARegistry { path: p } if named(&path)(p)),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_unwritable_place_is_an_error_naming_it() {
    // sysfs refuses new files, even to root.
    let path = PathBuf::from("/sys/proctrack-registry-test.db");
    match Registry::open(&path).await {
        Err(Error::PermissionDenied { path: p } | Error::ReadOnly { path: p }) => {
            assert_eq!(p, path);
        }
        Err(other) => panic!("expected PermissionDenied or ReadOnly, got {other:?}"),
        Ok(_) => panic!("opened a registry in /sys"),
    }
    assert!(!path.exists());
}

#[tokio::test]
async fn an_empty_file_becomes_a_registry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("empty.db");
    std::fs::write(&path, b"").expect("write");
    let registry = Registry::open(&path)
        .await
        .expect("an empty file is a new registry");
    assert!(registry.running().await.expect("running").is_empty());
    registry.close().await;
}
