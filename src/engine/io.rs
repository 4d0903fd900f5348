//! The engine's boundary: everything that goes in (`Input`) and comes out
//! (`Action`, `Event`), and the one vocabulary the engine and the network
//! share.
//!
//! The network task speaks these types itself: it reports what happened as
//! [`NetInput`]s and carries out [`NetAction`]s, so nothing between the two
//! translates them. A request this node sends is known by its
//! [`RequestTag`] on both sides of the seam (the network keeps libp2p's
//! request id to itself); a request this node answers is known by its
//! [`InboundId`] on both sides.

use libp2p::gossipsub::MessageId;
use libp2p::PeerId;
use rust_decimal::Decimal;

use super::durable::{Op, OrderKind, Tif};
use super::info::{OrderInfo, TradeInfo};
use crate::market::Side;

/// The driver's handle on a command, echoed in its `Reply`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CommandId(pub u64);

/// The engine's name for a request it sends, echoed in the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestTag(pub u64);

/// The network's name for a request a peer sent us, until it is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InboundId(pub u64);

/// A new order, as the API or CLI gives it (decimals; checked here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaceOrder {
    pub market: String,
    pub side: Side,
    pub kind: OrderKind,
    pub price: Option<Decimal>,
    pub quantity: Decimal,
    pub tif: Tif,
    pub client_id: Option<String>,
    /// Good till this time (ms since the Unix epoch): a resting limit order
    /// ends `expired` then, and replicas stop counting it at that time.
    pub expires_ms: Option<u64>,
}

/// What a user asks of its node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Place(PlaceOrder),
    Cancel { id: String },
}

/// Why a command was refused. Each maps to one HTTP status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("unknown market {0:?}")]
    UnknownMarket(String),
    #[error("{0}")]
    Invalid(String),
    #[error("order {0} not found")]
    NotFound(String),
    #[error("order {0} belongs to another node; only its owner may cancel it")]
    NotOwner(String),
    #[error("order {0} is already {1}")]
    AlreadyDone(String, &'static str),
    #[error("cannot make the change durable: {0}")]
    Storage(String),
    /// One of this node's orders that the engine no longer holds in memory
    /// (done, and older than its window): the store answers for it.
    #[error("order {0} not found")]
    NotHeld(String),
    #[error("order {0} is past retention: done orders are kept for {1}")]
    PastRetention(String, String),
}

/// Which request-response protocol a request travels on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// A taker asks a maker to fill its resting order.
    Take,
    /// A node pulls a market's book and fills from a peer.
    Sync,
}

/// The engine's verdict on a gossip message, for gossipsub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: apply and forward.
    Accept,
    /// Invalid: drop and penalise the peer that sent it.
    Reject,
    /// Not for us (a newer version, our own echo): drop quietly.
    Ignore,
}

/// Why a request this node sent got no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestFailure {
    #[error("the peer could not be dialled")]
    DialFailure,
    #[error("the peer does not speak this protocol")]
    UnsupportedProtocol,
    #[error("the request or its response exceeds the size limit")]
    TooLarge,
    #[error("no response in time")]
    Timeout,
    #[error("the connection closed before the response came")]
    ConnectionClosed,
    /// The connection closed, or the deadline passed, before the request
    /// was written (the network knows: `net/gate.rs`).
    #[error("the request was never sent (no stream opened before the connection closed or the deadline)")]
    NotSent,
    #[error("i/o error: {0}")]
    Io(String),
}

impl RequestFailure {
    /// Whether the peer may have processed the request: only a request that
    /// never left (the peer could not be reached, or does not speak the
    /// protocol) certainly changed nothing there.
    pub fn maybe_delivered(&self) -> bool {
        !matches!(
            self,
            RequestFailure::DialFailure
                | RequestFailure::UnsupportedProtocol
                | RequestFailure::NotSent
        )
    }
}

/// What the network reports.
#[derive(Clone, Debug)]
pub enum NetInput {
    /// A gossip message, not yet forwarded: the engine answers with a
    /// [`NetAction::Validate`].
    Gossip {
        /// Its author, whose signature gossipsub has checked.
        source: PeerId,
        /// The peer that sent it to us.
        propagation_source: PeerId,
        message_id: MessageId,
        topic: String,
        data: Vec<u8>,
    },
    /// A peer's request; the engine answers with a [`NetAction::Respond`].
    Request {
        peer: PeerId,
        proto: Proto,
        id: InboundId,
        data: Vec<u8>,
    },
    /// The answer to a [`NetAction::Request`], or why there is none.
    Response {
        tag: RequestTag,
        result: Result<Vec<u8>, RequestFailure>,
    },
    /// The first connection to a peer was established.
    PeerConnected(PeerId),
    /// The last connection to a peer closed.
    PeerDisconnected(PeerId),
}

/// Something that happened to the node.
#[derive(Clone, Debug)]
pub enum Input {
    Command { id: CommandId, cmd: Command },
    Net(NetInput),
    Persisted { ticket: u64 },
    PersistFailed { ticket: u64, error: String },
    Tick,
}

impl From<NetInput> for Input {
    fn from(n: NetInput) -> Input {
        Input::Net(n)
    }
}

/// What the network is asked to do.
#[derive(Clone, Debug)]
pub enum NetAction {
    Publish {
        topic: String,
        data: Vec<u8>,
    },
    Validate {
        message_id: MessageId,
        propagation_source: PeerId,
        verdict: Verdict,
    },
    /// Send a request; the answer comes back as [`NetInput::Response`] with
    /// the same tag.
    Request {
        peer: PeerId,
        proto: Proto,
        tag: RequestTag,
        data: Vec<u8>,
    },
    Respond {
        id: InboundId,
        data: Vec<u8>,
    },
    /// The peer served records that do not verify: drop its connections
    /// and refuse it for `for_ms`.
    Ban {
        peer: PeerId,
        for_ms: u64,
    },
}

/// Something the driver must do.
#[derive(Clone, Debug)]
pub enum Action {
    Net(NetAction),
    /// Make these writes durable, then answer `Input::Persisted`.
    Persist {
        ticket: u64,
        ops: Vec<Op>,
    },
    Reply {
        id: CommandId,
        result: Result<OrderInfo, EngineError>,
    },
    Event(Event),
}

impl From<NetAction> for Action {
    fn from(n: NetAction) -> Action {
        Action::Net(n)
    }
}

/// A change worth telling the user about (server-sent events).
#[derive(Clone, Debug)]
pub enum Event {
    Order(OrderInfo),
    Trade(TradeInfo),
    Owner {
        peer: PeerId,
        stale: bool,
    },
    Book {
        market: String,
    },
    /// A connection to a peer opened or closed. The driver sends it (the
    /// engine does not see connections come and go), so clients of the
    /// event stream see every change, even one shorter than a poll.
    Peer {
        peer: PeerId,
        connected: bool,
    },
}
