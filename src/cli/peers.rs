//! `peerbook peers`: the peers a node is connected to or knows of, with
//! their gossip score and addresses.

use clap::Args;

use super::client::{print_json, print_table, ApiArgs, Client, ClientError};
use crate::api::peers::Peer;

#[derive(Debug, Clone, Args)]
pub struct PeersArgs {
    #[command(flatten)]
    pub api: ApiArgs,
}

impl PeersArgs {
    pub async fn run(self) -> Result<(), ClientError> {
        let client = Client::new(&self.api)?;
        let mut peers: Vec<Peer> = client.get("/api/v1/peers").await?;
        if self.api.json {
            print_json(&peers);
            return Ok(());
        }
        if peers.is_empty() {
            println!("no peers");
            return Ok(());
        }
        // Connected ones first.
        peers.sort_by(|a, b| {
            b.connected
                .cmp(&a.connected)
                .then(a.peer_id.cmp(&b.peer_id))
        });
        let mut rows = vec![["PEER ID", "CONNECTED", "SCORE", "ADDRESSES"]
            .map(String::from)
            .to_vec()];
        for p in &peers {
            rows.push(vec![
                p.peer_id.clone(),
                connected(p),
                p.score.map_or_else(|| "-".into(), |s| format!("{s:.1}")),
                if p.addresses.is_empty() {
                    "-".into()
                } else {
                    p.addresses.join(" ")
                },
            ]);
        }
        print_table(&rows);
        Ok(())
    }
}

/// "yes" for a connected peer, with how: "(relayed)" when every connection
/// goes through a relay, "(direct+relayed)" while both are open.
fn connected(p: &Peer) -> String {
    if !p.connected {
        return "no".into();
    }
    let relayed = p.connections.iter().filter(|c| c.relayed).count();
    let direct = p.connections.len() - relayed;
    match (direct, relayed) {
        (_, 0) => "yes".into(),
        (0, _) => "yes (relayed)".into(),
        _ => "yes (direct+relayed)".into(),
    }
}
