use super::split_cmdline;
use crate::CommandLine;

/// Why a `KERN_PROCARGS2` buffer could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProcArgsError {
    /// Shorter than the 4-byte argument count that starts every such buffer.
    #[error("KERN_PROCARGS2 buffer of {len} bytes has no argument count")]
    TooShort {
        /// How many bytes there were.
        len: usize,
    },
    /// The argument count is negative: the buffer is not what the kernel
    /// writes.
    #[error("KERN_PROCARGS2 buffer has a negative argument count ({argc})")]
    NegativeArgc {
        /// The count as read.
        argc: i32,
    },
}

/// A decoded `KERN_PROCARGS2` buffer (macOS), borrowing from it.
///
/// The buffer is what `sysctl({CTL_KERN, KERN_PROCARGS2, pid})` copies from the
/// top of the process's stack:
///
/// ```text
/// argc          int32, host byte order
/// exec_path\0   the path the kernel executed
/// \0\0...       padding up to pointer alignment
/// argv[0]\0 ... argv[argc-1]\0
/// envp[0]\0 ... then more NULs and the "apple" strings (key=value)
/// ```
///
/// Only the first `argc` strings after the padding are arguments; the
/// environment is never read. The padding is told apart from the arguments the
/// way Apple's `ps` and psutil do it, by skipping every NUL after the
/// executable path: an empty `argv[0]` is indistinguishable from padding and is
/// lost. Empty arguments after the first are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcArgs<'a> {
    /// The argument count the buffer declares.
    pub argc: u32,
    /// The executable path the kernel saved at `exec`.
    pub exec_path: &'a [u8],
    /// The arguments laid out as `/proc/<pid>/cmdline` has them: each
    /// NUL-terminated, except that the last one may lack its NUL when the
    /// buffer was cut short. Fewer than `argc` arguments when it was.
    pub args: &'a [u8],
}

impl<'a> ProcArgs<'a> {
    /// The arguments, byte for byte.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn args(&self) -> impl Iterator<Item = &'a [u8]> + Clone + 'a {
        split_cmdline(self.args)
    }

    /// The arguments as an owned [`CommandLine`].
    pub fn command_line(&self) -> CommandLine {
        CommandLine::from_raw(self.args.to_vec())
    }
}

/// Decodes a `KERN_PROCARGS2` buffer (see [`ProcArgs`] for the layout).
///
/// Never panics. A buffer cut short anywhere yields what it holds: a partial
/// executable path, fewer arguments, a last argument without its end. Only a
/// buffer without a whole argument count, or with a negative one, is an error.
pub fn parse_procargs2(buf: &[u8]) -> Result<ProcArgs<'_>, ProcArgsError> {
    let Some((count, rest)) = buf.split_first_chunk::<4>() else {
        return Err(ProcArgsError::TooShort { len: buf.len() });
    };
    let argc = i32::from_ne_bytes(*count);
    let argc = u32::try_from(argc).map_err(|_| ProcArgsError::NegativeArgc { argc })?;
    // The executable path runs to the first NUL (or to the end, if cut short).
    let path_end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let (exec_path, after_path) = rest.split_at(path_end);
    // Padding: every NUL up to the first argument.
    let first_arg = after_path
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(after_path.len());
    let area = &after_path[first_arg..];
    // Exactly `argc` NUL-terminated strings, or as many as the buffer holds.
    // The loop is bounded by the buffer, not by `argc`.
    let mut end = 0;
    let mut remaining = argc;
    while remaining > 0 && end < area.len() {
        end = match area[end..].iter().position(|&b| b == 0) {
            Some(nul) => end + nul + 1,
            None => area.len(),
        };
        remaining -= 1;
    }
    Ok(ProcArgs {
        argc,
        exec_path,
        args: &area[..end],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Lays out a buffer the way the kernel does.
    fn buffer(exec_path: &[u8], padding: usize, args: &[Vec<u8>], env: &[Vec<u8>]) -> Vec<u8> {
        let argc = i32::try_from(args.len()).unwrap_or(i32::MAX);
        let mut buf = argc.to_ne_bytes().to_vec();
        buf.extend_from_slice(exec_path);
        buf.push(0);
        buf.extend(std::iter::repeat_n(0, padding));
        for string in args.iter().chain(env) {
            buf.extend_from_slice(string);
            buf.push(0);
        }
        // The kernel's apple strings follow the environment after a NUL.
        buf.extend_from_slice(b"\0executable_path=/x\0ptr_munge=\0\0\0");
        buf
    }

    fn decoded_args(buf: &[u8]) -> Vec<Vec<u8>> {
        parse_procargs2(buf)
            .map(|a| a.args().map(<[u8]>::to_vec).collect())
            .unwrap_or_default()
    }

    /// Bytes of a C string: anything but NUL, non-UTF-8 included.
    fn c_string(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(1..=255u8, 0..max)
    }

    /// An argument vector; `argv[0]` is never empty (see the decoder's docs).
    fn argv() -> impl Strategy<Value = Vec<Vec<u8>>> {
        proptest::collection::vec(c_string(24), 0..10).prop_map(|mut args| {
            if let Some(first) = args.first_mut()
                && first.is_empty()
            {
                first.push(b'a');
            }
            args
        })
    }

    /// Executable path, padding, arguments, environment.
    type Layout = (Vec<u8>, usize, Vec<Vec<u8>>, Vec<Vec<u8>>);

    fn layout() -> impl Strategy<Value = Layout> {
        (
            c_string(64),
            0..8usize,
            argv(),
            proptest::collection::vec(c_string(24), 0..6),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]
        #[test]
        fn round_trips((exec_path, padding, args, env) in layout()) {
            let buf = buffer(&exec_path, padding, &args, &env);
            let decoded = parse_procargs2(&buf).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(decoded.argc as usize, args.len());
            prop_assert_eq!(decoded.exec_path, &exec_path[..]);
            let back: Vec<Vec<u8>> = decoded.args().map(<[u8]>::to_vec).collect();
            prop_assert_eq!(&back, &args);
            let owned: Vec<Vec<u8>> = decoded
                .command_line()
                .args()
                .map(|a| std::os::unix::ffi::OsStrExt::as_bytes(a).to_vec())
                .collect();
            prop_assert_eq!(owned, args);
        }

        #[test]
        fn cut_short_keeps_a_prefix((exec_path, padding, args, env) in layout(), cut in any::<prop::sample::Index>()) {
            let buf = buffer(&exec_path, padding, &args, &env);
            let cut = cut.index(buf.len() + 1);
            let Ok(decoded) = parse_procargs2(&buf[..cut]) else {
                prop_assert!(cut < 4);
                return Ok(());
            };
            prop_assert!(exec_path.starts_with(decoded.exec_path));
            let back: Vec<&[u8]> = decoded.args().collect();
            prop_assert!(back.len() <= args.len());
            if let Some((last, whole)) = back.split_last() {
                for (got, want) in whole.iter().zip(&args) {
                    prop_assert_eq!(*got, &want[..]);
                }
                prop_assert!(args[whole.len()].starts_with(last));
            }
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(decoded) = parse_procargs2(&bytes) {
                prop_assert!(decoded.exec_path.len() + decoded.args.len() + 4 <= bytes.len());
                prop_assert!(decoded.args().count() <= decoded.argc as usize);
                let _ = decoded.command_line().to_string();
            }
        }

        #[test]
        fn garbage_after_a_count_decodes(argc in 0..16i32, tail in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut bytes = argc.to_ne_bytes().to_vec();
            bytes.extend_from_slice(&tail);
            let decoded = parse_procargs2(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(decoded.args().count() <= argc as usize);
            prop_assert!(decoded.args.len() <= tail.len());
        }
    }

    /// `/usr/bin/python3 -c 'print(1)'` as a Mac shows it: path, two NULs of
    /// padding, three arguments, the environment, then the apple strings.
    #[test]
    fn captured_python() {
        let mut buf = 3i32.to_ne_bytes().to_vec();
        buf.extend_from_slice(
            b"/usr/bin/python3\0\0\0\0\0\0\0\0\
              python3\0-c\0print(1)\0\
              TERM=xterm-256color\0SHELL=/bin/zsh\0HOME=/Users/me\0\0\
              executable_path=/usr/bin/python3\0ptr_munge=\0main_stack=\0\
              executable_file=0x1a01000009,0x2a3f5\0dyld_file=0x1a01000009,0xfffffff00\0\
              th_port=\0\0\0\0\0\0",
        );
        let args = parse_procargs2(&buf).unwrap();
        assert_eq!(args.argc, 3);
        assert_eq!(args.exec_path, b"/usr/bin/python3");
        assert_eq!(
            args.command_line().to_vec(),
            ["python3", "-c", "print(1)"].map(std::ffi::OsString::from)
        );
    }

    /// A Latin-1 file name: arguments are bytes, never decoded.
    #[test]
    fn non_utf8_arguments() {
        let mut buf = 3i32.to_ne_bytes().to_vec();
        buf.extend_from_slice(b"/bin/cat\0\0\0\0\0\0\0\0cat\0caf\xe9.txt\0\xff\xfe\0LANG=C\0");
        assert_eq!(
            decoded_args(&buf),
            [
                b"cat".to_vec(),
                b"caf\xe9.txt".to_vec(),
                b"\xff\xfe".to_vec()
            ]
        );
        let line = parse_procargs2(&buf).unwrap().command_line();
        assert_eq!(line.as_bytes(), b"cat\0caf\xe9.txt\0\xff\xfe\0");
        assert_eq!(line.to_string(), "cat caf\u{fffd}.txt \u{fffd}\u{fffd}");
    }

    /// `execve(path, {NULL}, envp)`: no arguments at all; the environment that
    /// follows must not be taken for them.
    #[test]
    fn empty_argv() {
        let mut buf = 0i32.to_ne_bytes().to_vec();
        buf.extend_from_slice(b"/usr/libexec/agent\0\0\0\0\0\0PATH=/usr/bin\0\0ptr_munge=\0");
        let args = parse_procargs2(&buf).unwrap();
        assert_eq!(args.argc, 0);
        assert_eq!(args.exec_path, b"/usr/libexec/agent");
        assert_eq!(args.args().count(), 0);
        assert!(args.command_line().is_empty());
    }

    #[test]
    fn empty_arguments_after_the_first_are_kept() {
        let mut buf = 4i32.to_ne_bytes().to_vec();
        buf.extend_from_slice(b"/bin/echo\0\0\0\0\0\0\0echo\0\0x\0\0HOME=/\0");
        assert_eq!(
            decoded_args(&buf),
            [b"echo".to_vec(), Vec::new(), b"x".to_vec(), Vec::new()]
        );
    }

    #[test]
    fn truncated_in_an_argument() {
        let mut buf = 3i32.to_ne_bytes().to_vec();
        buf.extend_from_slice(b"/bin/ls\0ls\0-la\0/Us");
        assert_eq!(
            decoded_args(&buf),
            [b"ls".to_vec(), b"-la".to_vec(), b"/Us".to_vec()]
        );
        // Cut inside the path: the path so far, no arguments.
        let mut buf = 3i32.to_ne_bytes().to_vec();
        buf.extend_from_slice(b"/bin/l");
        let args = parse_procargs2(&buf).unwrap();
        assert_eq!(args.exec_path, b"/bin/l");
        assert_eq!(args.args().count(), 0);
    }

    #[test]
    fn bad_counts_are_errors() {
        assert_eq!(
            parse_procargs2(b"\x01\0\0"),
            Err(ProcArgsError::TooShort { len: 3 })
        );
        assert_eq!(
            parse_procargs2(&(-1i32).to_ne_bytes()),
            Err(ProcArgsError::NegativeArgc { argc: -1 })
        );
        // A huge count over a short buffer stops at the buffer's end.
        let mut buf = i32::MAX.to_ne_bytes().to_vec();
        buf.extend_from_slice(b"/a\0b\0c\0");
        assert_eq!(decoded_args(&buf), [b"b".to_vec(), b"c".to_vec()]);
    }
}

/// The examples these functions documented while they were public.
#[cfg(test)]
mod examples {
    #[test]
    fn parse_procargs2_example() -> Result<(), Box<dyn std::error::Error>> {
        use crate::parse::parse_procargs2;

        let mut buf = 2i32.to_ne_bytes().to_vec();
        buf.extend_from_slice(b"/bin/sleep\0\0\0\0\0\0"); // path, NUL, padding
        buf.extend_from_slice(b"sleep\0");
        buf.extend_from_slice(b"10\0");
        buf.extend_from_slice(b"PATH=/usr/bin\0"); // the environment
        let args = parse_procargs2(&buf)?;
        assert_eq!(args.exec_path, b"/bin/sleep");
        assert_eq!(args.args().collect::<Vec<_>>(), [&b"sleep"[..], b"10"]);
        assert_eq!(args.command_line().to_string(), "sleep 10");
        Ok(())
    }
}
