// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The reconcile of one machine against a driver that is not the local one, and
//! an API server that is a map in memory: proof that `controller/` knows drivers
//! only through the `Driver` trait.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::runtime::reflector;
use kube::runtime::watcher::Event;
use serde_json::{Value, json};

use super::reconcile;
use crate::api::{Machine, MachineClass};
use crate::controller::context::Context;
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

/// An API server that keeps Machines as JSON, applies merge patches to them and
/// to their status, and accepts whatever else it is sent (Events).
#[derive(Clone, Default)]
struct ApiServer {
    machines: Arc<Mutex<BTreeMap<String, Value>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

impl ApiServer {
    async fn serve(self, req: Request<Body>) -> Result<Response<Body>, std::convert::Infallible> {
        let (method, path) = (req.method().clone(), req.uri().path().to_string());
        self.requests
            .lock()
            .unwrap()
            .push(format!("{method} {path}"));
        let body = req.into_body().collect_bytes().await.unwrap_or_default();
        let prefix = "/apis/machine.sapcloud.io/v1alpha1/namespaces/ns/machines/";
        let answer = match (method, path.strip_prefix(prefix)) {
            (Method::PATCH, Some(rest)) => {
                let name = rest.trim_end_matches("/status");
                let patch: Value = serde_json::from_slice(&body).unwrap_or_default();
                let mut machines = self.machines.lock().unwrap();
                match machines.get_mut(name) {
                    Some(stored) => {
                        let version = stored["metadata"]["resourceVersion"]
                            .as_str()
                            .and_then(|v| v.parse::<u64>().ok())
                            .unwrap_or(0);
                        merge(stored, &patch);
                        stored["metadata"]["resourceVersion"] = json!((version + 1).to_string());
                        (StatusCode::OK, stored.clone())
                    }
                    None => (
                        StatusCode::NOT_FOUND,
                        json!({"kind": "Status", "code": 404}),
                    ),
                }
            }
            _ => (StatusCode::CREATED, json!({})),
        };
        let mut response = Response::new(Body::from(answer.1.to_string().into_bytes()));
        *response.status_mut() = answer.0;
        Ok(response)
    }
}

#[tokio::test]
async fn a_machine_of_a_fake_cloud_is_created_through_the_driver_trait() {
    let server = ApiServer::default();
    let mut machine = Machine::named("m1");
    machine.metadata.namespace = Some("ns".into());
    machine.metadata.resource_version = Some("1".into());
    machine.spec.class.kind = "MachineClass".into();
    machine.spec.class.name = "fake-class".into();
    server
        .machines
        .lock()
        .unwrap()
        .insert("m1".into(), serde_json::to_value(&machine).unwrap());
    let svc = server.clone();
    let client = kube::Client::new(tower::service_fn(move |req| svc.clone().serve(req)), "ns");

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
        target: None,
        evictor: None,
        settings: Settings {
            namespace: "ns".into(),
            ..Settings::default()
        },
        driver: cloud.clone(),
        machines,
        classes,
        secrets,
        nodes: None,
        pods: None,
        events: crate::controller::events::Events::new(client.clone(), "test", None),
        own_writes: Arc::new(OwnWrites::default()),
        mcm_tokens: Default::default(),
        finalized_classes: Default::default(),
        frozen: Default::default(),
        meltdown: Default::default(),
        synced,
    });

    reconcile(Arc::new(machine), ctx).await.expect("reconcile");

    assert_eq!(
        *cloud.calls.lock().unwrap(),
        ["GetMachineStatus", "CreateMachine"],
        "the fake cloud was asked, then made the VM"
    );
    let stored = server.machines.lock().unwrap()["m1"].clone();
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
