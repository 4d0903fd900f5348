//! `GET /api/v1/events`: Server-Sent Events of what changes on this node —
//! its orders (`order`, `cancel`), fills it learns of (`fill`), books that
//! changed (`book`), peers that come, go or fall silent (`peer`), and its
//! own state (`status`).
//!
//! One [`Hub`] per node turns the engine's events (with the connections
//! the driver reports) and the node's state into numbered records. It keeps the last [`RING`] of
//! them, so a client that reconnects with `Last-Event-ID` (browsers send it
//! by themselves) gets what it missed. When it missed more than the ring
//! holds, or its id means nothing here, it gets a `reset` event instead:
//! "reload everything". Ids start from the node's start time in
//! milliseconds times 1000, so ids of an earlier run of the node are older
//! than anything in the ring and also end in a `reset`, never in a replay of
//! the wrong events.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use axum::{Extension, Router};
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::error::ApiError;
use super::{ApiCounters, ApiState};
use crate::clock::now_ms;
use crate::engine::{Event, OrderStatus};
use crate::shutdown::Shutdown;

/// How many recent events a reconnecting client can catch up on.
pub const RING: usize = 1024;
/// How often the hub looks at the node's state for changes.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// A comment line this often (or twice per `api.idle_timeout_secs`, if
/// that is shorter) keeps proxies, browsers and the node's own idle
/// timeout from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Records a slow client may fall behind before it gets a `reset`.
const CLIENT_BACKLOG: usize = 1024;

pub fn routes() -> Router<Arc<ApiState>> {
    Router::new().route("/api/v1/events", get(events))
}

/// An event's data, kept as it is until a client needs its JSON.
trait Payload: Send + Sync + std::fmt::Debug {
    fn to_json(&self) -> String;
}

impl<T: Serialize + Send + Sync + std::fmt::Debug> Payload for T {
    fn to_json(&self) -> String {
        json(self)
    }
}

/// One numbered event as clients receive it. Its JSON is written once,
/// when the first client is sent it: a node under load records thousands
/// of events a second, mostly with nobody listening.
#[derive(Debug)]
struct Record {
    id: u64,
    kind: &'static str,
    payload: Box<dyn Payload>,
    data: OnceLock<String>,
}

impl Record {
    fn to_sse(&self) -> SseEvent {
        SseEvent::default()
            .id(self.id.to_string())
            .event(self.kind)
            .data(self.data.get_or_init(|| self.payload.to_json()))
    }
}

struct Ring {
    records: VecDeque<Arc<Record>>,
    next_id: u64,
}

/// Numbers events, keeps the recent ones and hands them to every open
/// stream. Shared by the routes (as an `Extension`) and its feeder task.
pub struct Hub {
    ring: Mutex<Ring>,
    live: broadcast::Sender<Arc<Record>>,
    clients: AtomicUsize,
    /// Most streams open at once (`api.max_event_streams`); one more is
    /// refused with 503 (each holds a task's worth of buffers, and a page
    /// left open in many tabs must not exhaust the node).
    max_clients: usize,
    /// Where refusals are counted.
    counters: Arc<ApiCounters>,
    /// How often a quiet stream gets a comment line.
    keep_alive: Duration,
}

/// What `peer` events carry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerChange {
    pub peer_id: String,
    /// `connected`, `disconnected`, `stale` (an owner not heard from: its
    /// orders are not taken) or `active` (heard from again).
    pub change: String,
}

/// What `status` events carry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatusChange {
    pub peer_count: usize,
    /// Why the node refuses new orders, if it does.
    pub degraded: Option<String>,
}

/// What `book` events carry: the market whose book changed (fetch it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BookChange {
    pub market: String,
}

/// What `reset` events carry: why the client must reload its state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reset {
    pub reason: String,
}

/// What the first event of every stream (`hello`, no id) carries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Hello {
    /// The id of the newest event so far.
    pub last_id: u64,
    /// How many recent events a reconnect can catch up on.
    pub ring: usize,
}

impl Hub {
    fn new(first_id: u64, max_clients: usize, counters: Arc<ApiCounters>) -> Hub {
        let (live, _) = broadcast::channel(CLIENT_BACKLOG);
        Hub {
            ring: Mutex::new(Ring {
                records: VecDeque::with_capacity(RING),
                next_id: first_id.max(1),
            }),
            live,
            clients: AtomicUsize::new(0),
            max_clients,
            counters,
            keep_alive: KEEP_ALIVE,
        }
    }

    /// A hub fed by the node's engine and network until the engine stops.
    pub fn start(state: Arc<ApiState>) -> Arc<Hub> {
        let mut hub = Hub::new(
            now_ms().saturating_mul(1000),
            state.limits.max_event_streams,
            state.counters.clone(),
        );
        hub.keep_alive = KEEP_ALIVE.min(state.limits.idle_timeout / 2);
        let hub = Arc::new(hub);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(feed(hub.clone(), state));
            }
            Err(_) => tracing::warn!("no async runtime: the event stream will stay silent"),
        }
        hub
    }

    /// Event streams open right now.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        // Nothing panics while holding the lock; a poisoned ring is still
        // a consistent ring.
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number, keep and send one event.
    fn publish(&self, kind: &'static str, data: impl Payload + 'static) {
        let mut ring = self.ring();
        let record = Arc::new(Record {
            id: ring.next_id,
            kind,
            payload: Box::new(data),
            data: OnceLock::new(),
        });
        ring.next_id += 1;
        if ring.records.len() == RING {
            ring.records.pop_front();
        }
        ring.records.push_back(record.clone());
        // Sent under the lock, so a client that subscribes under the lock
        // gets every record either in its replay or live, never both.
        let _ = self.live.send(record);
    }

    fn publish_engine(&self, ev: Event) {
        match ev {
            Event::Order(o) if o.status == OrderStatus::Cancelled => self.publish("cancel", o),
            Event::Order(o) => self.publish("order", o),
            Event::Trade(t) => self.publish("fill", t),
            Event::Book { market } => self.publish("book", BookChange { market }),
            Event::Owner { peer, stale } => self.publish(
                "peer",
                PeerChange {
                    peer_id: peer.to_string(),
                    change: if stale { "stale" } else { "active" }.into(),
                },
            ),
            Event::Peer { peer, connected } => self.publish(
                "peer",
                PeerChange {
                    peer_id: peer.to_string(),
                    change: if connected {
                        "connected"
                    } else {
                        "disconnected"
                    }
                    .into(),
                },
            ),
        }
    }

    /// Open a stream for a client that last saw `last_id` (if it says).
    fn connect(self: &Arc<Self>, last_id: Option<&str>) -> Result<Subscription, ApiError> {
        let admitted = self
            .clients
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_clients).then_some(n + 1)
            });
        if admitted.is_err() {
            ApiCounters::bump(&self.counters.event_streams_refused);
            return Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "too_many_streams",
                format!(
                    "this node serves at most {} event streams at once \
                     (api.max_event_streams); close one and retry",
                    self.max_clients
                ),
            ));
        }
        let guard = ClientGuard(self.clone());
        let ring = self.ring();
        let newest = ring.next_id - 1;
        let mut backlog = VecDeque::new();
        backlog.push_back(Out::Hello(Hello {
            last_id: newest,
            ring: RING,
        }));
        if let Some(raw) = last_id {
            let oldest = ring.records.front().map_or(ring.next_id, |r| r.id);
            match raw.trim().parse::<u64>() {
                Ok(after) if after > newest => backlog.push_back(Out::Reset {
                    id: Some(newest),
                    reason: format!("event {after} is not one of this node's (restarted?)"),
                }),
                Ok(after) if after.saturating_add(1) < oldest => backlog.push_back(Out::Reset {
                    id: Some(newest),
                    reason: format!(
                        "events after {after} are no longer kept (only the last {RING} are)"
                    ),
                }),
                Ok(after) => backlog.extend(
                    ring.records
                        .iter()
                        .filter(|r| r.id > after)
                        .cloned()
                        .map(Out::Record),
                ),
                Err(_) => backlog.push_back(Out::Reset {
                    id: Some(newest),
                    reason: format!("{raw:?} is not an event id"),
                }),
            }
        }
        let live = self.live.subscribe();
        drop(ring);
        Ok(Subscription {
            backlog,
            live,
            _guard: guard,
        })
    }
}

/// Counts a stream as open until it is dropped (the client went away, or
/// the node stops).
struct ClientGuard(Arc<Hub>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::AcqRel);
    }
}

enum Out {
    Hello(Hello),
    Record(Arc<Record>),
    Reset { id: Option<u64>, reason: String },
}

impl Out {
    fn to_sse(&self) -> SseEvent {
        match self {
            Out::Record(r) => r.to_sse(),
            Out::Hello(h) => SseEvent::default().event("hello").data(json(h)),
            Out::Reset { id, reason } => {
                let ev = SseEvent::default().event("reset").data(json(&Reset {
                    reason: reason.clone(),
                }));
                match id {
                    Some(id) => ev.id(id.to_string()),
                    None => ev,
                }
            }
        }
    }
}

/// The JSON of the small payloads built here (plain structs of strings and
/// numbers, which always encode).
fn json(v: &impl Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into())
}

/// One client's view: what to send first, then the live records.
struct Subscription {
    backlog: VecDeque<Out>,
    live: broadcast::Receiver<Arc<Record>>,
    _guard: ClientGuard,
}

impl Subscription {
    /// The next event for the client, or `None` once the node stops.
    async fn next(&mut self, shutdown: &Option<Shutdown>) -> Option<Out> {
        if let Some(out) = self.backlog.pop_front() {
            return Some(out);
        }
        let received = match shutdown {
            Some(s) => tokio::select! {
                _ = s.wait() => return None,
                r = self.live.recv() => r,
            },
            None => self.live.recv().await,
        };
        match received {
            Ok(record) => Some(Out::Record(record)),
            Err(RecvError::Lagged(n)) => Some(Out::Reset {
                id: None,
                reason: format!("this stream fell {n} events behind and skipped them"),
            }),
            Err(RecvError::Closed) => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// The same as the `Last-Event-ID` header, for clients that cannot set
    /// headers on their first connection.
    last_event_id: Option<String>,
}

async fn events(
    Extension(hub): Extension<Arc<Hub>>,
    shutdown: Option<Extension<Shutdown>>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let Query(q) = query?;
    let header = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .map(str::to_string)
                .map_err(|_| ApiError::bad_request("bad_header", "Last-Event-ID is not text"))
        })
        .transpose()?;
    let last = header.or(q.last_event_id).filter(|s| !s.trim().is_empty());
    let sub = hub.connect(last.as_deref())?;
    let shutdown = shutdown.map(|Extension(s)| s);
    let stream = futures::stream::unfold((sub, shutdown), |(mut sub, shutdown)| async move {
        let ev = sub.next(&shutdown).await?;
        Some((Ok(ev.to_sse()), (sub, shutdown)))
    });
    let keep_alive = hub.keep_alive;
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(keep_alive)))
}

/// The hub's feeder: the engine's events as they come (the driver adds
/// peer connections), and the node's state (peer count, storage) when a
/// connection changes and once a second, published when it changed. Ends
/// when the engine stops (the node is shutting down).
async fn feed(hub: Arc<Hub>, state: Arc<ApiState>) {
    let mut engine = state.engine.subscribe();
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut status: Option<StatusChange> = None;
    loop {
        let look_now = tokio::select! {
            ev = engine.recv() => match ev {
                Ok(ev) => {
                    let connection = matches!(ev, Event::Peer { .. });
                    hub.publish_engine(ev);
                    connection
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "the event stream fell behind the engine; clients are told to reload");
                    hub.publish("reset", Reset {
                        reason: format!("the node skipped {n} events under load"),
                    });
                    true
                }
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => true,
        };
        if look_now && !look(&hub, &state, &mut status).await {
            return;
        }
    }
}

/// Publish the node's state if it changed since the last look. False once
/// the engine is gone.
async fn look(hub: &Hub, state: &ApiState, status: &mut Option<StatusChange>) -> bool {
    let Ok(degraded) = state.engine.degraded().await else {
        return false;
    };
    let current = StatusChange {
        peer_count: state.net.status().await.connected_peers,
        degraded,
    };
    if status.as_ref() != Some(&current) {
        hub.publish("status", current.clone());
        *status = Some(current);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX_CLIENTS: usize = 8;

    fn hub() -> Arc<Hub> {
        Arc::new(Hub::new(1_000, MAX_CLIENTS, Arc::default()))
    }

    fn name(o: &Out) -> String {
        match o {
            Out::Hello(_) => "hello".to_string(),
            Out::Record(r) => r.id.to_string(),
            Out::Reset { .. } => "reset".to_string(),
        }
    }

    fn ids(sub: &Subscription) -> Vec<String> {
        sub.backlog.iter().map(name).collect()
    }

    fn book(hub: &Hub, n: usize) {
        for _ in 0..n {
            hub.publish("book", BookChange { market: "M".into() });
        }
    }

    #[test]
    fn a_reconnect_replays_exactly_the_events_after_its_last_id() {
        let hub = hub();
        book(&hub, 5);
        let sub = hub.connect(Some("1002")).unwrap();
        assert_eq!(ids(&sub), ["hello", "1003", "1004"]);
        let sub = hub.connect(Some("1004")).unwrap();
        assert_eq!(ids(&sub), ["hello"]);
        let sub = hub.connect(None).unwrap();
        assert_eq!(ids(&sub), ["hello"]);
    }

    #[test]
    fn ids_older_than_the_ring_or_from_elsewhere_get_a_reset() {
        let hub = hub();
        book(&hub, RING + 10);
        // 1000..=1009 fell out of the ring: 1009 itself was seen, so the
        // client that saw it misses nothing; one before it does.
        let sub = hub.connect(Some("1009")).unwrap();
        assert_eq!(sub.backlog.len(), 1 + RING);
        let sub = hub.connect(Some("1008")).unwrap();
        assert_eq!(ids(&sub), ["hello", "reset"]);
        // From the future (an earlier run with a later clock, or made up).
        let sub = hub.connect(Some("99999999")).unwrap();
        assert_eq!(ids(&sub), ["hello", "reset"]);
        let sub = hub.connect(Some("abc")).unwrap();
        assert_eq!(ids(&sub), ["hello", "reset"]);
    }

    #[test]
    fn the_number_of_streams_is_bounded_and_closed_ones_free_their_place() {
        let hub = hub();
        let subs: Vec<Subscription> = (0..MAX_CLIENTS)
            .map(|_| hub.connect(None).unwrap())
            .collect();
        assert_eq!(hub.clients(), MAX_CLIENTS);
        let refused = hub.connect(None).err().unwrap();
        assert_eq!(refused.status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            refused.message.contains("api.max_event_streams"),
            "{refused:?}"
        );
        assert_eq!(
            hub.counters.event_streams_refused.load(Ordering::Relaxed),
            1
        );
        drop(subs);
        assert_eq!(hub.clients(), 0);
        assert!(hub.connect(None).is_ok());
    }

    #[tokio::test]
    async fn a_live_event_follows_the_replay_without_gap_or_repeat() {
        let hub = hub();
        book(&hub, 2);
        let mut sub = hub.connect(Some("1000")).unwrap();
        book(&hub, 1);
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(sub.next(&None).await.map(|o| name(&o)).unwrap());
        }
        assert_eq!(seen, ["hello", "1001", "1002"]);
        assert!(sub.live.try_recv().is_err());
    }
}
