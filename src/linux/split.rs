//! Reading many processes on two threads: the calling one and one scoped
//! helper, never more.
//!
//! A walk over every process (each one's fd table, say) is bounded by the
//! kernel's work per file it looks up in `/proc`, not by anything we could
//! cache; with a second CPU free, two threads nearly halve it. The pids are
//! cut into pieces of consecutive pids that the two threads take from a
//! shared counter (whichever is free takes the next, so a thread the
//! scheduler holds back simply reads fewer), and the answers are put back
//! in the order of the pids: the output never depends on who read what.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::{Pid, Result};

/// Pids per piece: small enough that the two threads finish close
/// together, large enough that handing out pieces costs nothing next to
/// reading them (tens of microseconds a process).
const PIDS_PER_PIECE: usize = 32;
/// Below this many pids everything stays on the calling thread: starting a
/// thread (~50 us) would cost about what it saves.
pub(super) const PIDS_WORTH_A_THREAD: usize = 128;

/// Whether a second CPU is there to share a walk (affinity and cgroup
/// quota counted).
pub(super) fn two_cpus() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() > 1)
}

/// `read` on consecutive pieces of `pids`, the answers in the order of
/// `pids`: the same as `read(mine, pids)` split at piece boundaries.
///
/// With `two_threads` and at least [`PIDS_WORTH_A_THREAD`] pids, a scoped
/// helper thread reads some pieces with `theirs` while this thread reads
/// the others with `mine`. The first error in pid order is returned (the
/// threads stop taking pieces once one fails). Pieces the helper did not
/// answer (it could not be started, or panicked) are read here.
pub(super) fn in_pieces<S: Send, T: Send>(
    pids: &[Pid],
    two_threads: bool,
    mine: &mut S,
    theirs: &mut S,
    read: impl Fn(&mut S, &[Pid]) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    if !two_threads || pids.len() < PIDS_WORTH_A_THREAD {
        return Ok(vec![read(mine, pids)?]);
    }
    let pieces: Vec<&[Pid]> = pids.chunks(PIDS_PER_PIECE).collect();
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let take_pieces = |state: &mut S| {
        let mut answers: Vec<(usize, Result<T>)> = Vec::new();
        while !failed.load(Ordering::Relaxed) {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(piece) = pieces.get(index) else {
                break;
            };
            let answer = read(state, piece);
            failed.fetch_or(answer.is_err(), Ordering::Relaxed);
            answers.push((index, answer));
        }
        answers
    };
    let mut answered = std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("proctrack-walk".into())
            .spawn_scoped(scope, || take_pieces(theirs));
        let mut answered = take_pieces(mine);
        if let Ok(Ok(more)) = helper.map(|helper| helper.join()) {
            answered.extend(more);
        }
        answered
    });
    answered.sort_unstable_by_key(|&(index, _)| index);
    let mut answered = answered.into_iter().peekable();
    let mut answers = Vec::with_capacity(pieces.len());
    for (index, piece) in pieces.iter().enumerate() {
        let answer = match answered.next_if(|&(at, _)| at == index) {
            Some((_, answer)) => answer,
            None => read(mine, piece),
        };
        answers.push(answer?);
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    fn pids(n: i32) -> Vec<Pid> {
        (1..=n).filter_map(|raw| Pid::try_from(raw).ok()).collect()
    }

    /// The answers come in pid order whichever thread read them, and match
    /// one read of everything.
    #[test]
    fn answers_come_in_pid_order() -> Result<()> {
        let pids = pids(1000);
        let (mut mine, mut theirs) = (Vec::new(), Vec::new());
        let answers = in_pieces(&pids, true, &mut mine, &mut theirs, |seen, piece| {
            seen.extend_from_slice(piece);
            Ok(piece.to_vec())
        })?;
        assert_eq!(answers.concat(), pids);
        // Every pid read once, by one thread or the other.
        let mut seen = [mine, theirs].concat();
        seen.sort_unstable();
        assert_eq!(seen, pids);
        let one = in_pieces(
            &pids,
            false,
            &mut (),
            &mut (),
            |_, piece| Ok(piece.to_vec()),
        )?;
        assert_eq!(one, vec![pids.clone()]);
        Ok(())
    }

    /// The error returned is the one of the lowest pid, however the pieces
    /// were shared out.
    #[test]
    fn the_first_error_in_pid_order_wins() {
        let pids = pids(1000);
        for _ in 0..20 {
            let answer = in_pieces(&pids, true, &mut (), &mut (), |_, piece| {
                match piece.iter().find(|pid| pid.as_raw() % 300 == 0) {
                    Some(&pid) => Err(Error::NotFound { pid }),
                    None => Ok(()),
                }
            });
            assert!(
                matches!(answer, Err(Error::NotFound { pid }) if pid.as_raw() == 300),
                "{answer:?}"
            );
        }
    }

    /// A helper that panics loses nothing: its pieces are read again here.
    #[test]
    fn a_failed_helper_costs_only_time() -> Result<()> {
        let pids = pids(1000);
        let main = std::thread::current().id();
        let answers = in_pieces(&pids, true, &mut (), &mut (), |_, piece| {
            if std::thread::current().id() != main {
                panic!("helper thread fails on purpose");
            }
            Ok(piece.to_vec())
        })?;
        assert_eq!(answers.concat(), pids);
        Ok(())
    }
}
