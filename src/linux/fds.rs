//! What the ports layer reads from `/proc`: a process's socket fds (by
//! owner) and the `/proc/net` tables. All through the reader's root fd
//! and buffers, like every other read of `/proc`.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, SeekFrom, StatxFlags};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType};

use super::SystemSource;
use super::path::PidPath;
use super::reader::{DIRENT_BUFFER, ReadMode, file_error, io_error, read_at};
use super::split;
use crate::source::FdAccess;
use crate::{Pid, Result};

/// `socket:[` as `/proc/<pid>/fd/N` links show a socket.
const SOCKET_PREFIX: &[u8] = b"socket:[";

/// What one thread needs to read fd directories: the proc root, shared,
/// and a `getdents64` buffer of its own.
struct FdReader<'a> {
    root: BorrowedFd<'a>,
    root_path: &'a Path,
    sockfs: Option<u64>,
    /// Fd directories here list fd N at offset N + 2 (see
    /// [`SystemSource::fd_dirs_seek_by_number`]).
    seek_by_number: bool,
    dirents: &'a mut Vec<MaybeUninit<u8>>,
}

/// The sockets a run of processes holds: `(pid, fd, inode)` in the order
/// of the pids, and those whose fds could not be read.
#[derive(Debug, Default)]
struct Piece {
    sockets: Vec<(Pid, i32, u64)>,
    not_permitted: Vec<Pid>,
}

impl SystemSource {
    /// Appends `(fd, inode)` for every socket `pid` holds open to `out`.
    /// With `owners` not empty, reads only a process of one of these users
    /// (the owner of `<pid>/fd`, its effective uid) and answers
    /// [`FdAccess::OtherOwner`] for others.
    ///
    /// One `openat` of `<pid>/fd`; per fd one `statx` of the link and a
    /// second one of its target if that may be a socket (see
    /// [`fd_socket`]); fds 0, 1, 2, ... up to the first gap found by name
    /// and the rest by `getdents64` from there (the whole directory where
    /// offsets are not fd numbers). No allocation.
    pub(crate) fn socket_fds(
        &mut self,
        pid: Pid,
        owners: &[u32],
        out: &mut Vec<(i32, u64)>,
    ) -> Result<FdAccess> {
        let sockfs = self.sockfs_device();
        let seek_by_number = self.fd_dirs_seek_by_number();
        FdReader {
            root: self.root.as_fd(),
            root_path: &self.root_path,
            sockfs,
            seek_by_number,
            dirents: &mut self.dirents,
        }
        .socket_fds(pid, owners, out)
    }

    /// Appends `(pid, fd, inode)` for every socket each of `pids` holds to
    /// `sockets`, in the order of `pids`, and the pids whose fds cannot be
    /// read (another user's) to `not_permitted`; gone processes are left
    /// out. The same answer as [`SystemSource::socket_fds`] on each pid in
    /// turn, whatever the threads' timing: with many pids and a second CPU
    /// the walk is shared with one helper thread (see [`split`]).
    pub(crate) fn socket_fds_of_all(
        &mut self,
        pids: &[Pid],
        sockets: &mut Vec<(Pid, i32, u64)>,
        not_permitted: &mut Vec<Pid>,
    ) -> Result<()> {
        let sockfs = self.sockfs_device();
        let seek_by_number = self.fd_dirs_seek_by_number();
        let two_threads = *self.two_cpus.get_or_insert_with(split::two_cpus);
        if two_threads && self.spare_dirents.is_empty() {
            self.spare_dirents = vec![MaybeUninit::uninit(); DIRENT_BUFFER];
        }
        let (root, root_path) = (self.root.as_fd(), self.root_path.as_path());
        let mut mine = FdReader {
            root,
            root_path,
            sockfs,
            seek_by_number,
            dirents: &mut self.dirents,
        };
        let mut theirs = FdReader {
            root,
            root_path,
            sockfs,
            seek_by_number,
            dirents: &mut self.spare_dirents,
        };
        let pieces = split::in_pieces(pids, two_threads, &mut mine, &mut theirs, FdReader::piece)?;
        for piece in pieces {
            sockets.extend(piece.sockets);
            not_permitted.extend(piece.not_permitted);
        }
        Ok(())
    }

    /// The device sockfs inodes report, learnt once from a socket of our own;
    /// `None` if no socket can be made here (then fd links are read instead).
    fn sockfs_device(&mut self) -> Option<u64> {
        *self.sockfs_device.get_or_insert_with(|| {
            let socket = rustix::net::socket_with(
                AddressFamily::UNIX,
                SocketType::DGRAM,
                SocketFlags::CLOEXEC,
                None,
            )
            .ok()?;
            rustix::fs::fstat(&socket).ok().map(|stat| stat.st_dev)
        })
    }

    /// Whether an fd directory under this root can be read from a given fd
    /// number on: procfs lists fd N at directory offset N + 2 (after `.` and
    /// `..`), so after `lseek` to N + 2 `getdents64` starts at the first fd
    /// open from N. Learnt once, on our own fd directory: read from the
    /// offset of the fd that directory is open on, it must list that fd
    /// first. A fixture tree (whose offsets are the filesystem's cookies),
    /// or a kernel that numbered them otherwise, fails this and is read
    /// whole.
    fn fd_dirs_seek_by_number(&mut self) -> bool {
        if let Some(known) = self.fd_dirs_seek_by_number {
            return known;
        }
        let path = PidPath::new(Pid::current(), "fd");
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let works = rustix::fs::openat(&self.root, path.as_c_str(), flags, Mode::empty())
            .ok()
            .is_some_and(|dir| {
                let fd = dir.as_raw_fd();
                let offset = u64::try_from(fd).map_or(0, |fd| fd + 2);
                rustix::fs::seek(&dir, SeekFrom::Start(offset)).is_ok()
                    && match RawDir::new(&dir, &mut self.dirents).next() {
                        Some(Ok(entry)) => fd_number(entry.file_name().to_bytes()) == Some(fd),
                        _ => false,
                    }
            });
        self.fd_dirs_seek_by_number = Some(works);
        works
    }

    /// Reads a file under the proc root whole (`net/tcp`, say) and returns its
    /// bytes, borrowing the reader's buffer. To the end: the `/proc/net`
    /// tables are seq_files of one record per socket, whose reads come back
    /// short (whole lines only) long before the end.
    pub(crate) fn read_file(&mut self, name: &CStr) -> Result<&[u8]> {
        let len =
            read_at(self.root.as_fd(), name, &mut self.buf, ReadMode::ToEnd).map_err(|errno| {
                let path: PathBuf = self.root_path.join(name.to_string_lossy().as_ref());
                io_error(errno, path)
            })?;
        Ok(&self.buf[..len])
    }
}

/// The inode of the socket behind the fd entry `name` of the open fd
/// directory `dir`; `None` for anything else, or an fd closed meanwhile.
///
/// First the link itself (`statx` without following): procfs gives an fd
/// link owner read/write bits that mirror how the file is open, and a socket
/// is always open for reading and writing (`sock_alloc_file` opens every
/// socket `O_RDWR`, `fcntl` cannot change it). So a link without both bits
/// (a pipe end, a file open for reading) is no socket, and its target is
/// never looked at: about a third less work on a typical fd table. Anything
/// that does not look like a procfs fd link passes on.
///
/// Then `statx` following the magic link stats the open file itself: a
/// socket is `S_IFSOCK` on the sockfs device, and its inode is the `INODE`
/// of the link text `socket:[INODE]` and of sock_diag, without the kernel
/// building that text (a `readlinkat` costs more). The device check rules
/// out a socket *file* on a disk (a Unix socket path opened `O_PATH`). Only
/// type and inode are asked, without syncing: a file on a network
/// filesystem answers from cache and never waits on its server. Where
/// `statx` fails (no sockfs device known, an old kernel, a fixture tree
/// whose links lead nowhere, a race with `close`) the link text is read
/// instead.
fn fd_socket(dir: BorrowedFd<'_>, name: &CStr, sockfs: Option<u64>) -> Option<u64> {
    if let Ok(mode) = link_mode(dir, name)
        && !could_be_socket(mode)
    {
        return None;
    }
    socket_behind(dir, name, sockfs)
}

/// Only type and inode are asked, without syncing: see [`fd_socket`].
const STATX_FLAGS: AtFlags = AtFlags::STATX_DONT_SYNC.union(AtFlags::NO_AUTOMOUNT);

/// The mode of the fd link `name` itself (`statx` without following); an
/// error when no such fd is open.
fn link_mode(dir: BorrowedFd<'_>, name: &CStr) -> std::result::Result<u32, Errno> {
    let flags = STATX_FLAGS | AtFlags::SYMLINK_NOFOLLOW;
    rustix::fs::statx(dir, name, flags, StatxFlags::TYPE | StatxFlags::MODE)
        .map(|link| link.stx_mode.into())
}

/// The inode of the socket behind the fd link `name`, by `statx` following
/// it or else by its text: the second half of [`fd_socket`].
fn socket_behind(dir: BorrowedFd<'_>, name: &CStr, sockfs: Option<u64>) -> Option<u64> {
    if let Some(sockfs) = sockfs {
        let wanted = StatxFlags::TYPE | StatxFlags::INO;
        if let Ok(stat) = rustix::fs::statx(dir, name, STATX_FLAGS, wanted) {
            let is_socket = FileType::from_raw_mode(stat.stx_mode.into()) == FileType::Socket
                && rustix::fs::makedev(stat.stx_dev_major, stat.stx_dev_minor) == sockfs
                && stat.stx_mask & wanted.bits() == wanted.bits();
            return is_socket.then_some(stat.stx_ino);
        }
    }
    // One readlink into 64 bytes: `socket:[<u64 inode>]` is at most 29, and
    // a longer (cut) target is no socket's, which is all this asks.
    let mut link = [0u8; 64];
    let len = rustix::fs::readlinkat_raw(dir, name, &mut link[..]).ok()?;
    socket_inode(&link[..len])
}

/// Whether an fd link of mode `mode` (from `lstat`) may stand for a socket:
/// anything but a symlink without owner read and write bits.
fn could_be_socket(mode: u32) -> bool {
    const OWNER_READ_WRITE: u32 = 0o600;
    FileType::from_raw_mode(mode) != FileType::Symlink
        || mode & OWNER_READ_WRITE == OWNER_READ_WRITE
}

impl FdReader<'_> {
    /// [`SystemSource::socket_fds`] with this thread's buffer.
    fn socket_fds(
        &mut self,
        pid: Pid,
        owners: &[u32],
        out: &mut Vec<(i32, u64)>,
    ) -> Result<FdAccess> {
        let path = PidPath::new(pid, "fd");
        let dir = match rustix::fs::openat(
            self.root,
            path.as_c_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(dir) => dir,
            Err(Errno::ACCESS | Errno::PERM) => return Ok(FdAccess::NotPermitted),
            Err(Errno::NOENT | Errno::SRCH) => return Ok(FdAccess::Gone),
            Err(errno) => return Err(file_error(self.root_path, errno, pid, "fd")),
        };
        if !owners.is_empty() {
            match rustix::fs::fstat(&dir) {
                Ok(stat) if owners.contains(&stat.st_uid) => {}
                Ok(_) => return Ok(FdAccess::OtherOwner),
                Err(Errno::NOENT | Errno::SRCH) => return Ok(FdAccess::Gone),
                Err(errno) => return Err(file_error(self.root_path, errno, pid, "fd")),
            }
        }
        if self.seek_by_number {
            // Fds are handed out lowest first, so most tables are dense from
            // 0: look at fds 0, 1, 2, ... by name while they are open (the
            // look each fd gets anyway, without getdents64 building a
            // dentry for every entry first), then list the rest from the
            // first gap on. An fd open all along is seen either way: below
            // the gap by its own look, from the gap on by the listing.
            let mut fd = 0;
            loop {
                let name = FdName::new(fd);
                match link_mode(dir.as_fd(), name.as_c_str()) {
                    Ok(mode) => {
                        if could_be_socket(mode)
                            && let Some(inode) =
                                socket_behind(dir.as_fd(), name.as_c_str(), self.sockfs)
                        {
                            out.push((fd, inode));
                        }
                    }
                    // Not open (or not readable): the listing takes over.
                    Err(_) => break,
                }
                fd += 1;
            }
            let offset = u64::try_from(fd).map_or(0, |fd| fd + 2);
            if let Err(errno) = rustix::fs::seek(&dir, SeekFrom::Start(offset)) {
                return Err(file_error(self.root_path, errno, pid, "fd"));
            }
        }
        let mut entries = RawDir::new(&dir, self.dirents);
        while let Some(entry) = entries.next() {
            let entry = match entry {
                Ok(entry) => entry,
                // The process exited while we listed its fds.
                Err(Errno::NOENT | Errno::SRCH) => return Ok(FdAccess::Gone),
                Err(errno) => return Err(file_error(self.root_path, errno, pid, "fd")),
            };
            let name = entry.file_name();
            let Some(fd) = fd_number(name.to_bytes()) else {
                continue;
            };
            if let Some(inode) = fd_socket(dir.as_fd(), name, self.sockfs) {
                out.push((fd, inode));
            }
        }
        Ok(FdAccess::Read)
    }

    /// The sockets of each of `pids`, in their order.
    fn piece(&mut self, pids: &[Pid]) -> Result<Piece> {
        let mut piece = Piece::default();
        let mut fds = Vec::new();
        for &pid in pids {
            fds.clear();
            match self.socket_fds(pid, &[], &mut fds)? {
                FdAccess::Read => piece
                    .sockets
                    .extend(fds.iter().map(|&(fd, inode)| (pid, fd, inode))),
                FdAccess::NotPermitted => piece.not_permitted.push(pid),
                FdAccess::Gone | FdAccess::OtherOwner => {}
            }
        }
        Ok(piece)
    }
}

/// An fd number as the name of its entry in an fd directory, built on the
/// stack.
struct FdName {
    bytes: [u8; 12],
}

impl FdName {
    fn new(fd: i32) -> FdName {
        let mut digits = [0u8; 10];
        let mut value = fd.unsigned_abs();
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        let mut bytes = [0u8; 12];
        bytes[..digits.len() - start].copy_from_slice(&digits[start..]);
        FdName { bytes }
    }

    fn as_c_str(&self) -> &CStr {
        // Zero-filled, and at most 10 digits: a NUL always follows.
        CStr::from_bytes_until_nul(&self.bytes).unwrap_or(c"")
    }
}

/// An fd or task directory entry: decimal digits that fit an `i32`.
fn fd_number(name: &[u8]) -> Option<i32> {
    i32::try_from(crate::parse::decimal(name)?).ok()
}

/// The inode of a `socket:[INODE]` link target; `None` for anything else.
pub(crate) fn socket_inode(link: &[u8]) -> Option<u64> {
    crate::parse::decimal(link.strip_prefix(SOCKET_PREFIX)?.strip_suffix(b"]")?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn socket_links() {
        assert_eq!(socket_inode(b"socket:[12345]"), Some(12345));
        assert_eq!(socket_inode(b"pipe:[12345]"), None);
        assert_eq!(socket_inode(b"socket:[]"), None);
        assert_eq!(socket_inode(b"socket:[1x]"), None);
        assert_eq!(socket_inode(b"/tmp/socket:[1]"), None);
    }

    /// A socket behind a long run of closed fds is found, as is one in a
    /// dense table.
    #[test]
    fn sockets_are_found_in_sparse_and_dense_fd_tables() -> Result<()> {
        use std::os::fd::AsRawFd;
        let fill: Vec<std::fs::File> = (0..200)
            .map(|_| std::fs::File::open("/dev/null"))
            .collect::<std::io::Result<_>>()
            .map_err(|e| crate::Error::Io {
                path: Some("/dev/null".into()),
                source: e,
            })?;
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| crate::Error::Io {
                path: None,
                source: e,
            })?;
        let fd = listener.as_raw_fd();
        let mut reader = SystemSource::open()?;
        let mut found = Vec::new();
        assert_eq!(
            reader.socket_fds(Pid::current(), &[], &mut found)?,
            FdAccess::Read
        );
        assert!(found.iter().any(|&(f, _)| f == fd), "dense: {found:?}");
        drop(fill);
        found.clear();
        assert_eq!(
            reader.socket_fds(Pid::current(), &[], &mut found)?,
            FdAccess::Read
        );
        assert_eq!(
            found.iter().filter(|&&(f, _)| f == fd).count(),
            1,
            "sparse: {found:?}"
        );
        Ok(())
    }

    /// What `statx` on each fd says is what the link text says: the same
    /// fds are sockets, with the same inodes (TCP, UDP, Unix; listening,
    /// accepted, connected, from a pair, shut down), and a Unix socket
    /// *file* opened `O_PATH` (`S_IFSOCK` on a disk) is not a socket.
    #[test]
    fn statx_finds_the_inodes_the_links_name() -> Result<()> {
        let io = |e: std::io::Error| crate::Error::Io {
            path: None,
            source: e,
        };
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").map_err(io)?;
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").map_err(io)?;
        let dir = tempfile::tempdir().map_err(io)?;
        let path = dir.path().join("ports2.sock");
        let unix = std::os::unix::net::UnixListener::bind(&path).map_err(io)?;
        // Sockets made other ways than socket(2): accept(2) and socketpair(2).
        let client = std::net::TcpStream::connect(tcp.local_addr().map_err(io)?).map_err(io)?;
        let (accepted, _) = tcp.accept().map_err(io)?;
        let (pair_a, pair_b) = std::os::unix::net::UnixStream::pair().map_err(io)?;
        pair_b.shutdown(std::net::Shutdown::Both).map_err(io)?;
        let socket_file = rustix::fs::open(&path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
            .map_err(|errno| io_error(errno, path.clone()))?;
        let mut reader = SystemSource::open()?;
        assert!(reader.sockfs_device().is_some(), "no sockfs device learnt");
        let mut by_statx = Vec::new();
        assert_eq!(
            reader.socket_fds(Pid::current(), &[], &mut by_statx)?,
            FdAccess::Read
        );
        let mut by_link = Vec::new();
        for entry in std::fs::read_dir("/proc/self/fd").map_err(io)? {
            let entry = entry.map_err(io)?;
            let Some(fd) = fd_number(entry.file_name().as_encoded_bytes()) else {
                continue;
            };
            // The read_dir's own fd is closed by now.
            let Ok(link) = std::fs::read_link(entry.path()) else {
                continue;
            };
            if let Some(inode) = socket_inode(link.as_os_str().as_encoded_bytes()) {
                by_link.push((fd, inode));
            }
        }
        use std::os::fd::AsRawFd;
        let sockets = [
            &tcp as &dyn AsRawFd,
            &udp,
            &unix,
            &client,
            &accepted,
            &pair_a,
            &pair_b,
        ]
        .map(AsRawFd::as_raw_fd);
        // An O_PATH fd of a socket file is no socket.
        let file_fd = socket_file.as_raw_fd();
        assert!(by_statx.iter().all(|&(f, _)| f != file_fd));
        // Other tests of this process open and close fds meanwhile: compare
        // the sockets this test holds, which cannot change under it.
        let ours = |found: &mut Vec<_>| {
            found.retain(|(fd, _)| sockets.contains(fd));
            found.sort_unstable();
        };
        ours(&mut by_statx);
        ours(&mut by_link);
        assert_eq!(by_statx, by_link);
        assert_eq!(
            by_statx.len(),
            sockets.len(),
            "every socket found: {by_statx:?}"
        );
        Ok(())
    }

    /// Children that each hold one socket as their stdin; killed and reaped
    /// on drop.
    struct Holders(Vec<std::process::Child>);

    impl Drop for Holders {
        fn drop(&mut self) {
            for child in &mut self.0 {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Reading the fds or identities of many processes at once (two
    /// threads) gives what reading them one by one gives, in the same order,
    /// repeats and a gone pid included.
    #[test]
    fn the_walk_of_many_is_the_walk_of_each() -> Result<()> {
        use std::process::{Command, Stdio};
        let io = |e: std::io::Error| crate::Error::Io {
            path: None,
            source: e,
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io)?;
        let mut holders = Holders(Vec::new());
        for _ in 0..40 {
            let socket = std::os::fd::OwnedFd::from(listener.try_clone().map_err(io)?);
            let child = Command::new("sleep")
                .arg("600")
                .stdin(Stdio::from(socket))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(io)?;
            holders.0.push(child);
        }
        let children: Vec<Pid> = holders
            .0
            .iter()
            .filter_map(|child| Pid::try_from(child.id()).ok())
            .collect();
        // More than one thread takes: every child five times, and a pid
        // that is no process.
        let mut pids: Vec<Pid> = (0..5).flat_map(|_| children.iter().copied()).collect();
        pids.push(Pid::try_from(i32::MAX).map_err(|_| crate::Error::Unsupported { what: "pid" })?);
        assert!(pids.len() >= split::PIDS_WORTH_A_THREAD);
        let mut reader = SystemSource::open()?;
        let (mut each, mut fds) = (Vec::new(), Vec::new());
        for &pid in &pids {
            fds.clear();
            assert_ne!(
                reader.socket_fds(pid, &[], &mut fds)?,
                FdAccess::NotPermitted
            );
            each.extend(fds.iter().map(|&(fd, inode)| (pid, fd, inode)));
        }
        let (mut all, mut not_permitted) = (Vec::new(), Vec::new());
        reader.socket_fds_of_all(&pids, &mut all, &mut not_permitted)?;
        assert_eq!(all, each);
        assert!(not_permitted.is_empty());
        // Each child holds the listener as its fd 0, and nothing else.
        let inode = all[0].2;
        assert_eq!(all.len(), pids.len() - 1);
        assert!(all.iter().all(|&(_, fd, id)| fd == 0 && id == inode));
        // The same for identities: read together, or one by one.
        let boot = reader.boot_id();
        let mut each = Vec::new();
        for &pid in &pids {
            each.push(match reader.stat(pid) {
                Ok(stat) => Some(crate::ProcessIdentity::new(
                    boot,
                    pid,
                    crate::StartTime::from_raw(stat.starttime),
                )),
                Err(crate::Error::NotFound { .. }) => None,
                Err(other) => return Err(other),
            });
        }
        let mut all = Vec::new();
        reader.identities(&pids, &mut all)?;
        assert_eq!(all, each);
        assert_eq!(all.iter().filter(|identity| identity.is_none()).count(), 1);
        Ok(())
    }

    /// procfs fd directories are read from a given fd number on; a fixture
    /// tree is read whole, its gaps and all.
    #[test]
    fn only_procfs_fd_dirs_are_read_from_an_fd_number_on() -> Result<()> {
        assert!(SystemSource::open()?.fd_dirs_seek_by_number());
        let io = |e: std::io::Error| crate::Error::Io {
            path: None,
            source: e,
        };
        let root = tempfile::tempdir().map_err(io)?;
        let boot = root.path().join("sys/kernel/random");
        std::fs::create_dir_all(&boot).map_err(io)?;
        std::fs::write(
            boot.join("boot_id"),
            "0b3e6f8c-2a4d-4b1e-9f7a-5c8d2e1f3a4b\n",
        )
        .map_err(io)?;
        // Our own pid, so the check itself reads this tree.
        let fds = root.path().join(Pid::current().to_string()).join("fd");
        std::fs::create_dir_all(&fds).map_err(io)?;
        for (fd, target) in [
            ("0", "socket:[11]"),
            ("1", "/dev/null"),
            ("7", "socket:[12]"),
        ] {
            std::os::unix::fs::symlink(target, fds.join(fd)).map_err(io)?;
        }
        let mut fixture = SystemSource::open_root(root.path())?;
        assert!(!fixture.fd_dirs_seek_by_number());
        let mut found = Vec::new();
        assert_eq!(
            fixture.socket_fds(Pid::current(), &[], &mut found)?,
            FdAccess::Read
        );
        found.sort_unstable();
        assert_eq!(found, vec![(0, 11), (7, 12)]);
        Ok(())
    }

    #[test]
    fn fd_names_are_decimal() {
        for fd in [0, 7, 10, 255, 1_000_000, i32::MAX] {
            assert_eq!(
                FdName::new(fd).as_c_str().to_bytes(),
                fd.to_string().as_bytes()
            );
        }
    }

    #[test]
    fn only_read_write_links_may_be_sockets() {
        const LINK: u32 = 0o120_000;
        assert!(could_be_socket(LINK | 0o700)); // lrwx: a socket, or a file open O_RDWR
        assert!(!could_be_socket(LINK | 0o500)); // lr-x: open for reading only
        assert!(!could_be_socket(LINK | 0o300)); // l-wx: open for writing only
        assert!(!could_be_socket(LINK | 0o100)); // l--x: O_PATH
        // Not a procfs fd link (a fixture tree, say): looked at.
        assert!(could_be_socket(0o140_000));
        assert!(could_be_socket(0o100_000));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]
        #[test]
        fn socket_links_never_panic(link in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = socket_inode(&link);
            let _ = fd_number(&link);
        }

        #[test]
        fn socket_links_round_trip(inode in any::<u64>()) {
            prop_assert_eq!(socket_inode(format!("socket:[{inode}]").as_bytes()), Some(inode));
        }
    }
}
