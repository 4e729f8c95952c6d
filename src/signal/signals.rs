//! [`Signal`]: the signals proctrack sends, by name.

use std::fmt;
use std::str::FromStr;

/// A signal to send to a process.
///
/// Only the standard signals a supervisor sends are here; their numbers differ
/// between platforms (`SIGUSR1` is 10 on Linux x86 and 30 on macOS), so a
/// `Signal` is a name and [`Signal::number`] gives this platform's number.
///
/// ```
/// use proctrack::signal::Signal;
///
/// assert_eq!("TERM".parse::<Signal>()?, Signal::Term);
/// assert_eq!("SIGKILL".parse::<Signal>()?, Signal::Kill);
/// assert_eq!("9".parse::<Signal>()?, Signal::Kill);
/// assert_eq!(Signal::Term.to_string(), "SIGTERM");
/// assert_eq!(Signal::from_number(Signal::Hup.number()), Some(Signal::Hup));
/// # Ok::<(), proctrack::signal::ParseSignalError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum Signal {
    /// `SIGHUP`: the controlling terminal hung up; daemons often reload on it.
    Hup,
    /// `SIGINT`: interrupt from the keyboard (Ctrl-C).
    Int,
    /// `SIGQUIT`: quit from the keyboard, with a core dump.
    Quit,
    /// `SIGABRT`: abort, with a core dump.
    Abrt,
    /// `SIGKILL`: ends the process at once; cannot be caught or ignored.
    Kill,
    /// `SIGUSR1`: user-defined.
    Usr1,
    /// `SIGUSR2`: user-defined.
    Usr2,
    /// `SIGPIPE`: write to a pipe nobody reads.
    Pipe,
    /// `SIGALRM`: timer expired.
    Alrm,
    /// `SIGTERM`: asks the process to end; it may clean up first, or ignore it.
    Term,
    /// `SIGCONT`: resumes a stopped process.
    Cont,
    /// `SIGSTOP`: stops the process; cannot be caught or ignored.
    Stop,
    /// `SIGTSTP`: stop from the keyboard (Ctrl-Z); can be caught.
    Tstp,
    /// `SIGTTIN`: background read from the terminal.
    Ttin,
    /// `SIGTTOU`: background write to the terminal.
    Ttou,
    /// `SIGWINCH`: the terminal changed size.
    Winch,
}

impl Signal {
    /// Every signal this type can name.
    pub const ALL: [Signal; 16] = [
        Signal::Hup,
        Signal::Int,
        Signal::Quit,
        Signal::Abrt,
        Signal::Kill,
        Signal::Usr1,
        Signal::Usr2,
        Signal::Pipe,
        Signal::Alrm,
        Signal::Term,
        Signal::Cont,
        Signal::Stop,
        Signal::Tstp,
        Signal::Ttin,
        Signal::Ttou,
        Signal::Winch,
    ];

    /// The conventional name, `SIGTERM` style.
    ///
    /// ```
    /// assert_eq!(proctrack::signal::Signal::Usr1.name(), "SIGUSR1");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            Signal::Hup => "SIGHUP",
            Signal::Int => "SIGINT",
            Signal::Quit => "SIGQUIT",
            Signal::Abrt => "SIGABRT",
            Signal::Kill => "SIGKILL",
            Signal::Usr1 => "SIGUSR1",
            Signal::Usr2 => "SIGUSR2",
            Signal::Pipe => "SIGPIPE",
            Signal::Alrm => "SIGALRM",
            Signal::Term => "SIGTERM",
            Signal::Cont => "SIGCONT",
            Signal::Stop => "SIGSTOP",
            Signal::Tstp => "SIGTSTP",
            Signal::Ttin => "SIGTTIN",
            Signal::Ttou => "SIGTTOU",
            Signal::Winch => "SIGWINCH",
        }
    }

    /// This platform's number for the signal.
    ///
    /// ```
    /// assert_eq!(proctrack::signal::Signal::Kill.number(), 9);
    /// ```
    pub fn number(self) -> i32 {
        super::sys::signal_number(self)
    }

    /// The signal with this platform number, if this type names it.
    ///
    /// ```
    /// use proctrack::signal::Signal;
    /// assert_eq!(Signal::from_number(15), Some(Signal::Term));
    /// assert_eq!(Signal::from_number(0), None);
    /// ```
    pub fn from_number(number: i32) -> Option<Signal> {
        Signal::ALL
            .into_iter()
            .find(|signal| signal.number() == number)
    }

    /// True for the signals a stopped process acts on without being resumed:
    /// `SIGKILL` ends it, `SIGSTOP` and `SIGCONT` are about stopping itself.
    /// Any other signal waits, pending, until `SIGCONT`.
    pub(crate) fn acts_while_stopped(self) -> bool {
        matches!(self, Signal::Kill | Signal::Stop | Signal::Cont)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The text given to [`Signal::from_str`] names no signal [`Signal`] knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signal {text:?}")]
pub struct ParseSignalError {
    text: String,
}

impl FromStr for Signal {
    type Err = ParseSignalError;

    /// Accepts `TERM`, `SIGTERM`, `term`, `sigterm`, and this platform's number
    /// (`15`).
    fn from_str(text: &str) -> Result<Signal, ParseSignalError> {
        let trimmed = text.trim();
        let unknown = || ParseSignalError {
            text: text.to_owned(),
        };
        if let Ok(number) = trimmed.parse::<i32>() {
            return Signal::from_number(number).ok_or_else(unknown);
        }
        let upper = trimmed.to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        Signal::ALL
            .into_iter()
            .find(|signal| &signal.name()[3..] == bare)
            .ok_or_else(unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_round_trip() {
        for signal in Signal::ALL {
            assert_eq!(signal.name().parse::<Signal>(), Ok(signal));
            assert_eq!(
                signal.name()[3..].to_ascii_lowercase().parse::<Signal>(),
                Ok(signal)
            );
            assert_eq!(signal.number().to_string().parse::<Signal>(), Ok(signal));
            assert_eq!(Signal::from_number(signal.number()), Some(signal));
        }
        let mut numbers: Vec<i32> = Signal::ALL.iter().map(|s| s.number()).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), Signal::ALL.len());
    }

    #[test]
    fn rejects_unknown() {
        for text in ["", "SIG", "0", "-9", "TERMX", "SIGSIGTERM", "99"] {
            assert!(text.parse::<Signal>().is_err(), "{text:?}");
        }
    }
}
