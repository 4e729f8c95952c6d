//! The real inspector on a live tree: tree, cwd search, exists and kill_tree
//! through the `dyn ProcessInspector` a supervisor would hold.
#![cfg(all(target_os = "linux", feature = "tokio"))]

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::sync::Arc;

use proctrack::inspect::{ProcessInspector, SystemInspector};
use proctrack::signal::KillOptions;
use proctrack::{Liveness, Pid};
use support::SpawnedTree;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspects_and_kills_a_live_tree() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("wt");
    fs::create_dir(&work).unwrap();
    let leaf = dir.path().join("leaf.sh");
    fs::write(&leaf, "echo leaf $$\nread _ <&3\n").unwrap();
    let mut tree = SpawnedTree::shell(&format!(
        "exec 3<&0\ncd {}\nsh {leaf} <&3 &\nsh {leaf} <&3 &\necho root $$\nread _ <&3\n",
        work.display(),
        leaf = leaf.display(),
    ));
    // Blocking reads of the tree's pipe, off the async threads.
    let (tree, lines) = tokio::task::spawn_blocking(move || {
        let lines = tree.read_lines(3);
        (tree, lines)
    })
    .await
    .unwrap();
    let leaves: BTreeSet<Pid> = lines
        .iter()
        .filter_map(|line| line.strip_prefix("leaf ")?.parse().ok())
        .collect();
    let root = tree.pid();

    let inspector: Arc<dyn ProcessInspector> = Arc::new(SystemInspector::new().unwrap());
    let shape = inspector.tree(root).await.unwrap().unwrap();
    let children: BTreeSet<Pid> = shape.children.iter().map(|c| c.process.pid()).collect();
    assert_eq!(children, leaves);
    let in_work: BTreeSet<Pid> = inspector
        .find_by_cwd_prefix(&work)
        .await
        .unwrap()
        .iter()
        .map(|p| p.pid())
        .collect();
    assert_eq!(in_work, leaves.iter().copied().chain([root]).collect());
    assert!(
        inspector
            .list()
            .await
            .unwrap()
            .iter()
            .any(|p| p.pid() == root)
    );
    assert_eq!(inspector.exists(root).await.unwrap(), Liveness::Alive);

    let report = inspector
        .kill_tree(
            shape.process.identity(),
            &KillOptions::new().reap_root(false),
        )
        .await
        .unwrap();
    assert!(report.is_complete(), "{report:?}");
    let killed: BTreeSet<Pid> = report.killed.iter().map(|k| k.identity.pid()).collect();
    assert_eq!(killed, leaves.iter().copied().chain([root]).collect());
    // The root is our unreaped child: a zombie until the guard reaps it.
    assert_eq!(inspector.exists(root).await.unwrap(), Liveness::Zombie);

    let record = tokio::task::spawn_blocking(move || tree.finish())
        .await
        .unwrap();
    support::assert_no_leftovers(&record);
}
