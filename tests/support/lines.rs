//! The lines a child prints on a pipe: how tests wait for readiness.

use std::io::{BufRead, BufReader};
use std::process::ChildStdout;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};

use super::HANG_GUARD;

/// The lines a child prints on a pipe, read by a thread so that waiting for
/// one can time out: a test that hangs would be killed from outside, skip its
/// `Drop`s and leak its processes; a test that panics cleans up.
pub struct Lines {
    rx: Receiver<std::io::Result<String>>,
}

impl Lines {
    pub fn new(stdout: ChildStdout) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { rx }
    }

    /// The next line, without its newline; `None` at end of file (every
    /// writer closed the pipe). Panics after [`HANG_GUARD`].
    pub fn next_line(&mut self) -> Option<String> {
        match self.rx.recv_timeout(HANG_GUARD) {
            Ok(Ok(line)) => Some(line),
            Ok(Err(e)) => panic!("reading the child's stdout: {e}"),
            Err(RecvTimeoutError::Timeout) => {
                panic!("no line from the child within {HANG_GUARD:?}")
            }
            Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// The next line; panics at end of file or after [`HANG_GUARD`].
    pub fn line(&mut self) -> String {
        self.next_line()
            .unwrap_or_else(|| panic!("the child closed its stdout"))
    }

    /// Reads lines up to and including `want`; returns the ones before it.
    /// Panics at end of file or after [`HANG_GUARD`].
    pub fn until(&mut self, want: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            match self.next_line() {
                Some(line) if line == want => return lines,
                Some(line) => lines.push(line),
                None => {
                    panic!("the child closed its stdout before printing {want:?}; got {lines:?}")
                }
            }
        }
    }
}
