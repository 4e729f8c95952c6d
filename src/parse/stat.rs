/// The fields of `/proc/<pid>/stat` that proctrack uses, borrowed from the bytes.
///
/// Field numbers follow proc(5). Values are as the kernel prints them: times in
/// clock ticks, `rss` in pages, `vsize` in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat<'a> {
    /// (1) The task id.
    pub pid: i32,
    /// (2) The command name: any bytes, possibly with spaces, parentheses and
    /// newlines; kernel threads' names can exceed 16 bytes.
    pub comm: &'a [u8],
    /// (3) The state letter (`R`, `S`, `D`, `Z`, `T`, `t`, `X`, `I`, ...).
    pub state: u8,
    /// (4) Parent pid; 0 for the roots (pids 1 and 2).
    pub ppid: i32,
    /// (5) Process group id.
    pub pgrp: i32,
    /// (6) Session id.
    pub session: i32,
    /// (7) Controlling terminal device number; 0 for none.
    pub tty_nr: i32,
    /// (9) Kernel flags (`PF_*`).
    pub flags: u32,
    /// (14) User-mode CPU time, clock ticks.
    pub utime: u64,
    /// (15) Kernel-mode CPU time, clock ticks.
    pub stime: u64,
    /// (20) Number of threads.
    pub num_threads: i64,
    /// (22) Start time, clock ticks since boot.
    pub starttime: u64,
    /// (23) Virtual memory size, bytes.
    pub vsize: u64,
    /// (24) Resident set size, pages.
    pub rss: i64,
    /// (26) Start address of the program text (1 when not ptrace-readable).
    pub startcode: u64,
    /// (27) End address of the program text (1 when not ptrace-readable).
    pub endcode: u64,
}

/// `PF_KTHREAD`: the task is a kernel thread.
const PF_KTHREAD: u32 = 0x0020_0000;

impl Stat<'_> {
    /// True for kernel threads (`PF_KTHREAD` in the flags).
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
}

/// Why a stat line could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatError {
    /// No `(` or `)` around the command name.
    #[error("no parenthesised command name")]
    NoComm,
    /// The line ended before the named field.
    #[error("missing field {0}")]
    Missing(&'static str),
    /// The named field is not a number of its type.
    #[error("field {0} is not a valid number")]
    BadNumber(&'static str),
}

/// Parses the bytes of `/proc/<pid>/stat`.
///
/// The command name is everything between the first `(` and the *last* `)`:
/// a process may name itself `a) b\nc) Z 9`, and only the last parenthesis is
/// the kernel's. Never panics; any malformed input is a [`StatError`].
///
/// ```
/// use proctrack::parse::parse_stat;
///
/// let line = b"77 (a) b (c) S 1 77 77 0 -1 4194560 100 0 0 0 12 3 0 0 20 0 1 0 \
/// 5120 12345678 300 18446744073709551615 4194304 4196000 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
/// let stat = parse_stat(line)?;
/// assert_eq!(stat.comm, b"a) b (c");
/// assert_eq!((stat.state, stat.ppid, stat.starttime, stat.rss), (b'S', 1, 5120, 300));
/// # Ok::<(), proctrack::parse::StatError>(())
/// ```
pub fn parse_stat(bytes: &[u8]) -> Result<Stat<'_>, StatError> {
    let open = bytes
        .iter()
        .position(|&b| b == b'(')
        .ok_or(StatError::NoComm)?;
    let close = bytes
        .iter()
        .rposition(|&b| b == b')')
        .ok_or(StatError::NoComm)?;
    if close < open {
        return Err(StatError::NoComm);
    }
    let pid = parse_int(bytes[..open].trim_ascii(), "pid")?;
    let comm = &bytes[open + 1..close];
    let rest = bytes[close + 1..].trim_ascii();
    if rest.is_empty() {
        return Err(StatError::Missing("state"));
    }
    let mut fields = Fields {
        inner: rest.split(|&b| b == b' '),
    };

    let state = match fields.next("state")? {
        [letter] => *letter,
        _ => return Err(StatError::BadNumber("state")),
    };
    let ppid = parse_int(fields.next("ppid")?, "ppid")?;
    let pgrp = parse_int(fields.next("pgrp")?, "pgrp")?;
    let session = parse_int(fields.next("session")?, "session")?;
    let tty_nr = parse_int(fields.next("tty_nr")?, "tty_nr")?;
    fields.skip(1, "tpgid")?;
    let flags = parse_uint(fields.next("flags")?, "flags")?;
    fields.skip(4, "majflt")?;
    let utime = parse_uint(fields.next("utime")?, "utime")?;
    let stime = parse_uint(fields.next("stime")?, "stime")?;
    fields.skip(4, "nice")?;
    let num_threads = parse_int(fields.next("num_threads")?, "num_threads")?;
    fields.skip(1, "itrealvalue")?;
    let starttime = parse_uint(fields.next("starttime")?, "starttime")?;
    let vsize = parse_uint(fields.next("vsize")?, "vsize")?;
    let rss = parse_int(fields.next("rss")?, "rss")?;
    fields.skip(1, "rsslim")?;
    let startcode = parse_uint(fields.next("startcode")?, "startcode")?;
    let endcode = parse_uint(fields.next("endcode")?, "endcode")?;

    Ok(Stat {
        pid,
        comm,
        state,
        ppid,
        pgrp,
        session,
        tty_nr,
        flags,
        utime,
        stime,
        num_threads,
        starttime,
        vsize,
        rss,
        startcode,
        endcode,
    })
}

struct Fields<'a, I: Iterator<Item = &'a [u8]>> {
    inner: I,
}

impl<'a, I: Iterator<Item = &'a [u8]>> Fields<'a, I> {
    fn next(&mut self, name: &'static str) -> Result<&'a [u8], StatError> {
        self.inner.next().ok_or(StatError::Missing(name))
    }

    fn skip(&mut self, count: usize, last: &'static str) -> Result<(), StatError> {
        for _ in 0..count {
            self.next(last)?;
        }
        Ok(())
    }
}

/// Parses an unsigned decimal that fits `T`, or fails with the field name.
fn parse_uint<T: TryFrom<u64>>(digits: &[u8], field: &'static str) -> Result<T, StatError> {
    if digits.is_empty() {
        return Err(StatError::BadNumber(field));
    }
    let mut value: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(StatError::BadNumber(field));
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or(StatError::BadNumber(field))?;
    }
    T::try_from(value).map_err(|_| StatError::BadNumber(field))
}

/// Parses a signed decimal that fits `T`, or fails with the field name.
fn parse_int<T: TryFrom<i64>>(digits: &[u8], field: &'static str) -> Result<T, StatError> {
    let (negative, magnitude) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    let magnitude: u64 = parse_uint(magnitude, field)?;
    let value = if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    };
    value
        .and_then(|v| T::try_from(v).ok())
        .ok_or(StatError::BadNumber(field))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Formats a stat line the way the kernel does (fs/proc/array.c), with
    /// plausible values in the fields the parser skips.
    fn format_stat(s: &Stat<'_>) -> Vec<u8> {
        let mut line = format!("{} (", s.pid).into_bytes();
        line.extend_from_slice(s.comm);
        line.extend_from_slice(
            format!(
                ") {} {} {} {} {} -1 {} 10 0 2 0 {} {} 0 0 20 0 {} 0 {} {} {} 18446744073709551615 {} {} \
                 140730000000000 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
                s.state as char,
                s.ppid,
                s.pgrp,
                s.session,
                s.tty_nr,
                s.flags,
                s.utime,
                s.stime,
                s.num_threads,
                s.starttime,
                s.vsize,
                s.rss,
                s.startcode,
                s.endcode,
            )
            .as_bytes(),
        );
        line
    }

    fn state_letter() -> impl Strategy<Value = u8> {
        prop::sample::select(b"RSDZTtXxKWPI".to_vec())
    }

    /// comm bytes biased towards the ones that break naive parsers.
    fn hostile_comm() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            3 => prop::sample::select(b"() \n)(Z9".to_vec()),
            2 => any::<u8>(),
        ];
        proptest::collection::vec(byte, 0..64)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]
        #[test]
        fn round_trips(
            pid in any::<i32>(), comm in hostile_comm(), state in state_letter(),
            ppid in any::<i32>(), pgrp in any::<i32>(), session in any::<i32>(),
            tty_nr in any::<i32>(), flags in any::<u32>(), utime in any::<u64>(),
            stime in any::<u64>(), num_threads in any::<i64>(), starttime in any::<u64>(),
            vsize in any::<u64>(), rss in any::<i64>(), startcode in any::<u64>(),
            endcode in any::<u64>(),
        ) {
            let expected = Stat {
                pid, comm: &comm, state, ppid, pgrp, session, tty_nr, flags, utime, stime,
                num_threads, starttime, vsize, rss, startcode, endcode,
            };
            let line = format_stat(&expected);
            prop_assert_eq!(parse_stat(&line), Ok(expected));
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_stat(&bytes);
        }

        #[test]
        fn never_panics_on_mutated_lines(
            comm in hostile_comm(), cut in 0usize..400, flip in 0usize..400, byte in any::<u8>(),
        ) {
            let stat = Stat {
                pid: 5, comm: &comm, state: b'S', ppid: 1, pgrp: 5, session: 5, tty_nr: 0,
                flags: 0, utime: 1, stime: 2, num_threads: 1, starttime: 3, vsize: 4, rss: 5,
                startcode: 6, endcode: 7,
            };
            let mut line = format_stat(&stat);
            if flip < line.len() { line[flip] = byte; }
            line.truncate(cut.min(line.len()));
            let _ = parse_stat(&line);
        }
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(parse_stat(b""), Err(StatError::NoComm));
        assert_eq!(parse_stat(b"1 )x( S"), Err(StatError::NoComm));
        assert_eq!(parse_stat(b"1 (x)"), Err(StatError::Missing("state")));
        assert_eq!(
            parse_stat(b"1 (x) S 1 2"),
            Err(StatError::Missing("session"))
        );
        assert_eq!(parse_stat(b"x (x) S"), Err(StatError::BadNumber("pid")));
        assert_eq!(
            parse_stat(b"1 (x) SS 1"),
            Err(StatError::BadNumber("state"))
        );
        assert_eq!(
            parse_stat(b"1 (x) S 99999999999 1"),
            Err(StatError::BadNumber("ppid"))
        );
        assert_eq!(
            parse_stat(b"1 (x) S - 1"),
            Err(StatError::BadNumber("ppid"))
        );
    }
}
