//! Pure decoders: bytes in, values out, no I/O.
//!
//! Everything the platform layer reads goes through one of these functions, so
//! each is tested on plain bytes, captured fixtures and generated input. None of
//! them panics on any input; malformed input is a typed error or an empty value.
//! They compile on every platform.

mod boot_id;
mod cmdline;
mod link;
mod stat;
mod status;

pub use boot_id::{BootIdError, parse_boot_id};
pub use cmdline::{CommandLine, split_cmdline};
pub use link::parse_cwd_link;
pub use stat::{Stat, StatError, parse_stat};
pub use status::parse_status_tgid;
