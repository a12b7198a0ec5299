// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Deletion, step by step. The step is read from `lastOperation.description`, as
//! MCM does, so that either controller can finish what the other started.
//!
//! Long because: the steps and their MCM texts read best in one place, in the
//! order MCM runs them (drain, its own flow, is in [`super::drain`]); a fifth is tests.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::VolumeAttachment;
use kube::api::{DeleteParams, ListParams, Patch};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::drain;
use crate::api::Machine;
use crate::client::describe;
use crate::contract::{
    JOIN_DURATION_ANNOTATION, MACHINE_FINALIZER, NODE_FINALIZER, NODE_LABEL, op, phase, state, step,
};
use crate::controller::bootstrap;
use crate::controller::context::Context;
use crate::controller::error::{Error, retry};
use crate::controller::status::StatusChange;
use crate::controller::writes;
use crate::driver::{Code, Deletion, Driver, MachineError, MachineRequest};

/// The step a deleting machine is at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    SetTerminating,
    GetVmStatus,
    Drain,
    DeleteVolumeAttachments,
    DeleteVm,
    DeleteNode,
    RemoveFinalizer,
}

/// Reads the step from the machine, in MCM's order of precedence.
pub fn current_step(machine: &Machine) -> Step {
    if machine.phase() != phase::TERMINATING {
        return Step::SetTerminating;
    }
    let d = machine.status.last_operation.description.as_str();
    [
        (step::GET_VM_STATUS, Step::GetVmStatus),
        (step::INITIATE_DRAIN, Step::Drain),
        (
            step::DELETE_VOLUME_ATTACHMENTS,
            Step::DeleteVolumeAttachments,
        ),
        (step::INITIATE_VM_DELETION, Step::DeleteVm),
        (step::INITIATE_NODE_DELETION, Step::DeleteNode),
        (step::INITIATE_FINALIZER_REMOVAL, Step::RemoveFinalizer),
    ]
    .into_iter()
    .find(|(text, _)| d.contains(text))
    .map_or(Step::SetTerminating, |(_, s)| s)
}

fn delete_op(description: String, st: &'static str) -> StatusChange {
    StatusChange::new(description, st, op::DELETE)
}

/// After looking up the VM of a machine that has no node label.
pub fn after_vm_status(result: Result<String, MachineError>) -> (StatusChange, Duration) {
    match result {
        Ok(_) => (
            delete_op(step::INITIATE_DRAIN.into(), state::PROCESSING),
            retry::SHORT,
        ),
        Err(e) => match e.code {
            Code::Unimplemented => (
                delete_op(step::INITIATE_DRAIN.into(), state::PROCESSING),
                retry::SHORT,
            ),
            Code::NotFound => (
                delete_op(
                    format!(
                        "VM was not found at provider. Moving forward to node drain. {}",
                        step::INITIATE_DRAIN
                    ),
                    state::PROCESSING,
                ),
                retry::SHORT,
            ),
            Code::Uninitialized => (
                delete_op(
                    format!(
                        "VM instance was not initialized. Moving forward to node drain. {}",
                        step::INITIATE_DRAIN
                    ),
                    state::PROCESSING,
                ),
                retry::SHORT,
            ),
            c if c.is_transient() => (
                delete_op(
                    format!(
                        "Error occurred with decoding machine error status while getting VM status, aborting with retry. {}",
                        step::GET_VM_STATUS
                    ),
                    state::FAILED,
                ),
                retry::SHORT,
            ),
            _ => (
                delete_op(
                    format!(
                        "Error occurred with decoding machine error status while getting VM status, aborting without retry. machine code: {e} {}",
                        step::GET_VM_STATUS
                    ),
                    state::FAILED,
                ),
                retry::MEDIUM,
            ),
        },
    }
}

/// After asking the driver to delete the VM.
pub fn after_vm_deletion(result: &Result<(), MachineError>) -> (StatusChange, Duration) {
    match result {
        Ok(()) => (
            delete_op(
                format!(
                    "VM deletion was successful. {}",
                    step::INITIATE_NODE_DELETION
                ),
                state::PROCESSING,
            ),
            retry::SHORT,
        ),
        Err(e) if e.code == Code::NotFound => (
            delete_op(
                format!(
                    "VM not found. Continuing deletion flow. {}",
                    step::INITIATE_NODE_DELETION
                ),
                state::PROCESSING,
            ),
            retry::SHORT,
        ),
        Err(e) if e.code.is_transient() => (
            delete_op(
                format!(
                    "VM deletion failed due to - {e}. However, will re-try in the next resync. {}",
                    step::INITIATE_VM_DELETION
                ),
                state::FAILED,
            ),
            retry::SHORT,
        ),
        Err(e) => (
            delete_op(
                format!(
                    "VM deletion failed due to - {e}. Aborting operation. {}",
                    step::INITIATE_VM_DELETION
                ),
                state::FAILED,
            ),
            retry::LONG,
        ),
    }
}

/// A machine without providerID whose class the driver rejects never got a VM:
/// its deletion must not wait for a class that cannot work.
pub fn never_created(machine: &Machine, e: MachineError) -> MachineError {
    if machine.spec.provider_id.is_empty() && e.code == Code::InvalidArgument {
        MachineError::new(Code::NotFound, format!("no VM was created: {}", e.message))
    } else {
        e
    }
}

pub async fn run<D: Driver>(ctx: &Context<D>, machine: Machine) -> Result<Action, Error> {
    if !machine.has_finalizer(MACHINE_FINALIZER) {
        // Not ours to clean up (or already done): the API server removes the object.
        return Ok(Action::await_change());
    }
    let name = machine.name().to_string();
    let (change, wait) = match current_step(&machine) {
        Step::SetTerminating => {
            ctx.event(
                &machine,
                false,
                "Terminating",
                "DeleteMachine",
                format!("Deleting machine {name}"),
            );
            (
                delete_op(step::GET_VM_STATUS.into(), state::PROCESSING).phase(phase::TERMINATING),
                retry::SHORT,
            )
        }
        Step::GetVmStatus => {
            if ctx.target.is_none() {
                (
                    delete_op(
                        format!(
                            "Running without target cluster, skipping node drain and volume attachment deletion. {}",
                            step::INITIATE_VM_DELETION
                        ),
                        state::PROCESSING,
                    ),
                    retry::SHORT,
                )
            } else if machine.node_name().is_some() {
                (
                    delete_op(step::INITIATE_DRAIN.into(), state::PROCESSING),
                    retry::SHORT,
                )
            } else {
                let result = match ctx.resolve_for_deletion(&machine) {
                    Ok((class, secret)) => {
                        let req = MachineRequest {
                            machine: &machine,
                            class: &class,
                            secret: &secret,
                        };
                        ctx.driver
                            .get_machine_status(&req)
                            .await
                            .map(|vm| vm.node_name)
                    }
                    // Without a class there cannot have been a VM unless a providerID says so.
                    Err(e) if machine.spec.provider_id.is_empty() => {
                        Err(MachineError::new(Code::NotFound, e.to_string()))
                    }
                    Err(e) => Err(MachineError::new(Code::FailedPrecondition, e.to_string())),
                };
                let result = result.map_err(|e| never_created(&machine, e));
                if let Ok(node) = &result
                    && !node.is_empty()
                {
                    let patch = json!({"metadata": {"labels": {NODE_LABEL: node}}});
                    ctx.patch_machine(&name, &patch).await?;
                }
                after_vm_status(result)
            }
        }
        Step::Drain => match drain::run(ctx, &machine).await? {
            drain::Outcome::Finished(change, wait) => (change, wait),
            // Pods are still going away, or a budget said no: look again later.
            drain::Outcome::Again(wait) => return Ok(Action::requeue(wait)),
        },
        Step::DeleteVolumeAttachments => delete_volume_attachments(ctx, &machine).await?,
        Step::DeleteVm => {
            let result = match ctx.resolve_for_deletion(&machine) {
                Ok((class, secret)) => {
                    let req = MachineRequest {
                        machine: &machine,
                        class: &class,
                        secret: &secret,
                    };
                    ctx.driver.delete_machine(&req).await
                }
                Err(e) if machine.spec.provider_id.is_empty() => {
                    Err(MachineError::new(Code::NotFound, e.to_string()))
                }
                Err(e) => Err(MachineError::new(Code::FailedPrecondition, e.to_string())),
            };
            let result = match result.map_err(|e| never_created(&machine, e)) {
                // Not a failure: the VM is on its way out and the driver's watch
                // brings us back, so nothing is written until it is gone.
                Ok(Deletion::Going) => return Ok(Action::requeue(retry::SHORT)),
                Ok(Deletion::Gone) => Ok(()),
                Err(e) => Err(e),
            };
            // A machine that joined under us lost its token then; one that never
            // joined (or joined under the Go controller) may still have one.
            if (result.is_ok() || matches!(&result, Err(e) if e.code == Code::NotFound))
                && machine.annotation(JOIN_DURATION_ANNOTATION).is_none()
                && let Some(target) = &ctx.target
            {
                bootstrap::delete_tokens(target, &ctx.settings.namespace, &name).await?;
            }
            after_vm_deletion(&result)
        }
        Step::DeleteNode => delete_node(ctx, &machine).await?,
        Step::RemoveFinalizer => {
            // Remembered like every write, so that a stale copy is not taken for
            // a machine still to delete; the watch's Delete event forgets it.
            ctx.set_finalizers(&machine, writes::without_finalizer(&machine))
                .await?;
            ctx.event(
                &machine,
                false,
                "Deleted",
                "DeleteMachine",
                format!("Machine {name} is deleted"),
            );
            return Ok(Action::await_change());
        }
    };
    if ctx.write_status(&machine, &change).await?.is_some() && change.state == state::FAILED {
        ctx.event(
            &machine,
            true,
            "DeleteFailed",
            "DeleteMachine",
            change.description.clone(),
        );
    }
    Ok(Action::requeue(wait))
}

async fn delete_volume_attachments<D>(
    ctx: &Context<D>,
    machine: &Machine,
) -> Result<(StatusChange, Duration), Error> {
    let node = machine.node_name().unwrap_or_default().to_string();
    let Some(target) = &ctx.target else {
        return Ok((
            delete_op(
                format!(
                    "No Live VolumeAttachments for node: {node}. Moving to VM Deletion. {}",
                    step::INITIATE_VM_DELETION
                ),
                state::PROCESSING,
            ),
            retry::SHORT,
        ));
    };
    let api: Api<VolumeAttachment> = Api::all(target.clone());
    let live: Vec<VolumeAttachment> = match api.list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .into_iter()
            .filter(|va| va.spec.node_name == node)
            .collect(),
        Err(e) => {
            let d = format!(
                "Skipping deleteNodeVolAttachments due to - {}. Moving to VM Deletion. {}",
                describe(&e),
                step::INITIATE_VM_DELETION
            );
            return Ok((delete_op(d, state::PROCESSING), retry::SHORT));
        }
    };
    if live.is_empty() {
        let d = format!(
            "No Live VolumeAttachments for node: {node}. Moving to VM Deletion. {}",
            step::INITIATE_VM_DELETION
        );
        return Ok((delete_op(d, state::PROCESSING), retry::SHORT));
    }
    for va in &live {
        if va.metadata.deletion_timestamp.is_none() {
            writes::ignore_not_found(api.delete(&va.name_any(), &DeleteParams::default()).await)?;
        }
    }
    let d = format!(
        "Node Volumes for node: {node} are already detached. Moving to VM Deletion. {}",
        step::INITIATE_VM_DELETION
    );
    Ok((delete_op(d, state::PROCESSING), retry::SHORT))
}

async fn delete_node<D>(
    ctx: &Context<D>,
    machine: &Machine,
) -> Result<(StatusChange, Duration), Error> {
    let name = machine.name();
    let Some(node_name) = machine.node_name() else {
        let d = format!(
            "Label {NODE_LABEL:?} not present on machine {name:?}, continuing deletion flow. {}",
            step::INITIATE_FINALIZER_REMOVAL
        );
        return Ok((delete_op(d, state::PROCESSING), retry::SHORT));
    };
    let gone = format!(
        "No node object found for {node_name:?}, continuing deletion flow. {}",
        step::INITIATE_FINALIZER_REMOVAL
    );
    let Some(target) = &ctx.target else {
        return Ok((delete_op(gone, state::PROCESSING), retry::SHORT));
    };
    let nodes: Api<Node> = Api::all(target.clone());
    let Some(node) = nodes.get_opt(node_name).await? else {
        return Ok((delete_op(gone, state::PROCESSING), retry::SHORT));
    };
    if node.finalizers().iter().any(|f| f == NODE_FINALIZER) {
        let rest: Vec<&String> = node
            .finalizers()
            .iter()
            .filter(|f| *f != NODE_FINALIZER)
            .collect();
        let patch = json!({"metadata": {"finalizers": rest, "resourceVersion": node.metadata.resource_version}});
        if let Err(e) = nodes
            .patch(
                node_name,
                &crate::controller::writes::params(),
                &Patch::Merge(&patch),
            )
            .await
        {
            let d = format!(
                "Removal of finalizers from Node Object {node_name:?} failed due to error: {}, Retrying. {}",
                describe(&e),
                step::INITIATE_NODE_DELETION
            );
            return Ok((delete_op(d, state::FAILED), retry::SHORT));
        }
    }
    let d = match nodes.delete(node_name, &DeleteParams::default()).await {
        Ok(_) => {
            ctx.event(
                machine,
                false,
                "NodeDeleted",
                "DeleteMachine",
                format!("Deleted node {node_name}"),
            );
            format!(
                "Deletion of Node Object {node_name:?} is successful. {}",
                step::INITIATE_FINALIZER_REMOVAL
            )
        }
        Err(kube::Error::Api(s)) if s.code == 404 => gone,
        Err(e) => {
            let d = format!(
                "Deletion of Node Object {node_name:?} failed due to error: {}. {}",
                describe(&e),
                step::INITIATE_NODE_DELETION
            );
            return Ok((delete_op(d, state::FAILED), retry::SHORT));
        }
    };
    Ok((delete_op(d, state::PROCESSING), retry::SHORT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(description: &str, phase: &str) -> Machine {
        let mut m = Machine::default();
        m.status.current_status.phase = phase.into();
        m.status.last_operation.description = description.into();
        m
    }

    #[test]
    fn steps_are_read_from_the_description() {
        assert_eq!(current_step(&at("", "Running")), Step::SetTerminating);
        assert_eq!(
            current_step(&at(step::GET_VM_STATUS, "Terminating")),
            Step::GetVmStatus
        );
        assert_eq!(
            current_step(&at("Drain successful. Initiate VM deletion", "Terminating")),
            Step::DeleteVm
        );
        assert_eq!(
            current_step(&at(
                "Force Drain successful. Delete Volume Attachments",
                "Terminating"
            )),
            Step::DeleteVolumeAttachments
        );
        assert_eq!(
            current_step(&at(
                "Drain failed due to - x. Will retry in next sync. Initiate node drain",
                "Terminating"
            )),
            Step::Drain
        );
        assert_eq!(
            current_step(&at(
                "VM deletion was successful. Initiate node object deletion",
                "Terminating"
            )),
            Step::DeleteNode
        );
        assert_eq!(
            current_step(&at(
                "Deletion of Node Object \"n\" is successful. Initiate machine object finalizer removal",
                "Terminating"
            )),
            Step::RemoveFinalizer
        );
        assert_eq!(
            current_step(&at("garbage", "Terminating")),
            Step::SetTerminating
        );
    }

    #[test]
    fn a_machine_never_created_has_no_vm_to_wait_for() {
        let invalid = MachineError::new(Code::InvalidArgument, "provider aws");
        let mut m = Machine::default();
        assert_eq!(never_created(&m, invalid.clone()).code, Code::NotFound);
        m.spec.provider_id = "machine-a".into();
        assert_eq!(never_created(&m, invalid).code, Code::InvalidArgument);
        let transient = MachineError::new(Code::Unavailable, "x");
        assert_eq!(
            never_created(&Machine::default(), transient).code,
            Code::Unavailable
        );
    }

    #[test]
    fn every_description_names_the_next_step() {
        let (c, _) = after_vm_status(Err(MachineError::new(Code::NotFound, "gone")));
        assert_eq!(
            c.description,
            "VM was not found at provider. Moving forward to node drain. Initiate node drain"
        );
        let (c, _) = after_vm_status(Ok("n".into()));
        assert_eq!(c.description, "Initiate node drain");
        let (c, wait) = after_vm_status(Err(MachineError::new(Code::Internal, "boom")));
        assert!(c.description.ends_with(step::GET_VM_STATUS));
        assert_eq!((c.state, wait), ("Failed", retry::MEDIUM));

        let (c, _) = after_vm_deletion(&Ok(()));
        assert_eq!(
            c.description,
            "VM deletion was successful. Initiate node object deletion"
        );
        let (c, _) = after_vm_deletion(&Err(MachineError::new(Code::NotFound, "x")));
        assert_eq!(
            c.description,
            "VM not found. Continuing deletion flow. Initiate node object deletion"
        );
        let (c, wait) = after_vm_deletion(&Err(MachineError::new(
            Code::Unavailable,
            "Pod a/b is still terminating",
        )));
        assert_eq!(
            c.description,
            "VM deletion failed due to - machine codes error: code = [Unavailable] message = [Pod a/b is still terminating]. However, will re-try in the next resync. Initiate VM deletion"
        );
        assert_eq!(wait, retry::SHORT);
        let (c, wait) = after_vm_deletion(&Err(MachineError::new(Code::PermissionDenied, "no")));
        assert!(
            c.description
                .ends_with("Aborting operation. Initiate VM deletion")
        );
        assert_eq!(wait, retry::LONG);
    }
}
