// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The workers that run reconciles, in two pools like MCM's two queues.

use std::sync::Arc;

use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::SemaphorePermit;

use super::own_writes::OwnWrites;
use crate::api::Machine;

/// MCM's two queues, each with `--concurrent-syncs` workers: machines being
/// deleted (its termination queue) and all others. A machine waits for a
/// worker of its own pool, so that deletions (drains can take long) never hold
/// back creations, nor a wave of creations the deletions. The Controller still
/// runs one reconcile per machine at a time.
pub struct WorkerPools {
    machines: tokio::sync::Semaphore,
    deletions: tokio::sync::Semaphore,
}

impl WorkerPools {
    pub fn new(concurrency: u16) -> Self {
        let n = usize::from(concurrency.max(1));
        WorkerPools {
            machines: tokio::sync::Semaphore::new(n),
            deletions: tokio::sync::Semaphore::new(n),
        }
    }

    /// The copy of `machine` a reconcile runs with, and the worker it runs on.
    ///
    /// A copy older than our own last write gets no worker: `reconcile` skips
    /// it at once. Waiting for one, it would keep its place in line behind
    /// every creation still to come, and the Controller holds back the
    /// machine's next trigger until it is done: at N=1000 in `make bench`,
    /// 20 s (median) between a Node's event and its machine's reconcile, by
    /// the controller's debug log. Any other copy waits for a worker, and then
    /// what the machine has become meanwhile is what counts: None if it is
    /// gone (as the Controller skips a key no longer in the store), since its
    /// old copy would repeat a finished deletion.
    pub async fn turn(
        &self,
        machine: Arc<Machine>,
        own_writes: &OwnWrites,
        machines: &Store<Machine>,
    ) -> Option<(Arc<Machine>, Option<SemaphorePermit<'_>>)> {
        if own_writes.outdate(&machine) {
            return Some((machine, None));
        }
        let worker = self.worker(&machine).await;
        let now = machines.get(&ObjectRef::from_obj(&*machine))?;
        Some((now, worker))
    }

    /// A worker for `machine`, held until dropped.
    pub async fn worker(&self, machine: &Machine) -> Option<SemaphorePermit<'_>> {
        let pool = if machine.is_deleting() {
            &self.deletions
        } else {
            &self.machines
        };
        // The semaphores are never closed.
        pool.acquire().await.ok()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn deletions_and_other_machines_have_workers_of_their_own() {
        let pools = WorkerPools::new(1);
        let creating = Machine::named("new");
        let mut deleting = Machine::named("old");
        deleting.metadata.deletion_timestamp = Some(crate::controller::status::now());
        let busy = pools.worker(&creating).await;
        assert!(busy.is_some());
        // The one machine worker is taken: a deletion still gets its own.
        let deletion = tokio::time::timeout(Duration::from_secs(1), pools.worker(&deleting)).await;
        assert!(matches!(deletion, Ok(Some(_))));
        // A second creation waits for the first.
        let other = Machine::named("new2");
        let waited = tokio::time::timeout(Duration::from_millis(50), pools.worker(&other)).await;
        assert!(waited.is_err(), "the machine pool has one worker");
        drop(busy);
        assert!(pools.worker(&other).await.is_some());
    }

    fn at_version(name: &str, version: &str) -> Machine {
        let mut m = Machine::named(name);
        m.metadata.resource_version = Some(version.into());
        m
    }

    #[tokio::test]
    async fn a_copy_older_than_our_last_write_takes_no_worker() {
        let pools = WorkerPools::new(1);
        let _busy = pools.worker(&Machine::named("creating")).await;
        let (machines, mut writer) = kube::runtime::reflector::store();
        let own_writes = OwnWrites::default();
        own_writes.record(&at_version("m", "10"));

        // The cache still shows the machine before our write: skipped at once.
        let stale = Arc::new(at_version("m", "9"));
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply((*stale).clone()));
        let mut turn = std::pin::pin!(pools.turn(stale, &own_writes, &machines));
        match futures::poll!(turn.as_mut()) {
            std::task::Poll::Ready(Some((copy, worker))) => {
                assert_eq!(copy.metadata.resource_version.as_deref(), Some("9"));
                assert!(worker.is_none());
            }
            other => panic!("a stale copy waited: {other:?}"),
        }

        // Once the write is in the cache, the machine waits for the worker.
        let fresh = Arc::new(at_version("m", "10"));
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply((*fresh).clone()));
        let mut turn = std::pin::pin!(pools.turn(fresh, &own_writes, &machines));
        assert!(futures::poll!(turn.as_mut()).is_pending());
    }

    #[tokio::test]
    async fn a_machine_gone_while_it_waited_is_not_reconciled() {
        let pools = WorkerPools::new(1);
        let (machines, _writer) = kube::runtime::reflector::store::<Machine>();
        let gone = Arc::new(at_version("gone", "3"));
        let turn = pools.turn(gone, &OwnWrites::default(), &machines).await;
        assert!(turn.is_none());
    }
}
