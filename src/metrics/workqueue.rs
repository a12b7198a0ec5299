// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! `mcm_workqueue_*`, the client-go workqueue metrics MCM exports (Gardener's
//! ServiceMonitor keeps them, MCM's dashboard plots them), for our one queue,
//! `name="machine"`.
//!
//! kube-runtime's scheduler keeps its queue to itself, so the queue is observed
//! from outside, at the same points client-go's workqueue counts: an *add* is
//! every trigger of a machine (a watch event mapped to it, a resync, an error
//! requeue when it falls due); a machine is *waiting* from its first add until
//! its reconcile starts (further adds while it waits are merged, as in the
//! scheduler); *work* is a reconcile. Depth, unfinished work and the longest
//! running reconcile are computed at scrape time.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// The queue's name label.
pub(crate) const QUEUE: &str = "machine";

#[derive(Debug, Default)]
struct State {
    /// Machines waiting, since when they were (or will be) due.
    waiting: HashMap<String, Instant>,
    /// Reconciles running, by a sequence number, since when.
    running: HashMap<u64, Instant>,
    next: u64,
}

/// The queue's counters and what is in it now.
#[derive(Debug)]
pub struct WorkQueue {
    state: Mutex<State>,
    adds: Counter,
    retries: Counter,
    queue_duration: Histogram,
    work_duration: Histogram,
}

impl Default for WorkQueue {
    fn default() -> Self {
        // client-go's buckets: 1e-8 s to 10 s by factors of 10.
        let buckets = || exponential_buckets(1e-8, 10.0, 10);
        WorkQueue {
            state: Mutex::default(),
            adds: Counter::default(),
            retries: Counter::default(),
            queue_duration: Histogram::new(buckets()),
            work_duration: Histogram::new(buckets()),
        }
    }
}

/// A reconcile in progress; [`WorkQueue::done`] ends it.
pub struct Work {
    id: u64,
    started: Instant,
}

impl WorkQueue {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A trigger of `machine`, due at `due` (now, or later for a requeue).
    pub fn added(&self, machine: &str, due: Instant) {
        self.adds.inc();
        self.with(|s| {
            s.waiting
                .entry(machine.to_string())
                .and_modify(|at| *at = (*at).min(due))
                .or_insert(due);
        });
    }

    /// `machine` is gone: whatever waited for it will not run.
    pub fn forget(&self, machine: &str) {
        self.with(|s| s.waiting.remove(machine));
    }

    /// An error requeue of `machine` after `wait`: a retry, and an add when due.
    pub fn retried(&self, machine: &str, wait: Duration) {
        self.retries.inc();
        self.added(machine, Instant::now() + wait);
    }

    /// `machine`'s reconcile starts.
    pub fn started(&self, machine: &str, now: Instant) -> Work {
        let (id, waited) = self.with(|s| {
            let waited = s
                .waiting
                .remove(machine)
                .map(|due| now.saturating_duration_since(due));
            let id = s.next;
            s.next += 1;
            s.running.insert(id, now);
            (id, waited)
        });
        if let Some(waited) = waited {
            self.queue_duration.observe(waited.as_secs_f64());
        }
        Work { id, started: now }
    }

    /// The reconcile `work` ended at `now`.
    pub fn done(&self, work: Work, now: Instant) {
        self.with(|s| s.running.remove(&work.id));
        self.work_duration
            .observe(now.saturating_duration_since(work.started).as_secs_f64());
    }

    /// Depth, unfinished work (seconds, summed) and the longest running
    /// reconcile (seconds), at `now`.
    fn now(&self, now: Instant) -> (i64, f64, f64) {
        self.with(|s| {
            let depth = s.waiting.values().filter(|due| **due <= now).count();
            let ages = s
                .running
                .values()
                .map(|at| now.saturating_duration_since(*at).as_secs_f64());
            let (sum, max) = ages.fold((0.0, 0.0_f64), |(sum, max), a| (sum + a, max.max(a)));
            (i64::try_from(depth).unwrap_or(i64::MAX), sum, max)
        })
    }
}

impl Collector for WorkQueue {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let labels = [("name", QUEUE)];
        let (depth, unfinished, longest) = self.now(Instant::now());
        let gauges: [(&str, &str, Box<dyn EncodeMetric>); 3] = [
            (
                "mcm_workqueue_depth",
                "Current depth of workqueue",
                Box::new(ConstGauge::new(depth)),
            ),
            (
                "mcm_workqueue_unfinished_work_seconds",
                "How many seconds of work has done that is in progress and hasn't been observed by work_duration.",
                Box::new(ConstGauge::new(unfinished)),
            ),
            (
                "mcm_workqueue_longest_running_processor_seconds",
                "How many seconds has the longest running processor for workqueue been running.",
                Box::new(ConstGauge::new(longest)),
            ),
        ];
        for (name, help, metric) in gauges {
            let mut e = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            metric.encode(e.encode_family(&labels)?)?;
        }
        let counters = [
            (
                "mcm_workqueue_adds",
                "Total number of adds handled by workqueue",
                &self.adds,
            ),
            (
                "mcm_workqueue_retries",
                "Total number of retries handled by workqueue",
                &self.retries,
            ),
        ];
        for (name, help, counter) in counters {
            let mut e = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            counter.encode(e.encode_family(&labels)?)?;
        }
        let histograms = [
            (
                "mcm_workqueue_queue_duration_seconds",
                "How long in seconds an item stays in workqueue before being requested.",
                &self.queue_duration,
            ),
            (
                "mcm_workqueue_work_duration_seconds",
                "How long in seconds processing an item from workqueue takes.",
                &self.work_duration,
            ),
        ];
        for (name, help, histogram) in histograms {
            let mut e = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            histogram.encode(e.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_merge_while_waiting_and_requeues_count_when_due() {
        let q = WorkQueue::default();
        let t0 = Instant::now();
        q.added("a", t0);
        q.added("a", t0 + Duration::from_secs(1));
        q.added("b", t0 + Duration::from_secs(60));
        assert_eq!(q.now(t0).0, 1, "b is not due yet");
        assert_eq!(q.now(t0 + Duration::from_secs(60)).0, 2);
        let work = q.started("a", t0 + Duration::from_secs(2));
        assert_eq!(q.now(t0 + Duration::from_secs(2)).0, 0);
        let (_, unfinished, longest) = q.now(t0 + Duration::from_secs(5));
        assert_eq!((unfinished, longest), (3.0, 3.0));
        q.done(work, t0 + Duration::from_secs(5));
        assert_eq!(q.now(t0 + Duration::from_secs(5)), (0, 0.0, 0.0));
        assert_eq!(q.adds.get(), 3);
        q.retried("a", Duration::from_secs(5));
        assert_eq!(q.retries.get(), 1);
        // A deleted machine's pending add leaves the depth.
        q.added("c", t0);
        q.forget("c");
        assert_eq!(
            q.now(t0 + Duration::from_secs(120)).0,
            2,
            "a (retried) and b"
        );
    }
}
