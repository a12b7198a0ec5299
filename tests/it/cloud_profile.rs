// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The local cloud fails like a cloud (issue #23): a class's
//! `providerSpec.cloudProfile` sets an instance quota and injects errors, and
//! the real MCM (v0.62.1) drives MachineDeployments through them as through a
//! real provider's.

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, Pod, Secret, Service};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use mcm_local::api::provider_spec::LocalProviderSpec;
use mcm_local::api::{Machine, MachineClass};
use mcm_local::contract::Phase;
use mcm_local::embed::CloudProfile;
use mcm_local::embed::Settings;
use mcm_local::payload::bootstrap;
use mcm_local::payload::build;
use support::admin::{Binary, sample_value, wait_for_http};
use support::controller::{kubectl_apply, sample, settings};
use support::mcm::{
    MachineDeployment, all_running, apply_class, apply_deployment, mcm_and_us, spawn_mcm, tear_down,
};
use support::{Cluster, TIMEOUT, TestNamespace, wait_for, wait_for_list};

/// The sample class's image line, after which a test writes its profile.
const IMAGE: &str = "  image: localhost/machine-image:latest";

/// The sample class with `profile` (YAML under `cloudProfile:`, indented by 4).
fn with_profile(profile: &str) -> String {
    format!("{IMAGE}\n  cloudProfile:\n{profile}")
}

/// A namespace in both clusters with the sample Secret, the sample class
/// with `profile` and the sample MachineDeployment of `replicas`; its name.
async fn setup(prefix: &str, replicas: usize, profile: &str) -> (TestNamespace, String) {
    let ns = TestNamespace::in_both(prefix).await;
    let replicas = format!("replicas: {replicas}");
    let deployment = apply_deployment(&ns, &[("replicas: 3", &replicas)]).await;
    apply_class(&ns, &[(IMAGE, &with_profile(profile))]).await;
    (ns, deployment)
}

/// Creation retried soon after `ResourceExhausted`, so that a raised quota is
/// seen within the test.
fn quick_retry(ns: &TestNamespace) -> Settings {
    Settings {
        resource_exhausted_retry: Duration::from_secs(3),
        ..settings(ns)
    }
}

fn scale(replicas: usize) -> Patch<serde_json::Value> {
    Patch::Merge(serde_json::json!({"spec": {"replicas": replicas}}))
}

fn in_phase(machines: &[Machine], phase: Phase) -> Vec<&Machine> {
    machines
        .iter()
        .filter(|m| m.phase() == Some(&phase))
        .collect()
}

fn names(machines: &[&Machine]) -> BTreeSet<String> {
    machines.iter().map(|m| m.name_any()).collect()
}

/// Quota 20, a MachineDeployment of 30: 20 run and 10 wait in
/// CrashLoopBackOff on `ResourceExhausted`; scaled to 20 the waiting ones go
/// and the running ones stay; at 30 again, a raised quota brings all up.
#[tokio::test]
async fn a_quota_holds_a_deployment_until_it_is_raised() {
    const QUOTA: usize = 20;
    const WANTED: usize = 30;
    let quota = format!("    instanceQuota: {QUOTA}");
    let (ns, deployment) = setup("cloud-quota", WANTED, &quota).await;
    let (control, target) = (support::control().await, support::target().await);
    let (_mcm, controller) = mcm_and_us(&ns, quick_retry(&ns)).await;

    let machines: Api<Machine> = ns.api(&control);
    let held = wait_for_list(
        &machines,
        Default::default(),
        TIMEOUT * 3,
        "20 machines Running and 10 in CrashLoopBackOff on ResourceExhausted",
        |l| {
            let waiting = in_phase(l, Phase::CrashLoopBackOff);
            l.len() == WANTED
                && in_phase(l, Phase::Running).len() == QUOTA
                && waiting.len() == WANTED - QUOTA
                && waiting.iter().all(|m| {
                    let op = &m.status.last_operation;
                    op.error_code == "ResourceExhausted"
                        && op.description.contains("quota exceeded")
                })
        },
    )
    .await;
    for m in &held {
        if let Some(node) = m.node_name() {
            ns.delete_on_drop::<Node>(Cluster::Target, None, node);
        }
    }
    let pods: Api<Pod> = ns.api(&target);
    let vms = pods.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(vms.len(), QUOTA, "the cloud holds as many VMs as its quota");
    let running = names(&in_phase(&held, Phase::Running));

    let deployments: Api<MachineDeployment> = ns.api(&control);
    deployments
        .patch(&deployment, &PatchParams::default(), &scale(QUOTA))
        .await
        .unwrap();
    wait_for_list(
        &machines,
        Default::default(),
        TIMEOUT * 2,
        "the same 20 machines Running and nothing else",
        |l| {
            names(&l.iter().collect::<Vec<_>>()) == running
                && in_phase(l, Phase::Running).len() == QUOTA
        },
    )
    .await;

    deployments
        .patch(&deployment, &PatchParams::default(), &scale(WANTED))
        .await
        .unwrap();
    wait_for_list(
        &machines,
        Default::default(),
        TIMEOUT * 2,
        "10 new machines waiting on the quota again",
        |l| l.len() == WANTED && in_phase(l, Phase::CrashLoopBackOff).len() == WANTED - QUOTA,
    )
    .await;
    let raised = with_profile(&format!("    instanceQuota: {WANTED}"));
    apply_class(&ns, &[(IMAGE, &raised)]).await;
    for m in all_running(&machines, WANTED).await {
        if let Some(node) = m.node_name() {
            ns.delete_on_drop::<Node>(Cluster::Target, None, node);
        }
    }

    tear_down(&deployments, &deployment, &machines, controller).await;
}

/// Every Delete is throttled for 30 s after the machine's deletion; MCM's
/// scale-down still ends with nothing of the machines left: no Pod, Secret,
/// Service, Node or bootstrap token. The cloud answers `Unavailable`, which
/// MCM retries in 5 s; with the default `ResourceExhausted` it waits its long
/// retry (10 min) after each refusal, as the Go controller does, too long for
/// `make test` (the unit tests of `deletion` show that retry).
#[tokio::test]
async fn a_deletion_through_a_rate_limit_leaves_nothing_behind() {
    let limit =
        "    delete:\n      rateLimitError:\n        errorDuration: 30s\n        code: Unavailable";
    let (ns, deployment) = setup("cloud-ratelimit", 2, limit).await;
    let (control, target) = (support::control().await, support::target().await);
    let (_mcm, controller) = mcm_and_us(&ns, settings(&ns)).await;

    let machines: Api<Machine> = ns.api(&control);
    let running = all_running(&machines, 2).await;
    let nodes: Api<Node> = Api::all(target.clone());
    let secrets: Api<Secret> = Api::namespaced(target.clone(), "kube-system");
    for m in &running {
        let node = m.node_name().expect("node label");
        ns.delete_on_drop::<Node>(Cluster::Target, None, node);
    }

    let deployments: Api<MachineDeployment> = ns.api(&control);
    deployments
        .patch(&deployment, &PatchParams::default(), &scale(0))
        .await
        .unwrap();
    wait_for_list(
        &machines,
        Default::default(),
        TIMEOUT,
        "a machine being deleted shows the rate limit",
        |l| {
            l.iter().any(|m| {
                m.metadata.deletion_timestamp.is_some()
                    && m.status.last_operation.description.contains(
                        "request limit exceeded (injected by the local cloud profile: delete.rateLimitError Unavailable for 30s)",
                    )
            })
        },
    )
    .await;
    wait_for_list(
        &machines,
        Default::default(),
        TIMEOUT * 2,
        "every machine is gone",
        |l| l.is_empty(),
    )
    .await;

    let in_ns = ListParams::default();
    assert_eq!(
        ns.api::<Pod>(&target)
            .list(&in_ns)
            .await
            .unwrap()
            .items
            .len(),
        0
    );
    let left: Vec<String> = ns
        .api::<Secret>(&target)
        .list(&in_ns)
        .await
        .unwrap()
        .items
        .iter()
        .map(|s| s.name_any())
        .filter(|n| n.starts_with("machine-"))
        .collect();
    assert!(left.is_empty(), "user-data Secrets left: {left:?}");
    assert_eq!(
        ns.api::<Service>(&target)
            .list(&in_ns)
            .await
            .unwrap()
            .items
            .len(),
        0
    );
    for m in &running {
        let node = m.node_name().unwrap();
        assert!(
            nodes.get_opt(node).await.unwrap().is_none(),
            "Node {node} left"
        );
        let token = bootstrap::secret_name(ns.name(), &m.name_any());
        assert!(
            secrets.get_opt(&token).await.unwrap().is_none(),
            "bootstrap token {token} left"
        );
    }
    deployments
        .delete(&deployment, &Default::default())
        .await
        .unwrap();
    controller.stop().await;
}

/// While the cloud's List fails, orphan collection deletes nothing: not the
/// machines' VMs, not even a real orphan. Once List works again, the orphan
/// goes (so collection was running all along).
#[tokio::test]
async fn a_failing_list_never_makes_orphan_collection_delete_anything() {
    let failing = "    listMachines:\n      error:\n        code: Unavailable\n        percentageOfMachines: 100";
    let (ns, deployment) = setup("cloud-list", 2, failing).await;
    let (control, target) = (support::control().await, support::target().await);
    let pods: Api<Pod> = ns.api(&target);
    let orphan = "orphan-vm";
    let spec = LocalProviderSpec {
        image: "localhost/machine-image:latest".into(),
        ..Default::default()
    };
    pods.create(
        &PostParams::default(),
        &build::pod(orphan, ns.name(), ns.name(), &spec),
    )
    .await
    .unwrap();
    ns.delete_on_drop::<Node>(Cluster::Target, None, &format!("machine-{orphan}"));

    let _mcm = spawn_mcm(&ns);
    let controller = Binary::spawn(
        ns.name(),
        &format!("{}-controller.log", ns.name()),
        &[
            "--leader-elect=false".into(),
            "--machine-safety-orphan-vms-period=2s".into(),
            "--machine-safety-orphan-vms-min-age=0s".into(),
        ],
        &[],
    );
    let admin = controller.admin_address(TIMEOUT).await;
    let machines: Api<Machine> = ns.api(&control);
    let running = all_running(&machines, 2).await;
    let vms: BTreeSet<String> = running
        .iter()
        .map(|m| {
            ns.delete_on_drop::<Node>(Cluster::Target, None, m.node_name().unwrap());
            m.spec.provider_id.clone()
        })
        .collect();

    // Three collection passes have met the failing List.
    let failed = "mcm_cloud_api_driver_requests_failed_total{provider=\"local\",operation=\"ListMachines\",error_code=\"Unavailable\"}";
    let injected = "machine_controller_driver_injected_faults_total{provider=\"local\",operation=\"ListMachines\",error_code=\"Unavailable\"}";
    let count = |body: &str, series: &str| sample_value(body, series).unwrap_or(0.0);
    let (_, body) = wait_for_http(
        admin,
        "/metrics",
        TIMEOUT,
        "three failed ListMachines calls",
        |code, body| code == 200 && count(body, failed) >= 3.0,
    )
    .await;
    assert_eq!(
        count(&body, injected),
        count(&body, failed),
        "every failed List was injected"
    );
    let left: BTreeSet<String> = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    let mut want = vms.clone();
    want.insert(format!("machine-{orphan}"));
    assert_eq!(left, want, "no VM was deleted");
    assert!(
        machines
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .all(|m| m.phase() == Some(&Phase::Running))
    );

    // List works again: the orphan goes, the machines stay.
    apply_class(&ns, &[]).await;
    support::wait_for_deleted(
        &pods,
        &format!("machine-{orphan}"),
        TIMEOUT,
        "the orphan VM is collected once List works",
    )
    .await;
    for vm in &vms {
        wait_for(&pods, vm, TIMEOUT, "the machine's VM stays", |_| true).await;
    }

    let deployments: Api<MachineDeployment> = ns.api(&control);
    deployments
        .delete(&deployment, &Default::default())
        .await
        .unwrap();
    support::controller::delete_all_machines(&machines).await;
    drop(controller);
}

/// A profile the user gets wrong is reported on the Machine, not fatal: its
/// creation waits with `InvalidArgument` naming the field, and once the
/// class is fixed the machine runs.
#[tokio::test]
async fn a_wrong_profile_is_reported_on_the_machine_and_fixing_it_lets_it_run() {
    let wrong = "    create:\n      minDelay: 5s\n      maxDelay: 1s";
    let (ns, deployment) = setup("cloud-wrong", 1, wrong).await;
    let control = support::control().await;
    let (_mcm, controller) = mcm_and_us(&ns, settings(&ns)).await;

    let machines: Api<Machine> = ns.api(&control);
    let reported = wait_for_list(
        &machines,
        Default::default(),
        TIMEOUT,
        "the machine reports the wrong field",
        |l| {
            l.len() == 1 && {
                let op = &l[0].status.last_operation;
                op.error_code == "InvalidArgument"
                    && op.description.contains(
                        "providerSpec.cloudProfile.create.maxDelay: must not be below minDelay (5s), is 1s",
                    )
            }
        },
    )
    .await;
    let name = reported[0].name_any();
    let events: Api<Event> = ns.api(&control);
    wait_for_list(
        &events,
        watcher::Config::default().fields(&format!("involvedObject.name={name}")),
        TIMEOUT,
        "a Warning Event names the wrong field",
        |l| {
            l.iter().any(|e| {
                e.type_.as_deref() == Some("Warning")
                    && e.message
                        .as_deref()
                        .is_some_and(|m| m.contains("providerSpec.cloudProfile.create.maxDelay"))
            })
        },
    )
    .await;
    apply_class(&ns, &[]).await;
    let running = all_running(&machines, 1).await;
    ns.delete_on_drop::<Node>(Cluster::Target, None, running[0].node_name().unwrap());

    // The sample profile, as the API server keeps it, is one the driver takes.
    kubectl_apply(
        Cluster::Control,
        &sample("machine-class-cloud-profile.yaml", ns.name(), &[]),
    )
    .await;
    let classes: Api<MachineClass> = ns.api(&control);
    let class = classes.get("test-class-cloud").await.unwrap();
    let profile = CloudProfile::parse(class.provider_spec.get("cloudProfile"))
        .expect("the sample profile is valid");
    assert_eq!(profile.instance_quota, Some(50));

    let deployments: Api<MachineDeployment> = ns.api(&control);
    tear_down(&deployments, &deployment, &machines, controller).await;
}
