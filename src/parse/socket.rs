/// Why a socket listing could not be decoded: a sock_diag netlink reply or a
/// `/proc/net/{tcp,tcp6,udp,udp6}` table (see [`crate::ports`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SocketDecodeError {
    /// A netlink message header claims more or fewer bytes than there are.
    #[error("netlink message of {claimed} bytes where {available} remain")]
    BadLength {
        /// The length the header claims.
        claimed: usize,
        /// The bytes left in the reply.
        available: usize,
    },
    /// A sock_diag reply too short for an `inet_diag_msg`.
    #[error("sock_diag reply of {0} bytes is shorter than an inet_diag_msg (72)")]
    ShortReply(usize),
    /// The kernel answered the request with an error (an errno).
    #[error("the kernel refused the sock_diag request: errno {0}")]
    Kernel(i32),
    /// A `/proc/net` line that does not have the expected columns.
    #[error("malformed /proc/net line {line}: {reason}")]
    BadLine {
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
}
