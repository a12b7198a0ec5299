// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The workers that run machine reconciles, and the queue they take machines
//! from: MCM's two queues, each with `--concurrent-syncs` workers, with
//! machines that wait for their Node served first.
//!
//! The Controller decides *which* machines to reconcile (its watches, mappings,
//! resyncs and debounce) and hands each to [`MachineQueue::offer`] at once; the
//! queue decides *when*. Why not let the Controller's runner hold a machine
//! until a worker is free: kube-runtime 5's runner, on every poll, scans every
//! trigger that came for a machine whose reconcile is in flight
//! (`Scheduler::hold_unless`), and a machine waiting for a worker is in flight.
//! With thousands of machines created at once, that scan ran on every API
//! answer of every reconcile (they all ran in the Controller's one task) and
//! grew with the fleet: at N=3000 in `make bench` the create phase spent about
//! a sixth of its CPU on it (perf, 2026-12-08). Here each step touches only
//! the machines it moves, and the reconciles run as tasks of their own, on
//! every core.
//!
//! Deletions (drains can take long) never hold back creations, nor a wave of
//! creations the deletions. In the machine pool, a machine whose VM exists and
//! whose Node is awaited ([`Lane::Joining`]) waits behind one other machine at
//! most: a wave of creations otherwise holds back every join until the last
//! creation is through (at N=1000 in `make bench` with no join delay, no join
//! was written before second 41, when the last Pods were applied). Nor do
//! joins hold back creations: with joining machines served strictly first,
//! 4,165 of 10,000 machines had not been touched after 16 minutes (the
//! joining lane never ran dry), and their creation timeout drew near.

mod queue;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use futures::FutureExt;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::time::{DelayQueue, delay_queue};

use super::action::Action;
use super::context::Context;
use super::error::{Error, retry};
use super::own_writes::OwnWrites;
use super::{error_policy, reconcile};
use crate::api::Machine;
use crate::driver::Driver;
use crate::driver::instrumented::InstrumentedDriver;
use crate::metrics::Metrics;
use queue::Queue;
pub(crate) use queue::{Lane, Pool};

type Key = ObjectRef<Machine>;

/// The machines waiting and running, the workers' wake-ups, and the requeues
/// not yet due.
pub(crate) struct MachineQueue {
    lines: Mutex<Queue<Key>>,
    /// One per [`Pool`]: a machine entered one of its lanes, or the queue closed.
    ready: [Notify; 2],
    requeues: Mutex<Requeues>,
    own_writes: Arc<OwnWrites>,
}

/// Requeues asked for by reconciles, one per machine, the earliest kept (as
/// the Controller's scheduler keeps them); a trigger in the meantime drops it.
#[derive(Default)]
struct Requeues {
    timers: DelayQueue<Key>,
    by_key: HashMap<Key, (delay_queue::Key, Instant)>,
}

impl Requeues {
    fn schedule(&mut self, key: Key, at: Instant) {
        if let Some((timer, when)) = self.by_key.get(&key) {
            if *when <= at {
                return;
            }
            self.timers.try_remove(timer);
        }
        let timer = self.timers.insert_at(key.clone(), at);
        self.by_key.insert(key, (timer, at));
    }

    fn cancel(&mut self, key: &Key) {
        if let Some((timer, _)) = self.by_key.remove(key) {
            self.timers.try_remove(&timer);
        }
    }

    /// The next machine whose requeue is due; pending until one is (an
    /// earlier one scheduled meanwhile wakes the caller).
    fn poll_due(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Key> {
        match self.timers.poll_expired(cx) {
            Poll::Ready(Some(due)) => {
                let key = due.into_inner();
                self.by_key.remove(&key);
                Poll::Ready(key)
            }
            // Empty: the waker is kept, and the next schedule wakes it.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}

/// A lock that a panicking holder did not spoil: every step leaves the
/// bookkeeping whole before anything can panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl MachineQueue {
    pub(crate) fn new(own_writes: Arc<OwnWrites>) -> Self {
        MachineQueue {
            lines: Mutex::default(),
            ready: [Notify::new(), Notify::new()],
            requeues: Mutex::default(),
            own_writes,
        }
    }

    /// The Controller's trigger of `machine`, as the cache has it now. A copy
    /// older than our own last write is dropped: that write's watch event is
    /// on its way and brings the machine back.
    pub(crate) fn offer(&self, machine: &Machine) {
        if !self.own_writes.outdate(machine) {
            self.add(machine);
        }
    }

    fn add(&self, machine: &Machine) {
        let key = ObjectRef::from_obj(machine);
        lock(&self.requeues).cancel(&key);
        if let Some(pool) = lock(&self.lines).add(key, Lane::of(machine)) {
            self.ready[pool.index()].notify_one();
        }
    }

    /// The next machine for a worker of `pool`, waiting for one; None once
    /// the queue is closed.
    async fn next(&self, pool: Pool) -> Option<Key> {
        loop {
            // Listening before looking: an offer in between still wakes us.
            let mut woken = std::pin::pin!(self.ready[pool.index()].notified());
            woken.as_mut().enable();
            {
                let mut lines = lock(&self.lines);
                if let Some(key) = lines.take(pool) {
                    return Some(key);
                }
                if lines.is_closed() {
                    return None;
                }
            }
            woken.await;
        }
    }

    /// `key`'s turn ended, asking for `next`; `machines` says what the machine
    /// is now if it was triggered meanwhile.
    fn done(&self, key: Key, next: Option<Duration>, machines: &Store<Machine>) {
        if lock(&self.lines).done(&key) {
            // Its requeue would be dropped by this trigger anyway.
            if let Some(machine) = machines.get(&key) {
                self.add(&machine);
            }
        } else if let Some(wait) = next {
            lock(&self.requeues).schedule(key, Instant::now() + wait);
        }
    }

    /// Machines whose requeue falls due go back in line, until aborted.
    async fn requeue_when_due(&self, machines: &Store<Machine>) {
        loop {
            let key = std::future::poll_fn(|cx| lock(&self.requeues).poll_due(cx)).await;
            // Gone meanwhile: nothing to do, as for the Controller.
            if let Some(machine) = machines.get(&key) {
                self.add(&machine);
            }
        }
    }

    /// No machine is handed out any more; workers end after their turn.
    fn close(&self) {
        lock(&self.lines).close();
        for ready in &self.ready {
            ready.notify_waiters();
        }
    }
}

/// The worker tasks of both pools and the requeue timer.
pub(crate) struct Workers {
    queue: Arc<MachineQueue>,
    workers: JoinSet<()>,
    timer: tokio::task::JoinHandle<()>,
}

impl Workers {
    /// `concurrency` workers per pool over `queue`, reconciling with `ctx`.
    pub(crate) fn start<D: Driver>(
        queue: Arc<MachineQueue>,
        concurrency: u16,
        ctx: Arc<Context<InstrumentedDriver<D>>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut workers = JoinSet::new();
        for pool in Pool::ALL {
            for _ in 0..concurrency.max(1) {
                let (queue, ctx, metrics) = (queue.clone(), ctx.clone(), metrics.clone());
                workers.spawn(async move {
                    while let Some(key) = queue.next(pool).await {
                        // Gone while it waited: skipped, as the Controller
                        // skips a key no longer in its store.
                        let next = match ctx.machines.get(&key) {
                            Some(machine) => turn(machine, ctx.clone(), &metrics).await,
                            None => None,
                        };
                        queue.done(key, next, &ctx.machines);
                    }
                });
            }
        }
        let timer = tokio::spawn({
            let (queue, machines) = (queue.clone(), ctx.machines.clone());
            async move { queue.requeue_when_due(&machines).await }
        });
        Workers {
            queue,
            workers,
            timer,
        }
    }

    /// Closes the queue and waits for the reconciles that run to end.
    pub(crate) async fn finish(mut self) {
        self.queue.close();
        while self.workers.join_next().await.is_some() {}
        self.timer.abort();
    }
}

/// One reconcile of `machine`, counted, through the error policy: when to
/// reconcile it again, if nothing comes first.
async fn turn<D: Driver>(
    machine: Arc<Machine>,
    ctx: Arc<Context<InstrumentedDriver<D>>>,
    metrics: &Metrics,
) -> Option<Duration> {
    let start = std::time::Instant::now();
    let work = metrics.queue.started(machine.name(), start);
    let result = AssertUnwindSafe(reconcile(machine.clone(), ctx.clone()))
        .catch_unwind()
        .await;
    metrics.queue.done(work, std::time::Instant::now());
    let result = match result {
        Ok(result) => result,
        Err(_) => {
            // A bug, not the machine's data: the panic hook printed where.
            // The other machines go on, and this one is tried again later
            // (as controller-runtime recovers a panicking reconcile).
            tracing::error!(machine = machine.name(), "the reconcile panicked");
            return Some(retry::LONG);
        }
    };
    let category = result.as_ref().err().map(|e| e.category().as_str());
    metrics.reconciled(category, start.elapsed());
    let action = result.unwrap_or_else(|error| retried(machine, &error, ctx, metrics));
    action.requeue_after()
}

/// The error policy, with the requeue counted as a retry by the queue's metrics.
fn retried<D>(
    machine: Arc<Machine>,
    error: &Error,
    ctx: Arc<Context<D>>,
    metrics: &Metrics,
) -> Action {
    metrics.queue.retried(machine.name(), error.retry_after());
    error_policy(machine, error, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Phase;

    fn machine(name: &str) -> Machine {
        let mut m = Machine::named(name);
        m.metadata.namespace = Some("ns".into());
        m.metadata.resource_version = Some("1".into());
        m
    }

    fn store_of(machines: &[&Machine]) -> Store<Machine> {
        let (store, mut writer) = kube::runtime::reflector::store();
        for m in machines {
            writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply((*m).clone()));
        }
        store
    }

    /// `queue.next(pool)`, failing the test if it takes a second: a waiter
    /// that is never served would otherwise hang it.
    async fn served(queue: &MachineQueue, pool: Pool) -> Option<Key> {
        tokio::time::timeout(Duration::from_secs(1), queue.next(pool))
            .await
            .expect("served within 1s")
    }

    #[tokio::test]
    async fn a_waiting_worker_wakes_for_its_pool_only() {
        let queue = Arc::new(MachineQueue::new(Arc::default()));
        let deletion_worker = tokio::spawn({
            let queue = queue.clone();
            async move { queue.next(Pool::Deletions).await }
        });
        let mut deleting = machine("old");
        deleting.metadata.deletion_timestamp = Some(crate::controller::status::now());
        queue.offer(&machine("new"));
        queue.offer(&deleting);
        let taken = tokio::time::timeout(Duration::from_secs(1), deletion_worker)
            .await
            .expect("a deletion worker is woken")
            .expect("no panic");
        assert_eq!(taken.map(|k| k.name), Some("old".to_string()));
        assert_eq!(
            served(&queue, Pool::Machines).await.map(|k| k.name),
            Some("new".into())
        );
    }

    #[tokio::test]
    async fn a_copy_older_than_our_last_write_is_not_queued() {
        let own_writes = Arc::new(OwnWrites::default());
        let mut written = machine("m");
        written.metadata.resource_version = Some("10".into());
        own_writes.record(&written);
        let queue = MachineQueue::new(own_writes);
        let mut stale = machine("m");
        stale.metadata.resource_version = Some("9".into());
        queue.offer(&stale);
        queue.close();
        assert_eq!(served(&queue, Pool::Machines).await, None);

        let queue = MachineQueue::new(Arc::new(OwnWrites::default()));
        queue.offer(&written);
        assert!(served(&queue, Pool::Machines).await.is_some());
    }

    #[tokio::test]
    async fn a_machine_triggered_while_it_ran_runs_again_in_its_new_lane() {
        let queue = MachineQueue::new(Arc::default());
        let m = machine("m");
        queue.offer(&m);
        let key = served(&queue, Pool::Machines).await.expect("queued");
        // Deleted while its turn ran: the trigger waits for the turn's end.
        let mut deleting = m.clone();
        deleting.metadata.deletion_timestamp = Some(crate::controller::status::now());
        queue.offer(&deleting);
        let machines = store_of(&[&deleting]);
        queue.done(key, Some(Duration::from_secs(3600)), &machines);
        let again = served(&queue, Pool::Deletions).await;
        assert_eq!(again.map(|k| k.name), Some("m".into()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_requeue_falls_due_unless_a_trigger_comes_first() {
        let queue = Arc::new(MachineQueue::new(Arc::default()));
        let mut joining = machine("j");
        joining.spec.provider_id = "machine-j".into();
        joining.status.current_status.phase = Some(Phase::Pending);
        let machines = store_of(&[&joining]);
        let timer = tokio::spawn({
            let (queue, machines) = (queue.clone(), machines.clone());
            async move { queue.requeue_when_due(&machines).await }
        });

        queue.offer(&joining);
        let key = served(&queue, Pool::Machines).await.expect("queued");
        queue.done(key, Some(Duration::from_secs(30)), &machines);
        let waited = tokio::time::timeout(Duration::from_secs(29), queue.next(Pool::Machines));
        assert!(waited.await.is_err(), "not due before 30s");
        let due = tokio::time::timeout(Duration::from_secs(2), queue.next(Pool::Machines)).await;
        let key = due.expect("due at 30s").expect("open");

        // Requeued again, then triggered: the trigger's turn is the only one.
        queue.done(key, Some(Duration::from_secs(30)), &machines);
        queue.offer(&joining);
        let key = served(&queue, Pool::Machines).await.expect("triggered");
        queue.done(key, None, &machines);
        let later = tokio::time::timeout(Duration::from_secs(120), queue.next(Pool::Machines));
        assert!(later.await.is_err(), "the requeue went with the trigger");
        timer.abort();
    }

    #[tokio::test]
    async fn closing_ends_the_waiting_workers() {
        let queue = Arc::new(MachineQueue::new(Arc::default()));
        let waiter = tokio::spawn({
            let queue = queue.clone();
            async move { queue.next(Pool::Machines).await }
        });
        tokio::task::yield_now().await;
        queue.close();
        let ended = tokio::time::timeout(Duration::from_secs(1), waiter).await;
        assert_eq!(ended.expect("woken").expect("no panic"), None);
    }
}
