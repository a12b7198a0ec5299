// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! MCM's preservation: a Failed machine annotated to be preserved keeps its VM
//! and Node (drained and cordoned) until it recovers or the preservation expires.

use crate::support;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use mcm_local::contract::Phase;
use std::collections::BTreeMap;
use support::controller::{delete_all_machines, settings, start};
use support::running::{Sampled, machine};
use support::{TIMEOUT, wait_for, wait_for_deleted};

/// MCM's `shouldAnnotationsBeUpdatedOnMachine` after a stop: a Running machine
/// and its Node both annotated `preserve=when-failed` are not preserved (not
/// Failed), and yet the Node's value is recorded on the machine and the
/// machine's own annotation cleared, so that the Node's value rules from then on.
#[tokio::test]
async fn the_nodes_preserve_value_is_recorded_on_a_machine_not_preserved() {
    use mcm_local::contract::preserve;

    let sampled = Sampled::new("preserve-record", "rec").await;
    let mut m = machine(&sampled.name, "test-class");
    m.metadata.annotations = Some(BTreeMap::from([(
        preserve::ANNOTATION.to_string(),
        "when-failed".to_string(),
    )]));
    let controller = sampled.run(m).await;
    let Sampled {
        target,
        machines,
        name,
        node_name,
        ..
    } = &sampled;
    let nodes: Api<Node> = Api::all(target.clone());
    let annotate =
        serde_json::json!({"metadata": {"annotations": {preserve::ANNOTATION: "when-failed"}}});
    nodes
        .patch(node_name, &PatchParams::default(), &Patch::Merge(&annotate))
        .await
        .unwrap();
    let recorded = wait_for(
        machines,
        name,
        TIMEOUT,
        "the Node's value is recorded on the machine",
        |m| {
            m.annotations()
                .get(preserve::LAST_APPLIED_NODE_VALUE)
                .map(String::as_str)
                == Some("when-failed")
        },
    )
    .await;
    assert!(!recorded.annotations().contains_key(preserve::ANNOTATION));
    assert_eq!(recorded.status.current_status.preserve_expiry_time, None);
    assert_eq!(recorded.phase(), Some(&Phase::Running));

    delete_all_machines(machines).await;
    controller.stop().await;
}

/// MCM's machine preservation: a machine annotated `preserve=when-failed` that
/// fails is preserved: `preserveExpiryTime` set, its Node drained and cordoned,
/// cluster-autoscaler's scale-down-disabled annotation and the `Preserved`
/// condition on it, in MCM's words. When the Node is healthy again the machine
/// runs and preservation stops: uncordoned, the condition False
/// ("Preservation stopped."), the autoscaler annotation and the expiry gone.
#[tokio::test]
async fn a_failed_machine_annotated_when_failed_is_preserved_until_it_recovers() {
    use support::node::{cordoned, fails_preserved, preserved, recovers};

    let Sampled {
        ns,
        target,
        machines,
        name,
        node_name,
    } = Sampled::new("preserve", "keep").await;
    let mut s = settings(&ns);
    s.health_timeout = std::time::Duration::from_secs(2);
    let controller = start(s).await;
    let mut m = machine(&name, "test-class");
    m.metadata.annotations = Some(BTreeMap::from([(
        "node.machine.sapcloud.io/preserve".to_string(),
        "when-failed".to_string(),
    )]));
    // The Node will not answer: its Pods are drained by force, as MCM's
    // `force-drain` label (or 5 minutes NotReady) has it.
    m.metadata
        .labels
        .get_or_insert_default()
        .insert("force-drain".into(), "True".into());
    machines.create(&PostParams::default(), &m).await.unwrap();
    wait_for(&machines, &name, TIMEOUT, "the machine is Running", |m| {
        m.phase() == Some(&Phase::Running)
    })
    .await;
    let pods: Api<Pod> = ns.api(&target);
    support::workload::workload_on(&pods, &node_name, "app", &[]).await;

    // The Node stops reporting (its heartbeat is taken from kwok) and turns NotReady.
    let nodes: Api<Node> = Api::all(target.clone());
    let (failed, node) = fails_preserved(&machines, &nodes, &name, &node_name).await;
    let condition = preserved(&node).unwrap();
    assert_eq!(condition.reason.as_deref(), Some("Preserved by user."));
    assert!(
        condition
            .message
            .as_deref()
            .unwrap_or_default()
            .starts_with("Preserved node drained successfully. Machine preserved until "),
        "{condition:?}"
    );
    assert!(cordoned(&node));
    assert_eq!(
        node.annotations()
            .get("cluster-autoscaler.kubernetes.io/scale-down-disabled")
            .map(String::as_str),
        Some("true")
    );
    wait_for_deleted(&pods, "app", TIMEOUT, "the workload is drained").await;
    assert!(failed.status.current_status.preserve_expiry_time.is_some());

    // The Node recovers: the machine runs again and preservation stops.
    let node = recovers(&machines, &nodes, &name, &node_name).await;
    assert!(
        !node
            .annotations()
            .contains_key("cluster-autoscaler.kubernetes.io/scale-down-disabled")
    );

    delete_all_machines(&machines).await;
    controller.stop().await;
}
