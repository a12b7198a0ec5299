// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Deletion, step by step. The step is read from `lastOperation.description`, as
//! MCM does, so that either controller can finish what the other started.
//!
//! Long because: the steps and their MCM texts read best in one place, in the
//! order MCM runs them (drain, its own flow, is in [`super::drain`]); a fifth is tests.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::storage::v1::VolumeAttachment;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::drain;
use crate::api::{Machine, MachineClass};
use crate::client::describe;
use crate::client::status;
use crate::contract::{
    JOIN_DURATION_ANNOTATION, MACHINE_FINALIZER, NODE_LABEL, OpState, OpType, Phase, step, text,
};
use crate::controller::action::Action;
use crate::controller::bootstrap;
use crate::controller::context::{Context, Target};
use crate::controller::error::{Error, retry};
use crate::controller::events::EventType;
use crate::controller::status::StatusChange;
use crate::controller::writes;
use crate::driver::{
    Code, Deletion, Driver, DriverResult, MachineError, MachineRequest, SecretData,
};

/// The step a deleting machine is at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    SetTerminating,
    GetVmStatus,
    Drain,
    DeleteVolumeAttachments,
    DeleteVm,
    DeleteNode,
    RemoveFinalizer,
}

/// Reads the step from the machine, in MCM's order of precedence.
pub(crate) fn current_step(machine: &Machine) -> Step {
    if machine.phase() != Some(&Phase::Terminating) {
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

fn delete_op(description: impl Into<String>, st: OpState) -> StatusChange {
    StatusChange::new(description, st, OpType::Delete)
}

/// After looking up the VM of a machine that has no node label.
pub(crate) fn after_vm_status(result: Result<String, MachineError>) -> (StatusChange, Duration) {
    match result {
        Ok(_) => (
            delete_op(step::INITIATE_DRAIN, OpState::Processing),
            retry::SHORT,
        ),
        Err(e) => match e.code {
            Code::Unimplemented => (
                delete_op(step::INITIATE_DRAIN, OpState::Processing),
                retry::SHORT,
            ),
            Code::NotFound => (
                delete_op(text::vm_not_found_drain(), OpState::Processing),
                retry::SHORT,
            ),
            Code::Uninitialized => (
                delete_op(text::vm_not_initialized_drain(), OpState::Processing),
                retry::SHORT,
            ),
            c if c.is_transient() => (
                delete_op(text::vm_status_error_retry(), OpState::Failed),
                retry::SHORT,
            ),
            _ => (
                delete_op(text::vm_status_error_abort(&e), OpState::Failed),
                retry::MEDIUM,
            ),
        },
    }
}

/// After asking the driver to delete the VM.
pub(crate) fn after_vm_deletion(result: &Result<(), MachineError>) -> (StatusChange, Duration) {
    match result {
        Ok(()) => (
            delete_op(text::vm_deleted(), OpState::Processing),
            retry::SHORT,
        ),
        Err(e) if e.code == Code::NotFound => (
            delete_op(text::vm_already_gone(), OpState::Processing),
            retry::SHORT,
        ),
        Err(e) if e.code.is_transient() => (
            delete_op(text::vm_deletion_failed_retry(e), OpState::Failed),
            retry::SHORT,
        ),
        Err(e) => (
            delete_op(text::vm_deletion_failed_abort(e), OpState::Failed),
            retry::LONG,
        ),
    }
}

/// A machine without providerID whose class the driver rejects never got a VM:
/// its deletion must not wait for a class that cannot work.
pub(crate) fn never_created(machine: &Machine, e: MachineError) -> MachineError {
    if machine.spec.provider_id.is_empty() && e.code == Code::InvalidArgument {
        MachineError::new(Code::NotFound, format!("no VM was created: {}", e.message))
    } else {
        e
    }
}

/// What one step of a deletion pass did.
#[derive(Debug, PartialEq)]
pub(crate) enum Stepped {
    /// The step is done: go straight on with the step `change` names, in the
    /// same pass, and write `change` only if the pass stops before the end.
    Next(StatusChange),
    /// Stop the pass: write `change` (with what the pass left unwritten) if
    /// there is one, and look again after `wait`.
    Stop(Option<StatusChange>, Duration),
    /// The finalizer is gone, and with it the machine.
    Removed,
}

/// A step's status change and retry as an outcome: a failure stops the pass
/// (it is written, with its Event, and retried after `wait`); progress goes on.
pub(crate) fn stepped((change, wait): (StatusChange, Duration)) -> Stepped {
    if change.state == OpState::Failed {
        Stepped::Stop(Some(change), wait)
    } else {
        Stepped::Next(change)
    }
}

/// The change a pass writes when it stops: the last step's, carrying a phase an
/// earlier step of the pass set but did not write (Terminating).
pub(crate) fn unwritten(earlier: Option<StatusChange>, last: StatusChange) -> StatusChange {
    let phase = last.phase.or(earlier.and_then(|e| e.phase));
    StatusChange { phase, ..last }
}

/// `machine` as a step's change leaves it, for reading the next step.
fn advanced(mut machine: Machine, change: &StatusChange) -> Machine {
    machine.status.last_operation.description = change.description.clone();
    machine.status.last_operation.state = Some(change.state.clone());
    if let Some(p) = &change.phase {
        machine.status.current_status.phase = Some(p.clone());
    }
    machine
}

/// Deletion runs its steps one after the other in one pass, and writes the
/// status only where it has to wait (a drain in progress, a VM going) or a step
/// failed: every step is safe to run again, so a crash in between repeats steps
/// and loses nothing, while each skipped write spares the API server a request
/// and every watcher of the machine an event. MCM writes after every step and
/// requeues; either controller resumes from the step the other wrote.
pub(crate) async fn run<D: Driver>(ctx: &Context<D>, machine: Machine) -> Result<Action, Error> {
    if !machine.has_finalizer(MACHINE_FINALIZER) {
        // Not ours to clean up (or already done): the API server removes the object.
        return Ok(Action::await_change());
    }
    // `stored` is the machine as the API server has it (its resourceVersion
    // guards the write); `at` is where this pass has got to.
    let mut stored = machine;
    let mut at = stored.clone();
    let mut pending: Option<StatusChange> = None;
    // Every step moves on or stops, so the bound is never reached; it guards
    // against a step that names itself as next.
    for _ in 0..12 {
        let step = current_step(&at);
        let stop = match run_step(ctx, &mut stored, &at, step).await? {
            Stepped::Removed => return Ok(Action::await_change()),
            Stepped::Next(change) => {
                let next = advanced(at.clone(), &change);
                pending = Some(unwritten(pending, change));
                if current_step(&next) != step {
                    at = next;
                    continue;
                }
                (pending.take(), retry::SHORT)
            }
            Stepped::Stop(change, wait) => match change {
                Some(change) => (Some(unwritten(pending, change)), wait),
                None => (pending, wait),
            },
        };
        let (change, wait) = stop;
        if let Some(change) = change
            && ctx.write_status(&stored, &change).await?.is_some()
            && change.state == OpState::Failed
        {
            ctx.event(
                &stored,
                EventType::Warning,
                "DeleteFailed",
                "DeleteMachine",
                change.description.clone(),
            );
        }
        return Ok(Action::requeue(wait));
    }
    Ok(Action::requeue(retry::SHORT))
}

/// One step of the pass; the arms that do more than a line have a function each.
async fn run_step<D: Driver>(
    ctx: &Context<D>,
    stored: &mut Machine,
    at: &Machine,
    step: Step,
) -> Result<Stepped, Error> {
    Ok(match step {
        Step::SetTerminating => {
            ctx.event(
                at,
                EventType::Normal,
                "Terminating",
                "DeleteMachine",
                format!("Deleting machine {}", at.name()),
            );
            Stepped::Next(
                delete_op(step::GET_VM_STATUS, OpState::Processing).phase(Phase::Terminating),
            )
        }
        Step::GetVmStatus => get_vm_status(ctx, stored, at).await?,
        Step::Drain => match drain::run(ctx, at).await? {
            drain::Outcome::Finished(change, wait) => stepped((change, wait)),
            // Pods are still going away, or a budget said no: look again later.
            drain::Outcome::Again(wait) => Stepped::Stop(None, wait),
        },
        Step::DeleteVolumeAttachments => stepped(delete_volume_attachments(ctx, at).await?),
        Step::DeleteVm => delete_vm(ctx, at).await?,
        Step::DeleteNode => stepped(delete_node(ctx, at).await?),
        Step::RemoveFinalizer => {
            // Remembered, so that a stale copy is not taken for a machine still
            // to delete; the watch's Delete event forgets it.
            let written = ctx
                .set_finalizers(stored, writes::without_finalizer(stored))
                .await?;
            if written.finalizers().is_empty() {
                ctx.own_writes.record_removed(&written);
            }
            ctx.event(
                at,
                EventType::Normal,
                "Deleted",
                "DeleteMachine",
                format!("Machine {} is deleted", at.name()),
            );
            Stepped::Removed
        }
    })
}

/// The class and secrets a driver call about `machine`'s VM needs. Without a
/// class there cannot have been a VM, unless a providerID says there was.
fn vm_input<D>(
    ctx: &Context<D>,
    machine: &Machine,
) -> DriverResult<(Arc<MachineClass>, SecretData)> {
    ctx.resolve_for_deletion(machine).map_err(|e| {
        let code = if machine.spec.provider_id.is_empty() {
            Code::NotFound
        } else {
            Code::FailedPrecondition
        };
        MachineError::new(code, e.to_string())
    })
}

/// Whether there is a Node to drain: the `node` label says so, else the
/// driver's GetMachineStatus names it (and the label is written).
async fn get_vm_status<D: Driver>(
    ctx: &Context<D>,
    stored: &mut Machine,
    at: &Machine,
) -> Result<Stepped, Error> {
    if ctx.target.is_none() {
        return Ok(Stepped::Next(delete_op(
            text::no_target_skip_drain(),
            OpState::Processing,
        )));
    }
    if at.node_name().is_some() {
        return Ok(Stepped::Next(delete_op(
            step::INITIATE_DRAIN,
            OpState::Processing,
        )));
    }
    let result = match vm_input(ctx, at) {
        Ok((class, secret)) => {
            let req = MachineRequest {
                machine: at,
                class: &class,
                secret: &secret,
            };
            let answer = ctx.driver.get_machine_status(&req).await;
            answer.map(|vm| vm.node_name)
        }
        Err(e) => Err(e),
    };
    let result = result.map_err(|e| never_created(at, e));
    if let Ok(node) = &result
        && !node.is_empty()
    {
        let patch = json!({"metadata": {"labels": {NODE_LABEL: node}}});
        *stored = ctx.patch_machine(at.name(), &patch).await?;
    }
    Ok(stepped(after_vm_status(result)))
}

/// The driver's DeleteMachine, then the bootstrap tokens a machine that never
/// joined under us may still have (one that did lost them when it joined).
async fn delete_vm<D: Driver>(ctx: &Context<D>, at: &Machine) -> Result<Stepped, Error> {
    let result = match vm_input(ctx, at) {
        Ok((class, secret)) => {
            let req = MachineRequest {
                machine: at,
                class: &class,
                secret: &secret,
            };
            ctx.driver.delete_machine(&req).await
        }
        Err(e) => Err(e),
    };
    let result = match result.map_err(|e| never_created(at, e)) {
        // Not a failure: the VM is on its way out and the driver's watch
        // brings us back; the pass waits here.
        Ok(Deletion::Going) => return Ok(Stepped::Stop(None, retry::SHORT)),
        Ok(Deletion::Gone) => Ok(()),
        Err(e) => Err(e),
    };
    if (result.is_ok() || matches!(&result, Err(e) if e.code == Code::NotFound))
        && at.annotation(JOIN_DURATION_ANNOTATION).is_none()
        && let Some(target) = &ctx.target
    {
        let ns = &ctx.settings.namespace;
        bootstrap::delete_tokens(&target.client, &ctx.mcm_tokens, ns, at.name()).await?;
    }
    Ok(stepped(after_vm_deletion(&result)))
}

/// After a forced drain, the node's VolumeAttachments go before the VM, in
/// MCM's words: `live` is how many were found (and deleted), or why they could
/// not be listed; neither stops the deletion.
pub(crate) fn after_volume_attachments(node: &str, live: Result<usize, String>) -> StatusChange {
    let d = match live {
        Err(e) => text::volume_attachments_skipped(&e),
        Ok(0) => text::no_live_volume_attachments(node),
        Ok(_) => text::volumes_detached(node),
    };
    delete_op(d, OpState::Processing)
}

async fn delete_volume_attachments<D>(
    ctx: &Context<D>,
    machine: &Machine,
) -> Result<(StatusChange, Duration), Error> {
    let node = machine.node_name().unwrap_or_default().to_string();
    let Some(target) = &ctx.target else {
        return Ok((after_volume_attachments(&node, Ok(0)), retry::SHORT));
    };
    let api: Api<VolumeAttachment> = Api::all(target.client.clone());
    let live = match api.list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .into_iter()
            .filter(|va| va.spec.node_name == node)
            .collect::<Vec<_>>(),
        Err(e) => {
            return Ok((
                after_volume_attachments(&node, Err(describe(&e))),
                retry::SHORT,
            ));
        }
    };
    for va in &live {
        if va.metadata.deletion_timestamp.is_none() {
            writes::ignore_not_found(api.delete(&va.name_any(), &DeleteParams::default()).await)?;
        }
    }
    Ok((
        after_volume_attachments(&node, Ok(live.len())),
        retry::SHORT,
    ))
}

/// What became of the machine's Node in the Node step.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NodeDeletion {
    /// The machine has no node label: it never joined.
    NoLabel,
    /// No target cluster: there is no Node to delete.
    NoTarget,
    /// Deleted (our finalizer taken off first).
    Deleted,
    /// The Node was gone already.
    Gone,
    /// Our finalizer could not be taken off (the API's error).
    FinalizerFailed(String),
    /// The DELETE failed (the API's error).
    Failed(String),
}

/// The Node step's status change in MCM's words, and when to look again. A
/// failure is retried at this step; every other outcome goes on to the
/// finalizer removal.
pub(crate) fn after_node_deletion(
    machine: &str,
    node: &str,
    outcome: NodeDeletion,
) -> (StatusChange, Duration) {
    let (description, state) = match outcome {
        NodeDeletion::NoLabel => (text::no_node_label(machine), OpState::Processing),
        NodeDeletion::NoTarget | NodeDeletion::Gone => {
            (text::no_node_object(node), OpState::Processing)
        }
        NodeDeletion::Deleted => (text::node_deleted(node), OpState::Processing),
        NodeDeletion::FinalizerFailed(e) => (
            text::node_finalizer_removal_failed(node, &e),
            OpState::Failed,
        ),
        NodeDeletion::Failed(e) => (text::node_deletion_failed(node, &e), OpState::Failed),
    };
    (delete_op(description, state), retry::SHORT)
}

/// MCM's `deleteNodeObject`: the machine's Node goes, our finalizer first.
async fn delete_node<D>(
    ctx: &Context<D>,
    machine: &Machine,
) -> Result<(StatusChange, Duration), Error> {
    let node = machine.node_name();
    let outcome = match (node, &ctx.target) {
        (None, _) => NodeDeletion::NoLabel,
        (Some(_), None) => NodeDeletion::NoTarget,
        (Some(node), Some(target)) => remove_node(target, node).await,
    };
    Ok(after_node_deletion(
        machine.name(),
        node.unwrap_or_default(),
        outcome,
    ))
}

/// Takes our finalizer off the Node and deletes it. The Node is read from the
/// cache; should the cache not show our finalizer yet, the DELETE's answer
/// (the Node as it now is) does, and the finalizer goes then.
async fn remove_node(target: &Target, node_name: &str) -> NodeDeletion {
    let nodes = target.node_writes();
    if let Some(node) = target.node(node_name)
        && let Err(e) = nodes.remove_finalizer(&node).await
    {
        return NodeDeletion::FinalizerFailed(describe(&e));
    }
    match nodes.delete(node_name).await {
        Ok(answer) => {
            if let Some(node) = answer
                && let Err(e) = nodes.remove_finalizer(&node).await
            {
                return NodeDeletion::FinalizerFailed(describe(&e));
            }
            tracing::info!(node = node_name, "deleted the node");
            NodeDeletion::Deleted
        }
        Err(kube::Error::Api(s)) if status::not_found(&s) => NodeDeletion::Gone,
        Err(e) => NodeDeletion::Failed(describe(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(description: &str, phase: Phase) -> Machine {
        let mut m = Machine::default();
        m.status.current_status.phase = Some(phase);
        m.status.last_operation.description = description.into();
        m
    }

    #[test]
    fn steps_are_read_from_the_description() {
        assert_eq!(current_step(&at("", Phase::Running)), Step::SetTerminating);
        assert_eq!(
            current_step(&at(step::GET_VM_STATUS, Phase::Terminating)),
            Step::GetVmStatus
        );
        assert_eq!(
            current_step(&at(
                "Drain successful. Initiate VM deletion",
                Phase::Terminating
            )),
            Step::DeleteVm
        );
        assert_eq!(
            current_step(&at(
                "Force Drain successful. Delete Volume Attachments",
                Phase::Terminating
            )),
            Step::DeleteVolumeAttachments
        );
        assert_eq!(
            current_step(&at(
                "Drain failed due to - x. Will retry in next sync. Initiate node drain",
                Phase::Terminating
            )),
            Step::Drain
        );
        assert_eq!(
            current_step(&at(
                "VM deletion was successful. Initiate node object deletion",
                Phase::Terminating
            )),
            Step::DeleteNode
        );
        assert_eq!(
            current_step(&at(
                "Deletion of Node Object \"n\" is successful. Initiate machine object finalizer removal",
                Phase::Terminating
            )),
            Step::RemoveFinalizer
        );
        assert_eq!(
            current_step(&at("garbage", Phase::Terminating)),
            Step::SetTerminating
        );
    }

    #[test]
    fn each_node_step_outcome_in_mcm_words() {
        let said = |outcome| {
            let (change, wait) = after_node_deletion("m1", "n1", outcome);
            assert_eq!(wait, retry::SHORT);
            (change.description, change.state)
        };
        let processing = |d: &str| (d.to_string(), OpState::Processing);
        let failed = |d: &str| (d.to_string(), OpState::Failed);
        assert_eq!(
            said(NodeDeletion::NoLabel),
            processing(
                "Label \"node\" not present on machine \"m1\", continuing deletion flow. Initiate machine object finalizer removal"
            )
        );
        let no_node = "No node object found for \"n1\", continuing deletion flow. Initiate machine object finalizer removal";
        assert_eq!(said(NodeDeletion::NoTarget), processing(no_node));
        assert_eq!(said(NodeDeletion::Gone), processing(no_node));
        assert_eq!(
            said(NodeDeletion::Deleted),
            processing(
                "Deletion of Node Object \"n1\" is successful. Initiate machine object finalizer removal"
            )
        );
        // Failures stay at the Node step: their text names it as the next one.
        assert_eq!(
            said(NodeDeletion::FinalizerFailed("boom".into())),
            failed(
                "Removal of finalizers from Node Object \"n1\" failed due to error: boom, Retrying. Initiate node object deletion"
            )
        );
        assert_eq!(
            said(NodeDeletion::Failed("boom".into())),
            failed(
                "Deletion of Node Object \"n1\" failed due to error: boom. Initiate node object deletion"
            )
        );
        for failure in [
            NodeDeletion::Failed("x".into()),
            NodeDeletion::FinalizerFailed("x".into()),
        ] {
            let (change, _) = after_node_deletion("m1", "n1", failure);
            assert_eq!(
                current_step(&at(&change.description, Phase::Terminating)),
                Step::DeleteNode
            );
        }
    }

    #[test]
    fn volume_attachments_never_stop_a_deletion() {
        for (live, text) in [
            (
                Ok(0),
                "No Live VolumeAttachments for node: n1. Moving to VM Deletion. Initiate VM deletion",
            ),
            (
                Ok(2),
                "Node Volumes for node: n1 are already detached. Moving to VM Deletion. Initiate VM deletion",
            ),
            (
                Err("forbidden".to_string()),
                "Skipping deleteNodeVolAttachments due to - forbidden. Moving to VM Deletion. Initiate VM deletion",
            ),
        ] {
            let c = after_volume_attachments("n1", live);
            assert_eq!(c.description, text);
            assert_eq!(c.state, OpState::Processing);
            assert_eq!(
                current_step(&advanced(at("", Phase::Terminating), &c)),
                Step::DeleteVm
            );
        }
    }

    #[test]
    fn a_pass_goes_on_after_progress_and_stops_at_a_failure() {
        let progress = delete_op(step::INITIATE_DRAIN, OpState::Processing);
        assert_eq!(
            stepped((progress.clone(), retry::SHORT)),
            Stepped::Next(progress)
        );
        let (failed, wait) = after_vm_deletion(&Err(MachineError::new(Code::Internal, "x")));
        assert_eq!(
            stepped((failed.clone(), wait)),
            Stepped::Stop(Some(failed), retry::LONG)
        );
    }

    #[test]
    fn a_stopping_pass_writes_the_phase_an_earlier_step_set() {
        let terminating =
            delete_op(step::GET_VM_STATUS, OpState::Processing).phase(Phase::Terminating);
        let (vm, _) = after_vm_deletion(&Err(MachineError::new(Code::Internal, "boom")));
        let written = unwritten(Some(terminating), vm.clone());
        assert_eq!(written.phase, Some(Phase::Terminating));
        assert_eq!(written.description, vm.description);
        assert_eq!(written.state, OpState::Failed);
        // Nothing earlier: the step's own change.
        assert_eq!(unwritten(None, vm.clone()), vm);
    }

    #[test]
    fn each_step_leads_to_the_next_in_mcm_order() {
        // The descriptions the steps write, read back as the step that follows.
        let mut m = at("", Phase::Running);
        let mut seen = vec![current_step(&m)];
        for change in [
            delete_op(step::GET_VM_STATUS, OpState::Processing).phase(Phase::Terminating),
            delete_op(step::INITIATE_DRAIN, OpState::Processing),
            delete_op(
                format!("Drain successful. {}", step::INITIATE_VM_DELETION),
                OpState::Processing,
            ),
            after_vm_deletion(&Ok(())).0,
            delete_op(
                format!(
                    "Deletion of Node Object \"n\" is successful. {}",
                    step::INITIATE_FINALIZER_REMOVAL
                ),
                OpState::Processing,
            ),
        ] {
            m = advanced(m, &change);
            seen.push(current_step(&m));
        }
        assert_eq!(
            seen,
            [
                Step::SetTerminating,
                Step::GetVmStatus,
                Step::Drain,
                Step::DeleteVm,
                Step::DeleteNode,
                Step::RemoveFinalizer
            ]
        );
        assert_eq!(m.phase(), Some(&Phase::Terminating));
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
        assert_eq!((c.state, wait), (OpState::Failed, retry::MEDIUM));

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
        // A throttled Delete (the cloud profile's default rate-limit code)
        // waits the long retry too, as in Go.
        for code in [Code::PermissionDenied, Code::ResourceExhausted] {
            let (c, wait) = after_vm_deletion(&Err(MachineError::new(code, "no")));
            assert!(
                c.description
                    .ends_with("Aborting operation. Initiate VM deletion")
            );
            assert_eq!(wait, retry::LONG);
        }
    }
}
