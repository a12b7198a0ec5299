// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! MCM's MachineSet and MachineDeployment, which the product never reads: the
//! tests read their metadata and keep the rest as JSON, so that nothing is lost
//! when they write them.

use std::path::PathBuf;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use mcm_local::api::Machine;
use mcm_local::contract::Phase;
use mcm_local::embed::Settings;
use mcm_local::machine_resource;
use serde::{Deserialize, Serialize};

use super::controller::{
    ControllerGuard, delete_all_machines, kubectl_apply, sample, spawn_for, start,
};
use super::{Cluster, TIMEOUT, TestNamespace, wait_for, wait_for_list};

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MachineSet {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: serde_json::Value,
    #[serde(default)]
    pub status: serde_json::Value,
}
machine_resource!(MachineSet, "MachineSet", "machinesets");

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MachineDeployment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: serde_json::Value,
    #[serde(default)]
    pub status: serde_json::Value,
}
machine_resource!(MachineDeployment, "MachineDeployment", "machinedeployments");

/// The MCM binary `hack/tools.sh` builds (or `$MCM_BIN`).
pub fn mcm_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MCM_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME");
    cache.join("mcm-provider-local/tools/current/machine-controller-manager")
}

/// A port nobody listens on now, for MCM's metrics server.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until the deployment's `n` machines are Running; returns them.
pub async fn all_running(machines: &Api<Machine>, n: usize) -> Vec<Machine> {
    let description = format!("the deployment's {n} machine(s) Running");
    wait_for_list(
        machines,
        Default::default(),
        TIMEOUT * 2,
        &description,
        |l| l.len() == n && l.iter().all(|m| m.phase() == Some(&Phase::Running)),
    )
    .await
}

/// Waits until MCM reports the deployment's `n` machines available.
pub async fn all_available(deployments: &Api<MachineDeployment>, deployment: &str, n: i64) {
    let description = format!("the MachineDeployment reports {n} available");
    wait_for(deployments, deployment, TIMEOUT, &description, |d| {
        d.status.get("availableReplicas").and_then(|v| v.as_i64()) == Some(n)
    })
    .await;
}

/// Deletes the deployment first, so that MCM makes no more machines, then
/// every machine, and stops our controller.
pub async fn tear_down(
    deployments: &Api<MachineDeployment>,
    deployment: &str,
    machines: &Api<Machine>,
    controller: ControllerGuard,
) {
    deployments
        .delete(deployment, &Default::default())
        .await
        .unwrap();
    delete_all_machines(machines).await;
    controller.stop().await;
}

/// The sample Secret and MachineClass, and the sample MachineDeployment as
/// `md-<namespace suffix>` with `renames` (each must match); returns its name.
pub async fn apply_deployment(ns: &TestNamespace, renames: &[(&str, &str)]) -> String {
    let suffix = &ns.name()[ns.name().len() - 6..];
    let deployment = format!("md-{suffix}");
    for file in ["secret.yaml", "machine-class.yaml"] {
        kubectl_apply(Cluster::Control, &sample(file, ns.name(), &[])).await;
    }
    let original = sample("machine-deployment.yaml", ns.name(), &[]);
    for (from, _) in renames {
        assert!(original.contains(from), "{from:?} is not in\n{original}");
    }
    let mut renames = renames.to_vec();
    renames.push(("test-machine-deployment", &deployment));
    kubectl_apply(
        Cluster::Control,
        &sample("machine-deployment.yaml", ns.name(), &renames),
    )
    .await;
    deployment
}

/// The sample MachineClass with `renames`.
pub async fn apply_class(ns: &TestNamespace, renames: &[(&str, &str)]) {
    let class = sample("machine-class.yaml", ns.name(), renames);
    kubectl_apply(Cluster::Control, &class).await;
}

/// The real MCM (its MachineDeployment and MachineSet controllers; `make
/// tools` builds it) for `ns`, without leader election; killed when dropped.
pub fn spawn_mcm(ns: &TestNamespace) -> tokio::process::Child {
    spawn_for(
        &mcm_binary(),
        ns.name(),
        &format!("{}-mcm.log", ns.name()),
        &[
            "--leader-elect=false".into(),
            format!("--port={}", free_port()),
            "--address=127.0.0.1".into(),
        ],
    )
}

/// [`spawn_mcm`] and our controller with `settings`, for `ns`.
pub async fn mcm_and_us(
    ns: &TestNamespace,
    settings: Settings,
) -> (tokio::process::Child, ControllerGuard) {
    (spawn_mcm(ns), start(settings).await)
}
