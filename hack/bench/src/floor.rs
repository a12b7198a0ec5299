// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The contract floor: the writes that MCM's contract (and the Events of our
//! issue #4) ask of any machine controller, sent by a client that neither watches
//! Machines nor decides anything. The bare client (bare.rs) adds them to its sets
//! when asked: the Machine the user creates, our finalizer, providerID and node
//! label, the Pending status and its Event, then on joining the Node's label and
//! finalizer, the join annotation, the Running status and its Event. The payloads
//! are built by the controller's own functions, so each write costs the API server
//! what ours costs. "Our rate / floor rate" then shows what the controller adds
//! (watches, decisions, waiting), and "floor rate / bare rate" what the contract
//! costs on this cluster, which no controller can avoid. As in the bare client's
//! sets, the kubelet stand-in registers the Node the join delay after its Pod
//! runs, exactly as it registers ours, through its own client; so the floor sends
//! through the controller's buckets exactly what the contract asks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use kube::api::{Patch, PostParams};
use kube::{Api, Resource};
use mcm_local::api::Machine;
use mcm_local::contract::{
    JOIN_DURATION_ANNOTATION, MACHINE_FINALIZER, OpState, OpType, Phase, text,
};
use mcm_local::payload::labels_patch;
use mcm_local::payload::node_patch;
use mcm_local::payload::{EventType, Events, Note};
use mcm_local::payload::{StatusChange, now};
use mcm_local::payload::{params, status_patch};
use serde_json::json;

use crate::Options;
use crate::cluster::{Env, Result};

/// The contract's writes of one machine at a time, on clients with the
/// controller's token buckets (control, and Events of their own).
#[derive(Clone)]
pub struct Floor {
    /// The user's creates: the load generator's unthrottled client, whose requests
    /// the figures leave out, as in our runs.
    created_by_user: Api<Machine>,
    machines: Api<Machine>,
    nodes: Api<Node>,
    events: Events,
    /// Each machine as last written.
    written: Arc<Mutex<HashMap<String, Machine>>>,
    /// The Ready Nodes' conditions, which the Running status carries.
    conditions: Conditions,
}

/// Conditions of the Ready Nodes, by name.
pub type Conditions = Arc<Mutex<HashMap<String, Vec<NodeCondition>>>>;

impl Floor {
    pub fn new(
        env: &Env,
        opts: &Options,
        ns: &str,
        nodes: Api<Node>,
        conditions: Conditions,
    ) -> Result<Self> {
        let control = mcm_local::client::from_config(
            env.control.config.clone(),
            opts.flags.qps,
            opts.flags.burst,
        )?;
        Ok(Floor {
            created_by_user: Api::namespaced(env.control.client.clone(), ns),
            machines: Api::namespaced(control.client, ns),
            nodes,
            events: Events::new(control.events, mcm_local::contract::LEASE_NAME, None),
            written: Arc::default(),
            conditions,
        })
    }

    fn remember(&self, machine: Machine) {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written.insert(machine.name().to_string(), machine);
    }

    fn last(&self, name: &str) -> Result<Machine, String> {
        let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written
            .get(name)
            .cloned()
            .ok_or_else(|| format!("machine {name} was never written"))
    }

    fn note(&self, machine: &Machine, reason: &str, action: &str, message: String) {
        let (events, reference) = (self.events.clone(), machine.object_ref(&()));
        let note = Note {
            type_: EventType::Normal,
            reason: reason.into(),
            action: action.into(),
            message,
        };
        // As the controller does: the Event never holds up the machine.
        tokio::spawn(async move {
            if let Err(e) = events.publish(&reference, &note).await {
                eprintln!("bench: floor: event: {e}");
            }
        });
    }

    /// The user's Machine, then our finalizer on it: before the VM exists.
    pub async fn create(&self, name: &str) -> Result<(), String> {
        let machine: Machine = serde_json::from_value(json!({
            "apiVersion": "machine.sapcloud.io/v1alpha1",
            "kind": "Machine",
            "metadata": {"name": name},
            "spec": {"class": {"kind": "MachineClass", "name": "test-class"}},
        }))
        .map_err(|e| e.to_string())?;
        let created = self
            .created_by_user
            .create(&PostParams::default(), &machine)
            .await
            .map_err(|e| format!("create machine {name}: {e}"))?;
        let patch = json!({"metadata": {
            "finalizers": [MACHINE_FINALIZER],
            "resourceVersion": created.metadata.resource_version,
        }});
        let written = self
            .machines
            .patch(name, &params(), &Patch::Merge(&patch))
            .await
            .map_err(|e| format!("finalizer of {name}: {e}"))?;
        self.remember(written);
        Ok(())
    }

    /// The VM recorded: providerID and node label, the Pending status, its Event.
    pub async fn record(&self, name: &str, node: &str) -> Result<(), String> {
        let machine = self.last(name)?;
        let machine = match labels_patch(&machine, node, node, true) {
            Some(patch) => self
                .machines
                .patch(name, &params(), &Patch::Merge(&patch))
                .await
                .map_err(|e| format!("providerID of {name}: {e}"))?,
            None => machine,
        };
        let change = StatusChange::new(text::CREATING, OpState::Processing, OpType::Create)
            .phase(Phase::Pending)
            .timeout_active();
        let message = format!("Created VM {node} for machine {name}");
        self.status(&machine, &change, ("Created", "CreateMachine", message))
            .await
    }

    /// The Node joined: its label and finalizer and the join annotation (beside
    /// `token`, the token's deletion), then the Running status and its Event.
    pub async fn join(
        &self,
        name: &str,
        node: &str,
        token: impl Future<Output = Result<(), String>>,
    ) -> Result<(), String> {
        let machine = self.last(name)?;
        let registered = Node {
            metadata: kube::api::ObjectMeta {
                name: Some(node.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        let label = async {
            let Some(patch) = node_patch(&machine, &registered) else {
                return Ok(());
            };
            self.nodes
                .patch(node, &params(), &Patch::Strategic(&patch))
                .await
                .map(drop)
                .map_err(|e| format!("labels of node {node}: {e}"))
        };
        let annotate = async {
            let patch = json!({"metadata": {
                "annotations": {JOIN_DURATION_ANNOTATION: "10s"},
                "resourceVersion": machine.metadata.resource_version,
            }});
            self.machines
                .patch(name, &params(), &Patch::Merge(&patch))
                .await
                .map_err(|e| format!("join annotation of {name}: {e}"))
        };
        let ((), (), machine) = futures::try_join!(label, token, annotate)?;
        let conditions = {
            let all = self.conditions.lock().unwrap_or_else(|e| e.into_inner());
            all.get(node).cloned().unwrap_or_default()
        };
        let change = StatusChange::new(
            text::joined(name, "10s"),
            OpState::Successful,
            OpType::Create,
        )
        .phase(Phase::Running)
        .conditions(conditions);
        let message = change.description.clone();
        self.status(&machine, &change, ("Running", "HealthCheck", message))
            .await
    }

    /// Writes the status `change` of `machine`, then its Event (reason, action, message).
    async fn status(
        &self,
        machine: &Machine,
        change: &StatusChange,
        (reason, action, message): (&str, &str, String),
    ) -> Result<(), String> {
        let name = machine.name();
        let written = self
            .machines
            .patch_status(
                name,
                &params(),
                &Patch::Merge(&status_patch(machine, change, now())),
            )
            .await
            .map_err(|e| format!("status of {name}: {e}"))?;
        self.note(&written, reason, action, message);
        self.remember(written);
        Ok(())
    }

    /// Lets the namespace's deletion take the machines: our finalizer off.
    pub async fn release(&self) {
        let names: Vec<String> = {
            let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
            written.keys().cloned().collect()
        };
        let clear = json!({"metadata": {"finalizers": null}});
        stream::iter(names)
            .for_each_concurrent(100, |name| {
                let clear = &clear;
                async move {
                    let _ = self
                        .created_by_user
                        .patch(&name, &params(), &Patch::Merge(clear))
                        .await;
                }
            })
            .await;
    }
}
