//! [`serve`]: the accept loop. Each connection is hyper's HTTP/1 with a
//! header-read timeout and an idle timeout; connections are bounded (by the
//! configuration and by the file descriptors the process may open), and
//! when the bound is reached the connection idle the longest is closed to
//! make room; running out of file descriptors (`EMFILE`) closes idle
//! connections and goes on. Nothing a client does ends the loop.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use super::{ApiState, router};

/// File descriptors kept free of connections: for `/proc` reads, the
/// event socket and the runtime's own.
pub const FD_RESERVE: u64 = 128;

/// Raises this process's soft limit of open files to its hard limit and
/// returns the new soft limit: a server that may hold many connections
/// calls it at start (`proctrack serve` does). On macOS the soft limit
/// rises to at most `OPEN_MAX`; where the limit is unknown, it is left.
///
/// ```no_run
/// let limit = proctrack::http::raise_fd_limit()?;
/// println!("up to {limit} open files");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn raise_fd_limit() -> io::Result<u64> {
    crate::platform::raise_open_file_limit()
}

/// Out of file descriptors, for the process and for the system (the same
/// numbers on Linux, macOS and the BSDs).
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// How many connections fit now: the configured bound, or fewer when the
/// open-file limit leaves less room (it is read again each time: another
/// process may lower it with `prlimit`).
fn room(configured: usize) -> usize {
    let limit = crate::platform::open_file_limit();
    let fds = usize::try_from(limit.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX);
    configured.min(fds).max(1)
}

/// One connection as the accept loop sees it.
struct Conn {
    /// The last read or write that moved bytes, in milliseconds since
    /// the server's start.
    last: AtomicU64,
    /// Requests whose handler runs now.
    busy: AtomicUsize,
    /// Told to close (evicted); once set the connection is not chosen again.
    closing: AtomicBool,
    close: Notify,
}

/// The open connections.
struct Connections {
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    next: AtomicU64,
    /// One permit per closed connection: the accept loop waits on it.
    closed: Notify,
    epoch: Instant,
}

impl Connections {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn add(&self) -> (u64, Arc<Conn>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            last: AtomicU64::new(self.now()),
            busy: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        });
        self.lock().insert(id, Arc::clone(&conn));
        (id, conn)
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
        self.closed.notify_one();
    }

    /// Tells up to `count` idle connections (no handler running), the
    /// longest idle first, to close; returns how many it told.
    fn evict_idle(&self, count: usize) -> usize {
        let open = self.lock();
        let mut idle: Vec<(u64, &Arc<Conn>)> = open
            .values()
            .filter(|c| c.busy.load(Ordering::Relaxed) == 0 && !c.closing.load(Ordering::Relaxed))
            .map(|c| (c.last.load(Ordering::Relaxed), c))
            .collect();
        idle.sort_by_key(|(last, _)| *last);
        let mut told = 0;
        for (_, conn) in idle.into_iter().take(count) {
            conn.closing.store(true, Ordering::Relaxed);
            // The permit is kept if the connection is not waiting yet.
            conn.close.notify_one();
            told += 1;
        }
        told
    }

    /// Connections not told to close yet.
    fn staying(&self) -> usize {
        self.lock()
            .values()
            .filter(|c| !c.closing.load(Ordering::Relaxed))
            .count()
    }
}

/// Removes the connection from the open ones however its task ends.
struct Registered {
    connections: Arc<Connections>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.connections.remove(self.id);
    }
}

/// Counts a running handler while alive.
struct Busy(Arc<Conn>);

impl Busy {
    fn new(conn: &Arc<Conn>) -> Busy {
        conn.busy.fetch_add(1, Ordering::Relaxed);
        Busy(Arc::clone(conn))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The socket, noting when bytes last moved.
struct Activity {
    stream: TcpStream,
    conn: Arc<Conn>,
    connections: Arc<Connections>,
}

impl Activity {
    fn moved(&self) {
        self.conn
            .last
            .store(self.connections.now(), Ordering::Relaxed);
    }
}

impl AsyncRead for Activity {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.moved();
        }
        poll
    }
}

impl AsyncWrite for Activity {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Serves [`router`]`(state)` on `listener` for as long as the task runs:
/// nothing a client does ends it, and an accept error is waited out (after
/// `EMFILE`, idle connections are closed to free descriptors). Needs a
/// tokio runtime with timers and I/O (`enable_all`).
///
/// Each connection is HTTP/1: its request head must arrive within
/// [`ApiConfig::header_timeout`](super::ApiConfig::header_timeout) (also
/// between requests of a kept-alive connection), and one on which no byte
/// moved for [`ApiConfig::idle_timeout`](super::ApiConfig::idle_timeout)
/// while no handler ran is closed. At most
/// [`ApiConfig::max_connections`](super::ApiConfig::max_connections) are
/// open, fewer when the open-file limit less [`FD_RESERVE`] is lower; a
/// new connection beyond closes the longest idle one, or waits for one to
/// end when all are busy.
pub async fn serve(listener: TcpListener, state: ApiState) -> io::Result<()> {
    let config = state.config().clone();
    let app = router(state);
    let connections = Arc::new(Connections {
        open: Mutex::new(HashMap::new()),
        next: AtomicU64::new(0),
        closed: Notify::new(),
        epoch: Instant::now(),
    });
    loop {
        // Room for one more before accepting it.
        loop {
            let room = room(config.max_connections);
            if connections.len() < room {
                break;
            }
            let over = connections.staying().saturating_sub(room) + 1;
            connections.evict_idle(over);
            // Woken by the next close (an evicted one, or any other).
            connections.closed.notified().await;
        }
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                accept_failed(&error, &connections).await;
                continue;
            }
        };
        let (id, conn) = connections.add();
        let registered = Registered {
            connections: Arc::clone(&connections),
            id,
        };
        let io = Activity {
            stream,
            conn: Arc::clone(&conn),
            connections: Arc::clone(&connections),
        };
        let app = TowerToHyperService::new(app.clone());
        let counted = Arc::clone(&conn);
        let service = hyper::service::service_fn(move |request| {
            let busy = Busy::new(&counted);
            let answer = hyper::service::Service::call(&app, request);
            async move {
                let answer = answer.await;
                drop(busy);
                answer
            }
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_timeout)
            .keep_alive(true);
        let idle_timeout = config.idle_timeout;
        let epoch = Arc::clone(&connections);
        tokio::spawn(async move {
            let _registered = registered;
            let connection = builder.serve_connection(TokioIo::new(io), service);
            tokio::select! {
                // Errors are the client's (a reset, a malformed request,
                // a header timeout): the connection ends either way.
                _ = connection => {}
                _ = conn.close.notified() => {}
                _ = idle(&conn, &epoch, idle_timeout) => {}
            }
        });
    }
}

/// Returns once `conn` has moved no byte for `timeout` while no handler ran.
async fn idle(conn: &Conn, connections: &Connections, timeout: Duration) {
    let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    loop {
        let since = connections
            .now()
            .saturating_sub(conn.last.load(Ordering::Relaxed));
        if conn.busy.load(Ordering::Relaxed) == 0 && since >= timeout_ms {
            return;
        }
        let left = if since >= timeout_ms {
            timeout_ms
        } else {
            timeout_ms - since
        };
        tokio::time::sleep(Duration::from_millis(left.max(10))).await;
    }
}

/// An accept error: a client's own (reset before accepted) is skipped; out
/// of descriptors closes idle connections and waits a little; anything else
/// waits a little. None ends the server.
async fn accept_failed(error: &io::Error, connections: &Connections) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    let out_of_fds = matches!(
        error.raw_os_error(),
        Some(code) if code == EMFILE || code == ENFILE
    );
    if out_of_fds {
        // Room for the next connection and for the requests' /proc reads.
        connections.evict_idle(usize::try_from(FD_RESERVE / 2).unwrap_or(64));
    }
    tokio::time::sleep(Duration::from_millis(if out_of_fds { 10 } else { 100 })).await;
}
