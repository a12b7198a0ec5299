// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Machine preservation, as MCM v0.62.1's `manageMachinePreservation` does it:
//! a machine (or its Node) annotated `node.machine.sapcloud.io/preserve` is kept
//! with its Node for `--machine-preserve-timeout` instead of being replaced:
//! `now` at once, `when-failed` (and the MachineSet's `auto-preserved`) while it
//! is Failed. A preserved Node is drained and cordoned when Failed, carries the
//! `Preserved` condition and cluster-autoscaler's scale-down-disabled
//! annotation, and is uncordoned when its machine runs again.
//!
//! [`decide`] is pure: it reads the machine, its Node and the clock and returns
//! a [`Plan`]; [`run`] carries it out.
//!
//! Long because: MCM's rules (which annotation wins, when to start, stop, drain
//! and record) and the executor that follows them read best together; half is
//! tests.

use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use serde_json::{Value as Json, json};

use super::drain;
use crate::api::Machine;
use crate::contract::{Phase, preserve};
use crate::controller::context::Context;
use crate::controller::error::{Error, retry};
use crate::controller::node::writes::NodeWrites;
use crate::controller::status::now;

/// The values of the preserve annotation; anything else is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    Now,
    WhenFailed,
    AutoPreserved,
    False,
}

impl Value {
    pub(crate) fn parse(text: &str) -> Option<Value> {
        match text {
            "now" => Some(Value::Now),
            "when-failed" => Some(Value::WhenFailed),
            "auto-preserved" => Some(Value::AutoPreserved),
            "false" => Some(Value::False),
            _ => None,
        }
    }
}

/// What preservation does for a machine this time.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Plan {
    /// Not preservation-bound (no annotation, no expiry): nothing.
    Nothing,
    /// The Node's annotation is invalid: nothing is done, as in MCM.
    InvalidOnNode(String),
    /// Preserve (or keep preserving) the machine; `start`: set its expiry now.
    Preserve { value: Value, start: bool },
    /// End preservation if it is active; `remove_annotations` too (expired, or
    /// auto-preserved and recovered), so that it is not preserved again by mistake.
    Stop { remove_annotations: bool },
}

/// A [`Plan`] and what follows it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Decision {
    pub plan: Plan,
    /// Preserved and running (again): the Node is uncordoned.
    pub uncordon: bool,
    /// The Node's value to record on the machine, whose own annotation is
    /// cleared, as MCM's `updatePreserveAnnotationOnMachine`.
    pub record_node_value: Option<String>,
}

impl Decision {
    fn only(plan: Plan) -> Self {
        Decision {
            plan,
            uncordon: false,
            record_node_value: None,
        }
    }
}

/// Reads the annotations of `machine` and its `node` (`None`: no node label,
/// or the Node is gone), and decides as MCM does.
pub(crate) fn decide(machine: &Machine, node: Option<&Node>, now: jiff::Timestamp) -> Decision {
    let machine_raw = machine.annotation(preserve::ANNOTATION);
    let machine_value = machine_raw.and_then(Value::parse);
    if let Some(raw) = machine_raw
        && machine_value.is_none()
    {
        tracing::warn!("preserve annotation {raw:?} on the machine is invalid, ignored");
    }
    let last_applied = machine
        .annotation(preserve::LAST_APPLIED_NODE_VALUE)
        .unwrap_or_default();
    let node_raw = node.and_then(|n| n.annotations().get(preserve::ANNOTATION).cloned());
    let node_value = match node_raw.as_deref() {
        Some(raw) => match Value::parse(raw) {
            Some(v) => Some(v),
            None => return Decision::only(Plan::InvalidOnNode(raw.to_string())),
        },
        None => None,
    };
    let expiry = machine.status.current_status.preserve_expiry_time.as_ref();
    if expiry.is_none()
        && node_value.is_none()
        && machine_value.is_none()
        && last_applied.is_empty()
    {
        return Decision::only(Plan::Nothing);
    }
    // The Node's value wins once it was ever applied (even removed since);
    // without a Node, or before, the machine's.
    let effective = if node.is_none() || (node_value.is_none() && last_applied.is_empty()) {
        machine_value
    } else {
        node_value
    };
    let failed = machine.phase() == Some(&Phase::Failed);
    let expired = expiry.is_some_and(|t| t.0 <= now);
    let stop = |remove_annotations| Plan::Stop { remove_annotations };
    let plan = match effective {
        None | Some(Value::False) => stop(false),
        Some(Value::WhenFailed) if expired => stop(true),
        Some(Value::WhenFailed) if !failed => stop(false),
        Some(Value::Now) if expired => stop(true),
        Some(Value::AutoPreserved) if !failed || expired => stop(true),
        Some(value) => Plan::Preserve {
            value,
            start: expiry.is_none(),
        },
    };
    // MCM's `shouldAnnotationsBeUpdatedOnMachine`.
    let removed = matches!(
        plan,
        Plan::Stop {
            remove_annotations: true
        }
    );
    let node_in_control = node_raw.is_some() || !last_applied.is_empty();
    let unchanged =
        node_raw.as_deref().unwrap_or_default() == last_applied && machine_value.is_none();
    let record_node_value =
        (!removed && node_in_control && !unchanged).then(|| node_raw.clone().unwrap_or_default());
    Decision {
        uncordon: matches!(plan, Plan::Preserve { .. })
            && machine.phase() == Some(&Phase::Running)
            && node.is_some(),
        plan,
        record_node_value,
    }
}

/// How long until a preserved machine's `preserveExpiryTime`, rounded up to
/// the second, to look at it again then. Nothing else wakes it: MCM's
/// MachineSet replaces a Failed machine past its expiry only when a change to
/// it comes, and ending the preservation is that change. (MCM's machine
/// controller looks again only on its 10-minute retry, so it ends a preservation
/// up to 10 minutes late; we end it on time.)
pub(crate) fn until_expiry(machine: &Machine, now: jiff::Timestamp) -> Option<std::time::Duration> {
    let expiry = machine
        .status
        .current_status
        .preserve_expiry_time
        .as_ref()?;
    let left = expiry.0.duration_since(now).as_secs_f64().max(0.0);
    Some(std::time::Duration::from_secs(left.ceil() as u64))
}

/// Whether a preserved machine's Node is to be drained: when Failed, until a
/// drain succeeded.
pub(crate) fn should_drain(machine: &Machine, existing: Option<&NodeCondition>) -> bool {
    machine.phase() == Some(&Phase::Failed)
        && existing.is_none_or(|c| {
            !c.message
                .as_deref()
                .unwrap_or_default()
                .contains(preserve::DRAINED)
        })
}

/// Go's `%v` of a `*metav1.Time`, as MCM's messages print the expiry.
fn go_time(t: &jiff::Timestamp) -> String {
    format!("{} +0000 UTC", t.strftime("%Y-%m-%d %H:%M:%S"))
}

/// MCM's `computeNewNodePreservedCondition`: the `Preserved` condition for the
/// Node given the drain's outcome (`None`: no drain this time), and whether it
/// needs writing.
pub(crate) fn preserved_condition(
    machine: &Machine,
    value: Value,
    drained: Option<bool>,
    existing: Option<&NodeCondition>,
) -> (NodeCondition, bool) {
    let mut needs_update = existing.is_none();
    let mut c = existing.cloned().unwrap_or_else(|| NodeCondition {
        type_: preserve::CONDITION.into(),
        status: "False".into(),
        last_transition_time: Some(now()),
        ..Default::default()
    });
    let until = machine
        .status
        .current_status
        .preserve_expiry_time
        .as_ref()
        .map(|t| go_time(&t.0))
        .unwrap_or_default();
    let message = c.message.clone().unwrap_or_default();
    let drained_text = |prefix: &str| format!("{prefix} {} {until}.", preserve::UNTIL);
    let outcome = if machine.phase() == Some(&Phase::Failed) {
        if drained != Some(false) {
            (!message.contains(preserve::DRAINED))
                .then(|| ("True", drained_text(preserve::DRAINED)))
        } else {
            (!message.contains(preserve::NOT_DRAINED))
                .then(|| ("False", drained_text(preserve::NOT_DRAINED)))
        }
    } else {
        (c.status != "True").then(|| ("True", format!("{} {until}.", preserve::UNTIL)))
    };
    if let Some((status, message)) = outcome {
        c.status = status.into();
        c.message = Some(message);
        needs_update = true;
    }
    c.reason = Some(
        if value == Value::AutoPreserved {
            preserve::BY_MCM
        } else {
            preserve::BY_USER
        }
        .into(),
    );
    (c, needs_update)
}

/// The `Preserved` condition that says preservation has stopped.
pub(crate) fn stopped_condition() -> NodeCondition {
    NodeCondition {
        type_: preserve::CONDITION.into(),
        status: "False".into(),
        last_transition_time: Some(now()),
        reason: Some(preserve::STOPPED.into()),
        ..Default::default()
    }
}

// The executor: carries out a [`Decision`] against the API servers.

/// Looks at `machine`'s preservation and carries out what [`decide`] says;
/// returns a sooner requeue while a preserved Node is still being drained.
pub(crate) async fn run<D>(
    ctx: &Context<D>,
    machine: &Machine,
) -> Result<Option<std::time::Duration>, Error> {
    let node = machine.node_name().and_then(|n| ctx.node(n));
    let decision = decide(machine, node.as_deref(), jiff::Timestamp::now());
    let mut machine = machine.clone();
    let mut again = None;
    match decision.plan {
        Plan::Nothing => return Ok(None),
        Plan::InvalidOnNode(value) => {
            tracing::warn!("preserve annotation {value:?} on the node is invalid, ignored");
            return Ok(None);
        }
        Plan::Preserve { value, start } => {
            if start {
                let until = jiff::Timestamp::now()
                    .checked_add(ctx.settings.preserve_timeout(&machine))
                    .unwrap_or(jiff::Timestamp::MAX);
                machine = ctx.set_preserve_expiry(&machine, Some(Time(until))).await?;
                tracing::info!(until = %until, "machine preserved");
            }
            if let (Some(node), Some(target)) = (&node, &ctx.target) {
                let nodes = target.node_writes();
                again = preserve_node(ctx, &nodes, &machine, node, value).await?;
                if decision.uncordon {
                    uncordon(&nodes, node).await?;
                }
            }
            let expires = until_expiry(&machine, jiff::Timestamp::now());
            again = again.into_iter().chain(expires).min();
        }
        // Only an active preservation is stopped; either way the Node's value
        // is recorded below, as MCM does after a stop.
        Plan::Stop { .. } if machine.status.current_status.preserve_expiry_time.is_none() => {}
        Plan::Stop { remove_annotations } => {
            if let (Some(node), Some(target)) = (&node, &ctx.target) {
                release_node(&target.node_writes(), &machine, node, remove_annotations).await?;
            }
            if remove_annotations {
                let patch = json!({"metadata": {
                    "annotations": {preserve::ANNOTATION: null, preserve::LAST_APPLIED_NODE_VALUE: null},
                    "resourceVersion": machine.metadata.resource_version,
                }});
                machine = ctx.patch_machine(machine.name(), &patch).await?;
            }
            machine = ctx.set_preserve_expiry(&machine, None).await?;
            tracing::info!("preservation stopped");
        }
    }
    if let Some(value) = decision.record_node_value {
        let patch = json!({"metadata": {
            "annotations": {preserve::ANNOTATION: null, preserve::LAST_APPLIED_NODE_VALUE: value},
            "resourceVersion": machine.metadata.resource_version,
        }});
        ctx.patch_machine(machine.name(), &patch).await?;
    }
    Ok(again)
}

/// MCM's `stopMachinePreservation` for the Node: the `Preserved` condition
/// False, the autoscaler's annotation gone if we set it (and the preserve
/// annotation, if asked), and the Node uncordoned if its machine runs.
async fn release_node(
    nodes: &NodeWrites,
    machine: &Machine,
    node: &Node,
    remove_annotations: bool,
) -> Result<(), kube::Error> {
    let name = node.name_any();
    nodes.set_condition(&name, stopped_condition()).await?;
    let mut gone = serde_json::Map::new();
    let ours = node.annotations().get(preserve::SCALE_DOWN_DISABLED_BY_MCM);
    if ours.map(String::as_str) == Some("true") {
        gone.insert(preserve::SCALE_DOWN_DISABLED.into(), Json::Null);
        gone.insert(preserve::SCALE_DOWN_DISABLED_BY_MCM.into(), Json::Null);
    }
    if remove_annotations && node.annotations().contains_key(preserve::ANNOTATION) {
        gone.insert(preserve::ANNOTATION.into(), Json::Null);
    }
    if !gone.is_empty() {
        let patch = json!({"metadata": {"annotations": gone}});
        nodes.merge(&name, &patch).await?;
    }
    if machine.phase() == Some(&Phase::Running) {
        uncordon(nodes, node).await?;
    }
    Ok(())
}

/// MCM's `preserveMachine` for a machine with a Node: the autoscaler kept off,
/// the Node drained when Failed, and the `Preserved` condition.
async fn preserve_node<D>(
    ctx: &Context<D>,
    nodes: &NodeWrites,
    machine: &Machine,
    node: &Node,
    value: Value,
) -> Result<Option<std::time::Duration>, Error> {
    let existing = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == preserve::CONDITION));
    if existing.is_some_and(|c| c.status == "True") {
        return Ok(None);
    }
    if node
        .annotations()
        .get(preserve::SCALE_DOWN_DISABLED)
        .map(String::as_str)
        != Some("true")
    {
        let patch = json!({"metadata": {"annotations": {
            preserve::SCALE_DOWN_DISABLED: "true",
            preserve::SCALE_DOWN_DISABLED_BY_MCM: "true",
        }}});
        nodes.merge(&node.name_any(), &patch).await?;
    }
    let drained = if should_drain(machine, existing) {
        match drain::cordon_and_evict(ctx, drain::Purpose::Preserved, machine, node).await {
            Ok(drain::Progress::Done) => Some(true),
            // Pods are leaving: the condition waits for the outcome.
            Ok(drain::Progress::Leaving) => return Ok(Some(retry::SHORT)),
            Ok(drain::Progress::Blocked(why)) => {
                tracing::info!("the preserved node's drain is held: {why}");
                Some(false)
            }
            Err(e) => {
                tracing::warn!("the preserved node could not be drained: {e}");
                Some(false)
            }
        }
    } else {
        None
    };
    let (condition, needs_update) = preserved_condition(machine, value, drained, existing);
    if needs_update {
        nodes.set_condition(&node.name_any(), condition).await?;
    }
    Ok((drained == Some(false)).then_some(drain::PDB_RETRY))
}

async fn uncordon(nodes: &NodeWrites, node: &Node) -> Result<(), kube::Error> {
    if nodes.set_unschedulable(node, false).await? {
        tracing::info!(
            node = node.name_any(),
            "uncordoned the node of a preserved machine"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::node::writes::condition_patch;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn machine(phase: Phase, annotation: Option<&str>) -> Machine {
        let mut m = Machine::named("m1");
        m.status.current_status.phase = Some(phase);
        if let Some(v) = annotation {
            m.metadata.annotations =
                Some([(preserve::ANNOTATION.to_string(), v.to_string())].into());
        }
        m
    }

    fn node(annotation: Option<&str>) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some("machine-m1".into());
        if let Some(v) = annotation {
            n.metadata.annotations =
                Some([(preserve::ANNOTATION.to_string(), v.to_string())].into());
        }
        n
    }

    const NOW: &str = "2026-01-01T12:00:00Z";

    #[test]
    fn machines_without_annotations_are_left_alone() {
        assert_eq!(
            decide(&machine(Phase::Failed, None), Some(&node(None)), ts(NOW)).plan,
            Plan::Nothing
        );
    }

    #[test]
    fn when_failed_preserves_only_a_failed_machine() {
        let plan = decide(
            &machine(Phase::Failed, Some("when-failed")),
            Some(&node(None)),
            ts(NOW),
        )
        .plan;
        assert!(matches!(
            plan,
            Plan::Preserve {
                value: Value::WhenFailed,
                start: true,
                ..
            }
        ));
        let plan = decide(
            &machine(Phase::Running, Some("when-failed")),
            Some(&node(None)),
            ts(NOW),
        )
        .plan;
        assert_eq!(
            plan,
            Plan::Stop {
                remove_annotations: false
            }
        );
    }

    #[test]
    fn expiry_stops_preservation_and_removes_the_annotation() {
        let mut m = machine(Phase::Failed, Some("when-failed"));
        m.status.current_status.preserve_expiry_time = Some(Time(ts("2026-01-01T11:00:00Z")));
        assert_eq!(
            decide(&m, Some(&node(None)), ts(NOW)).plan,
            Plan::Stop {
                remove_annotations: true
            }
        );
        // Not yet expired: preservation goes on, not started again.
        m.status.current_status.preserve_expiry_time = Some(Time(ts("2026-01-01T13:00:00Z")));
        assert!(matches!(
            decide(&m, Some(&node(None)), ts(NOW)).plan,
            Plan::Preserve { start: false, .. }
        ));
    }

    #[test]
    fn a_preserved_machine_is_looked_at_again_when_it_expires() {
        let mut m = machine(Phase::Failed, Some("when-failed"));
        assert_eq!(until_expiry(&m, ts(NOW)), None);
        m.status.current_status.preserve_expiry_time = Some(Time(ts("2026-01-01T12:00:30Z")));
        assert_eq!(
            until_expiry(&m, ts("2026-01-01T11:59:59.5Z")),
            Some(std::time::Duration::from_secs(31))
        );
        assert_eq!(
            until_expiry(&m, ts("2026-01-01T12:01:00Z")),
            Some(std::time::Duration::ZERO)
        );
    }

    #[test]
    fn a_stopped_preservation_leaves_no_drained_message_behind() {
        let patch = condition_patch(stopped_condition());
        let written = &patch["status"]["conditions"][0];
        assert_eq!(written["status"], "False");
        assert_eq!(written["reason"], preserve::STOPPED);
        // Written empty, so that the merge drops the old "drained" message.
        assert_eq!(written["message"], "");
    }

    #[test]
    fn now_preserves_a_running_machine_and_uncordons_it_once_it_runs() {
        let mut m = machine(Phase::Running, Some("now"));
        assert!(matches!(
            decide(&m, Some(&node(None)), ts(NOW)).plan,
            Plan::Preserve {
                value: Value::Now,
                start: true
            }
        ));
        m.status.current_status.preserve_expiry_time = Some(Time(ts("2026-01-02T00:00:00Z")));
        let d = decide(&m, Some(&node(None)), ts(NOW));
        assert!(matches!(d.plan, Plan::Preserve { start: false, .. }));
        assert!(d.uncordon);
    }

    #[test]
    fn auto_preserved_ends_when_the_machine_recovers() {
        assert_eq!(
            decide(
                &machine(Phase::Running, Some("auto-preserved")),
                None,
                ts(NOW)
            )
            .plan,
            Plan::Stop {
                remove_annotations: true
            }
        );
    }

    #[test]
    fn the_nodes_value_wins_and_is_recorded_on_the_machine() {
        let m = machine(Phase::Failed, Some("false"));
        let d = decide(&m, Some(&node(Some("when-failed"))), ts(NOW));
        assert!(matches!(
            d.plan,
            Plan::Preserve {
                value: Value::WhenFailed,
                ..
            }
        ));
        assert_eq!(d.record_node_value.as_deref(), Some("when-failed"));
        // Removed from the node after it was applied: the removal counts.
        let mut m = machine(Phase::Failed, Some("when-failed"));
        m.metadata.annotations.get_or_insert_default().insert(
            preserve::LAST_APPLIED_NODE_VALUE.into(),
            "when-failed".into(),
        );
        let d = decide(&m, Some(&node(None)), ts(NOW));
        assert_eq!(
            d.plan,
            Plan::Stop {
                remove_annotations: false
            }
        );
        assert_eq!(d.record_node_value.as_deref(), Some(""));
        // Without the Node, the machine's value counts.
        assert!(matches!(
            decide(&m, None, ts(NOW)).plan,
            Plan::Preserve { .. }
        ));
    }

    /// What [`run`] does with `record_node_value`: the machine's own annotation
    /// cleared, the Node's value recorded.
    fn recorded(mut m: Machine, value: &str) -> Machine {
        let a = m.metadata.annotations.get_or_insert_default();
        a.remove(preserve::ANNOTATION);
        a.insert(preserve::LAST_APPLIED_NODE_VALUE.into(), value.into());
        m
    }

    #[test]
    fn the_nodes_value_is_recorded_after_a_stop_too() {
        // MCM's `shouldAnnotationsBeUpdatedOnMachine` runs after a stop as well:
        // both annotated, the machine not Failed, its own annotation is cleared.
        let m = machine(Phase::Running, Some("when-failed"));
        let annotated = node(Some("when-failed"));
        let d = decide(&m, Some(&annotated), ts(NOW));
        assert_eq!(
            d.plan,
            Plan::Stop {
                remove_annotations: false
            }
        );
        assert_eq!(d.record_node_value.as_deref(), Some("when-failed"));
        // Recorded: nothing more to write while nothing changes.
        let m = recorded(m, "when-failed");
        let d = decide(&m, Some(&annotated), ts(NOW));
        assert_eq!(d.record_node_value, None);
        // The Node's annotation removed later, the machine failing: the removal
        // counts (Go's effective value is the Node's, empty), so the machine is
        // not preserved by its old annotation, and the removal is recorded.
        let mut failed = m.clone();
        failed.status.current_status.phase = Some(Phase::Failed);
        let d = decide(&failed, Some(&node(None)), ts(NOW));
        assert_eq!(
            d.plan,
            Plan::Stop {
                remove_annotations: false
            }
        );
        assert_eq!(d.record_node_value.as_deref(), Some(""));
        // A Node value `false` with a machine `now`: stopped, and recorded.
        let d = decide(
            &machine(Phase::Running, Some("now")),
            Some(&node(Some("false"))),
            ts(NOW),
        );
        assert_eq!(
            d.plan,
            Plan::Stop {
                remove_annotations: false
            }
        );
        assert_eq!(d.record_node_value.as_deref(), Some("false"));
    }

    #[test]
    fn a_stop_that_removes_the_annotations_records_nothing() {
        // Expired: the annotations go, so there is nothing left to sync (MCM).
        let mut m = machine(Phase::Failed, Some("now"));
        m.status.current_status.preserve_expiry_time = Some(Time(ts("2026-01-01T11:00:00Z")));
        let d = decide(&m, Some(&node(Some("now"))), ts(NOW));
        assert_eq!(
            d.plan,
            Plan::Stop {
                remove_annotations: true
            }
        );
        assert_eq!(d.record_node_value, None);
    }

    #[test]
    fn an_invalid_value_on_the_node_stops_all_and_on_the_machine_is_ignored() {
        assert_eq!(
            decide(
                &machine(Phase::Failed, None),
                Some(&node(Some("always"))),
                ts(NOW)
            )
            .plan,
            Plan::InvalidOnNode("always".into())
        );
        assert_eq!(
            decide(
                &machine(Phase::Failed, Some("always")),
                Some(&node(None)),
                ts(NOW)
            )
            .plan,
            Plan::Nothing
        );
    }

    #[test]
    fn the_condition_says_whether_the_drain_succeeded_in_mcm_words() {
        let mut m = machine(Phase::Failed, Some("when-failed"));
        m.status.current_status.preserve_expiry_time = Some(Time(ts("2026-01-05T12:00:00Z")));
        assert!(should_drain(&m, None));
        let (c, update) = preserved_condition(&m, Value::WhenFailed, Some(true), None);
        assert!(update);
        assert_eq!(c.status, "True");
        assert_eq!(
            c.message.as_deref(),
            Some(
                "Preserved node drained successfully. Machine preserved until 2026-01-05 12:00:00 +0000 UTC."
            )
        );
        assert_eq!(c.reason.as_deref(), Some("Preserved by user."));
        assert!(!should_drain(&m, Some(&c)));
        let (again, update) = preserved_condition(&m, Value::WhenFailed, None, Some(&c));
        assert!(!update);
        assert_eq!(again.status, "True");
        let (failed, _) = preserved_condition(&m, Value::AutoPreserved, Some(false), None);
        assert_eq!(failed.status, "False");
        assert_eq!(failed.reason.as_deref(), Some("Preserved by MCM."));
        assert!(
            failed
                .message
                .unwrap()
                .starts_with("Preserved node could not be drained.")
        );
        // A running machine preserved `now`: no drain, preserved.
        let running = machine(Phase::Running, Some("now"));
        let (c, _) = preserved_condition(&running, Value::Now, None, None);
        assert_eq!(c.status, "True");
        assert!(c.message.unwrap().starts_with("Machine preserved until"));
    }
}
