//! `peerbook book MARKET`: a market's replicated book as a depth ladder —
//! asks from the highest down, the spread, bids from the best down — with
//! its digest (equal on nodes that hold the same orders). A level holding
//! orders of this node says `mine <qty>`; one holding orders of an owner
//! gone stale (not heard from lately, so not takeable) says `stale <qty>`.

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
    /// Price levels per side (at least 1)
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub depth: u16,
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
        if book.stale_orders > 0 {
            println!(
                "{} of them stale: their owners have not been heard from lately; \
                 they are not taken until they are",
                book.stale_orders
            );
        }
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
    let mut rows = vec![["SIDE", "PRICE", "QUANTITY", "TOTAL", "NOTE"]
        .map(String::from)
        .to_vec()];
    let note = |price: &Decimal, own: &[(Decimal, Decimal)], stale: &[(Decimal, Decimal)]| {
        let at = |v: &[(Decimal, Decimal)]| v.iter().find(|(p, _)| p == price).map(|(_, q)| *q);
        let mut parts = Vec::new();
        if let Some(q) = at(own) {
            parts.push(format!("mine {q}"));
        }
        if let Some(q) = at(stale) {
            parts.push(format!("stale {q}"));
        }
        parts.join(", ")
    };
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
            note(p, &book.own_asks, &book.stale_asks),
        ]);
    }
    let spread = match (book.asks.first(), book.bids.first()) {
        (Some((a, _)), Some((b, _))) => format!("spread {}", (a - b).normalize()),
        _ if book.asks.is_empty() && book.bids.is_empty() => "(empty book)".to_string(),
        _ => "(one-sided)".to_string(),
    };
    rows.push(vec![
        "-----".into(),
        String::new(),
        String::new(),
        spread,
        String::new(),
    ]);
    let bid_totals = cumulative(&book.bids);
    for ((p, q), t) in book.bids.iter().zip(&bid_totals) {
        rows.push(vec![
            "bid".into(),
            p.to_string(),
            q.to_string(),
            t.to_string(),
            note(p, &book.own_bids, &book.stale_bids),
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
