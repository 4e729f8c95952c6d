//! Model-based test of the incremental table: random fork, exit, exec,
//! reparent, chdir, zombie and pid-reuse steps are applied to a simulated /proc
//! (a directory this test rewrites); after every step the incrementally
//! refreshed table must equal one built from scratch, and both must equal the
//! model.
#![cfg(target_os = "linux")]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use proctrack::table::{CwdRefresh, ProcessTable, TableOptions};
use proctrack::{Pid, ProcessIdentity, ProcessInfo, SystemSource};
use proptest::prelude::*;

/// Pids come from a small pool so that reuse happens often.
const PID_POOL: i32 = 40;

#[derive(Clone, Debug)]
struct SimProcess {
    ppid: i32,
    start: u64,
    comm: Vec<u8>,
    cmdline: Vec<u8>,
    cwd: String,
    code: u64,
    zombie: bool,
    utime: u64,
}

#[derive(Clone, Debug)]
enum Step {
    Fork {
        parent: usize,
    },
    Exit {
        victim: usize,
        zombie_first: bool,
    },
    Exec {
        target: usize,
        program: u8,
    },
    /// The middle of execve: new name, no arguments or text segment yet.
    ExecBegin {
        target: usize,
        program: u8,
    },
    Reparent {
        target: usize,
        to: usize,
    },
    Chdir {
        target: usize,
        dir: u8,
    },
    Reuse {
        victim: usize,
    },
    Tick {
        target: usize,
        ticks: u16,
    },
    Rename {
        target: usize,
        program: u8,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => any::<usize>().prop_map(|parent| Step::Fork { parent }),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(victim, zombie_first)| Step::Exit { victim, zombie_first }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(target, program)| Step::Exec { target, program }),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(target, program)| Step::ExecBegin { target, program }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(target, to)| Step::Reparent { target, to }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(target, dir)| Step::Chdir { target, dir }),
        2 => any::<usize>().prop_map(|victim| Step::Reuse { victim }),
        2 => (any::<usize>(), any::<u16>()).prop_map(|(target, ticks)| Step::Tick { target, ticks }),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(target, program)| Step::Rename { target, program }),
    ]
}

struct Sim {
    root: PathBuf,
    procs: BTreeMap<i32, SimProcess>,
    clock: u64,
}

impl Sim {
    fn new(root: &Path) -> Sim {
        fs::create_dir_all(root.join("sys/kernel/random")).unwrap();
        fs::write(
            root.join("sys/kernel/random/boot_id"),
            "6f1c7b1e-2c4d-4e5f-8a9b-0c1d2e3f4a5b\n",
        )
        .unwrap();
        let mut procs = BTreeMap::new();
        procs.insert(
            1,
            SimProcess {
                ppid: 0,
                start: 1,
                comm: b"init".to_vec(),
                cmdline: b"/sbin/init\0".to_vec(),
                cwd: "/".into(),
                code: 0x40_0000,
                zombie: false,
                utime: 0,
            },
        );
        Sim {
            root: root.to_path_buf(),
            procs,
            clock: 10,
        }
    }

    fn pick(&self, i: usize) -> i32 {
        let pids: Vec<i32> = self.procs.keys().copied().collect();
        pids[i % pids.len()]
    }

    /// A live, non-init process, if any.
    fn pick_other(&self, i: usize) -> Option<i32> {
        let pids: Vec<i32> = self
            .procs
            .iter()
            .filter(|(p, s)| **p != 1 && !s.zombie)
            .map(|(&p, _)| p)
            .collect();
        (!pids.is_empty()).then(|| pids[i % pids.len()])
    }

    fn free_pid(&self, hint: usize) -> Option<i32> {
        (0..PID_POOL)
            .map(|k| 2 + ((hint % PID_POOL as usize) as i32 + k) % (PID_POOL - 1))
            .find(|p| !self.procs.contains_key(p))
    }

    fn fork(&mut self, parent: i32, hint: usize) {
        let Some(pid) = self.free_pid(hint) else {
            return;
        };
        let Some(p) = self.procs.get(&parent).filter(|p| !p.zombie).cloned() else {
            return;
        };
        self.clock += 1;
        self.procs.insert(
            pid,
            SimProcess {
                ppid: parent,
                start: self.clock,
                utime: 0,
                ..p
            },
        );
    }

    fn exit(&mut self, pid: i32, zombie_first: bool) {
        let already_zombie = self.procs.get(&pid).is_some_and(|p| p.zombie);
        if zombie_first && !already_zombie {
            if let Some(p) = self.procs.get_mut(&pid) {
                p.zombie = true;
                p.cmdline.clear();
                p.code = 0;
            }
        } else {
            self.procs.remove(&pid);
        }
        // The kernel reparents children to init at exit (not at reaping).
        for p in self.procs.values_mut() {
            if p.ppid == pid {
                p.ppid = 1;
            }
        }
    }

    fn apply(&mut self, step: &Step, with_chdir: bool) {
        match *step {
            Step::Fork { parent } => self.fork(self.pick(parent), parent),
            Step::Exit {
                victim,
                zombie_first,
            } => {
                if let Some(pid) = self.pick_other(victim).or_else(|| {
                    // Zombies can be reaped too.
                    self.procs
                        .iter()
                        .find(|(_, p)| p.zombie)
                        .map(|(&pid, _)| pid)
                }) {
                    self.exit(pid, zombie_first);
                }
            }
            Step::Exec { target, program } => {
                if let Some(pid) = self.pick_other(target) {
                    let p = self.procs.get_mut(&pid).unwrap();
                    p.comm = format!("prog{program}").into_bytes();
                    p.cmdline = format!("/bin/prog{program}\0--flag\0\u{fffd}x\0").into_bytes();
                    p.code = p.code.wrapping_add(0x1000 * (u64::from(program) + 1));
                }
            }
            Step::ExecBegin { target, program } => {
                if let Some(pid) = self.pick_other(target) {
                    let p = self.procs.get_mut(&pid).unwrap();
                    p.comm = format!("prog{program}").into_bytes();
                    p.cmdline.clear();
                    p.code = 0;
                }
            }
            Step::Rename { target, program } => {
                if let Some(pid) = self.pick_other(target) {
                    // PR_SET_NAME: a new name, same program.
                    self.procs.get_mut(&pid).unwrap().comm =
                        format!("a) b\nc) {program}").into_bytes();
                }
            }
            Step::Reparent { target, to } => {
                if let (Some(pid), Some(to)) = (self.pick_other(target), self.pick_other(to)) {
                    let to_start = self.procs[&to].start;
                    // A real new parent (a subreaper) is older than the child.
                    if pid != to && to_start < self.procs[&pid].start {
                        self.procs.get_mut(&pid).unwrap().ppid = to;
                    }
                }
            }
            Step::Chdir { target, dir } => {
                if with_chdir && let Some(pid) = self.pick_other(target) {
                    self.procs.get_mut(&pid).unwrap().cwd = format!("/wt/ab{}", dir % 4);
                }
            }
            Step::Reuse { victim } => {
                if let Some(pid) = self.pick_other(victim) {
                    let parent = self.procs[&pid].ppid;
                    self.exit(pid, false);
                    // The same pid, at once, for a new process.
                    if let Some(p) = self.procs.get(&parent).or(self.procs.get(&1)).cloned() {
                        self.clock += 1;
                        let ppid = if self.procs.contains_key(&parent) {
                            parent
                        } else {
                            1
                        };
                        self.procs.insert(
                            pid,
                            SimProcess {
                                ppid,
                                start: self.clock,
                                utime: 0,
                                ..p
                            },
                        );
                    }
                }
            }
            Step::Tick { target, ticks } => {
                let pid = self.pick(target);
                self.procs.get_mut(&pid).unwrap().utime += u64::from(ticks);
            }
        }
    }

    /// Rewrites the simulated /proc to match the model.
    fn write(&self) {
        for entry in fs::read_dir(&self.root).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            if let Ok(pid) = name.parse::<i32>()
                && !self.procs.contains_key(&pid)
            {
                fs::remove_dir_all(entry.path()).unwrap();
            }
        }
        for (&pid, p) in &self.procs {
            let dir = self.root.join(pid.to_string());
            fs::create_dir_all(&dir).unwrap();
            let state = if p.zombie { 'Z' } else { 'S' };
            let mut stat = format!("{pid} (").into_bytes();
            stat.extend_from_slice(&p.comm);
            stat.extend_from_slice(
                format!(
                    ") {state} {} {pid} {pid} 0 -1 4194560 0 0 0 0 {} 0 0 0 20 0 1 0 {} 1000000 {} \
                     18446744073709551615 {} {} 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n",
                    p.ppid,
                    p.utime,
                    p.start,
                    if p.zombie { 0 } else { 100 },
                    p.code,
                    if p.code == 0 { 0 } else { p.code + 0x800 },
                )
                .as_bytes(),
            );
            fs::write(dir.join("stat"), stat).unwrap();
            fs::write(dir.join("cmdline"), &p.cmdline).unwrap();
            let link = dir.join("cwd");
            let _ = fs::remove_file(&link);
            if !p.zombie {
                std::os::unix::fs::symlink(&p.cwd, &link).unwrap();
            }
        }
    }
}

/// One row as the queries see it: the process, its trusted parent, its
/// children, its descendants (sorted) and its ancestors.
type RowView = (ProcessInfo, Option<Pid>, Vec<Pid>, Vec<Pid>, Vec<Pid>);

/// `info` as read, without its CPU%: a measurement between two samples, which
/// an incremental table has and a fresh one cannot.
fn without_cpu_percent(info: &ProcessInfo) -> ProcessInfo {
    ProcessInfo::builder(info.identity())
        .parent(info.parent())
        .name(info.name())
        .cmdline(info.cmdline().clone())
        .cwd(info.cwd().clone())
        .state(info.state())
        .rss_bytes(info.rss_bytes())
        .cpu_time(info.user_time(), info.system_time())
        .group_and_session(info.process_group(), info.session())
        .threads(info.threads())
        .kernel_thread(info.is_kernel_thread())
        .build()
}

/// The table's content in a comparable form.
fn snapshot(table: &ProcessTable<SystemSource>) -> (Vec<RowView>, Vec<Pid>) {
    let pids = |infos: Vec<&ProcessInfo>| -> Vec<Pid> { infos.iter().map(|p| p.pid()).collect() };
    let mut rows: Vec<RowView> = table
        .iter()
        .map(|info| {
            let pid = info.pid();
            let parent = table.parent(pid).map(ProcessInfo::pid);
            let mut descendants = pids(table.descendants(pid));
            descendants.sort_unstable();
            (
                without_cpu_percent(info),
                parent,
                pids(table.children(pid)),
                descendants,
                pids(table.ancestors(pid)),
            )
        })
        .collect();
    rows.sort_by_key(|row| row.0.pid());
    (rows, pids(table.roots()))
}

fn check(steps: &[Step], cwd_refresh: CwdRefresh) -> Result<(), TestCaseError> {
    // tmpfs where there is one: the test rewrites thousands of small files.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .unwrap();
    let mut sim = Sim::new(dir.path());
    sim.write();
    let options = TableOptions::default().cwd_refresh(cwd_refresh);
    let mut table =
        ProcessTable::with_source(SystemSource::open_root(dir.path()).unwrap(), options).unwrap();
    let with_chdir = cwd_refresh == CwdRefresh::EveryRefresh;
    for step in steps {
        let before: BTreeMap<i32, u64> = sim.procs.iter().map(|(&p, s)| (p, s.start)).collect();
        sim.apply(step, with_chdir);
        sim.write();
        let diff = table.refresh().unwrap();
        prop_assert!(diff.errors.is_empty(), "errors: {:?}", diff.errors);

        let fresh =
            ProcessTable::with_source(SystemSource::open_root(dir.path()).unwrap(), options)
                .unwrap();
        prop_assert_eq!(snapshot(&table), snapshot(&fresh), "after {:?}", step);

        // Against the model itself.
        prop_assert_eq!(table.len(), sim.procs.len());
        for (&pid, p) in &sim.procs {
            let info = table.get(Pid::try_from(pid).unwrap()).unwrap();
            prop_assert_eq!(
                info.parent().map(Pid::as_raw),
                (p.ppid > 0).then_some(p.ppid)
            );
            prop_assert_eq!(
                std::os::unix::ffi::OsStrExt::as_bytes(info.name()),
                &p.comm[..]
            );
            prop_assert_eq!(info.cmdline().as_bytes(), &p.cmdline[..]);
            prop_assert_eq!(info.start_time().as_raw(), p.start);
            if !p.zombie {
                prop_assert_eq!(info.cwd().path(), Some(Path::new(&p.cwd)));
            }
        }

        // The diff names exactly the identities that came and went.
        let after: BTreeMap<i32, u64> = sim.procs.iter().map(|(&p, s)| (p, s.start)).collect();
        let ids = |m: &BTreeMap<i32, u64>, other: &BTreeMap<i32, u64>| -> Vec<(i32, u64)> {
            m.iter()
                .filter(|(p, s)| other.get(p) != Some(s))
                .map(|(&p, &s)| (p, s))
                .collect()
        };
        let mut spawned: Vec<(i32, u64)> = diff.spawned.iter().map(raw).collect();
        let mut exited: Vec<(i32, u64)> = diff.exited.iter().map(raw).collect();
        spawned.sort_unstable();
        exited.sort_unstable();
        prop_assert_eq!(spawned, ids(&after, &before));
        prop_assert_eq!(exited, ids(&before, &after));
    }
    Ok(())
}

fn raw(identity: &ProcessIdentity) -> (i32, u64) {
    (identity.pid().as_raw(), identity.start_time().as_raw())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn incremental_equals_from_scratch_cwd_every_refresh(steps in proptest::collection::vec(step(), 1..40)) {
        check(&steps, CwdRefresh::EveryRefresh)?;
    }

    #[test]
    fn incremental_equals_from_scratch_cwd_on_exec(steps in proptest::collection::vec(step(), 1..40)) {
        check(&steps, CwdRefresh::OnSpawnAndExec)?;
    }
}
