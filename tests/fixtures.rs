//! The reader on real `/proc` captures of hostile processes (`fixtures/proc`,
//! made by `fixtures/capture.sh`; `fixtures/README.md` says which pid is which
//! case), then on copies of them corrupted in every way we could think of.
//!
//! Every expected value below was read off the captured files. After a re-run
//! of capture.sh, update the `captured` module (pids, boot id, temporary
//! directory) and the start times and rss pages in `expected()`.
#![cfg(target_os = "linux")]

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use proctrack::CommandLine;
use proctrack::{
    BootId, Cwd, Error, Liveness, ParseError, Pid, ProcessIdentity, ProcessInfo, ProcessSource,
    StartTime, State, SystemSource,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// What capture.sh captured (kernel 6.18.44, x86_64).
mod captured {
    /// The temporary directory of the run: the cwd of every process it started.
    pub const TMP: &str = "/tmp/proctrack-capture.StvXpl";
    pub const BOOT_ID: &str = "a12bf8bd-6958-419c-94fd-540c2575ff97";

    pub const KTHREADD: u32 = 2;
    /// `kworker/R-mm_percpu_wq`: a kernel thread named with more than 15 bytes.
    pub const KWORKER: u32 = 13;
    /// comm `a) b (c`.
    pub const COMM_PARENS: u32 = 1758;
    /// comm `a) b\nc) Z 9`: a newline and a fake ") Z 9" inside the name.
    pub const COMM_NEWLINE: u32 = 1759;
    /// The perl that forked the zombie and never reaped it.
    pub const ZOMBIE_PARENT: u32 = 1760;
    /// argv[0] `\xff\xfe` and more arguments that are not UTF-8.
    pub const NON_UTF8: u32 = 1761;
    /// A sleep whose cwd was removed.
    pub const DELETED_CWD: u32 = 1763;
    pub const ZOMBIE: u32 = 1766;
    pub const TREE_TOP: u32 = 1768;
    pub const TREE_MID: u32 = 1772;
    pub const TREE_LEAF: u32 = 1773;

    /// Every captured pid, ascending.
    pub const ALL: [u32; 11] = [
        KTHREADD,
        KWORKER,
        COMM_PARENS,
        COMM_NEWLINE,
        ZOMBIE_PARENT,
        NON_UTF8,
        DELETED_CWD,
        ZOMBIE,
        TREE_TOP,
        TREE_MID,
        TREE_LEAF,
    ];

    /// The capture script's own bash: the parent of every process it started
    /// directly. It is not in the fixture.
    pub const CAPTURER: u32 = 1743;
    /// Process group and session of everything the script started.
    pub const PGRP: u32 = 1688;
    pub const SESSION: u32 = 7093;

    /// The perl programs, as they appear in the command lines.
    pub const PERL_RENAME: &str = r#"require "syscall.ph"; my $name = "a) b\nc) Z 9"; syscall(&SYS_prctl, 15, $name) == 0 or die $!; sleep 1000 while 1"#;
    pub const PERL_ZOMBIE: &str = r#"my $kid; $SIG{TERM} = sub { waitpid($kid, 0) if $kid; exit 0 }; $kid = fork() // die $!; if (!$kid) { $0 = "zombie"; exit 0 } sleep 1000 while 1"#;
    pub const TREE_TOP_SCRIPT: &str = r#""$1" -c "\"\$1\" 1000; :" tree-mid "$2"; :"#;
    pub const TREE_MID_SCRIPT: &str = r#""$1" 1000; :"#;
}

use captured::*;

fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/proc")
}

fn reader() -> SystemSource {
    SystemSource::open_root(fixture_root()).expect("the fixture root opens")
}

fn pid(raw: u32) -> Pid {
    Pid::try_from(raw).expect("a valid pid")
}

fn tmp(leaf: &str) -> PathBuf {
    Path::new(TMP).join(leaf)
}

fn boot_id() -> BootId {
    BOOT_ID.parse().expect("a boot id")
}

fn pages(count: u64) -> u64 {
    count * rustix::param::page_size() as u64
}

fn ticks(count: u64) -> Duration {
    let hz = rustix::param::clock_ticks_per_second();
    Duration::from_nanos(count * 1_000_000_000 / hz)
}

fn args(list: &[&[u8]]) -> CommandLine {
    CommandLine::from_args(list.iter().map(|arg| OsStr::from_bytes(arg)))
}

/// A process the capture script started: same parent, group, session; one
/// thread; sleeping; in the run's temporary directory; no CPU time.
fn started(
    raw: u32,
    start: u64,
    name: &str,
    rss_pages: u64,
    cmdline: CommandLine,
) -> proctrack::ProcessInfoBuilder {
    ProcessInfo::builder(ProcessIdentity::new(
        boot_id(),
        pid(raw),
        StartTime::from_raw(start),
    ))
    .parent(Some(pid(CAPTURER)))
    .name(name)
    .cmdline(cmdline)
    .cwd(Cwd::Path(PathBuf::from(TMP)))
    .state(State::Sleeping)
    .rss_bytes(pages(rss_pages))
    .group_and_session(Some(pid(PGRP)), Some(pid(SESSION)))
    .threads(1)
}

fn kernel_thread(raw: u32, name: &str, parent: Option<Pid>, state: State) -> ProcessInfo {
    ProcessInfo::builder(ProcessIdentity::new(
        boot_id(),
        pid(raw),
        StartTime::from_raw(25),
    ))
    .parent(parent)
    .name(name)
    .cwd(Cwd::Path("/".into()))
    .state(state)
    .threads(1)
    .kernel_thread(true)
    .build()
}

/// Everything each captured process should read as, by pid.
fn expected(raw: u32) -> ProcessInfo {
    let tmp_arg = |leaf: &str| tmp(leaf).into_os_string().into_vec();
    match raw {
        KTHREADD => kernel_thread(KTHREADD, "kthreadd", None, State::Sleeping),
        KWORKER => kernel_thread(
            KWORKER,
            "kworker/R-mm_percpu_wq",
            Some(pid(KTHREADD)),
            State::Idle,
        ),
        COMM_PARENS => started(
            COMM_PARENS,
            305_458,
            "a) b (c",
            391,
            args(&[&tmp_arg("a) b (c"), b"1000"]),
        )
        .build(),
        COMM_NEWLINE => started(
            COMM_NEWLINE,
            305_458,
            "a) b\nc) Z 9",
            2076,
            args(&[b"perl", b"-e", PERL_RENAME.as_bytes()]),
        )
        .cpu_time(ticks(1), Duration::ZERO)
        .build(),
        ZOMBIE_PARENT => started(
            ZOMBIE_PARENT,
            305_458,
            "perl",
            1182,
            args(&[b"perl", b"-e", PERL_ZOMBIE.as_bytes()]),
        )
        .build(),
        NON_UTF8 => started(
            NON_UTF8,
            305_458,
            "perl",
            1231,
            args(&[
                b"\xff\xfe",
                b"-e",
                b"sleep 1000 while 1",
                b"",
                b"caf\xc3\xa9",
                b"\xc3(",
                b"\x80",
            ]),
        )
        .build(),
        DELETED_CWD => started(
            DELETED_CWD,
            305_459,
            "sleep",
            411,
            args(&[b"sleep", b"1000"]),
        )
        .cwd(Cwd::Deleted(tmp("gone")))
        .build(),
        ZOMBIE => started(ZOMBIE, 305_459, "zombie", 0, CommandLine::default())
            .parent(Some(pid(ZOMBIE_PARENT)))
            .state(State::Zombie)
            .cwd(Cwd::Unknown)
            .build(),
        TREE_TOP => started(
            TREE_TOP,
            305_459,
            "tree-top",
            405,
            args(&[
                &tmp_arg("tree-top"),
                b"-c",
                TREE_TOP_SCRIPT.as_bytes(),
                b"tree-top",
                &tmp_arg("tree-mid"),
                &tmp_arg("tree-leaf"),
            ]),
        )
        .build(),
        TREE_MID => started(
            TREE_MID,
            305_460,
            "tree-mid",
            387,
            args(&[
                &tmp_arg("tree-mid"),
                b"-c",
                TREE_MID_SCRIPT.as_bytes(),
                b"tree-mid",
                &tmp_arg("tree-leaf"),
            ]),
        )
        .parent(Some(pid(TREE_TOP)))
        .build(),
        TREE_LEAF => started(
            TREE_LEAF,
            305_460,
            "tree-leaf",
            412,
            args(&[&tmp_arg("tree-leaf"), b"1000"]),
        )
        .parent(Some(pid(TREE_MID)))
        .build(),
        other => panic!("pid {other} was not captured"),
    }
}

#[test]
fn opens_with_the_captured_boot_id() {
    let reader = reader();
    assert_eq!(reader.boot_id().to_string(), BOOT_ID);
    assert_eq!(reader.root(), fixture_root());
}

#[test]
fn lists_exactly_the_captured_pids_ascending() {
    let mut reader = reader();
    let mut pids = vec![pid(999)];
    reader.list_pids(&mut pids).unwrap();
    assert_eq!(pids, ALL.map(pid));
    // The same vector again: cleared and refilled, not appended to.
    reader.list_pids(&mut pids).unwrap();
    assert_eq!(pids, ALL.map(pid));
}

#[test]
fn every_process_reads_exactly_as_captured() {
    let mut reader = reader();
    for raw in ALL {
        assert_eq!(
            reader.process(pid(raw)).unwrap(),
            expected(raw),
            "pid {raw}"
        );
    }
}

#[test]
fn processes_returns_all_of_them_in_pid_order() {
    let all = reader().processes().unwrap();
    assert_eq!(all, ALL.map(expected).to_vec());
    for info in &all {
        assert_eq!(info.identity().boot_id(), boot_id());
    }
}

#[test]
fn comm_with_parentheses_and_spaces() {
    let mut reader = reader();
    let stat = reader.stat(pid(COMM_PARENS)).unwrap();
    assert_eq!(stat.comm, b"a) b (c");
    assert_eq!(
        (stat.pid, stat.state, stat.ppid),
        (COMM_PARENS as i32, b'S', CAPTURER as i32)
    );
    assert_eq!(
        (stat.starttime, stat.vsize, stat.rss),
        (305_458, 2_990_080, 391)
    );
    let info = reader.process(pid(COMM_PARENS)).unwrap();
    assert_eq!(info.name().as_bytes(), b"a) b (c");
    assert_eq!(info.state(), State::Sleeping);
    assert_eq!(info.parent(), Some(pid(CAPTURER)));
}

#[test]
fn comm_with_a_newline_and_fake_fields() {
    let mut reader = reader();
    let stat = reader.stat(pid(COMM_NEWLINE)).unwrap();
    // Only the last ')' ends the name: not Z, not ppid 9.
    assert_eq!(stat.comm, b"a) b\nc) Z 9");
    assert_eq!(
        (stat.state, stat.ppid, stat.utime),
        (b'S', CAPTURER as i32, 1)
    );
    let info = reader.process(pid(COMM_NEWLINE)).unwrap();
    assert_eq!(info.name().as_bytes(), b"a) b\nc) Z 9");
    assert_eq!(info.state(), State::Sleeping);
    assert_eq!(info.parent(), Some(pid(CAPTURER)));
    assert_eq!(info.user_time(), ticks(1));
    assert_eq!(reader.exists(pid(COMM_NEWLINE)).unwrap(), Liveness::Alive);
}

#[test]
fn kernel_threads() {
    let mut reader = reader();
    let kthreadd = reader.process(pid(KTHREADD)).unwrap();
    assert_eq!(kthreadd.name().as_bytes(), b"kthreadd");
    assert!(kthreadd.is_kernel_thread());
    assert_eq!(kthreadd.parent(), None, "ppid 0 is no parent");
    assert_eq!((kthreadd.process_group(), kthreadd.session()), (None, None));
    assert!(kthreadd.cmdline().is_empty());
    assert_eq!(kthreadd.cmdline().args().count(), 0);
    assert_eq!(kthreadd.cwd(), &Cwd::Path("/".into()));

    let kworker = reader.process(pid(KWORKER)).unwrap();
    assert_eq!(kworker.name().as_bytes(), b"kworker/R-mm_percpu_wq");
    assert!(
        kworker.name().len() > 15,
        "kernel thread names are not cut to 15 bytes"
    );
    assert!(kworker.is_kernel_thread());
    assert_eq!(kworker.state(), State::Idle);
    assert_eq!(kworker.parent(), Some(pid(KTHREADD)));
    assert!(kworker.cmdline().is_empty());

    for raw in ALL
        .into_iter()
        .filter(|&raw| raw != KTHREADD && raw != KWORKER)
    {
        assert!(
            !reader.process(pid(raw)).unwrap().is_kernel_thread(),
            "pid {raw}"
        );
    }
}

#[test]
fn zombie() {
    let mut reader = reader();
    let zombie = reader.process(pid(ZOMBIE)).unwrap();
    assert_eq!(zombie.state(), State::Zombie);
    assert_eq!(zombie.name().as_bytes(), b"zombie");
    assert_eq!(zombie.parent(), Some(pid(ZOMBIE_PARENT)));
    assert!(zombie.cmdline().is_empty());
    assert_eq!(zombie.cwd(), &Cwd::Unknown);
    assert_eq!(zombie.rss_bytes(), 0);
    assert_eq!(reader.exists(pid(ZOMBIE)).unwrap(), Liveness::Zombie);
    assert_eq!(reader.cwd(pid(ZOMBIE)).unwrap(), Cwd::Unknown);
    assert!(reader.cmdline(pid(ZOMBIE)).unwrap().is_empty());
    assert_eq!(reader.exists(pid(ZOMBIE_PARENT)).unwrap(), Liveness::Alive);
}

#[test]
fn non_utf8_arguments_round_trip_byte_for_byte() {
    let mut reader = reader();
    let cmdline = reader.cmdline(pid(NON_UTF8)).unwrap();
    assert_eq!(
        cmdline.as_bytes(),
        b"\xff\xfe\0-e\0sleep 1000 while 1\0\0caf\xc3\xa9\0\xc3(\0\x80\0"
    );
    let got: Vec<&[u8]> = cmdline.args().map(OsStr::as_bytes).collect();
    let want: [&[u8]; 7] = [
        b"\xff\xfe",
        b"-e",
        b"sleep 1000 while 1",
        b"",
        b"caf\xc3\xa9",
        b"\xc3(",
        b"\x80",
    ];
    assert_eq!(got, want);
    assert_eq!(
        cmdline.program().map(OsStr::as_bytes),
        Some(&b"\xff\xfe"[..])
    );
    // Display is lossy; the value is not.
    assert_eq!(
        cmdline.to_string(),
        "\u{fffd}\u{fffd} -e sleep 1000 while 1  café \u{fffd}( \u{fffd}"
    );
    let info = reader.process(pid(NON_UTF8)).unwrap();
    assert_eq!(info.cmdline(), &cmdline);
    assert_eq!(info.name().as_bytes(), b"perl");
}

#[test]
fn deleted_cwd() {
    let mut reader = reader();
    let deleted = Cwd::Deleted(tmp("gone"));
    assert_eq!(reader.cwd(pid(DELETED_CWD)).unwrap(), deleted);
    assert_eq!(reader.process(pid(DELETED_CWD)).unwrap().cwd(), &deleted);
    assert_eq!(
        deleted.path(),
        Some(Path::new("/tmp/proctrack-capture.StvXpl/gone"))
    );
    assert_eq!(
        reader.cwd(pid(TREE_LEAF)).unwrap(),
        Cwd::Path(PathBuf::from(TMP))
    );
}

#[test]
fn three_level_tree() {
    let all = reader().processes().unwrap();
    let find = |raw: u32| all.iter().find(|info| info.pid() == pid(raw)).unwrap();
    // Walk up from the leaf while the parent is in the fixture.
    let mut chain = vec![pid(TREE_LEAF)];
    while let Some(parent) = find(chain[chain.len() - 1].as_u32()).parent() {
        if !all.iter().any(|info| info.pid() == parent) {
            break;
        }
        chain.push(parent);
    }
    assert_eq!(chain, [TREE_LEAF, TREE_MID, TREE_TOP].map(pid));
    assert_eq!(
        find(TREE_TOP).parent(),
        Some(pid(CAPTURER)),
        "the top's parent is outside the fixture"
    );
    let names: Vec<&[u8]> = chain
        .iter()
        .map(|&p| find(p.as_u32()).name().as_bytes())
        .collect();
    assert_eq!(names, [&b"tree-leaf"[..], b"tree-mid", b"tree-top"]);
    // A parent is never younger than its child.
    for pair in chain.windows(2) {
        assert!(find(pair[1].as_u32()).start_time() <= find(pair[0].as_u32()).start_time());
    }
    // The only other edge inside the fixture: kworker -> kthreadd, zombie -> its parent.
    let inside: Vec<(u32, u32)> = all
        .iter()
        .filter_map(|info| info.parent().map(|parent| (info.pid(), parent)))
        .filter(|(_, parent)| all.iter().any(|info| info.pid() == *parent))
        .map(|(child, parent)| (child.as_u32(), parent.as_u32()))
        .collect();
    assert_eq!(
        inside,
        [
            (KWORKER, KTHREADD),
            (ZOMBIE, ZOMBIE_PARENT),
            (TREE_MID, TREE_TOP),
            (TREE_LEAF, TREE_MID)
        ]
    );
}

#[test]
fn a_pid_not_in_the_fixture_is_not_found() {
    let mut reader = reader();
    for raw in [1, 3, 1757, 32_768, i32::MAX as u32] {
        let missing = pid(raw);
        assert!(matches!(reader.process(missing), Err(Error::NotFound { pid }) if pid == missing));
        assert!(matches!(reader.stat(missing), Err(Error::NotFound { pid }) if pid == missing));
        assert!(matches!(reader.cmdline(missing), Err(Error::NotFound { pid }) if pid == missing));
        assert!(matches!(reader.cwd(missing), Err(Error::NotFound { pid }) if pid == missing));
        assert_eq!(reader.exists(missing).unwrap(), Liveness::Gone);
    }
}

// ---------------------------------------------------------------------------
// Corrupted copies of the fixture.

/// A writable copy of the fixture tree.
struct Scratch {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("proc");
        copy_tree(&fixture_root(), &root);
        Scratch { _dir: dir, root }
    }

    fn reader(&self) -> SystemSource {
        SystemSource::open_root(&self.root).unwrap()
    }

    fn file(&self, raw: u32, leaf: &str) -> PathBuf {
        self.root.join(raw.to_string()).join(leaf)
    }

    fn write(&self, raw: u32, leaf: &str, bytes: &[u8]) {
        fs::write(self.file(raw, leaf), bytes).unwrap();
    }

    fn original(raw: u32, leaf: &str) -> Vec<u8> {
        fs::read(fixture_root().join(raw.to_string()).join(leaf)).unwrap()
    }

    fn restore(&self, raw: u32, leaf: &str) {
        self.write(raw, leaf, &Scratch::original(raw, leaf));
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&source).unwrap(), &target).unwrap();
        } else if kind.is_dir() {
            copy_tree(&source, &target);
        } else {
            fs::copy(&source, &target).unwrap();
        }
    }
}

/// The error must be a parse error that names this file.
#[track_caller]
fn assert_parse_error<T: std::fmt::Debug>(result: Result<T, Error>, file: &Path) {
    match result {
        Err(Error::Parse {
            path: Some(path), ..
        }) if path == file => {}
        other => panic!(
            "expected a parse error on {}, got {other:?}",
            file.display()
        ),
    }
}

#[test]
fn the_copy_reads_like_the_fixture() {
    let scratch = Scratch::new();
    assert_eq!(
        scratch.reader().processes().unwrap(),
        ALL.map(expected).to_vec()
    );
}

#[test]
fn empty_stat_is_a_parse_error_everywhere() {
    let scratch = Scratch::new();
    let mut reader = scratch.reader();
    for raw in ALL {
        scratch.write(raw, "stat", b"");
        let file = scratch.file(raw, "stat");
        assert_parse_error(reader.stat(pid(raw)), &file);
        assert_parse_error(reader.process(pid(raw)), &file);
        assert_parse_error(reader.exists(pid(raw)), &file);
        assert_parse_error(reader.processes(), &file);
        // cmdline does not need stat.
        assert_eq!(reader.cmdline(pid(raw)).unwrap(), *expected(raw).cmdline());
        scratch.restore(raw, "stat");
    }
}

/// Offset of the space before field 27 (endcode), the last field the parser
/// needs: a stat cut at or before `offset + 1` bytes lacks it.
fn last_needed_field(stat: &[u8]) -> usize {
    let close = stat.iter().rposition(|&b| b == b')').unwrap();
    stat.iter()
        .enumerate()
        .skip(close)
        .filter(|&(_, &b)| b == b' ')
        .nth(24)
        .map(|(i, _)| i)
        .unwrap()
}

#[test]
fn every_truncation_of_every_stat() {
    let scratch = Scratch::new();
    let mut reader = scratch.reader();
    for raw in ALL {
        let stat = Scratch::original(raw, "stat");
        let whole = expected(raw);
        let needed = last_needed_field(&stat) + 1;
        let file = scratch.file(raw, "stat");
        for cut in 0..=stat.len() {
            scratch.write(raw, "stat", &stat[..cut]);
            if cut <= needed {
                assert_parse_error(reader.stat(pid(raw)), &file);
                assert_parse_error(reader.process(pid(raw)), &file);
            } else {
                // Cut inside or after endcode: everything we use is whole
                // except, at most, a shortened endcode.
                let parsed = reader.stat(pid(raw)).unwrap();
                assert_eq!(
                    (parsed.pid, parsed.comm),
                    (raw as i32, whole.name().as_bytes())
                );
                let info = reader.process(pid(raw)).unwrap();
                assert_eq!(info, whole, "pid {raw} cut at {cut}");
            }
        }
        scratch.restore(raw, "stat");
    }
}

#[test]
fn random_bytes_in_stat_never_panic() {
    let scratch = Scratch::new();
    let config = Config {
        cases: 512,
        failure_persistence: None,
        ..Config::default()
    };
    let noise = proptest::collection::vec(any::<u8>(), 0..700);
    TestRunner::new(config.clone())
        .run(
            &(prop::sample::select(ALL.to_vec()), noise),
            |(raw, bytes)| {
                scratch.write(raw, "stat", &bytes);
                let file = scratch.file(raw, "stat");
                match scratch.reader().process(pid(raw)) {
                    Ok(info) => prop_assert_eq!(info.pid(), pid(raw)),
                    Err(Error::Parse { path, .. }) => prop_assert_eq!(path, Some(file)),
                    Err(other) => prop_assert!(false, "unexpected error {:?}", other),
                }
                scratch.restore(raw, "stat");
                Ok(())
            },
        )
        .unwrap();

    // Real stat lines with a few bytes overwritten: closer to valid, so
    // deeper into the parser.
    let flips = proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8);
    let dirty = std::cell::Cell::new(KTHREADD);
    TestRunner::new(config)
        .run(
            &(prop::sample::select(ALL.to_vec()), flips),
            |(raw, flips)| {
                // A failed case returns early; its stat must not leak into the next.
                scratch.restore(dirty.replace(raw), "stat");
                let mut stat = Scratch::original(raw, "stat");
                for (at, byte) in flips {
                    let at = at.index(stat.len());
                    stat[at] = byte;
                }
                scratch.write(raw, "stat", &stat);
                let file = scratch.file(raw, "stat");
                let mut reader = scratch.reader();
                match reader.process(pid(raw)) {
                    // A flip in a field we skip, or one that still parses (another
                    // state letter, another digit): the pid itself must hold.
                    Ok(info) => prop_assert_eq!(info.pid(), pid(raw)),
                    Err(Error::Parse { path, .. }) => prop_assert_eq!(path, Some(file)),
                    Err(other) => prop_assert!(false, "unexpected error {:?}", other),
                }
                match reader.processes() {
                    Ok(all) => prop_assert_eq!(all.len(), ALL.len()),
                    Err(Error::Parse { path, .. }) => {
                        prop_assert_eq!(path, Some(scratch.file(raw, "stat")))
                    }
                    Err(other) => prop_assert!(false, "unexpected error {:?}", other),
                }
                scratch.restore(raw, "stat");
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn numbers_out_of_range_are_parse_errors() {
    let scratch = Scratch::new();
    let mut reader = scratch.reader();
    let stat = String::from_utf8(Scratch::original(TREE_LEAF, "stat")).unwrap();
    let file = scratch.file(TREE_LEAF, "stat");
    for (from, to) in [
        (" 305460 ", " 18446744073709551616 "), // starttime: u64::MAX + 1
        (" 1772 ", " 2147483648 "),             // ppid: i32::MAX + 1
        (" S ", " SS "),                        // a state of two letters
        (" 1772 ", " -0x1 "),                   // not decimal
    ] {
        assert!(stat.contains(from));
        scratch.write(TREE_LEAF, "stat", stat.replacen(from, to, 1).as_bytes());
        assert_parse_error(reader.stat(pid(TREE_LEAF)), &file);
        assert_parse_error(reader.process(pid(TREE_LEAF)), &file);
    }
}

#[test]
fn stat_naming_another_pid_is_a_parse_error() {
    let scratch = Scratch::new();
    let mut reader = scratch.reader();
    scratch.write(TREE_MID, "stat", &Scratch::original(TREE_LEAF, "stat"));
    let file = scratch.file(TREE_MID, "stat");
    match reader.process(pid(TREE_MID)) {
        Err(Error::Parse { path, source }) => {
            assert_eq!(path, Some(file.clone()));
            assert!(
                source.to_string().contains(&TREE_LEAF.to_string()),
                "{source}"
            );
            assert!(
                matches!(source, ParseError::OtherPid { found, .. } if found == TREE_LEAF as i32),
                "{source:?}"
            );
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
    assert_parse_error(reader.processes(), &file);
    // `stat` reads a file and does not check whose it is (documented).
    assert_eq!(reader.stat(pid(TREE_MID)).unwrap().pid, TREE_LEAF as i32);
}

#[test]
fn status_without_a_tgid_line() {
    let scratch = Scratch::new();
    let mut reader = scratch.reader();
    for raw in ALL {
        let status = Scratch::original(raw, "status");
        let without: Vec<u8> = status
            .split_inclusive(|&b| b == b'\n')
            .filter(|line| !line.starts_with(b"Tgid:"))
            .flatten()
            .copied()
            .collect();
        assert_eq!(
            without.len() + format!("Tgid:\t{raw}\n").len(),
            status.len()
        );
        scratch.write(raw, "status", &without);
        let file = scratch.file(raw, "status");
        assert_parse_error(reader.process(pid(raw)), &file);
        assert_parse_error(reader.exists(pid(raw)), &file);
        // Only `process` and `exists` check the thread group; `processes`
        // trusts the directory listing, which names leaders only.
        assert_eq!(reader.processes().unwrap().len(), ALL.len());
        assert_eq!(reader.stat(pid(raw)).unwrap().pid, raw as i32);

        // A Tgid that is not a number is no better.
        let mut garbled = status.clone();
        let at = status.windows(5).position(|w| w == b"Tgid:").unwrap() + 6;
        garbled[at] = b'x';
        scratch.write(raw, "status", &garbled);
        assert_parse_error(reader.process(pid(raw)), &file);
        scratch.restore(raw, "status");
    }
}

#[test]
fn status_of_a_thread_that_is_not_the_leader() {
    let scratch = Scratch::new();
    let mut reader = scratch.reader();
    let status = String::from_utf8(Scratch::original(TREE_LEAF, "status")).unwrap();
    let thread = status.replacen(
        &format!("Tgid:\t{TREE_LEAF}\n"),
        &format!("Tgid:\t{TREE_MID}\n"),
        1,
    );
    assert_ne!(thread, status);
    scratch.write(TREE_LEAF, "status", thread.as_bytes());
    assert!(
        matches!(reader.process(pid(TREE_LEAF)), Err(Error::NotFound { pid }) if pid == self::pid(TREE_LEAF))
    );
    assert_eq!(reader.exists(pid(TREE_LEAF)).unwrap(), Liveness::Gone);
}

#[test]
fn random_status_bytes_never_panic() {
    let scratch = Scratch::new();
    let config = Config {
        cases: 512,
        failure_persistence: None,
        ..Config::default()
    };
    let noise = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        // Near misses of a Tgid line.
        "(Name:\tx\n)?Tgid:[ \t]{0,2}-?[0-9]{0,12}[a-z]?\n?(Pid:\t1\n)?"
            .prop_map(String::into_bytes),
    ];
    TestRunner::new(config)
        .run(
            &(prop::sample::select(ALL.to_vec()), noise),
            |(raw, bytes)| {
                scratch.write(raw, "status", &bytes);
                match scratch.reader().process(pid(raw)) {
                    Ok(info) => prop_assert_eq!(info, expected(raw)),
                    Err(Error::NotFound { pid: missing }) => prop_assert_eq!(missing, pid(raw)),
                    Err(Error::Parse { path, .. }) => {
                        prop_assert_eq!(path, Some(scratch.file(raw, "status")))
                    }
                    Err(other) => prop_assert!(false, "unexpected error {:?}", other),
                }
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn any_cmdline_bytes_round_trip() {
    let scratch = Scratch::new();
    let config = Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    };
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        // Past the 4 KiB read buffer.
        proptest::collection::vec(any::<u8>(), 4000..20_000),
    ];
    TestRunner::new(config)
        .run(
            &(prop::sample::select(ALL.to_vec()), bytes),
            |(raw, bytes)| {
                scratch.write(raw, "cmdline", &bytes);
                let mut reader = scratch.reader();
                let cmdline = reader.cmdline(pid(raw)).unwrap();
                prop_assert_eq!(cmdline.as_bytes(), &bytes[..]);
                let info = reader.process(pid(raw)).unwrap();
                prop_assert_eq!(info.cmdline().as_bytes(), &bytes[..]);
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn files_longer_than_the_read_buffer() {
    let scratch = Scratch::new();
    let mut reader = scratch.reader();
    // A megabyte of arguments, then a stat with 20 KB of extra fields: both
    // are read whole, and the buffer shrinks back after the command line.
    let huge: Vec<u8> = (0..1 << 20)
        .map(|i| {
            if i % 1000 == 999 {
                0
            } else {
                b'a' + (i % 26) as u8
            }
        })
        .collect();
    scratch.write(TREE_LEAF, "cmdline", &huge);
    assert_eq!(
        reader.cmdline(pid(TREE_LEAF)).unwrap().as_bytes(),
        &huge[..]
    );

    let mut stat = Scratch::original(TREE_TOP, "stat");
    assert_eq!(stat.pop(), Some(b'\n'));
    stat.extend(b" 0".repeat(10_000));
    stat.push(b'\n');
    scratch.write(TREE_TOP, "stat", &stat);
    assert_eq!(reader.process(pid(TREE_TOP)).unwrap(), expected(TREE_TOP));
    assert_eq!(
        reader.process(pid(TREE_LEAF)).unwrap(),
        started(
            TREE_LEAF,
            305_460,
            "tree-leaf",
            412,
            CommandLine::from_raw(huge)
        )
        .parent(Some(pid(TREE_MID)))
        .build()
    );
}

#[test]
fn missing_files() {
    let scratch = Scratch::new();
    let mut reader = scratch.reader();
    let gone = |leaf: &str| {
        let removed = scratch.file(TREE_MID, leaf);
        fs::remove_file(&removed).unwrap();
        removed
    };
    let not_found = |result: Result<ProcessInfo, Error>| matches!(result, Err(Error::NotFound { pid }) if pid == self::pid(TREE_MID));
    let without_mid: Vec<ProcessInfo> = ALL
        .into_iter()
        .filter(|&raw| raw != TREE_MID)
        .map(expected)
        .collect();

    // No stat: the process is gone. A scan leaves it out, as it would a
    // process that exited mid-scan.
    gone("stat");
    assert!(not_found(reader.process(pid(TREE_MID))));
    assert!(matches!(
        reader.stat(pid(TREE_MID)),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(reader.exists(pid(TREE_MID)).unwrap(), Liveness::Gone);
    assert_eq!(reader.processes().unwrap(), without_mid);
    scratch.restore(TREE_MID, "stat");

    gone("cmdline");
    assert!(not_found(reader.process(pid(TREE_MID))));
    assert!(matches!(
        reader.cmdline(pid(TREE_MID)),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(reader.processes().unwrap(), without_mid);
    scratch.restore(TREE_MID, "cmdline");

    gone("status");
    assert!(not_found(reader.process(pid(TREE_MID))));
    assert_eq!(reader.exists(pid(TREE_MID)).unwrap(), Liveness::Gone);
    scratch.restore(TREE_MID, "status");

    // No cwd link (as for a zombie): the cwd is unknown, nothing else changes.
    gone("cwd");
    assert_eq!(reader.cwd(pid(TREE_MID)).unwrap(), Cwd::Unknown);
    let info = reader.process(pid(TREE_MID)).unwrap();
    assert_eq!(info.cwd(), &Cwd::Unknown);
    assert_eq!(info.cmdline(), expected(TREE_MID).cmdline());

    // A cwd that is a file, not a link: an I/O error naming it, no panic.
    fs::write(scratch.file(TREE_MID, "cwd"), b"/not/a/link").unwrap();
    match reader.cwd(pid(TREE_MID)) {
        Err(Error::Io { path, .. }) => assert_eq!(path, Some(scratch.file(TREE_MID, "cwd"))),
        other => panic!("expected an I/O error, got {other:?}"),
    }

    // The whole directory.
    fs::remove_dir_all(scratch.root.join(TREE_MID.to_string())).unwrap();
    assert!(not_found(reader.process(pid(TREE_MID))));
    assert!(matches!(
        reader.cmdline(pid(TREE_MID)),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(reader.exists(pid(TREE_MID)).unwrap(), Liveness::Gone);
    assert_eq!(reader.processes().unwrap(), without_mid);
}

#[test]
fn entries_that_are_not_pids_are_not_listed() {
    let scratch = Scratch::new();
    for name in [
        "0",
        "-1",
        "2147483648",
        "99999999999",
        "12a",
        "self",
        "thread-self",
    ] {
        fs::create_dir(scratch.root.join(name)).unwrap();
    }
    let mut reader = scratch.reader();
    let mut pids = Vec::new();
    reader.list_pids(&mut pids).unwrap();
    assert_eq!(pids, ALL.map(pid));
    assert_eq!(reader.processes().unwrap().len(), ALL.len());
}

#[test]
fn bad_boot_id() {
    let scratch = Scratch::new();
    let boot_file = scratch.root.join("sys/kernel/random/boot_id");
    for bad in [
        &b""[..],
        b"not a uuid\n",
        b"a12bf8bd-6958-419c-94fd-540c2575ff9\n",
        b"a12bf8bd_6958_419c_94fd_540c2575ff97\n",
    ] {
        fs::write(&boot_file, bad).unwrap();
        assert_parse_error(SystemSource::open_root(&scratch.root), &boot_file);
    }
    fs::remove_file(&boot_file).unwrap();
    match SystemSource::open_root(&scratch.root) {
        Err(Error::Io { path, .. }) => assert_eq!(path, Some(boot_file)),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    match SystemSource::open_root(scratch.root.join("missing")) {
        Err(Error::Io { path, .. }) => assert_eq!(path, Some(scratch.root.join("missing"))),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn environ_is_read_whole_and_a_missing_process_is_not_found() {
    let scratch = Scratch::new();
    let raw = captured::NON_UTF8;
    let pid = Pid::try_from(raw).unwrap();
    // Longer than the reader's buffer, with bytes that are not UTF-8.
    let mut environ = b"A=\xff\xfe\0".to_vec();
    environ.extend(format!("BIG={}\0", "x".repeat(10_000)).bytes());
    environ.extend(b"PROCTRACK_JOB=build-42\0");
    scratch.write(raw, "environ", &environ);
    let mut reader = scratch.reader();
    let identity = reader.read(pid).unwrap().0.identity();
    let read = reader.environ(identity).unwrap().expect("readable");
    assert_eq!(read, environ);
    assert_eq!(
        proctrack::supervisor::tag::job_of(&read),
        Some(&b"build-42"[..])
    );

    let gone = Pid::try_from(999_999).unwrap();
    let gone_identity = ProcessIdentity::new(identity.boot_id(), gone, identity.start_time());
    assert!(matches!(
        scratch.reader().environ(gone_identity),
        Err(Error::NotFound { pid }) if pid == gone
    ));
    // The pid is there, but under another start time: not this process.
    let reused = ProcessIdentity::new(identity.boot_id(), pid, StartTime::from_raw(1));
    assert!(matches!(
        reader.environ(reused),
        Err(Error::NotFound { pid: found }) if found == pid
    ));
}
