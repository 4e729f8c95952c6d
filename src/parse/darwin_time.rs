use std::time::Duration;

use crate::StartTime;

/// Converts Mach absolute-time ticks (macOS) to a duration.
///
/// `proc_taskinfo`'s `pti_total_user` and `pti_total_system` count in these
/// ticks; `mach_timebase_info` gives the ratio: one tick is `numer / denom`
/// nanoseconds. On Intel Macs that is 1/1; on Apple Silicon it is 125/3 (a
/// 24 MHz counter), so reading the ticks as nanoseconds there is 41.7 times
/// too little. The product is taken in 128 bits (it cannot overflow) and
/// rounded down; a result beyond [`Duration::MAX`] saturates. A zero `numer`
/// or `denom` (never returned by the kernel) is read as 1/1.
pub fn mach_ticks_to_duration(ticks: u64, numer: u32, denom: u32) -> Duration {
    let (numer, denom) = if numer == 0 || denom == 0 {
        (1, 1)
    } else {
        (numer, denom)
    };
    // At most (2^64 - 1) * (2^32 - 1): well inside u128.
    let nanos = u128::from(ticks) * u128::from(numer) / u128::from(denom);
    let subsec = (nanos % 1_000_000_000) as u32;
    match u64::try_from(nanos / 1_000_000_000) {
        Ok(secs) => Duration::new(secs, subsec),
        Err(_) => Duration::MAX,
    }
}

/// The [`StartTime`] of a process from its start `timeval` (macOS):
/// microseconds since the Unix epoch.
///
/// This is `pbi_start_tvsec` and `pbi_start_tvusec` of `proc_bsdinfo`, or
/// `p_starttime` of `kinfo_proc`; both are the kernel's `p_start`, so a process
/// gets the same start time whichever call read it. Saturates instead of
/// wrapping on nonsense input.
pub fn start_time_from_timeval(seconds: u64, microseconds: u64) -> StartTime {
    StartTime::from_raw(
        seconds
            .saturating_mul(1_000_000)
            .saturating_add(microseconds),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]
        #[test]
        fn ticks_convert_exactly(ticks in any::<u64>(), numer in 1..=u32::MAX, denom in 1..=u32::MAX) {
            let d = mach_ticks_to_duration(ticks, numer, denom);
            let want = u128::from(ticks) * u128::from(numer) / u128::from(denom);
            if want / 1_000_000_000 <= u128::from(u64::MAX) {
                prop_assert_eq!(d.as_nanos(), want);
            } else {
                prop_assert_eq!(d, Duration::MAX);
            }
        }

        #[test]
        fn real_timebases_are_monotonic(a in any::<u64>(), b in any::<u64>(), silicon in any::<bool>()) {
            let (numer, denom) = if silicon { (125, 3) } else { (1, 1) };
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(mach_ticks_to_duration(lo, numer, denom) <= mach_ticks_to_duration(hi, numer, denom));
        }

        #[test]
        fn start_times_order_like_timevals(
            a in (0..1u64 << 40, 0..1_000_000u64),
            b in (0..1u64 << 40, 0..1_000_000u64),
        ) {
            let (ta, tb) = (start_time_from_timeval(a.0, a.1), start_time_from_timeval(b.0, b.1));
            prop_assert_eq!(ta.cmp(&tb), a.cmp(&b));
            prop_assert_eq!(ta.as_raw(), a.0 * 1_000_000 + a.1);
        }

        #[test]
        fn start_times_never_panic(seconds in any::<u64>(), micros in any::<u64>()) {
            let _ = start_time_from_timeval(seconds, micros);
        }
    }

    #[test]
    fn edges() {
        assert_eq!(mach_ticks_to_duration(3, 125, 3), Duration::from_nanos(125));
        assert_eq!(mach_ticks_to_duration(1, 125, 3), Duration::from_nanos(41));
        assert_eq!(mach_ticks_to_duration(7, 0, 0), Duration::from_nanos(7));
        assert_eq!(mach_ticks_to_duration(7, 5, 0), Duration::from_nanos(7));
        assert_eq!(mach_ticks_to_duration(u64::MAX, u32::MAX, 1), Duration::MAX);
        assert_eq!(
            mach_ticks_to_duration(u64::MAX, 1, 1),
            Duration::from_nanos(u64::MAX)
        );
        assert_eq!(start_time_from_timeval(u64::MAX, 5).as_raw(), u64::MAX);
        assert_eq!(start_time_from_timeval(0, 0).as_raw(), 0);
    }
}

/// The examples these functions documented while they were public.
#[cfg(test)]
mod examples {
    #[test]
    fn mach_ticks_to_duration_example() -> Result<(), Box<dyn std::error::Error>> {
        use crate::parse::mach_ticks_to_duration;
        use std::time::Duration;

        // Apple Silicon: 24 million ticks a second.
        assert_eq!(
            mach_ticks_to_duration(24_000_000, 125, 3),
            Duration::from_secs(1)
        );
        // Intel: ticks are nanoseconds.
        assert_eq!(
            mach_ticks_to_duration(1_500, 1, 1),
            Duration::from_nanos(1_500)
        );
        Ok(())
    }

    #[test]
    fn start_time_from_timeval_example() -> Result<(), Box<dyn std::error::Error>> {
        use crate::parse::start_time_from_timeval;
        assert_eq!(
            start_time_from_timeval(1_700_000_000, 250_000).as_raw(),
            1_700_000_000_250_000
        );
        Ok(())
    }
}
