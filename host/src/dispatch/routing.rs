//! The shard → worker routing table the claimer owns, and the rule that moves shards between
//! workers when their backlogs are uneven.
//!
//! Every shard starts on worker `shard % workers`. The table counts, per worker and per
//! shard, the claimed messages not yet finished (handed to a worker and not yet recorded).
//! When the busiest worker holds more than [`IMBALANCE_FACTOR`] times what the least busy one
//! holds, and at least [`BUSY_FLOOR`] messages, one shard of the busiest worker that has
//! **no message in flight** moves to the least busy worker: the most recently claimed such
//! shard, since it is the one likely to bring more. A shard with a message in flight never
//! moves, so no two workers ever hold messages of one shard at once and a recipient's
//! messages keep their order. Routing and counting are O(1) per message; only a rebalance
//! that finds an imbalance looks through the shards.
//! Pure bookkeeping: no I/O, no clock, no locks.

/// A worker must hold at least this many in-flight messages before any of its shards moves.
pub const BUSY_FLOOR: u64 = 32;

/// The busiest worker must hold more than this many times what the least busy one holds.
pub const IMBALANCE_FACTOR: u64 = 2;

/// One shard moved from one worker to another by [`Routing::rebalance`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    pub shard: u16,
    pub from: usize,
    pub to: usize,
    /// In-flight messages of the worker it left and of the one it joined, before the move.
    pub from_in_flight: u64,
    pub to_in_flight: u64,
}

/// Which worker owns each shard, and what each worker and shard holds in flight.
#[derive(Debug)]
pub struct Routing {
    /// The worker of each shard; grows when a shard past the configured count is claimed
    /// (messages accepted under an earlier, larger shard count).
    owner: Vec<usize>,
    shard_in_flight: Vec<u32>,
    /// The claim number of each shard's latest message; 0: never claimed.
    last_claimed: Vec<u64>,
    worker_in_flight: Vec<u64>,
    claims: u64,
    moves: u64,
}

impl Routing {
    /// Shards `0..shards` over `workers` workers (at least one), each on `shard % workers`.
    pub fn new(shards: u16, workers: usize) -> Self {
        let workers = workers.max(1);
        let shards = usize::from(shards);
        Self {
            owner: (0..shards).map(|shard| shard % workers).collect(),
            shard_in_flight: vec![0; shards],
            last_claimed: vec![0; shards],
            worker_in_flight: vec![0; workers],
            claims: 0,
            moves: 0,
        }
    }

    /// The worker that owns `shard` now.
    pub fn route(&self, shard: u16) -> usize {
        let index = usize::from(shard);
        self.owner
            .get(index)
            .copied()
            .unwrap_or(index % self.worker_in_flight.len())
    }

    /// Counts one message of `shard` as in flight on its worker, and returns that worker.
    pub fn claimed(&mut self, shard: u16) -> usize {
        let index = usize::from(shard);
        if index >= self.owner.len() {
            let workers = self.worker_in_flight.len();
            self.owner
                .extend((self.owner.len()..=index).map(|shard| shard % workers));
            self.shard_in_flight.resize(index + 1, 0);
            self.last_claimed.resize(index + 1, 0);
        }
        let worker = self.route(shard);
        self.claims += 1;
        self.shard_in_flight[index] = self.shard_in_flight[index].saturating_add(1);
        self.last_claimed[index] = self.claims;
        self.worker_in_flight[worker] += 1;
        worker
    }

    /// One message of `shard`, claimed for `worker`, is finished (recorded or let go).
    pub fn finished(&mut self, shard: u16, worker: usize) {
        if let Some(count) = self.shard_in_flight.get_mut(usize::from(shard)) {
            *count = count.saturating_sub(1);
        }
        if let Some(count) = self.worker_in_flight.get_mut(worker) {
            *count = count.saturating_sub(1);
        }
    }

    /// Moves at most one shard from the busiest worker to the least busy one, when the rule
    /// in the module documentation says so.
    pub fn rebalance(&mut self) -> Option<Move> {
        let (mut busiest, mut idlest) = (0, 0);
        for (worker, &count) in self.worker_in_flight.iter().enumerate() {
            if count > self.worker_in_flight[busiest] {
                busiest = worker;
            }
            if count < self.worker_in_flight[idlest] {
                idlest = worker;
            }
        }
        let (busy, idle) = (self.worker_in_flight[busiest], self.worker_in_flight[idlest]);
        if busiest == idlest || busy < BUSY_FLOOR || busy <= idle.saturating_mul(IMBALANCE_FACTOR) {
            return None;
        }
        let shard = (0..self.owner.len())
            .filter(|&shard| {
                self.owner[shard] == busiest && self.shard_in_flight[shard] == 0 && self.last_claimed[shard] > 0
            })
            .max_by_key(|&shard| self.last_claimed[shard])?;
        self.owner[shard] = idlest;
        self.moves += 1;
        Some(Move {
            shard: u16::try_from(shard).unwrap_or(u16::MAX),
            from: busiest,
            to: idlest,
            from_in_flight: busy,
            to_in_flight: idle,
        })
    }

    /// Shards moved since start.
    pub fn moves(&self) -> u64 {
        self.moves
    }

    /// Claimed messages `worker` holds that are not finished yet.
    #[cfg(test)]
    pub fn in_flight(&self, worker: usize) -> u64 {
        self.worker_in_flight.get(worker).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Claims `count` messages of `shard` and returns the worker they went to.
    fn claim(routing: &mut Routing, shard: u16, count: u64) -> usize {
        let mut worker = routing.route(shard);
        for _ in 0..count {
            worker = routing.claimed(shard);
        }
        worker
    }

    #[test]
    fn starts_static() {
        let routing = Routing::new(256, 4);
        assert_eq!(routing.route(0), 0);
        assert_eq!(routing.route(5), 1);
        assert_eq!(routing.route(255), 3);
        assert_eq!(routing.moves(), 0);
    }

    #[test]
    fn counts_in_flight_per_worker() {
        let mut routing = Routing::new(8, 2);
        assert_eq!(claim(&mut routing, 3, 5), 1);
        assert_eq!(claim(&mut routing, 2, 2), 0);
        assert_eq!((routing.in_flight(0), routing.in_flight(1)), (2, 5));
        routing.finished(3, 1);
        assert_eq!(routing.in_flight(1), 4);
        // More finishes than claims never wrap around.
        for _ in 0..10 {
            routing.finished(2, 0);
        }
        assert_eq!(routing.in_flight(0), 0);
    }

    #[test]
    fn balanced_or_small_loads_stay_put() {
        let mut routing = Routing::new(8, 2);
        // Uneven but under the floor.
        claim(&mut routing, 0, BUSY_FLOOR - 1);
        claim(&mut routing, 2, 1);
        routing.finished(2, 0);
        assert_eq!(routing.rebalance(), None);
        // Over the floor but within the factor.
        let mut routing = Routing::new(8, 2);
        claim(&mut routing, 0, 40);
        claim(&mut routing, 1, 20);
        claim(&mut routing, 2, 1);
        routing.finished(2, 0);
        assert_eq!(routing.rebalance(), None);
        assert_eq!(routing.moves(), 0);
    }

    #[test]
    fn moves_an_idle_shard_of_the_busy_worker_to_the_least_busy() {
        let mut routing = Routing::new(12, 3);
        claim(&mut routing, 0, 50); // worker 0, stays busy
        claim(&mut routing, 3, 2); // worker 0, will finish
        claim(&mut routing, 6, 1); // worker 0, will finish, claimed last
        claim(&mut routing, 1, 10); // worker 1
        routing.finished(3, 0);
        routing.finished(3, 0);
        routing.finished(6, 0);
        let moved = routing.rebalance().expect("worker 0 holds 50, worker 2 none");
        assert_eq!(
            moved,
            Move {
                shard: 6,
                from: 0,
                to: 2,
                from_in_flight: 50,
                to_in_flight: 0
            }
        );
        assert_eq!(routing.route(6), 2);
        assert_eq!(claim(&mut routing, 6, 1), 2);
        assert_eq!(routing.moves(), 1);
        // Next: shard 3, the only idle shard of worker 0 that has carried messages.
        let moved = routing.rebalance().expect("still uneven");
        assert_eq!((moved.shard, moved.to), (3, 2));
        // Nothing idle with traffic is left on worker 0: shard 0 is in flight, 9 never used.
        assert_eq!(routing.rebalance(), None);
        assert_eq!(routing.route(0), 0);
        assert_eq!(routing.moves(), 2);
    }

    #[test]
    fn a_shard_in_flight_never_moves() {
        let mut routing = Routing::new(4, 2);
        claim(&mut routing, 0, 100);
        claim(&mut routing, 2, 1);
        assert_eq!(
            routing.rebalance(),
            None,
            "both shards of worker 0 have messages in flight"
        );
        routing.finished(2, 0);
        let moved = routing.rebalance().expect("shard 2 is idle now");
        assert_eq!((moved.shard, moved.from, moved.to), (2, 0, 1));
        // Every message of shard 0 stays with worker 0 until it is finished.
        assert_eq!(claim(&mut routing, 0, 1), 0);
        for _ in 0..101 {
            routing.finished(0, 0);
        }
        assert_eq!(routing.in_flight(0), 0);
    }

    #[test]
    fn order_holds_under_random_load() {
        // Whatever the load, a shard is never on two workers with messages in flight: every
        // message of a shard still in flight went to the worker that owns the shard now.
        let mut routing = Routing::new(16, 3);
        let mut held: Vec<(u16, usize)> = Vec::new();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..5_000 {
            if next() % 20 < 11 {
                // Hot shards 0 and 3 (both on worker 0) take most of the traffic.
                let shard = if next() % 2 == 0 {
                    [0, 3][usize::from(next() % 2 == 0)]
                } else {
                    (next() % 16) as u16
                };
                held.push((shard, routing.claimed(shard)));
            } else if !held.is_empty() {
                let (shard, worker) = held.swap_remove((next() % held.len() as u64) as usize);
                routing.finished(shard, worker);
            }
            routing.rebalance();
            for &(shard, worker) in &held {
                assert_eq!(
                    routing.route(shard),
                    worker,
                    "shard {shard} moved with a message in flight"
                );
            }
        }
        assert!(routing.moves() > 0);
    }

    #[test]
    fn shards_past_the_configured_count_are_routed_and_counted() {
        let mut routing = Routing::new(4, 3);
        assert_eq!(routing.route(10), 1);
        assert_eq!(routing.claimed(10), 1);
        assert_eq!(routing.in_flight(1), 1);
        routing.finished(10, 1);
        assert_eq!(routing.in_flight(1), 0);
    }
}
