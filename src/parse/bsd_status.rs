use crate::State;

/// `SIDL`: being created by `fork`.
const SIDL: u32 = 1;
/// `SRUN`: alive (the BSD layer of XNU keeps this for sleeping processes too).
const SRUN: u32 = 2;
/// `SSLEEP`: sleeping on an address.
const SSLEEP: u32 = 3;
/// `SSTOP`: stopped by a signal.
const SSTOP: u32 = 4;
/// `SZOMB`: exited, waiting for its parent.
const SZOMB: u32 = 5;

/// Maps a BSD process status (macOS `pbi_status` or `kinfo_proc`'s `p_stat`)
/// to a [`State`].
///
/// XNU leaves nearly every live process in `SRUN`; whether one is actually
/// running is in its Mach threads. Pass `running_threads` (`pti_numrunning`)
/// when it is known: `SRUN` with no running thread is [`State::Sleeping`], as
/// `ps` shows it. `SIDL` (being forked) counts as running, as BSD `ps` has it;
/// an unknown status is [`State::Unknown`]`('?')`.
pub fn state_from_bsd_status(status: u32, running_threads: Option<u32>) -> State {
    match status {
        SRUN if running_threads == Some(0) => State::Sleeping,
        SIDL | SRUN => State::Running,
        SSLEEP => State::Sleeping,
        SSTOP => State::Stopped,
        SZOMB => State::Zombie,
        _ => State::Unknown('?'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status() {
        let cases = [
            (0, None, State::Unknown('?')),
            (SIDL, None, State::Running),
            (SRUN, None, State::Running),
            (SRUN, Some(1), State::Running),
            (SRUN, Some(0), State::Sleeping),
            (SSLEEP, Some(3), State::Sleeping),
            (SSTOP, Some(0), State::Stopped),
            (SZOMB, None, State::Zombie),
            (6, None, State::Unknown('?')),
            (u32::MAX, Some(2), State::Unknown('?')),
        ];
        for (status, running, want) in cases {
            assert_eq!(state_from_bsd_status(status, running), want, "{status}");
        }
        assert!(state_from_bsd_status(SZOMB, Some(0)).has_exited());
    }
}

/// The examples these functions documented while they were public.
#[cfg(test)]
mod examples {
    #[test]
    fn state_from_bsd_status_example() -> Result<(), Box<dyn std::error::Error>> {
        use crate::{State, parse::state_from_bsd_status};
        assert_eq!(state_from_bsd_status(5, None), State::Zombie);
        assert_eq!(state_from_bsd_status(2, Some(0)), State::Sleeping);
        assert_eq!(state_from_bsd_status(2, None), State::Running);
        Ok(())
    }
}
