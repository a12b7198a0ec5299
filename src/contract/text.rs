// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Every lastOperation description and Node condition message the controller
//! writes, once: MCM v0.62.1's words where MCM has them (Go's `%q` as Rust's
//! `{:?}`), ours where it has none (said so). Deletion texts end with the step
//! they lead to ([`super::step`]), which is how a deletion finds its place.

use std::fmt::Display;

use super::NODE_LABEL;
use super::step::{
    DELETE_VOLUME_ATTACHMENTS, GET_VM_STATUS, INITIATE_DRAIN, INITIATE_FINALIZER_REMOVAL,
    INITIATE_NODE_DELETION, INITIATE_VM_DELETION,
};

// --- Creation and health ---------------------------------------------------------

pub const CREATING: &str = "Creating machine on cloud provider";
/// Without a target cluster the VM is all there is: Available at once.
pub const CREATED: &str = "Created machine on cloud provider";
/// A Node of the new VM's name was there before the VM: MCM deletes the VM.
pub const STALE_NODE: &str = "VM using old node obj";
pub const CLOUD_PROVIDER_MESSAGE: &str = "Cloud provider message - ";
/// MCM's `machineCreateErrorHandler`: the driver's error after the prefix.
pub fn cloud_provider_message(error: &impl std::fmt::Display) -> String {
    format!("{CLOUD_PROVIDER_MESSAGE}{error}")
}
/// MCM's Internal error when the driver left the VM's node name (with a
/// target cluster) or providerID empty; Go's `%q` as Rust's `{:?}`.
pub fn empty_after_creation(machine: &str, node_name: &str, provider_id: &str) -> String {
    format!(
        "machine {machine:?}: nodeName ({node_name:?}) or providerID ({provider_id:?}) is empty after creation flow"
    )
}

pub fn joined(machine: &str, took: &str) -> String {
    format!("Machine {machine} successfully joined the cluster in {took}")
}
pub fn rejoined(machine: &str) -> String {
    format!("Machine {machine} successfully re-joined the cluster")
}
pub fn node_missing(machine: &str) -> String {
    format!(
        "Node object went missing. Machine {machine} is unhealthy - changing MachinePhase to Unknown"
    )
}
pub fn unhealthy(machine: &str, conditions: &str) -> String {
    format!(
        "Machine {machine} is unhealthy - changing MachinePhase to Unknown. Node conditions: {conditions}"
    )
}
pub fn join_timeout(machine: &str, timeout: &str) -> String {
    format!("Machine {machine} failed to join the cluster in {timeout} minutes.")
}
/// Not in MCM (Go only logs it): the API server refused the Node patch that
/// carries the machine's node template.
pub const NODE_TEMPLATE_REFUSED: &str = "Node template could not be applied to node ";
pub fn node_template_refused(node: &str, why: &str) -> String {
    format!("{NODE_TEMPLATE_REFUSED}{node}: {why}")
}
pub fn node_template_applied(node: &str) -> String {
    format!("Node template applied to node {node}")
}
/// Not in MCM: the Warning Event of a VM trouble within its grace (MCM's
/// provider-local says nothing for 10 minutes, then only the Pod's phase).
pub fn vm_trouble_in_grace(
    reason: &str,
    message: &str,
    since: &str,
    grace: &str,
    deadline: &str,
) -> String {
    format!(
        "{reason} since {since}: {message}. Reported on the machine if it lasts {grace} (at {deadline})"
    )
}
pub fn health_timeout(machine: &str, timeout: &str, conditions: &str) -> String {
    format!(
        "Machine {machine} health checks failing since last {timeout} minutes. Updating machine phase to Failed. Node Conditions: {conditions}"
    )
}

pub fn in_place_timeout(machine: &str, timeout: &str) -> String {
    format!("Machine {machine} failed to in-place update in {timeout} minutes.")
}

// --- Deletion: the VM's status ---------------------------------------------------

pub fn vm_not_found_drain() -> String {
    format!("VM was not found at provider. Moving forward to node drain. {INITIATE_DRAIN}")
}
pub fn vm_not_initialized_drain() -> String {
    format!("VM instance was not initialized. Moving forward to node drain. {INITIATE_DRAIN}")
}
pub fn vm_status_error_retry() -> String {
    format!(
        "Error occurred with decoding machine error status while getting VM status, aborting with retry. {GET_VM_STATUS}"
    )
}
pub fn vm_status_error_abort(error: &impl Display) -> String {
    format!(
        "Error occurred with decoding machine error status while getting VM status, aborting without retry. machine code: {error} {GET_VM_STATUS}"
    )
}
/// Not in MCM: a controller without a target cluster has no Node to drain.
pub fn no_target_skip_drain() -> String {
    format!(
        "Running without target cluster, skipping node drain and volume attachment deletion. {INITIATE_VM_DELETION}"
    )
}

// --- Deletion: drain -------------------------------------------------------------

pub fn drain_skipped_no_node_name() -> String {
    format!("Skipping drain as nodeName is not a valid one for machine. {INITIATE_VM_DELETION}")
}
pub fn drain_successful() -> String {
    format!("Drain successful. {INITIATE_VM_DELETION}")
}
pub fn force_drain_successful() -> String {
    format!("Force Drain successful. {DELETE_VOLUME_ATTACHMENTS}")
}
pub fn drain_condition_update_failed(error: &impl Display) -> String {
    format!(
        "Drain failed due to failure in update of node conditions - {error}. Will retry in next sync. {INITIATE_DRAIN}"
    )
}
/// Written by a deletion's drain and, with the phase kept, by an in-place one.
pub fn drain_failed(error: &impl Display) -> String {
    format!("Drain failed due to - {error}. Will retry in next sync. {INITIATE_DRAIN}")
}
pub fn force_drain_failed(error: &impl Display) -> String {
    format!(
        "Drain failed due to - {error}. However, since it's a force deletion shall continue deletion of VM. {DELETE_VOLUME_ATTACHMENTS}"
    )
}
/// The Terminating condition's message on the Node of a Failed machine.
pub const TERMINATING_FAILED_MACHINE: &str = "Machine Controller is terminating failed machine";
/// The Terminating condition's message on the Node of a machine scaled down.
pub const TERMINATING_SCALE_DOWN: &str = "Machine Controller is scaling down machine";

// --- Deletion: VolumeAttachments, VM, Node ---------------------------------------

pub fn volume_attachments_skipped(error: &impl Display) -> String {
    format!(
        "Skipping deleteNodeVolAttachments due to - {error}. Moving to VM Deletion. {INITIATE_VM_DELETION}"
    )
}
pub fn no_live_volume_attachments(node: &str) -> String {
    format!(
        "No Live VolumeAttachments for node: {node}. Moving to VM Deletion. {INITIATE_VM_DELETION}"
    )
}
pub fn volumes_detached(node: &str) -> String {
    format!(
        "Node Volumes for node: {node} are already detached. Moving to VM Deletion. {INITIATE_VM_DELETION}"
    )
}
pub fn vm_deleted() -> String {
    format!("VM deletion was successful. {INITIATE_NODE_DELETION}")
}
pub fn vm_already_gone() -> String {
    format!("VM not found. Continuing deletion flow. {INITIATE_NODE_DELETION}")
}
pub fn vm_deletion_failed_retry(error: &impl Display) -> String {
    format!(
        "VM deletion failed due to - {error}. However, will re-try in the next resync. {INITIATE_VM_DELETION}"
    )
}
pub fn vm_deletion_failed_abort(error: &impl Display) -> String {
    format!("VM deletion failed due to - {error}. Aborting operation. {INITIATE_VM_DELETION}")
}
pub fn no_node_label(machine: &str) -> String {
    format!(
        "Label {NODE_LABEL:?} not present on machine {machine:?}, continuing deletion flow. {INITIATE_FINALIZER_REMOVAL}"
    )
}
pub fn no_node_object(node: &str) -> String {
    format!(
        "No node object found for {node:?}, continuing deletion flow. {INITIATE_FINALIZER_REMOVAL}"
    )
}
pub fn node_finalizer_removal_failed(node: &str, error: &impl Display) -> String {
    format!(
        "Removal of finalizers from Node Object {node:?} failed due to error: {error}, Retrying. {INITIATE_NODE_DELETION}"
    )
}
pub fn node_deleted(node: &str) -> String {
    format!("Deletion of Node Object {node:?} is successful. {INITIATE_FINALIZER_REMOVAL}")
}
pub fn node_deletion_failed(node: &str, error: &impl Display) -> String {
    format!(
        "Deletion of Node Object {node:?} failed due to error: {error}. {INITIATE_NODE_DELETION}"
    )
}

// --- In-place updates -------------------------------------------------------------

pub const IN_PLACE_CANDIDATE: &str = "Node is a candidate for in-place update";
pub const IN_PLACE_SELECTED: &str = "Node is selected for in-place update";
pub const IN_PLACE_SUCCESSFUL: &str = "Node in-place update successful";
pub fn in_place_failed(reason: &str) -> String {
    format!("Node in-place update failed: {reason}")
}
pub const IN_PLACE_READY: &str = "Node is ready for in-place update";
pub const IN_PLACE_DRAINED: &str = "Node draining successful";
pub fn in_place_updating(machine: &str) -> String {
    format!("Machine {machine} is undergoing an in-place update")
}
pub fn in_place_updated(machine: &str) -> String {
    format!("Machine {machine} successfully updated dependencies")
}
pub fn in_place_update_failed(machine: &str, reason: &str) -> String {
    format!("Machine {machine} failed to update dependencies: {reason}")
}

// --- Safety ------------------------------------------------------------------------

/// A machine reset on thawing.
pub const HEALTH_TIMEOUT_RESET: &str =
    "Machine Health Timeout was reset due to APIServer being unreachable";
