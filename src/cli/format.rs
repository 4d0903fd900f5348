//! How the CLI shows orders, trades and times to people: the tables and
//! summaries of `order`, `trades` and `demo` (`--json` prints the node's
//! JSON instead, for scripts).

use crate::engine::{OrderInfo, TradeInfo};

use super::client::{print_aligned, print_table};

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// One order in detail: its fields, then its fills.
pub fn print_order(o: &OrderInfo) {
    let price = o
        .price
        .map_or_else(|| "market".to_string(), |p| p.to_string());
    let mut rows = vec![
        vec!["order".to_string(), o.id.clone()],
        vec!["status".into(), o.status.to_string()],
        vec!["market".into(), o.market.clone()],
        vec![
            "side".into(),
            format!("{} {} ({})", o.side.as_str(), o.kind, o.time_in_force),
        ],
        vec!["price".into(), price],
        vec!["quantity".into(), o.quantity.to_string()],
        vec!["filled".into(), o.filled.to_string()],
        vec!["remaining".into(), o.remaining.to_string()],
    ];
    if !o.pending.is_zero() {
        rows.push(vec!["pending".into(), o.pending.to_string()]);
    }
    if let Some(r) = &o.reason {
        rows.push(vec!["reason".into(), r.clone()]);
    }
    if let Some(c) = &o.client_id {
        rows.push(vec!["client id".into(), c.clone()]);
    }
    if !o.own {
        rows.push(vec![
            "owner".into(),
            if o.stale {
                "another node (stale)"
            } else {
                "another node"
            }
            .into(),
        ]);
    }
    rows.push(vec!["created".into(), time(o.created_ms)]);
    rows.push(vec!["updated".into(), time(o.updated_ms)]);
    if let Some(at) = o.expires_at {
        rows.push(vec!["expires".into(), time(at)]);
    }
    print_table(&rows);
    if !o.fills.is_empty() {
        println!();
        print_trades(&o.fills);
    }
}

/// Orders as a table, one per line.
pub fn print_orders(orders: &[OrderInfo]) {
    let mut rows = vec![[
        "ID", "MARKET", "SIDE", "TYPE", "PRICE", "QUANTITY", "FILLED", "STATUS", "CREATED",
    ]
    .map(String::from)
    .to_vec()];
    for o in orders {
        rows.push(vec![
            o.id.clone(),
            o.market.clone(),
            o.side.as_str().into(),
            format!("{}/{}", o.kind, o.time_in_force),
            o.price.map_or_else(|| "-".to_string(), |p| p.to_string()),
            o.quantity.to_string(),
            o.filled.to_string(),
            o.status.to_string(),
            time(o.created_ms),
        ]);
    }
    print_aligned(&rows, &[4, 5, 6]);
}

/// Trades as a table, one per line.
pub fn print_trades(trades: &[TradeInfo]) {
    let mut rows = vec![["TIME", "MARKET", "SIDE", "PRICE", "QUANTITY", "TRADE ID"]
        .map(String::from)
        .to_vec()];
    for t in trades {
        rows.push(vec![
            time(t.ts_ms),
            t.market.clone(),
            t.side.as_str().into(),
            t.price.to_string(),
            t.quantity.to_string(),
            t.id.clone(),
        ]);
    }
    print_aligned(&rows, &[3, 4]);
}

/// The end of an order id (`…/12`), enough to tell a node's orders apart
/// in a line of demo output.
pub fn short_id(id: &str) -> String {
    match id.rsplit_once('/') {
        Some((owner, seq)) => {
            let tail: String = owner
                .chars()
                .rev()
                .take(6)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            format!("…{tail}/{seq}")
        }
        None => id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_calendar_dates() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(time(1_700_000_000_123), "2023-11-14 22:13:20");
    }

    #[test]
    fn short_ids_keep_the_end_of_the_owner_and_the_sequence() {
        assert_eq!(short_id("12D3KooWabcdefXYZ123/42"), "…XYZ123/42");
        assert_eq!(short_id("plain"), "plain");
    }
}
