// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Chaos: a record of every object's UIDs while controllers are killed and
//! started again, and the storm itself.
//!
//! A watch that loses its place lists again, and kube's watcher reports only
//! what the new list holds: an object deleted in the gap would simply never
//! show its deletion. So a relist is compared with what the record knew, not
//! trusted: every name that was present and is missing from the new list is
//! counted as deleted (and as found in a gap), and the test says how many
//! relists it saw.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use rand::Rng;

use super::wait::Watchable;

/// What a [`Record`] saw of one object name.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// Every UID the name had, in order.
    pub uids: Vec<String>,
    /// Times it was seen deleted (by a watch event or missing from a relist).
    pub deletions: usize,
    /// When it was first seen deleted.
    pub deleted_at: Option<Instant>,
    /// Deletions found only by comparing a relist.
    pub gap_deletions: usize,
    /// A summary of its last state (see [`Record::start`]).
    pub last: String,
    /// Every summary it had, in order, without repeats.
    pub history: Vec<String>,
}

/// Records every object a watch sees, from the moment it starts until dropped.
pub struct Record {
    seen: Arc<Mutex<BTreeMap<String, Seen>>>,
    task: tokio::task::JoinHandle<()>,
    synced: tokio::sync::watch::Receiver<bool>,
    /// Lists after the first: the watch lost its place and started again.
    relists: Arc<AtomicUsize>,
}

impl Seen {
    fn deleted(&mut self, at: Instant) {
        self.deletions += 1;
        self.deleted_at.get_or_insert(at);
    }
}

impl Record {
    /// Watches `api` (objects `keep` selects), summarising each state with `summary`.
    pub fn start<K: Watchable>(
        api: Api<K>,
        config: watcher::Config,
        keep: impl Fn(&K) -> bool + Send + 'static,
        summary: impl Fn(&K) -> String + Send + 'static,
    ) -> Record {
        let seen: Arc<Mutex<BTreeMap<String, Seen>>> = Default::default();
        let (tx, synced) = tokio::sync::watch::channel(false);
        let log = seen.clone();
        let relists = Arc::new(AtomicUsize::new(0));
        let relisted = relists.clone();
        let task = tokio::spawn(async move {
            let mut events = watcher(api, config).boxed();
            // The names that exist as far as the record knows, and those a list
            // in progress has shown so far.
            let mut present: BTreeSet<String> = BTreeSet::new();
            let mut listing: BTreeSet<String> = BTreeSet::new();
            let mut first_list = true;
            while let Some(event) = events.next().await {
                let Ok(event) = event else { continue };
                let now = Instant::now();
                let mut seen = log.lock().unwrap();
                match event {
                    watcher::Event::Init => listing.clear(),
                    watcher::Event::Apply(o) | watcher::Event::InitApply(o) if keep(&o) => {
                        let name = o.name_any();
                        present.insert(name.clone());
                        listing.insert(name.clone());
                        let entry = seen.entry(name).or_default();
                        let uid = o.uid().unwrap_or_default();
                        if entry.uids.last() != Some(&uid) {
                            entry.uids.push(uid);
                        }
                        entry.last = summary(&o);
                        if entry.history.last() != Some(&entry.last) {
                            entry.history.push(entry.last.clone());
                        }
                    }
                    watcher::Event::Delete(o) if keep(&o) => {
                        present.remove(&o.name_any());
                        seen.entry(o.name_any()).or_default().deleted(now);
                    }
                    watcher::Event::InitDone => {
                        if !first_list {
                            relisted.fetch_add(1, Ordering::Relaxed);
                            for gone in present.difference(&listing) {
                                let entry = seen.entry(gone.clone()).or_default();
                                entry.deleted(now);
                                entry.gap_deletions += 1;
                            }
                        }
                        present = std::mem::take(&mut listing);
                        first_list = false;
                        let _ = tx.send(true);
                    }
                    _ => {}
                }
            }
        });
        Record {
            seen,
            task,
            synced,
            relists,
        }
    }

    /// Waits until the watch has listed what exists.
    pub async fn synced(&self) {
        let mut synced = self.synced.clone();
        tokio::time::timeout(super::TIMEOUT, synced.wait_for(|s| *s))
            .await
            .expect("the record's watch lists within the timeout")
            .expect("the record's watch runs");
    }

    pub fn get(&self) -> BTreeMap<String, Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Names that had more than one UID, or were deleted: "made twice" or "lost".
    pub fn replaced_or_deleted(&self) -> Vec<(String, Seen)> {
        self.get()
            .into_iter()
            .filter(|(_, s)| s.uids.len() > 1 || s.deletions > 0)
            .collect()
    }

    /// Names that had more than one UID.
    pub fn replaced(&self) -> Vec<(String, Seen)> {
        self.get()
            .into_iter()
            .filter(|(_, s)| s.uids.len() > 1)
            .collect()
    }

    pub fn names(&self) -> BTreeSet<String> {
        self.seen.lock().unwrap().keys().cloned().collect()
    }

    /// How many times the watch lost its place and listed again.
    pub fn relists(&self) -> usize {
        self.relists.load(Ordering::Relaxed)
    }

    /// Deletions that only the comparison of a relist found.
    pub fn gap_deletions(&self) -> usize {
        self.get().values().map(|s| s.gap_deletions).sum()
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A random duration in `[lo, hi)`: the storm's rhythm (not a wait for anything).
pub fn between(lo: Duration, hi: Duration) -> Duration {
    let (lo, hi) = (lo.as_millis() as u64, hi.as_millis() as u64);
    Duration::from_millis(rand::rng().random_range(lo..hi.max(lo + 1)))
}

/// How a controller is stopped.
#[derive(Clone, Copy, Debug)]
pub enum Signal {
    Term,
    Kill,
}

impl Signal {
    pub fn random() -> Signal {
        if rand::rng().random_bool(0.5) {
            Signal::Term
        } else {
            Signal::Kill
        }
    }

    /// Sends the signal to `child` and waits until it has exited.
    pub async fn stop(self, child: &mut tokio::process::Child) {
        match (self, child.id()) {
            (Signal::Term, Some(pid)) => {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            _ => {
                let _ = child.start_kill();
            }
        }
        // A SIGTERM lets in-flight reconciles finish; a stuck one is killed.
        if tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .is_err()
        {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

/// How many times a chaos test kills or restarts: `CHAOS_KILLS` (`make chaos`)
/// or the default.
pub fn kills(default: usize) -> usize {
    std::env::var("CHAOS_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// The scale of a chaos test: `CHAOS_MACHINES` (`make chaos`) or the default.
pub fn machines(default: usize) -> usize {
    std::env::var("CHAOS_MACHINES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}
