//! `peerbook book MARKET`: a market's replicated book as a depth ladder —
//! asks from the highest down, the spread, bids from the best down — with
//! its digest (equal on nodes that hold the same orders).

use clap::Args;
use rust_decimal::Decimal;

use super::client::{encode, print_aligned, print_json, query, ApiArgs, Client, ClientError};
use crate::engine::BookInfo;

#[derive(Debug, Clone, Args)]
pub struct BookArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Market, e.g. BTC-USD
    pub market: String,
    /// Price levels per side
    #[arg(long, default_value_t = 10)]
    pub depth: usize,
}

impl BookArgs {
    pub async fn run(self) -> Result<(), ClientError> {
        let client = Client::new(&self.api)?;
        let q = query(&[("depth", Some(self.depth.to_string()))]);
        let book: BookInfo = client
            .get(&format!(
                "/api/v1/book/{}{q}",
                encode(self.market.trim(), false)
            ))
            .await?;
        if self.api.json {
            print_json(&book);
            return Ok(());
        }
        println!(
            "{}: {} orders, digest {}",
            book.market, book.orders, book.digest
        );
        println!();
        print_aligned(&ladder(&book), &[1, 2, 3]);
        for line in unreachable_lines(&book) {
            println!("{line}");
        }
        Ok(())
    }
}

/// Rows of the ladder: asks (highest first), a spread line, bids (best
/// first), each with the running total from the best price outwards.
fn ladder(book: &BookInfo) -> Vec<Vec<String>> {
    let mut rows = vec![["SIDE", "PRICE", "QUANTITY", "TOTAL"]
        .map(String::from)
        .to_vec()];
    let cumulative = |levels: &[(Decimal, Decimal)]| -> Vec<Decimal> {
        levels
            .iter()
            .scan(Decimal::ZERO, |sum, (_, q)| {
                *sum += q;
                Some(*sum)
            })
            .collect()
    };
    let ask_totals = cumulative(&book.asks);
    for ((p, q), t) in book.asks.iter().zip(&ask_totals).rev() {
        rows.push(vec![
            "ask".into(),
            p.to_string(),
            q.to_string(),
            t.to_string(),
        ]);
    }
    let spread = match (book.asks.first(), book.bids.first()) {
        (Some((a, _)), Some((b, _))) => format!("spread {}", (a - b).normalize()),
        _ if book.asks.is_empty() && book.bids.is_empty() => "(empty book)".to_string(),
        _ => "(one-sided)".to_string(),
    };
    rows.push(vec!["-----".into(), String::new(), String::new(), spread]);
    let bid_totals = cumulative(&book.bids);
    for ((p, q), t) in book.bids.iter().zip(&bid_totals) {
        rows.push(vec![
            "bid".into(),
            p.to_string(),
            q.to_string(),
            t.to_string(),
        ]);
    }
    rows
}

/// The levels whose owners this node cannot reach now (not takeable from
/// here), one line each.
fn unreachable_lines(book: &BookInfo) -> Vec<String> {
    let u = &book.unreachable;
    let sides = [("ask", &u.asks), ("bid", &u.bids)];
    let mut out = Vec::new();
    for (side, levels) in sides {
        for (p, q) in levels.iter() {
            out.push(format!(
                "unreachable: {side} {p} x {q} (its owner cannot be reached from this node; not takeable for now)"
            ));
        }
    }
    if !out.is_empty() {
        out.insert(0, String::new());
    }
    out
}
