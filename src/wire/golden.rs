//! Golden files of the JSON forms: `tests/golden/*.json`, written from
//! values built by hand (so they are the same on every machine), compared
//! byte for byte and read back. `UPDATE_GOLDEN=1 cargo test --all-features
//! golden` rewrites them after a deliberate change; review the diff.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::CommandLine;
use crate::signal::{KillReport, Killed, Refusal, Signal};
use crate::table::{ProcessTree, RefreshDiff, Reparented};
use crate::{BootId, Cwd, Error, Pid, ProcessIdentity, ProcessInfo, StartTime, State};

fn pid(raw: i32) -> Pid {
    Pid::try_from(raw).expect("test pids are valid")
}

fn identity(raw: i32, start: u64) -> ProcessIdentity {
    let boot = BootId::from_bytes([
        0x0f, 0x2c, 0x1d, 0x9e, 0x4a, 0x1b, 0x4c, 0x3d, 0x8e, 0x5f, 0x6a, 0x7b, 0x8c, 0x9d, 0x0e,
        0x1f,
    ]);
    ProcessIdentity::new(boot, pid(raw), StartTime::from_raw(start))
}

fn server() -> ProcessInfo {
    ProcessInfo::builder(identity(4242, 981_234))
        .parent(Some(pid(4100)))
        .name("node")
        .cmdline(CommandLine::from_args([
            "node",
            "server.js",
            "--port",
            "3000",
        ]))
        .cwd(Cwd::Path("/srv/app".into()))
        .state(State::Sleeping)
        .rss_bytes(73_400_320)
        .cpu_time(Duration::from_millis(1_250), Duration::from_millis(310))
        .group_and_session(Some(pid(4100)), Some(pid(4000)))
        .cpu_percent(Some(12.5))
        .threads(11)
        .build()
}

fn worker() -> ProcessInfo {
    ProcessInfo::builder(identity(4243, 981_300))
        .parent(Some(pid(4242)))
        .name("esbuild")
        .cmdline(CommandLine::from_args([
            "/srv/app/node_modules/.bin/esbuild",
            "--watch",
        ]))
        .cwd(Cwd::Path("/srv/app".into()))
        .state(State::Running)
        .rss_bytes(20_971_520)
        .cpu_time(Duration::from_millis(40), Duration::from_millis(10))
        .group_and_session(Some(pid(4100)), Some(pid(4000)))
        .threads(4)
        .build()
}

/// Not UTF-8 anywhere it can be: the name, an argument, and a removed cwd.
fn latin1() -> ProcessInfo {
    let bytes = |b: &'static [u8]| OsStr::from_bytes(b);
    ProcessInfo::builder(identity(5001, 990_000))
        .parent(Some(pid(1)))
        .name(bytes(b"caf\xe9"))
        .cmdline(CommandLine::from_args([
            bytes(b"python3"),
            bytes(b"caf\xe9.py"),
            bytes(b"ok"),
        ]))
        .cwd(Cwd::Deleted(PathBuf::from(bytes(b"/tmp/\xff old"))))
        .state(State::Stopped)
        .build()
}

/// Another user's zombie whose directory we may not read, in a state this
/// version does not know.
fn unreadable() -> ProcessInfo {
    ProcessInfo::builder(identity(6001, 1_000))
        .parent(Some(pid(1)))
        .name("postgres")
        .cwd(Cwd::NotPermitted)
        .state(State::Unknown('Q'))
        .build()
}

fn zombie() -> ProcessInfo {
    ProcessInfo::builder(identity(6002, 1_001))
        .parent(Some(pid(4242)))
        .name("sh")
        .cwd(Cwd::Unknown)
        .state(State::Zombie)
        .threads(1)
        .build()
}

fn kthread() -> ProcessInfo {
    ProcessInfo::builder(identity(2, 0))
        .name("kthreadd")
        .cwd(Cwd::Path("/".into()))
        .kernel_thread(true)
        .build()
}

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares `value`'s pretty JSON with the golden file (or writes it under
/// `UPDATE_GOLDEN=1`), and returns the file's text.
fn golden<T: serde::Serialize>(name: &str, value: &T) -> String {
    let json = serde_json::to_string_pretty(value).expect("serializes") + "\n";
    let path = golden_path(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("tests/golden");
        std::fs::write(&path, &json).expect("golden file written");
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert_eq!(
        json,
        expected,
        "{} drifted: if the change is meant, rerun with UPDATE_GOLDEN=1 and review the diff",
        path.display()
    );
    expected
}

/// `golden`, and the file reads back as the same value.
fn golden_round_trip<T>(name: &str, value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let text = golden(name, value);
    let back: T = serde_json::from_str(&text).expect("reads back");
    assert_eq!(&back, value, "{name} does not read back as written");
}

#[test]
fn golden_processes() {
    golden_round_trip("process.json", &server());
    golden_round_trip("process_not_utf8.json", &latin1());
    golden_round_trip("process_unreadable_cwd.json", &unreadable());
    golden_round_trip("process_zombie.json", &zombie());
    golden_round_trip("process_kernel_thread.json", &kthread());
}

#[test]
fn non_utf8_is_lossy_text_plus_exact_bytes() {
    let json = serde_json::to_value(latin1()).expect("serializes");
    assert_eq!(json["name"], "caf\u{fffd}");
    assert_eq!(json["name_bytes"], serde_json::json!([99, 97, 102, 0xe9]));
    assert_eq!(json["cmdline"][1], "caf\u{fffd}.py");
    assert_eq!(
        json["cmdline_bytes"][1],
        serde_json::json!(b"caf\xe9.py".to_vec())
    );
    assert_eq!(json["cwd"]["deleted"], true);
    assert!(json["cwd"]["path_bytes"].is_array());
    // UTF-8 values carry no bytes at all.
    let plain = serde_json::to_value(server()).expect("serializes");
    for field in ["name_bytes", "cmdline_bytes"] {
        assert!(plain.get(field).is_none(), "{field}");
    }
    assert!(plain["cwd"].get("path_bytes").is_none());
    assert!(plain["cwd"].get("reason").is_none());
}

#[test]
fn golden_tree() {
    let tree = ProcessTree {
        process: server(),
        children: vec![
            ProcessTree {
                process: worker(),
                children: Vec::new(),
            },
            ProcessTree {
                process: zombie(),
                children: Vec::new(),
            },
        ],
    };
    golden_round_trip("tree.json", &tree);
}

#[test]
fn golden_refresh_diff() {
    let mut diff = RefreshDiff::default();
    diff.spawned.push(worker().identity());
    diff.exited.push(identity(4300, 980_000));
    diff.execed.push(server().identity());
    diff.reparented.push(Reparented {
        identity: identity(4301, 980_100),
        from: Some(pid(4300)),
        to: Some(pid(1)),
    });
    diff.errors.push(Error::PermissionDenied {
        path: "/proc/6001/stat".into(),
    });
    golden("refresh_diff.json", &diff);
}

#[test]
fn golden_kill_report() {
    let mut report = KillReport::default();
    report.killed.push(Killed {
        identity: server().identity(),
        signal: Signal::Term,
    });
    report.killed.push(Killed {
        identity: worker().identity(),
        signal: Signal::Kill,
    });
    report.already_gone.push(zombie().identity());
    report.denied.push(unreadable().identity());
    report
        .refused
        .push((kthread().identity(), Refusal::KernelThread));
    report.settled = true;
    report.confirmed = true;
    golden_round_trip("kill_report.json", &report);
}

#[test]
fn golden_job_status() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use crate::supervisor::{Containment, JobId, JobStatus, JobUsage};

    let me = identity(4100, 900_000);
    let running = JobId::new("devtool", me, 1);
    let done = JobId::new("devtool", me, 2);
    let containment = |id: &JobId, root: i32, cgroup: bool| Containment {
        process_group: pid(root),
        subreaper: true,
        tag: format!("PROCTRACK_JOB={id}"),
        cgroup: cgroup.then(|| format!("/sys/fs/cgroup/unified/proctrack-{id}").into()),
        missing: if cgroup {
            Vec::new()
        } else {
            vec!["no cgroup: job cgroups are turned off".to_owned()]
        },
    };
    let jobs = vec![
        JobStatus {
            root: server().identity(),
            containment: containment(&running, 4242, true),
            finished: false,
            kept: false,
            exit: None,
            usage: JobUsage {
                processes: 2,
                cpu_time: Duration::from_millis(1_610),
                rss_bytes: 94_371_840,
                cgroup_memory: None,
            },
            members: vec![pid(4242), pid(4243)],
            id: running,
        },
        JobStatus {
            root: identity(4300, 990_100),
            containment: containment(&done, 4300, false),
            finished: true,
            kept: false,
            exit: Some(ExitStatus::from_raw(3 << 8)),
            usage: JobUsage::default(),
            members: Vec::new(),
            id: done,
        },
    ];
    golden("job_status.json", &jobs);
}

#[cfg(feature = "registry")]
mod registry {
    use std::time::SystemTime;

    use super::*;
    use crate::registry::entry::from_millis;
    use crate::registry::{
        EndReason, Entry, ReconcileReport, RowId, Status, StopOutcome, StopReport, StoppedRow,
    };

    fn entry(id: i64, process: &ProcessInfo, status: Status, end: Option<EndReason>) -> Entry {
        let at = |ms: i64| -> SystemTime { from_millis(1_795_000_000_000 + ms) };
        Entry {
            id: RowId::from_raw(id),
            identity: process.identity(),
            pidfs_inode: Some(1_234_567),
            owner: "build-42".into(),
            label: "dev server".into(),
            command: process.cmdline().clone(),
            cwd: process.cwd().path().map(PathBuf::from),
            process_group: process.process_group(),
            session: process.session(),
            status,
            end_reason: end,
            exit_code: None,
            kill_report: None,
            registered_at: at(0),
            updated_at: at(1_500),
            ended_at: end.map(|_| at(1_500)),
        }
    }

    #[test]
    fn golden_reconcile_report() {
        let mut report = ReconcileReport::default();
        report
            .running
            .push(entry(1, &server(), Status::Running, None));
        report
            .exited
            .push(entry(2, &worker(), Status::Exited, Some(EndReason::Gone)));
        report.pid_reused.push(entry(
            3,
            &latin1(),
            Status::Exited,
            Some(EndReason::PidReused),
        ));
        golden_round_trip("reconcile_report.json", &report);
    }

    #[test]
    fn golden_stop_report() {
        let mut kill = KillReport::default();
        kill.killed.push(Killed {
            identity: server().identity(),
            signal: Signal::Term,
        });
        kill.settled = true;
        kill.confirmed = true;
        let mut killed = entry(1, &server(), Status::Killed, Some(EndReason::Stopped));
        killed.kill_report = Some("killed 4242".into());
        let report = StopReport {
            rows: vec![
                StoppedRow {
                    entry: killed,
                    outcome: StopOutcome::Killed(kill),
                },
                StoppedRow {
                    entry: entry(2, &worker(), Status::Killed, Some(EndReason::Stopped)),
                    outcome: StopOutcome::KilledWithTree(RowId::from_raw(1)),
                },
                StoppedRow {
                    entry: entry(3, &zombie(), Status::Exited, Some(EndReason::Gone)),
                    outcome: StopOutcome::Ended,
                },
                StoppedRow {
                    entry: entry(4, &kthread(), Status::Running, None),
                    outcome: StopOutcome::Refused(Refusal::KernelThread),
                },
            ],
        };
        golden_round_trip("stop_report.json", &report);
    }
}
