//! `peerbook order place|cancel|get|list`: a node's own orders from the
//! shell. Flags are checked here (a typo is a usage error, exit status 2);
//! what only the node can judge (the market, the price grid, whose order it
//! is) comes back as the node's own error message (exit status 1).

use std::str::FromStr;

use clap::{Args, Subcommand};
use rust_decimal::Decimal;
use serde::Serialize;

use super::client::{encode, print_json, query, ApiArgs, Client, ClientError};
use super::format::{print_order, print_orders};
use crate::engine::{OrderInfo, OrderKind, OrderStatus, Tif};
use crate::market::Side;

#[derive(Debug, Clone, Args)]
pub struct OrderArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: OrderCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum OrderCommand {
    /// Place an order; prints it once its taking phase ended (filled,
    /// resting, or the rest dropped), with its fills
    Place(PlaceArgs),
    /// Cancel one of this node's open orders
    Cancel {
        /// The order's id (`<peer id>/<sequence>`)
        id: String,
    },
    /// Show one order (this node's, or one of another node in the book)
    Get {
        /// The order's id (`<peer id>/<sequence>`)
        id: String,
    },
    /// List this node's orders, newest first
    List(ListArgs),
}

#[derive(Debug, Clone, Args)]
pub struct PlaceArgs {
    /// Market, e.g. BTC-USD
    #[arg(long)]
    pub market: String,
    /// buy or sell
    #[arg(long, value_parser = parse_side)]
    pub side: Side,
    /// Limit price (a limit order needs one; a market order takes none)
    #[arg(long, value_parser = parse_decimal, allow_negative_numbers = true)]
    pub price: Option<Decimal>,
    /// How much to buy or sell, in the market's base unit
    #[arg(long, value_parser = parse_decimal, allow_negative_numbers = true)]
    pub quantity: Decimal,
    /// limit or market
    #[arg(long = "type", value_name = "TYPE", default_value = "limit")]
    pub kind: OrderKind,
    /// Time in force: gtc, ioc, fok or post-only [default: gtc for limit,
    /// ioc for market orders]
    #[arg(long)]
    pub tif: Option<Tif>,
    /// Your id for this order: placing again with the same one returns the
    /// first order instead of placing a second (safe retries)
    #[arg(long)]
    pub client_id: Option<String>,
    /// Good till this time, in ms since the Unix epoch (a resting gtc or
    /// post-only limit order)
    #[arg(long, value_name = "MS", conflicts_with = "expires_in")]
    pub expires_at: Option<u64>,
    /// Good for this long from now: 90s, 15m, 2h or 7d (a resting gtc or
    /// post-only limit order)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
    pub expires_in: Option<u64>,
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Only this market
    #[arg(long)]
    pub market: Option<String>,
    /// Only this status: taking, open, filled, cancelled, expired, rejected
    #[arg(long)]
    pub status: Option<OrderStatus>,
    /// At most this many
    #[arg(long)]
    pub limit: Option<usize>,
}

/// The body of `POST /api/v1/orders`; decimals as strings, exact.
#[derive(Serialize)]
struct PlaceRequest<'a> {
    market: &'a str,
    side: &'static str,
    #[serde(rename = "type")]
    kind: OrderKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    price: Option<String>,
    quantity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_in_force: Option<Tif>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
}

/// `90s`, `15m`, `2h`, `7d` (or a bare number of seconds) as milliseconds.
fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 15m, 2h or 7d"))?;
    let per = match unit {
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{s:?}: the unit must be s, m, h or d")),
    };
    if n == 0 {
        return Err("the duration must be more than zero".into());
    }
    n.checked_mul(per)
        .ok_or_else(|| format!("{s:?} is too long"))
}

fn parse_side(s: &str) -> Result<Side, String> {
    Side::from_str(s)
}

fn parse_decimal(s: &str) -> Result<Decimal, String> {
    Decimal::from_str(s.trim())
        .or_else(|_| Decimal::from_scientific(s.trim()))
        .map_err(|_| format!("{s:?} is not a decimal number"))
}

/// Place an order through `client` (also what `demo` does).
pub async fn place(client: &Client, a: &PlaceArgs) -> Result<OrderInfo, ClientError> {
    let body = PlaceRequest {
        market: &a.market,
        side: a.side.as_str(),
        kind: a.kind,
        price: a.price.map(|p| p.to_string()),
        quantity: a.quantity.to_string(),
        time_in_force: a.tif,
        client_id: a.client_id.as_deref(),
        expires_at: a.expires_at.or_else(|| {
            a.expires_in
                .map(|ms| crate::clock::now_ms().saturating_add(ms))
        }),
    };
    client.post("/api/v1/orders", &body).await
}

/// Cancel an order through `client`.
pub async fn cancel(client: &Client, id: &str) -> Result<OrderInfo, ClientError> {
    client
        .delete(&format!("/api/v1/orders/{}", encode(id.trim(), true)))
        .await
}

impl OrderArgs {
    pub async fn run(self) -> Result<(), ClientError> {
        let client = Client::new(&self.api)?;
        let json = self.api.json;
        let show = |o: &OrderInfo| {
            if json {
                print_json(o)
            } else {
                print_order(o)
            }
        };
        match &self.command {
            OrderCommand::Place(a) => show(&place(&client, a).await?),
            OrderCommand::Cancel { id } => show(&cancel(&client, id).await?),
            OrderCommand::Get { id } => {
                let o: OrderInfo = client
                    .get(&format!("/api/v1/orders/{}", encode(id.trim(), true)))
                    .await?;
                show(&o)
            }
            OrderCommand::List(l) => {
                let q = query(&[
                    ("market", l.market.clone()),
                    ("status", l.status.map(|s| s.to_string())),
                    ("limit", l.limit.map(|n| n.to_string())),
                ]);
                let orders: Vec<OrderInfo> = client.get(&format!("/api/v1/orders{q}")).await?;
                if json {
                    print_json(&orders)
                } else if orders.is_empty() {
                    println!("no orders");
                } else {
                    print_orders(&orders)
                }
            }
        }
        Ok(())
    }
}
