//! sock_diag netlink: the dump request and its replies.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{DecodeError, RawSocket, align4, i32_at, u16_at, u32_at};
use crate::ports::Protocol;

/// `NLMSG_ERROR`, `NLMSG_DONE` and `SOCK_DIAG_BY_FAMILY` from the uapi headers.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
pub(crate) const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NLM_F_REQUEST | NLM_F_DUMP`.
const DUMP_REQUEST: u16 = 0x1 | 0x300;
const NLMSG_HEADER: usize = 16;
/// `struct inet_diag_req_v2`.
const REQ_V2: usize = 56;
/// `struct inet_diag_msg`.
const DIAG_MSG: usize = 72;
/// `INET_DIAG_REQ_BYTECODE`, the request attribute that carries a filter.
const REQ_BYTECODE: u16 = 1;
/// `INET_DIAG_SKV6ONLY`, the reply attribute the kernel adds to IPv6 sockets
/// that are listening or unconnected.
const ATTR_V6ONLY: u16 = 11;
/// `INET_DIAG_BC_S_EQ`: the source (local) port equals the next op's `no`.
const BC_S_EQ: u8 = 11;

pub(crate) const AF_INET: u8 = 2;
pub(crate) const AF_INET6: u8 = 10;
pub(crate) const IPPROTO_TCP: u8 = 6;
pub(crate) const IPPROTO_UDP: u8 = 17;
/// `TCP_LISTEN` and `TCP_CLOSE` (an unconnected UDP socket) as state numbers.
pub(crate) const STATE_LISTEN: u8 = 10;
pub(crate) const STATE_CLOSE: u8 = 7;

/// The socket states a listener is in: listening TCP, unconnected UDP.
pub(crate) fn listening_state(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::Tcp => STATE_LISTEN,
        Protocol::Udp => STATE_CLOSE,
    }
}

/// Encodes one dump request: every socket of `family` and `protocol` in the
/// listening state, only those whose local port is `port` when given (the
/// kernel runs that filter, so a reply holds only matches).
pub(crate) fn encode_diag_request(
    buf: &mut Vec<u8>,
    family: u8,
    protocol: Protocol,
    port: Option<u16>,
    seq: u32,
) {
    let filter_len = if port.is_some() { 4 + 8 } else { 0 };
    let total = NLMSG_HEADER + REQ_V2 + filter_len;
    buf.clear();
    buf.extend_from_slice(&(total as u32).to_ne_bytes());
    buf.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    buf.extend_from_slice(&DUMP_REQUEST.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    let ip_protocol = match protocol {
        Protocol::Tcp => IPPROTO_TCP,
        Protocol::Udp => IPPROTO_UDP,
    };
    buf.extend_from_slice(&[family, ip_protocol, 0, 0]);
    let states = 1u32 << listening_state(protocol);
    buf.extend_from_slice(&states.to_ne_bytes());
    // inet_diag_sockid: ports, addresses, interface and cookie all zero.
    buf.resize(NLMSG_HEADER + REQ_V2, 0);
    if let Some(port) = port {
        buf.extend_from_slice(&(filter_len as u16).to_ne_bytes());
        buf.extend_from_slice(&REQ_BYTECODE.to_ne_bytes());
        // { S_EQ, yes: 8 (accept: the end), no: 12 (reject: past the end) },
        // { 0, 0, port }: what `ss 'sport = :PORT'` sends.
        buf.extend_from_slice(&[BC_S_EQ, 8]);
        buf.extend_from_slice(&12u16.to_ne_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&port.to_ne_bytes());
    }
}

/// Whether a dump has more to come after one `recv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Batch {
    More,
    Done,
}

/// Decodes the messages of one `recv` from a sock_diag socket, appending each
/// socket to `out`. Messages of another sequence number (a reply to an earlier,
/// abandoned request) are skipped.
pub(crate) fn decode_diag_batch(
    bytes: &[u8],
    protocol: Protocol,
    seq: u32,
    out: &mut Vec<RawSocket>,
) -> Result<Batch, DecodeError> {
    let mut rest = bytes;
    while rest.len() >= NLMSG_HEADER {
        let claimed = u32_at(rest, 0) as usize;
        if claimed < NLMSG_HEADER || claimed > rest.len() {
            return Err(DecodeError::BadLength {
                claimed,
                available: rest.len(),
            });
        }
        let kind = u16_at(rest, 4);
        let message_seq = u32_at(rest, 8);
        let payload = &rest[NLMSG_HEADER..claimed];
        // Messages are padded to 4 bytes; the last one may not be.
        rest = rest.get(align4(claimed)..).unwrap_or(&[]);
        if message_seq != seq {
            continue;
        }
        match kind {
            NLMSG_DONE => return Ok(Batch::Done),
            NLMSG_ERROR => {
                let errno = payload.get(..4).map_or(0, |b| i32_at(b, 0));
                if errno != 0 {
                    return Err(DecodeError::Kernel(-errno));
                }
            }
            SOCK_DIAG_BY_FAMILY => out.push(decode_diag_msg(payload, protocol)?),
            _ => {}
        }
    }
    Ok(Batch::More)
}

/// One `inet_diag_msg` and its attributes.
fn decode_diag_msg(msg: &[u8], protocol: Protocol) -> Result<RawSocket, DecodeError> {
    if msg.len() < DIAG_MSG {
        return Err(DecodeError::ShortReply(msg.len()));
    }
    let family = msg[0];
    // inet_diag_sockid at 4: sport (be16), dport, src[16], dst[16], if, cookie.
    let port = u16::from_be_bytes([msg[4], msg[5]]);
    let mut src = [0u8; 16];
    src.copy_from_slice(&msg[8..24]);
    let ip = if family == AF_INET6 {
        IpAddr::V6(Ipv6Addr::from(src))
    } else {
        IpAddr::V4(Ipv4Addr::new(src[0], src[1], src[2], src[3]))
    };
    let uid = u32_at(msg, 64);
    let inode = u32_at(msg, 68);
    let mut v6_only = None;
    let mut attrs = &msg[DIAG_MSG..];
    while attrs.len() >= 4 {
        let len = usize::from(u16_at(attrs, 0));
        let kind = u16_at(attrs, 2) & 0x3fff;
        if len < 4 || len > attrs.len() {
            break;
        }
        if kind == ATTR_V6ONLY && len >= 5 {
            v6_only = Some(attrs[4] != 0);
        }
        attrs = attrs.get(align4(len)..).unwrap_or(&[]);
    }
    Ok(RawSocket {
        protocol,
        local: SocketAddr::new(ip, port),
        id: u64::from(inode),
        uid: Some(uid),
        v6_only: if family == AF_INET6 { v6_only } else { None },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A reply message as the kernel writes it (inet_diag_msg_fill).
    fn diag_reply(
        seq: u32,
        family: u8,
        port: u16,
        src: [u8; 16],
        uid: u32,
        inode: u32,
        v6only: Option<u8>,
    ) -> Vec<u8> {
        let mut payload = vec![family, STATE_LISTEN, 0, 0];
        payload.extend_from_slice(&port.to_be_bytes());
        payload.extend_from_slice(&[0, 0]);
        payload.extend_from_slice(&src);
        payload.extend_from_slice(&[0; 16]);
        payload.extend_from_slice(&[0; 12]);
        payload.extend_from_slice(&[0; 12]);
        payload.extend_from_slice(&uid.to_ne_bytes());
        payload.extend_from_slice(&inode.to_ne_bytes());
        // INET_DIAG_SHUTDOWN, then perhaps INET_DIAG_SKV6ONLY.
        payload.extend_from_slice(&5u16.to_ne_bytes());
        payload.extend_from_slice(&8u16.to_ne_bytes());
        payload.extend_from_slice(&[0, 0, 0, 0]);
        if let Some(flag) = v6only {
            payload.extend_from_slice(&5u16.to_ne_bytes());
            payload.extend_from_slice(&ATTR_V6ONLY.to_ne_bytes());
            payload.extend_from_slice(&[flag, 0, 0, 0]);
        }
        message(SOCK_DIAG_BY_FAMILY, seq, &payload)
    }

    fn message(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = ((NLMSG_HEADER + payload.len()) as u32)
            .to_ne_bytes()
            .to_vec();
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&2u16.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn request_has_the_kernel_layout() {
        let mut buf = Vec::new();
        encode_diag_request(&mut buf, AF_INET6, Protocol::Tcp, Some(3000), 7);
        assert_eq!(buf.len(), 16 + 56 + 12);
        assert_eq!(u32_at(&buf, 0) as usize, buf.len());
        assert_eq!(u16_at(&buf, 4), SOCK_DIAG_BY_FAMILY);
        assert_eq!(u32_at(&buf, 8), 7);
        assert_eq!(&buf[16..18], &[AF_INET6, IPPROTO_TCP]);
        assert_eq!(u32_at(&buf, 20), 1 << 10);
        // The bytecode attribute: length 12, type 1, then the two ops.
        assert_eq!((u16_at(&buf, 72), u16_at(&buf, 74)), (12, REQ_BYTECODE));
        assert_eq!((buf[76], buf[77], u16_at(&buf, 78)), (BC_S_EQ, 8, 12));
        assert_eq!(u16_at(&buf, 82), 3000);
        encode_diag_request(&mut buf, AF_INET, Protocol::Udp, None, 1);
        assert_eq!(buf.len(), 72);
        assert_eq!(u32_at(&buf, 20), 1 << 7);
    }

    #[test]
    fn replies_decode() {
        let mut v4 = [0u8; 16];
        v4[..4].copy_from_slice(&[127, 0, 0, 1]);
        let mut bytes = diag_reply(9, AF_INET, 3000, v4, 1000, 4242, None);
        bytes.extend(diag_reply(9, AF_INET6, 8080, [0; 16], 0, 77, Some(0)));
        bytes.extend(diag_reply(3, AF_INET6, 1, [0; 16], 0, 1, Some(1)));
        let mut out = Vec::new();
        assert_eq!(
            decode_diag_batch(&bytes, Protocol::Tcp, 9, &mut out),
            Ok(Batch::More)
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].local, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(
            (out[0].id, out[0].uid, out[0].v6_only),
            (4242, Some(1000), None)
        );
        assert_eq!(out[1].local, "[::]:8080".parse().unwrap());
        assert_eq!(out[1].v6_only, Some(false));
        let done = message(NLMSG_DONE, 9, &[0; 4]);
        assert_eq!(
            decode_diag_batch(&done, Protocol::Tcp, 9, &mut out),
            Ok(Batch::Done)
        );
        let error = message(NLMSG_ERROR, 9, &(-22i32).to_ne_bytes());
        assert_eq!(
            decode_diag_batch(&error, Protocol::Tcp, 9, &mut out),
            Err(DecodeError::Kernel(22))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]
        #[test]
        fn diag_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), seq in 0u32..3) {
            let mut out = Vec::new();
            let _ = decode_diag_batch(&bytes, Protocol::Tcp, seq, &mut out);
        }

        #[test]
        fn diag_round_trips(
            seq in any::<u32>(), v6 in any::<bool>(), port in any::<u16>(), src in any::<[u8; 16]>(),
            uid in any::<u32>(), inode in any::<u32>(), v6only in proptest::option::of(0u8..2),
            cut in 0usize..200,
        ) {
            let family = if v6 { AF_INET6 } else { AF_INET };
            let bytes = diag_reply(seq, family, port, src, uid, inode, v6only);
            let mut out = Vec::new();
            prop_assert_eq!(decode_diag_batch(&bytes, Protocol::Udp, seq, &mut out), Ok(Batch::More));
            let socket = out[0];
            prop_assert_eq!(socket.local.port(), port);
            prop_assert_eq!((socket.id, socket.uid), (u64::from(inode), Some(uid)));
            prop_assert_eq!(socket.v6_only, if v6 { v6only.map(|f| f != 0) } else { None });
            // Any truncation is an error or fewer sockets, never a panic.
            let mut cut_out = Vec::new();
            let _ = decode_diag_batch(&bytes[..cut.min(bytes.len())], Protocol::Udp, seq, &mut cut_out);
            prop_assert!(cut_out.len() <= 1);
        }
    }
}
