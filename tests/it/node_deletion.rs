// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! MCM's `deleteNode` and `updateNode` (v0.62.1): a Node someone deletes takes
//! its Machine along, whether our finalizer holds the Node (it is only marked
//! for deletion) or not (it is gone at once); a Node marked not managed by MCM
//! takes nothing.

use crate::support;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use mcm_local::api::Machine;
use mcm_local::contract::{NODE_FINALIZER, Phase};
use support::controller::{ControllerGuard, kubectl_apply, sample, settings, start};
use support::{Cluster, TIMEOUT, TestNamespace, holds_until, wait_for, wait_for_deleted};

/// The sample machine (under a name of the test's own: Nodes are
/// cluster-wide), Running under our controller in a fresh namespace.
struct Running {
    ns: TestNamespace,
    machine: String,
    node: String,
    controller: ControllerGuard,
    machines: Api<Machine>,
    nodes: Api<Node>,
    pods: Api<Pod>,
}

async fn running_machine(prefix: &str) -> Running {
    let ns = TestNamespace::in_both(prefix).await;
    for file in ["secret.yaml", "machine-class.yaml"] {
        kubectl_apply(Cluster::Control, &sample(file, ns.name(), &[])).await;
    }
    let machine = format!("m-{}", &ns.name()[ns.name().len() - 6..]);
    let renamed = format!("name: {machine}");
    let yaml = sample(
        "machine.yaml",
        ns.name(),
        &[("name: test-machine", &renamed)],
    );
    kubectl_apply(Cluster::Control, &yaml).await;
    let node = format!("machine-{machine}");
    ns.delete_on_drop::<Node>(Cluster::Target, None, &node);
    let (control, target) = (support::control().await, support::target().await);
    let controller = start(settings(&ns)).await;
    let machines: Api<Machine> = ns.api(&control);
    wait_for(
        &machines,
        &machine,
        TIMEOUT,
        "the machine is Running",
        |m| m.phase() == Some(&Phase::Running),
    )
    .await;
    Running {
        pods: ns.api(&target),
        nodes: Api::all(target),
        ns,
        machine,
        node,
        controller,
        machines,
    }
}

async fn deleted_node_takes_its_machine(prefix: &str, without_finalizer: bool) {
    let Running {
        ns: _ns,
        machine,
        node,
        controller,
        machines,
        nodes,
        pods,
    } = running_machine(prefix).await;
    wait_for(
        &nodes,
        &node,
        TIMEOUT,
        "the Node carries our finalizer",
        |n| n.finalizers().iter().any(|f| f == NODE_FINALIZER),
    )
    .await;
    if without_finalizer {
        // Gone at once: only the watch's delete event tells.
        nodes
            .patch(
                &node,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
            )
            .await
            .unwrap();
    }
    nodes.delete(&node, &DeleteParams::default()).await.unwrap();

    wait_for_deleted(
        &machines,
        &machine,
        TIMEOUT,
        "the machine goes with its Node",
    )
    .await;
    wait_for_deleted(&pods, &node, TIMEOUT, "its VM is deleted").await;
    wait_for_deleted(&nodes, &node, TIMEOUT, "the Node is gone").await;
    controller.stop().await;
}

/// `kubectl delete node`: our finalizer holds the Node while the machine's
/// deletion flow runs, then lets it go.
#[tokio::test]
async fn a_node_marked_for_deletion_takes_its_machine_along() {
    deleted_node_takes_its_machine("node-marked", false).await;
}

/// A Node deleted without our finalizer is gone before we look.
#[tokio::test]
async fn a_node_deleted_outright_takes_its_machine_along() {
    deleted_node_takes_its_machine("node-gone", true).await;
}

/// A Node annotated `node.machine.sapcloud.io/not-managed-by-mcm` is not
/// MCM's: its deletion leaves the machine alone.
#[tokio::test]
async fn a_node_not_managed_by_mcm_takes_nothing_along() {
    let Running {
        ns: _ns,
        machine,
        node,
        controller,
        machines,
        nodes,
        ..
    } = running_machine("node-unmanaged").await;
    let annotate = serde_json::json!({"metadata": {
        "annotations": {"node.machine.sapcloud.io/not-managed-by-mcm": "true"},
        "finalizers": null,
    }});
    nodes
        .patch(&node, &PatchParams::default(), &Patch::Merge(annotate))
        .await
        .unwrap();
    nodes.delete(&node, &DeleteParams::default()).await.unwrap();
    wait_for_deleted(&nodes, &node, TIMEOUT, "the Node is gone").await;
    holds_until(
        &machines,
        Default::default(),
        std::time::Duration::from_secs(5),
        "the machine is still there, not being deleted",
        |l| {
            l.iter()
                .any(|m| m.name_any() == machine && m.metadata.deletion_timestamp.is_none())
        },
    )
    .await;
    support::controller::delete_all_machines(&machines).await;
    controller.stop().await;
}
