// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! MCM's per-machine gauges, computed from the machine cache at scrape time, so
//! that a deleted machine's series disappear with it.

use std::fmt;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::api::Machine;
use crate::contract::{NODE_LABEL, Phase};

/// MCM's phase codes of `mcm_machine_current_status_phase`; other phases, and
/// none, are 0.
pub(crate) fn phase_value(phase: Option<&Phase>) -> i64 {
    match phase {
        Some(Phase::Terminating) => -4,
        Some(Phase::Failed) => -3,
        Some(Phase::CrashLoopBackOff) => -2,
        Some(Phase::Unknown) => -1,
        Some(Phase::Running) => 1,
        _ => 0,
    }
}

/// MCM's condition codes of `mcm_machine_status_condition`.
fn condition_value(status: &str) -> i64 {
    match status {
        "True" => 1,
        "Unknown" => 2,
        _ => 0,
    }
}

/// The labels of `mcm_machine_info`, in MCM's order; missing values are empty.
pub(crate) fn info_labels(m: &Machine) -> [(&'static str, String); 8] {
    [
        ("name", m.name().to_string()),
        (
            "namespace",
            m.metadata.namespace.clone().unwrap_or_default(),
        ),
        (
            "createdAt",
            m.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second().to_string())
                .unwrap_or_default(),
        ),
        ("spec_provider_id", m.spec.provider_id.clone()),
        ("spec_class_api_group", m.spec.class.api_group.clone()),
        ("spec_class_kind", m.spec.class.kind.clone()),
        ("spec_class_name", m.spec.class.name.clone()),
        (
            "node_name",
            m.label(NODE_LABEL).unwrap_or_default().to_string(),
        ),
    ]
}

/// Reads the machine cache at scrape time.
#[derive(Default)]
pub(crate) struct MachineCollector {
    pub(crate) store: RwLock<Option<Store<Machine>>>,
    pub(crate) frozen: AtomicBool,
}

impl fmt::Debug for MachineCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MachineCollector").finish_non_exhaustive()
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), fmt::Error> {
    let metric = ConstGauge::new(value);
    let e = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(e)
}

impl Collector for MachineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        gauge(
            &mut encoder,
            "mcm_machine_controller_frozen",
            "Frozen status of the machine controller manager.",
            i64::from(self.frozen.load(Ordering::Relaxed)),
        )?;
        let store = self.store.read().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(store) = store else {
            return Ok(());
        };
        let mut machines = store.state();
        machines.sort_by(|a, b| {
            (&a.metadata.namespace, a.name()).cmp(&(&b.metadata.namespace, b.name()))
        });
        gauge(
            &mut encoder,
            "mcm_machine_items_total",
            "Count of machines currently managed by the mcm.",
            i64::try_from(machines.len()).unwrap_or(i64::MAX),
        )?;

        let mut e = encoder.encode_descriptor(
            "mcm_machine_current_status_phase",
            "Current status phase of the Machines currently managed by the mcm.",
            None,
            MetricType::Gauge,
        )?;
        for m in &machines {
            let labels = [
                ("name", m.name()),
                (
                    "namespace",
                    m.metadata.namespace.as_deref().unwrap_or_default(),
                ),
            ];
            ConstGauge::new(phase_value(m.phase())).encode(e.encode_family(&labels)?)?;
        }

        let mut e = encoder.encode_descriptor(
            "mcm_machine_info",
            "Information of the Machines currently managed by the mcm.",
            None,
            MetricType::Gauge,
        )?;
        for m in &machines {
            let labels = info_labels(m);
            ConstGauge::new(1i64).encode(e.encode_family(&labels)?)?;
        }

        let mut e = encoder.encode_descriptor(
            "mcm_machine_status_condition",
            "Information of the mcm managed Machines' status conditions.",
            None,
            MetricType::Gauge,
        )?;
        for m in &machines {
            for c in &m.status.conditions {
                let labels = [
                    ("name", m.name()),
                    (
                        "namespace",
                        m.metadata.namespace.as_deref().unwrap_or_default(),
                    ),
                    ("condition", c.type_.as_str()),
                ];
                ConstGauge::new(condition_value(&c.status)).encode(e.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
