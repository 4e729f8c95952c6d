//! [`kill_cwd`]: kill every process standing in a directory, with its tree.

use std::path::{Path, PathBuf};

use super::{KillOptions, KillReport};
use crate::Result;

/// Kills every process whose working directory is `dir` or lies below it,
/// together with each one's tree, the way [`kill_tree`](super::kill_tree) does.
///
/// "Below" goes by path components: for `dir` = `/wt/ab`, a process in
/// `/wt/ab` or `/wt/ab/x` matches, one in `/wt/abc` does not. A process whose
/// directory was deleted matches by the path it had. `dir` is resolved
/// (symlinks, `..`) first when it exists, since the kernel reports resolved
/// paths.
///
/// Matching processes that the guard protects (the caller, when it stands in
/// `dir` itself, or its shell) are not signalled and are listed in
/// [`KillReport::refused`]; their descendants are killed only if they match
/// on their own. Processes of other users whose directory we may not read
/// are not matched. The match is taken once, at the start: a process that
/// enters `dir` later is killed only if it belongs to a matched tree.
///
/// ```no_run
/// use proctrack::signal::{kill_cwd, KillOptions};
/// let report = kill_cwd("/srv/worktrees/feature-x", &KillOptions::new())?;
/// for (identity, reason) in &report.refused {
///     eprintln!("left {identity} alone: {reason}");
/// }
/// # Ok::<(), proctrack::Error>(())
/// ```
pub fn kill_cwd(dir: impl AsRef<Path>, options: &KillOptions) -> Result<KillReport> {
    imp::kill_cwd(&resolve(dir.as_ref()), options)
}

/// The path the kernel would report for `dir`.
fn resolve(dir: &Path) -> PathBuf {
    match std::fs::canonicalize(dir) {
        Ok(path) => path,
        Err(_) if dir.is_absolute() => dir.to_path_buf(),
        Err(_) => std::env::current_dir()
            .map(|cwd| cwd.join(dir))
            .unwrap_or_else(|_| dir.to_path_buf()),
    }
}

/// `path` is `dir` or below it, component by component.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
pub(crate) fn is_under(path: &Path, dir: &Path) -> bool {
    path.starts_with(dir)
}

/// One code path for Linux and macOS: the platform's
/// [`SystemSource`](crate::SystemSource), through [`ProcessSource`](crate::ProcessSource).
#[cfg(any(target_os = "linux", target_os = "macos"))]
mod imp {
    use std::path::Path;

    use super::is_under;
    use crate::signal::KillOptions;
    use crate::signal::KillReport;
    use crate::signal::killer::kill_roots;
    use crate::signal::scan::{Node, Snapshot};
    use crate::{Error, ProcessIdentity, ProcessSource, Result};

    pub(super) fn kill_cwd(dir: &Path, options: &KillOptions) -> Result<KillReport> {
        let mut reader = crate::system::open()?;
        let mut snapshot = Snapshot::default();
        snapshot.refresh(&mut reader)?;
        let mut nodes: Vec<Node> = snapshot
            .nodes()
            .filter(|node| !node.kernel_thread)
            .copied()
            .collect();
        nodes.sort_unstable_by_key(|node| node.pid);
        let mut roots = Vec::new();
        let boot = reader.boot_id();
        for node in nodes {
            // `read_cwd` checks the start time after reading: the snapshot saw
            // it before, so one process held the pid throughout and the cwd is
            // that process's; NotFound when the pid changed hands.
            let identity = ProcessIdentity::new(boot, node.pid, node.start);
            let cwd = match reader.read_cwd(identity) {
                Ok(cwd) => cwd,
                Err(Error::NotFound { .. }) => continue,
                Err(other) => return Err(other),
            };
            if cwd.path().is_some_and(|path| is_under(path, dir)) {
                roots.push(identity);
            }
        }
        kill_roots(&roots, options, None, false)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod imp {
    use std::path::Path;

    use crate::signal::{KillOptions, KillReport};
    use crate::{Error, Result};

    pub(super) fn kill_cwd(_dir: &Path, _options: &KillOptions) -> Result<KillReport> {
        Err(Error::Unsupported {
            what: "killing processes by working directory on this platform",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_by_component() {
        let dir = Path::new("/wt/ab");
        assert!(is_under(Path::new("/wt/ab"), dir));
        assert!(is_under(Path::new("/wt/ab/x"), dir));
        assert!(is_under(Path::new("/wt/ab/x/y"), dir));
        assert!(!is_under(Path::new("/wt/abc"), dir));
        assert!(!is_under(Path::new("/wt/abc/x"), dir));
        assert!(!is_under(Path::new("/wt"), dir));
        assert!(!is_under(Path::new("/"), dir));
        assert!(is_under(Path::new("/wt/ab/x"), Path::new("/wt/ab/")));
        assert!(is_under(Path::new("/anything"), Path::new("/")));
    }
}
