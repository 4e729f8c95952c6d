use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// Splits `/proc/<pid>/cmdline` bytes into arguments, without copying.
///
/// Arguments are separated by NUL bytes and the last one is NUL-terminated. A
/// process that rewrote its argument area (setproctitle) may leave no NUL at
/// all: that is one argument. Empty input (a zombie, a kernel thread) has none.
///
/// ```
/// let args: Vec<&[u8]> = proctrack::parse::split_cmdline(b"ls\0-l\0\0").collect();
/// assert_eq!(args, [&b"ls"[..], b"-l", b""]);
/// assert_eq!(proctrack::parse::split_cmdline(b"").count(), 0);
/// ```
pub fn split_cmdline(bytes: &[u8]) -> impl Iterator<Item = &[u8]> + Clone + '_ {
    let body = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    let empty = bytes.is_empty();
    body.split(|&b| b == 0).filter(move |_| !empty)
}

/// A command line: the program's arguments, byte for byte.
///
/// Arguments are kept as raw bytes in one allocation, so non-UTF-8 arguments
/// round-trip exactly; [`CommandLine::args`] hands them out as [`OsStr`].
/// With the `serde` feature it serializes as a list of strings, non-UTF-8 bytes
/// replaced by U+FFFD (for display; the value in memory is never lossy).
///
/// ```
/// use proctrack::CommandLine;
///
/// let cmd = CommandLine::from_args(["cargo", "run", "--release"]);
/// assert_eq!(cmd.args().count(), 3);
/// assert_eq!(cmd.to_string(), "cargo run --release");
/// assert_eq!(cmd.program().map(|p| p.to_str()), Some(Some("cargo")));
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct CommandLine {
    /// As `/proc/<pid>/cmdline` has it: NUL-terminated arguments.
    raw: Box<[u8]>,
}

impl CommandLine {
    /// Takes the raw bytes of `/proc/<pid>/cmdline` (or any NUL-separated list).
    pub fn from_raw(raw: Vec<u8>) -> CommandLine {
        CommandLine {
            raw: raw.into_boxed_slice(),
        }
    }

    /// Builds a command line from arguments. An interior NUL would split an
    /// argument in two, as it would in a real process's argument area.
    pub fn from_args<I, S>(args: I) -> CommandLine
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut raw = Vec::new();
        for arg in args {
            raw.extend_from_slice(arg.as_ref().as_bytes());
            raw.push(0);
        }
        CommandLine::from_raw(raw)
    }

    /// The arguments, the program name first.
    pub fn args(&self) -> impl Iterator<Item = &OsStr> + Clone + '_ {
        split_cmdline(&self.raw).map(OsStr::from_bytes)
    }

    /// The first argument, usually the program as it was invoked.
    pub fn program(&self) -> Option<&OsStr> {
        self.args().next()
    }

    /// True when there are no arguments (zombies and kernel threads).
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The raw bytes, NUL-separated as the kernel gives them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The arguments as owned strings.
    pub fn to_vec(&self) -> Vec<OsString> {
        self.args()
            .map(|arg| OsString::from_vec(arg.as_bytes().to_vec()))
            .collect()
    }
}

impl fmt::Display for CommandLine {
    /// The arguments joined by spaces, lossily decoded (for display only).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, arg) in self.args().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{}", arg.to_string_lossy())?;
        }
        Ok(())
    }
}

impl fmt::Debug for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.args()).finish()
    }
}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl serde::Serialize for CommandLine {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.args().map(OsStr::to_string_lossy))
    }
}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> serde::Deserialize<'de> for CommandLine {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<CommandLine, D::Error> {
        let args = Vec::<String>::deserialize(deserializer)?;
        Ok(CommandLine::from_args(args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]
        #[test]
        fn args_round_trip(args in proptest::collection::vec(
            proptest::collection::vec(1..=255u8, 0..40), 1..12)) {
            let cmd = CommandLine::from_args(args.iter().map(|a| OsStr::from_bytes(a)));
            let back: Vec<Vec<u8>> = cmd.args().map(|a| a.as_bytes().to_vec()).collect();
            prop_assert_eq!(back, args);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let cmd = CommandLine::from_raw(bytes.clone());
            // Every byte but the separators comes back out.
            let total: usize = cmd.args().map(|a| a.len()).sum();
            let nuls = bytes.iter().filter(|&&b| b == 0).count();
            prop_assert_eq!(total, bytes.len() - nuls);
            let _ = cmd.to_string();
        }
    }

    #[test]
    fn setproctitle_without_nul_is_one_argument() {
        let cmd = CommandLine::from_raw(b"nginx: worker process".to_vec());
        assert_eq!(cmd.to_vec(), [OsString::from("nginx: worker process")]);
    }
}
