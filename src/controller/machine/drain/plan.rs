// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! What a drain pass does, decided from plain values: how the Pods of a Node
//! are treated ([`mode`]), what each Pod gets ([`pod_action`]), what the API's
//! answer means for it ([`after`], with [`after_refusal`] for an eviction a
//! budget refused), and where the pass leaves the drain ([`conclude`]). One set of rules for MCM
//! v0.62.1's three drains (`drainNode`, `drainNodeForInPlace`,
//! `drainPreservedNode`), which differ only in when their clock starts and in
//! the label that forces them.
//!
//! Long because: more than half is tests, one per force reason and purpose,
//! written with plain values.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;

use crate::api::{Machine, PodOnNode};
use crate::contract::{FORCE_DELETION_LABEL, FORCE_DRAIN_LABEL, inplace};
use crate::duration::age;

/// A node NotReady (or with a read-only filesystem) for this long is drained
/// by force: its kubelet cannot end a Pod gracefully.
pub(crate) const NOT_READY_FORCE_AFTER: Duration = Duration::from_secs(5 * 60);
/// Pause between evictions refused by a PodDisruptionBudget (MCM's
/// `PodEvictionRetryInterval`); retries are counted in these.
pub(crate) const PDB_RETRY: Duration = Duration::from_secs(20);
/// Marks a static Pod's mirror in the API server.
pub(crate) const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Which of MCM's drains runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// The machine is being deleted: the clock starts at its deletion, and the
    /// `force-deletion` label (any of Go's true values) forces it.
    Deletion,
    /// MCM's MachineSet selected the Node for an in-place update: the clock
    /// starts when the Node's `InPlaceUpdate` condition turned
    /// `SelectedForUpdate`, never earlier; `force-drain: "True"` forces it.
    InPlace,
    /// A preserved machine failed: the clock starts at its last phase change
    /// (the move to Failed, as MCM reads it); `force-drain: "True"` forces it.
    Preserved,
}

/// Why a drain deletes Pods at once (grace 0, budgets ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Force {
    /// The machine carries the purpose's force label.
    Label(&'static str),
    /// The drain's clock ran longer than the drain timeout.
    Timeout,
    /// The node has not been Ready for over 5 minutes.
    NotReady,
    /// The node's filesystem has been read-only for over 5 minutes.
    ReadonlyFilesystem,
}

impl std::fmt::Display for Force {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Force::Label(label) => write!(f, "the {label} label is set"),
            Force::Timeout => f.write_str("the drain timeout has passed"),
            Force::NotReady => f.write_str("the node is NotReady for over 5min"),
            Force::ReadonlyFilesystem => {
                f.write_str("the node is in ReadonlyFilesystem for over 5min")
            }
        }
    }
}

/// The limits of a drain, from the machine's settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub drain_timeout: Duration,
    pub max_evict_retries: i32,
}

/// How one pass treats the Node's Pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mode {
    /// Set: every drainable Pod is deleted at once.
    pub force: Option<Force>,
    /// Refused evictions have been retried as often as MCM retries them
    /// (`maxEvictRetries`, capped by the drain timeout): a Pod a budget still
    /// protects is deleted.
    pub exhausted: bool,
}

/// When the purpose's clock started, if it did.
pub(crate) fn clock_start<'a>(
    purpose: Purpose,
    machine: &'a Machine,
    node: Option<&'a Node>,
) -> Option<&'a jiff::Timestamp> {
    match purpose {
        Purpose::Deletion => machine.metadata.deletion_timestamp.as_ref().map(|t| &t.0),
        Purpose::InPlace => node
            .and_then(|n| n.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == inplace::CONDITION))
            .filter(|c| c.reason.as_deref() == Some(inplace::SELECTED))
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| &t.0),
        Purpose::Preserved => machine.status_updated_at(),
    }
}

/// Go's `strconv.ParseBool` true values, which MCM reads `force-deletion` with.
fn go_true(value: &str) -> bool {
    matches!(value, "1" | "t" | "T" | "TRUE" | "true" | "True")
}

/// Why the purpose's drain of `machine` runs by force, if it does.
pub(crate) fn force(
    purpose: Purpose,
    machine: &Machine,
    node: Option<&Node>,
    drain_timeout: Duration,
    now: jiff::Timestamp,
) -> Option<Force> {
    let labelled = match purpose {
        Purpose::Deletion => machine
            .label(FORCE_DELETION_LABEL)
            .is_some_and(go_true)
            .then_some(FORCE_DELETION_LABEL),
        // MCM compares with "True" exactly here.
        Purpose::InPlace | Purpose::Preserved => {
            (machine.label(FORCE_DRAIN_LABEL) == Some("True")).then_some(FORCE_DRAIN_LABEL)
        }
    };
    if let Some(label) = labelled {
        return Some(Force::Label(label));
    }
    if let Some(start) = clock_start(purpose, machine, node)
        && age(Some(start), now) > drain_timeout
    {
        return Some(Force::Timeout);
    }
    // The machine's copy of the Node's conditions, as MCM reads them.
    let since_unhealthy = |kind: &str, healthy: &str| {
        machine
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == kind && c.status != healthy)
            .is_some_and(|c| {
                age(c.last_transition_time.as_ref().map(|t| &t.0), now) > NOT_READY_FORCE_AFTER
            })
    };
    if since_unhealthy("Ready", "True") {
        return Some(Force::NotReady);
    }
    if since_unhealthy("ReadonlyFilesystem", "False") {
        return Some(Force::ReadonlyFilesystem);
    }
    None
}

/// Whether refused evictions have been retried long enough: one retry per
/// [`PDB_RETRY`] since the clock started, up to `maxEvictRetries` and no more
/// than fit into the drain timeout (MCM's limit). No state is kept, so a
/// restart neither resets nor repeats the count.
pub(crate) fn exhausted(
    start: Option<&jiff::Timestamp>,
    limits: Limits,
    now: jiff::Timestamp,
) -> bool {
    let Some(start) = start else {
        return false;
    };
    let by_timeout = limits.drain_timeout.as_secs() / PDB_RETRY.as_secs();
    let limit = u64::try_from(limits.max_evict_retries.max(0))
        .unwrap_or(0)
        .min(by_timeout);
    age(Some(start), now).as_secs() / PDB_RETRY.as_secs() >= limit
}

/// How the purpose's drain treats the Pods of `machine`'s Node now.
pub(crate) fn mode(
    purpose: Purpose,
    machine: &Machine,
    node: Option<&Node>,
    limits: Limits,
    now: jiff::Timestamp,
) -> Mode {
    Mode {
        force: force(purpose, machine, node, limits.drain_timeout, now),
        exhausted: exhausted(clock_start(purpose, machine, node), limits, now),
    }
}

/// Pods a drain leaves alone: DaemonSet Pods and mirror Pods.
pub(crate) fn is_drainable(pod: &PodOnNode) -> bool {
    let daemon = pod
        .owner_references()
        .iter()
        .any(|o| o.kind == "DaemonSet" && o.controller == Some(true));
    let mirror = pod.annotations().contains_key(MIRROR_ANNOTATION);
    !daemon && !mirror
}

/// What a pass does with one Pod of the Node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PodAction {
    /// A DaemonSet or mirror Pod: it stays.
    Leave,
    /// Ask the eviction API, so that PodDisruptionBudgets hold.
    Evict,
    /// Delete with grace 0, as MCM's `deletePod` does: forced.
    Delete,
    /// Already terminating: wait for it to go.
    Wait,
}

/// What one Pod gets in a pass in `mode`. A forced drain deletes even Pods
/// that are terminating (grace 0 ends a slow termination); otherwise a Pod is
/// evicted first and deleted only after its budget refused long enough
/// ([`after_refusal`]), so that a Pod nobody tried to evict is never deleted.
pub(crate) fn pod_action(pod: &PodOnNode, mode: &Mode) -> PodAction {
    if !is_drainable(pod) {
        PodAction::Leave
    } else if mode.force.is_some() {
        PodAction::Delete
    } else if pod.metadata.deletion_timestamp.is_some() {
        PodAction::Wait
    } else {
        PodAction::Evict
    }
}

/// What follows an eviction a budget refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Try again after [`PDB_RETRY`].
    Retry,
    /// Retried long enough: delete the Pod (grace 0), as MCM does.
    Delete,
    /// The budget can never allow an eviction: a drain error, in MCM's words.
    Misconfigured(String),
}

/// MCM's `isMisconfiguredPdb`: a budget that has seen its current spec, whose
/// expected Pods are all healthy, and that still allows no disruption.
pub(crate) fn is_misconfigured(pdb: &PodDisruptionBudget) -> bool {
    let Some(status) = &pdb.status else {
        return false;
    };
    if pdb.metadata.generation != status.observed_generation {
        return false;
    }
    status.expected_pods > 0
        && status.current_healthy >= status.expected_pods
        && status.disruptions_allowed == 0
}

/// What follows the refusal of `pod`'s eviction, given the budget that covers
/// it (if one was found). MCM reports a misconfigured budget at once, before
/// retrying: no number of retries could get the Pod out.
pub(crate) fn after_refusal(pod: &str, pdb: Option<&PodDisruptionBudget>, mode: &Mode) -> Refused {
    if let Some(pdb) = pdb
        && is_misconfigured(pdb)
    {
        return Refused::Misconfigured(format!(
            "error while evicting pod {pod:?}: pod disruption budget {}/{} is misconfigured and requires zero voluntary evictions",
            pdb.namespace().unwrap_or_default(),
            pdb.name_any()
        ));
    }
    if mode.exhausted {
        Refused::Delete
    } else {
        Refused::Retry
    }
}

/// How the API answered what a pass did to one Pod.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Answer {
    /// Deleted, or evicted: the Pod is on its way out.
    Accepted,
    /// The Pod was gone already.
    Gone,
    /// A budget refused the eviction: the API's message, and the budget that
    /// covers the Pod if it could be read (boxed: a budget is large).
    Refused {
        message: String,
        budget: Option<Box<PodDisruptionBudget>>,
    },
}

/// What one Pod means for the pass, once its action is done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Nothing to wait for: left alone, gone, or deleted by force.
    Clear,
    /// On its way out: the drain waits for it to be gone.
    Leaving,
    /// A budget said not now (`namespace/name: message`): retried after [`PDB_RETRY`].
    Blocked(String),
    /// Refused long enough: delete it (grace 0), then wait for it, as MCM.
    DeleteAfterRefusal,
    /// A budget that can never allow the eviction: a drain error.
    Misconfigured(String),
}

/// What follows `action` on the Pod `namespace/name`, given the API's answer
/// (none for the actions that call nothing: [`PodAction::Leave`] and
/// [`PodAction::Wait`]).
pub(crate) fn after(
    namespace: &str,
    name: &str,
    action: PodAction,
    answer: Option<Answer>,
    mode: &Mode,
) -> Next {
    match (action, answer) {
        (PodAction::Wait, _) | (PodAction::Evict, Some(Answer::Accepted)) => Next::Leaving,
        (PodAction::Evict, Some(Answer::Refused { message, budget })) => {
            match after_refusal(name, budget.as_deref(), mode) {
                Refused::Retry => Next::Blocked(format!("{namespace}/{name}: {message}")),
                Refused::Delete => Next::DeleteAfterRefusal,
                Refused::Misconfigured(why) => Next::Misconfigured(why),
            }
        }
        // Left alone, deleted by force, or gone: nothing to wait for.
        _ => Next::Clear,
    }
}

/// Where a pass over all of a Node's Pods leaves the drain: a misconfigured
/// budget fails it (all of them named, as Go joins errors), a refusal makes it
/// retry, Pods on their way out make it wait; forced, it is done once every
/// Pod is deleted.
pub(crate) fn conclude(nexts: &[Next], mode: &Mode) -> Result<Progress, Vec<String>> {
    let misconfigured: Vec<String> = nexts
        .iter()
        .filter_map(|n| match n {
            Next::Misconfigured(why) => Some(why.clone()),
            _ => None,
        })
        .collect();
    if !misconfigured.is_empty() {
        return Err(misconfigured);
    }
    let blocked = nexts.iter().rev().find_map(|n| match n {
        Next::Blocked(why) => Some(why.clone()),
        _ => None,
    });
    if let Some(why) = blocked {
        return Ok(Progress::Blocked(why));
    }
    let leaving = nexts
        .iter()
        .any(|n| matches!(n, Next::Leaving | Next::DeleteAfterRefusal));
    Ok(if mode.force.is_some() || !leaving {
        Progress::Done
    } else {
        Progress::Leaving
    })
}

/// Where a drain pass left the node.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// No drainable Pod is left (in force mode: all are deleted).
    Done,
    /// Pods are on their way out.
    Leaving,
    /// A PodDisruptionBudget refused an eviction (which Pod, and why).
    Blocked(String),
}

/// The budget that covers a Pod with `labels`, of its namespace's budgets, as
/// MCM's PDB lister picks it: the first whose selector matches (a budget
/// without a selector covers nothing; an empty one covers every Pod).
pub(crate) fn budget_for<'a>(
    labels: &std::collections::BTreeMap<String, String>,
    budgets: &'a [PodDisruptionBudget],
) -> Option<&'a PodDisruptionBudget> {
    use kube::core::SelectorExt;
    budgets.iter().find(|pdb| {
        pdb.spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .and_then(|s| kube::core::Selector::try_from(s).ok())
            .is_some_and(|s| s.matches(labels))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus};
    use k8s_openapi::api::policy::v1::{PodDisruptionBudgetSpec, PodDisruptionBudgetStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference, Time};

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }
    const NOW: &str = "2026-01-01T12:00:00Z";
    const TWO_HOURS: Duration = Duration::from_secs(7200);
    const LIMITS: Limits = Limits {
        drain_timeout: TWO_HOURS,
        max_evict_retries: 360,
    };

    /// A machine Running since `since` (its last phase change).
    fn running_since(since: &str) -> Machine {
        let mut m = Machine::named("m1");
        m.status.current_status.last_update_time = Some(Time(ts(since)));
        m
    }

    fn selected_node(at: &str, reason: &str) -> Node {
        Node {
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: inplace::CONDITION.into(),
                    status: "True".into(),
                    reason: Some(reason.into()),
                    last_transition_time: Some(Time(ts(at))),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn condition(kind: &str, status: &str, since: &str) -> NodeCondition {
        NodeCondition {
            type_: kind.into(),
            status: status.into(),
            last_transition_time: Some(Time(ts(since))),
            ..Default::default()
        }
    }

    fn with_label(mut m: Machine, key: &str, value: &str) -> Machine {
        m.metadata
            .labels
            .get_or_insert_default()
            .insert(key.into(), value.into());
        m
    }

    #[test]
    fn an_in_place_drain_of_a_long_running_node_is_not_forced() {
        // Running for a day, selected a minute ago: the clock is the selection.
        let m = running_since("2025-12-31T12:00:00Z");
        let node = selected_node("2026-01-01T11:59:00Z", inplace::SELECTED);
        assert_eq!(
            mode(Purpose::InPlace, &m, Some(&node), LIMITS, ts(NOW)),
            NORMAL
        );
        // The preserved drain reads the phase change instead (MCM's own clock).
        assert_eq!(
            force(Purpose::Preserved, &m, Some(&node), TWO_HOURS, ts(NOW)),
            Some(Force::Timeout)
        );
    }

    #[test]
    fn an_in_place_drain_is_forced_once_selected_longer_than_the_timeout() {
        let m = running_since("2025-12-31T12:00:00Z");
        let node = selected_node("2026-01-01T09:59:00Z", inplace::SELECTED);
        assert_eq!(
            force(Purpose::InPlace, &m, Some(&node), TWO_HOURS, ts(NOW)),
            Some(Force::Timeout)
        );
        // Only the SelectedForUpdate reason starts the clock.
        let candidate = selected_node("2026-01-01T09:59:00Z", inplace::CANDIDATE);
        assert_eq!(
            force(Purpose::InPlace, &m, Some(&candidate), TWO_HOURS, ts(NOW)),
            None
        );
        // Selected in this very pass: the cached Node has no condition yet.
        assert_eq!(force(Purpose::InPlace, &m, None, TWO_HOURS, ts(NOW)), None);
    }

    #[test]
    fn each_purpose_has_its_own_force_label() {
        let m = running_since("2026-01-01T11:59:00Z");
        for value in ["1", "t", "T", "TRUE", "true", "True"] {
            let deleting = with_label(m.clone(), FORCE_DELETION_LABEL, value);
            assert_eq!(
                force(Purpose::Deletion, &deleting, None, TWO_HOURS, ts(NOW)),
                Some(Force::Label(FORCE_DELETION_LABEL)),
                "{value}"
            );
            // force-deletion does not force an in-place drain.
            assert_eq!(
                force(Purpose::InPlace, &deleting, None, TWO_HOURS, ts(NOW)),
                None
            );
        }
        let odd = with_label(m.clone(), FORCE_DELETION_LABEL, "yes");
        assert_eq!(
            force(Purpose::Deletion, &odd, None, TWO_HOURS, ts(NOW)),
            None
        );
        let drain = with_label(m.clone(), FORCE_DRAIN_LABEL, "True");
        for purpose in [Purpose::InPlace, Purpose::Preserved] {
            assert_eq!(
                force(purpose, &drain, None, TWO_HOURS, ts(NOW)),
                Some(Force::Label(FORCE_DRAIN_LABEL))
            );
        }
        assert_eq!(
            force(Purpose::Deletion, &drain, None, TWO_HOURS, ts(NOW)),
            None
        );
        // MCM compares force-drain with "True" exactly.
        let lower = with_label(m, FORCE_DRAIN_LABEL, "true");
        assert_eq!(
            force(Purpose::InPlace, &lower, None, TWO_HOURS, ts(NOW)),
            None
        );
    }

    #[test]
    fn a_deletion_is_forced_after_the_drain_timeout_since_the_deletion() {
        let mut m = running_since("2025-12-31T12:00:00Z");
        m.metadata.deletion_timestamp = Some(Time(ts("2026-01-01T11:00:00Z")));
        assert_eq!(force(Purpose::Deletion, &m, None, TWO_HOURS, ts(NOW)), None);
        assert_eq!(
            force(
                Purpose::Deletion,
                &m,
                None,
                Duration::from_secs(1800),
                ts(NOW)
            ),
            Some(Force::Timeout)
        );
    }

    #[test]
    fn an_unreachable_or_read_only_node_is_drained_by_force_in_every_purpose() {
        let node = selected_node("2026-01-01T11:59:00Z", inplace::SELECTED);
        for purpose in [Purpose::Deletion, Purpose::InPlace, Purpose::Preserved] {
            let mut m = running_since("2026-01-01T11:59:00Z");
            m.metadata.deletion_timestamp = Some(Time(ts("2026-01-01T11:59:00Z")));
            m.status.conditions = vec![condition("Ready", "Unknown", "2026-01-01T11:58:00Z")];
            // Only 2 minutes: not yet.
            assert_eq!(force(purpose, &m, Some(&node), TWO_HOURS, ts(NOW)), None);
            m.status.conditions = vec![condition("Ready", "False", "2026-01-01T11:50:00Z")];
            assert_eq!(
                force(purpose, &m, Some(&node), TWO_HOURS, ts(NOW)),
                Some(Force::NotReady)
            );
            m.status.conditions = vec![
                condition("Ready", "True", "2026-01-01T11:50:00Z"),
                condition("ReadonlyFilesystem", "True", "2026-01-01T11:50:00Z"),
            ];
            assert_eq!(
                force(purpose, &m, Some(&node), TWO_HOURS, ts(NOW)),
                Some(Force::ReadonlyFilesystem)
            );
            m.status.conditions = vec![condition(
                "ReadonlyFilesystem",
                "False",
                "2026-01-01T11:50:00Z",
            )];
            assert_eq!(force(purpose, &m, Some(&node), TWO_HOURS, ts(NOW)), None);
        }
    }

    #[test]
    fn refused_evictions_are_retried_up_to_the_limit_from_the_purposes_clock() {
        let start = ts("2026-01-01T11:50:00Z");
        // 600 s = 30 retries of 20 s.
        assert!(!exhausted(Some(&start), LIMITS, ts(NOW)));
        let few = Limits {
            max_evict_retries: 30,
            ..LIMITS
        };
        assert!(exhausted(Some(&start), few, ts(NOW)));
        // The drain timeout caps the retries too.
        let short = Limits {
            drain_timeout: Duration::from_secs(600),
            ..LIMITS
        };
        assert!(exhausted(Some(&start), short, ts(NOW)));
        assert!(!exhausted(None, few, ts(NOW)));
        // In-place: counted from the selection, not from the phase change.
        let m = running_since("2025-12-31T12:00:00Z");
        let node = selected_node("2026-01-01T11:59:00Z", inplace::SELECTED);
        assert!(!mode(Purpose::InPlace, &m, Some(&node), few, ts(NOW)).exhausted);
        assert!(mode(Purpose::Preserved, &m, Some(&node), few, ts(NOW)).exhausted);
    }

    const NORMAL: Mode = Mode {
        force: None,
        exhausted: false,
    };
    const FORCED: Mode = Mode {
        force: Some(Force::Timeout),
        exhausted: false,
    };
    const EXHAUSTED: Mode = Mode {
        force: None,
        exhausted: true,
    };

    fn pod() -> PodOnNode {
        let mut p = PodOnNode::default();
        p.metadata.name = Some("web".into());
        p
    }

    #[test]
    fn each_pod_is_evicted_deleted_waited_for_or_left() {
        assert_eq!(pod_action(&pod(), &NORMAL), PodAction::Evict);
        // Exhausted retries never skip the eviction: only a refusal deletes.
        assert_eq!(pod_action(&pod(), &EXHAUSTED), PodAction::Evict);
        assert_eq!(pod_action(&pod(), &FORCED), PodAction::Delete);
        let mut leaving = pod();
        leaving.metadata.deletion_timestamp = Some(Time(ts(NOW)));
        assert_eq!(pod_action(&leaving, &NORMAL), PodAction::Wait);
        assert_eq!(pod_action(&leaving, &FORCED), PodAction::Delete);
        let mut daemon = pod();
        daemon.metadata.owner_references = Some(vec![OwnerReference {
            kind: "DaemonSet".into(),
            controller: Some(true),
            ..Default::default()
        }]);
        assert_eq!(pod_action(&daemon, &FORCED), PodAction::Leave);
        let mut mirror = pod();
        mirror.metadata.annotations =
            Some([(MIRROR_ANNOTATION.to_string(), "x".to_string())].into());
        assert_eq!(pod_action(&mirror, &NORMAL), PodAction::Leave);
    }

    fn budget(
        generation: i64,
        observed: i64,
        expected: i32,
        healthy: i32,
        allowed: i32,
    ) -> PodDisruptionBudget {
        let mut pdb = PodDisruptionBudget::default();
        pdb.metadata.name = Some("web".into());
        pdb.metadata.namespace = Some("app".into());
        pdb.metadata.generation = Some(generation);
        pdb.spec = Some(PodDisruptionBudgetSpec {
            selector: Some(LabelSelector {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        pdb.status = Some(PodDisruptionBudgetStatus {
            observed_generation: Some(observed),
            expected_pods: expected,
            current_healthy: healthy,
            disruptions_allowed: allowed,
            ..Default::default()
        });
        pdb
    }

    #[test]
    fn a_refused_eviction_is_retried_reported_or_ends_in_a_deletion() {
        // All healthy and still no disruption allowed: it never will be.
        let never = budget(1, 1, 1, 1, 0);
        assert_eq!(
            after_refusal("web", Some(&never), &NORMAL),
            Refused::Misconfigured(
                "error while evicting pod \"web\": pod disruption budget app/web is misconfigured and requires zero voluntary evictions".into()
            )
        );
        assert!(matches!(
            after_refusal("web", Some(&never), &EXHAUSTED),
            Refused::Misconfigured(_)
        ));
        // A Pod of the budget is unhealthy: the budget may allow one later.
        let later = budget(1, 1, 2, 1, 0);
        assert_eq!(after_refusal("web", Some(&later), &NORMAL), Refused::Retry);
        assert_eq!(
            after_refusal("web", Some(&later), &EXHAUSTED),
            Refused::Delete
        );
        // A status of an older spec says nothing yet.
        let stale = budget(2, 1, 1, 1, 0);
        assert_eq!(after_refusal("web", Some(&stale), &NORMAL), Refused::Retry);
        assert_eq!(after_refusal("web", None, &EXHAUSTED), Refused::Delete);
    }

    fn refused(budget: Option<PodDisruptionBudget>) -> Option<Answer> {
        Some(Answer::Refused {
            message: "Cannot evict pod".into(),
            budget: budget.map(Box::new),
        })
    }

    #[test]
    fn each_answer_tells_the_pass_what_the_pod_means() {
        let after = |action, answer, mode| after("app", "web", action, answer, mode);
        // A forced deletion, or a Pod gone before its eviction: nothing to wait for.
        let deleted = Some(Answer::Accepted);
        assert_eq!(after(PodAction::Delete, deleted, &FORCED), Next::Clear);
        let gone = Some(Answer::Gone);
        assert_eq!(after(PodAction::Delete, gone.clone(), &FORCED), Next::Clear);
        assert_eq!(after(PodAction::Evict, gone, &NORMAL), Next::Clear);
        assert_eq!(after(PodAction::Leave, None, &NORMAL), Next::Clear);
        // Evicted or already terminating: the drain waits for it.
        let evicted = Some(Answer::Accepted);
        assert_eq!(after(PodAction::Evict, evicted, &NORMAL), Next::Leaving);
        assert_eq!(after(PodAction::Wait, None, &NORMAL), Next::Leaving);
        // Refused: retried, deleted once retried long enough, or a drain error.
        assert_eq!(
            after(PodAction::Evict, refused(None), &NORMAL),
            Next::Blocked("app/web: Cannot evict pod".into())
        );
        assert_eq!(
            after(PodAction::Evict, refused(None), &EXHAUSTED),
            Next::DeleteAfterRefusal
        );
        let never = budget(1, 1, 1, 1, 0);
        assert!(matches!(
            after(PodAction::Evict, refused(Some(never)), &EXHAUSTED),
            Next::Misconfigured(_)
        ));
    }

    #[test]
    fn a_pass_fails_on_bad_budgets_retries_on_refusals_and_waits_for_leaving_pods() {
        let bad = |why: &str| Next::Misconfigured(why.into());
        let blocked = |why: &str| Next::Blocked(why.into());
        assert_eq!(
            conclude(&[bad("a"), blocked("x"), Next::Leaving, bad("b")], &NORMAL),
            Err(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(
            conclude(&[blocked("x"), Next::Leaving, blocked("y")], &NORMAL),
            Ok(Progress::Blocked("y".into()))
        );
        assert_eq!(
            conclude(&[Next::Clear, Next::Leaving], &NORMAL),
            Ok(Progress::Leaving)
        );
        // A Pod deleted after its budget refused long enough is still waited for.
        assert_eq!(
            conclude(&[Next::DeleteAfterRefusal], &EXHAUSTED),
            Ok(Progress::Leaving)
        );
        assert_eq!(conclude(&[Next::Clear], &NORMAL), Ok(Progress::Done));
        assert_eq!(conclude(&[], &NORMAL), Ok(Progress::Done));
        // Forced: done once every Pod is deleted, terminating or not.
        assert_eq!(conclude(&[Next::Leaving], &FORCED), Ok(Progress::Done));
    }

    #[test]
    fn the_budget_of_a_pod_is_the_first_whose_selector_matches() {
        let web = budget(1, 1, 1, 1, 0);
        let mut none = budget(1, 1, 1, 1, 0);
        none.metadata.name = Some("no-selector".into());
        none.spec = Some(PodDisruptionBudgetSpec::default());
        let mut all = budget(1, 1, 1, 1, 0);
        all.metadata.name = Some("all".into());
        all.spec = Some(PodDisruptionBudgetSpec {
            selector: Some(LabelSelector::default()),
            ..Default::default()
        });
        let labels = [("app".to_string(), "web".to_string())].into();
        let budgets = [none.clone(), web.clone(), all.clone()];
        assert_eq!(
            budget_for(&labels, &budgets).map(|b| b.name_any()),
            Some("web".into())
        );
        let other = [("app".to_string(), "db".to_string())].into();
        assert_eq!(
            budget_for(&other, &budgets).map(|b| b.name_any()),
            Some("all".into())
        );
        assert_eq!(budget_for(&other, &[none, web]), None);
    }
}
