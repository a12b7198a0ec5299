// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Drain of a deleting machine's node: Terminating condition, cordon, evictions
//! through the eviction API, and waiting for the Pods to go. Never blocks: a
//! drain in progress returns and is looked at again.
//!
//! Long because: the force rules, the eviction-retry limit, the Terminating
//! condition and the Pod cache's trim read best beside the pass that uses them;
//! a third is tests.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod};
use kube::api::{DeleteParams, EvictParams, ListParams, Patch};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::api::{Machine, PodOnNode};
use crate::client::describe;
use crate::contract::{
    FORCE_DELETION_LABEL, NODE_TERMINATING_CONDITION, NODE_TERMINATING_REASON_SCALE_DOWN,
    NODE_TERMINATING_REASON_UNHEALTHY, OpState, OpType, Phase, step,
};
use crate::controller::context::Context;
use crate::controller::error::{Error, retry};
use crate::controller::status::{StatusChange, now};
use crate::duration::age;

/// A node NotReady (or read-only) for this long is drained by force.
const NOT_READY_FORCE_AFTER: Duration = Duration::from_secs(5 * 60);
/// MCM's label that drains a preserved machine's Node by force.
const FORCE_DRAIN_LABEL: &str = "force-drain";
/// Pause between evictions refused by a PodDisruptionBudget.
pub const PDB_RETRY: Duration = Duration::from_secs(20);

/// Why a drain runs in force mode, if it does.
pub fn force_reason(
    machine: &Machine,
    drain_timeout: Duration,
    now: jiff::Timestamp,
) -> Option<String> {
    if machine
        .label(FORCE_DELETION_LABEL)
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
    {
        return Some("the force-deletion label is set".into());
    }
    if let Some(deleted) = &machine.metadata.deletion_timestamp
        && age(Some(&deleted.0), now) > drain_timeout
    {
        return Some("the drain timeout has passed".into());
    }
    for (kind, healthy) in [("Ready", "True"), ("ReadonlyFilesystem", "False")] {
        if let Some(c) = machine.status.conditions.iter().find(|c| c.type_ == kind)
            && c.status != healthy
            && age(c.last_transition_time.as_ref().map(|t| &t.0), now) > NOT_READY_FORCE_AFTER
        {
            return Some(format!(
                "the node's {kind} condition is {} for over 5min",
                c.status
            ));
        }
    }
    None
}

/// Marks a static Pod's mirror in the API server.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Pods a drain leaves alone: DaemonSet Pods and mirror Pods.
pub fn is_drainable(pod: &PodOnNode) -> bool {
    let daemon = pod
        .owner_references()
        .iter()
        .any(|o| o.kind == "DaemonSet" && o.controller == Some(true));
    let mirror = pod.annotations().contains_key(MIRROR_ANNOTATION);
    !daemon && !mirror
}

/// The Terminating condition to put on the node.
pub fn terminating_condition(machine: &Machine, existing: Option<&NodeCondition>) -> NodeCondition {
    let (reason, message) = match existing {
        Some(c) if machine.phase() == Some(&Phase::Terminating) && c.status == "True" => (
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        ),
        _ if machine.phase() == Some(&Phase::Failed) => (
            NODE_TERMINATING_REASON_UNHEALTHY.to_string(),
            "Machine Controller is terminating failed machine".to_string(),
        ),
        _ => (
            NODE_TERMINATING_REASON_SCALE_DOWN.to_string(),
            "Machine Controller is scaling down machine".to_string(),
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
pub enum Outcome {
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

/// Runs one pass of the drain.
pub async fn run<D>(ctx: &Context<D>, machine: &Machine) -> Result<Outcome, Error> {
    let (Some(node_name), Some(target)) = (machine.node_name(), &ctx.target) else {
        return Ok(done(
            format!(
                "Skipping drain as nodeName is not a valid one for machine. {}",
                step::INITIATE_VM_DELETION
            ),
            OpState::Processing,
        ));
    };
    let force = force_reason(
        machine,
        ctx.settings.drain_timeout(machine),
        jiff::Timestamp::now(),
    );
    let nodes: Api<Node> = Api::all(target.clone());
    // From the cache, as MCM reads it from its lister.
    let Some(node) = ctx.node(node_name) else {
        // No node, nothing to drain.
        return Ok(done(
            format!("Drain successful. {}", step::INITIATE_VM_DELETION),
            OpState::Processing,
        ));
    };

    if let Err(e) = mark_and_cordon(&nodes, machine, &node).await
        && force.is_none()
    {
        return Ok(done(
            format!(
                "Drain failed due to failure in update of node conditions - {}. Will retry in next sync. {}",
                describe(&e),
                step::INITIATE_DRAIN
            ),
            OpState::Failed,
        ));
    }

    let evictor = ctx.evictor.as_ref().unwrap_or(target);
    let exhausted = evictions_exhausted(
        machine,
        ctx.settings.max_evict_retries(machine),
        ctx.settings.drain_timeout(machine),
        jiff::Timestamp::now(),
    );
    let on_node = match &ctx.pods {
        Some(pods) => pods_on(&pods.state(), node_name),
        None => {
            let all: Api<PodOnNode> = Api::all(target.clone());
            all.list(&ListParams::default().fields(&format!("spec.nodeName={node_name}")))
                .await?
                .items
        }
    };
    let result = evict_all(
        target,
        evictor,
        node_name,
        on_node,
        force.is_some(),
        exhausted,
    )
    .await
    .map_err(|e| describe(&e));
    if let Ok(Progress::Blocked(why)) = &result {
        let note = format!("Eviction refused by a PodDisruptionBudget, retrying in 20s: {why}");
        ctx.event(machine, true, "DrainBlocked", "Drain", note);
    }
    Ok(after_evictions(result, force.is_some()))
}

/// Where a drain pass's evictions leave the deletion, in MCM's words: done
/// (on to the VM, or, forced, to the VolumeAttachments), again later, or failed.
pub fn after_evictions(result: Result<Progress, String>, force: bool) -> Outcome {
    match result {
        Ok(Progress::Done) if force => done(
            format!(
                "Force Drain successful. {}",
                step::DELETE_VOLUME_ATTACHMENTS
            ),
            OpState::Processing,
        ),
        Ok(Progress::Done) => done(
            format!("Drain successful. {}", step::INITIATE_VM_DELETION),
            OpState::Processing,
        ),
        Ok(Progress::Leaving) => Outcome::Again(retry::SHORT),
        Ok(Progress::Blocked(_)) => Outcome::Again(PDB_RETRY),
        Err(e) if force => done(
            format!(
                "Drain failed due to - {e}. However, since it's a force deletion shall continue deletion of VM. {}",
                step::DELETE_VOLUME_ATTACHMENTS
            ),
            OpState::Processing,
        ),
        Err(e) => done(
            format!(
                "Drain failed due to - {e}. Will retry in next sync. {}",
                step::INITIATE_DRAIN
            ),
            OpState::Failed,
        ),
    }
}

async fn mark_and_cordon(
    nodes: &Api<Node>,
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
        // A strategic merge keyed by type replaces just this condition.
        let patch = json!({"status": {"conditions": [condition]}});
        nodes
            .patch_status(
                &name,
                &crate::controller::writes::params(),
                &Patch::Strategic(&patch),
            )
            .await?;
    }
    cordon(nodes, node).await
}

/// Marks `node` unschedulable, unless it is.
async fn cordon(nodes: &Api<Node>, node: &Node) -> Result<(), kube::Error> {
    if node.spec.as_ref().and_then(|s| s.unschedulable) != Some(true) {
        let patch = json!({"spec": {"unschedulable": true}});
        nodes
            .patch(
                &node.name_any(),
                &crate::controller::writes::params(),
                &Patch::Merge(&patch),
            )
            .await?;
    }
    Ok(())
}

/// Where a drain pass left the node.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// No drainable Pod is left (in force mode: all are deleted).
    Done,
    /// Pods are on their way out.
    Leaving,
    /// A PodDisruptionBudget refused an eviction (which Pod, and why).
    Blocked(String),
}

/// Whether a refused eviction has been retried often enough: the retries are
/// counted from the deletion time, one per [`PDB_RETRY`], so no state is kept.
pub fn evictions_exhausted(
    machine: &Machine,
    max_evict_retries: i32,
    drain_timeout: Duration,
    now: jiff::Timestamp,
) -> bool {
    let Some(deleted) = &machine.metadata.deletion_timestamp else {
        return false;
    };
    let by_timeout = drain_timeout.as_secs() / PDB_RETRY.as_secs();
    let limit = u64::try_from(max_evict_retries.max(0))
        .unwrap_or(0)
        .min(by_timeout);
    age(Some(&deleted.0), now).as_secs() / PDB_RETRY.as_secs() >= limit
}

/// One pass of a preserved machine's drain (MCM's `drainPreservedNode`):
/// cordon and evict, without the Terminating condition of a deletion; by force
/// (Pods deleted at once) past the drain timeout since the machine's last status
/// change, with MCM's `force-drain: "True"` label, or when the Node has not been
/// Ready for 5 minutes (its kubelet cannot end a Pod).
pub async fn cordon_and_evict<D>(
    ctx: &Context<D>,
    machine: &Machine,
    node: &Node,
) -> Result<Progress, Error> {
    let Some(target) = &ctx.target else {
        return Ok(Progress::Done);
    };
    let name = node.name_any();
    cordon(&Api::all(target.clone()), node).await?;
    let now = jiff::Timestamp::now();
    let timeout = ctx.settings.drain_timeout(machine);
    let since_change = age(machine.status_updated_at(), now);
    let unreachable = machine.status.conditions.iter().any(|c| {
        c.type_ == "Ready"
            && c.status != "True"
            && age(c.last_transition_time.as_ref().map(|t| &t.0), now) > NOT_READY_FORCE_AFTER
    });
    let force =
        since_change > timeout || unreachable || machine.label(FORCE_DRAIN_LABEL) == Some("True");
    let on_node = match &ctx.pods {
        Some(pods) => pods_on(&pods.state(), &name),
        None => {
            let all: Api<PodOnNode> = Api::all(target.clone());
            all.list(&ListParams::default().fields(&format!("spec.nodeName={name}")))
                .await?
                .items
        }
    };
    let evictor = ctx.evictor.as_ref().unwrap_or(target);
    Ok(evict_all(target, evictor, &name, on_node, force, false).await?)
}

/// The Pods bound to `node`, of all of the target's Pods.
pub fn pods_on(pods: &[std::sync::Arc<PodOnNode>], node: &str) -> Vec<PodOnNode> {
    pods.iter()
        .filter(|p| node_of(p) == Some(node))
        .map(|p| (**p).clone())
        .collect()
}

/// The node a Pod is bound to.
pub fn node_of(pod: &PodOnNode) -> Option<&str> {
    pod.node_name()
}

/// What the drain reads of a Pod (identity, owner, mirror annotation, deletion,
/// node), for a cache of every Pod of the target that stays small.
pub fn trim_pod(pod: &mut PodOnNode) {
    let meta = &mut pod.metadata;
    meta.managed_fields = None;
    meta.labels = None;
    meta.annotations = meta.annotations.take().and_then(|mut a| {
        a.retain(|k, _| k == MIRROR_ANNOTATION);
        (!a.is_empty()).then_some(a)
    });
}

async fn evict_all(
    target: &Client,
    evictor: &Client,
    node: &str,
    on_node: Vec<PodOnNode>,
    force: bool,
    exhausted: bool,
) -> Result<Progress, kube::Error> {
    let drainable: Vec<PodOnNode> = on_node.into_iter().filter(is_drainable).collect();
    let mut blocked = None;
    for pod in &drainable {
        let (name, ns) = (pod.name_any(), pod.namespace().unwrap_or_default());
        let api: Api<Pod> = Api::namespaced(target.clone(), &ns);
        if force {
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            };
            match api.delete(&name, &dp).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
            continue;
        }
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let evict_api: Api<Pod> = Api::namespaced(evictor.clone(), &ns);
        match evict_api.evict(&name, &EvictParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            // Retried long enough: the Pod goes without the budget's consent, as in MCM.
            Err(kube::Error::Api(s)) if s.code == 429 && exhausted => {
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            // A PodDisruptionBudget says not now: keep draining the others.
            Err(kube::Error::Api(s)) if s.code == 429 => {
                blocked = Some(format!("{ns}/{name}: {}", s.message))
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(why) = blocked {
        tracing::info!(
            node,
            "eviction refused by a PodDisruptionBudget, retrying: {why}"
        );
        return Ok(Progress::Blocked(why));
    }
    Ok(if force || drainable.is_empty() {
        Progress::Done
    } else {
        Progress::Leaving
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn force_mode_has_three_causes() {
        let now = ts("2026-01-01T01:00:00Z");
        let mut m = Machine::default();
        assert_eq!(force_reason(&m, Duration::from_secs(7200), now), None);
        m.metadata.labels = Some([(FORCE_DELETION_LABEL.to_string(), "True".to_string())].into());
        assert!(
            force_reason(&m, Duration::from_secs(7200), now)
                .unwrap()
                .contains("label")
        );
        m.metadata.labels = None;
        m.metadata.deletion_timestamp = Some(Time(ts("2026-01-01T00:00:00Z")));
        assert!(
            force_reason(&m, Duration::from_secs(1800), now)
                .unwrap()
                .contains("timeout")
        );
        assert_eq!(force_reason(&m, Duration::from_secs(7200), now), None);
        m.status.conditions = vec![NodeCondition {
            type_: "Ready".into(),
            status: "Unknown".into(),
            last_transition_time: Some(Time(ts("2026-01-01T00:50:00Z"))),
            ..Default::default()
        }];
        assert!(
            force_reason(&m, Duration::from_secs(7200), now)
                .unwrap()
                .contains("Ready")
        );
    }

    #[test]
    fn refused_evictions_are_retried_up_to_the_limit() {
        let mut m = Machine::default();
        let now = ts("2026-01-01T00:10:00Z");
        assert!(!evictions_exhausted(
            &m,
            360,
            Duration::from_secs(7200),
            now
        ));
        m.metadata.deletion_timestamp = Some(Time(ts("2026-01-01T00:00:00Z")));
        // 600 s since deletion = 30 retries of 20 s.
        assert!(!evictions_exhausted(
            &m,
            360,
            Duration::from_secs(7200),
            now
        ));
        assert!(evictions_exhausted(&m, 30, Duration::from_secs(7200), now));
        // The drain timeout caps the retries too.
        assert!(evictions_exhausted(&m, 360, Duration::from_secs(600), now));
    }

    #[test]
    fn daemonset_and_mirror_pods_stay() {
        let mut pod = PodOnNode::default();
        assert!(is_drainable(&pod));
        pod.metadata.owner_references = Some(vec![OwnerReference {
            kind: "DaemonSet".into(),
            controller: Some(true),
            ..Default::default()
        }]);
        assert!(!is_drainable(&pod));
        let mut mirror = PodOnNode::default();
        mirror.metadata.annotations =
            Some([("kubernetes.io/config.mirror".to_string(), "x".to_string())].into());
        assert!(!is_drainable(&mirror));
    }

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
        let pods = [
            std::sync::Arc::new(trimmed),
            std::sync::Arc::new(PodOnNode::default()),
        ];
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
