//! No proc connector outside Linux: events come from polling the table.

use std::time::Duration;

use super::decode::Message;
use super::probe::{Probe, ProbeReason};

/// What one drain of the socket brought.
#[derive(Debug, Default)]
pub(crate) struct Drained {
    pub(crate) lost: bool,
}

/// Never constructed here.
#[derive(Debug)]
pub(crate) enum Connector {}

impl Connector {
    pub(crate) fn open(
        _receive_buffer: Option<usize>,
        _ack_timeout: Duration,
    ) -> Result<(Connector, Probe), ProbeReason> {
        Err(ProbeReason::Unsupported)
    }

    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match *self {}
    }

    pub(crate) fn wait(&self, _timeout: Option<Duration>) -> std::io::Result<bool> {
        match *self {}
    }

    pub(crate) fn drain(&mut self, _out: &mut Vec<Message>) -> std::io::Result<Drained> {
        match *self {}
    }
}
