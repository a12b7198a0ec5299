// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The workers that run reconciles, in two pools like MCM's two queues.

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

    /// A worker for `machine`, held until dropped.
    pub async fn worker(&self, machine: &Machine) -> Option<tokio::sync::SemaphorePermit<'_>> {
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
}
