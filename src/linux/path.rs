//! `"<pid>/<leaf>\0"` paths built on the stack: no allocation per file opened.

use std::ffi::CStr;

use crate::Pid;

/// Room for the longest pid (10 digits), a slash, the longest leaf we open
/// (`cmdline`, `status`) and the NUL.
const CAPACITY: usize = 32;

/// A NUL-terminated relative path under a proc root.
pub(super) struct PidPath {
    bytes: [u8; CAPACITY],
}

impl PidPath {
    /// `"<pid>/<leaf>"`, or just `"<pid>"` when `leaf` is empty.
    pub(super) fn new(pid: Pid, leaf: &str) -> PidPath {
        let mut bytes = [0u8; CAPACITY];
        let mut digits = [0u8; 10];
        let mut value = pid.as_u32();
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        let digits = &digits[start..];
        let mut len = digits.len();
        bytes[..len].copy_from_slice(digits);
        if !leaf.is_empty() {
            // Leaves are our own short constants; cut rather than overflow.
            let leaf = &leaf.as_bytes()[..leaf.len().min(CAPACITY - len - 2)];
            bytes[len] = b'/';
            bytes[len + 1..len + 1 + leaf.len()].copy_from_slice(leaf);
            len += 1 + leaf.len();
        }
        bytes[len] = 0;
        PidPath { bytes }
    }

    pub(super) fn as_c_str(&self) -> &CStr {
        // The array is zero-filled and `new` always leaves a NUL in it.
        CStr::from_bytes_until_nul(&self.bytes).unwrap_or(c"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]
        #[test]
        fn formats_like_format(raw in 1..=i32::MAX, leaf in prop::sample::select(vec!["", "stat", "cmdline", "status"])) {
            let pid = Pid::try_from(raw).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let expected = if leaf.is_empty() { raw.to_string() } else { format!("{raw}/{leaf}") };
            let path = PidPath::new(pid, leaf);
            prop_assert_eq!(path.as_c_str().to_str().ok(), Some(expected.as_str()));
        }
    }
}
