//! Environment tags: a variable set at spawn that every descendant inherits.
//!
//! `/proc/<pid>/environ` holds the environment a process was started with
//! (what `exec` got), readable by the same user. A job's tag
//! (`PROCTRACK_JOB=<job id>`) is found there in every descendant that kept
//! its environment, even after it double-forked, called `setsid`, changed
//! directory and reparented to init. A process that clears its environment
//! loses the tag: the tag finds, it does not contain (a cgroup does).
//!
//! ```
//! use proctrack::supervisor::tag;
//!
//! let mut command = std::process::Command::new("sleep");
//! tag::set(&mut command, "build-42");
//! let environ = b"HOME=/root\0PROCTRACK_JOB=build-42\0";
//! assert_eq!(tag::job_of(environ), Some(&b"build-42"[..]));
//! ```

use std::process::Command;

/// The variable that carries a job's id.
pub const JOB_VAR: &str = "PROCTRACK_JOB";

/// Sets [`JOB_VAR`]`=<job_id>` in `command`'s environment.
pub fn set(command: &mut Command, job_id: &str) {
    command.env(JOB_VAR, job_id);
}

/// The value of `name` in the bytes of a `/proc/<pid>/environ` file
/// (`NAME=value` entries, each ended by NUL). The first entry wins, as in
/// `getenv`. `None` when it is absent; any bytes are accepted.
///
/// ```
/// use proctrack::supervisor::tag::find;
/// assert_eq!(find(b"A=1\0B=x=y\0", "B"), Some(&b"x=y"[..]));
/// assert_eq!(find(b"AB=1\0", "A"), None);
/// ```
pub fn find<'a>(environ: &'a [u8], name: &str) -> Option<&'a [u8]> {
    environ
        .split(|&b| b == 0)
        .find_map(|entry| entry.strip_prefix(name.as_bytes())?.strip_prefix(b"="))
}

/// The job id tag ([`JOB_VAR`]) in the bytes of an environ file.
pub fn job_of(environ: &[u8]) -> Option<&[u8]> {
    find(environ, JOB_VAR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_values_and_unterminated_last_entries() {
        assert_eq!(find(b"A=\0", "A"), Some(&b""[..]));
        assert_eq!(find(b"X=1\0A=2", "A"), Some(&b"2"[..]));
        assert_eq!(find(b"A=1\0A=2\0", "A"), Some(&b"1"[..]));
        assert_eq!(find(b"", "A"), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]
        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), name in "[A-Z_=]{0,5}") {
            let _ = find(&bytes, &name);
            let _ = job_of(&bytes);
        }

        #[test]
        fn finds_a_tag_among_other_entries(
            before in prop::collection::vec("[A-Z]{1,6}=[^\0]{0,10}", 0..5),
            after in prop::collection::vec("[A-Z_]{1,16}=[^\0]{0,10}", 0..5),
            id in "[a-z0-9-]{1,20}",
        ) {
            let mut environ = Vec::new();
            for entry in &before {
                environ.extend(entry.as_bytes());
                environ.push(0);
            }
            environ.extend(format!("{JOB_VAR}={id}\0").bytes());
            for entry in &after {
                environ.extend(entry.as_bytes());
                environ.push(0);
            }
            prop_assert_eq!(job_of(&environ), Some(id.as_bytes()));
        }
    }
}
