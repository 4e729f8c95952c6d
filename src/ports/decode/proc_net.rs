//! `/proc/net/{tcp,tcp6,udp,udp6}` text.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{DecodeError, RawSocket, listening_state};
use crate::ports::Protocol;

/// Decodes `/proc/net/{tcp,tcp6,udp,udp6}`, appending the sockets in the
/// listening state (listening TCP, unconnected UDP) to `out`, those on `port`
/// only when given. Addresses are printed as the kernel's in-memory words, so
/// this decodes them for the machine it runs on.
pub(crate) fn decode_proc_net(
    text: &[u8],
    protocol: Protocol,
    port: Option<u16>,
    out: &mut Vec<RawSocket>,
) -> Result<(), DecodeError> {
    let wanted_state = listening_state(protocol);
    // The first line is the column header.
    for (index, line) in text.split(|&b| b == b'\n').enumerate().skip(1) {
        let bad = |reason| DecodeError::BadLine {
            line: index + 1,
            reason,
        };
        let mut fields = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|field| !field.is_empty());
        let Some(_slot) = fields.next() else { continue };
        let local = fields.next().ok_or(bad("no local address"))?;
        let _remote = fields.next().ok_or(bad("no remote address"))?;
        let state = fields.next().and_then(hex_u32).ok_or(bad("no state"))?;
        if state != u32::from(wanted_state) {
            continue;
        }
        let local = hex_socket_addr(local).ok_or(bad("bad local address"))?;
        if port.is_some_and(|port| port != local.port()) {
            continue;
        }
        // queues, timer, retransmits, then uid, timeout, inode.
        let mut fields = fields.skip(3);
        let uid = fields.next().and_then(dec_u64).ok_or(bad("no uid"))?;
        let _timeout = fields.next();
        let inode = fields.next().and_then(dec_u64).ok_or(bad("no inode"))?;
        out.push(RawSocket {
            protocol,
            local,
            id: inode,
            uid: u32::try_from(uid).ok(),
            v6_only: None,
        });
    }
    Ok(())
}

/// `0100007F:0BB8` or a 32-digit IPv6 form, as `/proc/net` prints them.
fn hex_socket_addr(field: &[u8]) -> Option<SocketAddr> {
    let colon = field.iter().position(|&b| b == b':')?;
    let (addr, port) = (&field[..colon], &field[colon + 1..]);
    let port = u16::try_from(hex_u32(port)?).ok()?;
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(hex_u32(addr)?.to_ne_bytes())),
        32 => {
            let mut bytes = [0u8; 16];
            for (word, chunk) in addr.chunks_exact(8).enumerate() {
                bytes[word * 4..word * 4 + 4].copy_from_slice(&hex_u32(chunk)?.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

fn hex_u32(field: &[u8]) -> Option<u32> {
    if field.is_empty() || field.len() > 8 {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(field).ok()?, 16).ok()
}

fn dec_u64(field: &[u8]) -> Option<u64> {
    crate::parse::decimal(field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn proc_net_decodes() {
        let tcp = b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:0BB9 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 12346 1 0000000000000000 100 0 0 10 0\n";
        let mut out = Vec::new();
        decode_proc_net(tcp, Protocol::Tcp, None, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        if cfg!(target_endian = "little") {
            assert_eq!(out[0].local, "127.0.0.1:3000".parse().unwrap());
        }
        assert_eq!((out[0].id, out[0].uid), (12345, Some(1000)));
        let tcp6 = b"  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0 10 0\n";
        out.clear();
        decode_proc_net(tcp6, Protocol::Tcp, Some(8080), &mut out).unwrap();
        assert_eq!(out[0].local, "[::]:8080".parse().unwrap());
        out.clear();
        decode_proc_net(tcp6, Protocol::Tcp, Some(8081), &mut out).unwrap();
        assert!(out.is_empty());
        assert!(
            decode_proc_net(b"header\n 0: zz:1 00:0 0A\n", Protocol::Tcp, None, &mut out).is_err()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]
        #[test]
        fn proc_net_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), port in proptest::option::of(any::<u16>())) {
            let mut out = Vec::new();
            let _ = decode_proc_net(&bytes, Protocol::Tcp, port, &mut out);
        }

        #[test]
        fn proc_net_round_trips(a in any::<u32>(), port in any::<u16>(), uid in any::<u32>(), inode in any::<u64>()) {
            let text = format!("header\n   0: {a:08X}:{port:04X} 00000000:0000 0A 00000000:00000000 00:00000000 00000000 {uid:>5}        0 {inode} 1\n");
            let mut out = Vec::new();
            decode_proc_net(text.as_bytes(), Protocol::Tcp, None, &mut out).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(out[0].local, SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a.to_ne_bytes())), port));
            prop_assert_eq!((out[0].id, out[0].uid), (inode, Some(uid)));
        }
    }
}
