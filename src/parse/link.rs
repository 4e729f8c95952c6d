use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::Cwd;

/// The suffix the kernel appends to a link whose target directory was removed.
const DELETED_SUFFIX: &[u8] = b" (deleted)";

/// Decodes the target of `/proc/<pid>/cwd` as `readlink` returns it.
///
/// A target ending in `" (deleted)"` is a directory that was removed while the
/// process stood in it: [`Cwd::Deleted`] with the suffix stripped.
///
/// ```
/// use proctrack::{Cwd, parse::parse_cwd_link};
/// assert_eq!(parse_cwd_link(b"/srv/app"), Cwd::Path("/srv/app".into()));
/// assert_eq!(parse_cwd_link(b"/tmp/wt (deleted)"), Cwd::Deleted("/tmp/wt".into()));
/// ```
pub fn parse_cwd_link(target: &[u8]) -> Cwd {
    match target.strip_suffix(DELETED_SUFFIX) {
        Some(path) if target.starts_with(b"/") => Cwd::Deleted(to_path(path)),
        _ => Cwd::Path(to_path(target)),
    }
}

fn to_path(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]
        #[test]
        fn keeps_every_byte(bytes in proptest::collection::vec(any::<u8>(), 0..200), deleted in any::<bool>()) {
            let mut target = b"/".to_vec();
            target.extend(bytes.iter().filter(|&&b| b != 0));
            let path = target.clone();
            if deleted { target.extend_from_slice(DELETED_SUFFIX); }
            let cwd = parse_cwd_link(&target);
            let got = cwd.path().map(|p| p.as_os_str().as_bytes().to_vec());
            // A path that itself ends in " (deleted)" is ambiguous; the kernel's
            // own output has the same ambiguity, so only check the other cases.
            if !path.ends_with(DELETED_SUFFIX) {
                prop_assert_eq!(got, Some(path));
                prop_assert_eq!(matches!(cwd, Cwd::Deleted(_)), deleted);
            }
        }
    }
}
