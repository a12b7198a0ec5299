// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! A Running machine's Node, kept as MCM keeps it: the class's node template
//! (labels, taints, virtual capacity) on and off again, a template the API server
//! refuses reported and never fatal, our finalizer and MCM's marks.

use crate::support;
use k8s_openapi::api::core::v1::{Event, Node};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use mcm_local::api::Machine;
use mcm_local::contract::{OpState, Phase};
use support::controller::{delete_all_machines, kubectl_apply, sample, settings, start};
use support::running::{Sampled, machine};
use support::{Cluster, TIMEOUT, TestNamespace, wait_for, wait_for_list};

/// After a switch from the Go controller: a Node whose last-applied node
/// template annotation MCM wrote (Go's marshalled `NodeTemplateSpec`) is brought
/// to the machine's new template: what the old template put there and the new
/// one drops is removed, the rest added, and the annotation is written back in
/// Go's form, so that a switch back reads it too.
#[tokio::test]
async fn a_node_templated_by_the_go_controller_follows_a_template_change() {
    use kube::api::{Patch, PatchParams};

    let Sampled {
        ns,
        target,
        machines,
        name,
        node_name,
    } = Sampled::new("go-template", "gotmpl").await;
    let controller = start(settings(&ns)).await;
    machines
        .create(&PostParams::default(), &machine(&name, "test-class"))
        .await
        .unwrap();
    wait_for(&machines, &name, TIMEOUT, "the machine is Running", |m| {
        m.phase() == Some(&Phase::Running)
    })
    .await;
    controller.stop().await;

    // What MCM v0.62.1 leaves on a Node templated with {old: x, kept: k}.
    let nodes: Api<Node> = Api::all(target.clone());
    let go = r#"{"metadata":{"creationTimestamp":null,"labels":{"kept":"k","old":"x"}},"spec":{}}"#;
    let as_go_left_it = serde_json::json!({"metadata": {
        "labels": {"old": "x", "kept": "k"},
        "annotations": {"node.machine.sapcloud.io/last-applied-anno-labels-taints": go},
    }});
    nodes
        .patch(
            &node_name,
            &PatchParams::default(),
            &Patch::Merge(&as_go_left_it),
        )
        .await
        .unwrap();
    // The new template: `old` dropped, `new` added.
    let template = serde_json::json!({"spec": {"nodeTemplate": {"metadata": {
        "labels": {"kept": "k", "new": "y"},
    }}}});
    machines
        .patch(&name, &PatchParams::default(), &Patch::Merge(&template))
        .await
        .unwrap();

    let controller = start(settings(&ns)).await;
    let node = wait_for(
        &nodes,
        &node_name,
        TIMEOUT,
        "the new template on the Node",
        |n| {
            let labels = n.labels();
            labels.get("new").map(String::as_str) == Some("y")
                && !labels.contains_key("old")
                && labels.get("kept").map(String::as_str) == Some("k")
        },
    )
    .await;
    let written: serde_json::Value = serde_json::from_str(
        node.annotations()
            .get("node.machine.sapcloud.io/last-applied-anno-labels-taints")
            .expect("the annotation"),
    )
    .unwrap();
    assert_eq!(
        written["metadata"]["labels"],
        serde_json::json!({"kept": "k", "new": "y"}),
        "{written}"
    );
    delete_all_machines(&machines).await;
    controller.stop().await;
}

/// A Node marked `not-managed-by-mcm` (by MCM's safety controller, or by another
/// control namespace's controller sharing the target) while a machine claims it
/// loses the mark and gets its upkeep again: our finalizer comes back.
#[tokio::test]
async fn a_claimed_node_loses_a_stale_not_managed_mark() {
    use mcm_local::contract::{NODE_FINALIZER, NOT_MANAGED_BY_MCM_ANNOTATION};

    let sampled = Sampled::new("not-managed", "nm").await;
    let controller = sampled.run(machine(&sampled.name, "test-class")).await;
    let Sampled {
        target,
        machines,
        node_name,
        ..
    } = &sampled;
    let nodes: Api<Node> = Api::all(target.clone());
    // What an orphan pass elsewhere leaves: our finalizer gone, the mark set.
    // The patch carries the copy's resourceVersion (the finalizer list is
    // replaced whole), so a heartbeat in between means reading again.
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let node = nodes.get(node_name).await.unwrap();
        let others: Vec<&String> = node
            .finalizers()
            .iter()
            .filter(|f| *f != NODE_FINALIZER)
            .collect();
        let marked = serde_json::json!({"metadata": {
            "finalizers": others,
            "annotations": {NOT_MANAGED_BY_MCM_ANNOTATION: "1"},
            "resourceVersion": node.metadata.resource_version,
        }});
        match nodes
            .patch(node_name, &PatchParams::default(), &Patch::Merge(&marked))
            .await
        {
            Ok(_) => break,
            Err(kube::Error::Api(s)) if s.code == 409 && std::time::Instant::now() < deadline => {}
            Err(e) => panic!("mark the Node {node_name}: {e}"),
        }
    }
    wait_for(
        &nodes,
        node_name,
        TIMEOUT,
        "the mark is gone and our finalizer back",
        |n| {
            !n.annotations().contains_key(NOT_MANAGED_BY_MCM_ANNOTATION)
                && n.finalizers().iter().any(|f| f == NODE_FINALIZER)
        },
    )
    .await;

    delete_all_machines(machines).await;
    controller.stop().await;
}

/// A node template the API server refuses for the Node (an invalid taint effect)
/// never keeps the machine from Running; as in MCM it is a log line and a
/// Warning Event with the server's message naming the field, never a status:
/// the machine's lastOperation is never `Failed` (MCM would list it in
/// `failedMachines`).
#[tokio::test]
async fn a_refused_node_template_is_reported_and_the_machine_still_runs() {
    let ns = TestNamespace::in_both("bad-template").await;
    let control = support::control().await;
    let machines: Api<Machine> = ns.api(&control);
    let name = format!("tmpl-{}", &ns.name()[ns.name().len() - 6..]);
    ns.delete_on_drop::<Node>(Cluster::Target, None, &format!("machine-{name}"));
    for file in ["secret.yaml", "machine-class.yaml"] {
        kubectl_apply(Cluster::Control, &sample(file, ns.name(), &[])).await;
    }
    let machine = format!(
        r#"apiVersion: machine.sapcloud.io/v1alpha1
kind: Machine
metadata:
  name: {name}
  namespace: {ns}
spec:
  class:
    kind: MachineClass
    name: test-class
  nodeTemplate:
    metadata:
      labels:
        team: blue
    spec:
      taints:
      - key: dedicated
        value: blue
        effect: Sometimes
"#,
        ns = ns.name()
    );
    kubectl_apply(Cluster::Control, &machine).await;
    let failed = support::wait::never(
        &machines,
        Default::default(),
        "the machine with lastOperation.state Failed",
        |m: &Machine| m.status.last_operation.state == Some(OpState::Failed),
    )
    .await;
    let controller = start(settings(&ns)).await;

    // The Node's validation names the taint by its index among the Node's taints.
    let field = "].effect: Unsupported value: \"Sometimes\"";
    wait_for(&machines, &name, TIMEOUT, "the machine is Running", |m| {
        m.phase() == Some(&Phase::Running)
    })
    .await;
    let events: Api<Event> = ns.api(&control);
    wait_for_list(
        &events,
        Default::default(),
        TIMEOUT,
        "a Warning Event names the refused field, counted on each retry (every 5 s)",
        |l: &[Event]| {
            l.iter().any(|e| {
                e.type_.as_deref() == Some("Warning")
                    && e.count.unwrap_or(1) >= 3
                    && e.reason.as_deref() == Some("NodeTemplateRefused")
                    && e.message.as_deref().unwrap_or_default().contains(&format!(
                        "Node template could not be applied to node machine-{name}: "
                    ))
                    && e.message.as_deref().unwrap_or_default().contains(field)
            })
        },
    )
    .await;
    let running = machines.get(&name).await.unwrap();
    assert_eq!(running.phase(), Some(&Phase::Running));
    failed.check();

    delete_all_machines(&machines).await;
    controller.stop().await;
}

/// The class's `nodeTemplate.virtualCapacity` reaches the Node's capacity and
/// leaves it when the class drops it, as MCM's SyncVirtualCapacity does.
#[tokio::test]
async fn the_class_virtual_capacity_reaches_the_node_and_leaves_it() {
    let ns = TestNamespace::in_both("virtual-cap").await;
    let (control, target) = (support::control().await, support::target().await);
    let n = ns.name();
    kubectl_apply(Cluster::Control, &sample("secret.yaml", n, &[])).await;
    let class = |virtual_capacity: &str| {
        format!(
            r#"apiVersion: machine.sapcloud.io/v1alpha1
kind: MachineClass
metadata:
  name: test-class
  namespace: {n}
provider: local
providerSpec:
  image: localhost/machine-image:latest
secretRef:
  name: test-secret
  namespace: {n}
nodeTemplate:
  capacity: {{cpu: "2", memory: 4Gi}}
  instanceType: local
  region: local
  zone: local{virtual_capacity}
"#
        )
    };
    kubectl_apply(
        Cluster::Control,
        &class("\n  virtualCapacity: {example.com/virtual: \"3\"}"),
    )
    .await;
    let name = format!("cap-{}", &n[n.len() - 6..]);
    let node_name = format!("machine-{name}");
    ns.delete_on_drop::<Node>(Cluster::Target, None, &node_name);
    let machines: Api<Machine> = ns.api(&control);
    machines
        .create(&PostParams::default(), &machine(&name, "test-class"))
        .await
        .unwrap();
    let controller = start(settings(&ns)).await;

    let nodes: Api<Node> = Api::all(target);
    let has = |node: &Node| {
        node.status
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("example.com/virtual"))
            .map(|q| q.0.clone())
    };
    wait_for(
        &nodes,
        &node_name,
        TIMEOUT,
        "the Node has the virtual capacity",
        |node| has(node).as_deref() == Some("3"),
    )
    .await;
    kubectl_apply(Cluster::Control, &class("")).await;
    wait_for(
        &nodes,
        &node_name,
        TIMEOUT,
        "the Node lost the virtual capacity",
        |node| has(node).is_none(),
    )
    .await;

    delete_all_machines(&machines).await;
    controller.stop().await;
}
