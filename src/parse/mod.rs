//! Pure decoders: bytes in, values out, no I/O.
//!
//! Everything the platform layer reads goes through one of these functions, so
//! each is tested on plain bytes, captured fixtures and generated input. None of
//! them panics on any input; malformed input is a typed error or an empty value.
//! They compile on every platform, the macOS ones included: Linux `/proc` text
//! ([`parse_stat`], [`split_cmdline`], [`parse_cwd_link`], ...) and the buffers
//! macOS system calls fill ([`parse_procargs2`], [`parse_vnode_path`],
//! [`mach_ticks_to_duration`], [`start_time_from_timeval`],
//! [`state_from_bsd_status`]).

mod boot_id;
mod bsd_status;
mod children;
mod cmdline;
mod darwin_time;
mod link;
mod procargs;
mod socket;
mod stat;
mod status;
mod vnode_path;

pub use boot_id::{BootIdError, parse_boot_id};
pub use bsd_status::state_from_bsd_status;
#[cfg_attr(not(target_os = "linux"), allow(unused_imports))]
pub(crate) use children::parse_children;
pub use cmdline::{CommandLine, split_cmdline};
pub use darwin_time::{mach_ticks_to_duration, start_time_from_timeval};
pub use link::parse_cwd_link;
pub use procargs::{ProcArgs, ProcArgsError, parse_procargs2};
pub use socket::SocketDecodeError;
pub use stat::{Stat, StatError, parse_stat};
pub use status::parse_status_tgid;
pub use vnode_path::{c_string_bytes, parse_vnode_path};
