//! A pure decoder of proc connector messages: `nlmsghdr`, then `cn_msg`, then
//! `proc_event` (`<linux/netlink.h>`, `<linux/connector.h>`,
//! `<linux/cn_proc.h>`), in the host's byte order. No I/O, never panics:
//! every byte string decodes to messages or to a [`DecodeError`].
//!
//! Compiled and tested on every platform, like the other decoders; only
//! Linux has a socket to read them from.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::fmt;

/// `nlmsghdr`: length, type, flags, sequence, port id.
const NLMSG_HEADER: usize = 16;
/// `cn_msg`: idx, val, seq, ack, len (u16), flags (u16).
const CN_HEADER: usize = 20;
/// `proc_event` up to its union: what, cpu, timestamp_ns.
const EVENT_HEADER: usize = 16;

/// Netlink message types the connector uses or the socket may carry.
pub(crate) const NLMSG_NOOP: u16 = 1;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLMSG_OVERRUN: u16 = 4;

/// The connector's id for process events (`CN_IDX_PROC`, `CN_VAL_PROC`).
pub(crate) const CN_IDX_PROC: u32 = 1;
pub(crate) const CN_VAL_PROC: u32 = 1;

/// `enum proc_cn_mcast_op`.
pub(crate) const PROC_CN_MCAST_LISTEN: u32 = 1;

/// `enum what` of `proc_event`.
pub(crate) const PROC_EVENT_NONE: u32 = 0;
pub(crate) const PROC_EVENT_FORK: u32 = 0x1;
pub(crate) const PROC_EVENT_EXEC: u32 = 0x2;
pub(crate) const PROC_EVENT_UID: u32 = 0x4;
pub(crate) const PROC_EVENT_GID: u32 = 0x40;
pub(crate) const PROC_EVENT_SID: u32 = 0x80;
pub(crate) const PROC_EVENT_PTRACE: u32 = 0x100;
pub(crate) const PROC_EVENT_COMM: u32 = 0x200;
pub(crate) const PROC_EVENT_NONZERO_EXIT: u32 = 0x2000_0000;
pub(crate) const PROC_EVENT_COREDUMP: u32 = 0x4000_0000;
pub(crate) const PROC_EVENT_EXIT: u32 = 0x8000_0000;

/// Every event type: `PROC_EVENT_ALL` of 6.6+, the only mask the kernel's
/// filter passes whole. Any narrower mask also drops the listen acks (type
/// `NONE`), and the filter runs after the per-CPU sequence number is taken,
/// so a filtered event would look like a lost one.
pub(crate) const PROC_EVENT_ALL: u32 = PROC_EVENT_FORK
    | PROC_EVENT_NONZERO_EXIT
    | PROC_EVENT_EXEC
    | PROC_EVENT_UID
    | PROC_EVENT_GID
    | PROC_EVENT_SID
    | PROC_EVENT_PTRACE
    | PROC_EVENT_COMM
    | PROC_EVENT_COREDUMP
    | PROC_EVENT_EXIT;

/// One decoded netlink message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Message {
    /// A process event, with the CPU it happened on and that CPU's sequence
    /// number (a gap means lost events).
    Event {
        cpu: u32,
        seq: u32,
        event: KernelEvent,
    },
    /// The answer to a listen request (ours or another listener's: acks are
    /// multicast): `ack` is the request's ack + 1, `err` an errno (0 for
    /// success). Acks take a per-CPU sequence number like events.
    Ack {
        cpu: u32,
        seq: u32,
        ack: u32,
        err: u32,
    },
    /// `NLMSG_NOOP`: nothing to do.
    Noop,
    /// `NLMSG_OVERRUN`: the kernel lost data.
    Overrun,
    /// `NLMSG_ERROR` with its (negative) errno.
    Error { errno: i32 },
    /// A message of another type or connector id: skipped.
    Other,
}

/// What happened to a process, as the kernel reports it. Pids are the raw
/// `pid_t` values (`pid` a thread id, `tgid` the process id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KernelEvent {
    Fork {
        parent_pid: i32,
        parent_tgid: i32,
        child_pid: i32,
        child_tgid: i32,
    },
    Exec {
        pid: i32,
        tgid: i32,
    },
    Exit {
        pid: i32,
        tgid: i32,
        /// The wait status (`exit(3)` is `3 << 8`, SIGKILL is 9).
        exit_code: u32,
        /// The signal sent to the parent (SIGCHLD usually).
        exit_signal: u32,
        parent_pid: i32,
        parent_tgid: i32,
    },
    Comm {
        pid: i32,
        tgid: i32,
        comm: [u8; 16],
    },
    Sid {
        pid: i32,
        tgid: i32,
    },
    /// uid, gid, ptrace, coredump, or a type this decoder does not know.
    Other {
        what: u32,
    },
}

/// Why bytes are not a well-formed connector message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than a header or than the length a header announces.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes there.
        found: usize,
    },
    /// A netlink length shorter than the netlink header itself.
    BadLength {
        /// The announced length.
        length: u32,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { needed, found } => write!(
                f,
                "truncated proc connector message: {needed} bytes needed, {found} received"
            ),
            DecodeError::BadLength { length } => {
                write!(
                    f,
                    "netlink message length {length} is below its header's 16 bytes"
                )
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// The messages in one datagram, in order. After an error the iterator ends.
pub(crate) fn messages(datagram: &[u8]) -> Messages<'_> {
    Messages { rest: datagram }
}

/// Iterator returned by [`messages`].
#[derive(Debug)]
pub(crate) struct Messages<'a> {
    rest: &'a [u8],
}

impl Iterator for Messages<'_> {
    type Item = Result<Message, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let decoded = decode_one(self.rest);
        match decoded {
            Ok((message, used)) => {
                self.rest = self.rest.get(used..).unwrap_or_default();
                Some(Ok(message))
            }
            Err(error) => {
                self.rest = &[];
                Some(Err(error))
            }
        }
    }
}

/// One netlink message at the start of `bytes` and the bytes it takes,
/// alignment padding included.
fn decode_one(bytes: &[u8]) -> Result<(Message, usize), DecodeError> {
    let header = take(bytes, 0, NLMSG_HEADER)?;
    let length = u32_at(header, 0);
    let kind = u16_at(header, 4);
    let length_usize = length as usize;
    if length_usize < NLMSG_HEADER {
        return Err(DecodeError::BadLength { length });
    }
    let message = take(bytes, 0, length_usize)?;
    let payload = &message[NLMSG_HEADER..];
    // NLMSG_ALIGN: the next message starts at a multiple of 4; a last
    // message may end without its padding.
    let used = length_usize.saturating_add(3) & !3;
    let used = used.min(bytes.len());
    let decoded = match kind {
        NLMSG_NOOP => Message::Noop,
        NLMSG_OVERRUN => Message::Overrun,
        NLMSG_ERROR => Message::Error {
            errno: take(payload, 0, 4).map(|b| u32_at(b, 0) as i32)?,
        },
        NLMSG_DONE => decode_connector(payload)?,
        _ => Message::Other,
    };
    Ok((decoded, used))
}

fn decode_connector(payload: &[u8]) -> Result<Message, DecodeError> {
    let header = take(payload, 0, CN_HEADER)?;
    if u32_at(header, 0) != CN_IDX_PROC || u32_at(header, 4) != CN_VAL_PROC {
        return Ok(Message::Other);
    }
    let seq = u32_at(header, 8);
    let ack = u32_at(header, 12);
    let data_len = usize::from(u16_at(header, 16));
    let data = take(payload, CN_HEADER, data_len)?;
    let event_header = take(data, 0, EVENT_HEADER)?;
    let what = u32_at(event_header, 0);
    let cpu = u32_at(event_header, 4);
    let body = &data[EVENT_HEADER..];
    let field = |index: usize| -> Result<u32, DecodeError> {
        take(body, index * 4, 4).map(|b| u32_at(b, 0))
    };
    let pid = |index: usize| field(index).map(|v| v as i32);
    let event = match what {
        PROC_EVENT_NONE => {
            return Ok(Message::Ack {
                cpu,
                seq,
                ack,
                err: field(0)?,
            });
        }
        PROC_EVENT_FORK => KernelEvent::Fork {
            parent_pid: pid(0)?,
            parent_tgid: pid(1)?,
            child_pid: pid(2)?,
            child_tgid: pid(3)?,
        },
        PROC_EVENT_EXEC => KernelEvent::Exec {
            pid: pid(0)?,
            tgid: pid(1)?,
        },
        PROC_EVENT_EXIT => KernelEvent::Exit {
            pid: pid(0)?,
            tgid: pid(1)?,
            exit_code: field(2)?,
            exit_signal: field(3)?,
            // Kernels before 4.18 end the exit event here.
            parent_pid: pid(4).unwrap_or(0),
            parent_tgid: pid(5).unwrap_or(0),
        },
        PROC_EVENT_COMM => {
            let comm_bytes = take(body, 8, 16)?;
            let mut comm = [0; 16];
            comm.copy_from_slice(comm_bytes);
            KernelEvent::Comm {
                pid: pid(0)?,
                tgid: pid(1)?,
                comm,
            }
        }
        PROC_EVENT_SID => KernelEvent::Sid {
            pid: pid(0)?,
            tgid: pid(1)?,
        },
        other => KernelEvent::Other { what: other },
    };
    Ok(Message::Event { cpu, seq, event })
}

/// `bytes[at..at + len]`, or how many bytes were missing.
fn take(bytes: &[u8], at: usize, len: usize) -> Result<&[u8], DecodeError> {
    let end = at.saturating_add(len);
    bytes.get(at..end).ok_or(DecodeError::Truncated {
        needed: end,
        found: bytes.len(),
    })
}

/// Callers pass slices of at least `at + 4` bytes (checked by `take`).
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut raw = [0; 4];
    if let Some(src) = bytes.get(at..at + 4) {
        raw.copy_from_slice(src);
    }
    u32::from_ne_bytes(raw)
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    let mut raw = [0; 2];
    if let Some(src) = bytes.get(at..at + 2) {
        raw.copy_from_slice(src);
    }
    u16::from_ne_bytes(raw)
}

/// The listen request: `PROC_CN_MCAST_LISTEN`, with the 6.6+ per-socket event
/// mask when `mask` is given (a `struct proc_input`), or the bare operation
/// older kernels expect. `ack` comes back + 1 in the kernel's answer.
pub(crate) fn listen_request(port: u32, ack: u32, mask: Option<u32>) -> Vec<u8> {
    let mut data = PROC_CN_MCAST_LISTEN.to_ne_bytes().to_vec();
    if let Some(mask) = mask {
        data.extend_from_slice(&mask.to_ne_bytes());
    }
    connector_message(port, 0, ack, &data)
}

/// `nlmsghdr` + `cn_msg` + `data`, as the kernel and `listen_request` lay it out.
pub(crate) fn connector_message(port: u32, seq: u32, ack: u32, data: &[u8]) -> Vec<u8> {
    let data_len = u16::try_from(data.len()).unwrap_or(u16::MAX);
    let data = &data[..usize::from(data_len)];
    let length = NLMSG_HEADER + CN_HEADER + data.len();
    let mut out = Vec::with_capacity(length);
    out.extend_from_slice(&(length as u32).to_ne_bytes());
    out.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&port.to_ne_bytes());
    out.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    out.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&ack.to_ne_bytes());
    out.extend_from_slice(&data_len.to_ne_bytes());
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A proc_event message as the kernel sends it (`send_msg` in cn_proc.c).
    fn encode_event(cpu: u32, seq: u32, ack: u32, event: &KernelEvent) -> Vec<u8> {
        let words =
            |values: &[u32]| -> Vec<u8> { values.iter().flat_map(|v| v.to_ne_bytes()).collect() };
        let (what, body) = match *event {
            KernelEvent::Fork {
                parent_pid,
                parent_tgid,
                child_pid,
                child_tgid,
            } => (
                PROC_EVENT_FORK,
                words(&[
                    parent_pid as u32,
                    parent_tgid as u32,
                    child_pid as u32,
                    child_tgid as u32,
                ]),
            ),
            KernelEvent::Exec { pid, tgid } => (PROC_EVENT_EXEC, words(&[pid as u32, tgid as u32])),
            KernelEvent::Exit {
                pid,
                tgid,
                exit_code,
                exit_signal,
                parent_pid,
                parent_tgid,
            } => (
                PROC_EVENT_EXIT,
                words(&[
                    pid as u32,
                    tgid as u32,
                    exit_code,
                    exit_signal,
                    parent_pid as u32,
                    parent_tgid as u32,
                ]),
            ),
            KernelEvent::Comm { pid, tgid, comm } => {
                let mut body = words(&[pid as u32, tgid as u32]);
                body.extend_from_slice(&comm);
                (PROC_EVENT_COMM, body)
            }
            KernelEvent::Sid { pid, tgid } => (PROC_EVENT_SID, words(&[pid as u32, tgid as u32])),
            KernelEvent::Other { what } => (what, words(&[0; 6])),
        };
        let mut data = words(&[what, cpu]);
        data.extend_from_slice(&123_456_789u64.to_ne_bytes());
        data.extend_from_slice(&body);
        // The union is 40 bytes in the kernel's struct; pad as it does.
        data.resize(EVENT_HEADER + 40, 0);
        connector_message(0, seq, ack, &data)
    }

    fn kernel_event() -> impl Strategy<Value = KernelEvent> {
        let pid = any::<i32>;
        prop_oneof![
            (pid(), pid(), pid(), pid()).prop_map(|(a, b, c, d)| KernelEvent::Fork {
                parent_pid: a,
                parent_tgid: b,
                child_pid: c,
                child_tgid: d
            }),
            (pid(), pid()).prop_map(|(pid, tgid)| KernelEvent::Exec { pid, tgid }),
            (pid(), pid(), any::<u32>(), any::<u32>(), pid(), pid()).prop_map(
                |(pid, tgid, exit_code, exit_signal, parent_pid, parent_tgid)| KernelEvent::Exit {
                    pid,
                    tgid,
                    exit_code,
                    exit_signal,
                    parent_pid,
                    parent_tgid
                }
            ),
            (pid(), pid(), any::<[u8; 16]>()).prop_map(|(pid, tgid, comm)| KernelEvent::Comm {
                pid,
                tgid,
                comm
            }),
            (pid(), pid()).prop_map(|(pid, tgid)| KernelEvent::Sid { pid, tgid }),
            prop_oneof![
                Just(PROC_EVENT_UID),
                Just(PROC_EVENT_GID),
                Just(PROC_EVENT_PTRACE),
                Just(PROC_EVENT_COREDUMP),
                Just(0x1000_0000)
            ]
            .prop_map(|what| KernelEvent::Other { what }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]
        #[test]
        fn round_trips(
            events in proptest::collection::vec((any::<u32>(), any::<u32>(), kernel_event()), 1..4)
        ) {
            let mut datagram = Vec::new();
            for (cpu, seq, event) in &events {
                datagram.extend(encode_event(*cpu, *seq, 0, event));
            }
            let decoded: Vec<_> = messages(&datagram).collect();
            let expected: Vec<_> = events
                .iter()
                .map(|&(cpu, seq, event)| Ok(Message::Event { cpu, seq, event }))
                .collect();
            prop_assert_eq!(decoded, expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            // Ends, and every message decoded lies within the input.
            let count = messages(&bytes).count();
            prop_assert!(count <= bytes.len() / NLMSG_HEADER + 1);
        }

        #[test]
        fn every_truncation_is_an_error(event in kernel_event(), cut in 1usize..76) {
            let bytes = encode_event(0, 0, 0, &event);
            let cut = cut.min(bytes.len() - 1);
            let decoded: Vec<_> = messages(&bytes[..cut]).collect();
            prop_assert_eq!(decoded.len(), 1);
            prop_assert!(decoded[0].is_err());
        }
    }

    #[test]
    fn acks_decode_with_their_errno() {
        let mut data = PROC_EVENT_NONE.to_ne_bytes().to_vec();
        data.extend_from_slice(&1u32.to_ne_bytes());
        data.extend_from_slice(&[0; 8]);
        data.extend_from_slice(&1u32.to_ne_bytes());
        let bytes = connector_message(0, 5, 8, &data);
        assert_eq!(
            messages(&bytes).collect::<Vec<_>>(),
            vec![Ok(Message::Ack {
                cpu: 1,
                seq: 5,
                ack: 8,
                err: 1
            })]
        );
    }

    #[test]
    fn listen_requests_carry_the_mask_only_when_asked() {
        let plain = listen_request(7, 1, None);
        let masked = listen_request(7, 1, Some(PROC_EVENT_ALL));
        assert_eq!(plain.len(), NLMSG_HEADER + CN_HEADER + 4);
        assert_eq!(masked.len(), NLMSG_HEADER + CN_HEADER + 8);
        assert_eq!(u32_at(&masked, 0) as usize, masked.len());
    }

    #[test]
    fn a_zero_length_header_is_an_error_not_a_loop() {
        let bytes = [0u8; 32];
        assert_eq!(
            messages(&bytes).collect::<Vec<_>>(),
            vec![Err(DecodeError::BadLength { length: 0 })]
        );
    }
}
