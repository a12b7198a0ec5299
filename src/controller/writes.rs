// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Every write of the controller to a Machine goes through here: with our field
//! manager, guarded by the resourceVersion it was decided on, and remembered
//! ([`super::own_writes`]) so that a reconcile of an older cached copy stops.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::Patch;
use serde_json::json;

use super::context::Context;
use super::status::{StatusChange, now};
use crate::api::{CurrentStatus, LastOperation, Machine};
use crate::contract::{MACHINE_FINALIZER, Phase};

pub(crate) use crate::client::{ignore_not_found, patch_params as params};

/// The finalizer list with ours added (`Some`), or `None` when it is there.
pub(crate) fn with_finalizer(machine: &Machine) -> Option<Vec<String>> {
    if machine.has_finalizer(MACHINE_FINALIZER) {
        return None;
    }
    let mut finalizers = machine.metadata.finalizers.clone().unwrap_or_default();
    finalizers.push(MACHINE_FINALIZER.to_string());
    Some(finalizers)
}

/// The finalizer list without ours.
pub(crate) fn without_finalizer(machine: &Machine) -> Vec<String> {
    machine
        .metadata
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != MACHINE_FINALIZER)
        .cloned()
        .collect()
}

impl<D> Context<D> {
    pub(crate) fn machine_api(&self) -> Api<Machine> {
        Api::namespaced(self.control.clone(), &self.settings.namespace)
    }

    /// A merge patch of machine `name`, remembered as our own write.
    pub(crate) async fn patch_machine(
        &self,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<Machine, kube::Error> {
        let written = self
            .machine_api()
            .patch(name, &params(), &Patch::Merge(patch))
            .await?;
        self.own_writes.record(&written);
        Ok(written)
    }

    /// [`write()`], remembered as our own write.
    pub(crate) async fn write_status(
        &self,
        machine: &Machine,
        change: &StatusChange,
    ) -> Result<Option<Machine>, kube::Error> {
        let written = write(&self.machine_api(), machine, change).await?;
        if let Some(w) = &written {
            self.own_writes.record(w);
        }
        Ok(written)
    }

    /// Sets (or, `None`, clears) the machine's `preserveExpiryTime`, keeping
    /// the rest of its current status, guarded by its resourceVersion.
    pub(crate) async fn set_preserve_expiry(
        &self,
        machine: &Machine,
        expiry: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    ) -> Result<Machine, kube::Error> {
        let patch = json!({
            "metadata": { "resourceVersion": machine.metadata.resource_version },
            "status": {"currentStatus": {
                "preserveExpiryTime": expiry,
                "lastUpdateTime": now(),
            }},
        });
        let written = self
            .machine_api()
            .patch_status(machine.name(), &params(), &Patch::Merge(&patch))
            .await?;
        self.own_writes.record(&written);
        Ok(written)
    }

    /// Sets the machine's finalizers to `finalizers`, guarded by its resourceVersion.
    pub(crate) async fn set_finalizers(
        &self,
        machine: &Machine,
        finalizers: Vec<String>,
    ) -> Result<Machine, kube::Error> {
        let patch = json!({"metadata": {
            "finalizers": finalizers,
            "resourceVersion": machine.metadata.resource_version,
        }});
        self.patch_machine(machine.name(), &patch).await
    }
}

/// Writes `change` unless it is a no-op; returns the machine as written.
pub(crate) async fn write(
    api: &Api<Machine>,
    machine: &Machine,
    change: &StatusChange,
) -> Result<Option<Machine>, kube::Error> {
    if change.is_noop_for(machine) {
        return Ok(None);
    }
    let patch = status_patch(machine, change, now());
    let written = api
        .patch_status(machine.name(), &params(), &Patch::Merge(&patch))
        .await?;
    Ok(Some(written))
}

/// The merge patch of the status subresource that writes `change` onto
/// `machine` at `now`. A change without a phase leaves `currentStatus` out, so
/// the phase on the server stays whatever it is, one we do not know included.
pub fn status_patch(machine: &Machine, change: &StatusChange, now: Time) -> serde_json::Value {
    let last_operation = LastOperation {
        description: change.description.clone(),
        error_code: change.error_code.clone(),
        last_update_time: Some(now.clone()),
        state: Some(change.state.clone()),
        type_: Some(change.op.clone()),
    };
    let mut status = json!({ "lastOperation": last_operation });
    if let Some(phase) = &change.phase {
        let current = CurrentStatus {
            phase: Some(phase.clone()),
            timeout_active: change.timeout_active,
            last_update_time: Some(now),
            // Preservation outlives health and creation writes and ends with
            // termination, as in MCM v0.62.1's status writes.
            preserve_expiry_time: if *phase == Phase::Terminating {
                None
            } else {
                machine.status.current_status.preserve_expiry_time.clone()
            },
        };
        status["currentStatus"] = serde_json::to_value(current).unwrap_or_default();
    }
    if let Some(conditions) = &change.conditions {
        status["conditions"] = serde_json::to_value(conditions).unwrap_or_default();
    }
    if let Some(addresses) = &change.addresses {
        status["addresses"] = serde_json::to_value(addresses).unwrap_or_default();
    }
    // The resourceVersion makes a decision taken on a stale copy fail with a conflict
    // instead of overwriting a newer status.
    json!({
        "metadata": { "resourceVersion": machine.metadata.resource_version },
        "status": status,
    })
}
