//! [`FlowBudget`]: one limit on flow entries shared by every [`crate::FlowTable`] of a
//! process (the agent's `[agent] max_flows`).
//!
//! Each table takes one unit when it inserts a new entry and gives its units back when the
//! window holding them closes (or the table is dropped). A table that cannot take a unit
//! treats the packet like one beyond its own capacity: SKIPDATA for that ENI's window, never
//! an allocation. A flow costs about 60 bytes of table while it is held (ARCHITECTURE.md,
//! "Memory per flow"), so a budget of N flows bounds the tables of all interfaces together
//! to about N × 60 bytes (1 M flows ≈ 60 MiB; 2 × N × 60 at most while a full table is
//! being closed and the next window fills).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes of table one held flow costs, as documented (IPv4 entry 40 bytes + index 10–20
/// bytes; IPv6 entry 64 bytes + index), rounded up for the docs and the MiB estimate.
pub const BYTES_PER_FLOW: usize = 64;

#[derive(Debug)]
struct Inner {
    limit: usize,
    used: AtomicUsize,
    refused: AtomicU64,
}

/// A shared flow-entry budget; clones share the same count.
#[derive(Debug, Clone)]
pub struct FlowBudget(Arc<Inner>);

impl FlowBudget {
    /// A budget of at most `max_flows` entries held at once across every table using it.
    pub fn new(max_flows: usize) -> FlowBudget {
        FlowBudget(Arc::new(Inner {
            limit: max_flows,
            used: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
        }))
    }

    /// Takes one entry; false (and nothing taken) when the budget is spent.
    #[inline]
    pub fn try_take(&self) -> bool {
        let prev = self.0.used.fetch_add(1, Ordering::Relaxed);
        if prev >= self.0.limit {
            self.0.used.fetch_sub(1, Ordering::Relaxed);
            self.0.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Gives `n` entries back.
    #[inline]
    pub fn give_back(&self, n: usize) {
        if n > 0 {
            self.0.used.fetch_sub(n, Ordering::Relaxed);
        }
    }

    pub fn limit(&self) -> usize {
        self.0.limit
    }

    /// Entries held now by all tables together.
    pub fn used(&self) -> usize {
        self.0.used.load(Ordering::Relaxed)
    }

    /// New flows refused so far because the budget was spent.
    pub fn refused(&self) -> u64 {
        self.0.refused.load(Ordering::Relaxed)
    }

    /// Approximate MiB of table memory the full budget costs.
    pub fn mib(max_flows: usize) -> usize {
        (max_flows * BYTES_PER_FLOW).div_ceil(1 << 20)
    }
}
