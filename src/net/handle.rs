//! The handle through which everything else drives the network: each method
//! sends a [`Command`] to the event loop, with a oneshot for any reply.
//!
//! A handle is cheap to clone and never touches the swarm. When the network
//! task has stopped, fire-and-forget methods do nothing and queries return
//! empty answers: a caller shutting down at the same time as the network must
//! not be turned into an error path.

use libp2p::{gossipsub, Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot, watch};

use super::{InboundId, NetAction, NetError, NetStatus, PeerInfo, Proto, RequestTag, Verdict};

/// What the event loop is asked to do.
#[derive(Debug)]
pub(crate) enum Command {
    Publish {
        topic: String,
        data: Vec<u8>,
    },
    ReportValidation {
        message_id: gossipsub::MessageId,
        propagation_source: PeerId,
        verdict: Verdict,
    },
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
    Peers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    Status {
        reply: oneshot::Sender<NetStatus>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    Ban {
        peer: PeerId,
        for_ms: u64,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// A cloneable handle on the network task.
#[derive(Clone, Debug)]
pub struct NetHandle {
    local: PeerId,
    commands: mpsc::Sender<Command>,
    listen_addrs: watch::Receiver<Vec<Multiaddr>>,
}

impl NetHandle {
    pub(crate) fn new(
        local: PeerId,
        commands: mpsc::Sender<Command>,
        listen_addrs: watch::Receiver<Vec<Multiaddr>>,
    ) -> Self {
        NetHandle {
            local,
            commands,
            listen_addrs,
        }
    }

    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local
    }

    /// The listen addresses, updated as they become known (the node prints
    /// them for the operator as they appear).
    pub fn listen_addrs(&self) -> watch::Receiver<Vec<Multiaddr>> {
        self.listen_addrs.clone()
    }

    async fn send(&self, command: Command) -> bool {
        if self.commands.send(command).await.is_err() {
            tracing::debug!("the network task has stopped; command dropped");
            return false;
        }
        true
    }

    /// Publish `data` on `topic`. Failures (no peer subscribed yet, message
    /// too large) are logged and counted by the network, not returned: gossip
    /// is best effort and the engine's heartbeats and sync repair any gap.
    pub async fn publish(&self, topic: String, data: Vec<u8>) {
        self.send(Command::Publish { topic, data }).await;
    }

    /// The engine's verdict on a [`super::NetInput::Gossip`] message.
    pub async fn report_validation(
        &self,
        message_id: gossipsub::MessageId,
        propagation_source: PeerId,
        verdict: Verdict,
    ) {
        self.send(Command::ReportValidation {
            message_id,
            propagation_source,
            verdict,
        })
        .await;
    }

    /// Send a request; the answer arrives as [`super::NetInput::Response`]
    /// with the same `tag`.
    pub async fn request(&self, peer: PeerId, proto: Proto, tag: RequestTag, data: Vec<u8>) {
        self.send(Command::Request {
            peer,
            proto,
            tag,
            data,
        })
        .await;
    }

    /// Carry out what the engine asked of the network.
    pub async fn carry_out(&self, action: NetAction) {
        match action {
            NetAction::Publish { topic, data } => self.publish(topic, data).await,
            NetAction::Validate {
                message_id,
                propagation_source,
                verdict,
            } => {
                self.report_validation(message_id, propagation_source, verdict)
                    .await
            }
            NetAction::Request {
                peer,
                proto,
                tag,
                data,
            } => self.request(peer, proto, tag, data).await,
            NetAction::Respond { id, data } => self.respond(id, data).await,
            NetAction::Ban { peer, for_ms } => {
                self.send(Command::Ban { peer, for_ms }).await;
            }
        }
    }

    /// Answer an inbound request. If the requester is gone, the network logs
    /// it; there is nobody left to tell.
    pub async fn respond(&self, id: InboundId, data: Vec<u8>) {
        self.send(Command::Respond { id, data }).await;
    }

    /// Connected and known peers.
    pub async fn peers(&self) -> Vec<PeerInfo> {
        let (reply, rx) = oneshot::channel();
        if !self.send(Command::Peers { reply }).await {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// The node's own network state.
    pub async fn status(&self) -> NetStatus {
        let stopped = NetStatus {
            peer_id: self.local,
            listen_addrs: Vec::new(),
            external_addrs: Vec::new(),
            connected_peers: 0,
            reachability: super::nat::Reachability::Unknown,
            relays: Vec::new(),
        };
        let (reply, rx) = oneshot::channel();
        if !self.send(Command::Status { reply }).await {
            return stopped;
        }
        rx.await.unwrap_or(stopped)
    }

    /// Start dialling `addr` (with or without `/p2p/<id>`). Returns once the
    /// dial has started; the outcome shows up as a `PeerConnected` event or
    /// in the log.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetError> {
        let (reply, rx) = oneshot::channel();
        if !self.send(Command::Dial { addr, reply }).await {
            return Err(NetError::Stopped);
        }
        rx.await.unwrap_or(Err(NetError::Stopped))
    }

    /// Save the peer store and stop the network task; returns when both are
    /// done (or at once if the task is already gone).
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.send(Command::Shutdown { reply }).await {
            let _ = rx.await;
        }
    }
}
