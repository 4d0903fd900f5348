//! The engine's durable state: own orders, the fills this node took part
//! in, takes in doubt, and the reserved order sequence numbers.
//!
//! The engine asks for writes as lists of `engine::Op`; `apply` makes a
//! whole list (or several lists at once, for group commit) durable in one
//! transaction, and `load` gives back the `engine::Snapshot` the engine is
//! rebuilt from at start.

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::codec::{decode, encode};
use super::{Store, StoreError};
use crate::engine::{Op, OwnOrder, Snapshot, TakeIntent, Trade};

/// Own order sequence number -> CBOR `OwnOrder`.
const ORDERS: TableDefinition<u64, &[u8]> = TableDefinition::new("own_orders");
/// Trade id (maker peer id bytes, maker seq, fill seq) -> CBOR `Trade`.
const TRADES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("trades");
/// (taker order seq, take number) -> CBOR `TakeIntent`.
const INTENTS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("take_intents");
/// Named counters.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const RESERVED_SEQ: &str = "reserved_seq";

pub(super) fn init(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(ORDERS)?;
    tx.open_table(TRADES)?;
    tx.open_table(INTENTS)?;
    tx.open_table(META)?;
    Ok(())
}

fn trade_key(t: &Trade) -> Vec<u8> {
    let mut k = t.id.maker.owner.to_bytes();
    k.extend_from_slice(&t.id.maker.seq.to_be_bytes());
    k.extend_from_slice(&t.id.fill_seq.to_be_bytes());
    k
}

impl Store {
    /// Make every batch of writes durable, in one transaction, in order.
    pub fn apply(&self, batches: &[&[Op]]) -> Result<(), StoreError> {
        let result = self.apply_once(batches);
        self.explain(result)
    }

    fn apply_once(&self, batches: &[&[Op]]) -> Result<(), StoreError> {
        let db = self.db()?;
        let tx = db.begin_write()?;
        {
            let mut orders = tx.open_table(ORDERS)?;
            let mut trades = tx.open_table(TRADES)?;
            let mut intents = tx.open_table(INTENTS)?;
            let mut meta = tx.open_table(META)?;
            for op in batches.iter().flat_map(|b| b.iter()) {
                match op {
                    Op::PutOrder(o) => {
                        orders.insert(o.seq, encode("order", o)?.as_slice())?;
                    }
                    Op::PutTrade(t) => {
                        let key = trade_key(t);
                        if trades.get(key.as_slice())?.is_none() {
                            trades.insert(key.as_slice(), encode("trade", t)?.as_slice())?;
                        }
                    }
                    Op::PutIntent(i) => {
                        intents.insert((i.taker_seq, i.n), encode("take intent", i)?.as_slice())?;
                    }
                    Op::DelIntent { taker_seq, n } => {
                        intents.remove((*taker_seq, *n))?;
                    }
                    Op::ReserveSeq(s) => {
                        let cur = meta.get(RESERVED_SEQ)?.map(|v| v.value()).unwrap_or(0);
                        if *s > cur {
                            meta.insert(RESERVED_SEQ, *s)?;
                        }
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Everything the engine is rebuilt from.
    pub fn load(&self) -> Result<Snapshot, StoreError> {
        let db = self.db()?;
        let tx = db.begin_read()?;
        let mut snap = Snapshot::default();
        for entry in tx.open_table(ORDERS)?.iter()? {
            let (k, v) = entry?;
            let o: OwnOrder = decode(format_args!("own order {}", k.value()), v.value())?;
            snap.orders.insert(o.seq, o);
        }
        for entry in tx.open_table(TRADES)?.iter()? {
            let (_, v) = entry?;
            let t: Trade = decode("trade", v.value())?;
            snap.trades.insert(t.id, t);
        }
        for entry in tx.open_table(INTENTS)?.iter()? {
            let (k, v) = entry?;
            let (seq, n) = k.value();
            let i: TakeIntent = decode(format_args!("take intent {seq}/{n}"), v.value())?;
            snap.intents.insert((seq, n), i);
        }
        snap.reserved_seq = tx
            .open_table(META)?
            .get(RESERVED_SEQ)?
            .map(|v| v.value())
            .unwrap_or(0);
        Ok(snap)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{OrderId, OrderKind, OrderStatus, Tif, TradeId};
    use crate::market::{Price, Qty, Side};
    use libp2p::PeerId;

    fn order(seq: u64) -> OwnOrder {
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
            status: OrderStatus::Open,
            reason: None,
            created_ms: 1,
            updated_ms: 2,
            client_id: Some("c".into()),
        }
    }

    #[test]
    fn what_was_applied_is_loaded_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let maker = PeerId::random();
        let trade = Trade {
            id: TradeId {
                maker: OrderId::new(maker, 9),
                fill_seq: 1,
            },
            market: "BTC-USD".into(),
            maker_side: Side::Sell,
            price: Price(100),
            qty: Qty(2),
            taker: OrderId::new(PeerId::random(), 1),
            take_n: 0,
            mseq: 1,
            maker_remaining: Qty(0),
            maker_ver: 1,
            ts_ms: 3,
        };
        let intent = TakeIntent {
            taker_seq: 1,
            n: 1,
            market: "BTC-USD".into(),
            maker: OrderId::new(maker, 10),
            qty: Qty(1),
        };
        let ops = vec![
            Op::PutOrder(order(1)),
            Op::PutTrade(trade.clone()),
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
        let snap = store.load().unwrap();
        let mut expect = Snapshot::default();
        expect.apply(&ops);
        assert_eq!(snap, expect);
        assert_eq!(snap.intents.len(), 1);
        assert_eq!(snap.reserved_seq, 1024);
    }

    #[test]
    fn a_reopened_store_has_what_was_written_and_takes_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let other = store.clone();
        store.apply(&[&[Op::PutOrder(order(1))]]).unwrap();
        other.reopen().unwrap();
        store.apply(&[&[Op::PutOrder(order(2))]]).unwrap();
        store.probe().unwrap();
        let snap = other.load().unwrap();
        assert_eq!(snap.orders.keys().copied().collect::<Vec<_>>(), [1, 2]);
    }
}
