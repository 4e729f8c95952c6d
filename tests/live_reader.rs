#![cfg(target_os = "linux")]
//! The reader against live processes, cross-checked with the `procfs` crate
//! and `ps`. Every process a test starts is owned by a [`SpawnedTree`] and is
//! killed and reaped before the test ends.

mod support;

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use proctrack::{Cwd, Error, Liveness, Pid, ProcessInfo, State, SystemSource};
use support::{SpawnedTree, assert_no_leftovers};

/// A non-UTF-8 argument.
const NOT_UTF8: &[u8] = b"\xffproctrack\xfe arg";

/// The root: prints its member line, starts two children, blocks on stdin.
/// Background jobs get /dev/null as stdin, hence the `3<&0` dance.
const ROOT: &str = "exec 3<&0; echo member $$ $0; \
    sh -c \"$CHILD\" proctrack-a 'a (x) y' \"$1\" <&3 & \
    sh -c \"$CHILD\" proctrack-b \"$2\" --flag=b <&3 & read _";
/// A child: its member line, two grandchildren, blocks on stdin.
const CHILD: &str = "exec 3<&0; echo member $$ $0; \
    sh -c \"$LEAF\" \"$0-1\" \"leaf of $0\" <&3 & \
    sh -c \"$LEAF\" \"$0-2\" \"$1\" <&3 & read _";
/// A grandchild.
const LEAF: &str = "echo member $$ $0; read _";

/// One member as the scripts above build it.
struct Expected {
    parent: &'static str,
    args: Vec<OsString>,
}

fn os(bytes: &[u8]) -> OsString {
    OsStr::from_bytes(bytes).to_os_string()
}

fn expected_tree() -> HashMap<&'static str, Expected> {
    let root_arg = b"root arg  with spaces";
    let sh = |script: &str, rest: &[&[u8]]| {
        let mut args = vec![os(b"sh"), os(b"-c"), os(script.as_bytes())];
        args.extend(rest.iter().map(|a| os(a)));
        args
    };
    HashMap::from([
        (
            "proctrack-root",
            Expected {
                parent: "",
                args: sh(ROOT, &[b"proctrack-root", root_arg, NOT_UTF8]),
            },
        ),
        (
            "proctrack-a",
            Expected {
                parent: "proctrack-root",
                args: sh(CHILD, &[b"proctrack-a", b"a (x) y", root_arg]),
            },
        ),
        (
            "proctrack-b",
            Expected {
                parent: "proctrack-root",
                args: sh(CHILD, &[b"proctrack-b", NOT_UTF8, b"--flag=b"]),
            },
        ),
        (
            "proctrack-a-1",
            Expected {
                parent: "proctrack-a",
                args: sh(LEAF, &[b"proctrack-a-1", b"leaf of proctrack-a"]),
            },
        ),
        (
            "proctrack-a-2",
            Expected {
                parent: "proctrack-a",
                args: sh(LEAF, &[b"proctrack-a-2", b"a (x) y"]),
            },
        ),
        (
            "proctrack-b-1",
            Expected {
                parent: "proctrack-b",
                args: sh(LEAF, &[b"proctrack-b-1", b"leaf of proctrack-b"]),
            },
        ),
        (
            "proctrack-b-2",
            Expected {
                parent: "proctrack-b",
                args: sh(LEAF, &[b"proctrack-b-2", NOT_UTF8]),
            },
        ),
    ])
}

/// Spawns the tree above in `dir` and waits until all seven members have
/// printed their line (each prints after its own exec, so its command line is
/// final). Returns the guard and name -> pid.
fn spawn_tree(dir: &Path) -> (SpawnedTree, HashMap<String, Pid>) {
    let mut tree = SpawnedTree::spawn(
        Command::new("sh")
            .arg("-c")
            .arg(ROOT)
            .arg("proctrack-root")
            .arg("root arg  with spaces")
            .arg(OsStr::from_bytes(NOT_UTF8))
            .env("CHILD", CHILD)
            .env("LEAF", LEAF)
            .current_dir(dir)
            .stdin(Stdio::piped()),
    );
    let mut pids = HashMap::new();
    for line in tree.read_lines(7) {
        let mut words = line.split(' ');
        assert_eq!(words.next(), Some("member"), "unexpected line {line:?}");
        let pid: Pid = words.next().expect("pid").parse().expect("pid");
        let name = words.next().expect("name").to_string();
        assert!(
            pids.insert(name, pid).is_none(),
            "name printed twice: {line:?}"
        );
    }
    (tree, pids)
}

/// Reads `pid` with proctrack, then with procfs, then with proctrack again,
/// until both proctrack reads agree (a member may still be running its last
/// few instructions before blocking; a blocked one never changes). No sleep:
/// the loop ends as soon as the process is blocked.
fn stable_read(pid: Pid) -> (ProcessInfo, procfs::process::Stat) {
    for _ in 0..100_000 {
        let before = proctrack::process(pid).expect("proctrack read");
        let stat = procfs::process::Process::new(pid.as_raw())
            .and_then(|p| p.stat())
            .expect("procfs read");
        let after = proctrack::process(pid).expect("proctrack read");
        if before == after {
            return (after, stat);
        }
        std::thread::yield_now();
    }
    panic!("process {pid} never held still");
}

/// What `ps` prints in the C locale for these arguments: joined by spaces,
/// every byte outside printable ASCII shown as `?`.
fn ps_rendering<'a>(args: impl Iterator<Item = &'a OsStr>) -> String {
    let joined: Vec<u8> = args
        .collect::<Vec<_>>()
        .join(OsStr::new(" "))
        .into_encoded_bytes();
    let text: String = joined
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect();
    text.trim_end().to_string()
}

/// pid -> (ppid, args) from `ps -ww -eo pid=,ppid=,args=` in the C locale.
fn ps_snapshot() -> HashMap<Pid, (Option<Pid>, String)> {
    let output = Command::new("ps")
        .args(["-ww", "-eo", "pid=,ppid=,args="])
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .expect("run ps");
    assert!(output.status.success(), "ps failed: {output:?}");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        let (pid, rest) = line.split_once(' ').expect("pid column");
        let rest = rest.trim_start();
        let (ppid, args) = rest.split_once(' ').unwrap_or((rest, ""));
        let pid: Pid = pid.parse().expect("ps pid");
        let ppid = ppid.parse::<Pid>().ok();
        out.insert(pid, (ppid, args.trim_end().to_string()));
    }
    out
}

fn real_tempdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    // The kernel reports the resolved path.
    let path = dir.path().canonicalize().expect("canonicalize");
    (dir, path)
}

#[test]
fn tree_matches_procfs_and_ps() {
    let (_dir, cwd) = real_tempdir();
    let (mut tree, pids) = spawn_tree(&cwd);
    let expected = expected_tree();
    let page_size = rustix::param::page_size() as u64;
    let me = Pid::current();

    // Member discovery: exactly the seven, root first, in one process group.
    let members = tree.members();
    let scanned: HashSet<Pid> = members.iter().map(ProcessInfo::pid).collect();
    let printed: HashSet<Pid> = pids.values().copied().collect();
    assert_eq!(
        scanned, printed,
        "members found by scanning vs members that reported"
    );
    assert_eq!(members[0].pid(), tree.pid());
    assert_eq!(pids["proctrack-root"], tree.pid());
    for member in &members {
        assert_eq!(member.process_group(), Some(tree.pid()), "{}", member.pid());
    }

    let ps = ps_snapshot();
    for (name, want) in &expected {
        let pid = pids[*name];
        let (info, stat) = stable_read(pid);
        let want_parent = if want.parent.is_empty() {
            me
        } else {
            pids[want.parent]
        };

        // proctrack against what the scripts built.
        assert_eq!(info.pid(), pid, "{name}");
        assert_eq!(info.parent(), Some(want_parent), "{name}: parent");
        assert_eq!(info.cmdline().to_vec(), want.args, "{name}: cmdline");
        assert_eq!(info.cwd(), &Cwd::Path(cwd.clone()), "{name}: cwd");
        assert_eq!(info.name(), OsStr::new("sh"), "{name}: comm");
        assert!(!info.is_kernel_thread());
        assert_eq!(info.identity().pid(), pid);

        // proctrack against procfs.
        assert_eq!(stat.pid, pid.as_raw(), "{name}: procfs pid");
        assert_eq!(
            Some(stat.ppid),
            info.parent().map(Pid::as_raw),
            "{name}: procfs ppid"
        );
        assert_eq!(OsStr::new(&stat.comm), info.name(), "{name}: procfs comm");
        assert_eq!(
            stat.starttime,
            info.start_time().as_raw(),
            "{name}: procfs starttime"
        );
        assert_eq!(stat.rss * page_size, info.rss_bytes(), "{name}: procfs rss");
        let process = procfs::process::Process::new(pid.as_raw()).expect("procfs process");
        let all_utf8 = info.cmdline().args().all(|a| a.to_str().is_some());
        if all_utf8 {
            // procfs drops empty arguments; there are none here.
            let ours: Vec<String> = info
                .cmdline()
                .args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            assert_eq!(
                process.cmdline().expect("procfs cmdline"),
                ours,
                "{name}: procfs cmdline"
            );
        } else {
            // procfs reads cmdline into a String and gives up on these.
            assert!(
                process.cmdline().is_err(),
                "{name}: procfs read non-UTF-8 arguments?"
            );
        }
        assert_eq!(
            Some(process.cwd().expect("procfs cwd").as_path()),
            info.cwd().path(),
            "{name}: procfs cwd"
        );

        // proctrack against ps.
        let (ps_ppid, ps_args) = ps
            .get(&pid)
            .unwrap_or_else(|| panic!("{name} ({pid}) missing from ps"));
        assert_eq!(*ps_ppid, info.parent(), "{name}: ps ppid");
        assert_eq!(
            ps_args,
            &ps_rendering(info.cmdline().args()),
            "{name}: ps args"
        );

        // processes() agrees with process() on everything that cannot move.
        let listed = members
            .iter()
            .find(|m| m.pid() == pid)
            .expect("member listed");
        assert_eq!(listed.identity(), info.identity(), "{name}");
        assert_eq!(listed.parent(), info.parent(), "{name}");
        assert_eq!(listed.cmdline(), info.cmdline(), "{name}");
        assert_eq!(listed.cwd(), info.cwd(), "{name}");
    }

    let record = tree.finish();
    assert_eq!(record.members.len(), 7);
    assert_no_leftovers(&record);
}

#[test]
fn one_mebibyte_of_arguments() {
    // MAX_ARG_STRLEN is 128 KiB including the NUL: the largest argument is
    // 131071 bytes. Sizes around page boundaries catch chunked reads; the
    // empty one checks "\0\0" survives.
    let mut sizes = vec![131_071; 8];
    sizes.extend([0, 1, 4095, 4096, 4097, 65_536, 12_345]);
    let args: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            (0..len)
                .map(|j| b"abcdefghijklmnopqrstuvwxyz 0123456789"[(i * 7 + j) % 37])
                .collect()
        })
        .collect();
    let total: usize = args.iter().map(|a| a.len() + 1).sum();
    assert!(total >= 1 << 20, "only {total} bytes of arguments");

    // sh ignores its positional parameters. Wait for its `ready`: spawn()
    // returns once the exec has replaced the memory map, but the kernel sets
    // the argument area's bounds a little later, and until then cmdline reads
    // empty.
    let mut tree = SpawnedTree::spawn(
        Command::new("sh")
            .args(["-c", "echo ready; read _", "big-args"])
            .args(args.iter().map(|a| OsStr::from_bytes(a)))
            .stdin(Stdio::piped()),
    );
    tree.wait_ready();
    let mut want: Vec<OsString> = ["sh", "-c", "echo ready; read _", "big-args"]
        .map(OsString::from)
        .to_vec();
    want.extend(args.iter().map(|a| os(a)));

    let mut reader = SystemSource::open().expect("open /proc");
    let cmdline = reader.cmdline(tree.pid()).expect("cmdline");
    let got = cmdline.to_vec();
    assert_eq!(got.len(), want.len(), "argument count");
    for (i, (got, want)) in got.iter().zip(&want).enumerate() {
        assert!(
            got == want,
            "argument {i} differs: {} vs {} bytes",
            got.len(),
            want.len()
        );
    }
    let raw_len: usize = want.iter().map(|a| a.len() + 1).sum();
    assert_eq!(cmdline.as_bytes().len(), raw_len);
    // The same through process() (pinned read) and through procfs (which
    // drops the empty argument).
    assert_eq!(
        proctrack::process(tree.pid()).expect("process").cmdline(),
        &cmdline
    );
    let procfs_args = procfs::process::Process::new(tree.pid().as_raw())
        .and_then(|p| p.cmdline())
        .expect("procfs cmdline");
    let non_empty: Vec<String> = want
        .iter()
        .filter(|a| !a.is_empty())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert!(procfs_args == non_empty, "procfs disagrees");
    // The reader does not keep a megabyte buffer around afterwards, and still reads.
    assert_eq!(reader.cmdline(tree.pid()).expect("cmdline again"), cmdline);

    let record = tree.finish();
    assert_no_leftovers(&record);
}

#[test]
fn deleted_cwd() {
    let (_dir, base) = real_tempdir();
    let doomed = base.join("doomed dir");
    std::fs::create_dir(&doomed).expect("mkdir");
    let mut tree = SpawnedTree::spawn(
        Command::new("sh")
            .args(["-c", "echo ready; read _", "in-doomed"])
            .current_dir(&doomed)
            .stdin(Stdio::piped()),
    );
    tree.wait_ready();
    let pid = tree.pid();
    assert_eq!(
        proctrack::process(pid).expect("process").cwd(),
        &Cwd::Path(doomed.clone())
    );

    std::fs::remove_dir(&doomed).expect("rmdir");
    assert_eq!(
        proctrack::process(pid).expect("process").cwd(),
        &Cwd::Deleted(doomed.clone())
    );
    assert_eq!(
        SystemSource::open()
            .and_then(|mut r| r.cwd(pid))
            .expect("cwd"),
        Cwd::Deleted(doomed.clone())
    );
    // The raw link, as procfs hands it over, carries the kernel's suffix.
    let raw = procfs::process::Process::new(pid.as_raw())
        .and_then(|p| p.cwd())
        .expect("procfs cwd");
    let mut suffixed = doomed.into_os_string();
    suffixed.push(" (deleted)");
    assert_eq!(raw.into_os_string(), suffixed);

    let record = tree.finish();
    assert_no_leftovers(&record);
}

#[test]
fn exists_alive_then_zombie_then_gone() {
    // `read _` returns at EOF and the shell exits: the child ends on its own.
    let mut tree = SpawnedTree::spawn(
        Command::new("sh")
            .args(["-c", "echo ready; read _; exit 0", "exits-on-eof"])
            .stdin(Stdio::piped()),
    );
    tree.wait_ready();
    let pid = tree.pid();
    let identity = tree.root();
    assert_eq!(proctrack::exists(pid).expect("exists"), Liveness::Alive);

    tree.close_stdin();
    tree.wait_root_exit(); // pidfd readable: exited, not reaped
    assert_eq!(proctrack::exists(pid).expect("exists"), Liveness::Zombie);
    assert_eq!(
        SystemSource::open()
            .and_then(|mut r| r.exists(pid))
            .expect("exists"),
        Liveness::Zombie
    );
    let zombie = proctrack::process(pid).expect("a zombie still reads");
    assert_eq!(zombie.identity(), identity);
    assert_eq!(zombie.state(), State::Zombie);
    assert!(zombie.cmdline().is_empty());
    assert_eq!(zombie.cwd(), &Cwd::Unknown);
    assert_eq!(zombie.rss_bytes(), 0);
    assert_eq!(zombie.parent(), Some(Pid::current()));

    let status = tree.wait_root();
    assert!(status.success(), "sh exited with {status}");
    // Gone, unless the pid was already handed to someone else (then it is
    // another process: a different identity).
    match proctrack::exists(pid).expect("exists") {
        Liveness::Gone => assert!(matches!(
            proctrack::process(pid),
            Err(Error::NotFound { .. })
        )),
        _ => assert_ne!(
            proctrack::process(pid).map(|p| p.identity()).ok(),
            Some(identity),
            "reaped but still there"
        ),
    }

    let record = tree.finish();
    assert_no_leftovers(&record);
}

#[test]
fn a_thread_id_is_not_a_process() {
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        tid_tx
            .send(rustix::thread::gettid().as_raw_nonzero().get())
            .expect("send tid");
        let _ = done_rx.recv();
    });
    let raw = tid_rx.recv().expect("tid");
    let tid = Pid::try_from(raw).expect("tid");
    assert_ne!(tid, Pid::current());
    // The trap: /proc/<tid> resolves although readdir(/proc) does not list it.
    assert!(
        Path::new("/proc")
            .join(tid.to_string())
            .join("stat")
            .exists()
    );

    assert_eq!(proctrack::exists(tid).expect("exists"), Liveness::Gone);
    assert!(matches!(proctrack::process(tid), Err(Error::NotFound { pid }) if pid == tid));
    let mut reader = SystemSource::open().expect("open /proc");
    assert!(matches!(reader.process(tid), Err(Error::NotFound { .. })));
    assert_eq!(reader.exists(tid).expect("exists"), Liveness::Gone);
    assert!(
        proctrack::SystemSource::open()
            .and_then(|mut source| source.processes())
            .expect("processes")
            .iter()
            .all(|p| p.pid() != tid)
    );

    done_tx.send(()).expect("release the thread");
    thread.join().expect("join");
}

#[test]
fn reads_ourselves() {
    let me = proctrack::process(Pid::current()).expect("read ourselves");
    assert_eq!(me.pid(), Pid::current());
    let args: Vec<OsString> = std::env::args_os().collect();
    assert_eq!(me.cmdline().to_vec(), args);
    let cwd = std::env::current_dir().expect("current_dir");
    assert_eq!(me.cwd(), &Cwd::Path(cwd));
    let parent = rustix::process::getppid().map(|p| p.as_raw_nonzero().get());
    assert_eq!(me.parent().map(Pid::as_raw), parent);
    assert!(me.threads() >= 1);
    assert!(!me.is_kernel_thread());
    assert_eq!(
        proctrack::exists(Pid::current()).expect("exists"),
        Liveness::Alive
    );
}

#[test]
fn processes_lists_the_tree_with_our_boot_id() {
    let mut tree =
        SpawnedTree::shell("exec 3<&0; sh -c 'echo $$; read _' listed-kid <&3 & echo $$; read _");
    let mut printed: Vec<Pid> = tree
        .read_lines(2)
        .iter()
        .map(|l| l.parse().expect("pid"))
        .collect();
    printed.sort();

    let mut reader = SystemSource::open().expect("open /proc");
    let boot_text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").expect("boot_id");
    assert_eq!(reader.boot_id().to_string(), boot_text.trim());
    let boot = reader.boot_id();

    for all in [
        proctrack::SystemSource::open()
            .and_then(|mut source| source.processes())
            .expect("processes"),
        reader.processes().expect("processes"),
    ] {
        assert!(
            all.iter().all(|p| p.identity().boot_id() == boot),
            "an entry with another boot id"
        );
        let find = |pid: Pid| all.iter().find(|p| p.pid() == pid);
        assert!(find(Pid::current()).is_some(), "we are not listed");
        let root = find(tree.pid()).expect("root listed");
        assert_eq!(root.parent(), Some(Pid::current()));
        let kid = printed
            .iter()
            .copied()
            .find(|&p| p != tree.pid())
            .expect("kid pid");
        assert!(printed.contains(&tree.pid()));
        let kid = find(kid).expect("kid listed");
        assert_eq!(kid.parent(), Some(tree.pid()));
        assert_eq!(
            kid.cmdline().to_vec(),
            ["sh", "-c", "echo $$; read _", "listed-kid"].map(OsString::from)
        );
        let pids: Vec<Pid> = all.iter().map(ProcessInfo::pid).collect();
        assert!(pids.is_sorted(), "processes() is not in pid order");
    }

    let record = tree.finish();
    assert_eq!(record.members.len(), 2);
    assert_no_leftovers(&record);
}

/// `uid` is the owner the kernel reports for the process, as procfs reads
/// it, and a stale identity is not answered for.
#[test]
fn uid_is_the_owner_procfs_reports() {
    use proctrack::ProcessSource;
    let mut source = SystemSource::open().expect("open");
    let me = source
        .process(Pid::current())
        .expect("ourselves")
        .identity();
    let expected = procfs::process::Process::myself()
        .expect("procfs")
        .uid()
        .expect("procfs uid");
    assert_eq!(source.uid(me).expect("uid"), Some(expected));
    let stale = proctrack::ProcessIdentity::new(
        me.boot_id(),
        me.pid(),
        proctrack::StartTime::from_raw(me.start_time().as_raw() + 1),
    );
    assert!(matches!(source.uid(stale), Err(Error::NotFound { .. })));
}
