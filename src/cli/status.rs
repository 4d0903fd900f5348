//! `peerbook status`: how a node is doing. Exits non-zero when the node
//! does not answer, so it doubles as a health check (docker-compose uses it).

use clap::Args;

use super::client::{print_json, print_table, ApiArgs, Client, ClientError};
use crate::api::status::Status;

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub api: ApiArgs,
}

impl StatusArgs {
    pub async fn run(self) -> Result<(), ClientError> {
        let client = Client::new(&self.api)?;
        let s: Status = client.get("/api/v1/status").await?;
        if self.api.json {
            print_json(&s);
            return Ok(());
        }
        println!("peer id:  {}", s.peer_id);
        println!("version:  {}", s.version);
        println!("uptime:   {} s", s.uptime_secs);
        println!("peers:    {} connected", s.peer_count);
        if !s.nat.reachability.is_empty() {
            let via = if s.nat.relays.is_empty() {
                String::new()
            } else {
                format!(", reachable through relays {}", s.nat.relays.join(", "))
            };
            println!("reach:    {}{via}", s.nat.reachability);
        }
        if let Some(why) = &s.degraded {
            println!("DEGRADED: {why}");
        }
        for a in &s.listen_addrs {
            println!("listen:   {a}");
        }
        let mut rows = vec![vec![
            "MARKET".to_string(),
            "ORDERS".into(),
            "OWN".into(),
            "SYNCED".into(),
            "DIGEST".into(),
        ]];
        for b in &s.books {
            rows.push(vec![
                b.name.clone(),
                b.orders.to_string(),
                b.own_open.to_string(),
                if b.synced { "yes" } else { "no" }.into(),
                b.digest.clone(),
            ]);
        }
        println!();
        print_table(&rows);
        Ok(())
    }
}
