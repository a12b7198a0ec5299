// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Meltdown protection, serialised: of the machines of one MachineDeployment,
//! only one at a time may be marked Failed (MCM's `tryMarkingMachineFailed`
//! with its per-deployment permit). Without the permit, machines whose Nodes die
//! together time out together, and concurrent reconciles would each read the
//! others as merely Unknown and all mark themselves Failed, so that MCM replaces
//! the whole deployment at once.
//!
//! The holder decides again under the permit, from the cache, writes, and keeps
//! the permit until the cache shows its write, so that the next holder counts it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// How long a reconcile waits for a deployment's permit before it retries later.
pub(crate) const PERMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the holder waits for the cache to show its write.
pub(crate) const CACHE_TIMEOUT: Duration = Duration::from_secs(10);

/// One permit per MachineDeployment.
#[derive(Debug, Default)]
pub(crate) struct Permits(Mutex<HashMap<String, Arc<AsyncMutex<()>>>>);

impl Permits {
    /// The permit of `deployment`, or `None` after [`PERMIT_TIMEOUT`].
    pub(crate) async fn take(&self, deployment: &str) -> Option<OwnedMutexGuard<()>> {
        self.take_within(deployment, PERMIT_TIMEOUT).await
    }

    async fn take_within(
        &self,
        deployment: &str,
        timeout: Duration,
    ) -> Option<OwnedMutexGuard<()>> {
        let lock = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(deployment.to_string())
            .or_default()
            .clone();
        tokio::time::timeout(timeout, lock.lock_owned()).await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_per_deployment_others_wait_or_give_up() {
        let permits = Arc::new(Permits::default());
        let short = Duration::from_millis(50);
        let first = permits.take_within("md-a", short).await.expect("free");
        // Another deployment is not held up.
        assert!(permits.take_within("md-b", short).await.is_some());
        // The same deployment waits, and gives up after the timeout.
        assert!(permits.take_within("md-a", short).await.is_none());
        // A waiter gets it once the holder lets go.
        let waiter = {
            let permits = permits.clone();
            tokio::spawn(async move {
                permits
                    .take_within("md-a", Duration::from_secs(10))
                    .await
                    .is_some()
            })
        };
        drop(first);
        assert!(waiter.await.unwrap());
    }
}
