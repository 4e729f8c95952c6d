//! [`ProcessIdentity`]: one particular process, never whoever holds its pid later.
//!
//! Pids are reused (within seconds where `pid_max` is 32768), so a bare pid is a
//! name for "whoever has this number now". A process is pinned down by its pid
//! together with its start time, which the kernel never changes (not even on
//! `exec`) and which a later holder of the same pid cannot share. The boot id
//! adds the boot: start times restart from zero after a reboot, and an identity
//! stored on disk (the registry) must not match a process of the next boot.

use std::fmt;

use crate::Pid;

/// When a process started, as the platform measures it.
///
/// On Linux: clock ticks since boot (field 22 of `/proc/<pid>/stat`, in units of
/// `sysconf(_SC_CLK_TCK)`). On macOS: microseconds since the Unix epoch. Only
/// compare start times taken on the same machine and boot.
///
/// ```
/// use proctrack::StartTime;
/// assert!(StartTime::from_raw(5) < StartTime::from_raw(6));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StartTime(u64);

impl StartTime {
    /// Wraps a raw platform value (see the type's docs for the unit).
    pub const fn from_raw(raw: u64) -> StartTime {
        StartTime(raw)
    }

    /// The raw platform value.
    pub const fn as_raw(self) -> u64 {
        self.0
    }
}

/// The kernel's random id of the current boot (`/proc/sys/kernel/random/boot_id`).
///
/// ```
/// use proctrack::BootId;
/// let id: BootId = "0f2c1d9e-4a1b-4c3d-8e5f-6a7b8c9d0e1f".parse()?;
/// assert_eq!(id.to_string(), "0f2c1d9e-4a1b-4c3d-8e5f-6a7b8c9d0e1f");
/// # Ok::<(), proctrack::parse::BootIdError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BootId([u8; 16]);

impl BootId {
    /// Wraps 16 raw bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> BootId {
        BootId(bytes)
    }

    /// The 16 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl std::str::FromStr for BootId {
    type Err = crate::parse::BootIdError;

    fn from_str(text: &str) -> Result<BootId, Self::Err> {
        crate::parse::parse_boot_id(text.as_bytes())
    }
}

impl fmt::Display for BootId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for BootId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BootId({self})")
    }
}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl serde::Serialize for BootId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> serde::Deserialize<'de> for BootId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<BootId, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One particular process: pid, start time and boot.
///
/// Two identities are equal only when all three are. A process keeps its
/// identity for its whole life, across `exec`; a new process on a reused pid
/// gets a new one. Every layer of proctrack (table rows, signal handles, the
/// registry) speaks in identities.
///
/// ```
/// use proctrack::{BootId, Pid, ProcessIdentity, StartTime};
///
/// let boot = BootId::from_bytes([7; 16]);
/// let pid = Pid::try_from(4242)?;
/// let before = ProcessIdentity::new(boot, pid, StartTime::from_raw(100));
/// let reused = ProcessIdentity::new(boot, pid, StartTime::from_raw(900));
/// assert_ne!(before, reused);
/// # Ok::<(), proctrack::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ProcessIdentity {
    pid: Pid,
    start_time: StartTime,
    boot_id: BootId,
}

impl ProcessIdentity {
    /// Assembles an identity from its parts (for instance, from a stored row).
    pub const fn new(boot_id: BootId, pid: Pid, start_time: StartTime) -> ProcessIdentity {
        ProcessIdentity {
            pid,
            start_time,
            boot_id,
        }
    }

    /// The pid the process has (had, if it is gone).
    pub const fn pid(&self) -> Pid {
        self.pid
    }

    /// When the process started.
    pub const fn start_time(&self) -> StartTime {
        self.start_time
    }

    /// The boot the process ran in.
    pub const fn boot_id(&self) -> BootId {
        self.boot_id
    }
}

impl fmt::Display for ProcessIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} (started at {})", self.pid, self.start_time.0)
    }
}
