//! Waiting for a process to exit, and collecting the exit status of our own
//! children.
//!
//! A pidfd becomes readable when its process exits, whoever its parent is, so
//! waiting is an event: `poll(2)` on the pidfd for blocking waits, tokio's
//! `AsyncFd` for async ones. On macOS the event is a kqueue `EVFILT_PROC` /
//! `NOTE_EXIT` filter, registered first and then checked against the
//! handle's start time (`ESRCH` on registering means the process is gone);
//! `kevent(2)` with a timeout for blocking waits, the kqueue's fd in an
//! `AsyncFd` for async ones. Neither reaps: the exit status stays for the
//! parent. Reaping is a separate, explicit step ([`ProcessHandle::try_reap`],
//! [`ProcessHandle::reap`]) through `waitid(P_PIDFD)`, for children the caller
//! owns; it never waits for "any child", so it cannot take a status that
//! `std::process::Child::wait` or `tokio::process` is waiting for.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use super::{ProcessHandle, sys};
use crate::Result;

impl ProcessHandle {
    /// True once the process has exited (it may still be an unreaped zombie).
    ///
    /// ```no_run
    /// use proctrack::signal::{ProcessHandle, Signal};
    /// let mut child = std::process::Command::new("true").spawn()?;
    /// let handle = ProcessHandle::from_child(&child)?;
    /// handle.wait()?;
    /// assert!(handle.has_exited()?);
    /// child.wait()?; // the exit status is still there for its owner
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn has_exited(&self) -> Result<bool> {
        sys::has_exited(self)
    }

    /// Blocks until the process exits. Does not reap it.
    ///
    /// Needs a pidfd ([`Capabilities::pidfd_wait`](super::Capabilities::pidfd_wait))
    /// or macOS's kqueue ([`Capabilities::exit_events`](super::Capabilities::exit_events));
    /// an unpinned Linux handle answers [`Error::Unsupported`](crate::Error::Unsupported).
    ///
    /// ```no_run
    /// use proctrack::signal::ProcessHandle;
    /// let me = proctrack::process(proctrack::Pid::try_from(4242)?)?.identity();
    /// ProcessHandle::open(me)?.wait()?; // any process, not only children
    /// # Ok::<(), proctrack::Error>(())
    /// ```
    pub fn wait(&self) -> Result<()> {
        sys::wait_until(self, None).map(|_| ())
    }

    /// Blocks until the process exits or `timeout` passes; true if it exited.
    /// Does not reap it.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use proctrack::signal::{ProcessHandle, Signal};
    /// let mut child = std::process::Command::new("sleep").arg("60").spawn()?;
    /// let handle = ProcessHandle::from_child(&child)?;
    /// assert!(!handle.wait_timeout(Duration::from_millis(10))?);
    /// handle.signal(Signal::Kill)?;
    /// assert!(handle.wait_timeout(Duration::from_secs(60))?);
    /// child.wait()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        sys::wait_until(self, Some(Instant::now() + timeout))
    }

    /// Completes when the process exits. Does not reap it.
    ///
    /// Registers a duplicate of the pidfd (on macOS, a new kqueue watching
    /// the process) with the tokio reactor, so several tasks may await the
    /// same handle. Needs a pidfd or macOS; an unpinned Linux handle answers
    /// [`Error::Unsupported`](crate::Error::Unsupported).
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime with I/O enabled, as tokio's own
    /// I/O types do.
    ///
    /// ```no_run
    /// # async fn demo() -> proctrack::Result<()> {
    /// use proctrack::signal::ProcessHandle;
    /// let who = proctrack::process(proctrack::Pid::try_from(4242)?)?.identity();
    /// let handle = ProcessHandle::open(who)?;
    /// handle.wait_async().await?;
    /// println!("{who} exited");
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn wait_async(&self) -> Result<()> {
        sys::wait_async(self).await
    }

    /// Collects the exit status of our child if it has exited; `Ok(None)`
    /// while it runs. The process is reaped: its pid is free afterwards.
    ///
    /// Only for a child *you own*: one spawned by you that nothing else
    /// (`std::process::Child::wait`, `tokio::process`) will wait for, or an
    /// orphan adopted by a [`Subreaper`](super::Subreaper). Any other process
    /// is [`Error::NotChild`](crate::Error::NotChild), as is a child already
    /// reaped.
    ///
    /// ```no_run
    /// use proctrack::signal::{ProcessHandle, Signal};
    /// let child = std::process::Command::new("sleep").arg("60").spawn()?;
    /// let handle = ProcessHandle::from_child(&child)?;
    /// drop(child); // we own the process through the handle from now on
    /// handle.signal(Signal::Term)?;
    /// handle.wait()?;
    /// let status = handle.try_reap()?.expect("it has exited");
    /// assert!(!status.success());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_reap(&self) -> Result<Option<ExitStatus>> {
        sys::reap(self, false)
    }

    /// Blocks until our child exits and collects its exit status. The same
    /// ownership rule as [`ProcessHandle::try_reap`] applies.
    ///
    /// ```no_run
    /// use proctrack::signal::ProcessHandle;
    /// let child = std::process::Command::new("true").spawn()?;
    /// let handle = ProcessHandle::from_child(&child)?;
    /// drop(child);
    /// assert!(handle.reap()?.success());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reap(&self) -> Result<ExitStatus> {
        sys::reap(self, true)?.ok_or(crate::Error::NotChild { pid: self.pid() })
    }
}
