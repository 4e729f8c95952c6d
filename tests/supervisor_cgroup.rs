//! Job cgroups on a real cgroup2 tree: a job's processes stay inside however
//! they escape the process tree, a kill leaves none, the tag follows them.
//!
//! Skips (printing why) where cgroup2 is not writable; CI runs as root,
//! where it is. Tests run one at a time ([`serial`]), and each job lives in a
//! [`Running`] guard that kills its cgroup, reaps and removes it on drop,
//! also when the test fails; the serial guard then sweeps every descendant.
#![cfg(target_os = "linux")]

mod support;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use proctrack::signal::{ProcessHandle, Spawned};
use proctrack::supervisor::cgroup::{Cgroup2, JobCgroup};
use proctrack::supervisor::tag;
use proctrack::{Pid, ProcessSource, SystemSource};
use support::{HANG_GUARD, Lines, assert_no_descendants, serial, unique_marker, wait_child};

/// Our cgroup2 tree, or `None` (and why, on stderr) when we may not write
/// it. The kernel decides (the oracle makes and removes a cgroup); the
/// library's own probe must agree with it.
fn writable_cgroups() -> Option<Cgroup2> {
    let oracle = support::kernel::cgroup2_writable();
    let cgroups = match Cgroup2::locate() {
        Ok(cgroups) => cgroups,
        Err(error) => {
            assert!(
                oracle.is_err(),
                "the kernel let us make a cgroup, but locate failed: {error}"
            );
            eprintln!("skipped: {error}");
            return None;
        }
    };
    let access = cgroups.probe();
    assert_eq!(
        access.is_writable(),
        oracle.is_ok(),
        "the library's probe ({access}) disagrees with the kernel ({oracle:?})"
    );
    if let Ok(dir) = &oracle {
        assert_eq!(dir, cgroups.own_dir(), "our cgroup, as the oracle found it");
    }
    if !access.is_writable() {
        eprintln!(
            "skipped: cgroup2 at {} {access}",
            cgroups.own_dir().display()
        );
        return None;
    }
    Some(cgroups)
}

/// A job and its root child; dropping it kills the cgroup, reaps the root and
/// removes the cgroup.
struct Running {
    job: Option<JobCgroup>,
    spawned: Option<Spawned>,
}

impl Running {
    fn start(
        cgroups: &Cgroup2,
        name: &str,
        command: impl FnOnce(&JobCgroup) -> Command,
    ) -> Running {
        let job =
            JobCgroup::create(cgroups, &unique_marker(&format!("test-{name}"))).expect("create");
        assert!(
            job.path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("proctrack-test-")
        );
        let mut running = Running {
            job: Some(job),
            spawned: None,
        };
        let mut command = command(running.job());
        running.spawned = Some(
            running
                .job()
                .spawn(&mut command)
                .expect("spawn in the cgroup"),
        );
        running
    }

    fn job(&self) -> &JobCgroup {
        self.job.as_ref().expect("job")
    }

    fn lines(&mut self) -> Lines {
        let child = &mut self.spawned.as_mut().expect("spawned").child;
        Lines::new(child.stdout.take().expect("stdout piped"))
    }

    /// Reaps the root, which must have exited (it was killed).
    fn reap_root(&mut self) {
        if let Some(mut spawned) = self.spawned.take() {
            wait_child(&mut spawned.child);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            let _ = fs::write(job.path().join("cgroup.freeze"), b"0");
            if !job.kill().unwrap_or(false) {
                // No cgroup.kill on this kernel: SIGKILL each member by pid
                // (a test's own processes; nothing else is in the cgroup).
                for pid in job.members().unwrap_or_default() {
                    if let Ok(info) = proctrack::process(pid)
                        && let Ok(handle) = ProcessHandle::open(info.identity())
                    {
                        let _ = handle.signal(proctrack::signal::Signal::Kill);
                    }
                }
            }
            let _ = job.wait_empty(HANG_GUARD);
            if let Some(mut spawned) = self.spawned.take() {
                let _ = spawned.child.kill();
                let _ = spawned.child.wait();
            }
            let _ = job.remove();
        }
    }
}

#[test]
fn a_double_forked_setsid_daemon_that_closed_its_fds_stays_in_the_cgroup_and_keeps_the_tag() {
    let _serial = serial();
    let Some(cgroups) = writable_cgroups() else {
        return;
    };
    // The daemon: setsid (a new session, so out of the job's process group),
    // a second fork whose parent exits (so out of the job's tree), chdir /,
    // all fds closed.
    let script = r#"
        setsid sh -c 'sh -c "cd /; exec </dev/null >/dev/null 2>&1; exec sleep 1000" & echo $!'
        echo ready
        read _
    "#;
    let mut running = Running::start(&cgroups, "daemon", |job| {
        let mut command = job.command("sh");
        command
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        command
    });
    let mut out = running.lines();
    let daemon: Pid = out.line().parse().expect("daemon pid");
    assert_eq!(out.line(), "ready"); // the middle process has exited by now

    let info = proctrack::process(daemon).expect("the daemon runs");
    let root = running.spawned.as_ref().unwrap().handle.pid();
    assert_ne!(
        info.parent(),
        Some(root),
        "it reparented away from the job's tree"
    );
    assert_ne!(
        info.session(),
        proctrack::process(root).expect("root").session()
    );
    let members = running.job().members().expect("members");
    assert!(members.contains(&daemon), "{daemon} not in {members:?}");
    assert!(members.contains(&root));

    // The daemon may still be inside its last exec, where its environment
    // reads empty for a moment: wait until it is sleep (no event tells).
    let deadline = std::time::Instant::now() + HANG_GUARD;
    let info = loop {
        let now = proctrack::process(daemon).expect("the daemon runs");
        if now.name() == "sleep" {
            break now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon never ran sleep"
        );
        std::thread::yield_now();
    };
    let environ = SystemSource::open()
        .unwrap()
        .environ(info.identity())
        .expect("environ");
    let environ = environ.expect("our own process's environ is readable");
    assert_eq!(
        tag::job_of(&environ),
        Some(running.job().job_id().as_bytes())
    );

    let pinned = ProcessHandle::open(info.identity()).expect("pin the daemon");
    if !running.job().kill().expect("kill") {
        eprintln!("skipped: this kernel has no cgroup.kill");
        return;
    }
    assert!(running.job().wait_empty(HANG_GUARD).expect("wait_empty"));
    assert!(
        pinned.wait_timeout(HANG_GUARD).expect("wait"),
        "the daemon exited"
    );
    running.reap_root();
    let path = running.job().path().to_path_buf();
    running
        .job
        .take()
        .unwrap()
        .remove()
        .expect("remove the empty cgroup");
    assert!(!path.exists());
    drop(running);
    // The daemon was our (the subreaper's) child: the serial guard reaps it.
    support::sweep();
    assert_no_descendants();
}

/// A job of 200 sleepers and three loops that fork without pause, killed
/// while they fork: none of them is left.
fn kill_a_forking_job(name: &str) {
    let _serial = serial();
    let Some(cgroups) = writable_cgroups() else {
        return;
    };
    let script = r#"
        i=0
        while [ $i -lt 200 ]; do sleep 1000 </dev/null >/dev/null & i=$((i+1)); done
        for f in 1 2 3; do (while :; do (:) & wait $!; done) </dev/null >/dev/null & done
        echo ready
        wait
    "#;
    let mut running = Running::start(&cgroups, name, |job| {
        let mut command = job.command("sh");
        command.args(["-c", script]).stdout(Stdio::piped());
        command
    });
    let mut out = running.lines();
    assert_eq!(out.line(), "ready");

    let members = running.job().members().expect("members");
    assert!(members.len() >= 200, "{} members", members.len());
    let mut source = SystemSource::open().unwrap();
    let pinned: Vec<ProcessHandle> = members
        .iter()
        .filter_map(|&pid| source.process(pid).ok())
        .filter_map(|info| ProcessHandle::open(info.identity()).ok())
        .collect();
    assert!(pinned.len() >= 200);

    if !running.job().kill().expect("kill") {
        // Left to the kill engine, which Supervisor::stop runs first.
        eprintln!("skipped: this kernel has no cgroup.kill");
        running.job().thaw().expect("thaw");
        return;
    }
    assert!(
        running.job().wait_empty(HANG_GUARD).expect("wait_empty"),
        "the cgroup emptied"
    );
    assert_eq!(running.job().members().expect("members"), Vec::<Pid>::new());
    for handle in &pinned {
        assert!(
            handle.wait_timeout(HANG_GUARD).expect("wait"),
            "{} survived",
            handle.pid()
        );
    }
    running.reap_root();
    let path = running.job().path().to_path_buf();
    running.job.take().unwrap().remove().expect("remove");
    assert!(!path.exists());
    drop(running);
    support::sweep();
    assert_no_descendants();
}

#[test]
fn cgroup_kill_leaves_no_survivor_of_a_forking_job_of_200() {
    kill_a_forking_job("kill");
}

#[test]
fn arguments_pass_through_the_shim_intact() {
    let _serial = serial();
    let Some(cgroups) = writable_cgroups() else {
        return;
    };
    let args = [
        "%s|",
        "a b",
        "it's",
        "\"q\"",
        "$HOME",
        "*",
        "",
        "-x",
        "back\\slash",
        "new\nline",
    ];
    let mut running = Running::start(&cgroups, "args", |job| {
        let mut command = job.command("printf");
        command.args(args).stdout(Stdio::piped());
        command
    });
    let mut child = running.spawned.take().unwrap().child;
    let output = {
        use std::io::Read;
        let mut text = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut text)
            .expect("read");
        text
    };
    assert!(wait_child(&mut child).success());
    let expected: String = args[1..].iter().map(|a| format!("{a}|")).collect();
    assert_eq!(output, expected);
    assert!(running.job().wait_empty(HANG_GUARD).expect("wait_empty"));
    drop(running);
    assert_no_descendants();
}

#[test]
fn when_the_shell_cannot_enter_the_cgroup_the_command_never_runs() {
    let _serial = serial();
    let Some(cgroups) = writable_cgroups() else {
        return;
    };
    let job = JobCgroup::create(&cgroups, &unique_marker("test-gone")).expect("create");
    fs::remove_dir(job.path()).expect("remove the cgroup under the job");
    let marker = std::env::temp_dir().join(unique_marker("cgroup-ran"));
    let mut command = job.command("sh");
    command
        .arg("-c")
        .arg(r#"echo ran > "$1""#)
        .arg("sh")
        .arg(&marker)
        .stderr(Stdio::null());
    let error = job.spawn(&mut command).expect_err("the spawn fails");
    let message = error.to_string();
    assert!(
        message.contains("cgroup.procs") && message.contains("did not run"),
        "{message}"
    );
    assert!(
        !Path::new(&marker).exists(),
        "the command ran outside the cgroup"
    );
    drop(job);
    assert_no_descendants();
}

#[test]
fn a_command_not_made_for_the_job_is_refused() {
    let _serial = serial();
    let Some(cgroups) = writable_cgroups() else {
        return;
    };
    let job = JobCgroup::create(&cgroups, &unique_marker("test-refuse")).expect("create");
    let error = job.spawn(&mut Command::new("true")).expect_err("refused");
    assert!(error.to_string().contains("JobCgroup::command"), "{error}");
    let path = job.path().to_path_buf();
    drop(job); // empty: Drop removes it
    assert!(!path.exists());
}

/// Mounts `MOUNTS` tmpfs on `$1` in a private mount namespace (a
/// mountinfo of ~80 KB), replaces every cgroup2 mount with one on `$1/cg`
/// (now the last line), then runs the rest of its arguments.
const LONG_MOUNTINFO: &str = r#"
set -e
mount --make-rprivate /
dir=$1
shift
i=0
while [ $i -lt "$MOUNTS" ]; do
    mount -t tmpfs proctrack-filler "$dir"
    i=$((i + 1))
done
for point in $(awk '$9 == "cgroup2" { print $5 }' /proc/self/mountinfo); do
    umount -l "$point"
done
mkdir "$dir/cg"
mount -t cgroup2 none "$dir/cg"
exec "$@"
"#;

/// Not a test on its own: run by
/// [`locate_finds_cgroup2_past_64_kib_of_a_live_mountinfo`] inside its
/// mount namespace; prints what `Cgroup2::locate` found there.
#[test]
fn long_mountinfo_helper() {
    if std::env::var_os("PROCTRACK_MOUNTINFO_HELPER").is_none() {
        return;
    }
    let mountinfo = fs::read("/proc/self/mountinfo").expect("mountinfo");
    let before = mountinfo
        .split(|&b| b == b'\n')
        .take_while(|line| !line.windows(9).any(|w| w == b" cgroup2 "))
        .map(|line| line.len() + 1)
        .sum::<usize>();
    let located = Cgroup2::locate().expect("locate");
    // After a newline: the harness leaves its "test ... " line open.
    println!(
        "\nbytes {}\nbefore {before}\nmount {}\nready",
        mountinfo.len(),
        located.mount_point().display()
    );
}

/// A live `/proc/self/mountinfo` longer than 64 KiB whose cgroup2 mount
/// comes after the first 64 KiB: `Cgroup2::locate` finds it. Run in a
/// private mount namespace (`unshare -m`), which goes away with the helper;
/// needs root.
#[test]
fn locate_finds_cgroup2_past_64_kib_of_a_live_mountinfo() {
    let _serial = serial();
    if !rustix::process::geteuid().is_root() {
        println!("skipped: mounting needs root");
        return;
    }
    if Command::new("unshare").arg("--version").output().is_err() {
        println!("skipped: no unshare(1) here");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("this test binary");
    let mut tree = support::SpawnedTree::spawn(
        Command::new("unshare")
            .args(["-m", "sh", "-c", LONG_MOUNTINFO, "sh"])
            .arg(dir.path())
            .arg(exe)
            .args([
                "--exact",
                "long_mountinfo_helper",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("MOUNTS", "1000")
            .env("PROCTRACK_MOUNTINFO_HELPER", "1")
            .stdin(Stdio::null()),
    );
    let lines = tree.wait_ready();
    let value = |key: &str| -> String {
        lines
            .iter()
            .find_map(|line| line.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key:?} line in {lines:?}"))
            .to_owned()
    };
    let bytes: usize = value("bytes ").parse().expect("bytes");
    let before: usize = value("before ").parse().expect("before");
    println!("mountinfo of {bytes} bytes, cgroup2 after {before}");
    assert!(
        before > 64 * 1024,
        "the cgroup2 line starts at byte {before}"
    );
    assert_eq!(Path::new(&value("mount ")), dir.path().join("cg"));
    let status = tree.wait_root();
    assert!(status.success(), "{status:?}");
    tree.finish();
    assert_no_descendants();
}
