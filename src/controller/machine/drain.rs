// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Drains, carried out: a deleting machine's (Terminating condition, cordon,
//! evictions, waiting for the Pods to go) and the cordon-and-evict of an
//! in-place update or a preserved machine. What happens to each Pod is decided
//! in [`plan`]; this module reads what it needs and does it. Never blocks: a
//! drain in progress returns and is looked at again.
//!
//! Long because: the Terminating condition, the cordon, the eviction pass and
//! its failure type read best beside the deletion pass that uses them; a
//! third is tests.

pub(crate) mod plan;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, EvictParams, ListParams};
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};

use crate::api::{Machine, PodOnNode};
use crate::client::describe;
use crate::client::status;
use crate::contract::{
    NODE_TERMINATING_CONDITION, NODE_TERMINATING_REASON_SCALE_DOWN,
    NODE_TERMINATING_REASON_UNHEALTHY, OpState, OpType, Phase, text,
};
use crate::controller::context::{Context, Target};
use crate::controller::error::{Error, retry};
use crate::controller::events::EventType;
use crate::controller::node::writes::NodeWrites;
use crate::controller::status::{StatusChange, now};
use plan::{Answer, Limits, Mode, Next, PodAction};
pub(crate) use plan::{MIRROR_ANNOTATION, PDB_RETRY, Progress, Purpose};

/// The limits of `machine`'s drains, from its settings.
fn limits<D>(ctx: &Context<D>, machine: &Machine) -> Limits {
    Limits {
        drain_timeout: ctx.settings.drain_timeout(machine),
        max_evict_retries: ctx.settings.max_evict_retries(machine),
    }
}

/// The Terminating condition to put on the node.
pub(crate) fn terminating_condition(
    machine: &Machine,
    existing: Option<&NodeCondition>,
) -> NodeCondition {
    let (reason, message) = match existing {
        Some(c) if machine.phase() == Some(&Phase::Terminating) && c.status == "True" => (
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        ),
        _ if machine.phase() == Some(&Phase::Failed) => (
            NODE_TERMINATING_REASON_UNHEALTHY.to_string(),
            text::TERMINATING_FAILED_MACHINE.to_string(),
        ),
        _ => (
            NODE_TERMINATING_REASON_SCALE_DOWN.to_string(),
            text::TERMINATING_SCALE_DOWN.to_string(),
        ),
    };
    NodeCondition {
        type_: NODE_TERMINATING_CONDITION.to_string(),
        status: "True".to_string(),
        reason: Some(reason),
        message: Some(message),
        last_heartbeat_time: Some(now()),
        last_transition_time: Some(
            existing
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or_else(now),
        ),
    }
}

/// The end of one drain pass.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    /// The step is over: write this and go on.
    Finished(StatusChange, Duration),
    /// Still draining: look again after this long (Pods leaving, or a budget said no).
    Again(Duration),
}

fn done(description: String, st: OpState) -> Outcome {
    Outcome::Finished(
        StatusChange::new(description, st, OpType::Delete),
        retry::SHORT,
    )
}

/// Runs one pass of a deleting machine's drain.
pub(crate) async fn run<D>(ctx: &Context<D>, machine: &Machine) -> Result<Outcome, Error> {
    let (Some(node_name), Some(target)) = (machine.node_name(), &ctx.target) else {
        return Ok(done(
            text::drain_skipped_no_node_name(),
            OpState::Processing,
        ));
    };
    // From the cache, as MCM reads it from its lister.
    let Some(node) = ctx.node(node_name) else {
        // No node, nothing to drain.
        return Ok(done(text::drain_successful(), OpState::Processing));
    };
    let mode = plan::mode(
        Purpose::Deletion,
        machine,
        Some(&node),
        limits(ctx, machine),
        jiff::Timestamp::now(),
    );
    if let Err(e) = mark_and_cordon(&target.node_writes(), machine, &node).await
        && mode.force.is_none()
    {
        return Ok(done(
            text::drain_condition_update_failed(&describe(&e)),
            OpState::Failed,
        ));
    }
    let result = evict_pods_of(target, node_name, &mode)
        .await
        .map_err(|e| e.to_string());
    if let Ok(Progress::Blocked(why)) = &result {
        let note = format!("Eviction refused by a PodDisruptionBudget, retrying in 20s: {why}");
        ctx.event(machine, EventType::Warning, "DrainBlocked", "Drain", note);
    }
    Ok(after_evictions(result, mode.force.is_some()))
}

/// Where a drain pass's evictions leave the deletion, in MCM's words: done
/// (on to the VM, or, forced, to the VolumeAttachments), again later, or failed.
pub(crate) fn after_evictions(result: Result<Progress, String>, force: bool) -> Outcome {
    match result {
        Ok(Progress::Done) if force => done(text::force_drain_successful(), OpState::Processing),
        Ok(Progress::Done) => done(text::drain_successful(), OpState::Processing),
        Ok(Progress::Leaving) => Outcome::Again(retry::SHORT),
        Ok(Progress::Blocked(_)) => Outcome::Again(PDB_RETRY),
        Err(e) if force => done(text::force_drain_failed(&e), OpState::Processing),
        Err(e) => done(text::drain_failed(&e), OpState::Failed),
    }
}

async fn mark_and_cordon(
    nodes: &NodeWrites,
    machine: &Machine,
    node: &Node,
) -> Result<(), kube::Error> {
    let name = node.name_any();
    let conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let existing = conditions
        .iter()
        .find(|c| c.type_ == NODE_TERMINATING_CONDITION);
    if existing.is_none_or(|c| c.status != "True") {
        let condition = terminating_condition(machine, existing);
        nodes.set_condition(&name, condition).await?;
    }
    nodes.set_unschedulable(node, true).await?;
    Ok(())
}

/// One pass of the cordon and evictions of an in-place update
/// (`drainNodeForInPlace`) or of a preserved machine's Node
/// (`drainPreservedNode`): no Terminating condition, as MCM. Forced, budgets
/// aside, only for [`plan::force`]'s reasons, each on the purpose's own clock.
pub(crate) async fn cordon_and_evict<D>(
    ctx: &Context<D>,
    purpose: Purpose,
    machine: &Machine,
    node: &Node,
) -> Result<Progress, Failure> {
    let Some(target) = &ctx.target else {
        return Ok(Progress::Done);
    };
    let name = node.name_any();
    target.node_writes().set_unschedulable(node, true).await?;
    let mode = plan::mode(
        purpose,
        machine,
        Some(node),
        limits(ctx, machine),
        jiff::Timestamp::now(),
    );
    if let Some(why) = &mode.force {
        tracing::info!(node = name, ?purpose, "draining by force: {why}");
    }
    evict_pods_of(target, &name, &mode).await
}

/// The Pods bound to `node`, read from the cache of all of the target's Pods
/// without copying the others (a drain pass runs per deleting machine).
pub(crate) fn pods_on(pods: &Store<PodOnNode>, node: &str) -> Vec<PodOnNode> {
    pods.state_filter(|p| node_of(p) == Some(node))
        .into_iter()
        .map(std::sync::Arc::unwrap_or_clone)
        .collect()
}

/// The node a Pod is bound to.
pub(crate) fn node_of(pod: &PodOnNode) -> Option<&str> {
    pod.node_name()
}

/// What the drain reads of a Pod (identity, owner, mirror annotation, deletion,
/// node), for a cache of every Pod of the target that stays small.
pub(crate) fn trim_pod(pod: &mut PodOnNode) {
    let meta = &mut pod.metadata;
    meta.managed_fields = None;
    meta.labels = None;
    meta.annotations = meta.annotations.take().and_then(|mut a| {
        a.retain(|k, _| k == MIRROR_ANNOTATION);
        (!a.is_empty()).then_some(a)
    });
}

/// A drain pass that could not go on: the API said no, or budgets that can
/// never allow an eviction (MCM's errors, joined as Go joins several).
#[derive(Debug)]
pub(crate) enum Failure {
    Api(kube::Error),
    Budgets(Vec<String>),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Api(e) => f.write_str(&describe(e)),
            Failure::Budgets(all) if all.len() == 1 => f.write_str(&all[0]),
            Failure::Budgets(all) => write!(f, "[{}]", all.join(", ")),
        }
    }
}

impl From<kube::Error> for Failure {
    fn from(e: kube::Error) -> Self {
        Failure::Api(e)
    }
}

/// The Pods on `node` (from the Pod cache, as MCM's lister), each treated as
/// [`plan::pod_action`] says.
async fn evict_pods_of(target: &Target, node: &str, mode: &Mode) -> Result<Progress, Failure> {
    let on_node = pods_on(&target.pods, node);
    evict_all(target, node, &on_node, mode).await
}

/// One pass over the Pods of `node`: each Pod's action is decided by
/// [`plan::pod_action`], done here, and the API's answer judged by
/// [`plan::after`]; [`plan::conclude`] says where the pass leaves the drain.
async fn evict_all(
    target: &Target,
    node: &str,
    on_node: &[PodOnNode],
    mode: &Mode,
) -> Result<Progress, Failure> {
    let mut nexts = Vec::with_capacity(on_node.len());
    for pod in on_node {
        let (name, ns) = (pod.name_any(), pod.namespace().unwrap_or_default());
        let action = plan::pod_action(pod, mode);
        let answer = match action {
            PodAction::Leave | PodAction::Wait => None,
            PodAction::Delete => Some(delete_now(&target.client, &ns, &name).await?),
            PodAction::Evict => Some(evict(target, &ns, &name).await?),
        };
        let next = plan::after(&ns, &name, action, answer, mode);
        if next == Next::DeleteAfterRefusal {
            // Retried long enough: the Pod goes without the budget's consent, as in MCM.
            // Not forced: the drain still waits for it to be gone.
            tracing::info!(node, pod = name, "evictions retried long enough, deleting");
            delete_now(&target.client, &ns, &name).await?;
        }
        nexts.push(next);
    }
    let progress = plan::conclude(&nexts, mode).map_err(Failure::Budgets);
    match &progress {
        Err(failure) => tracing::info!(node, "drain failed: {failure}"),
        Ok(Progress::Blocked(why)) => tracing::info!(
            node,
            "eviction refused by a PodDisruptionBudget, retrying: {why}"
        ),
        Ok(_) => {}
    }
    progress
}

/// Deletes a Pod with grace 0 (MCM's `deletePod`).
async fn delete_now(target: &Client, ns: &str, name: &str) -> Result<Answer, kube::Error> {
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    let api: Api<Pod> = Api::namespaced(target.clone(), ns);
    match api.delete(name, &dp).await {
        Ok(_) => Ok(Answer::Accepted),
        Err(kube::Error::Api(s)) if status::not_found(&s) => Ok(Answer::Gone),
        Err(e) => Err(e),
    }
}

/// Asks the eviction API (through the client that takes a 429 as an answer,
/// not as a reason to retry); a refusal comes with the budget behind it.
async fn evict(target: &Target, ns: &str, name: &str) -> Result<Answer, kube::Error> {
    let api: Api<Pod> = Api::namespaced(target.evictor.clone(), ns);
    match api.evict(name, &EvictParams::default()).await {
        Ok(_) => Ok(Answer::Accepted),
        Err(kube::Error::Api(s)) if status::not_found(&s) => Ok(Answer::Gone),
        // A PodDisruptionBudget says not now.
        Err(kube::Error::Api(s)) if status::too_many_requests(&s) => Ok(Answer::Refused {
            message: s.message,
            budget: budget_of(&target.client, ns, name).await.map(Box::new),
        }),
        Err(e) => Err(e),
    }
}

/// The budget that covers a Pod whose eviction was refused, read live (the
/// Pod cache keeps no labels; this runs once per refusal, every 20 s at most).
/// A budget that cannot be read counts as none: the eviction is retried.
async fn budget_of(target: &Client, ns: &str, pod: &str) -> Option<PodDisruptionBudget> {
    let pods: Api<PodOnNode> = Api::namespaced(target.clone(), ns);
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(target.clone(), ns);
    let read = async {
        let labels = pods
            .get_metadata(pod)
            .await?
            .metadata
            .labels
            .unwrap_or_default();
        let all = budgets.list(&ListParams::default()).await?.items;
        Ok::<_, kube::Error>(plan::budget_for(&labels, &all).cloned())
    };
    read.await
        .inspect_err(|e| tracing::debug!(pod, "the Pod's budget cannot be read: {}", describe(e)))
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan::is_drainable;

    #[test]
    fn each_drain_outcome_in_mcm_words() {
        let text = |o: Outcome| match o {
            Outcome::Finished(c, _) => (c.description, Some(c.state)),
            Outcome::Again(wait) => (format!("again after {wait:?}"), None),
        };
        assert_eq!(
            text(after_evictions(Ok(Progress::Done), false)),
            (
                "Drain successful. Initiate VM deletion".into(),
                Some(OpState::Processing)
            )
        );
        assert_eq!(
            text(after_evictions(Ok(Progress::Done), true)),
            (
                "Force Drain successful. Delete Volume Attachments".into(),
                Some(OpState::Processing)
            )
        );
        assert_eq!(
            after_evictions(Ok(Progress::Leaving), false),
            Outcome::Again(retry::SHORT)
        );
        // A budget said no: retried every 20 s, as MCM's eviction loop.
        assert_eq!(
            after_evictions(Ok(Progress::Blocked("ns/p".into())), false),
            Outcome::Again(PDB_RETRY)
        );
        assert_eq!(
            text(after_evictions(Err("boom".into()), false)),
            (
                "Drain failed due to - boom. Will retry in next sync. Initiate node drain".into(),
                Some(OpState::Failed)
            )
        );
        assert_eq!(
            text(after_evictions(Err("boom".into()), true)),
            (
                "Drain failed due to - boom. However, since it's a force deletion shall continue deletion of VM. Delete Volume Attachments".into(),
                Some(OpState::Processing)
            )
        );
    }

    #[test]
    fn the_pod_cache_keeps_what_a_drain_reads() {
        let pod: PodOnNode = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "web", "namespace": "app", "labels": {"app": "web"},
                "annotations": {"kubernetes.io/config.mirror": "x", "big": "y"},
                "deletionTimestamp": "2026-01-01T00:00:00Z",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                    "name": "ds", "uid": "u", "controller": true}],
            },
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running"},
        }))
        .unwrap();
        let mut trimmed = pod.clone();
        trim_pod(&mut trimmed);
        assert_eq!(is_drainable(&trimmed), is_drainable(&pod));
        assert_eq!(node_of(&trimmed), Some("n1"));
        assert_eq!(
            trimmed.metadata.deletion_timestamp,
            pod.metadata.deletion_timestamp
        );
        assert_eq!(trimmed.annotations().len(), 1);
        assert_eq!(trimmed.labels().len(), 0);
        let (pods, mut writer) = kube::runtime::reflector::store::<PodOnNode>();
        let mut elsewhere = PodOnNode::default();
        elsewhere.metadata.name = Some("elsewhere".into());
        for pod in [trimmed, elsewhere] {
            writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(pod));
        }
        assert_eq!(pods_on(&pods, "n1").len(), 1);
        assert!(pods_on(&pods, "n2").is_empty());
    }

    #[test]
    fn terminating_reason_follows_the_phase() {
        let mut m = Machine::default();
        m.status.current_status.phase = Some(Phase::Running);
        assert_eq!(
            terminating_condition(&m, None).reason.as_deref(),
            Some("ScaleDown")
        );
        m.status.current_status.phase = Some(Phase::Failed);
        assert_eq!(
            terminating_condition(&m, None).reason.as_deref(),
            Some("Unhealthy")
        );
    }
}
