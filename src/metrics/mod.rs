// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Prometheus metrics: MCM's names (`pkg/util/provider/metrics` and the machine
//! controller's collector), so that MCM dashboards keep working, plus our own
//! reconcile counts and durations.
//!
//! The per-machine gauges are computed at scrape time from the machine cache, as
//! MCM's collector does, so a deleted machine's series disappear with it. Every
//! other label is drawn from a small fixed set (operations, error codes,
//! categories): no error messages, no names outside the per-machine gauges.
//!
//! - this module: the registry, every metric's name and labels, the recorders;
//! - [`collector`]: the per-machine gauges, computed at scrape time;
//! - [`mod@lifecycle`]: which step of a machine's life a watch event completes;
//! - [`workqueue`]: `mcm_workqueue_*` of the machine queue; [`process`]: `process_*`;
//! - the driver's calls are counted by [`crate::driver::instrumented`].

pub(crate) mod collector;
pub(crate) mod lifecycle;
pub(crate) mod process;
pub(crate) mod workqueue;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::Machine;

use collector::MachineCollector;
pub(crate) use lifecycle::{Lifecycle, lifecycle};

/// Content type of [`Metrics::encode`]'s output.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DriverLabels {
    provider: &'static str,
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DriverFailureLabels {
    provider: &'static str,
    operation: &'static str,
    error_code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OrphanLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BootFaultLabels {
    fault: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    result: &'static str,
    category: &'static str,
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

/// Driver calls take milliseconds to a minute.
fn driver_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Machines take seconds (local) to an hour (a slow cloud) to be made, join or go.
fn lifecycle_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(1.0, 2.0, 13)
}

/// Every metric of the process, registered once; cheap to share behind an `Arc`.
pub struct Metrics {
    registry: Registry,
    machines: Arc<MachineCollector>,
    /// The machine queue, as client-go's workqueue metrics see one.
    pub queue: Arc<workqueue::WorkQueue>,
    driver_duration: HistogramFamily<DriverLabels>,
    driver_failed: Family<DriverFailureLabels, Counter>,
    driver_injected: Family<DriverFailureLabels, Counter>,
    boot_faults: Family<BootFaultLabels, Counter>,
    reconciles: Family<ReconcileLabels, Counter>,
    orphans_deleted: Family<OrphanLabels, Counter>,
    reconcile_duration: Histogram,
    create_duration: Histogram,
    join_duration: Histogram,
    delete_duration: Histogram,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let machines = Arc::new(MachineCollector::default());
        registry.register_collector(Box::new(machines.clone()));
        let queue = Arc::new(workqueue::WorkQueue::default());
        registry.register_collector(Box::new(queue.clone()));
        registry.register_collector(Box::new(process::ProcessCollector));

        let driver_duration: HistogramFamily<DriverLabels> =
            Family::new_with_constructor(driver_histogram);
        registry.register(
            "mcm_cloud_api_driver_request_duration_seconds",
            "Total time (in seconds) taken for a driver API request to complete",
            driver_duration.clone(),
        );
        let driver_failed = Family::<DriverFailureLabels, Counter>::default();
        // The encoder appends `_total` to counters.
        registry.register(
            "mcm_cloud_api_driver_requests_failed",
            "Number of failed Driver API requests, partitioned by provider, operation and error code",
            driver_failed.clone(),
        );
        // Ours: of those failures, the ones the local cloud made on purpose
        // (its cloud profile), so that a run tells them from real ones.
        let driver_injected = Family::<DriverFailureLabels, Counter>::default();
        registry.register(
            "machine_controller_driver_injected_faults",
            "Failed driver API requests whose error the local cloud profile injected, by provider, operation and error code",
            driver_injected.clone(),
        );
        let boot_faults = Family::<BootFaultLabels, Counter>::default();
        registry.register(
            "machine_controller_injected_boot_faults",
            "VMs the local cloud profile made to fail at boot on purpose, by fault",
            boot_faults.clone(),
        );
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "machine_controller_reconcile",
            "Reconciles of machines, by result and error category",
            reconciles.clone(),
        );
        let orphans_deleted = Family::<OrphanLabels, Counter>::default();
        registry.register(
            "machine_controller_orphan_vms_deleted",
            "VMs deleted by orphan collection, by reason",
            orphans_deleted.clone(),
        );
        let reconcile_duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "machine_controller_reconcile_duration_seconds",
            "Time (in seconds) one reconcile of a machine takes",
            reconcile_duration.clone(),
        );
        let create_duration = Histogram::new(lifecycle_buckets());
        // Not MCM master's `mcm_machine_*_duration_seconds`, which are gauges with
        // other labels: ours are histograms, under our own prefix.
        registry.register(
            "machine_controller_machine_create_duration_seconds",
            "Duration in seconds from a Machine's creation until its VM is created (Pending)",
            create_duration.clone(),
        );
        let join_duration = Histogram::new(lifecycle_buckets());
        registry.register(
            "machine_controller_machine_join_duration_seconds",
            "Duration in seconds from a Machine's creation until its Node joins (Running)",
            join_duration.clone(),
        );
        let delete_duration = Histogram::new(lifecycle_buckets());
        registry.register(
            "machine_controller_machine_delete_duration_seconds",
            "Duration in seconds from a Machine's deletion timestamp until it is gone",
            delete_duration.clone(),
        );
        Metrics {
            registry,
            machines,
            queue,
            driver_duration,
            driver_failed,
            driver_injected,
            boot_faults,
            reconciles,
            orphans_deleted,
            reconcile_duration,
            create_duration,
            join_duration,
            delete_duration,
        }
    }

    /// The exposition in the OpenMetrics text format (see [`CONTENT_TYPE`]).
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// The machine cache the per-machine gauges are read from at scrape time.
    /// Until it is set (a replica waiting for the lease), they are absent.
    pub fn observe_machines(&self, store: Store<Machine>) {
        *self
            .machines
            .store
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(store);
    }

    /// `mcm_machine_controller_frozen`, for the safety controller.
    pub fn set_frozen(&self, frozen: bool) {
        self.machines.frozen.store(frozen, Ordering::Relaxed);
    }

    /// Counts a VM made to fail at boot on purpose (the local cloud profile).
    pub fn boot_fault_injected(&self, fault: &'static str) {
        self.boot_faults
            .get_or_create(&BootFaultLabels { fault })
            .inc();
    }

    /// Counts a VM that orphan collection deleted.
    pub fn orphan_deleted(&self, reason: &'static str) {
        self.orphans_deleted
            .get_or_create(&OrphanLabels { reason })
            .inc();
    }

    /// Counts a finished reconcile.
    pub fn reconciled(&self, error_category: Option<&'static str>, took: Duration) {
        let labels = match error_category {
            None => ReconcileLabels {
                result: "success",
                category: "",
            },
            Some(category) => ReconcileLabels {
                result: "error",
                category,
            },
        };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    /// Observes the lifecycle durations a machine watch event completes; called
    /// with the cache as it was before the event.
    pub fn machine_event(
        &self,
        before: &Store<Machine>,
        event: &Result<watcher::Event<Machine>, watcher::Error>,
    ) {
        let (old, new, deleted) = match event {
            Ok(watcher::Event::Apply(m)) => (
                before.get(&kube::runtime::reflector::ObjectRef::from_obj(m)),
                m,
                false,
            ),
            Ok(watcher::Event::Delete(m)) => (None, m, true),
            _ => return,
        };
        for (what, took) in lifecycle(old.as_deref(), new, deleted, jiff::Timestamp::now()) {
            let histogram = match what {
                Lifecycle::Created => &self.create_duration,
                Lifecycle::Joined => &self.join_duration,
                Lifecycle::Deleted => &self.delete_duration,
            };
            histogram.observe(took.as_secs_f64());
        }
    }

    pub(crate) fn driver_call(
        &self,
        provider: &'static str,
        operation: &'static str,
        outcome: Outcome,
    ) {
        match outcome {
            Outcome::Ok(took) => self
                .driver_duration
                .get_or_create(&DriverLabels {
                    provider,
                    operation,
                })
                .observe(took.as_secs_f64()),
            Outcome::Failed { code, injected } => {
                let labels = DriverFailureLabels {
                    provider,
                    operation,
                    error_code: code,
                };
                // Injected failures count as failures too, as a real cloud's would.
                self.driver_failed.get_or_create(&labels).inc();
                if injected {
                    self.driver_injected.get_or_create(&labels).inc();
                }
            }
        }
    }
}

/// How a driver call ended, for [`Metrics::driver_call`].
pub(crate) enum Outcome {
    Ok(Duration),
    /// `injected`: the local cloud profile made the error on purpose.
    Failed {
        code: &'static str,
        injected: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{OpType, Phase};
    use crate::driver::Code;
    use collector::{info_labels, phase_value};
    use k8s_openapi::api::core::v1::NodeCondition;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn machine(name: &str, phase: impl Into<Option<Phase>>) -> Machine {
        let mut m = Machine::default();
        m.metadata.name = Some(name.into());
        m.metadata.namespace = Some("ns".into());
        m.metadata.creation_timestamp = Some(Time(ts("2026-01-01T00:00:00Z")));
        m.status.current_status.phase = phase.into();
        m
    }

    fn at(mut m: Machine, when: &str) -> Machine {
        m.status.current_status.last_update_time = Some(Time(ts(when)));
        m
    }

    #[test]
    fn phases_map_to_mcms_codes() {
        assert_eq!(phase_value(Some(&Phase::Terminating)), -4);
        assert_eq!(phase_value(Some(&Phase::Failed)), -3);
        assert_eq!(phase_value(Some(&Phase::CrashLoopBackOff)), -2);
        assert_eq!(phase_value(Some(&Phase::Unknown)), -1);
        assert_eq!(phase_value(Some(&Phase::Pending)), 0);
        assert_eq!(phase_value(Some(&Phase::Running)), 1);
        assert_eq!(phase_value(None), 0);
        assert_eq!(phase_value(Some(&Phase::InPlaceUpdating)), 0);
        assert_eq!(phase_value(Some(&Phase::from("Hibernating"))), 0);
    }

    #[test]
    fn info_labels_never_panic_on_missing_values() {
        let labels = info_labels(&Machine::default());
        assert!(labels.iter().all(|(_, v)| v.is_empty()), "{labels:?}");
        let mut m = machine("m1", Phase::Running);
        m.spec.provider_id = "machine-m1".into();
        m.spec.class.name = "c".into();
        m.metadata.labels = Some([("node".to_string(), "machine-m1".to_string())].into());
        let labels = info_labels(&m);
        assert_eq!(labels[2], ("createdAt", "1767225600".to_string()));
        assert_eq!(labels[7], ("node_name", "machine-m1".to_string()));
    }

    #[test]
    fn creation_is_observed_when_the_vm_exists() {
        let now = ts("2026-01-01T01:00:00Z");
        let new = at(machine("m", Phase::Pending), "2026-01-01T00:00:07Z");
        let seen = lifecycle(Some(&machine("m", None)), &new, false, now);
        assert_eq!(seen, [(Lifecycle::Created, Duration::from_secs(7))]);
        // A retry after CrashLoopBackOff counts from creation too.
        let seen = lifecycle(
            Some(&machine("m", Phase::CrashLoopBackOff)),
            &new,
            false,
            now,
        );
        assert_eq!(seen, [(Lifecycle::Created, Duration::from_secs(7))]);
        // Not again on later changes, nor for a Pending machine seen at start-up.
        assert!(lifecycle(Some(&new), &new, false, now).is_empty());
        let mut moved = new.clone();
        moved.status.current_status.phase = Some(Phase::Unknown);
        assert!(lifecycle(Some(&moved), &new, false, now).is_empty());
    }

    #[test]
    fn only_the_first_join_is_observed() {
        let now = ts("2026-01-01T01:00:00Z");
        let mut joined = at(machine("m", Phase::Running), "2026-01-01T00:01:00Z");
        joined.status.last_operation.type_ = Some(OpType::Create);
        let seen = lifecycle(Some(&machine("m", Phase::Pending)), &joined, false, now);
        assert_eq!(seen, [(Lifecycle::Joined, Duration::from_secs(60))]);
        let mut rejoined = joined.clone();
        rejoined.status.last_operation.type_ = Some(OpType::HealthCheck);
        assert!(lifecycle(Some(&machine("m", Phase::Unknown)), &rejoined, false, now).is_empty());
    }

    #[test]
    fn deletion_counts_from_the_deletion_timestamp() {
        let mut m = machine("m", Phase::Terminating);
        m.metadata.deletion_timestamp = Some(Time(ts("2026-01-01T00:10:00Z")));
        let seen = lifecycle(None, &m, true, ts("2026-01-01T00:10:30Z"));
        assert_eq!(seen, [(Lifecycle::Deleted, Duration::from_secs(30))]);
        // A clock behind the timestamp observes nothing rather than nonsense.
        assert!(lifecycle(None, &m, true, ts("2026-01-01T00:09:00Z")).is_empty());
        assert!(
            lifecycle(
                None,
                &machine("m", Phase::Running),
                true,
                ts("2026-01-01T00:09:00Z")
            )
            .is_empty()
        );
    }

    #[test]
    fn scrapes_carry_mcms_names_and_machines_from_the_cache() {
        let metrics = Metrics::new();
        // Before a cache is attached (standby) only the frozen flag is there.
        let text = metrics.encode().unwrap();
        assert!(text.contains("mcm_machine_controller_frozen 0\n"), "{text}");
        assert!(!text.contains("mcm_machine_items_total"), "{text}");

        let (store, mut writer) = kube::runtime::reflector::store::<Machine>();
        let mut running = machine("a\"b", Phase::Running);
        running.status.conditions = vec![NodeCondition {
            type_: "Ready".into(),
            status: "True".into(),
            ..Default::default()
        }];
        writer.apply_watcher_event(&watcher::Event::Apply(running));
        writer.apply_watcher_event(&watcher::Event::Apply(machine("c", Phase::Terminating)));
        metrics.observe_machines(store);
        metrics.reconciled(None, Duration::from_millis(3));
        metrics.reconciled(Some("conflict"), Duration::from_millis(3));
        metrics.driver_call(
            "local",
            "CreateMachine",
            Outcome::Ok(Duration::from_millis(20)),
        );
        metrics.driver_call(
            "local",
            "GetMachineStatus",
            Outcome::Failed {
                code: Code::NotFound.as_str(),
                injected: false,
            },
        );
        metrics.driver_call(
            "local",
            "DeleteMachine",
            Outcome::Failed {
                code: Code::ResourceExhausted.as_str(),
                injected: true,
            },
        );

        let text = metrics.encode().unwrap();
        for expected in [
            "mcm_machine_items_total 2\n",
            "mcm_machine_current_status_phase{name=\"a\\\"b\",namespace=\"ns\"} 1\n",
            "mcm_machine_current_status_phase{name=\"c\",namespace=\"ns\"} -4\n",
            "mcm_machine_info{name=\"c\",namespace=\"ns\",createdAt=\"1767225600\",spec_provider_id=\"\",spec_class_api_group=\"\",spec_class_kind=\"\",spec_class_name=\"\",node_name=\"\"} 1\n",
            "mcm_machine_status_condition{name=\"a\\\"b\",namespace=\"ns\",condition=\"Ready\"} 1\n",
            "machine_controller_reconcile_total{result=\"success\",category=\"\"} 1\n",
            "machine_controller_reconcile_total{result=\"error\",category=\"conflict\"} 1\n",
            "machine_controller_reconcile_duration_seconds_count 2\n",
            "mcm_cloud_api_driver_request_duration_seconds_count{provider=\"local\",operation=\"CreateMachine\"} 1\n",
            "mcm_cloud_api_driver_requests_failed_total{provider=\"local\",operation=\"GetMachineStatus\",error_code=\"NotFound\"} 1\n",
            // An injected failure is a failure, and counted apart as injected.
            "mcm_cloud_api_driver_requests_failed_total{provider=\"local\",operation=\"DeleteMachine\",error_code=\"ResourceExhausted\"} 1\n",
            "machine_controller_driver_injected_faults_total{provider=\"local\",operation=\"DeleteMachine\",error_code=\"ResourceExhausted\"} 1\n",
            "machine_controller_machine_create_duration_seconds_count 0\n",
            "machine_controller_machine_join_duration_seconds_count 0\n",
            "machine_controller_machine_delete_duration_seconds_count 0\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
