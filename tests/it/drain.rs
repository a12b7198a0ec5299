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
use mcm_local::contract::{OpState, Phase};
use support::controller::{ControllerGuard, kubectl_apply, sample, settings, start_with};
use support::workload::{guarded_workload, workload_on};
use support::{Cluster, TIMEOUT, TestNamespace, wait_for, wait_for_deleted};

/// A Running machine of the sample class, in its own namespace, with its controller.
struct Running {
    ns: TestNamespace,
    machines: Api<Machine>,
    pods: Api<Pod>,
    name: String,
    node_name: String,
    controller: ControllerGuard,
}

async fn running_machine(prefix: &str) -> Running {
    running_machine_with(prefix, 50).await
}

/// [`running_machine`] under a controller with `concurrency` workers per queue.
async fn running_machine_with(prefix: &str, concurrency: u16) -> Running {
    running_machine_under(prefix, concurrency, |_| {}).await
}

/// [`running_machine`] under a controller with `concurrency` workers per queue
/// and the settings `adjust` makes.
async fn running_machine_under(
    prefix: &str,
    concurrency: u16,
    adjust: impl FnOnce(&mut mcm_local::embed::Settings),
) -> Running {
    let ns = TestNamespace::in_both(prefix).await;
    let (control, target) = (support::control().await, support::target().await);
    for file in ["secret.yaml", "machine-class.yaml"] {
        kubectl_apply(Cluster::Control, &sample(file, ns.name(), &[])).await;
    }
    let machines: Api<Machine> = ns.api(&control);
    let name = support::unique_name(prefix);
    let node_name = format!("machine-{name}");
    ns.delete_on_drop::<Node>(Cluster::Target, None, &node_name);
    let mut settings = settings(&ns);
    adjust(&mut settings);
    let controller = start_with(settings, concurrency).await;
    let mut m = Machine::named(&name);
    m.spec.class.kind = "MachineClass".into();
    m.spec.class.name = "test-class".into();
    machines.create(&PostParams::default(), &m).await.unwrap();
    wait_for(&machines, &name, TIMEOUT, "the machine is Running", |m| {
        m.phase() == Some(&Phase::Running)
    })
    .await;
    let pods = ns.api(&target);
    Running {
        ns,
        machines,
        pods,
        name,
        node_name,
        controller,
    }
}

#[tokio::test]
async fn deleting_a_machine_evicts_its_workload_before_the_vm_goes() {
    let Running {
        ns: _ns,
        machines,
        pods,
        name,
        node_name,
        controller,
    } = running_machine("drain").await;
    let target = support::target().await;
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
    } = running_machine("pdb").await;
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
    } = running_machine_with("held", 1).await;
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

/// MCM v0.62.1's in-place update, the machine controller's part: the labels
/// MCM's MachineSet puts on a Node (candidate, then selected) become the Node's
/// `InPlaceUpdate` condition; a selected Node is drained, the machine goes
/// `InPlaceUpdating` and the Node `ReadyForUpdate`; the result label
/// gardener-node-agent sets (played by the kubelet stand-in) makes the machine
/// `InPlaceUpdateSuccessful`, then Running again, on the same Pod. MCM's labels
/// are set by the test here; `mcm_e2e.rs` has MCM set them.
#[tokio::test]
async fn an_in_place_update_goes_through_mcm_steps_on_the_same_vm() {
    use kube::api::{Patch, PatchParams};

    let Running {
        ns: _ns,
        machines,
        pods,
        name,
        node_name,
        controller,
    } = running_machine("inplace").await;
    let target = support::target().await;
    let nodes: Api<Node> = Api::all(target.clone());
    let vm_uid = pods.get(&node_name).await.expect("the machine Pod").uid();
    // Every phase and description the machine shows, in order.
    let phases = Arc::new(Mutex::new(Vec::<(Option<Phase>, String)>::new()));
    {
        let (phases, machines) = (phases.clone(), machines.clone());
        let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
        tokio::spawn(async move {
            let mut events = watcher(machines, cfg).applied_objects().boxed();
            while let Some(Ok(m)) = events.next().await {
                phases.lock().unwrap().push((
                    m.phase().cloned(),
                    m.status.last_operation.description.clone(),
                ));
            }
        });
    }
    support::wait::until(TIMEOUT, "the phase recorder runs", || {
        !phases.lock().unwrap().is_empty()
    })
    .await;
    workload_on(&pods, &node_name, "workload", &[]).await;
    let reason = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "InPlaceUpdate"))
            .and_then(|c| c.reason.clone())
            .unwrap_or_default()
    };
    // Labels the Node as MCM (or the agent) does, then waits for the reason.
    let step = async |key: &str, value: &str, reason_now: &str| {
        let patch = serde_json::json!({"metadata": {"labels": {key: value}}});
        nodes
            .patch(&node_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        wait_for(&nodes, &node_name, TIMEOUT, reason_now, |n| {
            reason(n) == reason_now
        })
        .await
    };

    step(
        "node.machine.sapcloud.io/candidate-for-update",
        "true",
        "CandidateForUpdate",
    )
    .await;
    let ready = step(
        "node.machine.sapcloud.io/selected-for-update",
        "true",
        "ReadyForUpdate",
    )
    .await;
    assert_eq!(
        ready.spec.as_ref().and_then(|s| s.unschedulable),
        Some(true)
    );
    wait_for_deleted(&pods, "workload", TIMEOUT, "the workload is drained").await;

    // gardener-node-agent's part, played by the kubelet stand-in: it updates
    // and labels the result.
    wait_for(&nodes, &node_name, TIMEOUT, "the agent's result", |n| {
        reason(n) == "UpdateSuccessful"
    })
    .await;
    wait_for(&machines, &name, TIMEOUT, "Running again", |m| {
        m.phase() == Some(&Phase::Running)
    })
    .await;
    let seen = phases.lock().unwrap().clone();
    let updating = format!("Machine {name} is undergoing an in-place update");
    let at = |p: Phase, d: &str| {
        seen.iter()
            .position(|s| s.0.as_ref() == Some(&p) && (d.is_empty() || s.1 == d))
    };
    assert!(
        matches!(
            (
                at(Phase::InPlaceUpdating, &updating),
                at(Phase::InPlaceUpdateSuccessful, &format!("Machine {name} successfully updated dependencies")),
            ),
            (Some(a), Some(b)) if a < b
        ),
        "the machine went through MCM's phases: {seen:#?}"
    );
    assert_eq!(
        pods.get(&node_name).await.expect("the same Pod").uid(),
        vm_uid,
        "updated in place, not replaced"
    );
    controller.stop().await;
}

/// An in-place update the agent reports failed leaves the machine
/// `InPlaceUpdateFailed` with the agent's reason, in MCM's words.
#[tokio::test]
async fn a_failed_in_place_update_is_reported_on_the_machine() {
    use kube::api::{Patch, PatchParams};

    let Running {
        ns: _ns,
        machines,
        name,
        node_name,
        controller,
        ..
    } = running_machine("inplace-fail").await;
    let nodes: Api<Node> = Api::all(support::target().await);
    let labels = serde_json::json!({"metadata": {"labels": {
        "kubelet-standin.local/in-place-update": "fail",
        "node.machine.sapcloud.io/candidate-for-update": "true",
    }}});
    nodes
        .patch(&node_name, &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .unwrap();
    let selected = serde_json::json!({"metadata": {"labels": {
        "node.machine.sapcloud.io/selected-for-update": "true",
    }}});
    nodes
        .patch(
            &node_name,
            &PatchParams::default(),
            &Patch::Merge(&selected),
        )
        .await
        .unwrap();
    let failed = wait_for(&machines, &name, TIMEOUT, "InPlaceUpdateFailed", |m| {
        m.phase() == Some(&Phase::InPlaceUpdateFailed)
    })
    .await;
    assert_eq!(
        failed.status.last_operation.description,
        format!(
            "Machine {name} failed to update dependencies: the stand-in was told to fail the update"
        )
    );
    assert_eq!(failed.status.last_operation.state, Some(OpState::Failed));
    controller.stop().await;
}

/// The drain timeout of the in-place tests below: short, so that a machine is
/// Running for longer than it before its Node is selected.
const SHORT_DRAIN: std::time::Duration = std::time::Duration::from_secs(15);

/// A machine Running for longer than [`SHORT_DRAIN`], with a Pod on its Node
/// that a budget allowing no disruption guards; then MCM's MachineSet selects
/// the Node for an in-place update. Returns once the machine reports the
/// blocked drain in MCM's words (a misconfigured budget, as MCM's
/// `isMisconfiguredPdb` calls one that never allows an eviction) and has
/// checked that the same Pod is still there then; returns the budget and the
/// time of the selection.
async fn selected_with_a_guarded_pod(
    prefix: &str,
) -> (Running, Api<PodDisruptionBudget>, jiff::Timestamp) {
    use kube::api::{Patch, PatchParams};

    let running = running_machine_under(prefix, 50, |s| s.drain_timeout = SHORT_DRAIN).await;
    let Running {
        ns,
        machines,
        pods,
        name,
        node_name,
        ..
    } = &running;
    let pdbs = guarded_workload(ns, pods, node_name).await;
    let guarded_uid = pods.get("guarded").await.unwrap().uid().unwrap();
    // Running for longer than the drain timeout: the old clock (the last
    // phase change) would force the drain at once.
    let since = machines
        .get(name)
        .await
        .unwrap()
        .status
        .current_status
        .last_update_time;
    let since = since.expect("a Running machine has a lastUpdateTime").0;
    support::wait::until(
        SHORT_DRAIN * 2,
        "the machine has been Running longer than the drain timeout",
        || jiff::Timestamp::now().duration_since(since) > SHORT_DRAIN.try_into().unwrap(),
    )
    .await;
    let nodes: Api<Node> = Api::all(support::target().await);
    for label in [
        "node.machine.sapcloud.io/candidate-for-update",
        "node.machine.sapcloud.io/selected-for-update",
    ] {
        let patch = serde_json::json!({"metadata": {"labels": {label: "true"}}});
        nodes
            .patch(node_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    let misconfigured = format!(
        "Drain failed due to - error while evicting pod \"guarded\": pod disruption budget {}/guard is misconfigured and requires zero voluntary evictions. Will retry in next sync. Initiate node drain",
        ns.name()
    );
    let held = wait_for(
        machines,
        name,
        TIMEOUT,
        "the machine reports the blocked drain",
        |m| m.status.last_operation.description == misconfigured,
    )
    .await;
    assert_eq!(held.phase(), Some(&Phase::Running), "MCM keeps the phase");
    assert_eq!(held.status.last_operation.state, Some(OpState::Processing));
    let pod = pods
        .get("guarded")
        .await
        .expect("the guarded Pod is not deleted");
    assert_eq!(pod.uid().as_deref(), Some(guarded_uid.as_str()));
    assert_eq!(pod.metadata.deletion_timestamp, None, "nor evicted");
    let node = nodes.get(node_name).await.unwrap();
    let selected = node
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "InPlaceUpdate" && c.reason.as_deref() == Some("SelectedForUpdate"))
        .and_then(|c| c.last_transition_time)
        .expect("the Node is SelectedForUpdate while its drain is held")
        .0;
    (running, pdbs, selected)
}

/// MCM measures an in-place drain's timeout from the Node's selection: a Node
/// Running for longer than the drain timeout is drained politely, and a Pod
/// whose budget allows no disruption stays until the budget allows it.
#[tokio::test]
async fn an_in_place_drain_of_a_long_running_node_honours_the_budget() {
    use kube::api::{Patch, PatchParams};

    let (running, pdbs, _) = selected_with_a_guarded_pod("inplace-pdb").await;
    let Running {
        machines,
        pods,
        name,
        controller,
        ..
    } = running;
    let allow = serde_json::json!({"spec": {"minAvailable": 0}});
    pdbs.patch("guard", &PatchParams::default(), &Patch::Merge(&allow))
        .await
        .unwrap();
    wait_for_deleted(
        &pods,
        "guarded",
        TIMEOUT,
        "the Pod is evicted once the budget allows",
    )
    .await;
    updated_and_running(&machines, &name).await;
    controller.stop().await;
}

/// ... and once the Node has been selected for longer than the drain timeout,
/// the drain goes on by force, as MCM's does.
#[tokio::test]
async fn an_in_place_drain_is_forced_only_after_the_timeout_since_the_selection() {
    let (running, _pdbs, selected) = selected_with_a_guarded_pod("inplace-force").await;
    let Running {
        machines,
        pods,
        name,
        controller,
        ..
    } = running;
    wait_for_deleted(&pods, "guarded", TIMEOUT, "the Pod is deleted by force").await;
    // Seen by a watch, so at most a moment after it went: never before the
    // drain timeout had passed since the selection.
    let gone_at = jiff::Timestamp::now();
    assert!(
        gone_at.duration_since(selected) > SHORT_DRAIN.try_into().unwrap(),
        "forced at {gone_at}, less than {SHORT_DRAIN:?} after the selection at {selected}"
    );
    updated_and_running(&machines, &name).await;
    controller.stop().await;
}

/// Waits until the machine, drained for its update, has been updated by the
/// agent (played by the kubelet stand-in) and runs again.
async fn updated_and_running(machines: &Api<Machine>, name: &str) {
    let again = format!("Machine {name} successfully re-joined the cluster");
    wait_for(machines, name, TIMEOUT, "updated and Running again", |m| {
        m.phase() == Some(&Phase::Running) && m.status.last_operation.description == again
    })
    .await;
}
