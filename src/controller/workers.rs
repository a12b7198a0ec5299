// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The workers that run reconciles, in two pools like MCM's two queues, with
//! machines that wait for their Node served first.

use std::sync::Arc;

use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::own_writes::OwnWrites;
use crate::api::Machine;
use crate::contract::Phase;

/// MCM's two queues, each with `--concurrent-syncs` workers: machines being
/// deleted (its termination queue) and all others. A machine waits for a
/// worker of its own pool, so that deletions (drains can take long) never hold
/// back creations, nor a wave of creations the deletions. The Controller still
/// runs one reconcile per machine at a time.
///
/// In the machine pool, a machine whose VM exists and whose Node is awaited
/// ([`Lane::Joining`]) goes before the others: the others enter the pool's line
/// one at a time. A wave of creations otherwise holds back every join until the
/// last creation is through: at N=1000 in `make bench` with no join delay
/// (the stand-in registers a Node as soon as its Pod runs, and the first Pods
/// were applied in the first second), no join was written before second 41,
/// when the last Pods were applied; all machines Running at 66 s, 16 s after
/// the last Node was Ready. Joining machines are never more than the creations before them,
/// each woken by a few events of its VM and its Node, so creations keep
/// moving between them.
pub(crate) struct WorkerPools {
    machines: Semaphore,
    deletions: Semaphore,
    /// Held by the one [`Lane::Other`] machine that waits in the machine pool's
    /// line (tokio's semaphores serve waiters first come, first served).
    others: Semaphore,
}

/// Where a machine waits for a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
}

impl WorkerPools {
    pub(crate) fn new(concurrency: u16) -> Self {
        let n = usize::from(concurrency.max(1));
        WorkerPools {
            machines: Semaphore::new(n),
            deletions: Semaphore::new(n),
            others: Semaphore::new(1),
        }
    }

    /// The copy of `machine` a reconcile runs with, and the worker it runs on.
    ///
    /// A copy older than our own last write gets no worker: `reconcile` skips
    /// it at once. Waiting for one, it would keep its place in line, and the
    /// Controller holds back the machine's next trigger until it is done. Any
    /// other copy waits for a worker of the lane of what the machine is now,
    /// and then what it has become meanwhile is what counts: None if it is
    /// gone (as the Controller skips a key no longer in the store), since its
    /// old copy would repeat a finished deletion.
    pub(crate) async fn turn(
        &self,
        machine: Arc<Machine>,
        own_writes: &OwnWrites,
        machines: &Store<Machine>,
    ) -> Option<(Arc<Machine>, Option<SemaphorePermit<'_>>)> {
        if own_writes.outdate(&machine) {
            return Some((machine, None));
        }
        let key = ObjectRef::from_obj(&*machine);
        let worker = self.worker(&*machines.get(&key)?).await;
        let now = machines.get(&key)?;
        Some((now, worker))
    }

    /// A worker for `machine`, held until dropped.
    pub(crate) async fn worker(&self, machine: &Machine) -> Option<SemaphorePermit<'_>> {
        // The semaphores are never closed.
        match Lane::of(machine) {
            Lane::Deletion => self.deletions.acquire().await.ok(),
            Lane::Joining => self.machines.acquire().await.ok(),
            Lane::Other => {
                // A joining machine that comes later waits behind this one
                // only, not behind every creation still to come.
                let _in_line = self.others.acquire().await.ok()?;
                self.machines.acquire().await.ok()
            }
        }
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

    /// `worker`, failing the test if it takes a second: a waiter that is
    /// never served would otherwise hang it.
    async fn served<'a>(
        worker: impl Future<Output = Option<SemaphorePermit<'a>>>,
    ) -> SemaphorePermit<'a> {
        match tokio::time::timeout(Duration::from_secs(1), worker).await {
            Ok(Some(permit)) => permit,
            Ok(None) => panic!("no worker: a semaphore closed"),
            Err(_) => panic!("not served within 1s"),
        }
    }

    #[tokio::test]
    async fn a_joining_machine_waits_behind_one_newcomer_at_most() {
        let pools = WorkerPools::new(1);
        let busy = served(pools.worker(&Machine::named("busy"))).await;
        let (new1, new2) = (Machine::named("new1"), Machine::named("new2"));
        let joining = pending_with_vm("joining");
        let mut first = std::pin::pin!(pools.worker(&new1));
        let mut second = std::pin::pin!(pools.worker(&new2));
        let mut join = std::pin::pin!(pools.worker(&joining));
        // In this order they ask; every one waits.
        assert!(futures::poll!(first.as_mut()).is_pending());
        assert!(futures::poll!(second.as_mut()).is_pending());
        assert!(futures::poll!(join.as_mut()).is_pending());

        drop(busy);
        // The newcomer already in line goes first.
        let first = served(first).await;
        assert!(futures::poll!(second.as_mut()).is_pending());
        drop(first);
        let joined = served(join).await;
        assert!(
            futures::poll!(second.as_mut()).is_pending(),
            "the second newcomer asked first but waits for the joining machine"
        );
        drop(joined);
        drop(served(second).await);
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
