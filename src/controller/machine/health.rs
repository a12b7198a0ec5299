// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Health of a machine that has a node: join, loss, recovery and timeouts.
//! Pure: everything it needs is passed in.
//!
//! Long because: MCM's health rules (join, critical components, loss, recovery,
//! timeouts, meltdown) are one decision over one observation; half is tests.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeCondition};

use crate::api::Machine;
use crate::contract::{
    CRITICAL_COMPONENTS_NOT_READY_TAINT, DEPLOYMENT_NAME_LABEL, OpState, OpType, Phase, text,
};
use crate::controller::settings::Settings;
use crate::controller::status::StatusChange;
use crate::duration::{age, format_go};

/// What the health check wants done.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct HealthPlan {
    pub change: Option<StatusChange>,
    /// The machine joined for the first time: delete its token, record the duration.
    pub joined_after: Option<Duration>,
    /// When a timeout would fire if nothing else happens first.
    pub recheck_after: Option<Duration>,
}

/// Healthy: conditions present, Ready True, every configured condition False.
pub(crate) fn is_healthy(conditions: &[NodeCondition], watched: &[String]) -> bool {
    !conditions.is_empty()
        && conditions.iter().all(|c| {
            (c.type_ != "Ready" || c.status == "True")
                && (!watched.contains(&c.type_) || c.status == "False")
        })
}

/// The Node still waits for its critical components (MCM's
/// `criticalComponentsNotReadyTaintPresent`: the taint with effect NoSchedule).
pub(crate) fn critical_components_not_ready(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|taints| {
            taints
                .iter()
                .any(|t| t.key == CRITICAL_COMPONENTS_NOT_READY_TAINT && t.effect == "NoSchedule")
        })
}

/// Conditions changed in a way MCM cares about: a type added or removed, a
/// status flipped, or the in-place update's reason moved (MCM's
/// `nodeConditionsHaveChanged`; its MachineSet reads that reason on the machine).
pub(crate) fn conditions_changed(old: &[NodeCondition], new: &[NodeCondition]) -> bool {
    let find = |list: &'_ [NodeCondition], t: &str| list.iter().find(|c| c.type_ == t).cloned();
    new.iter().any(|c| match find(old, &c.type_) {
        None => true,
        Some(o) => {
            o.status != c.status
                || (c.type_ == crate::contract::inplace::CONDITION && o.reason != c.reason)
        }
    }) || old.iter().any(|c| find(new, &c.type_).is_none())
}

/// Conditions in a short readable form for descriptions.
pub(crate) fn format_conditions(conditions: &[NodeCondition]) -> String {
    let parts: Vec<String> = conditions
        .iter()
        .map(|c| {
            format!(
                "{{Type:{} Status:{} Reason:{} Message:{}}}",
                c.type_,
                c.status,
                c.reason.as_deref().unwrap_or_default(),
                c.message.as_deref().unwrap_or_default()
            )
        })
        .collect();
    format!("[{}]", parts.join(" "))
}

/// The machines of `machine`'s MachineDeployment, read from the cache without
/// copying the rest; none when it belongs to no deployment (then
/// [`may_mark_failed`] needs none).
pub(crate) fn same_deployment(
    machines: &kube::runtime::reflector::Store<Machine>,
    machine: &Machine,
) -> Vec<std::sync::Arc<Machine>> {
    match machine
        .label(DEPLOYMENT_NAME_LABEL)
        .filter(|d| !d.is_empty())
    {
        Some(d) => machines.state_filter(|m| m.label(DEPLOYMENT_NAME_LABEL) == Some(d)),
        None => Vec::new(),
    }
}

/// Whether this machine may be marked Failed without two machines of one
/// MachineDeployment being replaced at once (MCM's meltdown protection).
pub(crate) fn may_mark_failed(machine: &Machine, all: &[std::sync::Arc<Machine>]) -> bool {
    let Some(deployment) = machine
        .label(DEPLOYMENT_NAME_LABEL)
        .filter(|d| !d.is_empty())
    else {
        return true;
    };
    let in_progress: usize = all
        .iter()
        .filter(|m| {
            m.label(DEPLOYMENT_NAME_LABEL) == Some(deployment) && m.name() != machine.name()
        })
        .map(|m| match m.phase() {
            Some(Phase::Unknown | Phase::Running) => 0,
            // Counted twice, as MCM does: its replacement may not exist yet.
            Some(Phase::Terminating) => 2,
            _ if m.status.current_status.preserve_expiry_time.is_some() => 0,
            _ => 1,
        })
        .sum();
    in_progress < 1
}

/// The change marks the machine Failed after the health timeout (from Unknown
/// or InPlaceUpdateFailed): MCM takes it only under the deployment's permit.
pub(crate) fn needs_meltdown_permit(machine: &Machine, change: &StatusChange) -> bool {
    change.phase == Some(Phase::Failed)
        && matches!(
            machine.phase(),
            Some(Phase::Unknown | Phase::InPlaceUpdateFailed)
        )
}

/// Decides the health step for a machine that has a node label and a phase:
/// what its Node says first, then the timeouts of a machine still waiting.
pub(crate) fn decide(
    machine: &Machine,
    node: Option<&Node>,
    settings: &Settings,
    now: jiff::Timestamp,
    may_fail: impl FnOnce() -> bool,
) -> HealthPlan {
    let seen = match node {
        None => node_missing(machine).map(HealthPlan::change),
        Some(node) => from_node(machine, node, settings, now),
    };
    seen.unwrap_or_else(|| timeouts(machine, settings, now, may_fail))
}

impl HealthPlan {
    fn change(change: StatusChange) -> Self {
        HealthPlan {
            change: Some(change),
            ..Default::default()
        }
    }
}

/// A Running machine that had a Node and lost it is Unknown.
fn node_missing(machine: &Machine) -> Option<StatusChange> {
    let had_one = !machine.status.conditions.is_empty();
    (machine.phase() == Some(&Phase::Running) && had_one).then(|| {
        StatusChange::new(
            text::node_missing(machine.name()),
            OpState::Processing,
            OpType::HealthCheck,
        )
        .phase(Phase::Unknown)
    })
}

/// What the Node's conditions make of the machine: joined (or back), lost,
/// only new conditions, or an in-place update's result. None: nothing the
/// Node says changes the machine.
fn from_node(
    machine: &Machine,
    node: &Node,
    settings: &Settings,
    now: jiff::Timestamp,
) -> Option<HealthPlan> {
    let current = machine.phase();
    let conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let changed = conditions_changed(&machine.status.conditions, &conditions);
    let healthy = is_healthy(&conditions, &settings.node_conditions(machine));
    // A Pending machine whose Node is healthy but still waits for its
    // critical components stays Pending, as in MCM: a rollout must not
    // count it available before CNI and CSI run.
    let gated = current == Some(&Phase::Pending) && critical_components_not_ready(node);
    // Mid-update, health cannot tell (MCM): the agent's result decides.
    let updating = matches!(
        current,
        Some(Phase::InPlaceUpdating | Phase::InPlaceUpdateFailed)
    );
    let running = current == Some(&Phase::Running);
    if healthy && !running && !gated && !updating {
        let (change, joined_after) = running_change(machine, now);
        return Some(HealthPlan {
            change: Some(change.phase(Phase::Running).conditions(conditions)),
            joined_after,
            recheck_after: None,
        });
    }
    if !healthy && running && !updating {
        let description = text::unhealthy(machine.name(), &format_conditions(&conditions));
        let change = StatusChange::new(description, OpState::Processing, OpType::HealthCheck)
            .phase(Phase::Unknown)
            .conditions(conditions);
        return Some(HealthPlan::change(change));
    }
    if changed {
        return Some(HealthPlan::change(conditions_only(machine, conditions)));
    }
    if updating {
        return super::inplace::result_change(machine, node).map(HealthPlan::change);
    }
    None
}

/// The operation of a machine whose Node is healthy: its first join (as long
/// as the creation's operation is not Successful), with how long it took from
/// the machine's creation, or a rejoin.
fn running_change(machine: &Machine, now: jiff::Timestamp) -> (StatusChange, Option<Duration>) {
    let name = machine.name();
    let lo = &machine.status.last_operation;
    if lo.type_ == Some(OpType::Create) && lo.state != Some(OpState::Successful) {
        let created = machine.metadata.creation_timestamp.as_ref().map(|t| &t.0);
        let took = age(created, now);
        let description = text::joined(name, &format_go(round_ms(took)));
        let change = StatusChange::new(description, OpState::Successful, OpType::Create);
        (change, Some(took))
    } else {
        let change = StatusChange::new(
            text::rejoined(name),
            OpState::Successful,
            OpType::HealthCheck,
        );
        (change, None)
    }
}

/// Only the conditions change: lastOperation and phase stay as they are,
/// names we do not know included. A state or type never written must be
/// written as something: Processing, Create.
fn conditions_only(machine: &Machine, conditions: Vec<NodeCondition>) -> StatusChange {
    let lo = &machine.status.last_operation;
    let mut change = StatusChange::new(
        lo.description.clone(),
        lo.state.clone().unwrap_or(OpState::Processing),
        lo.type_.clone().unwrap_or(OpType::Create),
    )
    .code(lo.error_code.clone())
    .conditions(conditions);
    // The current status stays untouched, its time included: the health and
    // creation timers run from the last *phase* change, so a Node whose
    // conditions flap cannot keep an Unknown machine from ever timing out.
    change.phase = None;
    change
}

/// The timeout a machine in its phase waits under, and since when: creation
/// while Pending, health while Unknown or after a failed update, the update's
/// own while updating. None: no timeout runs.
fn timer<'m>(
    machine: &'m Machine,
    settings: &Settings,
) -> Option<(Duration, Option<&'m jiff::Timestamp>)> {
    match machine.phase()? {
        Phase::Pending => Some((
            settings.creation_timeout(machine),
            machine.metadata.creation_timestamp.as_ref().map(|t| &t.0),
        )),
        Phase::Unknown | Phase::InPlaceUpdateFailed => Some((
            settings.health_timeout(machine),
            machine.status_updated_at(),
        )),
        Phase::InPlaceUpdating => Some((
            settings.in_place_update_timeout(machine),
            machine.status_updated_at(),
        )),
        _ => None,
    }
}

/// Timeouts of machines that are waiting for their Node: when to look again
/// if none has fired, the change if one has.
fn timeouts(
    machine: &Machine,
    settings: &Settings,
    now: jiff::Timestamp,
    may_fail: impl FnOnce() -> bool,
) -> HealthPlan {
    let current = machine.phase();
    let Some((timeout, since)) = timer(machine, settings) else {
        return HealthPlan::default();
    };
    let elapsed = age(since, now);
    if elapsed <= timeout {
        return HealthPlan {
            recheck_after: Some(timeout - elapsed + Duration::from_secs(1)),
            ..Default::default()
        };
    }
    let name = machine.name();
    let timeout_text = format_go(timeout);
    // The type stays what it was, as MCM's `updateMachineToFailedState`:
    // Create while joining, HealthCheck after Unknown, InPlaceUpdate after a
    // failed update.
    let type_or = |default: OpType| {
        let lo = &machine.status.last_operation;
        lo.type_.clone().unwrap_or(default)
    };
    match current {
        Some(Phase::InPlaceUpdating) => HealthPlan::change(
            StatusChange::new(
                text::in_place_timeout(name, &timeout_text),
                OpState::Failed,
                OpType::InPlaceUpdate,
            )
            .phase(Phase::InPlaceUpdateFailed),
        ),
        Some(Phase::Pending) => HealthPlan::change(
            StatusChange::new(
                text::join_timeout(name, &timeout_text),
                OpState::Failed,
                type_or(OpType::Create),
            )
            .phase(Phase::Failed),
        ),
        _ if machine
            .spec
            .configuration
            .disable_health_timeout
            .unwrap_or(false) =>
        {
            HealthPlan::default()
        }
        _ if may_fail() => {
            let conditions = format_conditions(&machine.status.conditions);
            HealthPlan::change(
                StatusChange::new(
                    text::health_timeout(name, &timeout_text, &conditions),
                    OpState::Failed,
                    type_or(OpType::HealthCheck),
                )
                .phase(Phase::Failed),
            )
        }
        // Another machine of the deployment is being replaced: look again
        // soon, as MCM retries short (`tryMarkingMachineFailed`).
        _ => HealthPlan {
            recheck_after: Some(crate::controller::error::retry::SHORT),
            ..Default::default()
        },
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis().min(u128::from(u64::MAX)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CurrentStatus, LastOperation};
    use k8s_openapi::api::core::v1::NodeStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use std::sync::Arc;

    fn cond(t: &str, s: &str) -> NodeCondition {
        NodeCondition {
            type_: t.into(),
            status: s.into(),
            ..Default::default()
        }
    }

    fn node(conditions: Vec<NodeCondition>) -> Node {
        Node {
            status: Some(NodeStatus {
                conditions: Some(conditions),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn machine(phase: Phase, op: OpType, state: OpState) -> Machine {
        let mut m = Machine::default();
        m.metadata.name = Some("m1".into());
        m.metadata.creation_timestamp = Some(Time(ts("2026-01-01T00:00:00Z")));
        m.status.current_status = CurrentStatus {
            phase: Some(phase),
            last_update_time: Some(Time(ts("2026-01-01T00:00:00Z"))),
            ..Default::default()
        };
        m.status.last_operation = LastOperation {
            type_: Some(op),
            state: Some(state),
            ..Default::default()
        };
        m
    }

    fn decide_at(m: &Machine, n: Option<&Node>, at: &str) -> HealthPlan {
        decide(m, n, &Settings::default(), ts(at), || true)
    }

    fn tainted(mut n: Node, effect: &str) -> Node {
        n.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
            taints: Some(vec![k8s_openapi::api::core::v1::Taint {
                key: CRITICAL_COMPONENTS_NOT_READY_TAINT.into(),
                effect: effect.into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        n
    }

    #[test]
    fn a_pending_machine_waits_for_its_critical_components() {
        let m = machine(Phase::Pending, OpType::Create, OpState::Processing);
        let ready = node(vec![cond("Ready", "True")]);
        let gated = tainted(ready.clone(), "NoSchedule");
        let plan = decide_at(&m, Some(&gated), "2026-01-01T00:01:00Z");
        // Only the conditions are recorded; the phase stays Pending.
        let change = plan.change.unwrap();
        assert_eq!(change.phase, None);
        assert_eq!(change.conditions, Some(vec![cond("Ready", "True")]));
        assert_eq!(plan.joined_after, None);
        // Another effect is not MCM's gate; the taint gone, the machine runs.
        for n in [tainted(ready.clone(), "NoExecute"), ready] {
            let change = decide_at(&m, Some(&n), "2026-01-01T00:01:00Z")
                .change
                .unwrap();
            assert_eq!(change.phase, Some(Phase::Running));
        }
        // A Running machine is not sent back for it.
        let mut running = machine(Phase::Running, OpType::Create, OpState::Successful);
        running.status.conditions = vec![cond("Ready", "True")];
        let plan = decide_at(&running, Some(&gated), "2026-01-01T00:01:00Z");
        assert_eq!(plan.change, None);
    }

    #[test]
    fn flapping_conditions_never_restart_the_health_timer() {
        let mut m = machine(Phase::Unknown, OpType::HealthCheck, OpState::Processing);
        m.status.conditions = vec![cond("Ready", "False"), cond("DiskPressure", "False")];
        let flapped = node(vec![cond("Ready", "False"), cond("DiskPressure", "True")]);
        let change = decide_at(&m, Some(&flapped), "2026-01-01T00:05:00Z")
            .change
            .unwrap();
        assert_eq!(change.phase, None, "the current status, and its time, stay");
        // Past the health timeout (10m from the phase change), it fails, however
        // often the conditions changed in between.
        m.status.conditions = vec![cond("Ready", "False"), cond("DiskPressure", "True")];
        let change = decide_at(&m, Some(&flapped), "2026-01-01T00:10:01Z")
            .change
            .unwrap();
        assert_eq!(change.phase, Some(Phase::Failed));
    }

    #[test]
    fn names_we_do_not_know_survive_a_conditions_write() {
        // A newer MCM's phase and operation: the conditions changed, so we write.
        let mut m = machine(
            Phase::from("Hibernating"),
            OpType::from("Rebuild"),
            OpState::from("Paused"),
        );
        m.status.conditions = vec![cond("Ready", "False")];
        let n = node(vec![cond("Ready", "False"), cond("DiskPressure", "True")]);
        let change = decide_at(&m, Some(&n), "2026-01-01T00:01:00Z")
            .change
            .unwrap();
        assert_eq!(change.state, OpState::Other("Paused".into()));
        assert_eq!(change.op, OpType::Other("Rebuild".into()));
        assert_eq!(change.phase, None);
        let at = Time(ts("2026-01-01T00:01:00Z"));
        let patch = crate::controller::writes::status_patch(&m, &change, at);
        let status = &patch["status"];
        assert_eq!(status["lastOperation"]["state"], "Paused");
        assert_eq!(status["lastOperation"]["type"], "Rebuild");
        // A merge patch without currentStatus leaves the phase on the server.
        assert_eq!(status.get("currentStatus"), None);
    }

    #[test]
    fn healthy_means_ready_and_no_bad_condition() {
        let watched = Settings::default().node_conditions;
        assert!(is_healthy(
            &[cond("Ready", "True"), cond("DiskPressure", "False")],
            &watched
        ));
        assert!(!is_healthy(&[], &watched));
        assert!(!is_healthy(&[cond("Ready", "Unknown")], &watched));
        assert!(!is_healthy(
            &[cond("Ready", "True"), cond("DiskPressure", "True")],
            &watched
        ));
        assert!(is_healthy(
            &[cond("Ready", "True"), cond("Other", "True")],
            &watched
        ));
    }

    #[test]
    fn first_join_reports_the_duration() {
        let m = machine(Phase::Pending, OpType::Create, OpState::Processing);
        let n = node(vec![cond("Ready", "True")]);
        let plan = decide_at(&m, Some(&n), "2026-01-01T00:00:12.5Z");
        let change = plan.change.unwrap();
        assert_eq!(change.phase, Some(Phase::Running));
        assert_eq!(
            change.description,
            "Machine m1 successfully joined the cluster in 12.5s"
        );
        assert_eq!(change.state, OpState::Successful);
        assert_eq!(change.op, OpType::Create);
        assert_eq!(plan.joined_after, Some(Duration::from_millis(12_500)));
    }

    #[test]
    fn later_recovery_is_a_rejoin() {
        let m = machine(Phase::Unknown, OpType::HealthCheck, OpState::Processing);
        let n = node(vec![cond("Ready", "True")]);
        let plan = decide_at(&m, Some(&n), "2026-01-01T00:01:00Z");
        assert_eq!(
            plan.change.unwrap().description,
            "Machine m1 successfully re-joined the cluster"
        );
        assert_eq!(plan.joined_after, None);
    }

    #[test]
    fn running_machine_whose_node_is_unready_or_gone_is_unknown() {
        let mut m = machine(Phase::Running, OpType::Create, OpState::Successful);
        m.status.conditions = vec![cond("Ready", "True")];
        let n = node(vec![cond("Ready", "False")]);
        let change = decide_at(&m, Some(&n), "2026-01-01T00:01:00Z")
            .change
            .unwrap();
        assert_eq!(change.phase, Some(Phase::Unknown));
        assert!(
            change
                .description
                .starts_with("Machine m1 is unhealthy - changing MachinePhase to Unknown")
        );
        let change = decide_at(&m, None, "2026-01-01T00:01:00Z").change.unwrap();
        assert_eq!(change.phase, Some(Phase::Unknown));
        assert!(change.description.starts_with("Node object went missing."));
    }

    #[test]
    fn pending_past_the_creation_timeout_fails() {
        let m = machine(Phase::Pending, OpType::Create, OpState::Processing);
        let plan = decide_at(&m, None, "2026-01-01T00:10:00Z");
        assert_eq!(plan.change, None);
        assert_eq!(plan.recheck_after, Some(Duration::from_secs(601)));
        let change = decide_at(&m, None, "2026-01-01T00:20:01Z").change.unwrap();
        assert_eq!(change.phase, Some(Phase::Failed));
        assert_eq!(
            change.description,
            "Machine m1 failed to join the cluster in 20m0s minutes."
        );
    }

    #[test]
    fn unknown_past_the_health_timeout_fails_unless_another_is_replaced() {
        let m = machine(Phase::Unknown, OpType::HealthCheck, OpState::Processing);
        let late = ts("2026-01-01T00:10:01Z");
        let change = decide(&m, None, &Settings::default(), late, || true)
            .change
            .unwrap();
        assert_eq!(change.phase, Some(Phase::Failed));
        let plan = decide(&m, None, &Settings::default(), late, || false);
        assert_eq!(plan.change, None);
        let mut disabled = m.clone();
        disabled.spec.configuration.disable_health_timeout = Some(true);
        assert_eq!(
            decide(&disabled, None, &Settings::default(), late, || true).change,
            None
        );
    }

    #[test]
    fn a_failed_in_place_update_fails_after_the_health_timeout_keeping_its_type() {
        let m = machine(
            Phase::InPlaceUpdateFailed,
            OpType::InPlaceUpdate,
            OpState::Failed,
        );
        let late = ts("2026-01-01T00:10:01Z");
        let change = decide(&m, None, &Settings::default(), late, || true)
            .change
            .unwrap();
        assert_eq!(change.phase, Some(Phase::Failed));
        assert_eq!(change.state, OpState::Failed);
        assert_eq!(change.op, OpType::InPlaceUpdate);
        assert!(needs_meltdown_permit(&m, &change));
        // Not before the timeout, nor while another machine is replaced.
        let plan = decide(
            &m,
            None,
            &Settings::default(),
            ts("2026-01-01T00:10:00Z"),
            || true,
        );
        assert_eq!(plan.change, None);
        let plan = decide(&m, None, &Settings::default(), late, || false);
        assert_eq!(plan.change, None);
        assert_eq!(
            plan.recheck_after,
            Some(crate::controller::error::retry::SHORT)
        );
    }

    #[test]
    fn health_timeouts_keep_the_previous_operation_type() {
        let late = ts("2026-01-01T00:10:01Z");
        for op in [OpType::HealthCheck, OpType::Create, OpType::InPlaceUpdate] {
            let m = machine(Phase::Unknown, op.clone(), OpState::Processing);
            let change = decide(&m, None, &Settings::default(), late, || true)
                .change
                .unwrap();
            assert_eq!(change.op, op);
        }
        // Never written: HealthCheck.
        let mut m = machine(Phase::Unknown, OpType::Create, OpState::Processing);
        m.status.last_operation.type_ = None;
        let change = decide(&m, None, &Settings::default(), late, || true)
            .change
            .unwrap();
        assert_eq!(change.op, OpType::HealthCheck);
    }

    #[test]
    fn only_health_timeouts_to_failed_take_the_meltdown_permit() {
        let failed = StatusChange::new(String::new(), OpState::Failed, OpType::HealthCheck)
            .phase(Phase::Failed);
        let unknown = StatusChange::new(String::new(), OpState::Processing, OpType::HealthCheck)
            .phase(Phase::Unknown);
        let at = |p: Phase| machine(p, OpType::HealthCheck, OpState::Processing);
        assert!(needs_meltdown_permit(&at(Phase::Unknown), &failed));
        assert!(needs_meltdown_permit(
            &at(Phase::InPlaceUpdateFailed),
            &failed
        ));
        // A join timeout (Pending -> Failed) is not rate-limited, as in MCM.
        assert!(!needs_meltdown_permit(&at(Phase::Pending), &failed));
        assert!(!needs_meltdown_permit(&at(Phase::Running), &unknown));
    }

    #[test]
    fn meltdown_protection_counts_replacements_in_the_deployment() {
        let with = |name: &str, dep: &str, phase: Phase| {
            let mut m = machine(phase, OpType::Create, OpState::Processing);
            m.metadata.name = Some(name.into());
            m.metadata.labels = Some([("name".to_string(), dep.to_string())].into());
            Arc::new(m)
        };
        let me = with("a", "d", Phase::Unknown);
        assert!(may_mark_failed(
            &me,
            &[me.clone(), with("b", "d", Phase::Running)]
        ));
        assert!(!may_mark_failed(
            &me,
            &[me.clone(), with("b", "d", Phase::Pending)]
        ));
        assert!(may_mark_failed(
            &me,
            &[me.clone(), with("b", "other", Phase::Pending)]
        ));
    }

    #[test]
    fn status_flips_and_in_place_reasons_count_as_condition_changes() {
        let mut a = cond("Ready", "True");
        let b = a.clone();
        a.message = Some("heartbeat".into());
        assert!(!conditions_changed(
            std::slice::from_ref(&a),
            std::slice::from_ref(&b)
        ));
        assert!(conditions_changed(&[a.clone()], &[cond("Ready", "False")]));
        assert!(conditions_changed(
            &[a],
            &[b, cond("DiskPressure", "False")]
        ));
        // The in-place update's reason counts, its status staying True.
        let mut candidate = cond("InPlaceUpdate", "True");
        candidate.reason = Some("CandidateForUpdate".into());
        let mut selected = candidate.clone();
        selected.reason = Some("SelectedForUpdate".into());
        assert!(conditions_changed(
            std::slice::from_ref(&candidate),
            std::slice::from_ref(&selected)
        ));
        let mut ready = cond("Ready", "True");
        let other_reason = {
            let mut r = ready.clone();
            r.reason = Some("KubeletReady".into());
            r
        };
        ready.reason = Some("Other".into());
        assert!(!conditions_changed(&[ready], &[other_reason]));
    }
}
