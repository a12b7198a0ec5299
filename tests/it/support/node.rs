// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! A machine's Node as its kubelet would leave it: unhealthy when the kubelet
//! dies, healthy when it is back; and what preservation makes of the machine
//! and puts on the Node.

use k8s_openapi::api::core::v1::{Node, NodeCondition};
use kube::Api;
use kube::api::{Patch, PatchParams};
use mcm_local::api::Machine;
use mcm_local::contract::Phase;
use serde_json::json;

use super::machine::KWOK_LABEL;
use super::{TIMEOUT, wait_for};

/// The Node stops reporting (kwok no longer heartbeats it) and says it is NotReady.
async fn kubelet_dies(nodes: &Api<Node>, name: &str) {
    let no_heartbeat = json!({"metadata": {"labels": {KWOK_LABEL: null}}});
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(&no_heartbeat))
        .await
        .unwrap();
    set_ready(nodes, name, "False").await;
}

/// The Node says it is Ready again (kwok stays off it, so nothing else writes
/// its conditions meanwhile).
async fn kubelet_is_back(nodes: &Api<Node>, name: &str) {
    set_ready(nodes, name, "True").await;
}

async fn set_ready(nodes: &Api<Node>, name: &str, status: &str) {
    let now = mcm_local::payload::now();
    let condition = NodeCondition {
        type_: "Ready".into(),
        status: status.into(),
        reason: Some("Test".into()),
        last_transition_time: Some(now.clone()),
        last_heartbeat_time: Some(now),
        ..Default::default()
    };
    // A strategic merge is keyed by condition type: the others stay.
    let patch = json!({"status": {"conditions": [condition]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
}

/// MCM's `Preserved` condition on the Node, if any.
pub fn preserved(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Preserved"))
}

/// Whether the Node is cordoned (`spec.unschedulable`).
pub fn cordoned(node: &Node) -> bool {
    node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
}

/// Whether preservation has let the Node go: the `Preserved` condition False
/// ("Preservation stopped."), and uncordoned.
pub fn released(node: &Node) -> bool {
    preserved(node).is_some_and(|c| {
        c.status == "False" && c.reason.as_deref() == Some("Preservation stopped.")
    }) && !cordoned(node)
}

/// The kubelet of `machine`'s Node `node` dies, and the machine was annotated
/// to be preserved when it fails: waits until it is Failed and preserved
/// (`preserveExpiryTime` set) and its Node cordoned with the `Preserved`
/// condition True; returns both then.
pub async fn fails_preserved(
    machines: &Api<Machine>,
    nodes: &Api<Node>,
    machine: &str,
    node: &str,
) -> (Machine, Node) {
    kubelet_dies(nodes, node).await;
    let failed = wait_for(machines, machine, TIMEOUT, "Failed and preserved", |m| {
        m.phase() == Some(&Phase::Failed) && m.status.current_status.preserve_expiry_time.is_some()
    })
    .await;
    let node = wait_for(nodes, node, TIMEOUT, "the Node preserved, cordoned", |n| {
        preserved(n).is_some_and(|c| c.status == "True") && cordoned(n)
    })
    .await;
    (failed, node)
}

/// The preserved machine `machine`'s Node `node` is healthy again: waits until
/// the machine runs, no longer preserved, and the Node is [`released`];
/// returns the Node then.
pub async fn recovers(
    machines: &Api<Machine>,
    nodes: &Api<Node>,
    machine: &str,
    node: &str,
) -> Node {
    kubelet_is_back(nodes, node).await;
    wait_for(
        machines,
        machine,
        TIMEOUT,
        "Running, no longer preserved",
        |m| {
            m.phase() == Some(&Phase::Running)
                && m.status.current_status.preserve_expiry_time.is_none()
        },
    )
    .await;
    wait_for(nodes, node, TIMEOUT, "the Node is released", released).await
}
