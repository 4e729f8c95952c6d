use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::Cwd;

/// The bytes of a fixed-size C `char` array up to its first NUL; all of it
/// when there is none (a string that filled the array).
///
/// macOS hands strings back this way inside structs: the process name
/// (`pbi_name`, `pbi_comm`, `p_comm`), the vnode path of a working directory,
/// the boot session UUID.
pub fn c_string_bytes(array: &[u8]) -> &[u8] {
    let end = array.iter().position(|&b| b == 0).unwrap_or(array.len());
    &array[..end]
}

/// Decodes the working directory from `proc_pidinfo(PROC_PIDVNODEPATHINFO)`
/// (macOS): the `vip_path` array of `pvi_cdir`, and the link count
/// (`vst_nlink`) from the same record.
///
/// An empty path is [`Cwd::Unknown`]: the kernel could not name the directory
/// (or the process has none). A link count of 0 is a directory removed while
/// the process stood in it: [`Cwd::Deleted`] with the path it had.
pub fn parse_vnode_path(path: &[u8], link_count: u16) -> Cwd {
    let path = c_string_bytes(path);
    if path.is_empty() {
        return Cwd::Unknown;
    }
    let path = PathBuf::from(OsStr::from_bytes(path));
    if link_count == 0 {
        Cwd::Deleted(path)
    } else {
        Cwd::Path(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `MAXPATHLEN`, the size of `vip_path`.
    const VIP_PATH: usize = 1024;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]
        #[test]
        fn round_trips(path in proptest::collection::vec(1..=255u8, 1..VIP_PATH), links in any::<u16>(), junk in any::<u8>()) {
            let mut array = [junk; VIP_PATH];
            array[..path.len()].copy_from_slice(&path);
            array[path.len()] = 0;
            let cwd = parse_vnode_path(&array, links);
            prop_assert_eq!(cwd.path().map(|p| p.as_os_str().as_bytes()), Some(&path[..]));
            prop_assert_eq!(matches!(cwd, Cwd::Deleted(_)), links == 0);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1100), links in any::<u16>()) {
            let cwd = parse_vnode_path(&bytes, links);
            let kept = cwd.path().map_or(0, |p| p.as_os_str().len());
            prop_assert!(kept <= bytes.len());
            prop_assert_eq!(kept, c_string_bytes(&bytes).len());
        }
    }

    #[test]
    fn a_path_that_fills_the_array_is_kept_whole() {
        let array = [b'a'; VIP_PATH];
        assert_eq!(
            parse_vnode_path(&array, 2)
                .path()
                .map(|p| p.as_os_str().len()),
            Some(VIP_PATH)
        );
    }

    #[test]
    fn non_utf8_path() {
        let mut array = [0u8; VIP_PATH];
        array[..10].copy_from_slice(b"/tmp/caf\xe9/");
        assert_eq!(
            parse_vnode_path(&array, 2),
            Cwd::Path(PathBuf::from(OsStr::from_bytes(b"/tmp/caf\xe9/")))
        );
    }
}

/// The examples these functions documented while they were public.
#[cfg(test)]
mod examples {
    #[test]
    fn c_string_bytes_example() -> Result<(), Box<dyn std::error::Error>> {
        use crate::parse::c_string_bytes;
        assert_eq!(c_string_bytes(b"launchd\0\0\0\0"), b"launchd");
        assert_eq!(c_string_bytes(b"full"), b"full");
        assert_eq!(c_string_bytes(b"\0garbage"), b"");
        Ok(())
    }

    #[test]
    fn parse_vnode_path_example() -> Result<(), Box<dyn std::error::Error>> {
        use crate::{Cwd, parse::parse_vnode_path};

        let mut array = [0u8; 1024];
        array[..8].copy_from_slice(b"/srv/app");
        assert_eq!(parse_vnode_path(&array, 3), Cwd::Path("/srv/app".into()));
        assert_eq!(parse_vnode_path(&array, 0), Cwd::Deleted("/srv/app".into()));
        assert_eq!(parse_vnode_path(&[0; 1024], 2), Cwd::Unknown);
        Ok(())
    }
}
