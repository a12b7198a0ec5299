// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! End to end with the real MCM (v0.62.1, built by `make tools`): its
//! MachineDeployment and MachineSet controllers make the Machines, ours makes
//! their VMs, and a scale-down goes through our deletion flow. A pull error
//! that clears within the grace never shows in MCM's `failedMachines`.

use crate::support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use mcm_local::api::Machine;
use mcm_local::contract::Phase;
use mcm_local::embed::Settings;
use support::controller::settings;
use support::mcm::{
    MachineDeployment, all_available, all_running, apply_class, apply_deployment, mcm_and_us,
    tear_down,
};
use support::{Cluster, TIMEOUT, TestNamespace, wait_for, wait_for_deleted, wait_for_list};

#[tokio::test]
async fn mcm_machine_deployment_rolls_out_and_scales_down_through_us() {
    let ns = TestNamespace::in_both("mcm-e2e").await;
    let control = support::control().await;
    let target = support::target().await;
    let deployment = apply_deployment(&ns, &[]).await;
    let (_mcm, controller) = mcm_and_us(&ns, settings(&ns)).await;

    let machines: Api<Machine> = ns.api(&control);
    let running = all_running(&machines, 3).await;
    let nodes: Api<Node> = Api::all(target.clone());
    for m in &running {
        let node = m.node_name().expect("node label");
        ns.delete_on_drop::<Node>(Cluster::Target, None, node);
        // The deployment's nodeTemplate reaches the Node.
        wait_for(
            &nodes,
            node,
            TIMEOUT,
            "the Node carries the template's label",
            |n| {
                n.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("pool"))
                    .map(String::as_str)
                    == Some("local")
            },
        )
        .await;
    }
    let deployments: Api<MachineDeployment> = ns.api(&control);
    all_available(&deployments, &deployment, 3).await;

    // MCM picks the victims; our deletion flow drains and removes them.
    deployments
        .patch(
            &deployment,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    let left = all_running(&machines, 1).await;
    let kept = left[0].node_name().expect("node label").to_string();
    for m in running
        .iter()
        .filter(|m| m.node_name() != Some(kept.as_str()))
    {
        wait_for_deleted(
            &nodes,
            m.node_name().unwrap(),
            TIMEOUT,
            "the scaled-down machine's Node is deleted",
        )
        .await;
    }

    tear_down(&deployments, &deployment, &machines, controller).await;
}

/// The real MCM rolls an `InPlaceUpdate` MachineDeployment from one class to
/// another through us: the same machines, on the same Pods, move to the new
/// MachineSet and run again; their Nodes went through MCM's in-place steps
/// (the kubelet stand-in plays gardener-node-agent).
#[tokio::test]
async fn mcm_rolls_an_in_place_update_through_us() {
    use k8s_openapi::api::core::v1::Pod;
    use support::mcm::MachineSet;

    let ns = TestNamespace::in_both("mcm-inplace").await;
    let control = support::control().await;
    let target = support::target().await;
    apply_class(&ns, &[("name: test-class", "name: test-class-v2")]).await;
    let deployment = apply_deployment(
        &ns,
        &[
            ("replicas: 3", "replicas: 2"),
            (
                "    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 0",
                "    type: InPlaceUpdate\n    inPlaceUpdate:\n      orchestrationType: Auto\n      maxSurge: 0\n      maxUnavailable: 1",
            ),
        ],
    )
    .await;
    let (_mcm, controller) = mcm_and_us(&ns, settings(&ns)).await;

    let machines: Api<Machine> = ns.api(&control);
    let running = all_running(&machines, 2).await;
    let pods: Api<Pod> = ns.api(&target);
    let mut before = std::collections::BTreeMap::new();
    for m in &running {
        let node = m.node_name().expect("node label").to_string();
        ns.delete_on_drop::<Node>(Cluster::Target, None, &node);
        let uid = pods.get(&node).await.expect("machine Pod").metadata.uid;
        before.insert(m.name_any(), uid);
    }

    let deployments: Api<MachineDeployment> = ns.api(&control);
    deployments
        .patch(
            &deployment,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"template": {"spec": {
                "class": {"kind": "MachineClass", "name": "test-class-v2"}
            }}}})),
        )
        .await
        .unwrap();
    let sets: Api<MachineSet> = ns.api(&control);
    let new_set = wait_for_list(
        &sets,
        Default::default(),
        TIMEOUT,
        "a MachineSet of the new class",
        |l: &[MachineSet]| l.iter().any(|s| class_of(s) == "test-class-v2"),
    )
    .await
    .into_iter()
    .find(|s| class_of(s) == "test-class-v2")
    .map(|s| s.name_any())
    .unwrap();
    let after = wait_for_list(
        &machines,
        Default::default(),
        TIMEOUT * 4,
        "both machines in the new MachineSet, Running",
        |l: &[Machine]| {
            l.len() == 2
                && l.iter().all(|m| {
                    m.phase() == Some(&Phase::Running)
                        && m.owner_references().iter().any(|o| o.name == new_set)
                })
        },
    )
    .await;
    // MCM v0.62.1 moves a machine to the new MachineSet by its labels and owner
    // reference only (`transferMachinesFromOldToNewMachineSet`); its
    // `spec.class` keeps naming the old class, so that is not checked here.
    for m in &after {
        let node = m.node_name().expect("node label");
        assert_eq!(
            before.get(&m.name_any()),
            Some(&pods.get(node).await.expect("the same Pod").metadata.uid),
            "{} was updated in place, not replaced",
            m.name_any()
        );
        let condition = m
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == "InPlaceUpdate")
            .and_then(|c| c.reason.clone());
        assert_eq!(
            condition.as_deref(),
            Some("UpdateSuccessful"),
            "{}",
            m.name_any()
        );
    }

    tear_down(&deployments, &deployment, &machines, controller).await;
}

/// Issue #12: MCM v0.62.1's MachineSet keeps a Failed machine while it is
/// preserved (`shouldFailedMachineBeTerminated`, machineset.go:906-931: not
/// before its `preserveExpiryTime`, nor while its annotation says it is to be).
/// The machine, annotated `preserve=when-failed`, fails: its Node is drained and
/// cordoned and carries `Preserved`, MCM counts it as preserved. Its Node is
/// healthy again: it runs, released, and is not replaced. It fails again: it
/// stays, the only machine, until its preserve timeout has passed, and is then
/// replaced by a new machine.
#[tokio::test]
async fn mcm_replaces_a_preserved_failed_machine_only_after_its_preserve_timeout() {
    use k8s_openapi::api::core::v1::Pod;
    use support::mcm::MachineSet;
    use support::node::{fails_preserved, recovers};

    let ns = TestNamespace::in_both("mcm-preserve").await;
    let control = support::control().await;
    let target = support::target().await;
    let deployment = apply_deployment(&ns, &[("replicas: 3", "replicas: 1")]).await;
    let mut s = settings(&ns);
    s.health_timeout = Duration::from_secs(2);
    s.preserve_timeout = PRESERVE_TIMEOUT;
    let (_mcm, controller) = mcm_and_us(&ns, s).await;

    let machines: Api<Machine> = ns.api(&control);
    let first = all_running(&machines, 1).await.remove(0);
    let (name, uid) = (first.name_any(), first.uid().expect("uid"));
    let node_name = first.node_name().expect("node label").to_string();
    ns.delete_on_drop::<Node>(Cluster::Target, None, &node_name);
    // As a user would (`kubectl annotate`); and `force-drain`, since the Node
    // will not answer: its Pods are deleted at once.
    let keep = serde_json::json!({"metadata": {
        "annotations": {"node.machine.sapcloud.io/preserve": "when-failed"},
        "labels": {"force-drain": "True"},
    }});
    machines
        .patch(&name, &PatchParams::default(), &Patch::Merge(&keep))
        .await
        .unwrap();
    let pods: Api<Pod> = ns.api(&target);
    support::workload::workload_on(&pods, &node_name, "app", &[]).await;

    let nodes: Api<Node> = Api::all(target.clone());
    fails_preserved(&machines, &nodes, &name, &node_name).await;
    wait_for_deleted(&pods, "app", TIMEOUT, "the workload is drained").await;
    let sets: Api<MachineSet> = ns.api(&control);
    let set = first.owner_references()[0].name.clone();
    wait_for(
        &sets,
        &set,
        TIMEOUT,
        "MCM counts a preserved Failed machine",
        |s| {
            s.status
                .get("preservedFailedReplicas")
                .and_then(|v| v.as_i64())
                == Some(1)
        },
    )
    .await;

    // The Node is healthy again: the same machine runs, nothing replaced it.
    recovers(&machines, &nodes, &name, &node_name).await;
    let now = machines.list(&Default::default()).await.unwrap().items;
    assert!(only(&now, &uid), "the recovered machine is the only one");

    // It fails again and stays, alone, as long as it is preserved.
    let (failed, _) = fails_preserved(&machines, &nodes, &name, &node_name).await;
    let expiry = failed.status.current_status.preserve_expiry_time.unwrap().0;
    let left =
        Duration::try_from(expiry.duration_since(jiff::Timestamp::now())).unwrap_or_default();
    assert!(
        left > PRESERVE_TIMEOUT / 2,
        "preserved for its timeout, {left:?} left"
    );
    support::holds_until(
        &machines,
        Default::default(),
        left,
        "the preserved machine alone, Failed, before its expiry",
        |l: &[Machine]| {
            only(l, &uid)
                && l[0].phase() == Some(&Phase::Failed)
                && l[0].metadata.deletion_timestamp.is_none()
        },
    )
    .await;

    // Past its expiry MCM deletes it and makes a new one.
    wait_for_deleted(&machines, &name, TIMEOUT, "the expired machine is deleted").await;
    let new = wait_for_list(
        &machines,
        Default::default(),
        TIMEOUT * 2,
        "a new machine Running in its place",
        |l: &[Machine]| {
            l.len() == 1 && l[0].name_any() != name && l[0].phase() == Some(&Phase::Running)
        },
    )
    .await
    .remove(0);
    ns.delete_on_drop::<Node>(Cluster::Target, None, new.node_name().expect("node label"));
    let created = new.creation_timestamp().expect("created").0;
    assert!(
        created >= expiry,
        "replaced at {created}, before the expiry {expiry}"
    );
    wait_for_deleted(&nodes, &node_name, TIMEOUT, "the old Node is deleted").await;

    let deployments: Api<MachineDeployment> = ns.api(&control);
    tear_down(&deployments, &deployment, &machines, controller).await;
}

/// An image pull error that clears within `--machine-vm-trouble-grace` never
/// reaches Gardener: the machine is never CrashLoopBackOff nor `Failed`, and
/// the real MCM's MachineDeployment never lists it in `failedMachines` (both
/// watched the whole time); once the kubelet pulls the image, the machine runs.
#[tokio::test]
async fn an_image_pull_error_that_clears_within_the_grace_never_reaches_failed_machines() {
    use k8s_openapi::api::core::v1::{Event, Pod};
    use mcm_local::contract::OpState;

    let ns = TestNamespace::in_both("mcm-pull-clears").await;
    let control = support::control().await;
    let target = support::target().await;
    // hack/kwok/pod-image-pull-failure.yaml plays a kubelet that cannot pull it.
    let unpullable = [
        ("name: test-class", "name: pull-class"),
        (
            "localhost/machine-image:latest",
            "registry.invalid/unpullable:1",
        ),
    ];
    apply_class(&ns, &unpullable).await;
    let machines: Api<Machine> = ns.api(&control);
    let deployments: Api<MachineDeployment> = ns.api(&control);
    let machine_failed = support::wait::never(
        &machines,
        Default::default(),
        "a machine CrashLoopBackOff or with lastOperation.state Failed",
        |m: &Machine| {
            m.status.last_operation.state == Some(OpState::Failed)
                || m.phase() == Some(&Phase::CrashLoopBackOff)
        },
    )
    .await;
    let listed_failed = support::wait::never(
        &deployments,
        Default::default(),
        "a MachineDeployment listing failedMachines",
        |d: &MachineDeployment| {
            d.status
                .get("failedMachines")
                .and_then(|f| f.as_array())
                .is_some_and(|f| !f.is_empty())
        },
    )
    .await;
    let deployment = apply_deployment(
        &ns,
        &[
            ("replicas: 3", "replicas: 1"),
            ("name: test-class", "name: pull-class"),
        ],
    )
    .await;
    let grace = Duration::from_secs(300);
    let (_mcm, controller) = mcm_and_us(
        &ns,
        Settings {
            vm_trouble_grace: grace,
            ..settings(&ns)
        },
    )
    .await;

    // Our controller saw the pull error: a Warning Event, no status.
    let events: Api<Event> = ns.api(&control);
    let seen = wait_for_list(
        &events,
        Default::default(),
        TIMEOUT * 2,
        "a Warning Event of the pull error within the grace",
        |l: &[Event]| {
            l.iter().any(|e| {
                e.reason.as_deref() == Some("VMTrouble")
                    && e.type_.as_deref() == Some("Warning")
                    && e.message.as_deref().is_some_and(|m| {
                        m.contains("ImagePullBackOff") && m.contains("if it lasts 5m0s")
                    })
            })
        },
    )
    .await;
    let event = seen
        .iter()
        .find(|e| e.reason.as_deref() == Some("VMTrouble"))
        .expect("the Event");
    let name = event.involved_object.name.clone().expect("the machine");
    let pod = format!("machine-{name}");
    ns.delete_on_drop::<Node>(Cluster::Target, None, &pod);

    // The kubelet pulls the image at last: the machine joins and runs.
    support::machine::image_pulled_at_last(&ns.api::<Pod>(&target), &pod).await;
    let running = all_running(&machines, 1).await;
    assert_eq!(running[0].name_any(), name);
    all_available(&deployments, &deployment, 1).await;
    machine_failed.check();
    listed_failed.check();

    tear_down(&deployments, &deployment, &machines, controller).await;
}

/// Short, for the test to wait it out; long enough that the machine is seen
/// preserved well before it expires.
const PRESERVE_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether `machines` is the one machine `uid`.
fn only(machines: &[Machine], uid: &str) -> bool {
    machines.len() == 1 && machines[0].uid().as_deref() == Some(uid)
}

/// The class a MachineSet's template names.
fn class_of(set: &support::mcm::MachineSet) -> &str {
    set.spec
        .pointer("/template/spec/class/name")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
}
