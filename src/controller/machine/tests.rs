// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The reconcile of one machine against a driver that is not the local one, and
//! an API server that is a map in memory ([`FakeApi`]): proof that `controller/`
//! knows drivers only through the `Driver` trait, and fast tests of the
//! executors: a forced drain, a budget given up on, VolumeAttachments and the
//! Node's finalizer.

use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Node;
use kube::runtime::reflector;
use kube::runtime::watcher::Event;
use serde_json::json;

use super::{deletion, drain, reconcile};
use crate::api::{Machine, MachineClass, PodOnNode};
use crate::contract::{FORCE_DELETION_LABEL, NODE_FINALIZER, NODE_LABEL, Phase, text};
use crate::controller::context::{Context, Target};
use crate::controller::fake_api::FakeApi;
use crate::controller::own_writes::OwnWrites;
use crate::controller::settings::Settings;
use crate::driver::{
    Code, Deletion, Driver, DriverResult, MachineError, MachineList, MachineRequest,
    MachineResponse, SecretData,
};

/// A cloud whose VMs are names in a list: nothing like Pods.
#[derive(Default)]
struct FakeCloud {
    vms: Mutex<Vec<String>>,
    calls: Mutex<Vec<&'static str>>,
}

impl FakeCloud {
    fn call(&self, name: &'static str) {
        self.calls.lock().unwrap().push(name);
    }
}

impl Driver for Arc<FakeCloud> {
    const PROVIDER: &'static str = "fake";

    async fn create_machine(&self, req: &MachineRequest<'_>) -> DriverResult<MachineResponse> {
        self.call("CreateMachine");
        let id = format!("fake:///{}", req.machine.name());
        self.vms.lock().unwrap().push(id.clone());
        Ok(MachineResponse {
            provider_id: id,
            node_name: format!("node-{}", req.machine.name()),
            addresses: vec![k8s_openapi::api::core::v1::NodeAddress {
                type_: "InternalIP".into(),
                address: "10.0.0.7".into(),
            }],
            ..Default::default()
        })
    }
    async fn initialize_machine(&self, _: &MachineRequest<'_>) -> DriverResult<MachineResponse> {
        self.call("InitializeMachine");
        Err(MachineError::new(Code::Unimplemented, ""))
    }
    async fn delete_machine(&self, _: &MachineRequest<'_>) -> DriverResult<Deletion> {
        self.call("DeleteMachine");
        Ok(Deletion::Gone)
    }
    async fn get_machine_status(&self, req: &MachineRequest<'_>) -> DriverResult<MachineResponse> {
        self.call("GetMachineStatus");
        let id = format!("fake:///{}", req.machine.name());
        if self.vms.lock().unwrap().contains(&id) {
            Ok(MachineResponse {
                provider_id: id,
                ..Default::default()
            })
        } else {
            Err(MachineError::new(Code::NotFound, "no such VM"))
        }
    }
    async fn list_machines(&self, _: &MachineClass, _: &SecretData) -> DriverResult<MachineList> {
        Ok(MachineList::new())
    }
    async fn get_volume_ids(
        &self,
        _: &[k8s_openapi::api::core::v1::PersistentVolumeSpec],
    ) -> DriverResult<Vec<String>> {
        Ok(Vec::new())
    }
}

const MACHINES: &str = "/apis/machine.sapcloud.io/v1alpha1/namespaces/ns/machines";
const PODS: &str = "/api/v1/namespaces/ns/pods";
const NODES: &str = "/api/v1/nodes";
const ATTACHMENTS: &str = "/apis/storage.k8s.io/v1/volumeattachments";
const BUDGETS: &str = "/apis/policy/v1/namespaces/ns/poddisruptionbudgets";

/// Machine `name` of the fake class, stored in `api`.
fn machine_in(api: &FakeApi, name: &str) -> Machine {
    let mut machine = Machine::named(name);
    machine.metadata.namespace = Some("ns".into());
    machine.spec.class.kind = "MachineClass".into();
    machine.spec.class.name = "fake-class".into();
    store(api, &machine);
    api.get(&format!("{MACHINES}/{name}"))
        .map(|stored| serde_json::from_value(stored).unwrap())
        .unwrap()
}

/// Stores `machine` in `api` as it is.
fn store(api: &FakeApi, machine: &Machine) {
    let path = format!("{MACHINES}/{}", machine.name());
    api.put(&path, serde_json::to_value(machine).unwrap());
}

/// The context of a reconcile against `api` and the fake cloud: one class
/// with its Secret, `machine` in the cache, and the target if one is given.
fn context(
    api: &FakeApi,
    machine: &Machine,
    target: Option<Target>,
) -> (Arc<Context<Arc<FakeCloud>>>, Arc<FakeCloud>) {
    let client = api.client();
    let (machines, mut machines_w) = reflector::store::<Machine>();
    machines_w.apply_watcher_event(&Event::Apply(machine.clone()));
    let mut class = MachineClass::named("fake-class");
    class.metadata.namespace = Some("ns".into());
    class.provider = "fake".into();
    class.metadata.finalizers = Some(vec![crate::contract::MACHINE_FINALIZER.into()]);
    class.secret_ref = Some(k8s_openapi::api::core::v1::SecretReference {
        name: Some("fake-secret".into()),
        namespace: Some("ns".into()),
    });
    let (classes, mut classes_w) = reflector::store::<MachineClass>();
    classes_w.apply_watcher_event(&Event::Apply(class));
    let mut secret = k8s_openapi::api::core::v1::Secret::default();
    secret.metadata.name = Some("fake-secret".into());
    secret.metadata.namespace = Some("ns".into());
    secret.data = Some(
        [(
            "userData".to_string(),
            k8s_openapi::ByteString(b"#!/bin/sh".to_vec()),
        )]
        .into(),
    );
    let (secrets, mut secrets_w) = reflector::store();
    secrets_w.apply_watcher_event(&Event::Apply(secret));

    let cloud = Arc::new(FakeCloud::default());
    let (_, synced) = tokio::sync::watch::channel(true);
    let ctx = Arc::new(Context {
        control: client.clone(),
        target,
        settings: Settings {
            namespace: "ns".into(),
            ..Settings::default()
        },
        driver: cloud.clone(),
        machines,
        classes,
        secrets,
        events: crate::controller::events::Events::new(client.clone(), "test", None),
        own_writes: Arc::new(OwnWrites::default()),
        mcm_tokens: Default::default(),
        finalized_classes: Default::default(),
        frozen: Default::default(),
        meltdown: Default::default(),
        synced,
    });
    (ctx, cloud)
}

#[tokio::test]
async fn a_machine_of_a_fake_cloud_is_created_through_the_driver_trait() {
    let api = FakeApi::default();
    let machine = machine_in(&api, "m1");
    let (ctx, cloud) = context(&api, &machine, None);

    reconcile(Arc::new(machine), ctx).await.expect("reconcile");

    assert_eq!(
        *cloud.calls.lock().unwrap(),
        ["GetMachineStatus", "CreateMachine"],
        "the fake cloud was asked, then made the VM"
    );
    let stored = api.get(&format!("{MACHINES}/m1")).unwrap();
    assert_eq!(stored["spec"]["providerID"], "fake:///m1");
    assert_eq!(
        stored["metadata"]["finalizers"],
        json!(["machine.sapcloud.io/machine-controller-manager"])
    );
    // Without a target cluster the VM is all there is: Available, as MCM says.
    assert_eq!(stored["status"]["currentStatus"]["phase"], "Available");
    assert_eq!(
        stored["status"]["lastOperation"]["description"],
        "Created machine on cloud provider"
    );
    // The addresses are how one reaches it: the VM's IP, and the node name.
    assert_eq!(
        stored["status"]["addresses"],
        json!([
            {"type": "Hostname", "address": "node-m1"},
            {"type": "InternalIP", "address": "10.0.0.7"},
        ])
    );
    // No label `node`: without a target there is no Node to name.
    assert!(stored["metadata"]["labels"].get("node").is_none());
}

/// A deleting machine at the drain step, on Node `n1`.
fn deleting_on_n1(api: &FakeApi, deleted_ago: jiff::SignedDuration) -> Machine {
    let mut machine = machine_in(api, "m1");
    machine.spec.provider_id = "fake:///m1".into();
    machine.metadata.finalizers = Some(vec![crate::contract::MACHINE_FINALIZER.into()]);
    machine
        .metadata
        .labels
        .get_or_insert_default()
        .insert(NODE_LABEL.into(), "n1".into());
    let deleted = jiff::Timestamp::now() - deleted_ago;
    machine.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(deleted),
    );
    machine.status.current_status.phase = Some(Phase::Terminating);
    machine.status.last_operation.description = crate::contract::step::INITIATE_DRAIN.into();
    store(api, &machine);
    serde_json::from_value(api.get(&format!("{MACHINES}/m1")).unwrap()).unwrap()
}

/// Node `n1` with our finalizer, a Pod `p1` a budget covers and a DaemonSet
/// Pod `ds1` on it, and a VolumeAttachment on it and one elsewhere: in `api`,
/// and in the caches of the returned target.
fn target_with_n1(api: &FakeApi) -> Target {
    let node = json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "n1", "finalizers": [NODE_FINALIZER]}});
    api.put(&format!("{NODES}/n1"), node.clone());
    let pod = |name: &str, owner: Option<&str>| {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": []}});
        if let Some(kind) = owner {
            p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": kind,
                "name": "agent", "uid": "u1", "controller": true}]);
        }
        p
    };
    let (p1, ds1) = (pod("p1", None), pod("ds1", Some("DaemonSet")));
    api.put(&format!("{PODS}/p1"), p1.clone());
    api.put(&format!("{PODS}/ds1"), ds1.clone());
    api.put(
        &format!("{BUDGETS}/web"),
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "ns", "generation": 1},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"observedGeneration": 1, "expectedPods": 2, "currentHealthy": 1,
                "desiredHealthy": 1, "disruptionsAllowed": 0}}),
    );
    for (name, node) in [("va1", "n1"), ("va2", "n2")] {
        api.put(
            &format!("{ATTACHMENTS}/{name}"),
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
                "metadata": {"name": name},
                "spec": {"attacher": "csi", "nodeName": node, "source": {"persistentVolumeName": "pv"}}}),
        );
    }
    api.refuse_evictions(&format!("{PODS}/p1"));

    let (nodes, mut nodes_w) = reflector::store::<Node>();
    nodes_w.apply_watcher_event(&Event::Apply(serde_json::from_value(node).unwrap()));
    let (pods, mut pods_w) = reflector::store::<PodOnNode>();
    for p in [p1, ds1] {
        pods_w.apply_watcher_event(&Event::Apply(serde_json::from_value(p).unwrap()));
    }
    Target {
        client: api.client(),
        evictor: api.client(),
        nodes,
        pods,
    }
}

fn position(requests: &[String], request: &str) -> usize {
    requests
        .iter()
        .position(|r| r == request)
        .unwrap_or_else(|| panic!("no {request:?} in {requests:#?}"))
}

/// A machine labelled `force-deletion` goes in one pass: every Pod but the
/// DaemonSet's deleted at once (no eviction asked, the budget aside), the
/// Node's VolumeAttachments (only its own), the VM, our finalizer off the
/// Node before the Node is deleted, and the machine's finalizer last.
#[tokio::test]
async fn a_forced_deletion_drains_detaches_and_deletes_in_mcm_order() {
    let api = FakeApi::default();
    let mut machine = deleting_on_n1(&api, jiff::SignedDuration::from_secs(5));
    machine
        .metadata
        .labels
        .get_or_insert_default()
        .insert(FORCE_DELETION_LABEL.into(), "true".into());
    store(&api, &machine);
    let machine: Machine =
        serde_json::from_value(api.get(&format!("{MACHINES}/m1")).unwrap()).unwrap();
    let (ctx, cloud) = context(&api, &machine, Some(target_with_n1(&api)));

    deletion::run(&ctx, machine).await.expect("deletion pass");

    let requests = api.requests();
    assert!(
        api.get(&format!("{PODS}/p1")).is_none(),
        "the Pod is deleted"
    );
    assert!(
        api.get(&format!("{PODS}/ds1")).is_some(),
        "the DaemonSet's Pod stays"
    );
    assert!(
        !requests.iter().any(|r| r.ends_with("/eviction")),
        "a forced drain asks no budget: {requests:#?}"
    );
    assert!(
        api.get(&format!("{ATTACHMENTS}/va1")).is_none(),
        "the Node's attachment goes"
    );
    assert!(
        api.get(&format!("{ATTACHMENTS}/va2")).is_some(),
        "another Node's stays"
    );
    assert_eq!(*cloud.calls.lock().unwrap(), ["DeleteMachine"]);
    assert!(
        api.get(&format!("{NODES}/n1")).is_none(),
        "the Node is deleted"
    );
    // The fake keeps a Node its finalizers hold: gone means ours was off before.
    position(&requests, "DELETE /api/v1/nodes/n1");
    assert!(
        position(&requests, "DELETE /api/v1/namespaces/ns/pods/p1")
            < position(&requests, &format!("DELETE {ATTACHMENTS}/va1")),
        "the Pods go before the attachments: {requests:#?}"
    );
    let stored = api.get(&format!("{MACHINES}/m1")).unwrap();
    assert_eq!(stored["metadata"]["finalizers"], json!([]), "{stored:#}");
}

/// Not forced, and within MCM's eviction retries: a refused eviction holds the
/// Pod, and the drain waits for the budget's retry period.
#[tokio::test]
async fn a_budget_holds_a_pod_until_the_retries_are_used_up() {
    let api = FakeApi::default();
    let machine = deleting_on_n1(&api, jiff::SignedDuration::from_secs(5));
    let (ctx, _) = context(&api, &machine, Some(target_with_n1(&api)));

    let outcome = drain::run(&ctx, &machine).await.expect("drain pass");

    assert_eq!(outcome, drain::Outcome::Again(drain::PDB_RETRY));
    assert!(
        api.get(&format!("{PODS}/p1")).is_some(),
        "the budget holds the Pod"
    );
    let requests = api.requests();
    assert!(requests.contains(&"POST /api/v1/namespaces/ns/pods/p1/eviction".to_string()));
    assert!(!requests.contains(&"DELETE /api/v1/namespaces/ns/pods/p1".to_string()));
}

/// After MCM's eviction retries (here the machine's 10, 20 s apart), the Pod
/// the budget still protects is deleted without its consent, and the drain
/// waits for it to go rather than calling itself forced.
#[tokio::test]
async fn a_budget_given_up_on_lets_the_pod_be_deleted() {
    let api = FakeApi::default();
    let mut machine = deleting_on_n1(&api, jiff::SignedDuration::from_secs(300));
    machine.spec.configuration.max_evict_retries = Some(10);
    store(&api, &machine);
    let (ctx, _) = context(&api, &machine, Some(target_with_n1(&api)));

    let outcome = drain::run(&ctx, &machine).await.expect("drain pass");

    assert_eq!(
        outcome,
        drain::Outcome::Again(crate::controller::error::retry::SHORT)
    );
    assert!(
        api.get(&format!("{PODS}/p1")).is_none(),
        "the Pod is deleted"
    );
    let requests = api.requests();
    assert!(
        position(&requests, "POST /api/v1/namespaces/ns/pods/p1/eviction")
            < position(&requests, "DELETE /api/v1/namespaces/ns/pods/p1"),
        "asked first, deleted after the refusal: {requests:#?}"
    );
    let node = api.get(&format!("{NODES}/n1")).unwrap();
    assert_eq!(node["spec"]["unschedulable"], true, "cordoned");
    let conditions = node["status"]["conditions"].as_array().unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "Terminating" && c["message"] == text::TERMINATING_SCALE_DOWN),
        "{conditions:#?}"
    );
}
