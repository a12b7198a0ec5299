// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! "Nothing is lost": a controller that dies mid-creation, started again, makes
//! no second VM and still brings the machine to Running.

use crate::support;

use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use mcm_local::api::Machine;
use mcm_local::api::provider_spec::LocalProviderSpec;
use mcm_local::contract::Phase;
use mcm_local::contract::local::{USER_DATA_SECRET_KEY, user_data_secret_name};
use mcm_local::embed::Settings;
use mcm_local::payload::build;
use std::time::Duration;
use support::controller::{
    delete_all_machines, kubectl_apply, sample, settings, spawn_binary, start,
};
use support::{Cluster, TIMEOUT, TestNamespace, wait_for, wait_for_list};

fn new_machine(name: &str) -> Machine {
    let mut m = Machine::named(name);
    m.spec.class.kind = "MachineClass".into();
    m.spec.class.name = "test-class".into();
    m
}

async fn setup(prefix: &str) -> (TestNamespace, Api<Machine>, Api<Pod>, String) {
    let ns = TestNamespace::in_both(prefix).await;
    for file in ["secret.yaml", "machine-class.yaml"] {
        kubectl_apply(Cluster::Control, &sample(file, ns.name(), &[])).await;
    }
    let machines: Api<Machine> = ns.api(&support::control().await);
    let pods: Api<Pod> = ns.api(&support::target().await);
    let name = format!("crash-{}", &ns.name()[ns.name().len() - 6..]);
    ns.delete_on_drop::<Node>(Cluster::Target, None, &format!("machine-{name}"));
    (ns, machines, pods, name)
}

/// The exact state a crash right after CreateMachine leaves: the Pod exists, the
/// Machine has neither providerID nor status.
#[tokio::test]
async fn a_pod_created_before_a_crash_is_adopted_not_doubled() {
    let (ns, machines, pods, name) = setup("crash-adopt").await;
    let mut machine = machines
        .create(&PostParams::default(), &new_machine(&name))
        .await
        .unwrap();
    // The finalizer was added before the crash, as the controller does first.
    machine.metadata.finalizers = Some(vec![
        "machine.sapcloud.io/machine-controller-manager".into(),
    ]);
    machines
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"metadata": {"finalizers": machine.metadata.finalizers}}),
            ),
        )
        .await
        .unwrap();
    let spec = LocalProviderSpec {
        image: "localhost/machine-image:latest".into(),
        ..Default::default()
    };
    let before = pods
        .create(
            &PostParams::default(),
            &build::pod(&name, ns.name(), ns.name(), &spec),
        )
        .await
        .unwrap();

    let controller = start(settings(&ns)).await;
    let running = wait_for(&machines, &name, TIMEOUT, "the machine is Running", |m| {
        m.phase() == Some(&Phase::Running)
    })
    .await;
    assert_eq!(running.spec.provider_id, format!("machine-{name}"));
    let all = pods.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(
        all.len(),
        1,
        "exactly one Pod: {:?}",
        all.iter().map(|p| p.name_any()).collect::<Vec<_>>()
    );
    assert_eq!(
        all[0].uid(),
        before.uid(),
        "the Pod from before the crash was kept"
    );

    delete_all_machines(&machines).await;
    controller.stop().await;
}

/// The real binary killed with SIGKILL as soon as it has created the Pod.
#[tokio::test]
async fn a_killed_controller_started_again_finishes_with_one_pod() {
    let (ns, machines, pods, name) = setup("crash-kill").await;
    let mut first = spawn_binary(ns.name(), &format!("{}-first.log", ns.name()));
    machines
        .create(&PostParams::default(), &new_machine(&name))
        .await
        .unwrap();
    let pod = wait_for(
        &pods,
        &format!("machine-{name}"),
        TIMEOUT,
        "the first controller created the Pod",
        |_| true,
    )
    .await;
    first.start_kill().expect("kill the controller");
    let _ = first.wait().await;

    let mut second = spawn_binary(ns.name(), &format!("{}-second.log", ns.name()));
    wait_for(
        &machines,
        &name,
        TIMEOUT,
        "the machine is Running after the restart",
        |m| m.phase() == Some(&Phase::Running),
    )
    .await;
    let all = wait_for_list(
        &pods,
        Default::default(),
        TIMEOUT,
        "one Pod",
        |l: &[Pod]| l.len() == 1,
    )
    .await;
    assert_eq!(all[0].uid(), pod.uid(), "the Pod was not recreated");

    delete_all_machines(&machines).await;
    second.start_kill().ok();
    let _ = second.wait().await;
}

/// A user-data Secret already there when the machine is created (left by a
/// crash, or by the Go controller with a token of its own) is written over and
/// owned by the new Pod. With the stale token the kubelet stand-in would be
/// refused and the machine would never join.
#[tokio::test]
async fn a_user_data_secret_left_from_before_is_written_over() {
    let (ns, machines, pods, name) = setup("crash-secret").await;
    let secrets: Api<Secret> = ns.api(&support::target().await);
    let stale = b"#!/bin/bash\n# joins with abcdef.0123456789abcdef\n";
    let left = secrets
        .create(
            &PostParams::default(),
            &build::user_data_secret(&name, ns.name(), stale),
        )
        .await
        .unwrap();
    machines
        .create(&PostParams::default(), &new_machine(&name))
        .await
        .unwrap();

    let controller = start(settings(&ns)).await;
    wait_for(&machines, &name, TIMEOUT, "the machine is Running", |m| {
        m.phase() == Some(&Phase::Running)
    })
    .await;
    let secret = secrets.get(&user_data_secret_name(&name)).await.unwrap();
    assert_eq!(
        secret.uid(),
        left.uid(),
        "the Secret was written over, not replaced"
    );
    let data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(USER_DATA_SECRET_KEY))
        .map(|b| b.0.clone())
        .unwrap_or_default();
    assert_ne!(data, stale.to_vec(), "the stale user data is gone");
    let pod_uid = pods.get(&format!("machine-{name}")).await.unwrap().uid();
    assert!(
        secret
            .owner_references()
            .iter()
            .any(|o| Some(&o.uid) == pod_uid.as_ref()),
        "the Secret is owned by the machine's Pod: {:?}",
        secret.owner_references()
    );

    delete_all_machines(&machines).await;
    controller.stop().await;
}

/// A VM whose Machine vanished (its finalizer removed by hand) is collected.
#[tokio::test]
async fn an_orphan_vm_is_deleted() {
    let (ns, machines, pods, name) = setup("orphan").await;
    let spec = LocalProviderSpec {
        image: "localhost/machine-image:latest".into(),
        ..Default::default()
    };
    pods.create(
        &PostParams::default(),
        &build::pod(&name, ns.name(), ns.name(), &spec),
    )
    .await
    .unwrap();
    let kept = format!("kept-{}", &ns.name()[ns.name().len() - 6..]);
    ns.delete_on_drop::<Node>(Cluster::Target, None, &format!("machine-{kept}"));
    machines
        .create(&PostParams::default(), &new_machine(&kept))
        .await
        .unwrap();

    // Collection looks every 2 s and spares VMs younger than 5 s: the orphan
    // goes at a later pass, the machine that exists never does.
    let controller = start(Settings {
        orphan_vms_period: Duration::from_secs(2),
        orphan_vms_min_age: Duration::from_secs(5),
        ..settings(&ns)
    })
    .await;
    support::wait_for_deleted(
        &pods,
        &format!("machine-{name}"),
        TIMEOUT,
        "the orphan VM is deleted",
    )
    .await;
    wait_for(
        &machines,
        &kept,
        TIMEOUT,
        "the machine that exists keeps its VM and runs",
        |m| m.phase() == Some(&Phase::Running),
    )
    .await;
    delete_all_machines(&machines).await;
    controller.stop().await;
}
