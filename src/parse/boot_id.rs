use crate::BootId;

/// Why a boot id could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a boot id (expected 32 hex digits in 8-4-4-4-12 groups)")]
pub struct BootIdError;

/// Parses `/proc/sys/kernel/random/boot_id`: a UUID in its usual text form,
/// optionally followed by a newline.
///
/// ```
/// let id = proctrack::parse::parse_boot_id(b"0f2c1d9e-4a1b-4c3d-8e5f-6a7b8c9d0e1f\n")?;
/// assert_eq!(id.as_bytes()[0], 0x0f);
/// # Ok::<(), proctrack::parse::BootIdError>(())
/// ```
pub fn parse_boot_id(bytes: &[u8]) -> Result<BootId, BootIdError> {
    let text = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if text.len() != 36 {
        return Err(BootIdError);
    }
    let mut out = [0u8; 16];
    let mut nibbles = 0usize;
    for (i, &c) in text.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return Err(BootIdError);
            }
            continue;
        }
        let value = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return Err(BootIdError),
        };
        out[nibbles / 2] |= value << if nibbles % 2 == 0 { 4 } else { 0 };
        nibbles += 1;
    }
    Ok(BootId::from_bytes(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]
        #[test]
        fn round_trips(bytes in any::<[u8; 16]>(), newline in any::<bool>()) {
            let id = BootId::from_bytes(bytes);
            let mut text = id.to_string();
            if newline { text.push('\n'); }
            prop_assert_eq!(parse_boot_id(text.as_bytes()), Ok(id));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_boot_id(&bytes);
        }
    }

    #[test]
    fn rejects_near_misses() {
        assert!(parse_boot_id(b"").is_err());
        assert!(parse_boot_id(b"0f2c1d9e-4a1b-4c3d-8e5f-6a7b8c9d0e1").is_err());
        assert!(parse_boot_id(b"0f2c1d9e_4a1b-4c3d-8e5f-6a7b8c9d0e1f").is_err());
        assert!(parse_boot_id(b"0f2c1d9e-4a1b-4c3d-8e5f-6a7b8c9d0e1g").is_err());
    }
}
