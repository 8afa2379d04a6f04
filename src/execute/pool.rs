//! The default memory pool: DataFusion's fair spill pool, with shares
//! counted over the operators that hold memory rather than over every
//! operator the query has set up.
//!
//! DataFusion's `FairSpillPool` caps each spillable operator (sorts,
//! aggregates, repartitions: one per partition) at the pool divided by all
//! of them, busy or idle. A catalog query registers dozens (each partition
//! of each aggregate, sort and repartition), so at 100k customers the
//! health score's aggregates spilled with most of a 3 GB pool unused.
//!
//! [`ActiveFairPool`] shares the pool among the operators that hold memory:
//! each may grow to `pool / holding`. Every operator, busy or idle, keeps a
//! small reserve (the fair share, at most [`RESERVED_PER_OPERATOR`]) that
//! the others cannot take, so an operator that starts late can still place
//! its first batches; a greedy pool failed there (see `session`). Beside
//! another operator, none takes more than half the pool. With as
//! many holders as operators this is the fair pool. Unspillable consumers
//! (hash join build sides) are limited by the whole pool, as before.

use std::fmt;
use std::sync::{Mutex, MutexGuard};

use datafusion::common::{Result, resources_datafusion_err};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, human_readable_size,
};

/// See the module documentation.
#[derive(Debug)]
pub struct ActiveFairPool {
    pool_size: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Spillable consumers registered.
    registered: usize,
    /// Spillable reservations holding memory (an estimate: a reservation
    /// split without the pool seeing it is counted when it frees).
    holding: usize,
    spillable: usize,
    unspillable: usize,
}

impl ActiveFairPool {
    pub fn new(pool_size: usize) -> Self {
        Self {
            pool_size,
            state: Mutex::new(State::default()),
        }
    }

    /// The counts stay consistent even if a thread panicked holding them.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What every spillable operator may always take, busy or not: enough for
/// its first batches and a sort's merge reservation (10 MB by default), so
/// an operator starting late finds room however busy the others are.
const RESERVED_PER_OPERATOR: usize = 32 << 20;

impl State {
    /// Whether a spillable reservation of `size` bytes may take
    /// `additional` more: within its reserve always; past that, up to the
    /// pool over the operators holding memory, out of what the reserves of
    /// the idle operators leave.
    fn spillable_fits(&self, pool_size: usize, size: usize, additional: usize) -> bool {
        let available = pool_size.saturating_sub(self.unspillable);
        let registered = self.registered.max(1);
        let reserve = (available / registered).min(RESERVED_PER_OPERATOR);
        let after = size + additional;
        if after <= reserve {
            return true;
        }
        // While another spillable operator is registered, none takes more
        // than half: when one spills and lets go, the other could take the
        // whole pool, and the first then merges its spill files with memory
        // it cannot spill and finds none (at 1M customers the health
        // table's sort failed so, one partition holding 2.3 GB of 2.9).
        let holding = (self.holding + usize::from(size == 0)).clamp(registered.min(2), registered);
        let share = available / holding;
        let room = available.saturating_sub(reserve * (registered - holding));
        after <= share && self.spillable + additional <= room
    }
}

impl MemoryPool for ActiveFairPool {
    fn name(&self) -> &str {
        "active-fair"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        if consumer.can_spill() {
            self.state().registered += 1;
        }
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        if consumer.can_spill() {
            let mut state = self.state();
            state.registered = state.registered.saturating_sub(1);
            state.holding = state.holding.min(state.registered);
        }
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        let mut state = self.state();
        if reservation.consumer().can_spill() {
            if reservation.size() == 0 && additional > 0 {
                state.holding += 1;
            }
            state.spillable += additional;
        } else {
            state.unspillable += additional;
        }
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        let mut state = self.state();
        // The reservation's size is already the smaller one here.
        if reservation.consumer().can_spill() {
            if reservation.size() == 0 && shrink > 0 {
                state.holding = state.holding.saturating_sub(1);
            }
            state.spillable = state.spillable.saturating_sub(shrink);
        } else {
            state.unspillable = state.unspillable.saturating_sub(shrink);
        }
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let mut state = self.state();
        let size = reservation.size();
        if reservation.consumer().can_spill() {
            if !state.spillable_fits(self.pool_size, size, additional) {
                return Err(refused(reservation, additional, &state, self));
            }
            if size == 0 && additional > 0 {
                state.holding += 1;
            }
            state.spillable += additional;
        } else {
            let available = self
                .pool_size
                .saturating_sub(state.unspillable + state.spillable);
            if additional > available {
                return Err(refused(reservation, additional, &state, self));
            }
            state.unspillable += additional;
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        let state = self.state();
        state.spillable + state.unspillable
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.pool_size)
    }
}

/// DataFusion's own "resources exhausted" error, which spilling operators
/// catch and answer by spilling.
fn refused(
    reservation: &MemoryReservation,
    additional: usize,
    state: &State,
    pool: &ActiveFairPool,
) -> datafusion::error::DataFusionError {
    resources_datafusion_err!(
        "Failed to allocate additional {} for {} with {} already allocated for this reservation - {} of {pool} is in use",
        human_readable_size(additional),
        reservation.consumer().name(),
        human_readable_size(reservation.size()),
        human_readable_size(state.spillable + state.unspillable)
    )
}

impl fmt::Display for ActiveFairPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}(pool_size: {})",
            self.name(),
            human_readable_size(self.pool_size)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const MB: usize = 1 << 20;

    fn spiller(pool: &Arc<dyn MemoryPool>, name: &str) -> MemoryReservation {
        MemoryConsumer::new(name)
            .with_can_spill(true)
            .register(pool)
    }

    /// Two busy operators among ten registered share what the idle
    /// operators' reserves leave, and every idle one still gets its reserve.
    #[test]
    fn busy_operators_share_what_idle_reserves_leave() {
        let pool: Arc<dyn MemoryPool> = Arc::new(ActiveFairPool::new(1000 * MB));
        let ops: Vec<MemoryReservation> =
            (0..10).map(|i| spiller(&pool, &format!("op{i}"))).collect();
        // The fair pool would stop each at 100 MB. Here two holders may
        // take half the pool each, out of the 744 MB that eight idle
        // reserves of 32 MB leave.
        ops[0].try_grow(300 * MB).unwrap();
        ops[1].try_grow(300 * MB).unwrap();
        assert!(ops[0].try_grow(201 * MB).is_err(), "past its share of 500");
        ops[0].try_grow(144 * MB).unwrap();
        assert!(ops[1].try_grow(MB).is_err(), "the idle reserves are kept");
        // Every idle operator still gets its reserve.
        for op in &ops[2..] {
            op.try_grow(32 * MB).unwrap();
        }
        assert_eq!(pool.reserved(), 1000 * MB);
        // Past its reserve, a late operator must wait for room: it spills.
        assert!(ops[2].try_grow(MB).is_err());
        // Nine hold memory once op0 is done: a ninth of the pool each.
        ops[0].free();
        ops[2].try_grow(60 * MB).unwrap();
        assert!(ops[2].try_grow(20 * MB).is_err());
    }

    /// An operator alone holding memory stops at half the pool while
    /// another is registered: the other's unspillable merge finds room.
    #[test]
    fn no_operator_takes_more_than_half_beside_another() {
        let pool: Arc<dyn MemoryPool> = Arc::new(ActiveFairPool::new(100 * MB));
        let sorts = [spiller(&pool, "sort0"), spiller(&pool, "sort1")];
        sorts[0].try_grow(50 * MB).unwrap();
        assert!(sorts[0].try_grow(1).is_err(), "half the pool");
        let merge = MemoryConsumer::new("merge1").register(&pool);
        merge.try_grow(50 * MB).unwrap();
    }

    /// With every operator holding memory, this is the fair pool.
    #[test]
    fn all_busy_is_the_fair_pool() {
        let pool: Arc<dyn MemoryPool> = Arc::new(ActiveFairPool::new(100 * MB));
        let ops: Vec<MemoryReservation> =
            (0..4).map(|i| spiller(&pool, &format!("op{i}"))).collect();
        for op in &ops {
            op.try_grow(MB).unwrap();
        }
        ops[0].try_grow(24 * MB).unwrap();
        assert!(ops[0].try_grow(1).is_err(), "a quarter each");
        ops[3].free();
        // Three hold memory, one idle reserve (25 MB) is kept: 33 MB each.
        ops[0].try_grow(8 * MB).unwrap();
        assert!(ops[0].try_grow(MB).is_err());
    }

    /// Without other operators, one operator may use the whole pool, and an
    /// unspillable consumer is bounded by what everyone holds.
    #[test]
    fn a_lone_operator_has_the_whole_pool() {
        let pool: Arc<dyn MemoryPool> = Arc::new(ActiveFairPool::new(100 * MB));
        let op = spiller(&pool, "sort");
        op.try_grow(100 * MB).unwrap();
        assert!(op.try_grow(1).is_err());
        let join = MemoryConsumer::new("join").register(&pool);
        assert!(join.try_grow(1).is_err(), "the pool is full");
        op.shrink(40 * MB);
        join.try_grow(30 * MB).unwrap();
        // The sort's floor is now what the join leaves.
        assert!(op.try_grow(20 * MB).is_err());
        op.try_grow(10 * MB).unwrap();
        let err = op.try_grow(1).unwrap_err().to_string();
        assert!(
            err.contains("Resources exhausted") && err.contains("sort"),
            "{err}"
        );
    }
}
