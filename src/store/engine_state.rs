//! The engine's durable state: own orders, the fills this node took part
//! in, takes in doubt, the reserved order sequence numbers, the makers' fill
//! counters, and the tape of every trade the node learnt of.
//!
//! The engine asks for writes as lists of `engine::Op`; `apply` makes a
//! whole list (or several lists at once, for group commit) durable in one
//! transaction. Orders still live (taking or open) and orders done are kept
//! apart, so `load` reads what is live and only a bounded window of what is
//! done: start-up costs what is open, not the node's history. Done orders
//! and trades older than the retention go in the background (`prune`), a
//! chunk at a time between the writes.

use std::collections::BTreeSet;

use libp2p::PeerId;
use redb::{
    Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};

use super::codec::{decode, encode};
use super::{Store, StoreError};
use crate::engine::{Op, OrderId, OwnOrder, Snapshot, TakeIntent, Trade, TradeInfo};

/// Live own orders (taking or open): sequence number -> CBOR `OwnOrder`.
const ORDERS: TableDefinition<u64, &[u8]> = TableDefinition::new("own_orders");
/// Done own orders: sequence number -> CBOR `OwnOrder`.
const DONE: TableDefinition<u64, &[u8]> = TableDefinition::new("done_orders");
/// Done own orders by when they were last changed: (updated ms, seq).
const DONE_BY_TIME: TableDefinition<(u64, u64), ()> = TableDefinition::new("done_by_time");
/// Trade id (maker peer id bytes, maker seq, fill seq) -> CBOR `Trade`.
const TRADES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("trades");
/// Own trades by market and time: (market, ts ms, trade key).
const TRADES_BY_TIME: TableDefinition<(&str, u64, &[u8]), ()> =
    TableDefinition::new("trades_by_time");
/// Trades by the orders they filled, both sides: (order key, trade key).
const ORDER_TRADES: TableDefinition<(&[u8], &[u8]), ()> = TableDefinition::new("order_trades");
/// (taker order seq, take number) -> CBOR `TakeIntent`.
const INTENTS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("take_intents");
/// The highest fill counter of a maker on a market: (market, maker) -> mseq.
const MSEQ: TableDefinition<(&str, &[u8]), u64> = TableDefinition::new("maker_mseq");
/// Every trade the node learnt of, any owner's: (market, ts ms, trade id)
/// -> CBOR `TradeInfo` (as the API shows it).
const TAPE: TableDefinition<(&str, u64, &[u8]), &[u8]> = TableDefinition::new("tape");
/// Named counters.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const RESERVED_SEQ: &str = "reserved_seq";
const SCHEMA: &str = "schema";
/// Schema 2 keeps live and done orders apart, with the indexes above.
const SCHEMA_NOW: u64 = 2;

pub(super) fn init(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(ORDERS)?;
    tx.open_table(DONE)?;
    tx.open_table(DONE_BY_TIME)?;
    tx.open_table(TRADES)?;
    tx.open_table(TRADES_BY_TIME)?;
    tx.open_table(ORDER_TRADES)?;
    tx.open_table(INTENTS)?;
    tx.open_table(MSEQ)?;
    tx.open_table(TAPE)?;
    let mut meta = tx.open_table(META)?;
    let schema = meta.get(SCHEMA)?.map(|v| v.value()).unwrap_or(0);
    let fresh = tx.open_table(ORDERS)?.is_empty()? && tx.open_table(TRADES)?.is_empty()?;
    if schema < SCHEMA_NOW {
        if !fresh {
            drop(meta);
            migrate_to_2(tx)?;
            meta = tx.open_table(META)?;
        }
        meta.insert(SCHEMA, SCHEMA_NOW)?;
    }
    Ok(())
}

/// Schema 1 kept every own order in one table and trades without indexes:
/// move the done orders out and build the indexes, in the same transaction.
fn migrate_to_2(tx: &WriteTransaction) -> Result<(), StoreError> {
    let mut done: Vec<OwnOrder> = Vec::new();
    for entry in tx.open_table(ORDERS)?.iter()? {
        let (k, v) = entry?;
        let o: OwnOrder = decode(format_args!("own order {}", k.value()), v.value())?;
        if o.status.is_done() {
            done.push(o);
        }
    }
    let mut orders = tx.open_table(ORDERS)?;
    let mut done_t = tx.open_table(DONE)?;
    let mut by_time = tx.open_table(DONE_BY_TIME)?;
    for o in &done {
        orders.remove(o.seq)?;
        done_t.insert(o.seq, encode("order", o)?.as_slice())?;
        by_time.insert((o.updated_ms, o.seq), ())?;
    }
    let mut trades: Vec<Trade> = Vec::new();
    for entry in tx.open_table(TRADES)?.iter()? {
        let (_, v) = entry?;
        trades.push(decode("trade", v.value())?);
    }
    for t in &trades {
        index_trade(tx, t)?;
    }
    tracing::info!(
        done = done.len(),
        trades = trades.len(),
        "database moved to schema 2 (live and done orders apart)"
    );
    Ok(())
}

fn order_key(id: &OrderId) -> Vec<u8> {
    let mut k = id.owner.to_bytes();
    k.extend_from_slice(&id.seq.to_be_bytes());
    k
}

fn trade_key(t: &Trade) -> Vec<u8> {
    let mut k = t.id.maker.owner.to_bytes();
    k.extend_from_slice(&t.id.maker.seq.to_be_bytes());
    k.extend_from_slice(&t.id.fill_seq.to_be_bytes());
    k
}

/// The indexes of a trade: by time, by both orders, the maker's counter.
fn index_trade(tx: &WriteTransaction, t: &Trade) -> Result<(), StoreError> {
    let key = trade_key(t);
    tx.open_table(TRADES_BY_TIME)?
        .insert((t.market.as_str(), t.ts_ms, key.as_slice()), ())?;
    let mut ot = tx.open_table(ORDER_TRADES)?;
    for side in [t.id.maker, t.taker] {
        ot.insert((order_key(&side).as_slice(), key.as_slice()), ())?;
    }
    let maker = t.id.maker.owner.to_bytes();
    let mut mseq = tx.open_table(MSEQ)?;
    let cur = mseq
        .get((t.market.as_str(), maker.as_slice()))?
        .map(|v| v.value())
        .unwrap_or(0);
    if t.mseq > cur {
        mseq.insert((t.market.as_str(), maker.as_slice()), t.mseq)?;
    }
    Ok(())
}

/// How much of what is done `load` brings back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadWindow {
    /// The most recently done own orders.
    pub done_orders: usize,
    /// The most recent own trades of each of these markets.
    pub trades_per_market: usize,
    pub markets: Vec<String>,
}

/// What the background pruning removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Done orders, their trades and the tape older than this go.
    pub max_age_ms: u64,
    /// Beyond this many bytes of stored data, the oldest done records go
    /// whatever their age.
    pub max_bytes: u64,
}

/// What one pruning step removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub orders: u64,
    pub trades: u64,
    pub tape: u64,
    /// More is due: call again.
    pub more: bool,
}

/// What the database holds, for `/metrics` and the status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// The database file's size on disk.
    pub file_bytes: u64,
    /// Bytes of stored data (the rest of the file is free pages, reused).
    pub stored_bytes: u64,
    pub live_orders: u64,
    pub done_orders: u64,
    pub trades: u64,
    pub tape: u64,
    pub intents: u64,
}

impl Store {
    /// Make every batch of writes durable, in one transaction, in order.
    pub fn apply(&self, batches: &[&[Op]]) -> Result<(), StoreError> {
        self.apply_with_tape(batches, &[])
    }

    /// Make every batch of writes durable and add trades to the tape, in
    /// one transaction.
    pub fn apply_with_tape(&self, batches: &[&[Op]], tape: &[TradeInfo]) -> Result<(), StoreError> {
        let result = self.apply_once(batches, tape);
        self.explain(result)
    }

    fn apply_once(&self, batches: &[&[Op]], tape: &[TradeInfo]) -> Result<(), StoreError> {
        let db = self.db()?;
        let tx = db.begin_write()?;
        for op in batches.iter().flat_map(|b| b.iter()) {
            match op {
                Op::PutOrder(o) => put_order(&tx, o)?,
                Op::PutTrade(t) => {
                    let key = trade_key(t);
                    let mut trades = tx.open_table(TRADES)?;
                    if trades.get(key.as_slice())?.is_none() {
                        trades.insert(key.as_slice(), encode("trade", t)?.as_slice())?;
                        drop(trades);
                        index_trade(&tx, t)?;
                    }
                }
                Op::PutIntent(i) => {
                    tx.open_table(INTENTS)?
                        .insert((i.taker_seq, i.n), encode("take intent", i)?.as_slice())?;
                }
                Op::DelIntent { taker_seq, n } => {
                    tx.open_table(INTENTS)?.remove((*taker_seq, *n))?;
                }
                Op::ReserveSeq(s) => {
                    let mut meta = tx.open_table(META)?;
                    let cur = meta.get(RESERVED_SEQ)?.map(|v| v.value()).unwrap_or(0);
                    if *s > cur {
                        meta.insert(RESERVED_SEQ, *s)?;
                    }
                }
            }
        }
        if !tape.is_empty() {
            let mut t = tx.open_table(TAPE)?;
            for trade in tape {
                t.insert(
                    (trade.market.as_str(), trade.ts_ms, trade.id.as_bytes()),
                    encode("tape trade", trade)?.as_slice(),
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// What the engine is rebuilt from: every live order, take in doubt and
    /// counter, and a window of what is done (the most recent done orders,
    /// the most recent trades of each market, and the trades of all those
    /// orders).
    pub fn load(&self, me: &PeerId, window: LoadWindow) -> Result<Snapshot, StoreError> {
        let db = self.db()?;
        let tx = db.begin_read()?;
        let mut snap = Snapshot::default();
        for entry in tx.open_table(ORDERS)?.iter()? {
            let (k, v) = entry?;
            let o: OwnOrder = decode(format_args!("own order {}", k.value()), v.value())?;
            snap.orders.insert(o.seq, o);
        }
        let done = tx.open_table(DONE)?;
        for entry in tx
            .open_table(DONE_BY_TIME)?
            .iter()?
            .rev()
            .take(window.done_orders)
        {
            let (k, _) = entry?;
            let (_, seq) = k.value();
            if let Some(v) = done.get(seq)? {
                let o: OwnOrder = decode(format_args!("done order {seq}"), v.value())?;
                snap.orders.insert(o.seq, o);
            }
        }
        let trades = tx.open_table(TRADES)?;
        let order_trades = tx.open_table(ORDER_TRADES)?;
        let mut wanted: BTreeSet<Vec<u8>> = BTreeSet::new();
        for seq in snap.orders.keys() {
            let ok = order_key(&OrderId::new(*me, *seq));
            for entry in order_trades.range((ok.as_slice(), &[][..])..)? {
                let (k, _) = entry?;
                let (o, t) = k.value();
                if o != ok.as_slice() {
                    break;
                }
                wanted.insert(t.to_vec());
            }
        }
        let by_time = tx.open_table(TRADES_BY_TIME)?;
        for m in &window.markets {
            let lo: (&str, u64, &[u8]) = (m.as_str(), 0, &[]);
            let hi: (&str, u64, &[u8]) = (m.as_str(), u64::MAX, &[]);
            for entry in by_time.range(lo..hi)?.rev().take(window.trades_per_market) {
                let (k, _) = entry?;
                let (_, _, key) = k.value();
                let Some(v) = trades.get(key)? else { continue };
                let t: Trade = decode("trade", v.value())?;
                wanted.remove(key);
                snap.trades.insert(t.id, t);
            }
        }
        for key in wanted {
            if let Some(v) = trades.get(key.as_slice())? {
                let t: Trade = decode("trade", v.value())?;
                snap.trades.insert(t.id, t);
            }
        }
        for entry in tx.open_table(INTENTS)?.iter()? {
            let (k, v) = entry?;
            let (seq, n) = k.value();
            let i: TakeIntent = decode(format_args!("take intent {seq}/{n}"), v.value())?;
            snap.intents.insert((seq, n), i);
        }
        let me_bytes = me.to_bytes();
        for entry in tx.open_table(MSEQ)?.iter()? {
            let (k, v) = entry?;
            let (market, maker) = k.value();
            if maker == me_bytes.as_slice() {
                snap.mseq.insert(market.to_string(), v.value());
            }
        }
        snap.reserved_seq = tx
            .open_table(META)?
            .get(RESERVED_SEQ)?
            .map(|v| v.value())
            .unwrap_or(0);
        Ok(snap)
    }

    /// One own order, live or done, with its trades, if the store has it.
    pub fn own_order(
        &self,
        me: &PeerId,
        seq: u64,
    ) -> Result<Option<(OwnOrder, Vec<Trade>)>, StoreError> {
        let db = self.db()?;
        let tx = db.begin_read()?;
        let bytes = match tx.open_table(ORDERS)?.get(seq)? {
            Some(v) => Some(v.value().to_vec()),
            None => tx.open_table(DONE)?.get(seq)?.map(|v| v.value().to_vec()),
        };
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let o: OwnOrder = decode(format_args!("own order {seq}"), &bytes)?;
        let trades = order_trades(&tx, &OrderId::new(*me, seq))?;
        Ok(Some((o, trades)))
    }

    /// Done own orders with `after < seq < before`, newest first, at most
    /// `limit` of those `keep` takes, with their trades.
    pub fn done_orders(
        &self,
        me: &PeerId,
        after: u64,
        before: u64,
        limit: usize,
        keep: impl Fn(&OwnOrder) -> bool,
    ) -> Result<Vec<(OwnOrder, Vec<Trade>)>, StoreError> {
        let db = self.db()?;
        let tx = db.begin_read()?;
        let mut out = Vec::new();
        if before <= after.saturating_add(1) {
            return Ok(out);
        }
        for entry in tx.open_table(DONE)?.range(after + 1..before)?.rev() {
            if out.len() >= limit {
                break;
            }
            let (k, v) = entry?;
            let o: OwnOrder = decode(format_args!("done order {}", k.value()), v.value())?;
            if keep(&o) {
                let trades = order_trades(&tx, &OrderId::new(*me, o.seq))?;
                out.push((o, trades));
            }
        }
        Ok(out)
    }

    /// Trades of `market`'s tape, newest first, with `after < ts < before`
    /// (ms), at most `limit`.
    pub fn tape(
        &self,
        market: &str,
        after: Option<u64>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<TradeInfo>, StoreError> {
        let db = self.db()?;
        let tx = db.begin_read()?;
        let table = tx.open_table(TAPE)?;
        let lo: (&str, u64, &[u8]) = (market, after.map_or(0, |a| a.saturating_add(1)), &[]);
        let hi: (&str, u64, &[u8]) = (market, before.unwrap_or(u64::MAX), &[]);
        let mut out = Vec::new();
        for entry in table.range(lo..hi)?.rev().take(limit) {
            let (_, v) = entry?;
            out.push(decode("tape trade", v.value())?);
        }
        Ok(out)
    }

    /// Trades of the tape of `market` with `from <= ts < to`, oldest first.
    pub fn tape_range(
        &self,
        market: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<TradeInfo>, StoreError> {
        let db = self.db()?;
        let tx = db.begin_read()?;
        let table = tx.open_table(TAPE)?;
        let lo: (&str, u64, &[u8]) = (market, from, &[]);
        let hi: (&str, u64, &[u8]) = (market, to, &[]);
        let mut out = Vec::new();
        for entry in table.range(lo..hi)? {
            let (_, v) = entry?;
            out.push(decode("tape trade", v.value())?);
        }
        Ok(out)
    }

    /// Remove at most `chunk` done records that fall outside `retention` at
    /// time `now`: done orders with their trades, then the tape. Live orders,
    /// takes in doubt, counters and the trades of live orders are never
    /// touched. The step is one small transaction that is not fsynced on its
    /// own (the next write's commit makes it durable; one lost to a crash is
    /// simply done again).
    pub fn prune(
        &self,
        me: &PeerId,
        retention: Retention,
        now: u64,
        chunk: usize,
    ) -> Result<Pruned, StoreError> {
        let result = self.prune_once(me, retention, now, chunk);
        self.explain(result)
    }

    fn prune_once(
        &self,
        me: &PeerId,
        retention: Retention,
        now: u64,
        chunk: usize,
    ) -> Result<Pruned, StoreError> {
        let db = self.db()?;
        let over_size = self.stats_of(&db)?.stored_bytes > retention.max_bytes;
        let cutoff = if over_size {
            u64::MAX
        } else {
            now.saturating_sub(retention.max_age_ms)
        };
        let mut tx = db.begin_write()?;
        tx.set_durability(Durability::None)
            .map_err(|e| StoreError::Db(e.into()))?;
        let mut pruned = Pruned::default();
        // Done orders, oldest first.
        let old: Vec<(u64, u64)> = {
            let by_time = tx.open_table(DONE_BY_TIME)?;
            let mut v = Vec::new();
            for entry in by_time.range(..(cutoff, 0))?.take(chunk) {
                let (k, _) = entry?;
                v.push(k.value());
            }
            v
        };
        for (updated, seq) in &old {
            tx.open_table(DONE_BY_TIME)?.remove((*updated, *seq))?;
            tx.open_table(DONE)?.remove(*seq)?;
            pruned.orders += 1;
            let ok = order_key(&OrderId::new(*me, *seq));
            let keys: Vec<Vec<u8>> = {
                let ot = tx.open_table(ORDER_TRADES)?;
                let mut keys = Vec::new();
                for entry in ot.range((ok.as_slice(), &[][..])..)? {
                    let (k, _) = entry?;
                    let (o, t) = k.value();
                    if o != ok.as_slice() {
                        break;
                    }
                    keys.push(t.to_vec());
                }
                keys
            };
            for key in keys {
                let trade: Option<Trade> = match tx.open_table(TRADES)?.remove(key.as_slice())? {
                    Some(v) => Some(decode("trade", v.value())?),
                    None => None,
                };
                if let Some(t) = trade {
                    tx.open_table(TRADES_BY_TIME)?.remove((
                        t.market.as_str(),
                        t.ts_ms,
                        key.as_slice(),
                    ))?;
                    let mut ot = tx.open_table(ORDER_TRADES)?;
                    for side in [t.id.maker, t.taker] {
                        ot.remove((order_key(&side).as_slice(), key.as_slice()))?;
                    }
                    pruned.trades += 1;
                }
            }
        }
        // The tape: each market's oldest.
        let room = chunk.saturating_sub(old.len());
        if room > 0 {
            let gone: Vec<(String, u64, Vec<u8>)> = {
                let tape = tx.open_table(TAPE)?;
                let mut v = Vec::new();
                for entry in tape.iter()? {
                    let (k, _) = entry?;
                    let (m, ts, id) = k.value();
                    if ts < cutoff {
                        v.push((m.to_string(), ts, id.to_vec()));
                        if v.len() >= room {
                            break;
                        }
                    }
                }
                v
            };
            let mut tape = tx.open_table(TAPE)?;
            for (m, ts, id) in &gone {
                tape.remove((m.as_str(), *ts, id.as_slice()))?;
            }
            pruned.tape = gone.len() as u64;
        }
        pruned.more = pruned.orders + pruned.tape >= chunk as u64;
        tx.commit()?;
        Ok(pruned)
    }

    /// What the database holds.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let db = self.db()?;
        self.stats_of(&db)
    }

    fn stats_of(&self, db: &redb::Database) -> Result<StoreStats, StoreError> {
        let tx = db.begin_read()?;
        let file_bytes = std::fs::metadata(self.path()).map(|m| m.len()).unwrap_or(0);
        let stored_bytes = tx.open_table(ORDERS)?.stats()?.stored_bytes()
            + tx.open_table(DONE)?.stats()?.stored_bytes()
            + tx.open_table(TRADES)?.stats()?.stored_bytes()
            + tx.open_table(TAPE)?.stats()?.stored_bytes()
            + tx.open_table(ORDER_TRADES)?.stats()?.stored_bytes()
            + tx.open_table(TRADES_BY_TIME)?.stats()?.stored_bytes()
            + tx.open_table(DONE_BY_TIME)?.stats()?.stored_bytes();
        Ok(StoreStats {
            file_bytes,
            stored_bytes,
            live_orders: tx.open_table(ORDERS)?.len()?,
            done_orders: tx.open_table(DONE)?.len()?,
            trades: tx.open_table(TRADES)?.len()?,
            tape: tx.open_table(TAPE)?.len()?,
            intents: tx.open_table(INTENTS)?.len()?,
        })
    }

    /// A tiny durable write, to learn whether the disk takes writes again.
    pub fn probe(&self) -> Result<(), StoreError> {
        let result = self.probe_once();
        self.explain(result)
    }

    fn probe_once(&self) -> Result<(), StoreError> {
        let db = self.db()?;
        let tx = db.begin_write()?;
        {
            let mut meta = tx.open_table(META)?;
            let n = meta.get("probe")?.map(|v| v.value()).unwrap_or(0);
            meta.insert("probe", n.wrapping_add(1))?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// Put an own order where its status says: live or done.
fn put_order(tx: &WriteTransaction, o: &OwnOrder) -> Result<(), StoreError> {
    let bytes = encode("order", o)?;
    if o.status.is_done() {
        tx.open_table(ORDERS)?.remove(o.seq)?;
        let mut done = tx.open_table(DONE)?;
        let old: Option<OwnOrder> = match done.get(o.seq)? {
            Some(v) => Some(decode(format_args!("done order {}", o.seq), v.value())?),
            None => None,
        };
        done.insert(o.seq, bytes.as_slice())?;
        let mut by_time = tx.open_table(DONE_BY_TIME)?;
        if let Some(old) = old {
            by_time.remove((old.updated_ms, old.seq))?;
        }
        by_time.insert((o.updated_ms, o.seq), ())?;
    } else {
        tx.open_table(ORDERS)?.insert(o.seq, bytes.as_slice())?;
    }
    Ok(())
}

fn order_trades(tx: &redb::ReadTransaction, id: &OrderId) -> Result<Vec<Trade>, StoreError> {
    let ok = order_key(id);
    let trades = tx.open_table(TRADES)?;
    let mut out = Vec::new();
    for entry in tx
        .open_table(ORDER_TRADES)?
        .range((ok.as_slice(), &[][..])..)?
    {
        let (k, _) = entry?;
        let (o, t) = k.value();
        if o != ok.as_slice() {
            break;
        }
        if let Some(v) = trades.get(t)? {
            out.push(decode("trade", v.value())?);
        }
    }
    out.sort_by_key(|t: &Trade| (t.ts_ms, t.id));
    Ok(out)
}

/// A BTC-USD trade for the tape, `t{i}` at `ts_ms`, for tests.
#[cfg(test)]
pub(crate) fn tape_trade(i: u64, ts_ms: u64) -> TradeInfo {
    TradeInfo {
        id: format!("t{i}"),
        market: "BTC-USD".into(),
        maker_order_id: "m".into(),
        taker_order_id: "t".into(),
        side: crate::market::Side::Buy,
        price: "1".parse().unwrap(),
        quantity: "1".parse().unwrap(),
        ts_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{OrderKind, OrderStatus, Tif, TradeId};
    use crate::market::{Price, Qty, Side};

    fn order(seq: u64, status: OrderStatus, updated_ms: u64) -> OwnOrder {
        OwnOrder {
            seq,
            market: "BTC-USD".into(),
            side: Side::Buy,
            kind: OrderKind::Limit,
            tif: Tif::Gtc,
            price: Some(Price(100)),
            qty: Qty(5),
            filled: Qty(2),
            ver: 1,
            fill_seq: 0,
            takes: 1,
            status,
            reason: None,
            created_ms: 1,
            updated_ms,
            client_id: Some(format!("c{seq}")),
            expires_ms: None,
        }
    }

    fn trade(me: PeerId, maker: PeerId, seq: u64, fill: u64, ts_ms: u64) -> Trade {
        Trade {
            id: TradeId {
                maker: OrderId::new(maker, 9),
                fill_seq: fill,
            },
            market: "BTC-USD".into(),
            maker_side: Side::Sell,
            price: Price(100),
            qty: Qty(1),
            taker: OrderId::new(me, seq),
            take_n: 0,
            mseq: fill,
            maker_remaining: Qty(0),
            maker_ver: fill,
            ts_ms,
        }
    }

    fn window(done: usize) -> LoadWindow {
        LoadWindow {
            done_orders: done,
            trades_per_market: 100,
            markets: vec!["BTC-USD".into()],
        }
    }

    #[test]
    fn a_take_intent_written_before_deadlines_were_kept_still_loads() {
        #[derive(serde::Serialize)]
        struct Before {
            taker_seq: u64,
            n: u32,
            market: String,
            maker: OrderId,
            qty: Qty,
        }
        let maker = OrderId::new(PeerId::random(), 10);
        let old = Before {
            taker_seq: 3,
            n: 1,
            market: "BTC-USD".into(),
            maker,
            qty: Qty(5),
        };
        let bytes = encode("take intent", &old).unwrap();
        let i: TakeIntent = decode("take intent", &bytes).unwrap();
        assert_eq!((i.taker_seq, i.n, i.maker, i.qty), (3, 1, maker, Qty(5)));
        assert_eq!((i.deadline_ms, i.fills_before), (None, 0));
    }

    #[test]
    fn what_was_applied_is_loaded_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let me = PeerId::random();
        let maker = PeerId::random();
        let intent = TakeIntent {
            taker_seq: 1,
            n: 1,
            market: "BTC-USD".into(),
            maker: OrderId::new(maker, 10),
            qty: Qty(1),
            deadline_ms: Some(1_700_000_005_000),
            fills_before: 7,
        };
        let ops = vec![
            Op::PutOrder(order(1, OrderStatus::Open, 2)),
            Op::PutTrade(trade(me, maker, 1, 1, 3)),
            Op::PutIntent(intent.clone()),
            Op::PutIntent(TakeIntent {
                n: 2,
                ..intent.clone()
            }),
            Op::DelIntent { taker_seq: 1, n: 2 },
            Op::ReserveSeq(1024),
        ];
        {
            let store = Store::open(dir.path()).unwrap();
            store.apply(&[&ops]).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let snap = store.load(&me, window(10)).unwrap();
        let mut expect = Snapshot::default();
        expect.apply(&ops);
        assert_eq!(snap.orders, expect.orders);
        assert_eq!(snap.trades, expect.trades);
        assert_eq!(snap.intents.len(), 1);
        assert_eq!(snap.reserved_seq, 1024);
    }

    #[test]
    fn start_up_reads_what_is_live_and_a_window_of_what_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let me = PeerId::random();
        let maker = PeerId::random();
        let mut ops = Vec::new();
        for seq in 1..=100 {
            ops.push(Op::PutOrder(order(seq, OrderStatus::Cancelled, seq)));
            ops.push(Op::PutTrade(trade(me, maker, seq, seq, seq)));
        }
        ops.push(Op::PutOrder(order(101, OrderStatus::Open, 101)));
        // An order done, then changed again (a late fill): one row, one time.
        ops.push(Op::PutOrder(order(5, OrderStatus::Filled, 200)));
        store.apply(&[&ops]).unwrap();
        let snap = store.load(&me, window(10)).unwrap();
        let seqs: Vec<u64> = snap.orders.keys().copied().collect();
        assert!(seqs.contains(&101), "the live order");
        assert!(seqs.contains(&5), "the most recently changed done order");
        assert_eq!(seqs.len(), 11, "{seqs:?}");
        assert_eq!(snap.mseq.get("BTC-USD"), None, "we made no fill as maker");
        // Older done orders are still there, by id and by page.
        let (o, trades) = store.own_order(&me, 3).unwrap().unwrap();
        assert_eq!((o.seq, trades.len()), (3, 1));
        let page = store.done_orders(&me, 0, 50, 10, |_| true).unwrap();
        let got: Vec<u64> = page.iter().map(|(o, _)| o.seq).collect();
        assert_eq!(got, (40..50).rev().collect::<Vec<_>>());
        let s = store.stats().unwrap();
        assert_eq!((s.live_orders, s.done_orders, s.trades), (1, 100, 100));
    }

    #[test]
    fn pruning_takes_what_is_old_and_done_and_never_what_is_live() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let me = PeerId::random();
        let maker = PeerId::random();
        let mut ops = Vec::new();
        for seq in 1..=50 {
            ops.push(Op::PutOrder(order(seq, OrderStatus::Filled, seq * 1000)));
            ops.push(Op::PutTrade(trade(me, maker, seq, seq, seq * 1000)));
        }
        // A live order with an old fill keeps it.
        ops.push(Op::PutOrder(order(60, OrderStatus::Open, 1)));
        ops.push(Op::PutTrade(trade(me, maker, 60, 60, 1)));
        store.apply(&[&ops]).unwrap();
        let tape: Vec<TradeInfo> = (1..=30).map(|i| tape_trade(i, i * 1000)).collect();
        store.apply_with_tape(&[], &tape).unwrap();
        let keep = Retention {
            max_age_ms: 25_000,
            max_bytes: u64::MAX,
        };
        let mut total = Pruned::default();
        loop {
            let p = store.prune(&me, keep, 50_000, 7).unwrap();
            total.orders += p.orders;
            total.trades += p.trades;
            total.tape += p.tape;
            if !p.more {
                break;
            }
        }
        // Done before 25 s: orders 1..24 and their trades, tape 1..24.
        assert_eq!((total.orders, total.trades, total.tape), (24, 24, 24));
        assert!(store.own_order(&me, 24).unwrap().is_none());
        assert!(store.own_order(&me, 25).unwrap().is_some());
        let (live, trades) = store.own_order(&me, 60).unwrap().unwrap();
        assert_eq!((live.status, trades.len()), (OrderStatus::Open, 1));
        assert_eq!(store.tape("BTC-USD", None, None, 100).unwrap().len(), 6);
        // Over its size, the oldest done records go whatever their age.
        let tight = Retention {
            max_age_ms: u64::MAX,
            max_bytes: 0,
        };
        while store.prune(&me, tight, 50_000, 100).unwrap().more {}
        let s = store.stats().unwrap();
        assert_eq!((s.live_orders, s.done_orders, s.tape), (1, 0, 0));
        assert_eq!(s.trades, 1, "the live order's fill stays");
    }

    #[test]
    fn a_schema_1_database_is_moved_to_schema_2_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let me = PeerId::random();
        let maker = PeerId::random();
        {
            // What a node of the previous version wrote: every order in
            // one table, trades without indexes, no schema number.
            let db = redb::Database::create(dir.path().join(super::super::DB_FILE)).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut orders = tx.open_table(ORDERS).unwrap();
                for (seq, status) in [(1, OrderStatus::Open), (2, OrderStatus::Cancelled)] {
                    let o = order(seq, status, seq);
                    orders
                        .insert(seq, encode("order", &o).unwrap().as_slice())
                        .unwrap();
                }
                let t = trade(me, maker, 2, 1, 5);
                tx.open_table(TRADES)
                    .unwrap()
                    .insert(
                        trade_key(&t).as_slice(),
                        encode("trade", &t).unwrap().as_slice(),
                    )
                    .unwrap();
            }
            tx.commit().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let s = store.stats().unwrap();
        assert_eq!((s.live_orders, s.done_orders, s.trades), (1, 1, 1));
        let (o, trades) = store.own_order(&me, 2).unwrap().unwrap();
        assert_eq!((o.status, trades.len()), (OrderStatus::Cancelled, 1));
    }

    #[test]
    fn a_reopened_store_has_what_was_written_and_takes_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let other = store.clone();
        store
            .apply(&[&[Op::PutOrder(order(1, OrderStatus::Open, 1))]])
            .unwrap();
        other.reopen().unwrap();
        store
            .apply(&[&[Op::PutOrder(order(2, OrderStatus::Open, 1))]])
            .unwrap();
        store.probe().unwrap();
        let snap = other.load(&PeerId::random(), window(10)).unwrap();
        assert_eq!(snap.orders.keys().copied().collect::<Vec<_>>(), [1, 2]);
    }
}
