// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Who runs, and in which order: every round runs each contender once, in an
//! order shuffled from a seed that the report prints, so that no contender
//! always runs first on a fresh cluster or last on a tired one, and a run can be
//! repeated in the same order (`BENCH_SEED`).

use serde::Serialize;

/// One of the things measured on the same workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Contender {
    Ours,
    /// gardener's Go controller as shipped.
    Go,
    /// gardener's Go controller with its driver client given the rate flags.
    GoTuned,
    /// The bare client (bare.rs).
    Bare,
    /// The contract floor (floor.rs).
    Floor,
}

impl Contender {
    pub fn name(self) -> &'static str {
        match self {
            Contender::Ours => "ours",
            Contender::Go => "Go",
            Contender::GoTuned => "Go tuned",
            Contender::Bare => "bare client",
            Contender::Floor => "contract floor",
        }
    }
}

/// A small deterministic generator (xorshift64*): enough to shuffle five
/// names, and the same seed gives the same orders.
pub struct Shuffler(u64);

impl Shuffler {
    pub fn new(seed: u64) -> Self {
        // xorshift has a fixed point at 0.
        Shuffler(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `items` in a new order (Fisher-Yates).
    pub fn shuffle<T: Copy>(&mut self, items: &[T]) -> Vec<T> {
        let mut out = items.to_vec();
        for i in (1..out.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            out.swap(i, j);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Contender; 5] = [
        Contender::Ours,
        Contender::Go,
        Contender::GoTuned,
        Contender::Bare,
        Contender::Floor,
    ];

    #[test]
    fn every_round_runs_each_contender_once() {
        let mut s = Shuffler::new(7);
        for _ in 0..20 {
            let mut order = s.shuffle(&ALL);
            assert_eq!(order.len(), 5);
            order.sort_by_key(|c| c.name());
            order.dedup();
            assert_eq!(order.len(), 5);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_orders_and_the_orders_vary() {
        let orders = |seed| {
            let mut s = Shuffler::new(seed);
            (0..6).map(|_| s.shuffle(&ALL)).collect::<Vec<_>>()
        };
        assert_eq!(orders(42), orders(42));
        assert_ne!(orders(42), orders(43));
        // Over many rounds, ours runs first and last at least once.
        let mut s = Shuffler::new(1);
        let rounds: Vec<_> = (0..50).map(|_| s.shuffle(&ALL)).collect();
        assert!(rounds.iter().any(|o| o[0] == Contender::Ours));
        assert!(rounds.iter().any(|o| o[4] == Contender::Ours));
        // Seed 0 works (xorshift's fixed point is avoided).
        assert_eq!(Shuffler::new(0).shuffle(&ALL).len(), 5);
    }
}
