// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The one running-machine fixture: a fresh namespace in both clusters with the
//! sample Secret and MachineClass ([`Sampled`]), and a machine of the test's
//! own name Running under a controller of the test's own ([`Running`]).

use k8s_openapi::api::core::v1::{Node, Pod, Secret, SecretReference};
use kube::Api;
use kube::api::PostParams;
use mcm_local::api::{Machine, MachineClass};
use mcm_local::contract::Phase;
use mcm_local::embed::Settings;

use super::controller::{ControllerGuard, WORKERS, kubectl_apply, sample, settings, start_with};
use super::{Cluster, TIMEOUT, TestNamespace, wait_for};

/// The sample class's name (`kubernetes/machine-class.yaml`).
pub const SAMPLE_CLASS: &str = "test-class";

/// A fresh namespace with the sample Secret and class, and the name of a
/// machine to make there and of its Node (removed when the test ends: Nodes
/// are cluster-wide).
pub struct Sampled {
    pub ns: TestNamespace,
    pub target: kube::Client,
    pub machines: Api<Machine>,
    pub name: String,
    pub node_name: String,
}

impl Sampled {
    /// The namespace (named after `prefix`) and a machine named after `machine_prefix`.
    pub async fn new(prefix: &str, machine_prefix: &str) -> Self {
        let ns = TestNamespace::in_both(prefix).await;
        for file in ["secret.yaml", "machine-class.yaml"] {
            kubectl_apply(Cluster::Control, &sample(file, ns.name(), &[])).await;
        }
        let machines: Api<Machine> = ns.api(&super::control().await);
        let name = super::unique_name(machine_prefix);
        let node_name = format!("machine-{name}");
        ns.delete_on_drop::<Node>(Cluster::Target, None, &node_name);
        Sampled {
            ns,
            target: super::target().await,
            machines,
            name,
            node_name,
        }
    }

    /// This fixture's machine, of the sample class.
    pub fn machine(&self) -> Machine {
        machine(&self.name, SAMPLE_CLASS)
    }

    /// Starts a controller with the flag defaults, creates `m` (of this
    /// fixture's name) and waits until it runs.
    pub async fn run(&self, m: Machine) -> ControllerGuard {
        self.run_with(m, settings(&self.ns), WORKERS).await
    }

    /// [`Sampled::run`] under a controller with `settings` and `workers` per queue.
    pub async fn run_with(&self, m: Machine, settings: Settings, workers: u16) -> ControllerGuard {
        let controller = start_with(settings, workers).await;
        self.machines
            .create(&PostParams::default(), &m)
            .await
            .unwrap();
        wait_for(
            &self.machines,
            &self.name,
            TIMEOUT,
            "the machine is Running",
            |m| m.phase() == Some(&Phase::Running),
        )
        .await;
        controller
    }
}

/// A Running machine of the sample class, in its own namespace, with its controller.
pub struct Running {
    pub ns: TestNamespace,
    pub target: kube::Client,
    pub machines: Api<Machine>,
    /// The target's Pods in the namespace (the machine Pod, workloads).
    pub pods: Api<Pod>,
    /// The target's Nodes.
    pub nodes: Api<Node>,
    pub name: String,
    pub node_name: String,
    pub controller: ControllerGuard,
}

impl Running {
    /// A machine named after `prefix`, under a controller with the flag defaults.
    pub async fn start(prefix: &str) -> Self {
        Self::with(prefix, WORKERS, |_| {}).await
    }

    /// [`Running::start`] under a controller with `workers` per queue and the
    /// settings `adjust` makes.
    pub async fn with(prefix: &str, workers: u16, adjust: impl FnOnce(&mut Settings)) -> Self {
        let sampled = Sampled::new(prefix, prefix).await;
        let mut settings = settings(&sampled.ns);
        adjust(&mut settings);
        let controller = sampled.run_with(sampled.machine(), settings, workers).await;
        let Sampled {
            ns,
            target,
            machines,
            name,
            node_name,
        } = sampled;
        Running {
            pods: ns.api(&target),
            nodes: Api::all(target.clone()),
            ns,
            target,
            machines,
            name,
            node_name,
            controller,
        }
    }
}

/// Machine `name` of class `class`.
pub fn machine(name: &str, class: &str) -> Machine {
    let mut m = Machine::named(name);
    m.spec.class.kind = "MachineClass".into();
    m.spec.class.name = class.into();
    m
}

/// MachineClass `name` of `provider` with `spec`, its credentials in Secret `secret` of `ns`.
pub fn class(
    name: &str,
    provider: &str,
    spec: serde_json::Value,
    secret: &str,
    ns: &str,
) -> MachineClass {
    let mut c = MachineClass {
        api_version: MachineClass::named(name).api_version,
        kind: MachineClass::named(name).kind,
        provider: provider.into(),
        provider_spec: spec,
        secret_ref: Some(SecretReference {
            name: Some(secret.into()),
            namespace: Some(ns.into()),
        }),
        ..Default::default()
    };
    c.metadata.name = Some(name.into());
    c
}

/// A user-data Secret `name` whose `key` holds a script with the token placeholder.
pub fn user_data_secret(name: &str, key: &str) -> Secret {
    let mut s = Secret {
        string_data: Some(std::collections::BTreeMap::from([(
            key.to_string(),
            "#!/bin/sh\ntoken=<<BOOTSTRAP_TOKEN>>\n".to_string(),
        )])),
        ..Default::default()
    };
    s.metadata.name = Some(name.into());
    s
}
