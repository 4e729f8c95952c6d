//! [`Pid`]: a process id that is always safe to signal.
//!
//! `kill(0, sig)` signals our whole process group and `kill(-1, sig)` signals every
//! process we may signal. A `u32 as i32` cast can produce either from a value that
//! looked harmless, so a [`Pid`] can only hold `1..=i32::MAX`: every conversion
//! checks, and a wrong value becomes [`Error::InvalidPid`] instead of a mass kill.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use crate::Error;

/// A process id in `1..=i32::MAX`.
///
/// Build one with [`TryFrom`] from any integer type or by parsing a string; 0,
/// negative values and values above `i32::MAX` are rejected.
///
/// A `Pid` alone names whatever process holds that number *now*. To name one
/// particular process across time, use [`ProcessIdentity`](crate::ProcessIdentity).
///
/// ```
/// use proctrack::Pid;
///
/// let pid = Pid::try_from(1234_u32)?;
/// assert_eq!(pid.as_raw(), 1234);
/// assert!(Pid::try_from(0_i32).is_err());
/// assert!(Pid::try_from(-1_i64).is_err());
/// assert!(Pid::try_from(u32::MAX).is_err());
/// assert_eq!("42".parse::<Pid>()?.as_raw(), 42);
/// # Ok::<(), proctrack::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "i64", into = "i32"))]
pub struct Pid(NonZeroU32);

impl Pid {
    /// The largest value a pid can hold on any platform we support.
    pub const MAX: Pid = match NonZeroU32::new(i32::MAX as u32) {
        Some(raw) => Pid(raw),
        None => unreachable!(),
    };

    /// The pid of the calling process.
    ///
    /// ```
    /// assert_eq!(proctrack::Pid::current().as_u32(), std::process::id());
    /// ```
    pub fn current() -> Pid {
        // The kernel never hands a process a pid outside 1..=i32::MAX.
        Pid::from_checked(i64::from(std::process::id())).unwrap_or(Pid::MAX)
    }

    /// The pid as the signed integer that system calls take. Always positive.
    pub const fn as_raw(self) -> i32 {
        self.0.get() as i32
    }

    /// The pid as an unsigned integer, as [`std::process::Child::id`] gives it.
    pub const fn as_u32(self) -> u32 {
        self.0.get()
    }

    /// The one place a raw value becomes a `Pid`.
    fn from_checked(value: i64) -> Option<Pid> {
        if (1..=i64::from(i32::MAX)).contains(&value) {
            NonZeroU32::new(value as u32).map(Pid)
        } else {
            None
        }
    }

    fn from_wide(value: i128) -> Result<Pid, Error> {
        i64::try_from(value)
            .ok()
            .and_then(Pid::from_checked)
            .ok_or(Error::InvalidPid { value })
    }
}

macro_rules! pid_try_from {
    ($($int:ty),*) => {$(
        impl TryFrom<$int> for Pid {
            type Error = Error;
            fn try_from(value: $int) -> Result<Pid, Error> {
                Pid::from_wide(value as i128)
            }
        }
    )*};
}
pid_try_from!(i32, u32, i64, u64, isize, usize);

impl From<Pid> for i32 {
    fn from(pid: Pid) -> i32 {
        pid.as_raw()
    }
}

impl From<Pid> for u32 {
    fn from(pid: Pid) -> u32 {
        pid.as_u32()
    }
}

impl FromStr for Pid {
    type Err = Error;

    /// Parses a decimal pid; anything that is not a number in range is
    /// [`Error::InvalidPid`] (with value 0 when the text is not a number at all).
    fn from_str(text: &str) -> Result<Pid, Error> {
        let value: i128 = text
            .trim()
            .parse()
            .map_err(|_| Error::InvalidPid { value: 0 })?;
        Pid::from_wide(value)
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn edges() {
        assert!(Pid::try_from(0_u32).is_err());
        assert!(Pid::try_from(-1_i32).is_err());
        assert!(Pid::try_from(i32::MIN).is_err());
        assert!(Pid::try_from(i32::MAX as u32 + 1).is_err());
        assert!(Pid::try_from(u64::MAX).is_err());
        assert_eq!(Pid::try_from(1_u64).map(Pid::as_raw).ok(), Some(1));
        assert_eq!(
            Pid::try_from(i32::MAX).map(Pid::as_raw).ok(),
            Some(i32::MAX)
        );
        assert!("".parse::<Pid>().is_err());
        assert!("-5".parse::<Pid>().is_err());
        assert!("99999999999999999999999999".parse::<Pid>().is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]
        #[test]
        fn any_i64_is_valid_only_in_range(value in any::<i64>()) {
            let pid = Pid::try_from(value);
            prop_assert_eq!(pid.is_ok(), (1..=i64::from(i32::MAX)).contains(&value));
            if let Ok(pid) = pid {
                prop_assert!(pid.as_raw() > 0);
                prop_assert_eq!(i64::from(pid.as_raw()), value);
            }
        }

        #[test]
        fn any_u64_is_valid_only_in_range(value in any::<u64>()) {
            let pid = Pid::try_from(value);
            prop_assert_eq!(pid.is_ok(), (1..=i32::MAX as u64).contains(&value));
        }
    }
}
