//! `peerbook trades`: recent fills this node knows of (every owner's),
//! newest first.

use clap::Args;

use super::client::{print_json, query, ApiArgs, Client, ClientError};
use super::format::print_trades;
use crate::engine::TradeInfo;

#[derive(Debug, Clone, Args)]
pub struct TradesArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Only this market
    #[arg(long)]
    pub market: Option<String>,
    /// At most this many (at least 1)
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=10000))]
    pub limit: u16,
}

impl TradesArgs {
    pub async fn run(self) -> Result<(), ClientError> {
        let client = Client::new(&self.api)?;
        let q = query(&[
            ("market", self.market.clone()),
            ("limit", Some(self.limit.to_string())),
        ]);
        let trades: Vec<TradeInfo> = client.get(&format!("/api/v1/trades{q}")).await?;
        if self.api.json {
            print_json(&trades);
        } else if trades.is_empty() {
            println!("no trades");
        } else {
            print_trades(&trades, self.api.zone());
        }
        Ok(())
    }
}
