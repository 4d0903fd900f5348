//! How the CLI shows orders, trades and times to people: the tables and
//! summaries of `order`, `trades` and `demo` (`--json` prints the node's
//! JSON instead, for scripts).

use crate::engine::{OrderInfo, TradeInfo};

use super::client::{print_aligned, print_table};

/// Which zone the CLI shows times in: UTC unless `--local-time`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Zone {
    #[default]
    Utc,
    Local,
}

impl Zone {
    pub fn new(local: bool) -> Zone {
        if local {
            Zone::Local
        } else {
            Zone::Utc
        }
    }
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS` with the
/// zone it is in: `UTC`, or the local offset at that time (`+01:00`).
pub fn time(ms: u64, zone: Zone) -> String {
    let Some(utc) = i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
    else {
        return format!("{ms} ms");
    };
    match zone {
        Zone::Utc => utc.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Zone::Local => utc
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S %:z")
            .to_string(),
    }
}

/// One order in detail: its fields, then its fills.
pub fn print_order(o: &OrderInfo, zone: Zone) {
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
    rows.push(vec!["created".into(), time(o.created_ms, zone)]);
    rows.push(vec!["updated".into(), time(o.updated_ms, zone)]);
    if let Some(at) = o.expires_at {
        rows.push(vec!["expires".into(), time(at, zone)]);
    }
    print_table(&rows);
    if !o.fills.is_empty() {
        println!();
        print_trades(&o.fills, zone);
    }
}

/// Orders as a table, one per line.
pub fn print_orders(orders: &[OrderInfo], zone: Zone) {
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
            time(o.created_ms, zone),
        ]);
    }
    print_aligned(&rows, &[4, 5, 6]);
}

/// Trades as a table, one per line.
pub fn print_trades(trades: &[TradeInfo], zone: Zone) {
    let mut rows = vec![["TIME", "MARKET", "SIDE", "PRICE", "QUANTITY", "TRADE ID"]
        .map(String::from)
        .to_vec()];
    for t in trades {
        rows.push(vec![
            time(t.ts_ms, zone),
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
    fn times_are_calendar_dates_that_say_their_zone() {
        assert_eq!(time(0, Zone::Utc), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(951_782_400_000, Zone::Utc), "2000-02-29 00:00:00 UTC");
        assert_eq!(
            time(1_700_000_000_123, Zone::Utc),
            "2023-11-14 22:13:20 UTC"
        );
        let local = time(1_700_000_000_123, Zone::Local);
        let offset = local.rsplit(' ').next().unwrap();
        assert!(
            offset.len() == 6 && (offset.starts_with('+') || offset.starts_with('-')),
            "{local}"
        );
    }

    #[test]
    fn short_ids_keep_the_end_of_the_owner_and_the_sequence() {
        assert_eq!(short_id("12D3KooWabcdefXYZ123/42"), "…XYZ123/42");
        assert_eq!(short_id("plain"), "plain");
    }
}
