//! Crash safety: a writer process is SIGKILLed at a random point while it
//! registers rows, 50 times over, on one file. After each kill the file must
//! pass `PRAGMA integrity_check`, every row the writer saw committed must be
//! there, and no half transaction may show.
//!
//! The writer is this test binary run again (`--exact crash_writer --ignored`
//! with an environment variable naming the file): it prints `committed <id>`
//! on its stdout (a pipe) after each commit returns, and the test reads the
//! lines, kills after a number of them, and reads the rest after the death.
#![cfg(all(target_os = "linux", feature = "registry"))]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use proctrack::registry::{Metadata, Registry, RowId};
use proctrack::{BootId, Pid, ProcessIdentity, StartTime};

const WRITER_DB: &str = "PROCTRACK_CRASH_WRITER_DB";
const WRITER_TRIAL: &str = "PROCTRACK_CRASH_WRITER_TRIAL";
const TRIALS: usize = 50;
/// Rows per `register_all` transaction.
const BATCH: usize = 8;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Not a test: the writer, run by `committed_rows_survive_sigkill` in a
/// child process. Registers rows forever (until killed), alternating
/// transactions of `BATCH` rows (label `b<n>`) and single rows (`s<n>`).
#[test]
#[ignore = "run by committed_rows_survive_sigkill in a child process"]
fn crash_writer() {
    let Ok(path) = std::env::var(WRITER_DB) else {
        return;
    };
    let trial = std::env::var(WRITER_TRIAL).unwrap_or_default();
    runtime().block_on(async {
        let registry = Registry::open(&path).await.expect("writer: open");
        println!("opened");
        let owner = format!("t{trial}");
        let identity = ProcessIdentity::new(
            BootId::from_bytes([1; 16]),
            Pid::current(),
            StartTime::from_raw(1),
        );
        for n in 0u64.. {
            let ids = if n % 2 == 0 {
                let label = format!("b{n}");
                let rows: Vec<_> = (0..BATCH)
                    .map(|_| (identity, Metadata::new(owner.clone()).label(label.clone())))
                    .collect();
                registry.register_all(&rows).await.expect("writer: batch")
            } else {
                let metadata = Metadata::new(owner.clone()).label(format!("s{n}"));
                vec![
                    registry
                        .register(identity, &metadata)
                        .await
                        .expect("writer: one"),
                ]
            };
            for id in ids {
                println!("committed {id}");
            }
        }
    });
}

/// How many committed lines to read before the kill in `trial`: some trials
/// kill at once (during start-up, opening or migrating), the others after
/// 1 to 60 commits.
fn kill_after(trial: usize) -> Option<usize> {
    match trial % 5 {
        0 => None,
        _ => Some(1 + (trial * 37) % 60),
    }
}

#[test]
fn committed_rows_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("crash.db");
    let exe = std::env::current_exe().expect("the test binary");
    let rt = runtime();
    let mut all: Vec<RowId> = Vec::new();
    let mut killed_mid_run = 0;
    for trial in 0..TRIALS {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_writer", "--ignored", "--nocapture"])
            .args(["--test-threads", "1", "-q"])
            .env(WRITER_DB, &path)
            .env(WRITER_TRIAL, trial.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning the writer");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut committed: Vec<RowId> = Vec::new();
        let mut line = String::new();
        let mut read_line = |committed: &mut Vec<RowId>| -> bool {
            line.clear();
            if stdout.read_line(&mut line).expect("reading the writer") == 0 {
                return false;
            }
            if let Some(id) = line.trim().strip_prefix("committed ") {
                committed.push(RowId::from_raw(id.parse().expect("an id")));
            }
            true
        };
        if let Some(count) = kill_after(trial) {
            while committed.len() < count {
                assert!(read_line(&mut committed), "the writer stopped early");
            }
            killed_mid_run += 1;
        }
        // The child is unreaped, so its pid is still its own: kill(2) is safe.
        child.kill().expect("SIGKILL");
        // What it printed before it died was committed too.
        while read_line(&mut committed) {}
        let status = child.wait().expect("waiting for the writer");
        if status.signal() != Some(9) {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
            }
            panic!("trial {trial}: the writer ended with {status}, not SIGKILL: {err}");
        }

        rt.block_on(async {
            let registry = Registry::open(&path)
                .await
                .unwrap_or_else(|e| panic!("trial {trial}: reopening after the kill: {e}"));
            registry
                .check_integrity()
                .await
                .unwrap_or_else(|e| panic!("trial {trial}: {e}"));
            for id in &committed {
                assert!(
                    registry.get(*id).await.expect("get").is_some(),
                    "trial {trial}: committed row {id} is missing"
                );
            }
            // Transactions are whole: every batch has all its rows.
            let mut labels: BTreeMap<String, usize> = BTreeMap::new();
            for entry in registry.by_owner(&format!("t{trial}")).await.expect("rows") {
                *labels.entry(entry.label().to_owned()).or_default() += 1;
            }
            for (label, count) in &labels {
                let want = if label.starts_with('b') { BATCH } else { 1 };
                assert_eq!(*count, want, "trial {trial}: label {label}");
            }
            registry.close().await;
        });
        all.extend(committed);
    }

    // Every committed row of every trial, at the end.
    rt.block_on(async {
        let registry = Registry::open(&path).await.expect("final open");
        registry.check_integrity().await.expect("final integrity");
        let mut stored: Vec<RowId> = Vec::new();
        for trial in 0..TRIALS {
            let rows = registry.by_owner(&format!("t{trial}")).await.expect("rows");
            stored.extend(rows.iter().map(|e| e.id()));
        }
        for id in &all {
            assert!(
                stored.binary_search(id).is_ok(),
                "committed row {id} is missing"
            );
        }
        println!(
            "{TRIALS} writers killed ({killed_mid_run} after some commits, the rest at once); \
             {} rows seen committed, {} rows stored, all committed rows present",
            all.len(),
            stored.len()
        );
        registry.close().await;
    });
}
