// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! MCM's `deleteNode` and `updateNode` (v0.62.1): a Node someone deletes takes
//! its Machine along, whether our finalizer holds the Node (it is only marked
//! for deletion) or not (it is gone at once); a Node marked not managed by MCM
//! takes nothing.

use crate::support;

use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use mcm_local::contract::NODE_FINALIZER;
use support::running::Running;
use support::{TIMEOUT, holds_until, wait_for, wait_for_deleted};

async fn deleted_node_takes_its_machine(prefix: &str, without_finalizer: bool) {
    let Running {
        ns: _ns,
        name: machine,
        node_name: node,
        controller,
        machines,
        nodes,
        pods,
        ..
    } = Running::start(prefix).await;
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
        name: machine,
        node_name: node,
        controller,
        machines,
        nodes,
        ..
    } = Running::start("node-unmanaged").await;
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
