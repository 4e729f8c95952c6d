//! Unsigned decimal numbers as the kernel writes them: ASCII digits only,
//! no sign, no space, no leading `+`. Every pid, fd and inode token the
//! crate reads goes through [`decimal`].

use crate::Pid;

/// The value of `digits`, or `None` when it is empty, holds anything but
/// ASCII digits, or overflows a `u64`.
pub(crate) fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, digit| {
        acc.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

/// A pid token (a /proc entry, a `cgroup.procs` line, a `children` entry):
/// digits in 1..=`i32::MAX`, else `None`.
pub(crate) fn pid(digits: &[u8]) -> Option<Pid> {
    Pid::try_from(decimal(digits)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn edges() {
        assert_eq!(decimal(b"0"), Some(0));
        assert_eq!(decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(decimal(b"18446744073709551616"), None);
        assert_eq!(decimal(b""), None);
        assert_eq!(decimal(b"+1"), None);
        assert_eq!(decimal(b" 1"), None);
        assert_eq!(pid(b"0"), None);
        assert_eq!(pid(b"2147483647").map(Pid::as_raw), Some(i32::MAX));
        assert_eq!(pid(b"2147483648"), None);
    }

    proptest! {
        #[test]
        fn agrees_with_std(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
            let expected = std::str::from_utf8(&bytes)
                .ok()
                .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok());
            prop_assert_eq!(decimal(&bytes), expected);
            let expected_pid = expected.and_then(|v| Pid::try_from(v).ok());
            prop_assert_eq!(pid(&bytes), expected_pid);
        }

        #[test]
        fn digit_strings_round_trip(value: u64) {
            prop_assert_eq!(decimal(value.to_string().as_bytes()), Some(value));
        }
    }
}
