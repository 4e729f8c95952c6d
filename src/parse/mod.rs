//! Pure decoders: bytes in, values out, no I/O.
//!
//! Everything the platform layer reads goes through one of these functions, so
//! each is tested on plain bytes, captured fixtures and generated input. None of
//! them panics on any input; malformed input is a typed error or an empty value.
//! They compile on every platform: the Linux `/proc` text ([`parse_stat`],
//! [`split_cmdline`], [`parse_cwd_link`], ...) here, and, crate-private but
//! tested on every platform, the buffers macOS system calls fill
//! (`KERN_PROCARGS2`, vnode paths, Mach ticks, BSD status).

mod boot_id;
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
mod bsd_status;
mod children;
pub(crate) mod cmdline;
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
mod darwin_time;
mod decimal;
mod link;
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
mod procargs;
mod socket;
mod stat;
mod status;
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
mod vnode_path;

pub use boot_id::{BootIdError, parse_boot_id};
#[cfg_attr(not(target_os = "macos"), allow(unused_imports))]
pub(crate) use bsd_status::state_from_bsd_status;
#[cfg_attr(not(target_os = "linux"), allow(unused_imports))]
pub(crate) use children::parse_children;
pub use cmdline::split_cmdline;
#[cfg_attr(not(target_os = "macos"), allow(unused_imports))]
pub(crate) use darwin_time::{mach_ticks_to_duration, start_time_from_timeval};
pub(crate) use decimal::{decimal, pid as pid_token};
pub use link::parse_cwd_link;
pub use procargs::ProcArgsError;
#[cfg_attr(not(target_os = "macos"), allow(unused_imports))]
pub(crate) use procargs::parse_procargs2;
pub use socket::SocketDecodeError;
pub use stat::{Stat, StatError, parse_stat};
pub use status::parse_status_tgid;
#[cfg_attr(not(target_os = "macos"), allow(unused_imports))]
pub(crate) use vnode_path::{c_string_bytes, parse_vnode_path};
