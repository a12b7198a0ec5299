// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! In-place updates, the machine controller's part of MCM v0.62.1's protocol
//! (`updateNodeConditionBasedOnLabel`, `inPlaceUpdate`, `drainNodeForInPlace`):
//! MCM's MachineSet labels a Node a candidate, then selected, for an update;
//! this turns the labels into the Node's `InPlaceUpdate` condition, drains a
//! selected Node, puts the machine `InPlaceUpdating` and the Node
//! `ReadyForUpdate`; gardener-node-agent then updates the machine and labels the
//! Node with the result, which health turns into `InPlaceUpdateSuccessful` (then
//! Running) or `InPlaceUpdateFailed`.
//!
//! [`label_step`] and [`condition_step`] are pure; [`run`] carries them out.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeCondition};
use kube::ResourceExt;

use super::drain;
use crate::api::Machine;
use crate::contract::{OpState, OpType, Phase, inplace, text};
use crate::controller::context::Context;
use crate::controller::error::{Error, retry};
use crate::controller::status::{StatusChange, now};

/// The Node's `InPlaceUpdate` condition, if any.
pub(crate) fn condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == inplace::CONDITION))
}

/// What the Node's labels ask of the condition (MCM's
/// `updateNodeConditionBasedOnLabel`): a new reason and message, or nothing.
pub(crate) fn label_step(node: &Node) -> Option<(&'static str, String)> {
    let labels = node.labels();
    if !labels.contains_key(inplace::CANDIDATE_LABEL) {
        return None;
    }
    let current = condition(node).and_then(|c| c.reason.as_deref());
    let result = labels.get(inplace::RESULT_LABEL).map(String::as_str);
    // A first update, or the next one after a successful one whose result
    // label MCM has since removed.
    if current.is_none() || (current == Some(inplace::SUCCESSFUL) && result.is_none()) {
        return Some((inplace::CANDIDATE, text::IN_PLACE_CANDIDATE.into()));
    }
    if labels.contains_key(inplace::SELECTED_LABEL) {
        match current {
            Some(inplace::CANDIDATE) => {
                return Some((inplace::SELECTED, text::IN_PLACE_SELECTED.into()));
            }
            // Not drained yet.
            Some(inplace::SELECTED) => return None,
            _ => {}
        }
    }
    match result {
        Some(inplace::RESULT_SUCCESSFUL) if current != Some(inplace::SUCCESSFUL) => {
            Some((inplace::SUCCESSFUL, text::IN_PLACE_SUCCESSFUL.into()))
        }
        Some(inplace::RESULT_FAILED) if current != Some(inplace::FAILED) => {
            Some((inplace::FAILED, text::in_place_failed(failed_reason(node))))
        }
        _ => None,
    }
}

/// Why gardener-node-agent says the update failed (empty if it does not say).
fn failed_reason(node: &Node) -> &str {
    node.annotations()
        .get(inplace::FAILED_REASON_ANNOTATION)
        .map_or("", String::as_str)
}

/// What the condition's reason calls for (MCM's `inPlaceUpdate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing to do for an update.
    Nothing,
    /// Selected: drain the Node.
    Drain,
    /// Drained: tell gardener-node-agent the Node is ready for the update.
    MarkReady,
    /// Ready: the agent is updating; look again later.
    AwaitUpdate,
}

pub(crate) fn condition_step(reason: Option<&str>) -> Step {
    match reason {
        Some(inplace::SELECTED) => Step::Drain,
        Some(inplace::DRAINED) => Step::MarkReady,
        Some(inplace::READY) => Step::AwaitUpdate,
        _ => Step::Nothing,
    }
}

/// The machine's status once its Node is drained for the update.
pub(crate) fn updating(machine: &str) -> StatusChange {
    StatusChange::new(
        text::in_place_updating(machine),
        OpState::Processing,
        OpType::InPlaceUpdate,
    )
    .phase(Phase::InPlaceUpdating)
}

/// What health writes once gardener-node-agent labelled the result, for a
/// machine InPlaceUpdating or InPlaceUpdateFailed.
pub(crate) fn result_change(machine: &Machine, node: &Node) -> Option<StatusChange> {
    let name = machine.name();
    match node.labels().get(inplace::RESULT_LABEL).map(String::as_str) {
        Some(inplace::RESULT_SUCCESSFUL)
            if machine.phase() != Some(&Phase::InPlaceUpdateSuccessful) =>
        {
            Some(
                StatusChange::new(
                    text::in_place_updated(name),
                    OpState::Successful,
                    OpType::InPlaceUpdate,
                )
                .phase(Phase::InPlaceUpdateSuccessful),
            )
        }
        Some(inplace::RESULT_FAILED) if machine.phase() != Some(&Phase::InPlaceUpdateFailed) => {
            Some(
                StatusChange::new(
                    text::in_place_update_failed(name, failed_reason(node)),
                    OpState::Failed,
                    OpType::InPlaceUpdate,
                )
                .phase(Phase::InPlaceUpdateFailed),
            )
        }
        _ => None,
    }
}

fn node_condition(reason: &str, message: String) -> NodeCondition {
    NodeCondition {
        type_: inplace::CONDITION.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: Some(now()),
        ..Default::default()
    }
}

/// Carries out the in-place steps for `machine` with `node`; returns when to
/// look again, if sooner than usual.
pub(crate) async fn run<D>(
    ctx: &Context<D>,
    machine: &Machine,
    node: &Node,
) -> Result<Option<Duration>, Error> {
    let Some(target) = &ctx.target else {
        return Ok(None);
    };
    let nodes = target.node_writes();
    let name = node.name_any();
    let mut reason = condition(node).and_then(|c| c.reason.clone());
    if let Some((new, message)) = label_step(node) {
        nodes
            .set_condition(&name, node_condition(new, message))
            .await?;
        tracing::info!(node = name, reason = new, "in-place update condition");
        reason = Some(new.to_string());
    }
    match condition_step(reason.as_deref()) {
        Step::Nothing => Ok(None),
        Step::AwaitUpdate => Ok(Some(retry::MEDIUM)),
        Step::MarkReady => {
            let c = node_condition(inplace::READY, text::IN_PLACE_READY.into());
            nodes.set_condition(&name, c).await?;
            Ok(Some(retry::MEDIUM))
        }
        Step::Drain => {
            match drain::cordon_and_evict(ctx, drain::Purpose::InPlace, machine, node).await {
                Ok(drain::Progress::Done) => {
                    ctx.write_status(machine, &updating(machine.name())).await?;
                    let c = node_condition(inplace::DRAINED, text::IN_PLACE_DRAINED.into());
                    nodes.set_condition(&name, c).await?;
                    Ok(Some(retry::SHORT))
                }
                Ok(drain::Progress::Leaving) => Ok(Some(retry::SHORT)),
                other => {
                    let why = match other {
                        Ok(drain::Progress::Blocked(why)) => why,
                        Err(e) => e.to_string(),
                        Ok(_) => String::new(),
                    };
                    // MCM keeps the phase and says why on the operation.
                    let lo = StatusChange::new(
                        text::drain_failed(&why),
                        OpState::Processing,
                        OpType::DrainNode,
                    );
                    ctx.write_status(machine, &lo).await?;
                    Ok(Some(drain::PDB_RETRY))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(labels: &[(&str, &str)], reason: Option<&str>) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some("n1".into());
        n.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        if let Some(r) = reason {
            n.status = Some(k8s_openapi::api::core::v1::NodeStatus {
                conditions: Some(vec![node_condition(r, String::new())]),
                ..Default::default()
            });
        }
        n
    }

    const C: (&str, &str) = (inplace::CANDIDATE_LABEL, "true");
    const S: (&str, &str) = (inplace::SELECTED_LABEL, "true");

    #[test]
    fn labels_move_the_condition_through_mcm_steps() {
        assert_eq!(label_step(&node(&[], None)), None);
        assert_eq!(
            label_step(&node(&[C], None)).map(|s| s.0),
            Some(inplace::CANDIDATE)
        );
        assert_eq!(
            label_step(&node(&[C, S], Some(inplace::CANDIDATE))).map(|s| s.0),
            Some(inplace::SELECTED)
        );
        // Selected but not drained yet: the drain comes first.
        assert_eq!(label_step(&node(&[C, S], Some(inplace::SELECTED))), None);
        let done = (inplace::RESULT_LABEL, inplace::RESULT_SUCCESSFUL);
        assert_eq!(
            label_step(&node(&[C, S, done], Some(inplace::READY))),
            Some((
                inplace::SUCCESSFUL,
                "Node in-place update successful".into()
            ))
        );
        assert_eq!(
            label_step(&node(&[C, S, done], Some(inplace::SUCCESSFUL))),
            None
        );
        // The next update, once MCM removed the result label.
        assert_eq!(
            label_step(&node(&[C], Some(inplace::SUCCESSFUL))).map(|s| s.0),
            Some(inplace::CANDIDATE)
        );
        let mut failed = node(
            &[C, S, (inplace::RESULT_LABEL, inplace::RESULT_FAILED)],
            Some(inplace::READY),
        );
        failed.metadata.annotations = Some(
            [(
                inplace::FAILED_REASON_ANNOTATION.to_string(),
                "disk full".to_string(),
            )]
            .into(),
        );
        assert_eq!(
            label_step(&failed),
            Some((
                inplace::FAILED,
                "Node in-place update failed: disk full".into()
            ))
        );
    }

    #[test]
    fn the_condition_says_what_comes_next() {
        assert_eq!(condition_step(Some(inplace::SELECTED)), Step::Drain);
        assert_eq!(condition_step(Some(inplace::DRAINED)), Step::MarkReady);
        assert_eq!(condition_step(Some(inplace::READY)), Step::AwaitUpdate);
        assert_eq!(condition_step(Some(inplace::CANDIDATE)), Step::Nothing);
        assert_eq!(condition_step(None), Step::Nothing);
    }

    #[test]
    fn the_agents_result_becomes_the_phase_in_mcm_words() {
        let mut m = Machine::named("m1");
        m.status.current_status.phase = Some(Phase::InPlaceUpdating);
        let ok = node(&[(inplace::RESULT_LABEL, inplace::RESULT_SUCCESSFUL)], None);
        let c = result_change(&m, &ok).unwrap();
        assert_eq!(c.phase, Some(Phase::InPlaceUpdateSuccessful));
        assert_eq!(
            c.description,
            "Machine m1 successfully updated dependencies"
        );
        assert_eq!(c.state, OpState::Successful);
        assert_eq!(c.op, OpType::InPlaceUpdate);
        let mut bad = node(&[(inplace::RESULT_LABEL, inplace::RESULT_FAILED)], None);
        bad.metadata.annotations = Some(
            [(
                inplace::FAILED_REASON_ANNOTATION.to_string(),
                "boom".to_string(),
            )]
            .into(),
        );
        let c = result_change(&m, &bad).unwrap();
        assert_eq!(c.phase, Some(Phase::InPlaceUpdateFailed));
        assert_eq!(
            c.description,
            "Machine m1 failed to update dependencies: boom"
        );
        assert_eq!(result_change(&m, &node(&[], None)), None);
        assert_eq!(
            updating("m1").description,
            "Machine m1 is undergoing an in-place update"
        );
    }
}
