//! The table's memory per process, measured with a counting allocator on a
//! simulated /proc of 2000 processes: at most 256 bytes per process beyond the
//! bytes of its strings (name, arguments, cwd).
#![cfg(target_os = "linux")]

use std::alloc::System;
use std::fs;
use std::path::Path;

use proctrack::SystemSource;
use proctrack::table::{ProcessTable, TableOptions};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const PROCESSES: usize = 2000;

fn write_population(root: &Path) {
    fs::create_dir_all(root.join("sys/kernel/random")).unwrap();
    fs::write(
        root.join("sys/kernel/random/boot_id"),
        "6f1c7b1e-2c4d-4e5f-8a9b-0c1d2e3f4a5b\n",
    )
    .unwrap();
    for pid in 1..=PROCESSES {
        let ppid = if pid == 1 { 0 } else { 1 + (pid - 2) / 8 };
        let dir = root.join(pid.to_string());
        fs::create_dir_all(&dir).unwrap();
        let stat = format!(
            "{pid} (worker-{pid}) S {ppid} {pid} {pid} 0 -1 4194560 0 0 0 0 5 1 0 0 20 0 1 0 {pid} \
             1000000 100 18446744073709551615 4194304 4196000 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"
        );
        fs::write(dir.join("stat"), stat).unwrap();
        fs::write(
            dir.join("cmdline"),
            format!("/usr/bin/worker\0--id\0{pid}\0"),
        )
        .unwrap();
        std::os::unix::fs::symlink(format!("/srv/app/{pid}"), dir.join("cwd")).unwrap();
    }
}

#[test]
fn at_most_256_bytes_per_process_beyond_its_strings() {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .unwrap();
    write_population(dir.path());

    let reader = SystemSource::open_root(dir.path()).unwrap();
    let region = Region::new(ALLOCATOR);
    let table = ProcessTable::with_source(reader, TableOptions::default()).unwrap();
    let stats = region.change();
    let live =
        stats.bytes_allocated as isize + stats.bytes_reallocated - stats.bytes_deallocated as isize;
    let live = live as usize;
    assert_eq!(table.len(), PROCESSES);

    let strings: usize = table
        .iter()
        .map(|p| {
            p.name().len()
                + p.cmdline().as_bytes().len()
                + p.cwd().path().map_or(0, |c| c.as_os_str().len())
        })
        .sum();
    let overhead = live - strings;
    let per_process = overhead / PROCESSES;
    println!(
        "table: {} bytes for {PROCESSES} processes, {strings} of them strings: {per_process} bytes/process beyond strings",
        live
    );
    assert!(
        per_process <= 256,
        "{per_process} bytes per process beyond strings"
    );
}
