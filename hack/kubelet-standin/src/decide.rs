// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! What the kubelet of one machine Pod does next, as a pure function of what the
//! stand-in observes.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use crate::node::NodeView;

/// The machine Pod, seen as the VM it plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodState<'a> {
    /// No such Pod (deleted, or no longer a machine Pod).
    Gone,
    /// Not running yet (Pending, or no phase).
    Starting,
    /// Running: the VM boots and its kubelet joins.
    Running { uid: &'a str },
    /// Terminating or terminated: its kubelet no longer runs.
    Stopped { uid: &'a str },
}

impl<'a> PodState<'a> {
    pub fn of(pod: Option<&'a Pod>) -> Self {
        let Some(pod) = pod else {
            return PodState::Gone;
        };
        let Some(uid) = pod.metadata.uid.as_deref() else {
            return PodState::Starting;
        };
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if pod.metadata.deletion_timestamp.is_some()
            || matches!(phase, Some("Succeeded" | "Failed"))
        {
            PodState::Stopped { uid }
        } else if phase == Some("Running") {
            PodState::Running { uid }
        } else {
            PodState::Starting
        }
    }
}

/// Everything [`decide`] looks at for one machine Pod.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    pub key: &'a crate::PodKey,
    pub pod: PodState<'a>,
    /// The Node named after the Pod.
    pub node: Option<&'a NodeView>,
    /// The Pod UID whose kubelet already joined, as remembered by this process.
    pub joined_uid: Option<&'a str>,
    /// How long this Pod has been seen Running.
    pub running_for: Duration,
    pub join_delay: Duration,
    /// The Node points to another Pod of the same name (other namespace) that runs.
    pub node_owner_running: bool,
    /// The Pod's zone is out (the local cloud's cloud-wide profile): its VM
    /// runs, but its kubelet cannot reach the API server.
    pub zone_out: bool,
    /// What the local cloud's profile made of this VM, if anything.
    pub boot_fault: Option<BootFault>,
}

/// What becomes of a VM once made, from the Pod's annotation
/// `local.machine.sapcloud.io/boot-fault` (the class's cloud profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootFault {
    /// The VM crashes: its Pod fails before the kubelet joins.
    PodFails,
    /// The VM runs, but its kubelet never joins.
    NeverJoins,
    /// The kubelet joins, and stops posting status this long after the VM
    /// started running.
    NotReadyAfter(Duration),
}

impl BootFault {
    /// Reads the annotation's value; anything else is no fault.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "pod-fails" => Some(BootFault::PodFails),
            "never-joins" => Some(BootFault::NeverJoins),
            _ => {
                let after = value.strip_prefix("not-ready-after=")?;
                humantime::parse_duration(after)
                    .ok()
                    .map(BootFault::NotReadyAfter)
            }
        }
    }
}

/// The next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to do, and why (for debug logs).
    Nothing(&'static str),
    /// The Node of this very Pod exists: remember that its kubelet has joined.
    Joined,
    /// Running, but the join delay has not passed: look again after this long.
    WaitForJoinDelay(Duration),
    /// Authenticate with the user data's bootstrap token, then create the Node.
    Register,
    /// Authenticate, then point the existing Node of ours at this new Pod and let
    /// kwok manage it again (the VM was recreated under the same name).
    Rejoin,
    /// The VM stopped, or its zone is out (`outage`: the Node is marked so
    /// that it comes back when the zone does): make its Node NotReady.
    Stop {
        stop_heartbeat: bool,
        mark_not_ready: bool,
        outage: bool,
    },
    /// The zone is back: the kubelet that kept running posts status again.
    Resume,
    /// The VM crashed at boot (a boot fault): its Pod fails.
    FailPod,
    /// The Node of this very Pod exists and will stop posting status (a boot
    /// fault) after this long: remember the join, look again then.
    JoinedUntil(Duration),
}

pub fn decide(o: &Observation<'_>) -> Plan {
    let ours = o.node.filter(|n| n.ours);
    match o.pod {
        PodState::Starting => Plan::Nothing("the pod is not running yet"),
        PodState::Gone | PodState::Stopped { .. } => {
            let Some(node) = ours else {
                return Plan::Nothing("no node of ours for this pod");
            };
            let belongs = match o.pod {
                PodState::Stopped { uid } => node.pod_uid.as_deref() == Some(uid),
                _ => node.pod.as_ref() == Some(o.key),
            };
            if !belongs {
                return Plan::Nothing("the node belongs to another pod");
            }
            if node.deleting {
                return Plan::Nothing("the node is being deleted");
            }
            stop(node, false).unwrap_or(Plan::Nothing("the node is already NotReady"))
        }
        PodState::Running { .. } if o.boot_fault == Some(BootFault::PodFails) => Plan::FailPod,
        PodState::Running { .. }
            if o.boot_fault == Some(BootFault::NeverJoins) && o.node.is_none() =>
        {
            Plan::Nothing("the VM never joins (boot fault)")
        }
        PodState::Running { uid } if o.zone_out => match ours {
            Some(node) if node.pod_uid.as_deref() == Some(uid) && !node.deleting => {
                stop(node, true).unwrap_or(Plan::Nothing("the node is down with its zone"))
            }
            _ => Plan::Nothing("its zone is out: the kubelet cannot reach the API server"),
        },
        PodState::Running { uid } => {
            let join = match o.node {
                Some(node) if !node.ours => {
                    return Plan::Nothing("the node was not registered by the stand-in");
                }
                Some(node) if node.pod_uid.as_deref() == Some(uid) && node.outage => {
                    return Plan::Resume;
                }
                Some(node) if node.pod_uid.as_deref() == Some(uid) => {
                    return match o.boot_fault {
                        Some(BootFault::NotReadyAfter(after)) => {
                            match after.checked_sub(o.running_for).filter(|l| !l.is_zero()) {
                                Some(left) => Plan::JoinedUntil(left),
                                None => stop(node, false)
                                    .unwrap_or(Plan::Nothing("the node is down (boot fault)")),
                            }
                        }
                        _ => Plan::Joined,
                    };
                }
                Some(node) if node.deleting => {
                    return Plan::Nothing("the old node is being deleted");
                }
                Some(_) if o.node_owner_running => {
                    return Plan::Nothing(
                        "the node belongs to another running pod of the same name",
                    );
                }
                Some(_) => Plan::Rejoin,
                None if o.joined_uid == Some(uid) => {
                    return Plan::Nothing(
                        "the node was deleted after this pod joined; a kubelet registers once per boot",
                    );
                }
                None => Plan::Register,
            };
            match o.join_delay.checked_sub(o.running_for) {
                Some(left) if !left.is_zero() => Plan::WaitForJoinDelay(left),
                _ => join,
            }
        }
    }
}

/// What stopping `node` takes, if anything (`outage`: stopped with its zone).
fn stop(node: &NodeView, outage: bool) -> Option<Plan> {
    let (stop_heartbeat, mark_not_ready) = (node.kwok_managed, !node.stopped_status);
    (stop_heartbeat || mark_not_ready || outage && !node.outage).then_some(Plan::Stop {
        stop_heartbeat,
        mark_not_ready,
        outage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PodKey;
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn key() -> PodKey {
        PodKey {
            namespace: "ns".into(),
            name: "machine-a".into(),
        }
    }

    fn node(uid: &str) -> NodeView {
        NodeView {
            ours: true,
            pod: Some(key()),
            pod_uid: Some(uid.into()),
            kwok_managed: true,
            deleting: false,
            stopped_status: false,
            outage: false,
        }
    }

    fn obs<'a>(key: &'a PodKey, pod: PodState<'a>, node: Option<&'a NodeView>) -> Observation<'a> {
        Observation {
            key,
            pod,
            node,
            joined_uid: None,
            running_for: Duration::ZERO,
            join_delay: Duration::ZERO,
            node_owner_running: false,
            zone_out: false,
            boot_fault: None,
        }
    }

    #[test]
    fn boot_faults_fail_the_pod_keep_the_kubelet_out_or_stop_it_later() {
        let k = key();
        let running = PodState::Running { uid: "u1" };
        let mut o = obs(&k, running, None);
        o.boot_fault = BootFault::parse("pod-fails");
        assert_eq!(decide(&o), Plan::FailPod);
        o.boot_fault = BootFault::parse("never-joins");
        assert!(matches!(decide(&o), Plan::Nothing(_)));
        // Goes NotReady two minutes after it started running.
        let up = node("u1");
        o.node = Some(&up);
        o.boot_fault = BootFault::parse("not-ready-after=120s");
        o.running_for = Duration::from_secs(20);
        assert_eq!(decide(&o), Plan::JoinedUntil(Duration::from_secs(100)));
        o.running_for = Duration::from_secs(120);
        assert_eq!(
            decide(&o),
            Plan::Stop {
                stop_heartbeat: true,
                mark_not_ready: true,
                outage: false
            }
        );
        let down = NodeView {
            kwok_managed: false,
            stopped_status: true,
            ..node("u1")
        };
        o.node = Some(&down);
        assert!(matches!(decide(&o), Plan::Nothing(_)));
        assert_eq!(BootFault::parse("soon"), None);
    }

    #[test]
    fn a_zone_outage_takes_the_node_down_and_its_end_brings_it_back() {
        let k = key();
        let running = PodState::Running { uid: "u1" };
        let up = node("u1");
        let mut out = obs(&k, running, Some(&up));
        out.zone_out = true;
        assert_eq!(
            decide(&out),
            Plan::Stop {
                stop_heartbeat: true,
                mark_not_ready: true,
                outage: true
            }
        );
        let down = NodeView {
            kwok_managed: false,
            stopped_status: true,
            outage: true,
            ..node("u1")
        };
        out.node = Some(&down);
        assert!(matches!(decide(&out), Plan::Nothing(_)));
        // A VM in a zone that is out does not join.
        out.node = None;
        assert!(matches!(decide(&out), Plan::Nothing(_)));
        // The zone is back.
        assert_eq!(decide(&obs(&k, running, Some(&down))), Plan::Resume);
        // A Node stopped by someone else (a test's dead kubelet) stays down.
        let stopped_by_others = NodeView {
            outage: false,
            ..down
        };
        assert_eq!(
            decide(&obs(&k, running, Some(&stopped_by_others))),
            Plan::Joined
        );
    }

    fn pod(phase: Option<&str>, deleting: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                uid: Some("u1".into()),
                deletion_timestamp: deleting.then_some(Time(jiff::Timestamp::UNIX_EPOCH)),
                ..Default::default()
            },
            status: Some(PodStatus {
                phase: phase.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn pod_states() {
        assert_eq!(PodState::of(None), PodState::Gone);
        assert_eq!(PodState::of(Some(&pod(None, false))), PodState::Starting);
        assert_eq!(
            PodState::of(Some(&pod(Some("Pending"), false))),
            PodState::Starting
        );
        assert_eq!(
            PodState::of(Some(&pod(Some("Running"), false))),
            PodState::Running { uid: "u1" }
        );
        assert_eq!(
            PodState::of(Some(&pod(Some("Running"), true))),
            PodState::Stopped { uid: "u1" }
        );
        assert_eq!(
            PodState::of(Some(&pod(Some("Failed"), false))),
            PodState::Stopped { uid: "u1" }
        );
        assert_eq!(PodState::of(Some(&Pod::default())), PodState::Starting);
    }

    #[test]
    fn registers_a_running_pod_without_node() {
        let k = key();
        assert_eq!(
            decide(&obs(&k, PodState::Running { uid: "u1" }, None)),
            Plan::Register
        );
        assert!(matches!(
            decide(&obs(&k, PodState::Starting, None)),
            Plan::Nothing(_)
        ));
    }

    #[test]
    fn honours_the_join_delay() {
        let k = key();
        let mut o = obs(&k, PodState::Running { uid: "u1" }, None);
        o.join_delay = Duration::from_secs(10);
        o.running_for = Duration::from_secs(3);
        assert_eq!(decide(&o), Plan::WaitForJoinDelay(Duration::from_secs(7)));
        o.running_for = Duration::from_secs(10);
        assert_eq!(decide(&o), Plan::Register);
        o.running_for = Duration::from_secs(11);
        assert_eq!(decide(&o), Plan::Register);
    }

    #[test]
    fn existing_nodes() {
        let k = key();
        let mine = node("u1");
        assert_eq!(
            decide(&obs(&k, PodState::Running { uid: "u1" }, Some(&mine))),
            Plan::Joined
        );

        let foreign = NodeView {
            ours: false,
            ..node("u1")
        };
        assert!(matches!(
            decide(&obs(&k, PodState::Running { uid: "u1" }, Some(&foreign))),
            Plan::Nothing(_)
        ));

        let old = NodeView {
            kwok_managed: false,
            stopped_status: true,
            ..node("u0")
        };
        assert_eq!(
            decide(&obs(&k, PodState::Running { uid: "u1" }, Some(&old))),
            Plan::Rejoin
        );

        let mut o = obs(&k, PodState::Running { uid: "u1" }, Some(&old));
        o.node_owner_running = true;
        assert!(matches!(decide(&o), Plan::Nothing(_)));

        let deleting = NodeView {
            deleting: true,
            ..node("u0")
        };
        assert!(matches!(
            decide(&obs(&k, PodState::Running { uid: "u1" }, Some(&deleting))),
            Plan::Nothing(_)
        ));
    }

    #[test]
    fn registers_once_per_boot() {
        let k = key();
        let mut o = obs(&k, PodState::Running { uid: "u1" }, None);
        o.joined_uid = Some("u1");
        assert!(matches!(decide(&o), Plan::Nothing(_)));
        o.joined_uid = Some("u0");
        assert_eq!(decide(&o), Plan::Register);
    }

    #[test]
    fn stops_the_node_of_a_gone_pod() {
        let k = key();
        let n = node("u1");
        let stop = Plan::Stop {
            stop_heartbeat: true,
            mark_not_ready: true,
            outage: false,
        };
        assert_eq!(decide(&obs(&k, PodState::Gone, Some(&n))), stop);
        assert_eq!(
            decide(&obs(&k, PodState::Stopped { uid: "u1" }, Some(&n))),
            stop
        );

        let half = NodeView {
            kwok_managed: false,
            ..node("u1")
        };
        assert_eq!(
            decide(&obs(&k, PodState::Gone, Some(&half))),
            Plan::Stop {
                stop_heartbeat: false,
                mark_not_ready: true,
                outage: false
            }
        );
        let done = NodeView {
            kwok_managed: false,
            stopped_status: true,
            ..node("u1")
        };
        assert!(matches!(
            decide(&obs(&k, PodState::Gone, Some(&done))),
            Plan::Nothing(_)
        ));
        assert!(matches!(
            decide(&obs(&k, PodState::Gone, None)),
            Plan::Nothing(_)
        ));
    }

    #[test]
    fn leaves_other_nodes_alone_when_a_pod_goes() {
        let k = key();
        let other_ns = NodeView {
            pod: Some(PodKey {
                namespace: "other".into(),
                name: "machine-a".into(),
            }),
            ..node("u9")
        };
        assert!(matches!(
            decide(&obs(&k, PodState::Gone, Some(&other_ns))),
            Plan::Nothing(_)
        ));
        // a stopped old pod must not stop the node a newer pod re-joined
        let newer = node("u2");
        assert!(matches!(
            decide(&obs(&k, PodState::Stopped { uid: "u1" }, Some(&newer))),
            Plan::Nothing(_)
        ));
        let foreign = NodeView {
            ours: false,
            ..node("u1")
        };
        assert!(matches!(
            decide(&obs(&k, PodState::Gone, Some(&foreign))),
            Plan::Nothing(_)
        ));
        let deleting = NodeView {
            deleting: true,
            ..node("u1")
        };
        assert!(matches!(
            decide(&obs(&k, PodState::Gone, Some(&deleting))),
            Plan::Nothing(_)
        ));
    }
}
