//! A hasher for pid keys. Pids are small integers the kernel hands out, not
//! attacker-chosen strings, so SipHash's flood resistance buys nothing here
//! and costs most of a tree query's time.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Fibonacci hashing: one multiply spreads a u32 over all 64 bits, so the
/// table's high control bits and low bucket bits both vary.
#[derive(Default, Clone, Copy)]
pub(super) struct PidHasher(u64);

impl Hasher for PidHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, value: u32) {
        self.0 = (self.0 ^ u64::from(value)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by pid.
pub(super) type PidMap<V> = HashMap<crate::Pid, V, BuildHasherDefault<PidHasher>>;
