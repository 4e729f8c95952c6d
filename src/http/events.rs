//! `GET /api/events`: one [`Tracker`] for the server, its events fanned out
//! to every client as server-sent events.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream;
use futures_util::{Stream, StreamExt};
use tokio::sync::{broadcast, watch};

use super::ApiState;
use crate::MemorySource;
use crate::events::{Event, Tracker};
use crate::table::ProcessTable;

/// What the pump hands the clients.
#[derive(Clone, Debug)]
pub(crate) enum Message {
    Event(Event),
    /// The tracker failed: its message; the stream ends after it.
    Failed(String),
}

/// Events a slow client may fall behind by before it is told it lagged.
const BACKLOG: usize = 4096;

/// The broadcast of events, whether the tracker runs yet, and the table it
/// keeps, as the last frozen copy.
pub(crate) struct Channel {
    sender: broadcast::Sender<Message>,
    /// `None` while the tracker starts; then whether it started.
    running: watch::Receiver<Option<Result<(), String>>>,
    /// The tracker's table as of its last publication; `None` before the
    /// tracker runs and after it failed.
    snapshot: watch::Receiver<Option<Arc<Frozen>>>,
}

/// A copy of the tracker's table that never changes: readers share it.
pub(crate) type Frozen = ProcessTable<MemorySource>;

/// How often the tracker's table is sampled again for CPU and memory use
/// (events tell when processes start and end, not how much they run).
const RESAMPLE: Duration = Duration::from_secs(2);

impl ApiState {
    /// The event channel, starting the tracker on first use.
    pub(crate) fn events(&self) -> &Channel {
        self.inner.events.get_or_init(|| {
            let (sender, _) = broadcast::channel(BACKLOG);
            let (running, watched) = watch::channel(None);
            let (snapshot, snapshots) = watch::channel(None);
            tokio::spawn(pump(self.clone(), sender.clone(), running, snapshot));
            Channel {
                sender,
                running: watched,
                snapshot: snapshots,
            }
        })
    }

    /// The tracker's table as last published, once the tracker runs;
    /// `None` when it could not start or failed.
    pub(crate) async fn snapshot(&self) -> Option<Arc<Frozen>> {
        let channel = self.events();
        let mut running = channel.running.clone();
        let started = running.wait_for(Option::is_some).await.ok()?.clone();
        match started {
            Some(Ok(())) => channel.snapshot.borrow().clone(),
            _ => None,
        }
    }
}

/// Reads the tracker and broadcasts each event. The tracker's table is
/// published to readers (a frozen copy) at most once per `max_age` while
/// events change it, and sampled again every [`RESAMPLE`]. Every event
/// also marks the rescanned table stale (for `ApiConfig::event_fed(false)`).
async fn pump(
    state: ApiState,
    sender: broadcast::Sender<Message>,
    running: watch::Sender<Option<Result<(), String>>>,
    snapshot: watch::Sender<Option<Arc<Frozen>>>,
) {
    let tracker = tokio::task::spawn_blocking(Tracker::all).await;
    let mut tracker = match tracker {
        Ok(Ok(tracker)) => tracker,
        Ok(Err(error)) => {
            running.send_replace(Some(Err(error.to_string())));
            return;
        }
        Err(_) => {
            running.send_replace(Some(Err("the tracker's start failed".into())));
            return;
        }
    };
    snapshot.send_replace(Some(Arc::new(tracker.table().frozen())));
    // Said after the tracker subscribed: every event from here on is sent.
    running.send_replace(Some(Ok(())));
    let every = state.config().max_age.max(Duration::from_millis(1));
    let mut publish = tokio::time::interval(every);
    publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut resample = tokio::time::interval_at(tokio::time::Instant::now() + RESAMPLE, RESAMPLE);
    resample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut changed = false;
    loop {
        tokio::select! {
            next = tracker.next_async() => {
                let message = match next {
                    Ok(event) => Message::Event(event),
                    Err(error) => Message::Failed(error.to_string()),
                };
                state.inner.stale.store(true, Ordering::Relaxed);
                changed = true;
                let failed = matches!(message, Message::Failed(_));
                // No receivers is fine: a client may connect later.
                let _ = sender.send(message);
                if failed {
                    // Readers go back to rescanning.
                    snapshot.send_replace(None);
                    running.send_replace(Some(Err("the tracker failed".into())));
                    return;
                }
            }
            _ = publish.tick(), if changed => {
                snapshot.send_replace(Some(Arc::new(tracker.table().frozen())));
                changed = false;
            }
            _ = resample.tick() => {
                tracker.resample();
                changed = true;
            }
        }
    }
}

pub(crate) async fn stream(
    State(state): State<ApiState>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let channel = state.events();
    let receiver = channel.sender.subscribe();
    let mut running = channel.running.clone();
    // First `ready`, once the tracker runs; or `failed`, and the end.
    let start = async move {
        let started = running
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|s| s.clone());
        match started {
            Some(Ok(())) => (
                SseEvent::default().event("ready").data("running"),
                Some(receiver),
            ),
            Some(Err(message)) => (SseEvent::default().event("failed").data(message), None),
            None => (
                SseEvent::default()
                    .event("failed")
                    .data("the tracker stopped"),
                None,
            ),
        }
    };
    let events = stream::once(start).flat_map(|(first, receiver)| {
        stream::once(async move { Ok(first) }).chain(relay(receiver))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// Each message of `receiver` as an SSE event, until the tracker fails.
fn relay(
    receiver: Option<broadcast::Receiver<Message>>,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    stream::unfold(receiver, |receiver| async move {
        let mut receiver = receiver?;
        let event = match receiver.recv().await {
            Ok(Message::Event(event)) => match serde_json::to_string(&event) {
                Ok(json) => SseEvent::default().event("process").data(json),
                Err(error) => SseEvent::default().event("failed").data(error.to_string()),
            },
            Ok(Message::Failed(message)) => {
                return Some((Ok(SseEvent::default().event("failed").data(message)), None));
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                SseEvent::default().event("lagged").data(missed.to_string())
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), Some(receiver)))
    })
}
