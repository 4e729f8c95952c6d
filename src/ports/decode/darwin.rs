//! The macOS libproc buffers: `PROC_PIDLISTFDS` and `PROC_PIDFDSOCKETINFO`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{RawSocket, i32_at, u32_at};
use crate::ports::Protocol;

/// `PROX_FDTYPE_SOCKET` in a `proc_fdinfo`.
const FDTYPE_SOCKET: u32 = 2;
/// `sizeof(struct socket_fdinfo)` on 64-bit macOS (checked against libproc's
/// bindings in `src/ffi.rs`).
pub(crate) const SOCKET_FDINFO_SIZE: usize = 792;
/// Offsets into `struct socket_fdinfo`: `psi` (a `socket_info`) starts at 24,
/// after `proc_fileinfo`; within it `soi_stat` takes 136 bytes.
pub(crate) const OFFSET_PSI: usize = 24;
pub(crate) const OFFSET_SOI_SO: usize = OFFSET_PSI + 136;
pub(crate) const OFFSET_SOI_FAMILY: usize = OFFSET_PSI + 160;
pub(crate) const OFFSET_SOI_KIND: usize = OFFSET_PSI + 232;
pub(crate) const OFFSET_SOI_PROTO: usize = OFFSET_PSI + 240;
/// `vst_uid` in `soi_stat`, the socket's owner.
pub(crate) const OFFSET_VST_UID: usize = OFFSET_PSI + 16;
/// Within `in_sockinfo`.
const INSI_LPORT: usize = 4;
const INSI_FLAGS: usize = 16;
const INSI_VFLAG: usize = 24;
const INSI_LADDR: usize = 48;
/// `tcpsi_state`, after the 80-byte `in_sockinfo` in `tcp_sockinfo`.
const TCPSI_STATE: usize = 80;
const SOCKINFO_IN: u32 = 1;
const SOCKINFO_TCP: u32 = 2;
const DARWIN_AF_INET6: u32 = 30;
const INI_IPV4: u8 = 0x1;
const INI_IPV6: u8 = 0x2;
/// `IN6P_IPV6_V6ONLY` in `insi_flags`.
const IN6P_IPV6_V6ONLY: u32 = 0x8000;
/// `TSI_S_LISTEN`.
const TSI_S_LISTEN: u32 = 1;

/// The socket fds in a `PROC_PIDLISTFDS` buffer (`struct proc_fdinfo`: `int
/// proc_fd; uint32_t proc_fdtype`), in order. A trailing partial entry is
/// ignored.
pub(crate) fn darwin_socket_fds(bytes: &[u8]) -> impl Iterator<Item = i32> + '_ {
    bytes
        .chunks_exact(8)
        .filter(|entry| u32_at(entry, 4) == FDTYPE_SOCKET)
        .map(|entry| i32_at(entry, 0))
}

/// A listening TCP or bound, unconnected-style UDP socket from a
/// `PROC_PIDFDSOCKETINFO` buffer; `None` for anything else (Unix sockets,
/// connected or unbound sockets, a short buffer).
pub(crate) fn darwin_listener(bytes: &[u8]) -> Option<RawSocket> {
    if bytes.len() < SOCKET_FDINFO_SIZE {
        return None;
    }
    let kind = u32_at(bytes, OFFSET_SOI_KIND);
    let proto = &bytes[OFFSET_SOI_PROTO..];
    let protocol = match kind {
        SOCKINFO_TCP if u32_at(proto, TCPSI_STATE) == TSI_S_LISTEN => Protocol::Tcp,
        SOCKINFO_IN => Protocol::Udp,
        _ => return None,
    };
    // The port is a network-order u16 stored in an int: its first two bytes.
    let port = u16::from_be_bytes([proto[INSI_LPORT], proto[INSI_LPORT + 1]]);
    if port == 0 {
        return None;
    }
    let vflag = proto[INSI_VFLAG];
    let family_v6 = u32_at(bytes, OFFSET_SOI_FAMILY) == DARWIN_AF_INET6;
    let mut addr = [0u8; 16];
    addr.copy_from_slice(&proto[INSI_LADDR..INSI_LADDR + 16]);
    let ip = if family_v6 {
        IpAddr::V6(Ipv6Addr::from(addr))
    } else {
        // `in4in6_addr`: 12 bytes of padding, then the IPv4 address.
        IpAddr::V4(Ipv4Addr::new(addr[12], addr[13], addr[14], addr[15]))
    };
    let v6_only = family_v6
        .then(|| u32_at(proto, INSI_FLAGS) & IN6P_IPV6_V6ONLY != 0 || vflag & INI_IPV4 == 0);
    let _ = INI_IPV6;
    Some(RawSocket {
        protocol,
        local: SocketAddr::new(ip, port),
        id: u64::from(u32_at(bytes, OFFSET_SOI_SO))
            | (u64::from(u32_at(bytes, OFFSET_SOI_SO + 4)) << 32),
        uid: Some(u32_at(bytes, OFFSET_VST_UID)),
        v6_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A `socket_fdinfo` with the fields the decoder reads.
    fn darwin_buffer(
        kind: u32,
        family: u32,
        port: u16,
        vflag: u8,
        flags: u32,
        state: u32,
    ) -> Vec<u8> {
        let mut b = vec![0u8; SOCKET_FDINFO_SIZE];
        b[OFFSET_SOI_SO..OFFSET_SOI_SO + 8].copy_from_slice(&0xdead_beef_u64.to_ne_bytes());
        b[OFFSET_VST_UID..OFFSET_VST_UID + 4].copy_from_slice(&501u32.to_ne_bytes());
        b[OFFSET_SOI_FAMILY..OFFSET_SOI_FAMILY + 4].copy_from_slice(&family.to_ne_bytes());
        b[OFFSET_SOI_KIND..OFFSET_SOI_KIND + 4].copy_from_slice(&kind.to_ne_bytes());
        let p = OFFSET_SOI_PROTO;
        b[p + INSI_LPORT..p + INSI_LPORT + 2].copy_from_slice(&port.to_be_bytes());
        b[p + INSI_FLAGS..p + INSI_FLAGS + 4].copy_from_slice(&flags.to_ne_bytes());
        b[p + INSI_VFLAG] = vflag;
        b[p + INSI_LADDR + 12..p + INSI_LADDR + 16].copy_from_slice(&[127, 0, 0, 1]);
        b[p + TCPSI_STATE..p + TCPSI_STATE + 4].copy_from_slice(&state.to_ne_bytes());
        b
    }

    #[test]
    fn darwin_buffers_decode() {
        let listen = darwin_listener(&darwin_buffer(
            SOCKINFO_TCP,
            2,
            3000,
            INI_IPV4,
            0,
            TSI_S_LISTEN,
        ))
        .unwrap();
        assert_eq!(listen.local, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(
            (listen.protocol, listen.id, listen.uid, listen.v6_only),
            (Protocol::Tcp, 0xdead_beef, Some(501), None)
        );
        assert_eq!(
            darwin_listener(&darwin_buffer(SOCKINFO_TCP, 2, 3000, INI_IPV4, 0, 4)),
            None
        );
        let dual = darwin_listener(&darwin_buffer(
            SOCKINFO_IN,
            30,
            53,
            INI_IPV4 | INI_IPV6,
            0,
            0,
        ))
        .unwrap();
        assert_eq!((dual.protocol, dual.v6_only), (Protocol::Udp, Some(false)));
        let only6 = darwin_listener(&darwin_buffer(
            SOCKINFO_IN,
            30,
            53,
            INI_IPV6,
            IN6P_IPV6_V6ONLY,
            0,
        ))
        .unwrap();
        assert_eq!(only6.v6_only, Some(true));
        assert_eq!(darwin_listener(&[0; 10]), None);
        let mut fds = Vec::new();
        for (fd, kind) in [(0i32, 1u32), (3, 2), (4, 2), (5, 3)] {
            fds.extend_from_slice(&fd.to_ne_bytes());
            fds.extend_from_slice(&kind.to_ne_bytes());
        }
        fds.push(9);
        assert_eq!(darwin_socket_fds(&fds).collect::<Vec<_>>(), vec![3, 4]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]
        #[test]
        fn darwin_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..900)) {
            let _ = darwin_listener(&bytes);
            let _ = darwin_socket_fds(&bytes).count();
        }
    }
}
