//! A tree kill member by member: [`KillOutcome`], [`KillReport::outcomes`],
//! and the report's `Display`, one line per member.

use std::fmt;

use super::{KillReport, Refusal, Signal};
use crate::ProcessIdentity;

/// What a tree kill did to one member.
///
/// ```
/// use proctrack::signal::{KillOutcome, Refusal, Signal};
/// assert_eq!(KillOutcome::Killed(Signal::Term).to_string(), "killed by SIGTERM");
/// assert_eq!(KillOutcome::Refused(Refusal::Init).detail().as_deref(), Some("it is pid 1 (init)"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KillOutcome {
    /// Ended by this signal: the first one sent, or `SIGKILL` when it
    /// outlived the grace period.
    Killed(Signal),
    /// Exited before a signal reached it.
    AlreadyGone,
    /// The kernel refused the signal (`EPERM`): another user's process.
    Denied,
    /// Signalled, but alive when the wait ended.
    Survived,
    /// Not signalled: a guard rail protects it.
    Refused(Refusal),
    /// Found after the final signal and left running: born during the kill
    /// in the tree's process group, adopted by an ancestor (see
    /// [`KillReport::escaped`]).
    Escaped,
}

impl KillOutcome {
    /// Why, for the outcomes that need one: a refusal's reason, or who owns
    /// a denied process.
    pub fn detail(&self) -> Option<String> {
        match self {
            KillOutcome::Denied => Some("another user's process".to_owned()),
            KillOutcome::Refused(reason) => Some(reason.to_string()),
            KillOutcome::Escaped => Some("got away from the kill: still running".to_owned()),
            _ => None,
        }
    }

    /// True when the member is gone, by our signal or before it.
    pub fn is_done(&self) -> bool {
        matches!(self, KillOutcome::Killed(_) | KillOutcome::AlreadyGone)
    }
}

impl fmt::Display for KillOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KillOutcome::Killed(signal) => write!(f, "killed by {signal}"),
            KillOutcome::AlreadyGone => f.write_str("already gone"),
            KillOutcome::Denied => f.write_str("denied"),
            KillOutcome::Survived => f.write_str("survived"),
            KillOutcome::Refused(_) => f.write_str("refused"),
            KillOutcome::Escaped => f.write_str("escaped"),
        }
    }
}

impl KillReport {
    /// Every member with what happened to it: the killed first, then the
    /// already gone, denied, survived and refused, each in report order;
    /// last the processes that escaped.
    ///
    /// ```
    /// use proctrack::signal::KillReport;
    /// let report = KillReport::default();
    /// assert_eq!(report.outcomes().count(), 0);
    /// ```
    pub fn outcomes(&self) -> impl Iterator<Item = (ProcessIdentity, KillOutcome)> + '_ {
        self.killed
            .iter()
            .map(|killed| (killed.identity, KillOutcome::Killed(killed.signal)))
            .chain(
                self.already_gone
                    .iter()
                    .map(|i| (*i, KillOutcome::AlreadyGone)),
            )
            .chain(self.denied.iter().map(|i| (*i, KillOutcome::Denied)))
            .chain(self.survived.iter().map(|i| (*i, KillOutcome::Survived)))
            .chain(
                self.refused
                    .iter()
                    .map(|(i, reason)| (*i, KillOutcome::Refused(*reason))),
            )
            .chain(self.escaped.iter().map(|i| (*i, KillOutcome::Escaped)))
    }
}

/// How many processes of one or more kills met each outcome: the one line
/// that sums a kill up, the same in every front end.
///
/// ```
/// use proctrack::signal::{KillCounts, KillReport};
/// let mut counts = KillCounts::default();
/// counts.add(&KillReport::default());
/// assert_eq!(
///     counts.to_string(),
///     "0 killed, 0 already gone, 0 denied, 0 survived, 0 refused, 0 escaped; \
///      1 tree(s) never stopped complete: not proven complete"
/// );
/// assert!(!counts.is_complete());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct KillCounts {
    /// Signalled and seen to exit.
    pub killed: usize,
    /// Gone before a signal reached them.
    pub already_gone: usize,
    /// The kernel refused the signal.
    pub denied: usize,
    /// Signalled and still alive.
    pub survived: usize,
    /// Protected by a guard rail.
    pub refused: usize,
    /// Found alive after the last signal.
    pub escaped: usize,
    /// Kills whose tree never stopped complete before the signal.
    pub unsettled: usize,
}

impl KillCounts {
    /// Adds every member of `report`, and the report itself if it did not
    /// settle.
    pub fn add(&mut self, report: &KillReport) {
        for (_, outcome) in report.outcomes() {
            match outcome {
                KillOutcome::Killed(_) => self.killed += 1,
                KillOutcome::AlreadyGone => self.already_gone += 1,
                KillOutcome::Denied => self.denied += 1,
                KillOutcome::Survived => self.survived += 1,
                KillOutcome::Refused(_) => self.refused += 1,
                KillOutcome::Escaped => self.escaped += 1,
            }
        }
        if !report.settled {
            self.unsettled += 1;
        }
    }

    /// True when nothing counted is left or unproven: no survivor, denial,
    /// refusal, escapee or unsettled tree.
    pub fn is_complete(&self) -> bool {
        self.denied + self.survived + self.refused + self.escaped + self.unsettled == 0
    }
}

impl fmt::Display for KillCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} killed, {} already gone, {} denied, {} survived, {} refused, {} escaped",
            self.killed, self.already_gone, self.denied, self.survived, self.refused, self.escaped
        )?;
        if self.unsettled > 0 {
            write!(
                f,
                "; {} tree(s) never stopped complete: not proven complete",
                self.unsettled
            )?;
        }
        Ok(())
    }
}

impl KillReport {
    /// This report's [`KillCounts`].
    pub fn counts(&self) -> KillCounts {
        let mut counts = KillCounts::default();
        counts.add(self);
        counts
    }
}

impl fmt::Display for KillReport {
    /// One line per member (what happened, pid, and why where it needs
    /// saying), then a line for a tree that never settled or exits that
    /// could not be confirmed.
    ///
    /// ```text
    /// killed by SIGTERM    4242
    /// killed by SIGKILL    4243
    /// refused                 1  it is pid 1 (init)
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (identity, outcome) in self.outcomes() {
            let what = outcome.to_string();
            write!(f, "{what:<17} {:>7}", identity.pid())?;
            match outcome.detail() {
                Some(detail) => writeln!(f, "  {detail}")?,
                None => writeln!(f)?,
            }
        }
        if !self.settled {
            writeln!(
                f,
                "(the tree never stopped complete before the signal: what it forked meanwhile \
                 may have got away; not proven complete)"
            )?;
        }
        if !self.confirmed {
            writeln!(f, "(exits not confirmed: no pidfds on this kernel)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::Killed;
    use crate::{BootId, Pid, StartTime};

    fn identity(raw: i32) -> ProcessIdentity {
        let pid = Pid::try_from(raw).expect("valid");
        ProcessIdentity::new(BootId::default(), pid, StartTime::from_raw(1))
    }

    #[test]
    fn one_line_per_member() {
        let mut report = KillReport::default();
        report.killed.push(Killed {
            identity: identity(4242),
            signal: Signal::Term,
        });
        report.killed.push(Killed {
            identity: identity(4243),
            signal: Signal::Kill,
        });
        report.already_gone.push(identity(4244));
        report.denied.push(identity(4245));
        report.survived.push(identity(4246));
        report.refused.push((identity(1), Refusal::Init));
        report.settled = true;
        report.confirmed = true;
        assert_eq!(
            report.to_string(),
            "killed by SIGTERM    4242\n\
             killed by SIGKILL    4243\n\
             already gone         4244\n\
             denied               4245  another user's process\n\
             survived             4246\n\
             refused                 1  it is pid 1 (init)\n"
        );
        assert_eq!(report.outcomes().count(), 6);
        assert_eq!(report.outcomes().filter(|(_, o)| o.is_done()).count(), 3);
    }

    #[test]
    fn says_when_the_tree_did_not_settle() {
        let report = KillReport::default();
        let text = report.to_string();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("never stopped complete"), "{text}");
        assert!(text.contains("not confirmed"), "{text}");
    }
}
