// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The resourceVersion of our last write to each machine, so that a reconcile
//! can tell a cached copy that does not show that write yet.
//!
//! Creation and deletion write the machine and move on when the write comes
//! back through the watch. A reconcile started meanwhile (by a Pod or
//! Node event) would repeat the step from the stale copy: its requests are wasted
//! and its status write fails with a conflict. The watch event of our own write
//! is bound to come and trigger a reconcile, so the stale one can simply stop.
//!
//! The same holds for the class finalizer a machine adds: [`Finalized`].

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::api::Machine;

#[derive(Default)]
pub(crate) struct OwnWrites(Mutex<Written>);

#[derive(Default)]
struct Written {
    /// Our last write's resourceVersion, by machine name.
    versions: HashMap<String, u64>,
    /// UIDs of machines whose last finalizer we removed.
    removed: HashSet<String>,
}

/// The API server's resourceVersions are etcd revisions; anything else is not
/// compared, so that an unknown format never stalls a machine.
fn version(machine: &Machine) -> Option<u64> {
    machine.metadata.resource_version.as_deref()?.parse().ok()
}

impl OwnWrites {
    fn with<T>(&self, f: impl FnOnce(&mut Written) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Remembers `written`, the machine as the API server returned it.
    pub(crate) fn record(&self, written: &Machine) {
        if let Some(v) = version(written) {
            self.with(|w| {
                let entry = w.versions.entry(written.name().to_string()).or_insert(v);
                *entry = (*entry).max(v);
            });
        }
    }

    /// Remembers that our write removed the last finalizer of `machine`, so
    /// that every cached copy of it is stale until the watch reports the
    /// deletion. (The API server answers such a write with the object as it
    /// was before, so its resourceVersion tells nothing.) Kept by UID: a
    /// machine made again under the same name is another.
    pub(crate) fn record_removed(&self, machine: &Machine) {
        if let Some(uid) = &machine.metadata.uid {
            self.with(|w| w.removed.insert(uid.clone()));
        }
    }

    /// Forgets a machine that is gone or no longer ours.
    pub(crate) fn forget(&self, machine: &Machine) {
        self.with(|w| {
            w.versions.remove(machine.name());
            if let Some(uid) = &machine.metadata.uid {
                w.removed.remove(uid);
            }
        });
    }

    /// True when `cached` is older than our last write to it.
    pub(crate) fn outdate(&self, cached: &Machine) -> bool {
        self.with(|w| {
            if cached
                .metadata
                .uid
                .as_ref()
                .is_some_and(|uid| w.removed.contains(uid))
            {
                return true;
            }
            let Some(cached_version) = version(cached) else {
                return false;
            };
            w.versions
                .get(cached.name())
                .is_some_and(|written| *written > cached_version)
        })
    }
}

/// Classes (by UID) that got our finalizer by our write, a machine's or the
/// class upkeep's. A cached copy of one without it is older than that write,
/// so no machine writes it again, and the upkeep asks the live class before
/// it does (someone may have removed it since: it puts it back on a class in
/// use). Held across that one write, so that the other writers wait for it;
/// shared by the machines and the upkeep, so that their first writes never
/// meet (a conflict in one of two runs of 20 machines before).
#[derive(Clone, Default)]
pub(crate) struct Finalized(pub(crate) std::sync::Arc<tokio::sync::Mutex<HashSet<String>>>);

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
        // Our write removed the last finalizer: every copy is stale until the
        // deletion is seen.
        let mut removed = machine("m1", "12");
        removed.metadata.uid = Some("u1".into());
        writes.record_removed(&removed);
        let mut later = machine("m1", "99");
        later.metadata.uid = Some("u1".into());
        assert!(writes.outdate(&later));
        // Made again under the same name: another machine.
        let mut again = machine("m1", "100");
        again.metadata.uid = Some("u2".into());
        assert!(!writes.outdate(&again));
        writes.forget(&removed);
        assert!(!writes.outdate(&later));
    }

    #[test]
    fn keeps_the_newest_write_and_forgets() {
        let writes = OwnWrites::default();
        writes.record(&machine("m1", "12"));
        writes.record(&machine("m1", "11"));
        assert!(writes.outdate(&machine("m1", "11")));
        writes.forget(&machine("m1", "12"));
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
