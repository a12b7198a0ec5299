// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Boot faults of the local cloud (issue #23): a class's cloud profile makes
//! a VM never join, join and go NotReady, or crash at boot; MCM's own
//! timeouts and health rules then act, as on a cloud: the machine is Failed
//! and the real MCM (v0.62.1) replaces it. Once the profile is gone, the
//! deployment is whole again.

use crate::support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::{Api, ResourceExt};
use mcm_local::api::Machine;
use mcm_local::contract::Phase;
use mcm_local::embed::Settings;
use support::controller::settings;
use support::mcm::{
    MachineDeployment, all_running, apply_class, apply_deployment, mcm_and_us, tear_down,
};
use support::{Cluster, TIMEOUT, TestNamespace, wait_for, wait_for_list};

/// The sample class's image line, after which a test writes its profile.
const IMAGE: &str = "  image: localhost/machine-image:latest";

/// A MachineDeployment of one machine whose class's profile has `boot`
/// (YAML under `boot:`, indented by 6); `shows` tells the fault on the
/// machine, and `vm` on its Pod. The machine fails, is replaced, and with
/// the profile gone the deployment runs one healthy machine.
async fn fails_and_is_replaced(
    prefix: &str,
    boot: &str,
    tune: impl FnOnce(&mut Settings),
    description: &str,
    shows: impl Fn(&Machine) -> bool,
    vm: impl Fn(&Pod) -> bool,
) {
    let ns = TestNamespace::in_both(prefix).await;
    let (control, target) = (support::control().await, support::target().await);
    let deployment = apply_deployment(&ns, &[("replicas: 3", "replicas: 1")]).await;
    let profile = format!("{IMAGE}\n  cloudProfile:\n    boot:\n{boot}");
    apply_class(&ns, &[(IMAGE, &profile)]).await;
    let mut s = settings(&ns);
    tune(&mut s);
    let (_mcm, controller) = mcm_and_us(&ns, s).await;

    let machines: Api<Machine> = ns.api(&control);
    let pods: Api<Pod> = ns.api(&target);
    let listed = wait_for_list(&machines, Default::default(), TIMEOUT, description, |l| {
        l.len() == 1 && shows(&l[0])
    })
    .await;
    let first = listed[0].name_any();
    let vm_name = format!("machine-{first}");
    ns.delete_on_drop::<Node>(Cluster::Target, None, &vm_name);
    wait_for(&pods, &vm_name, TIMEOUT, "its VM shows the fault", |p| {
        vm(p)
    })
    .await;
    wait_for(
        &machines,
        &first,
        TIMEOUT,
        "the machine is Failed by MCM's rules",
        |m| m.phase() == Some(&Phase::Failed),
    )
    .await;
    // MCM replaces it; the profile goes, so that a replacement can run.
    wait_for_list(
        &machines,
        Default::default(),
        TIMEOUT,
        "a replacement for the failed machine",
        |l| l.iter().any(|m| m.name_any() != first),
    )
    .await;
    apply_class(&ns, &[]).await;
    let running = all_running(&machines, 1).await;
    assert_ne!(running[0].name_any(), first);
    ns.delete_on_drop::<Node>(Cluster::Target, None, running[0].node_name().unwrap());

    let deployments: Api<MachineDeployment> = ns.api(&control);
    tear_down(&deployments, &deployment, &machines, controller).await;
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn fault(pod: &Pod) -> Option<&str> {
    pod.annotations()
        .get("local.machine.sapcloud.io/boot-fault")
        .map(String::as_str)
}

/// The VM runs, its kubelet never joins: Failed after the creation timeout.
#[tokio::test]
async fn a_vm_that_never_joins_fails_after_the_creation_timeout_and_is_replaced() {
    fails_and_is_replaced(
        "boot-never",
        "      neverJoins:\n        percentageOfMachines: 100",
        |s| s.creation_timeout = Duration::from_secs(15),
        "the machine Pending",
        |m| m.phase() == Some(&Phase::Pending),
        |p| phase(p) == Some("Running") && fault(p) == Some("never-joins"),
    )
    .await;
}

/// The kubelet joins and stops posting status 5 s later: the machine goes
/// Unknown, and Failed after the health timeout.
#[tokio::test]
async fn a_vm_that_goes_not_ready_fails_after_the_health_timeout_and_is_replaced() {
    fails_and_is_replaced(
        "boot-notready",
        "      goesNotReady:\n        percentageOfMachines: 100\n        after: 5s",
        |s| s.health_timeout = Duration::from_secs(10),
        "the machine Unknown after it ran",
        |m| m.phase() == Some(&Phase::Unknown),
        |p| phase(p) == Some("Running") && fault(p) == Some("not-ready-after=5s"),
    )
    .await;
}

/// The VM crashes at boot (its Pod fails): the machine says so, and is
/// Failed after the creation timeout.
#[tokio::test]
async fn a_vm_that_crashes_at_boot_is_reported_and_replaced() {
    fails_and_is_replaced(
        "boot-crash",
        "      podFails:\n        percentageOfMachines: 100",
        |s| {
            s.creation_timeout = Duration::from_secs(15);
            s.vm_trouble_grace = Duration::ZERO;
        },
        "the machine in CrashLoopBackOff with its VM's crash",
        |m| {
            m.phase() == Some(&Phase::CrashLoopBackOff)
                && m.status.last_operation.description.contains("BootFailed")
        },
        |p| phase(p) == Some("Failed") && fault(p) == Some("pod-fails"),
    )
    .await;
}
