//! What the ports layer reads from `/proc`: a process's socket fds (by
//! owner) and the `/proc/net` tables. All through the reader's root fd
//! and buffers, like every other read of `/proc`.

use std::ffi::CStr;
use std::os::fd::AsFd;
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags, RawDir};
use rustix::io::Errno;

use super::SystemSource;
use super::path::PidPath;
use super::reader::{ReadMode, file_error, io_error, read_at};
use crate::source::FdAccess;
use crate::{Pid, Result};

/// `socket:[` as `/proc/<pid>/fd/N` links show a socket.
const SOCKET_PREFIX: &[u8] = b"socket:[";

impl SystemSource {
    /// Appends `(fd, inode)` for every socket `pid` holds open to `out`.
    /// With `owners` not empty, reads only a process of one of these users
    /// (the owner of `<pid>/fd`, its effective uid) and answers
    /// [`FdAccess::OtherOwner`] for others.
    ///
    /// One `openat` of `<pid>/fd`, `getdents64` on it, and one `readlinkat`
    /// per entry into a stack buffer: no allocation.
    pub(crate) fn socket_fds(
        &mut self,
        pid: Pid,
        owners: &[u32],
        out: &mut Vec<(i32, u64)>,
    ) -> Result<FdAccess> {
        let path = PidPath::new(pid, "fd");
        let dir = match rustix::fs::openat(
            &self.root,
            path.as_c_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(dir) => dir,
            Err(Errno::ACCESS | Errno::PERM) => return Ok(FdAccess::NotPermitted),
            Err(Errno::NOENT | Errno::SRCH) => return Ok(FdAccess::Gone),
            Err(errno) => return Err(file_error(&self.root_path, errno, pid, "fd")),
        };
        if !owners.is_empty() {
            match rustix::fs::fstat(&dir) {
                Ok(stat) if owners.contains(&stat.st_uid) => {}
                Ok(_) => return Ok(FdAccess::OtherOwner),
                Err(Errno::NOENT | Errno::SRCH) => return Ok(FdAccess::Gone),
                Err(errno) => return Err(file_error(&self.root_path, errno, pid, "fd")),
            }
        }
        let mut link = [0u8; 64];
        let mut entries = RawDir::new(&dir, &mut self.dirents);
        while let Some(entry) = entries.next() {
            let entry = match entry {
                Ok(entry) => entry,
                // The process exited while we listed its fds.
                Err(Errno::NOENT | Errno::SRCH) => return Ok(FdAccess::Gone),
                Err(errno) => return Err(file_error(&self.root_path, errno, pid, "fd")),
            };
            let name = entry.file_name();
            let Some(fd) = fd_number(name.to_bytes()) else {
                continue;
            };
            // An fd closed since the listing is ENOENT: skip it.
            let Ok(len) = rustix::fs::readlinkat_raw(dir.as_fd(), name, &mut link[..]) else {
                continue;
            };
            if let Some(inode) = socket_inode(&link[..len]) {
                out.push((fd, inode));
            }
        }
        Ok(FdAccess::Read)
    }

    /// Reads a file under the proc root whole (`net/tcp`, say) and returns its
    /// bytes, borrowing the reader's buffer.
    pub(crate) fn read_file(&mut self, name: &CStr) -> Result<&[u8]> {
        let len =
            read_at(self.root.as_fd(), name, &mut self.buf, ReadMode::ToEnd).map_err(|errno| {
                let path: PathBuf = self.root_path.join(name.to_string_lossy().as_ref());
                io_error(errno, path)
            })?;
        Ok(&self.buf[..len])
    }
}

/// An fd or task directory entry: decimal digits that fit an `i32`.
fn fd_number(name: &[u8]) -> Option<i32> {
    if name.is_empty() || name.len() > 10 || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = name
        .iter()
        .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
    i32::try_from(value).ok()
}

/// The inode of a `socket:[INODE]` link target; `None` for anything else.
pub(crate) fn socket_inode(link: &[u8]) -> Option<u64> {
    let digits = link.strip_prefix(SOCKET_PREFIX)?.strip_suffix(b"]")?;
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
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
