//! Pure decoders of what the kernel says about sockets: sock_diag netlink
//! messages, `/proc/net/{tcp,tcp6,udp,udp6}` text, and the macOS
//! `PROC_PIDLISTFDS` / `PROC_PIDFDSOCKETINFO` buffers. Bytes in, values out,
//! no I/O; none panics on any input. They compile on every platform, so the
//! macOS ones are tested on Linux too.

use std::net::SocketAddr;

use super::Protocol;

#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
mod darwin;
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod netlink;
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod proc_net;

#[cfg_attr(not(target_os = "macos"), allow(unused_imports))]
pub(crate) use darwin::*;
#[cfg_attr(not(target_os = "linux"), allow(unused_imports))]
pub(crate) use netlink::*;
#[cfg_attr(not(target_os = "linux"), allow(unused_imports))]
pub(crate) use proc_net::*;

/// One socket as a platform reports it, before its holders are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawSocket {
    pub(crate) protocol: Protocol,
    pub(crate) local: SocketAddr,
    /// Linux: the socket inode; macOS: the kernel's socket id (`soi_so`).
    pub(crate) id: u64,
    /// The socket's owner, where the platform says.
    pub(crate) uid: Option<u32>,
    /// For IPv6 sockets: whether IPv4 is refused (`IPV6_V6ONLY`), where known.
    pub(crate) v6_only: Option<bool>,
}

/// Why a buffer could not be decoded (a public type: errors carry it).
pub(crate) use crate::parse::SocketDecodeError as DecodeError;

pub(super) fn align4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

pub(super) fn u16_at(bytes: &[u8], at: usize) -> u16 {
    let mut raw = [0u8; 2];
    if let Some(src) = bytes.get(at..at + 2) {
        raw.copy_from_slice(src);
    }
    u16::from_ne_bytes(raw)
}

pub(super) fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut raw = [0u8; 4];
    if let Some(src) = bytes.get(at..at + 4) {
        raw.copy_from_slice(src);
    }
    u32::from_ne_bytes(raw)
}

pub(super) fn i32_at(bytes: &[u8], at: usize) -> i32 {
    u32_at(bytes, at) as i32
}
