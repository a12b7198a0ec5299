// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The local cloud's zones (issue #23) in Gardener's shape: one class and one
//! MachineDeployment per zone, each class's `nodeTemplate` naming region,
//! zone, instance type and capacity, driven by the real MCM (v0.62.1). The
//! cloud-wide profile (`--cloud-profile`, a file the test rewrites while it
//! runs) shares quotas between classes and takes a zone out and back.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{Api, ResourceExt};
use mcm_local::api::Machine;
use mcm_local::contract::Phase;
use mcm_local::embed::Settings;
use support::admin::RemoveOnDrop;
use support::cluster::local_dir;
use support::controller::{
    ControllerGuard, kubectl_apply, sample, settings, start_with_cloud_profile,
};
use support::mcm::{MachineDeployment, spawn_mcm};
use support::{Cluster, TIMEOUT, TestNamespace, holds_until, wait_for, wait_for_list};

const INSTANCE_TYPE: &str = "local-small";

/// The test's zones: named after its namespace, so that an outage it writes
/// (the stand-in reads every test's profile) touches only its own machines.
fn zones(ns: &TestNamespace) -> [String; 3] {
    let suffix = &ns.name()[ns.name().len() - 6..];
    ["a", "b", "c"].map(|z| format!("zone-{z}-{suffix}"))
}

/// The pool of `zone`: its class (the sample's, with a node template naming
/// `instance_type`) and a MachineDeployment of `replicas` named after the zone.
async fn pool(ns: &TestNamespace, zone: &str, instance_type: &str, replicas: usize) {
    let template = format!(
        "nodeTemplate:\n  capacity:\n    cpu: \"2\"\n    memory: 4Gi\n  instanceType: {instance_type}\n  region: local\n  zone: {zone}\nprovider: local"
    );
    let class = sample(
        "machine-class.yaml",
        ns.name(),
        &[
            ("name: test-class", &format!("name: {zone}")),
            ("provider: local", &template),
        ],
    );
    kubectl_apply(Cluster::Control, &class).await;
    let deployment = sample(
        "machine-deployment.yaml",
        ns.name(),
        &[
            ("test-machine-deployment", zone),
            ("replicas: 3", &format!("replicas: {replicas}")),
            // Gardener labels a pool's machines with its deployment's name;
            // MCM's one-replacement-at-a-time rule counts by that label.
            ("test-label: test-label", &format!("name: {zone}")),
            ("name: test-class", &format!("name: {zone}")),
        ],
    );
    kubectl_apply(Cluster::Control, &deployment).await;
}

/// The cloud-wide profile the test's controller reads, written as `json`.
struct CloudFile(RemoveOnDrop);

impl CloudFile {
    fn new(ns: &TestNamespace) -> Self {
        let dir = local_dir().join("cloud-profiles");
        std::fs::create_dir_all(&dir).expect("cloud profile directory");
        CloudFile(RemoveOnDrop(dir.join(format!("{}.json", ns.name()))))
    }

    fn path(&self) -> PathBuf {
        self.0.0.clone()
    }

    fn write(&self, json: serde_json::Value) {
        // Written beside and renamed, so that no reader sees half a file.
        let tmp = self.0.0.with_extension("tmp");
        std::fs::write(&tmp, json.to_string()).expect("write cloud profile");
        std::fs::rename(&tmp, &self.0.0).expect("rename cloud profile");
    }
}

/// Our controller with the cloud-wide profile, and the real MCM.
async fn mcm_and_us(
    ns: &TestNamespace,
    settings: Settings,
    file: &CloudFile,
) -> (tokio::process::Child, ControllerGuard) {
    let controller = start_with_cloud_profile(settings, file.path()).await;
    (spawn_mcm(ns), controller)
}

/// The zone a machine's class names (its class is named after the zone).
fn zone_of(m: &Machine) -> String {
    m.spec.class.name.clone()
}

fn by_zone(machines: &[Machine]) -> BTreeMap<String, Vec<&Machine>> {
    let mut zones: BTreeMap<String, Vec<&Machine>> = BTreeMap::new();
    for m in machines {
        zones.entry(zone_of(m)).or_default().push(m);
    }
    zones
}

fn phases(machines: &[Machine]) -> Vec<(String, Option<Phase>)> {
    machines
        .iter()
        .map(|m| (m.name_any(), m.phase().cloned()))
        .collect()
}

fn running_names(machines: &[&Machine]) -> BTreeSet<String> {
    machines
        .iter()
        .filter(|m| m.phase() == Some(&Phase::Running))
        .map(|m| m.name_any())
        .collect()
}

/// Waits until every zone has `n` machines, all Running.
async fn all_running(machines: &Api<Machine>, zones: &[String], n: usize) -> Vec<Machine> {
    let description = format!("{n} Running machines in each of {zones:?}, nothing else");
    wait_for_list(
        machines,
        Default::default(),
        TIMEOUT * 2,
        &description,
        |l| {
            let z = by_zone(l);
            l.len() == n * zones.len()
                && zones
                    .iter()
                    .all(|zone| z.get(zone).is_some_and(|ms| running_names(ms).len() == n))
        },
    )
    .await
}

/// Three zones, one pool of 3 in each. Their Nodes carry the zone, region,
/// instance type and capacity of the class. Zone b goes out: its machines
/// go Unknown, MCM replaces them one per MachineDeployment at a time (the
/// replacements cannot be made while the zone is out), the other zones are
/// untouched. Once the zone is back, every MachineDeployment is whole and
/// nothing else is left.
#[tokio::test]
async fn a_zone_outage_takes_one_zone_down_and_its_end_makes_every_pool_whole() {
    let ns = TestNamespace::in_both("cloud-outage").await;
    let (control, target) = (support::control().await, support::target().await);
    let zones = zones(&ns);
    kubectl_apply(Cluster::Control, &sample("secret.yaml", ns.name(), &[])).await;
    for zone in &zones {
        pool(&ns, zone, INSTANCE_TYPE, 3).await;
    }
    let file = CloudFile::new(&ns);
    file.write(serde_json::json!({}));
    let mut s = settings(&ns);
    // Short, so that an Unknown machine fails within the test.
    s.health_timeout = Duration::from_secs(15);
    let (_mcm, controller) = mcm_and_us(&ns, s, &file).await;

    let machines: Api<Machine> = ns.api(&control);
    let nodes: Api<Node> = Api::all(target.clone());
    let before = all_running(&machines, &zones, 3).await;
    for m in &before {
        let name = m.node_name().expect("node label");
        ns.delete_on_drop::<Node>(Cluster::Target, None, name);
        let node = wait_for(
            &nodes,
            name,
            TIMEOUT,
            "the Node reports its VM's size",
            |n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.capacity.as_ref())
                    .and_then(|c| c.get("cpu"))
                    == Some(&Quantity("2".into()))
            },
        )
        .await;
        let labels = node.labels();
        assert_eq!(labels["topology.kubernetes.io/zone"], zone_of(m));
        assert_eq!(labels["topology.kubernetes.io/region"], "local");
        assert_eq!(labels["node.kubernetes.io/instance-type"], INSTANCE_TYPE);
        let allocatable = node.status.unwrap().allocatable.unwrap();
        assert_eq!(allocatable["memory"], Quantity("4Gi".into()));
    }
    let before_zones = by_zone(&before);
    let kept: BTreeSet<String> = [&zones[0], &zones[2]]
        .iter()
        .flat_map(|z| running_names(&before_zones[*z]))
        .collect();
    let out = &zones[1];

    file.write(serde_json::json!({"outages": {out: "Unavailable"}}));
    let during = wait_for_list(
        &machines,
        Default::default(),
        TIMEOUT * 2,
        "zone b's machines down and one replacement refused by the zone",
        |l| {
            let z = by_zone(l);
            let Some(b) = z.get(out) else { return false };
            b.iter().all(|m| m.phase() != Some(&Phase::Running))
                && b.iter().any(|m| {
                    m.phase() == Some(&Phase::CrashLoopBackOff)
                        && m.status
                            .last_operation
                            .description
                            .contains("is unavailable (outage)")
                })
        },
    )
    .await;
    // The other zones did not notice.
    let others: Vec<&Machine> = during.iter().filter(|m| zone_of(m) != *out).collect();
    assert_eq!(running_names(&others), kept);
    assert_eq!(others.len(), 6, "no machine added or removed elsewhere");
    // MCM replaces one machine of the pool at a time: while the replacement
    // cannot be made, the other two stay Unknown, past their health timeout.
    let unknown_b = |l: &[Machine]| {
        l.iter()
            .filter(|m| zone_of(m) == *out && m.phase() == Some(&Phase::Unknown))
            .count()
    };
    assert_eq!(unknown_b(&during), 2, "{:?}", phases(&during));
    holds_until(
        &machines,
        Default::default(),
        Duration::from_secs(20),
        "two of zone b's machines Unknown while the first is replaced",
        |l| unknown_b(l) == 2,
    )
    .await;

    file.write(serde_json::json!({}));
    let after = all_running(&machines, &zones, 3).await;
    let others: Vec<&Machine> = after.iter().filter(|m| zone_of(m) != *out).collect();
    assert_eq!(running_names(&others), kept);
    for m in &after {
        let name = m.node_name().expect("node label");
        ns.delete_on_drop::<Node>(Cluster::Target, None, name);
    }

    let deployments: Api<MachineDeployment> = ns.api(&control);
    for zone in &zones {
        deployments.delete(zone, &Default::default()).await.unwrap();
    }
    support::controller::delete_all_machines(&machines).await;
    controller.stop().await;
}

/// A quota of the whole cloud is shared by classes: two zones' pools of 2
/// with one instance type limited to 2 hold 2 machines Running between them,
/// and the others wait on `ResourceExhausted` until the quota goes.
#[tokio::test]
async fn a_cloud_wide_quota_is_shared_by_the_pools_of_every_zone() {
    let ns = TestNamespace::in_both("cloud-shared").await;
    let control = support::control().await;
    let zones = zones(&ns);
    let zones = &zones[..2];
    kubectl_apply(Cluster::Control, &sample("secret.yaml", ns.name(), &[])).await;
    // A type of this test's own: the quota counts every VM of the cloud.
    let own_type = format!("{INSTANCE_TYPE}-{}", &ns.name()[ns.name().len() - 6..]);
    for zone in zones {
        pool(&ns, zone, &own_type, 2).await;
    }
    let file = CloudFile::new(&ns);
    file.write(serde_json::json!({"quota": {"perInstanceType": {&own_type: 2}}}));
    let s = Settings {
        resource_exhausted_retry: Duration::from_secs(3),
        ..settings(&ns)
    };
    let (_mcm, controller) = mcm_and_us(&ns, s, &file).await;

    let machines: Api<Machine> = ns.api(&control);
    let held = wait_for_list(
        &machines,
        Default::default(),
        TIMEOUT * 2,
        "2 machines Running in all and 2 waiting on the type's quota",
        |l| {
            let running = l
                .iter()
                .filter(|m| m.phase() == Some(&Phase::Running))
                .count();
            let waiting = l
                .iter()
                .filter(|m| {
                    m.phase() == Some(&Phase::CrashLoopBackOff)
                        && m.status.last_operation.error_code == "ResourceExhausted"
                        && m.status.last_operation.description.contains(&format!(
                            "quota exceeded: 2 of 2 instances of type \"{own_type}\" are in use"
                        ))
                })
                .count();
            l.len() == 4 && running == 2 && waiting == 2
        },
    )
    .await;
    for m in &held {
        if let Some(node) = m.node_name() {
            ns.delete_on_drop::<Node>(Cluster::Target, None, node);
        }
    }

    file.write(serde_json::json!({}));
    for m in all_running(&machines, zones, 2).await {
        ns.delete_on_drop::<Node>(Cluster::Target, None, m.node_name().unwrap());
    }

    let deployments: Api<MachineDeployment> = ns.api(&control);
    for zone in zones {
        deployments.delete(zone, &Default::default()).await.unwrap();
    }
    support::controller::delete_all_machines(&machines).await;
    controller.stop().await;
}
