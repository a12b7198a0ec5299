// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! MCM v0.62.1's in-place update, the machine controller's part: MCM's Node
//! labels become the Node's conditions, the Node is drained (politely, then by
//! force once selected longer than the drain timeout), the agent's result is
//! reported on the machine, which runs again on the same Pod.

use crate::support;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use mcm_local::api::Machine;
use mcm_local::contract::{OpState, Phase};
use std::sync::{Arc, Mutex};
use support::controller::WORKERS;
use support::running::Running;
use support::workload::{guarded_workload, workload_on};
use support::{TIMEOUT, wait_for, wait_for_deleted};

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
        nodes,
        ..
    } = Running::start("inplace").await;
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
        nodes,
        ..
    } = Running::start("inplace-fail").await;
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

    let running = Running::with(prefix, WORKERS, |s| s.drain_timeout = SHORT_DRAIN).await;
    let Running {
        ns,
        machines,
        pods,
        name,
        node_name,
        nodes,
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
