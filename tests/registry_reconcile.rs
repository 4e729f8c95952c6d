//! The registry against real processes: a row whose process exited, a row
//! whose pid was handed to another process (forced through `ns_last_pid` as
//! root), a live tree; reconcile marks each right, and a stop kills the live
//! tree and nothing else, not the process that now holds a reused pid.
#![cfg(all(target_os = "linux", feature = "registry"))]

mod support;

use std::path::Path;

use proctrack::registry::{
    EndReason, Metadata, Registry, RowId, Status, StopOutcome, StopScope, owner_key,
    process_owner_alive,
};
use proctrack::{Pid, ProcessIdentity, State};
use support::{SpawnedTree, assert_no_leftovers};

/// A shell that prints `ready` and waits on stdin: it exits with code 3 when
/// the test closes its stdin, or is killed.
fn waiter() -> SpawnedTree {
    let mut tree = SpawnedTree::shell("echo ready; read _; exit 3");
    tree.wait_ready();
    tree
}

/// A two-process tree: the shell and a `sleep` child, whose pid it prints.
fn two_level() -> (SpawnedTree, ProcessIdentity) {
    let mut tree = SpawnedTree::shell("sleep 1000 & echo $!; echo ready; wait");
    let lines = tree.wait_ready();
    let pid = Pid::try_from(lines[0].parse::<i32>().expect("the child's pid")).expect("pid");
    let child = proctrack::process(pid).expect("the sleep child").identity();
    (tree, child)
}

/// Spawns a waiter on exactly `target` by writing `target - 1` to
/// `/proc/sys/kernel/ns_last_pid` first (root only; other forks on the
/// machine can take the pid in between, so it retries). `Err` says why not.
fn waiter_on_pid(target: Pid) -> Result<SpawnedTree, String> {
    for _ in 0..200 {
        std::fs::write(
            "/proc/sys/kernel/ns_last_pid",
            (target.as_raw() - 1).to_string(),
        )
        .map_err(|e| format!("cannot write ns_last_pid ({e}); not root?"))?;
        let mut tree = SpawnedTree::shell("echo ready; read _");
        if tree.pid() == target {
            tree.wait_ready();
            return Ok(tree);
        }
        tree.finish();
    }
    Err(format!(
        "pid {target} was taken by other processes 200 times"
    ))
}

/// True when the process with this identity is alive (not a zombie).
fn alive(identity: ProcessIdentity) -> bool {
    matches!(proctrack::process(identity.pid()),
        Ok(now) if now.identity() == identity && now.state() != State::Zombie)
}

async fn register(registry: &Registry, identity: ProcessIdentity, label: &str) -> RowId {
    let metadata = Metadata::new("exec-1").label(label);
    registry
        .register(identity, &metadata)
        .await
        .expect("register")
}

async fn status_of(registry: &Registry, id: RowId) -> (Status, Option<EndReason>) {
    let entry = registry.get(id).await.expect("get").expect("the row");
    (entry.status(), entry.end_reason())
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).expect("copying the registry file");
}

#[tokio::test]
async fn reconcile_and_stop_across_exit_and_pid_reuse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("registry.db");
    let registry = Registry::open(&path).await.expect("open");

    let mut exits = waiter();
    let mut reused = waiter();
    let (live, live_child) = two_level();
    let exits_id = register(&registry, exits.root(), "exits").await;
    let reused_id = register(&registry, reused.root(), "pid reused").await;
    let live_id = register(&registry, live.root(), "live tree").await;
    let child_id = register(&registry, live_child, "live child").await;
    let entry = registry.get(live_id).await.expect("get").expect("row");
    assert!(
        entry.command().to_string().contains("sleep 1000"),
        "{entry:?}"
    );
    assert_eq!(entry.process_group(), Some(live.pid()));
    registry.close().await;

    // Two real exits: each shell reads EOF and exits 3; we reap it.
    exits.close_stdin();
    assert_eq!(exits.wait_root().code(), Some(3));
    reused.close_stdin();
    assert_eq!(reused.wait_root().code(), Some(3));
    let reused_pid = reused.pid();
    let (old, new) = (exits.finish(), reused.finish());

    // Another process on the pid of `reused`, where we can force it.
    let stranger = match waiter_on_pid(reused_pid) {
        Ok(tree) => Some(tree),
        Err(reason) => {
            println!("SKIPPED the pid reuse part: {reason}");
            None
        }
    };
    if let Some(stranger) = &stranger {
        let same_tick = stranger.root().start_time() == new.root.start_time();
        println!(
            "pid {reused_pid} reused; same start time as the registered process: {same_tick}{}",
            if same_tick {
                " (only the pidfs inode tells them apart)"
            } else {
                ""
            }
        );
    }
    // A copy of the file as it is now, for a stop that no reconcile preceded.
    let unreconciled = dir.path().join("unreconciled.db");
    copy(&path, &unreconciled);

    // Reopen (as a restarted supervisor would) and reconcile.
    let registry = Registry::open(&path).await.expect("reopen");
    let report = registry.reconcile().await.expect("reconcile");
    let ids = |entries: &[proctrack::registry::Entry]| -> Vec<RowId> {
        entries.iter().map(|e| e.id()).collect()
    };
    assert_eq!(ids(&report.running), [live_id, child_id]);
    assert!(report.earlier_boot.is_empty());
    // Both exited; a pid freed this way may be taken by any process on the
    // machine meanwhile, so either may also read as "pid reused", except
    // that the one we forced must.
    let mut ended = ids(&report.exited);
    ended.extend(ids(&report.pid_reused));
    ended.sort();
    assert_eq!(ended, [exits_id, reused_id]);
    if stranger.is_some() {
        assert!(ids(&report.pid_reused).contains(&reused_id), "{report:#?}");
        assert_eq!(
            status_of(&registry, reused_id).await,
            (Status::Exited, Some(EndReason::PidReused))
        );
    }
    let (status, reason) = status_of(&registry, exits_id).await;
    assert_eq!(status, Status::Exited);
    assert!(matches!(
        reason,
        Some(EndReason::Gone | EndReason::PidReused)
    ));
    // Reconciling again changes nothing.
    let again = registry.reconcile().await.expect("reconcile again");
    assert_eq!(ids(&again.running), [live_id, child_id]);
    assert_eq!(again.ended().count(), 0);

    // Stop on the copy, where all four rows still say running.
    let copy = Registry::open(&unreconciled).await.expect("open the copy");
    assert_eq!(copy.running().await.expect("running").len(), 4);
    let stopped = copy
        .stop(StopScope::Owner("exec-1".into()))
        .await
        .expect("stop");
    println!("{stopped}");
    let outcome = |id: RowId| {
        stopped
            .rows
            .iter()
            .find(|row| row.entry.id() == id)
            .map(|row| row.outcome.clone())
            .expect("a row in the report")
    };
    assert_eq!(outcome(exits_id), StopOutcome::Ended);
    assert_eq!(outcome(reused_id), StopOutcome::Ended);
    match outcome(live_id) {
        StopOutcome::Killed(kill) => {
            assert!(kill.was_killed(&live.root()), "{kill:?}");
            assert!(kill.was_killed(&live_child), "{kill:?}");
            assert!(kill.is_complete(), "{kill:?}");
        }
        other => panic!("the live tree was not killed: {other:?}"),
    }
    assert_eq!(outcome(child_id), StopOutcome::KilledWithTree(live_id));
    assert!(stopped.is_complete());
    assert_eq!(stopped.killed().count(), 2);
    if let Some(stranger) = &stranger {
        assert!(
            alive(stranger.root()),
            "the stop killed the process on the reused pid"
        );
        assert_eq!(
            status_of(&copy, reused_id).await,
            (Status::Exited, Some(EndReason::PidReused))
        );
    }
    let live_row = copy.get(live_id).await.expect("get").expect("row");
    assert_eq!(live_row.status(), Status::Killed);
    assert_eq!(live_row.end_reason(), Some(EndReason::Stopped));
    assert!(
        live_row
            .kill_report()
            .is_some_and(|r| r.starts_with("killed "))
    );
    // Nothing left to stop.
    let nothing = copy.stop(StopScope::AllRunning).await.expect("stop again");
    assert!(nothing.rows.is_empty());
    copy.close().await;

    // The original file learns of the kill on its next reconcile.
    let report = registry
        .reconcile()
        .await
        .expect("reconcile after the kill");
    // (The reaped child's pid is free again: it may be reused already.)
    let mut ended: Vec<RowId> = report.ended().map(|e| e.id()).collect();
    ended.sort();
    assert_eq!(ended, [live_id, child_id]);
    assert!(report.running.is_empty());
    registry.close().await;

    if let Some(stranger) = stranger {
        let record = stranger.finish();
        assert_no_leftovers(&record);
    }
    let live = live.finish();
    for record in [old, new, live] {
        assert_no_leftovers(&record);
    }
}

#[tokio::test]
async fn stop_stale_kills_the_trees_of_dead_owners_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Registry::open(dir.path().join("stale.db"))
        .await
        .expect("open");

    // The "supervisor" that owns a tree, by its identity.
    let mut owner = waiter();
    let key = owner_key(owner.root());
    assert_eq!(process_owner_alive(&key), Some(true));
    let (orphaned, orphaned_child) = two_level();
    let (kept, _) = two_level();
    let orphaned_id = registry
        .register(orphaned.root(), &Metadata::new(key.clone()))
        .await
        .expect("register");
    registry
        .register(orphaned_child, &Metadata::new(key.clone()))
        .await
        .expect("register");
    let kept_id = registry
        .register(kept.root(), &Metadata::new("execution-17"))
        .await
        .expect("register");
    let is_alive = |owner: &str| process_owner_alive(owner).unwrap_or(true);

    let report = registry.stop_stale(is_alive).await.expect("stop_stale");
    assert!(report.rows.is_empty(), "every owner is alive: {report}");

    owner.close_stdin();
    owner.wait_root();
    assert_eq!(process_owner_alive(&key), Some(false));
    let report = registry.stop_stale(is_alive).await.expect("stop_stale");
    println!("{report}");
    assert_eq!(report.killed().count(), 2);
    assert!(report.is_complete());
    assert!(
        report
            .rows
            .iter()
            .any(|row| row.entry.id() == orphaned_id
                && matches!(row.outcome, StopOutcome::Killed(_)))
    );
    let kept_row = registry.get(kept_id).await.expect("get").expect("row");
    assert!(kept_row.is_running());
    assert!(alive(kept.root()));
    registry.close().await;

    for tree in [owner, orphaned, kept] {
        assert_no_leftovers(&tree.finish());
    }
}

#[tokio::test]
async fn a_stop_never_signals_the_caller_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Registry::open(dir.path().join("self.db"))
        .await
        .expect("open");
    let me = proctrack::process(Pid::current()).expect("me").identity();
    let id = registry
        .register(me, &Metadata::new("me").label("the test itself"))
        .await
        .expect("register");
    let report = registry.stop(StopScope::Row(id)).await.expect("stop");
    assert!(
        matches!(report.rows[0].outcome, StopOutcome::Refused(_)),
        "{report}"
    );
    assert!(!report.is_complete());
    assert!(
        registry
            .get(id)
            .await
            .expect("get")
            .expect("row")
            .is_running()
    );
    registry.close().await;
}

/// A pid reused within one clock tick shows the registered start time; only
/// the pidfs inode (Linux 6.9+) tells the newcomer apart. Simulated: a live
/// process's row gets another inode written into it, as if registered for an
/// earlier holder of the pid.
#[tokio::test]
async fn another_pidfs_inode_means_another_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("inode.db");
    let registry = Registry::open(&path).await.expect("open");
    let tree = waiter();
    let id = registry
        .register(tree.root(), &Metadata::new("exec-9"))
        .await
        .expect("register");
    let Some(inode) = registry
        .get(id)
        .await
        .expect("get")
        .and_then(|e| e.pidfs_inode())
    else {
        println!("SKIPPED: this kernel has no pidfs inodes (before 6.9)");
        registry.close().await;
        assert_no_leftovers(&tree.finish());
        return;
    };
    let reconciled = registry.reconcile().await.expect("reconcile");
    assert_eq!(
        reconciled.running.len(),
        1,
        "the right inode: still running"
    );
    registry.close().await;

    use sqlx::{ConnectOptions, Connection};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .expect("connect");
    sqlx::query("UPDATE processes SET pidfs_inode = ?1 WHERE id = ?2")
        .bind(i64::try_from(inode).expect("inode") + 1)
        .bind(id.as_raw())
        .execute(&mut conn)
        .await
        .expect("update");
    conn.close().await.expect("close");
    let copy = dir.path().join("copy.db");
    let registry = Registry::open(&path).await.expect("reopen");
    registry.close().await;
    std::fs::copy(&path, &copy).expect("copy");

    // A stop first (on a copy), then a reconcile: neither touches the process.
    let stopper = Registry::open(&copy).await.expect("open the copy");
    let stopped = stopper.stop(StopScope::AllRunning).await.expect("stop");
    assert_eq!(stopped.rows.len(), 1);
    assert_eq!(stopped.rows[0].outcome, StopOutcome::Ended);
    assert_eq!(
        stopped.rows[0].entry.end_reason(),
        Some(EndReason::PidReused)
    );
    stopper.close().await;
    assert!(
        alive(tree.root()),
        "the stop signalled a process with another inode"
    );

    let registry = Registry::open(&path).await.expect("reopen");
    let report = registry.reconcile().await.expect("reconcile");
    assert_eq!(report.pid_reused.len(), 1, "{report:#?}");
    registry.close().await;
    assert!(alive(tree.root()));
    assert_no_leftovers(&tree.finish());
}
