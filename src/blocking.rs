//! Running blocking process work (scans, tree kills) off tokio's async threads.

use crate::{Error, Result};

/// Runs `work` on tokio's blocking pool and returns its result. A panic in
/// `work` resumes in the caller, as it would have in a direct call.
pub(crate) async fn run_blocking<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(join) => match join.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Cancelled: the runtime is shutting down.
            Err(join) => Err(Error::Io {
                path: None,
                source: std::io::Error::other(join),
            }),
        },
    }
}
