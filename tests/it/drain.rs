// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Deleting a machine drains its node first: cordon, evict the workload through
//! the eviction API, wait for it to go, and only then delete the VM.

use crate::support;

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use mcm_local::api::Machine;
use mcm_local::contract::Phase;
use support::running::Running;
use support::workload::{guarded_workload, workload_on};
use support::{TIMEOUT, TestNamespace, wait_for_deleted};

#[tokio::test]
async fn deleting_a_machine_evicts_its_workload_before_the_vm_goes() {
    let Running {
        ns: _ns,
        machines,
        pods,
        name,
        node_name,
        controller,
        target,
        ..
    } = Running::start("drain").await;
    workload_on(&pods, &node_name, "workload", &[]).await;

    // Record the node's cordon (the taint keys before it, and in the very
    // write that cordons: a patch must not replace the list) and the
    // machine's deletion steps as they happen.
    type Taints = Vec<String>;
    let cordoned = Arc::new(Mutex::new(None::<(Taints, Taints)>));
    {
        let cordoned = cordoned.clone();
        let nodes: Api<Node> = Api::all(target.clone());
        let cfg = watcher::Config::default().fields(&format!("metadata.name={node_name}"));
        tokio::spawn(async move {
            let mut events = watcher(nodes, cfg).applied_objects().boxed();
            let mut before = Taints::new();
            while let Some(Ok(n)) = events.next().await {
                let spec = n.spec.clone().unwrap_or_default();
                let keys: Taints = spec
                    .taints
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| t.key)
                    .collect();
                let mut cordoned = cordoned.lock().unwrap();
                if cordoned.is_some() {
                    continue;
                }
                if spec.unschedulable == Some(true) {
                    *cordoned = Some((std::mem::take(&mut before), keys));
                } else {
                    before = keys;
                }
            }
        });
    }
    let steps = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let steps = steps.clone();
        let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let machines = machines.clone();
        tokio::spawn(async move {
            let mut events = watcher(machines, cfg).applied_objects().boxed();
            while let Some(Ok(m)) = events.next().await {
                steps
                    .lock()
                    .unwrap()
                    .push(m.status.last_operation.description.clone());
            }
        });
    }

    machines
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    wait_for_deleted(&pods, "workload", TIMEOUT, "the workload is evicted").await;
    wait_for_deleted(&machines, &name, TIMEOUT, "the machine is deleted").await;
    let (before, at_cordon) = cordoned
        .lock()
        .unwrap()
        .clone()
        .expect("the node was never cordoned");
    // The cordon keeps the taints the Node had.
    assert!(
        before.iter().all(|k| at_cordon.contains(k)),
        "the cordon kept the node's taints: {before:?} -> {at_cordon:?}"
    );
    let steps = steps.lock().unwrap().clone();
    // Written where the pass waits for the VM to go, which it reaches only
    // once the drain found no Pod left on the node.
    assert!(
        steps
            .iter()
            .any(|d| d == "Drain successful. Initiate VM deletion"),
        "the drain finished before the VM went: {steps:#?}"
    );
    assert!(
        pods.list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .all(|p| p.name_any() != "workload")
    );
    controller.stop().await;
}

/// A PodDisruptionBudget holds the drain back (and says so in an Event) until
/// it allows the eviction; then the deletion completes.
#[tokio::test]
async fn a_pod_disruption_budget_holds_the_drain_until_it_allows() {
    let Running {
        ns,
        machines,
        pods,
        name,
        node_name,
        controller,
        ..
    } = Running::start("pdb").await;
    let pdbs = delete_with_a_held_drain(&ns, &machines, &pods, &name, &node_name).await;
    // Held back: the Pod is still there, and the machine is still draining.
    pods.get("guarded")
        .await
        .expect("the guarded Pod is not evicted against its budget");
    let held = machines.get(&name).await.unwrap();
    assert!(
        held.status
            .last_operation
            .description
            .contains("Initiate node drain"),
        "{:?}",
        held.status.last_operation
    );

    pdbs.delete("guard", &DeleteParams::default())
        .await
        .unwrap();
    wait_for_deleted(
        &pods,
        "guarded",
        TIMEOUT,
        "the Pod is evicted once the budget is gone",
    )
    .await;
    wait_for_deleted(&machines, &name, TIMEOUT, "the machine is deleted").await;
    controller.stop().await;
}

/// Deletes machine `name` once a budget guards a Pod on its node, and waits
/// until its drain says it is held (an Event); the budget is returned.
async fn delete_with_a_held_drain(
    ns: &TestNamespace,
    machines: &Api<Machine>,
    pods: &Api<Pod>,
    name: &str,
    node_name: &str,
) -> Api<PodDisruptionBudget> {
    let pdbs = guarded_workload(ns, pods, node_name).await;
    machines
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
    let events: Api<Event> = ns.api(&support::control().await);
    support::wait_for_list(
        &events,
        watcher::Config::default().fields(&format!("involvedObject.name={name}")),
        TIMEOUT,
        "an Event on the machine says the budget holds the drain",
        |l: &[Event]| {
            // A budget that may allow it later (DrainBlocked), or one that
            // never will: MCM's misconfigured-budget drain error.
            l.iter().any(|e| {
                e.reason.as_deref() == Some("DrainBlocked")
                    || (e.reason.as_deref() == Some("DeleteFailed")
                        && e.message
                            .as_deref()
                            .unwrap_or_default()
                            .contains("pod disruption budget"))
            })
        },
    )
    .await;
    pdbs
}

/// MCM's termination queue: with one worker per queue (`--concurrent-syncs=1`),
/// a drain held by a PodDisruptionBudget never holds back new machines.
#[tokio::test]
async fn a_held_drain_never_holds_back_new_machines() {
    let Running {
        ns,
        machines,
        pods,
        name,
        node_name,
        controller,
        ..
    } = Running::with("held", 1, |_| {}).await;
    let pdbs = delete_with_a_held_drain(&ns, &machines, &pods, &name, &node_name).await;

    let new: Vec<String> = (0..10).map(|i| format!("{name}-new{i}")).collect();
    for n in &new {
        let mut m = Machine::named(n);
        m.spec.class.kind = "MachineClass".into();
        m.spec.class.name = "test-class".into();
        machines.create(&PostParams::default(), &m).await.unwrap();
    }
    support::wait_for_list(
        &machines,
        Default::default(),
        TIMEOUT,
        "the ten new machines run",
        |l: &[Machine]| {
            l.iter()
                .filter(|m| new.contains(&m.name_any()))
                .filter(|m| m.phase() == Some(&Phase::Running))
                .count()
                == new.len()
        },
    )
    .await;
    // All the while the drain was held.
    pods.get("guarded")
        .await
        .expect("the guarded Pod is still there");
    assert!(machines.get(&name).await.unwrap().is_deleting());

    pdbs.delete("guard", &DeleteParams::default())
        .await
        .unwrap();
    for n in new.iter().chain([&name]) {
        let _ = machines.delete(n, &DeleteParams::default()).await;
    }
    for n in new.iter().chain([&name]) {
        wait_for_deleted(&machines, n, TIMEOUT, "every machine is deleted").await;
    }
    controller.stop().await;
}
