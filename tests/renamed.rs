//! A process whose name (comm) is `a) b\nc) Z 9`: spaces, parentheses, a
//! newline and a fake state and ppid. The reader must take the comm up to the
//! *last* `)` of the stat line.
//!
//! Runs without the test harness so that `main` runs on the main thread:
//! `PR_SET_NAME` names the calling thread, and only the main thread's name is
//! the process's comm. The same binary plays both roles; the child role is
//! chosen by the environment variable below.

#[cfg(target_os = "linux")]
mod support;

#[cfg(target_os = "linux")]
const CHILD_ROLE: &str = "PROCTRACK_RENAMED_CHILD";
#[cfg(target_os = "linux")]
const NAME: &std::ffi::CStr = c"a) b\nc) Z 9";

#[cfg(target_os = "linux")]
fn main() {
    if std::env::var_os(CHILD_ROLE).is_some() {
        child();
    }
    let outcome = std::panic::catch_unwind(parent);
    match outcome {
        Ok(()) => println!("test result: ok. 1 passed; 0 failed"),
        Err(_) => {
            // The panic message is already on stderr.
            println!("test result: FAILED. 0 passed; 1 failed");
            std::process::exit(1);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("test result: ok. 0 passed; 0 failed; 1 ignored (Linux only)");
}

/// Renames itself, says `ready`, and waits for stdin to close.
#[cfg(target_os = "linux")]
fn child() -> ! {
    use std::io::{Read, Write};
    if let Err(e) = rustix::thread::set_name(NAME) {
        eprintln!("PR_SET_NAME: {e}");
        std::process::exit(2);
    }
    let mut out = std::io::stdout().lock();
    if writeln!(out, "ready").and_then(|()| out.flush()).is_err() {
        std::process::exit(3);
    }
    let mut sink = Vec::new();
    let _ = std::io::stdin().lock().read_to_end(&mut sink);
    std::process::exit(0);
}

#[cfg(target_os = "linux")]
fn parent() {
    use std::os::unix::ffi::OsStrExt;
    use std::process::{Command, Stdio};

    use proctrack::{Pid, State, SystemSource};
    use support::{SpawnedTree, assert_no_leftovers};

    let exe = std::env::current_exe().expect("current_exe");
    let mut tree = SpawnedTree::spawn(
        Command::new(&exe)
            .env(CHILD_ROLE, "1")
            .stdin(Stdio::piped()),
    );
    let before_ready = tree.wait_ready();
    assert!(
        before_ready.is_empty(),
        "unexpected output: {before_ready:?}"
    );
    let pid = tree.pid();
    let me = Pid::current();
    let want = NAME.to_bytes();

    // "ready" is printed just before the child blocks on stdin: it may still be
    // on its way into read(2). Re-read (without sleeping) until it has left
    // the running state; a blocked reader never returns to it by itself.
    let mut reader = SystemSource::open().expect("open /proc");
    let mut info = proctrack::process(pid).expect("read the child");
    for _ in 0..100_000 {
        if info.state() != State::Running {
            break;
        }
        std::thread::yield_now();
        info = proctrack::process(pid).expect("read the child");
    }

    assert_eq!(info.name().as_bytes(), want, "name");
    assert_eq!(info.parent(), Some(me), "parent");
    assert_eq!(info.state(), State::Sleeping, "state");
    assert_eq!(info.pid(), pid);
    assert_eq!(
        info.cmdline().to_vec(),
        [exe.as_os_str().to_os_string()],
        "cmdline"
    );

    {
        let stat = reader.stat(pid).expect("stat");
        assert_eq!(stat.pid, pid.as_raw());
        assert_eq!(stat.comm, want, "stat comm");
        assert_eq!(stat.ppid, me.as_raw(), "stat ppid");
        assert_eq!(stat.state, b'S', "stat state");
        assert_eq!(stat.starttime, info.start_time().as_raw(), "stat starttime");
    }

    for all in [
        proctrack::SystemSource::open()
            .and_then(|mut source| source.processes())
            .expect("processes"),
        reader.processes().expect("processes"),
    ] {
        let listed = all
            .iter()
            .find(|p| p.pid() == pid)
            .expect("the child is listed");
        assert_eq!(listed.identity(), info.identity());
        assert_eq!(listed.name().as_bytes(), want);
        assert_eq!(listed.parent(), Some(me));
        assert_eq!(listed.cmdline(), info.cmdline());
    }

    tree.close_stdin();
    let status = tree.wait_root();
    assert!(status.success(), "child exited with {status}");
    let record = tree.finish();
    assert_no_leftovers(&record);
}
