//! The owner's signed records behind an order's state, as a node keeps
//! them to hand on in sync pages (see `wire::proof`).
//!
//! An order's state is fixed by two records at most: the order item that
//! set its side, price, quantity and times (at some version), and the
//! owner's latest fill of it, which sets its remaining quantity and
//! version. Both come with their place in a signed batch.

use super::Trade;
use crate::wire::proof::{Forged, PageBatches, PageVerifier, Proven, Stored};
use crate::wire::{FillMsg, Item, OrderState, ProvenOrder};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateProof {
    /// The order item, as signed.
    pub order: OrderState,
    pub order_proof: Stored,
    /// The owner's latest fill of the order, when newer than the item.
    pub fill: Option<Box<(FillMsg, Stored)>>,
}

impl StateProof {
    pub fn new(order: OrderState, order_proof: Stored) -> StateProof {
        StateProof {
            order,
            order_proof,
            fill: None,
        }
    }

    /// The same order after a later fill, signed too.
    pub fn with_fill(&self, fill: FillMsg, proof: Stored) -> StateProof {
        StateProof {
            order: self.order.clone(),
            order_proof: self.order_proof.clone(),
            fill: Some(Box::new((fill, proof))),
        }
    }

    /// The state these records give.
    pub fn state(&self) -> OrderState {
        let mut st = self.order.clone();
        if let Some(f) = &self.fill {
            st.remaining = f.0.maker_remaining;
            st.ver = f.0.maker_ver;
        }
        st
    }

    pub fn ver(&self) -> u64 {
        self.fill.as_ref().map_or(self.order.ver, |f| f.0.maker_ver)
    }

    /// The records as a page carries them.
    pub fn to_wire(&self, page: &mut PageBatches) -> ProvenOrder {
        ProvenOrder {
            order: Proven {
                item: self.order.clone(),
                proof: page.proof(&self.order_proof),
            },
            fill: self.fill.as_ref().map(|f| Proven {
                item: f.0.clone(),
                proof: page.proof(&f.1),
            }),
        }
    }

    /// Check an order from a page as `owner`'s: both records signed by it,
    /// and of one order.
    pub fn verify(
        v: &mut PageVerifier<'_>,
        owner: &libp2p::PeerId,
        o: &ProvenOrder,
    ) -> Result<StateProof, Forged> {
        o.state().ok_or(Forged::Inconsistent)?;
        let order_proof = v.check(owner, &Item::Order(o.order.item.clone()), &o.order.proof)?;
        let fill = match &o.fill {
            None => None,
            Some(f) => {
                let p = v.check(owner, &Item::Fill(f.item.clone()), &f.proof)?;
                Some(Box::new((f.item.clone(), p)))
            }
        };
        Ok(StateProof {
            order: o.order.item.clone(),
            order_proof,
            fill,
        })
    }
}

/// A trade's fill as a page carries it.
pub fn proven_fill(t: &Trade, p: &Stored, page: &mut PageBatches) -> Proven<FillMsg> {
    Proven {
        item: t.fill_msg(),
        proof: page.proof(p),
    }
}
