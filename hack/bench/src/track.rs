// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Watch-based bookkeeping: which objects of a kind exist ([`Tracker`]) and when
//! each object first reached a stage ([`Progress`]). Waits end on a watch event or
//! a deadline, never on a sleep.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};

/// The names of the objects of one kind that match a filter, kept by a watch.
pub struct Tracker {
    pub kind: &'static str,
    names: Arc<Mutex<HashSet<String>>>,
    count: watch::Receiver<usize>,
    synced: watch::Receiver<bool>,
    /// Watch errors seen (the watch retries with backoff).
    pub errors: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Tracker {
    /// Watches `api` (with `config`), counting the objects for which `matches`
    /// holds, and calls `observe` with every object as it arrives.
    pub fn start<K>(
        kind: &'static str,
        api: Api<K>,
        config: watcher::Config,
        matches: impl Fn(&K) -> bool + Send + Sync + 'static,
        observe: impl Fn(&K, Instant) + Send + Sync + 'static,
    ) -> Self
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + Hash + Clone,
    {
        let names = Arc::new(Mutex::new(HashSet::new()));
        let (count_tx, count) = watch::channel(0);
        let (synced_tx, synced) = watch::channel(false);
        let errors = Arc::new(AtomicU64::new(0));
        let task = {
            let (names, errors) = (names.clone(), errors.clone());
            tokio::spawn(async move {
                let mut events = watcher(api, config).default_backoff().boxed();
                let mut relisted: Option<HashSet<String>> = None;
                while let Some(event) = events.next().await {
                    let now = Instant::now();
                    let mut set = names.lock().unwrap_or_else(|e| e.into_inner());
                    match event {
                        Ok(watcher::Event::Apply(o)) => {
                            observe(&o, now);
                            if matches(&o) {
                                set.insert(o.name_any());
                            } else {
                                set.remove(&o.name_any());
                            }
                        }
                        Ok(watcher::Event::Delete(o)) => {
                            set.remove(&o.name_any());
                        }
                        Ok(watcher::Event::Init) => relisted = Some(HashSet::new()),
                        Ok(watcher::Event::InitApply(o)) => {
                            observe(&o, now);
                            if matches(&o) {
                                relisted.get_or_insert_default().insert(o.name_any());
                            }
                        }
                        Ok(watcher::Event::InitDone) => {
                            *set = relisted.take().unwrap_or_default();
                            let _ = synced_tx.send(true);
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    let n = set.len();
                    count_tx.send_if_modified(|c| std::mem::replace(c, n) != n);
                }
            })
        };
        Tracker {
            kind,
            names,
            count,
            synced,
            errors,
            task,
        }
    }

    /// Waits for the watch's first full list.
    pub async fn synced(&self, deadline: Instant) -> bool {
        let mut synced = self.synced.clone();
        matches!(
            timeout_at(deadline, synced.wait_for(|s| *s)).await,
            Ok(Ok(_))
        )
    }

    pub fn count(&self) -> usize {
        *self.count.borrow()
    }

    /// Waits until no matching object is left; returns when that was, or `None`
    /// at the deadline.
    pub async fn gone(&self, deadline: Instant) -> Option<Instant> {
        let mut count = self.count.clone();
        match timeout_at(deadline, count.wait_for(|c| *c == 0)).await {
            Ok(Ok(_)) => Some(Instant::now()),
            _ => None,
        }
    }

    /// Up to `max` names of the matching objects, sorted.
    pub fn names(&self, max: usize) -> Vec<String> {
        let set = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = set.iter().cloned().collect();
        names.sort();
        names.truncate(max);
        names
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// When each object was started and when it first reached each of two stages
/// (machines: Pending, Running; bare Pods: scheduled, Running).
#[derive(Default)]
pub struct Progress {
    started: Mutex<HashMap<String, Instant>>,
    reached: Mutex<[HashMap<String, Instant>; 2]>,
    failed: Mutex<BTreeSet<(String, String)>>,
    counts: watch::Sender<[usize; 2]>,
}

impl Progress {
    pub fn new() -> Arc<Self> {
        Arc::new(Progress::default())
    }

    pub fn start(&self, name: &str, at: Instant) {
        self.started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), at);
    }

    /// Records that `name` reached `stage` at `at` (the first time only). A later
    /// stage implies the earlier ones: a watch that relisted may skip a state.
    pub fn reach(&self, stage: usize, name: &str, at: Instant) {
        let mut reached = self.reached.lock().unwrap_or_else(|e| e.into_inner());
        let mut changed = false;
        for s in 0..=stage {
            if !reached[s].contains_key(name) {
                reached[s].insert(name.to_string(), at);
                changed = true;
            }
        }
        if changed {
            let counts = [reached[0].len(), reached[1].len()];
            self.counts.send_replace(counts);
        }
    }

    /// Records that `name` was seen in a failure state (`what`).
    pub fn fail(&self, name: &str, what: &str) {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((name.to_string(), what.to_string()));
    }

    pub fn failures(&self) -> Vec<(String, String)> {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    pub fn reached_count(&self, stage: usize) -> usize {
        self.counts.borrow()[stage]
    }

    /// Waits until `n` objects reached `stage`; false at the deadline.
    pub async fn wait(&self, stage: usize, n: usize, deadline: Instant) -> bool {
        let mut counts = self.counts.subscribe();
        matches!(
            timeout_at(deadline, counts.wait_for(|c| c[stage] >= n)).await,
            Ok(Ok(_))
        )
    }

    /// Waits until `name` reached `stage`: when it did, or None at the deadline.
    pub async fn reached_by(&self, stage: usize, name: &str, deadline: Instant) -> Option<Instant> {
        // Subscribed before the first look, so that no reach between look and wait is missed.
        let mut counts = self.counts.subscribe();
        loop {
            if let Some(at) =
                self.reached.lock().unwrap_or_else(|e| e.into_inner())[stage].get(name)
            {
                return Some(*at);
            }
            if !matches!(timeout_at(deadline, counts.changed()).await, Ok(Ok(()))) {
                return None;
            }
        }
    }

    /// When the last object reached `stage`.
    pub fn last(&self, stage: usize) -> Option<Instant> {
        let reached = self.reached.lock().unwrap_or_else(|e| e.into_inner());
        reached[stage].values().max().copied()
    }

    /// Seconds from start to `stage`, for every object that has both.
    pub fn latencies(&self, stage: usize) -> Vec<f64> {
        let started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        let reached = self.reached.lock().unwrap_or_else(|e| e.into_inner());
        reached[stage]
            .iter()
            .filter_map(|(name, at)| {
                let start = started.get(name)?;
                Some(at.saturating_duration_since(*start).as_secs_f64())
            })
            .collect()
    }
}

/// Seconds from `t0` until the last of `n` objects reached `stage`, if all did.
pub fn all_reached(progress: &Progress, stage: usize, n: usize, t0: Instant) -> Option<f64> {
    if progress.reached_count(stage) < n {
        return None;
    }
    let last = progress.last(stage)?;
    Some(last.saturating_duration_since(t0).as_secs_f64())
}
