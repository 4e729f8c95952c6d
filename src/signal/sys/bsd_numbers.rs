//! Signal numbers as BSD, and so macOS, has them.

use crate::signal::Signal;

/// The BSD numbering, which macOS uses.
pub(crate) fn signal_number(signal: Signal) -> i32 {
    match signal {
        Signal::Hup => 1,
        Signal::Int => 2,
        Signal::Quit => 3,
        Signal::Abrt => 6,
        Signal::Kill => 9,
        Signal::Usr1 => 30,
        Signal::Usr2 => 31,
        Signal::Pipe => 13,
        Signal::Alrm => 14,
        Signal::Term => 15,
        Signal::Cont => 19,
        Signal::Stop => 17,
        Signal::Tstp => 18,
        Signal::Ttin => 21,
        Signal::Ttou => 22,
        Signal::Winch => 28,
    }
}
