/// Finds the `Tgid:` line of `/proc/<pid>/status`: the thread group (process)
/// that a task id belongs to. `None` when the line is missing or malformed.
///
/// `/proc/<tid>` opens for every thread, though `readdir(/proc)` lists only
/// thread group leaders; a task whose Tgid differs from its id is a thread.
///
/// ```
/// let status = b"Name:\tbash\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t812\nPid:\t815\n";
/// assert_eq!(proctrack::parse::parse_status_tgid(status), Some(812));
/// ```
pub fn parse_status_tgid(status: &[u8]) -> Option<i32> {
    let line = status
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"Tgid:"))?;
    super::decimal::pid(line.trim_ascii()).map(crate::Pid::as_raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]
        #[test]
        fn finds_tgid(tgid in 0..=i32::MAX, before in "[A-Za-z]{1,8}:\t[ -~]{0,20}\n") {
            let text = format!("{before}Tgid:\t{tgid}\nPid:\t1\n");
            prop_assert_eq!(parse_status_tgid(text.as_bytes()), Some(tgid));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_status_tgid(&bytes);
        }
    }

    #[test]
    fn rejects_overflow() {
        assert_eq!(parse_status_tgid(b"Tgid:\t99999999999\n"), None);
        assert_eq!(parse_status_tgid(b"Tgid:\t\n"), None);
    }
}
