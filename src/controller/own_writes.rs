// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The resourceVersion of our last write to each machine, so that a reconcile
//! can tell a cached copy that does not show that write yet.
//!
//! Every step of creation and deletion writes the machine and moves on when the
//! write comes back through the watch. A reconcile started meanwhile (by a Pod or
//! Node event) would repeat the step from the stale copy: its requests are wasted
//! and its status write fails with a conflict. The watch event of our own write
//! is bound to come and trigger a reconcile, so the stale one can simply stop.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::api::Machine;

#[derive(Default)]
pub struct OwnWrites(Mutex<HashMap<String, u64>>);

/// The API server's resourceVersions are etcd revisions; anything else is not
/// compared, so that an unknown format never stalls a machine.
fn version(machine: &Machine) -> Option<u64> {
    machine.metadata.resource_version.as_deref()?.parse().ok()
}

impl OwnWrites {
    /// Remembers `written`, the machine as the API server returned it.
    pub fn record(&self, written: &Machine) {
        if let Some(v) = version(written) {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            let entry = map.entry(written.name().to_string()).or_insert(v);
            *entry = (*entry).max(v);
        }
    }

    /// Forgets a machine that is gone or no longer ours.
    pub fn forget(&self, name: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// True when `cached` is older than our last write to it.
    pub fn outdate(&self, cached: &Machine) -> bool {
        let Some(cached_version) = version(cached) else {
            return false;
        };
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(cached.name())
            .is_some_and(|written| *written > cached_version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(name: &str, rv: &str) -> Machine {
        let mut m = Machine::default();
        m.metadata.name = Some(name.into());
        m.metadata.resource_version = Some(rv.into());
        m
    }

    #[test]
    fn a_copy_older_than_our_write_is_stale() {
        let writes = OwnWrites::default();
        assert!(!writes.outdate(&machine("m1", "10")));
        writes.record(&machine("m1", "12"));
        assert!(writes.outdate(&machine("m1", "10")));
        assert!(!writes.outdate(&machine("m1", "12")));
        // Someone else wrote after us: the copy is newer, not stale.
        assert!(!writes.outdate(&machine("m1", "15")));
        assert!(!writes.outdate(&machine("m2", "1")));
    }

    #[test]
    fn keeps_the_newest_write_and_forgets() {
        let writes = OwnWrites::default();
        writes.record(&machine("m1", "12"));
        writes.record(&machine("m1", "11"));
        assert!(writes.outdate(&machine("m1", "11")));
        writes.forget("m1");
        assert!(!writes.outdate(&machine("m1", "11")));
    }

    #[test]
    fn unknown_versions_are_never_stale() {
        let writes = OwnWrites::default();
        writes.record(&machine("m1", "12"));
        assert!(!writes.outdate(&machine("m1", "opaque")));
        writes.record(&machine("m2", "opaque"));
        assert!(!writes.outdate(&machine("m2", "1")));
    }
}
