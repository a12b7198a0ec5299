// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! What a machine's reconcile asks for next.

use std::time::Duration;

/// kube-runtime's `Action`, with the wait readable: our own queue
/// ([`super::workers`]), not the Controller's scheduler, runs the machine
/// reconciles and schedules their requeues, and kube-runtime keeps the wait of
/// its `Action` private.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Action {
    requeue_after: Option<Duration>,
}

impl Action {
    /// Reconcile again after `wait` unless a change comes first.
    pub(crate) const fn requeue(wait: Duration) -> Self {
        Action {
            requeue_after: Some(wait),
        }
    }

    /// Reconcile again only when a change comes.
    pub(crate) const fn await_change() -> Self {
        Action {
            requeue_after: None,
        }
    }

    pub(crate) const fn requeue_after(&self) -> Option<Duration> {
        self.requeue_after
    }
}
