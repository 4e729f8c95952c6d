//! Oracles: what this kernel and machine do, asked at run time with plain
//! syscalls written here, independent of the library under test. A test that
//! depends on the machine takes its expectation from these, never from a
//! kernel version or from what a development machine once did.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

/// What the kernel did when asked to listen to the proc connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorAnswer {
    /// `bind` to the proc group failed with this errno.
    BindRefused(i32),
    /// The listen request was acked with error 0.
    Acked,
    /// The listen request was acked with this error.
    AckRefused(i32),
    /// The socket bound but no ack came within the wait.
    Silent,
}

/// How long the oracle waits for an ack: longer than the library's probe,
/// so that a slow ack cannot pass for silence here.
pub const ORACLE_ACK_WAIT: Duration = Duration::from_secs(2);

// The proc connector's wire numbers (linux/connector.h, linux/cn_proc.h),
// written out here rather than taken from the library.
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const NLMSG_DONE: u16 = 3;
const NLMSG_HEADER: usize = 16;
const CN_MSG_HEADER: usize = 20;
/// proc_event: what, cpu, timestamp_ns; then the ack's err.
const PROC_EVENT_HEADER: usize = 16;

/// Asks the kernel, with the plain listen request every kernel since 2.6
/// understands, whether this process may listen to the proc connector.
pub fn connector_answer() -> ConnectorAnswer {
    let socket = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        Some(netlink::CONNECTOR),
    )
    .expect("a NETLINK_CONNECTOR socket");
    if let Err(errno) = rustix::net::bind(&socket, &SocketAddrNetlink::new(0, CN_IDX_PROC)) {
        return ConnectorAnswer::BindRefused(errno.raw_os_error());
    }
    let ack = 0x9e37_0000 | (std::process::id() & 0xffff);
    let mut request = Vec::with_capacity(NLMSG_HEADER + CN_MSG_HEADER + 4);
    let total = (NLMSG_HEADER + CN_MSG_HEADER + 4) as u32;
    request.extend_from_slice(&total.to_ne_bytes());
    request.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
    request.extend_from_slice(&0u16.to_ne_bytes()); // flags
    request.extend_from_slice(&0u32.to_ne_bytes()); // seq
    request.extend_from_slice(&std::process::id().to_ne_bytes());
    request.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    request.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    request.extend_from_slice(&0u32.to_ne_bytes()); // seq
    request.extend_from_slice(&ack.to_ne_bytes());
    request.extend_from_slice(&4u16.to_ne_bytes()); // payload length
    request.extend_from_slice(&0u16.to_ne_bytes()); // flags
    request.extend_from_slice(&PROC_CN_MCAST_LISTEN.to_ne_bytes());
    rustix::net::send(&socket, &request, SendFlags::empty()).expect("send the listen request");
    wait_ack(&socket, ack + 1)
}

/// `Ok` when the kernel acks our listen request (so tests that need the
/// connector's events can run), else what it answered.
pub fn connector_allowed() -> Result<(), String> {
    match connector_answer() {
        ConnectorAnswer::Acked => Ok(()),
        answer => Err(format!(
            "the kernel does not let us listen to the proc connector: {answer:?}"
        )),
    }
}

/// Reads datagrams until one carries the ack numbered `want`.
fn wait_ack(socket: &OwnedFd, want: u32) -> ConnectorAnswer {
    let deadline = Instant::now() + ORACLE_ACK_WAIT;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return ConnectorAnswer::Silent;
        }
        let timeout = rustix::time::Timespec::try_from(left).expect("a short timeout");
        let mut fds = [PollFd::new(socket, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(0) | Err(Errno::INTR) => continue,
            Ok(_) => {}
            Err(errno) => panic!("poll on the connector socket: {errno}"),
        }
        let len = match rustix::net::recv(socket, &mut buf[..], RecvFlags::DONTWAIT) {
            Ok((_, len)) => len.min(buf.len()),
            Err(Errno::AGAIN | Errno::INTR | Errno::NOBUFS) => continue,
            Err(errno) => panic!("recv on the connector socket: {errno}"),
        };
        let mut at = 0;
        while at + NLMSG_HEADER + CN_MSG_HEADER <= len {
            let word = |offset: usize| {
                u32::from_ne_bytes(
                    buf[at + offset..at + offset + 4]
                        .try_into()
                        .expect("4 bytes"),
                )
            };
            let message_len = word(0) as usize;
            let idx = word(NLMSG_HEADER);
            let val = word(NLMSG_HEADER + 4);
            let ack = word(NLMSG_HEADER + 12);
            let err_at = NLMSG_HEADER + CN_MSG_HEADER + PROC_EVENT_HEADER;
            if idx == CN_IDX_PROC && val == CN_VAL_PROC && ack == want && at + err_at + 4 <= len {
                return match word(err_at) {
                    0 => ConnectorAnswer::Acked,
                    err => ConnectorAnswer::AckRefused(err as i32),
                };
            }
            if message_len < NLMSG_HEADER {
                break;
            }
            at += (message_len + 3) & !3;
        }
    }
}

/// Whether this process has `CAP_NET_ADMIN` in its effective set (root
/// outside a user namespace has it; read from /proc/self/status).
pub fn has_net_admin() -> bool {
    const CAP_NET_ADMIN: u32 = 12;
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .map(|hex| u64::from_str_radix(hex.trim(), 16).expect("CapEff is hex"))
        .expect("a CapEff line");
    effective & (1 << CAP_NET_ADMIN) != 0
}

/// Whether this process may make a cgroup under its own cgroup2 cgroup,
/// found by trying: the cgroup2 mount from /proc/self/mountinfo, our cgroup
/// from the `0::` line of /proc/self/cgroup, then mkdir and rmdir of a test
/// cgroup. `Err` says what failed.
pub fn cgroup2_writable() -> Result<std::path::PathBuf, String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    // Fields 4 and 5: the mount's root within the hierarchy, its mount point.
    let (root, mount) = mountinfo
        .lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut fields = left.split(' ').skip(3);
            (right.split(' ').next()? == "cgroup2")
                .then(|| Some((fields.next()?, fields.next()?)))?
        })
        .ok_or("no cgroup2 mount in /proc/self/mountinfo")?;
    let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    let own = own
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or("no 0:: line in /proc/self/cgroup")?;
    let own = own.strip_prefix(root).unwrap_or(own);
    let dir = std::path::Path::new(mount).join(own.trim_start_matches('/'));
    // One name per call: tests on other threads of this process ask too,
    // and a shared name would make one's mkdir fail on the other's.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let test = dir.join(format!("oracle-{}-{call}", std::process::id()));
    std::fs::create_dir(&test).map_err(|e| format!("mkdir {}: {e}", test.display()))?;
    std::fs::remove_dir(&test).map_err(|e| format!("rmdir {}: {e}", test.display()))?;
    Ok(dir)
}

/// `Err` (why) when this machine has no IPv6 loopback to bind (IPv6
/// disabled, as some containers have it).
pub fn ipv6_loopback() -> Result<(), String> {
    std::net::TcpListener::bind("[::1]:0")
        .map(drop)
        .map_err(|e| format!("cannot bind [::1]: {e}"))
}

/// `Err` (why) when this process may not set the next pid by writing
/// /proc/sys/kernel/ns_last_pid (it needs CAP_SYS_ADMIN over the pid
/// namespace's user namespace).
pub fn ns_last_pid_writable() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/sys/kernel/ns_last_pid")
        .map(drop)
        .map_err(|e| format!("cannot write /proc/sys/kernel/ns_last_pid: {e}"))
}

/// `Err` (why) when this process may not take another uid (becoming
/// `nobody` needs CAP_SETUID), found by trying on a thread of its own:
/// credentials are per thread in the kernel.
pub fn may_change_uid() -> Result<(), String> {
    std::thread::spawn(|| {
        let nobody = rustix::process::Uid::from_raw(65534);
        rustix::thread::set_thread_res_uid(Some(nobody), Some(nobody), Some(nobody))
            .map_err(|e| format!("setresuid(65534) failed: {e}"))
    })
    .join()
    .expect("the probing thread")
}

/// The first `name` in a directory of `PATH`.
pub fn in_path(name: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// A setuid-root copy of `setpriv` in `dir` (made readable by everyone):
/// a helper that a process of uid `user` execs to run something as uid
/// `other`, which `user` then may not signal. Checked by running it as
/// `user` to become `other`; `Err` says why this machine cannot have one
/// (not root, no setpriv, a nosuid mount).
pub fn setuid_helper(
    dir: &std::path::Path,
    user: u32,
    other: u32,
) -> Result<std::path::PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !rustix::process::geteuid().is_root() {
        return Err("only root can make a setuid-root helper".into());
    }
    let setpriv = in_path("setpriv").ok_or("no setpriv (util-linux) in PATH")?;
    let helper = dir.join("helper");
    std::fs::copy(&setpriv, &helper).map_err(|e| format!("copy {}: {e}", setpriv.display()))?;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o4755))
        .map_err(|e| format!("chmod 4755: {e}"))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod 755: {e}"))?;
    // A nosuid mount, or a kernel that ignores the bit, shows here.
    let other_text = other.to_string();
    let output = std::process::Command::new(&helper)
        .args([
            "--reuid",
            &other_text,
            "--regid",
            &other_text,
            "--clear-groups",
        ])
        .args(["id", "-u"])
        .uid(user)
        .gid(user)
        .output()
        .map_err(|e| format!("run the helper as uid {user}: {e}"))?;
    let got = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if got != other_text {
        return Err(format!(
            "the setuid helper run by uid {user} did not become uid {other}: {got:?} {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(helper)
}

/// This kernel's pid_max.
pub fn pid_max() -> i32 {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .expect("/proc/sys/kernel/pid_max")
        .trim()
        .parse()
        .expect("pid_max is a number")
}
