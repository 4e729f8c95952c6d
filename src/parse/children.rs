//! `/proc/<pid>/task/<tid>/children`: the pids a thread forked that are alive
//! and still its children, as decimal numbers each followed by a space.

use crate::Pid;

/// Appends every pid in `text` to `out`. Anything that is not a valid pid
/// (0, negative, too large, not a number) is skipped: the kernel writes only
/// valid pids, and a stray token must not become a kill target.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn parse_children(text: &[u8], out: &mut Vec<Pid>) {
    out.extend(
        text.split(u8::is_ascii_whitespace)
            .filter_map(super::decimal::pid),
    );
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse(text: &[u8]) -> Vec<i32> {
        let mut out = Vec::new();
        parse_children(text, &mut out);
        out.into_iter().map(Pid::as_raw).collect()
    }

    #[test]
    fn reads_what_the_kernel_writes() {
        assert_eq!(parse(b""), Vec::<i32>::new());
        assert_eq!(parse(b"42 "), vec![42]);
        assert_eq!(parse(b"42 43 2147483647 "), vec![42, 43, i32::MAX]);
        assert_eq!(parse(b"0 -1 2147483648 99999999999 x1 7"), vec![7]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn round_trips(pids in proptest::collection::vec(1..=i32::MAX, 0..64)) {
            let text: String = pids.iter().map(|pid| format!("{pid} ")).collect();
            prop_assert_eq!(parse(text.as_bytes()), pids);
        }
    }
}
