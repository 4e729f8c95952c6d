//! Process handles: signals, waiting (blocking and async, children and
//! non-children), reaping our own children, the kill(2) fallback.
#![cfg(target_os = "linux")]

mod support;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

use proctrack::Error;
use proctrack::signal::{Backend, Delivery, ProcessHandle, Signal, capabilities};
use support::{assert_no_descendants, serial};

#[test]
fn capabilities_of_this_kernel() {
    let caps = capabilities();
    println!("{caps:?}");
    assert!(caps.pidfd && caps.pidfd_wait && caps.waitid_pidfd && caps.child_subreaper);
    assert_eq!(caps.auto_backend(), Backend::Pidfd);
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awaiting_a_non_child_returns_after_it_dies() {
    use proctrack::Pid;
    use proctrack::signal::{KillOptions, kill_tree};
    use support::SpawnedTree;

    let _serial = serial();
    // The sleep is the shell's child, not ours.
    let mut tree = SpawnedTree::shell("sleep 1000 & echo $!; wait");
    let grandchild: Pid = tree.read_line().expect("a line").parse().expect("a pid");
    let identity = proctrack::process(grandchild)
        .expect("the grandchild")
        .identity();
    assert_eq!(
        proctrack::process(grandchild).expect("read").parent(),
        Some(tree.pid())
    );

    let handle = ProcessHandle::open(identity).expect("open");
    assert!(!handle.has_exited().expect("has_exited"));
    let waiter = tokio::spawn(async move {
        handle.wait_async().await.expect("exited");
        handle
    });
    // Two waiters on one process at once are fine too.
    let second = ProcessHandle::open(identity).expect("open");
    let killer = ProcessHandle::open(identity).expect("open");
    assert_eq!(
        killer.signal(Signal::Kill).expect("signal"),
        Delivery::Delivered
    );

    let hang_guard = Duration::from_secs(60);
    let handle = tokio::time::timeout(hang_guard, waiter)
        .await
        .expect("exit seen")
        .expect("join");
    tokio::time::timeout(hang_guard, second.wait_async())
        .await
        .expect("exit seen")
        .expect("exited");
    assert!(handle.has_exited().expect("has_exited"));
    // Not our child: its status is the shell's.
    assert!(matches!(handle.try_reap(), Err(Error::NotChild { .. })));

    let report = kill_tree(
        &mut proctrack::table::ProcessTable::new().expect("table"),
        tree.root(),
        &KillOptions::new().reap_root(false),
    )
    .expect("kill_tree");
    assert!(report.is_complete(), "{report:#?}");
    tree.wait_root();
    drop(tree);
    assert_no_descendants();
}

#[test]
fn blocking_wait_and_reaping_our_own_child() {
    let _serial = serial();
    let child = Command::new("sleep").arg("1000").spawn().expect("spawn");
    let handle = ProcessHandle::from_child(&child).expect("pin");
    drop(child); // the handle owns the child from here on
    assert_eq!(handle.backend(), Backend::Pidfd);
    assert!(!handle.wait_timeout(Duration::ZERO).expect("wait"));
    assert_eq!(handle.try_reap().expect("try_reap"), None);
    assert_eq!(
        handle.signal(Signal::Term).expect("signal"),
        Delivery::Delivered
    );
    assert!(handle.wait_timeout(support::HANG_GUARD).expect("wait"));
    assert!(handle.wait_timeout(Duration::ZERO).expect("wait"));
    let status = handle.try_reap().expect("try_reap").expect("exited");
    assert_eq!(status.signal(), Some(15));
    // Reaped: the pid is free, and the handle knows its process is gone.
    assert!(matches!(handle.try_reap(), Err(Error::NotChild { .. })));
    assert_eq!(handle.signal(Signal::Kill).expect("signal"), Delivery::Gone);
    assert!(matches!(
        ProcessHandle::open(handle.identity()),
        Err(Error::NotFound { .. })
    ));

    let child = Command::new("sh")
        .args(["-c", "exit 7"])
        .spawn()
        .expect("spawn");
    let handle = ProcessHandle::from_child(&child).expect("pin");
    drop(child);
    assert_eq!(handle.reap().expect("reap").code(), Some(7));
    assert_no_descendants();
}

#[test]
fn the_fallback_backend_checks_identity_and_cannot_wait() {
    let _serial = serial();
    let mut child = Command::new("sleep").arg("1000").spawn().expect("spawn");
    let identity = ProcessHandle::from_child(&child).expect("pin").identity();
    let handle = ProcessHandle::open_with(identity, Backend::CheckedPid).expect("open");
    assert_eq!(handle.backend(), Backend::CheckedPid);
    assert!(!handle.has_exited().expect("has_exited"));
    assert!(matches!(
        handle.wait_timeout(Duration::ZERO),
        Err(Error::Unsupported { .. })
    ));
    assert_eq!(
        handle.signal(Signal::Kill).expect("signal"),
        Delivery::Delivered
    );
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(9));
    // Reaped: the identity check now fails before any kill(2).
    assert_eq!(handle.signal(Signal::Kill).expect("signal"), Delivery::Gone);
    assert!(handle.has_exited().expect("has_exited"));
    assert!(matches!(
        ProcessHandle::open_with(identity, Backend::CheckedPid),
        Err(Error::NotFound { .. })
    ));

    // Reaping through the fallback goes by pid after the same checks.
    let child = Command::new("sh")
        .args(["-c", "exit 3"])
        .spawn()
        .expect("spawn");
    let identity = ProcessHandle::from_child(&child).expect("pin").identity();
    drop(child);
    let handle = ProcessHandle::open_with(identity, Backend::CheckedPid).expect("open");
    assert_eq!(handle.reap().expect("reap").code(), Some(3));
    assert_no_descendants();
}
