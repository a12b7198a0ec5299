// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The machine queue's bookkeeping as plain values, in the manner of
//! client-go's workqueue: a key waits at most once, a key runs on one worker
//! at a time, and a key triggered while it runs waits again once it is done.
//! What is waiting is kept apart from what runs, so that no step looks at
//! more than the keys it moves.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;

use crate::api::Machine;
use crate::contract::Phase;

/// Where a machine waits for a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Lane {
    /// Being deleted: workers of its own (MCM's termination queue).
    Deletion,
    /// Created and Pending: its VM exists and its Node is awaited, so its next
    /// reconcile most likely finishes it.
    Joining,
    /// All other machines: new ones, Running ones' health, failed ones.
    Other,
}

impl Lane {
    pub(crate) fn of(machine: &Machine) -> Lane {
        if machine.is_deleting() {
            Lane::Deletion
        } else if !machine.spec.provider_id.is_empty() && machine.phase() == Some(&Phase::Pending) {
            Lane::Joining
        } else {
            Lane::Other
        }
    }

    pub(crate) fn pool(self) -> Pool {
        match self {
            Lane::Deletion => Pool::Deletions,
            Lane::Joining | Lane::Other => Pool::Machines,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// MCM's two queues, each with `--concurrent-syncs` workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pool {
    /// Machines being deleted.
    Deletions,
    /// All others.
    Machines,
}

impl Pool {
    pub(crate) const ALL: [Pool; 2] = [Pool::Deletions, Pool::Machines];

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Keys waiting in lanes, keys running, keys triggered while running.
#[derive(Debug)]
pub(crate) struct Queue<K> {
    /// Per lane, first come first served, each key with the tick it came at.
    /// A key that moved to another lane leaves its old entry behind, skipped
    /// when met.
    lines: [VecDeque<(K, u64)>; 3],
    /// Every waiting key and the lane it waits in.
    waiting: HashMap<K, Lane>,
    running: HashSet<K>,
    /// Running keys triggered again: they wait again once done.
    again: HashSet<K>,
    /// One more per add: the order of arrival across lanes.
    tick: u64,
    /// The tick at which the last [`Lane::Other`] key was taken: the next one
    /// counts as come no earlier, so that joining machines already waiting
    /// go before it, and those that come later, after it.
    others_turn: u64,
    closed: bool,
}

impl<K> Default for Queue<K> {
    fn default() -> Self {
        Queue {
            lines: Default::default(),
            waiting: HashMap::new(),
            running: HashSet::new(),
            again: HashSet::new(),
            tick: 0,
            others_turn: 0,
            closed: false,
        }
    }
}

impl<K: Hash + Eq + Clone> Queue<K> {
    /// A trigger of `key`, whose machine belongs in `lane` now. Returns the
    /// pool whose worker should wake, if the key entered a line.
    pub(crate) fn add(&mut self, key: K, lane: Lane) -> Option<Pool> {
        if self.closed {
            return None;
        }
        if self.running.contains(&key) {
            self.again.insert(key);
            return None;
        }
        match self.waiting.insert(key.clone(), lane) {
            // Merged with the trigger that waits already.
            Some(was) if was == lane => None,
            // New, or its machine changed lanes (a deletion, a VM made):
            // it waits at the end of its new lane.
            _ => {
                self.tick += 1;
                self.lines[lane.index()].push_back((key, self.tick));
                Some(lane.pool())
            }
        }
    }

    /// The next key for a worker of `pool`, now running; None if none waits
    /// or the queue is closed.
    ///
    /// In the machine pool, the first other machine waits behind the joining
    /// machines that were waiting when it came to the front of its lane, and
    /// the joining machines that come later wait behind it. Joining machines
    /// never wait behind more than one creation (a wave of creations would
    /// otherwise hold back every join until the last creation is through),
    /// and creations keep moving however many joins keep coming.
    pub(crate) fn take(&mut self, pool: Pool) -> Option<K> {
        if self.closed {
            return None;
        }
        let lane = match pool {
            Pool::Deletions => self.front(Lane::Deletion).map(|_| Lane::Deletion),
            Pool::Machines => {
                let joining = self.front(Lane::Joining);
                let other = self.front(Lane::Other).map(|at| at.max(self.others_turn));
                match (joining, other) {
                    (Some(j), Some(o)) if o < j => Some(Lane::Other),
                    (Some(_), _) => Some(Lane::Joining),
                    (None, Some(_)) => Some(Lane::Other),
                    (None, None) => None,
                }
            }
        }?;
        let (key, _) = self.lines[lane.index()].pop_front()?;
        if lane == Lane::Other {
            self.others_turn = self.tick;
        }
        self.waiting.remove(&key);
        self.running.insert(key.clone());
        Some(key)
    }

    /// When the first key waiting in `lane` came, dropping the entries of
    /// keys that moved to another lane.
    fn front(&mut self, lane: Lane) -> Option<u64> {
        let line = &mut self.lines[lane.index()];
        while let Some((key, at)) = line.front() {
            if self.waiting.get(key) == Some(&lane) {
                return Some(*at);
            }
            line.pop_front();
        }
        None
    }

    /// `key`'s reconcile ended. True if it was triggered meanwhile: the
    /// caller adds it again, in the lane of what its machine is now.
    pub(crate) fn done(&mut self, key: &K) -> bool {
        self.running.remove(key);
        self.again.remove(key)
    }

    /// No key is taken any more; the waiting ones are dropped (as the
    /// Controller drops its queue on shutdown). Running ones end as they do.
    pub(crate) fn close(&mut self) {
        self.closed = true;
        self.lines = Default::default();
        self.waiting.clear();
        self.again.clear();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending_with_vm(name: &str) -> Machine {
        let mut m = Machine::named(name);
        m.spec.provider_id = format!("machine-{name}");
        m.status.current_status.phase = Some(Phase::Pending);
        m
    }

    #[test]
    fn only_a_pending_machine_with_a_vm_is_joining() {
        let joining = pending_with_vm("j");
        assert_eq!(Lane::of(&joining), Lane::Joining);
        let mut no_vm = joining.clone();
        no_vm.spec.provider_id.clear();
        assert_eq!(Lane::of(&no_vm), Lane::Other);
        let mut running = joining.clone();
        running.status.current_status.phase = Some(Phase::Running);
        assert_eq!(Lane::of(&running), Lane::Other);
        let mut deleting = joining.clone();
        deleting.metadata.deletion_timestamp = Some(crate::controller::status::now());
        assert_eq!(Lane::of(&deleting), Lane::Deletion);
        assert_eq!(Lane::of(&Machine::named("new")), Lane::Other);
    }

    #[test]
    fn a_key_waits_once_and_runs_once() {
        let mut q = Queue::default();
        assert_eq!(q.add("a", Lane::Other), Some(Pool::Machines));
        assert_eq!(q.add("a", Lane::Other), None, "merged with the waiting one");
        assert_eq!(q.take(Pool::Machines), Some("a"));
        assert_eq!(q.take(Pool::Machines), None, "one entry, one turn");

        // Triggered while it runs: no second worker, but a turn once done.
        assert_eq!(q.add("a", Lane::Other), None);
        assert_eq!(q.take(Pool::Machines), None);
        assert!(q.done(&"a"));
        assert_eq!(q.add("a", Lane::Other), Some(Pool::Machines));
        assert_eq!(q.take(Pool::Machines), Some("a"));
        assert!(!q.done(&"a"), "not triggered meanwhile");
        assert_eq!(q.take(Pool::Machines), None);
    }

    #[test]
    fn deletions_have_workers_of_their_own() {
        let mut q = Queue::default();
        q.add("new", Lane::Other);
        q.add("old", Lane::Deletion);
        assert_eq!(q.take(Pool::Deletions), Some("old"));
        assert_eq!(
            q.take(Pool::Deletions),
            None,
            "a creation is not a deletion's work"
        );
        assert_eq!(q.take(Pool::Machines), Some("new"));
    }

    #[test]
    fn a_joining_machine_waits_behind_one_newcomer_at_most() {
        let mut q = Queue::default();
        for key in ["new1", "new2", "new3"] {
            q.add(key, Lane::Other);
        }
        q.add("joining1", Lane::Joining);
        q.add("joining2", Lane::Joining);
        let order: Vec<_> = std::iter::from_fn(|| q.take(Pool::Machines)).collect();
        // The newcomer at the front came first; the next ones come to the
        // front only as it is taken, after both joining machines.
        assert_eq!(order, ["new1", "joining1", "joining2", "new2", "new3"]);
    }

    #[test]
    fn newcomers_keep_moving_while_joins_keep_coming() {
        let mut q = Queue::default();
        for i in 0..3 {
            q.add(format!("new{i}"), Lane::Other);
        }
        let mut taken = Vec::new();
        for i in 0..6 {
            // Each turn, a joining machine comes (a Node event of one whose
            // VM runs), as in a wave of thousands.
            q.add(format!("joining{i}"), Lane::Joining);
            let key = q.take(Pool::Machines).expect("one waits");
            assert!(!q.done(&key));
            taken.push(key);
        }
        let newcomers = taken.iter().filter(|k| k.starts_with("new")).count();
        assert_eq!(newcomers, 3, "taken: {taken:?}");
    }

    #[test]
    fn a_machine_that_changes_lanes_while_waiting_waits_in_its_new_lane_only() {
        let mut q = Queue::default();
        q.add("m", Lane::Other);
        q.add("n", Lane::Other);
        // Deleted while it waited: a deletion worker takes it, and the
        // machine workers skip its old place.
        assert_eq!(q.add("m", Lane::Deletion), Some(Pool::Deletions));
        assert_eq!(q.take(Pool::Machines), Some("n"));
        assert_eq!(q.take(Pool::Machines), None);
        assert_eq!(q.take(Pool::Deletions), Some("m"));
        assert!(!q.done(&"m"));
        assert_eq!(q.take(Pool::Deletions), None);
    }

    #[test]
    fn a_closed_queue_hands_out_nothing_and_forgets_what_waited() {
        let mut q = Queue::default();
        q.add("running", Lane::Other);
        assert_eq!(q.take(Pool::Machines), Some("running"));
        q.add("waiting", Lane::Other);
        q.add("running", Lane::Other);
        q.close();
        assert!(q.is_closed());
        assert_eq!(q.take(Pool::Machines), None);
        assert!(!q.done(&"running"), "its trigger went with the queue");
        assert_eq!(q.add("late", Lane::Other), None);
    }
}
