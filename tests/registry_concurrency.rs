//! Several processes on one registry file at once: 4 writer processes open
//! the same new file together (racing to create and migrate it), then each
//! registers 500 rows as fast as it can. All 2000 rows must be there, and no
//! writer may see an error ("database is locked" included).
//!
//! The writers are this test binary run again (`--exact concurrent_writer
//! --ignored`). Each prints `ready` once open and waits for a line on stdin,
//! so that all four write at the same time; then prints `done`, or `error`
//! and the error.
#![cfg(all(target_os = "linux", feature = "registry"))]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};

use proctrack::registry::{Metadata, Registry, Status};
use proctrack::{BootId, Pid, ProcessIdentity, StartTime};

const WRITER_DB: &str = "PROCTRACK_CONCURRENT_WRITER_DB";
const WRITER_NAME: &str = "PROCTRACK_CONCURRENT_WRITER_NAME";
const WRITERS: usize = 4;
const ROWS: usize = 500;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Not a test: one writer, run by `four_writers_lose_nothing`.
#[test]
#[ignore = "run by four_writers_lose_nothing in a child process"]
fn concurrent_writer() {
    let (Ok(path), Ok(name)) = (std::env::var(WRITER_DB), std::env::var(WRITER_NAME)) else {
        return;
    };
    runtime().block_on(async {
        let registry = match Registry::open(&path).await {
            Ok(registry) => registry,
            Err(e) => {
                println!("error opening: {e}");
                return;
            }
        };
        println!("ready");
        let mut go = String::new();
        std::io::stdin().read_line(&mut go).expect("stdin");
        for i in 0..ROWS {
            let identity = ProcessIdentity::new(
                BootId::from_bytes([2; 16]),
                Pid::try_from(1000 + i).expect("pid"),
                StartTime::from_raw(i as u64),
            );
            let metadata = Metadata::new(name.clone()).label(i.to_string());
            if let Err(e) = registry.register(identity, &metadata).await {
                println!("error on row {i}: {e}");
                return;
            }
        }
        registry.close().await;
        println!("done");
    });
}

struct Writer {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Writer {
    /// The next line that is ours (the test harness prints its own).
    fn line(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).expect("reading a writer");
            assert!(n > 0, "a writer closed its stdout early");
            let line = line.trim();
            if line == "ready" || line == "done" || line.starts_with("error") {
                return line.to_owned();
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Unreaped until `wait` below returns, so the pid is still its own.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn four_writers_lose_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("shared.db");
    let exe = std::env::current_exe().expect("the test binary");
    let mut writers: Vec<Writer> = (0..WRITERS)
        .map(|n| {
            let mut child = Command::new(&exe)
                .args(["--exact", "concurrent_writer", "--ignored", "--nocapture"])
                .args(["--test-threads", "1", "-q"])
                .env(WRITER_DB, &path)
                .env(WRITER_NAME, format!("w{n}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawning a writer");
            let stdout = BufReader::new(child.stdout.take().expect("stdout"));
            Writer { child, stdout }
        })
        .collect();
    for writer in &mut writers {
        assert_eq!(writer.line(), "ready");
    }
    for writer in &mut writers {
        let stdin = writer.child.stdin.as_mut().expect("stdin");
        stdin.write_all(b"go\n").expect("go");
    }
    for writer in &mut writers {
        assert_eq!(writer.line(), "done");
    }
    for writer in &mut writers {
        let status = writer.child.wait().expect("waiting for a writer");
        assert!(status.success(), "a writer failed: {status}");
    }
    drop(writers);

    runtime().block_on(async {
        let registry = Registry::open(&path).await.expect("open");
        registry.check_integrity().await.expect("integrity");
        let mut ids = HashSet::new();
        for n in 0..WRITERS {
            let rows = registry.by_owner(&format!("w{n}")).await.expect("rows");
            assert_eq!(rows.len(), ROWS, "writer w{n}");
            let labels: HashSet<&str> = rows.iter().map(|e| e.label()).collect();
            assert_eq!(labels.len(), ROWS, "writer w{n}: every row once");
            assert!(rows.iter().all(|e| e.status() == Status::Running));
            ids.extend(rows.iter().map(|e| e.id()));
        }
        assert_eq!(ids.len(), WRITERS * ROWS);
        assert_eq!(
            registry.running().await.expect("running").len(),
            WRITERS * ROWS
        );
        println!(
            "{WRITERS} processes x {ROWS} registrations: {} rows, none lost",
            ids.len()
        );
        registry.close().await;
    });
}
